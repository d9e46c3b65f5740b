//! Run configuration: the TOML file that `gpo run` reads (see `configs/`). Unknown keys are
//! errors, and every value is checked before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gpo_core::{GpoConfig, WeightDType};
use serde::{Deserialize, Serialize};

pub use crate::eval::LlmOptions;
use crate::method::Method;
use crate::prior::{NeighbourRule, PriorKind};
use crate::protocol::Protocol;
use crate::task::EmbeddedSurvey;
use crate::train::{GpoMethod, Sampling, SplitOptions, TrainOptions};

/// Where the survey and its embeddings come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataConfig {
    /// A survey file set (see `gpo data summary --help` for the formats) with its embedding cache.
    Survey {
        /// File format.
        loader: crate::data::Loader,
        /// File or folder, relative to the config file.
        source: PathBuf,
        /// OpinionQA release folder with the question texts (the `notebook` loader only).
        #[serde(default)]
        questions: Option<PathBuf>,
        /// Groups to keep (default: GPO's groups for the dataset, those present).
        #[serde(default)]
        groups: Option<Vec<String>>,
        /// Embedding cache, relative to the config file.
        cache: PathBuf,
        /// Sentence-embedding model (folder or wheel), used only for texts missing from the cache.
        #[serde(default)]
        embedding_model: Option<PathBuf>,
        /// Text template id (`gpo` or `plain`).
        #[serde(default = "default_template")]
        template: String,
    },
    /// A generated survey with planted group structure (tests, benchmarks).
    Synthetic {
        /// Number of groups.
        groups: usize,
        /// Number of questions.
        questions: usize,
        /// Embedding dimension.
        dim: usize,
        /// Group clusters.
        clusters: usize,
        /// Sharpness of the answer distributions.
        sharpness: f64,
        /// Seed of the generator.
        seed: u64,
    },
}

fn default_template() -> String {
    "gpo".into()
}

/// GPO hyperparameters other than the input dimension (taken from the embeddings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelOptions {
    /// Token width.
    pub d_model: usize,
    /// Embedder depth.
    pub emb_depth: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Encoder layers.
    pub n_layers: usize,
    /// Dropout.
    pub dropout: f64,
    /// Population prior the network reads (variants only; the faithful model reads none).
    pub prior: Option<PriorKind>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        let c = GpoConfig::new(1);
        Self {
            d_model: c.d_model,
            emb_depth: c.emb_depth,
            d_ff: c.d_ff,
            n_heads: c.n_heads,
            n_layers: c.n_layers,
            dropout: c.dropout,
            prior: None,
        }
    }
}

impl ModelOptions {
    /// The model configuration for inputs of dimension `dim_x`.
    pub fn gpo_config(&self, dim_x: usize) -> GpoConfig {
        GpoConfig::new(dim_x)
            .with_d_model(self.d_model)
            .with_emb_depth(self.emb_depth)
            .with_d_ff(self.d_ff)
            .with_n_heads(self.n_heads)
            .with_n_layers(self.n_layers)
            .with_dropout(self.dropout)
            .with_prior(self.prior.is_some())
    }
}

/// A GPO variant meta-trained and reported beside the faithful model, as `gpo_<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantOptions {
    /// Its network and prior.
    #[serde(default)]
    pub model: ModelOptions,
    /// Its training.
    #[serde(default)]
    pub training: TrainOptions,
}

/// The evaluation protocol (docs/original.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalOptions {
    /// Meta-training fractions of the groups.
    pub splits: Vec<f64>,
    /// Seeds; each (split, seed) trains and evaluates one model.
    pub seeds: Vec<u64>,
    /// Context questions of the headline results.
    pub context_questions: usize,
    /// Numbers of context questions for the sample-efficiency sweep.
    pub sweep: Vec<usize>,
    /// Temperature of the kNN-groups baseline.
    pub knn_temperature: f64,
    /// Ridge penalty of the reward-model baseline.
    pub ridge_lambda: f64,
    /// The protocols evaluated: `groups` (held-out groups, every question; the paper's) and
    /// `questions` (held-out groups on questions held out of meta-training, `[split]
    /// new_questions` of them). Each protocol trains its own models.
    pub protocols: Vec<Protocol>,
    /// At most this many target questions per held-out group, for every method alike: the first
    /// of its targets in a fixed order of the survey's questions (by a hash of their keys, the same
    /// in every run, so that a question scored in one run is scored in the others). Unset: every
    /// target. The LLM baselines need it on a CPU ([`LlmOptions`]).
    pub max_targets: Option<usize>,
}

impl EvalOptions {
    /// Every number of context questions evaluated: the sweep and the headline value, sorted.
    pub fn context_sizes(&self) -> Vec<usize> {
        let mut ks = self.sweep.clone();
        ks.push(self.context_questions);
        ks.sort_unstable();
        ks.dedup();
        ks
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            splits: vec![0.4, 0.6, 0.8],
            seeds: vec![0, 1, 2],
            context_questions: 20,
            sweep: vec![0, 1, 2, 5, 10, 20, 50, 100],
            knn_temperature: 0.02,
            ridge_lambda: 1.0,
            protocols: vec![Protocol::Groups],
            max_targets: None,
        }
    }
}

/// The rule that gives a question no meta-training group answered (a new question) its prior,
/// the weighted mean of its nearest answered questions (`[nearest_questions]`): its candidates,
/// every count with equal weights and with similarity weights at every temperature, options
/// paired by position and then by meaning at every option weight. Each run
/// selects one on its meta-training data ([`crate::prior::select_rule`]), and every population
/// prior of the run uses it: the prior variants' (in training and in the exported model), the
/// `train_mean`, `nearest_question` and `knn_groups` baselines'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NearestQuestionsOptions {
    /// Numbers of nearest questions tried.
    pub neighbours: Vec<usize>,
    /// Softmax temperatures of the similarity weights tried with each number (equal weights are
    /// always tried); empty: equal weights only.
    pub temperatures: Vec<f64>,
    /// Weights of options matched by meaning tried with every count and weighting (options by
    /// position are always tried, first): how much the mean similarity of a neighbour's matched
    /// options adds to its similarity ([`gpo_core::prior::OptionMatch::Meaning`]); empty: by
    /// position only.
    pub option_weights: Vec<f64>,
}

impl Default for NearestQuestionsOptions {
    fn default() -> Self {
        Self {
            neighbours: vec![5, 10, 20, 40, 80, 160],
            temperatures: vec![0.2, 0.1, 0.07, 0.05, 0.03, 0.02],
            option_weights: vec![0.3, 1.0],
        }
    }
}

impl NearestQuestionsOptions {
    /// The candidates, gpo-core's default rule (5, equal, by position) first where listed.
    pub fn candidates(&self) -> Vec<NeighbourRule> {
        crate::prior::rule_candidates(&self.neighbours, &self.temperatures, &self.option_weights)
    }
}

/// What `gpo run` exports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportOptions {
    /// Weight storage of `model.gpo`: `f32`, `f16` or `bf16`.
    pub dtype: WeightDType,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self { dtype: WeightDType::F16 }
    }
}

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Run name: results go to `runs/<name>/`.
    pub name: String,
    /// Data.
    pub data: DataConfig,
    /// Model.
    #[serde(default)]
    pub model: ModelOptions,
    /// Training.
    #[serde(default)]
    pub training: TrainOptions,
    /// How each run divides the data (one split for every method of the run).
    #[serde(default)]
    pub split: SplitOptions,
    /// Variants of GPO trained beside the faithful model (`[variants.<name>]`), by name.
    #[serde(default)]
    pub variants: BTreeMap<String, VariantOptions>,
    /// The rule for new questions' priors.
    #[serde(default)]
    pub nearest_questions: NearestQuestionsOptions,
    /// Evaluation.
    #[serde(default)]
    pub evaluation: EvalOptions,
    /// Export.
    #[serde(default)]
    pub export: ExportOptions,
    /// LLM baselines, when given.
    #[serde(default)]
    pub llm: Option<LlmOptions>,
}

/// A config file that cannot be used: the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ConfigError {
    /// Config file.
    pub path: String,
    /// What is wrong.
    pub problem: ConfigProblem,
}

/// What is wrong with a run config; every message names the table and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// The file could not be read.
    #[error("{}", crate::fsutil::reason(.0))]
    Read(std::io::Error),
    /// Not TOML, or a key or value the config does not take (toml's message names the line).
    #[error("{0}")]
    Toml(toml::de::Error),
    /// A split setting given where it was before `[split]`.
    #[error("[{table}] {key}: moved to [split] (one split for every method of a run: `[split] {key} = …`)")]
    MovedToSplit {
        /// The table it is in.
        table: String,
        /// The key.
        key: &'static str,
    },
    /// A value breaks its rule.
    #[error("[{table}] {key} {rule}")]
    Value {
        /// The table (`model`, `variants.knn.training`, …).
        table: String,
        /// The key.
        key: &'static str,
        /// What the value must be.
        rule: Rule,
    },
    /// The run's name is not a plain folder name.
    #[error("name `{0}` must be a plain folder name")]
    Name(String),
    /// A variant's name is not lower-case letters, digits and `_`.
    #[error("[variants.{0}] a variant name is lower-case letters, digits and `_`")]
    VariantName(String),
    /// The faithful model was given a prior.
    #[error("[model] the faithful model reads no prior; give it to a [variants.<name>.model]")]
    FaithfulPrior,
    /// A model too large.
    #[error(
        "[{table}] d_model {d_model}, d_ff {d_ff}, n_layers {n_layers} and emb_depth {emb_depth} make {weights} \
         weights; at most {MAX_PARAMETERS} are allowed"
    )]
    TooManyWeights {
        /// The `[model]` table.
        table: String,
        /// Its sizes.
        d_model: usize,
        /// Its sizes.
        d_ff: usize,
        /// Its sizes.
        n_layers: usize,
        /// Its sizes.
        emb_depth: usize,
        /// The weights they make.
        weights: u64,
    },
    /// A network the model cannot build.
    #[error("[{table}] {error}")]
    Model {
        /// The `[model]` table.
        table: String,
        /// Why.
        error: gpo_core::model::ConfigError,
    },
    /// A prior the model cannot read.
    #[error("[{table}] {error}")]
    Prior {
        /// The `[model]` table.
        table: String,
        /// Why.
        error: gpo_core::PriorError,
    },
    /// Sampling bounds out of order.
    #[error("[{0}] needs 0 < min_target ≤ max_target and min_context ≤ max_context")]
    Sampling(String),
    /// An unknown text template.
    #[error("[data] template: {0}")]
    Template(gpo_core::template::TemplateError),
    /// LLM baselines on questions without text.
    #[error("[llm] needs survey data: synthetic questions have no text to prompt with")]
    LlmWithoutText,
}

/// The rule a config value breaks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rule {
    /// An upper bound.
    #[error("must be at most {max}, got {got}")]
    AtMost {
        /// The largest allowed.
        max: usize,
        /// The value.
        got: usize,
    },
    /// Zero where a count must be positive (`why` says what the count is, when it helps).
    #[error("must be at least 1{why}, got 0")]
    AtLeastOne {
        /// What the count means, e.g. ` (validation every that many updates)`.
        why: &'static str,
    },
    /// A number that must be positive and finite.
    #[error("must be positive, got {0}")]
    Positive(f64),
    /// A fraction.
    #[error("must be a fraction in (0, 1), got {0}")]
    Fraction(f64),
    /// A finite number.
    #[error("must be finite, got {0}")]
    Finite(f64),
    /// A range.
    #[error("must be between {min:e} and {max:e}, got {got:e}")]
    Between {
        /// The least allowed.
        min: f64,
        /// The largest allowed.
        max: f64,
        /// The value.
        got: f64,
    },
    /// A list that must hold something (`what` it must name).
    #[error("must not be empty{what}")]
    NotEmpty {
        /// What an entry is, e.g. `: name at least one of base, steered, fewshot`.
        what: &'static str,
    },
    /// Too many entries.
    #[error("may hold at most {max} entries, got {got}")]
    Entries {
        /// The most allowed.
        max: usize,
        /// The entries.
        got: usize,
    },
    /// An entry listed twice.
    #[error("has `{0}` listed twice")]
    Twice(String),
    /// A key this table does not use (`why` says why).
    #[error("is not used here: {why}")]
    Unsupported {
        /// Why, e.g. `only lm_incontext_ft has validation groups to select on`.
        why: &'static str,
    },
}

/// `Err(value problem)` unless `ok`.
fn check(ok: bool, table: impl Into<String>, key: &'static str, rule: Rule) -> Result<(), ConfigProblem> {
    match ok {
        true => Ok(()),
        false => Err(ConfigProblem::Value { table: table.into(), key, rule }),
    }
}

/// The config asks for as many context questions as a group of the data has, or more (the
/// command line adds the config file to the message).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "[evaluation] {keys}: k = {k} context questions is not smaller than the {fewest} questions of the smallest \
     group, `{group}`"
)]
pub struct TooFewQuestions {
    /// The keys that ask for `k`.
    pub keys: &'static str,
    /// The largest number of context questions asked for.
    pub k: usize,
    /// The questions of the smallest group.
    pub fewest: usize,
    /// Its name.
    pub group: String,
}

// Largest sizes a run configuration may ask for. They are far above any useful GPO model or
// protocol, and low enough that a mistyped value (`d_model = 1073741824`, `n_layers = 100000000`)
// is a clear error naming the table and field instead of an allocation failure that aborts.

/// Largest `d_model` (token width).
pub const MAX_D_MODEL: usize = 4096;
/// Largest `d_ff` (feed-forward and head width).
pub const MAX_D_FF: usize = 16384;
/// Largest `n_layers` (encoder layers).
pub const MAX_LAYERS: usize = 64;
/// Largest `emb_depth` (token embedder layers).
pub const MAX_EMB_DEPTH: usize = 64;
/// Largest `n_heads`.
pub const MAX_HEADS: usize = 64;
/// Most weights a `[model]` may have, not counting the input layer (whose size depends on the
/// embedding dimension): 2^28, 1 GiB in f32. The individual maxima above allow ~13 billion.
pub const MAX_PARAMETERS: u64 = 1 << 28;
/// Largest `steps`, `eval_every` and `checkpoint_every` of a `[training]` table.
pub const MAX_STEPS: usize = 1_000_000_000;
/// Largest number of questions in any count of questions: `[training.sampling]`'s
/// `min_/max_context` and `min_/max_target`, `validation_context`, `[evaluation]`'s
/// `context_questions` and every `sweep` entry.
pub const MAX_QUESTIONS: usize = 100_000;
/// Most `[training] threads` (threads one update's gradients are computed on).
pub const MAX_UPDATE_THREADS: usize = 256;
/// Most `[evaluation]` splits.
pub const MAX_SPLITS: usize = 64;
/// Most `[evaluation]` seeds.
pub const MAX_SEEDS: usize = 1024;
/// Most `[evaluation]` sweep entries.
pub const MAX_SWEEP: usize = 1024;
/// Most `[variants.<name>]` tables.
pub const MAX_VARIANTS: usize = 64;
/// Most entries of each list of `[nearest_questions]` (the candidates are their product).
pub const MAX_RULE_CANDIDATES: usize = 16;
/// Largest synthetic survey (`[data] format = "synthetic"`): groups and questions each.
pub const MAX_SYNTHETIC_COUNT: usize = 100_000;
/// Largest synthetic embedding dimension.
pub const MAX_SYNTHETIC_DIM: usize = 65_536;
/// Largest synthetic `groups × questions` and `questions × dim` (numbers held in memory).
pub const MAX_SYNTHETIC_VALUES: usize = 100_000_000;

/// `[table] key must be at most max, got value` when `value > max`.
fn at_most(table: &str, key: &'static str, value: usize, max: usize) -> Result<(), ConfigProblem> {
    check(value <= max, table, key, Rule::AtMost { max, got: value })
}

/// The number of weights of `model` without its input layer (which depends on the embedding
/// dimension), saturating instead of overflowing.
fn parameter_count(model: &ModelOptions) -> u64 {
    let (d, f) = (model.d_model as u64, model.d_ff as u64);
    let linear = |i: u64, o: u64| i.saturating_mul(o).saturating_add(o);
    let embedder = linear(d, d).saturating_mul((model.emb_depth as u64).saturating_sub(1));
    // Attention (q, k, v, out), the feed-forward block and two layer norms.
    let layer =
        linear(d, d).saturating_mul(4).saturating_add(linear(d, f)).saturating_add(linear(f, d)).saturating_add(4 * d);
    let head = linear(d, f).saturating_add(linear(f, 2));
    embedder.saturating_add(layer.saturating_mul(model.n_layers as u64)).saturating_add(head)
}

/// Checks the sizes of one method's `[model]` and `[training]` tables against the maxima above.
fn check_sizes(table: &str, model: &ModelOptions, t: &TrainOptions) -> Result<(), ConfigProblem> {
    let m = format!("{table}model");
    at_most(&m, "d_model", model.d_model, MAX_D_MODEL)?;
    at_most(&m, "d_ff", model.d_ff, MAX_D_FF)?;
    at_most(&m, "n_layers", model.n_layers, MAX_LAYERS)?;
    at_most(&m, "emb_depth", model.emb_depth, MAX_EMB_DEPTH)?;
    at_most(&m, "n_heads", model.n_heads, MAX_HEADS)?;
    let weights = parameter_count(model);
    if weights > MAX_PARAMETERS {
        let (d_model, d_ff, n_layers, emb_depth) = (model.d_model, model.d_ff, model.n_layers, model.emb_depth);
        return Err(ConfigProblem::TooManyWeights { table: m, d_model, d_ff, n_layers, emb_depth, weights });
    }
    let tr = format!("{table}training");
    at_most(&tr, "steps", t.steps, MAX_STEPS)?;
    at_most(&tr, "eval_every", t.eval_every, MAX_STEPS)?;
    at_most(&tr, "checkpoint_every", t.checkpoint_every, MAX_STEPS)?;
    let why = " (validation every that many updates)";
    check(t.eval_every > 0, &tr, "eval_every", Rule::AtLeastOne { why })?;
    at_most(&tr, "validation_context", t.validation_context, MAX_QUESTIONS)?;
    at_most(&tr, "groups_per_update", t.groups_per_update.unwrap_or(0), MAX_SYNTHETIC_COUNT)?;
    at_most(&tr, "threads", t.threads, MAX_UPDATE_THREADS)?;
    if let Sampling::Code { min_context, max_context, min_target, max_target } = t.sampling {
        let sampling = format!("{tr}.sampling");
        at_most(&sampling, "min_context", min_context, MAX_QUESTIONS)?;
        at_most(&sampling, "max_context", max_context, MAX_QUESTIONS)?;
        at_most(&sampling, "min_target", min_target, MAX_QUESTIONS)?;
        at_most(&sampling, "max_target", max_target, MAX_QUESTIONS)?;
    }
    Ok(())
}

/// Checks the sizes of a synthetic `[data]` table.
fn check_data_sizes(data: &DataConfig) -> Result<(), ConfigProblem> {
    if let DataConfig::Synthetic { groups, questions, dim, clusters, sharpness, .. } = *data {
        for (key, value) in [("groups", groups), ("questions", questions), ("dim", dim), ("clusters", clusters)] {
            check(value > 0, "data", key, Rule::AtLeastOne { why: "" })?;
        }
        at_most("data", "groups", groups, MAX_SYNTHETIC_COUNT)?;
        at_most("data", "questions", questions, MAX_SYNTHETIC_COUNT)?;
        at_most("data", "clusters", clusters, MAX_SYNTHETIC_COUNT)?;
        at_most("data", "dim", dim, MAX_SYNTHETIC_DIM)?;
        at_most("data", "groups × questions", groups * questions, MAX_SYNTHETIC_VALUES)?;
        at_most("data", "questions × dim", questions * dim, MAX_SYNTHETIC_VALUES)?;
        check(sharpness.is_finite(), "data", "sharpness", Rule::Finite(sharpness))?;
    }
    Ok(())
}

/// Checks one method's `[model]` and `[training]` tables; `table` prefixes the table names.
fn validate_method(table: &str, model: &ModelOptions, t: &TrainOptions) -> Result<(), ConfigProblem> {
    check_sizes(table, model, t)?;
    let model_table = || format!("{table}model");
    model.gpo_config(1).validate().map_err(|error| ConfigProblem::Model { table: model_table(), error })?;
    if let Some(kind) = model.prior {
        kind.validate().map_err(|error| ConfigProblem::Prior { table: model_table(), error })?;
    }
    let training = format!("{table}training");
    check(t.steps > 0, &training, "steps", Rule::AtLeastOne { why: "" })?;
    check(t.groups_per_update != Some(0), &training, "groups_per_update", Rule::AtLeastOne { why: "" })?;
    check(t.threads > 0, &training, "threads", Rule::AtLeastOne { why: "" })?;
    let rate = t.learning_rate;
    check(rate > 0.0 && rate.is_finite(), &training, "learning_rate", Rule::Positive(rate))?;
    if let Sampling::Code { min_context, max_context, min_target, max_target } = t.sampling
        && (min_context > max_context || min_target > max_target || min_target == 0)
    {
        return Err(ConfigProblem::Sampling(format!("{training}.sampling")));
    }
    Ok(())
}

/// The split settings that moved to `[split]` (they were per method in `[training]` and
/// `[variants.<name>.training]`, and `new_questions` in `[evaluation]`): where one of them is
/// still given, a message saying so.
fn moved_split_key(config: &toml::Table) -> Option<ConfigProblem> {
    let table = |t: &toml::Table, name: &str| t.get(name).and_then(toml::Value::as_table).cloned();
    let mut tables: Vec<(String, toml::Table, &[&str])> = Vec::new();
    const TRAINING: &[&str] = &["validation", "validation_fraction"];
    tables.extend(table(config, "training").map(|t| ("training".to_string(), t, TRAINING)));
    tables.extend(table(config, "evaluation").map(|t| ("evaluation".to_string(), t, &["new_questions"][..])));
    for (name, variant) in table(config, "variants").unwrap_or_default() {
        let training = variant.as_table().and_then(|v| table(v, "training"));
        tables.extend(training.map(|t| (format!("variants.{name}.training"), t, TRAINING)));
    }
    tables.into_iter().find_map(|(table, t, keys)| {
        let key = keys.iter().find(|k| t.contains_key(**k))?;
        Some(ConfigProblem::MovedToSplit { table, key })
    })
}

impl RunConfig {
    /// Reads and checks a config file; relative data paths are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let error = |problem: ConfigProblem| ConfigError { path: path.display().to_string(), problem };
        let text = crate::fsutil::read_capped_to_string(path, crate::fsutil::MAX_CONFIG_BYTES)
            .map_err(|e| error(ConfigProblem::Read(e)))?;
        let mut config: RunConfig = toml::from_str(&text).map_err(|e| {
            // An unknown key that moved says where it went.
            let moved = toml::from_str::<toml::Table>(&text).ok().and_then(|table| moved_split_key(&table));
            error(moved.unwrap_or(ConfigProblem::Toml(e)))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let DataConfig::Survey { source, cache, embedding_model, questions, .. } = &mut config.data {
            *source = base.join(&*source);
            *cache = base.join(&*cache);
            for path in [embedding_model, questions].into_iter().flatten() {
                *path = base.join(&*path);
            }
        }
        if let Some(llm) = &mut config.llm {
            llm.model = base.join(&llm.model);
        }
        config.validate().map_err(error)?;
        Ok(config)
    }

    /// Checks values that do not depend on the data.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return Err(ConfigProblem::Name(self.name.clone()));
        }
        if self.model.prior.is_some() {
            return Err(ConfigProblem::FaithfulPrior);
        }
        check_data_sizes(&self.data)?;
        if let DataConfig::Survey { template, .. } = &self.data {
            template.parse::<gpo_core::template::Template>().map_err(ConfigProblem::Template)?;
        }
        validate_method("", &self.model, &self.training)?;
        let variants = self.variants.len();
        check(variants <= MAX_VARIANTS, "variants", "tables", Rule::Entries { max: MAX_VARIANTS, got: variants })?;
        for (name, variant) in &self.variants {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return Err(ConfigProblem::VariantName(name.clone()));
            }
            validate_method(&format!("variants.{name}."), &variant.model, &variant.training)?;
        }
        let SplitOptions { validation_fraction, new_questions, .. } = self.split;
        for (key, value) in [("validation_fraction", validation_fraction), ("new_questions", new_questions)] {
            check(value > 0.0 && value < 1.0, "split", key, Rule::Fraction(value))?;
        }
        let n = &self.nearest_questions;
        check(!n.neighbours.is_empty(), "nearest_questions", "neighbours", Rule::NotEmpty { what: "" })?;
        for (key, got) in [
            ("neighbours", n.neighbours.len()),
            ("temperatures", n.temperatures.len()),
            ("option_weights", n.option_weights.len()),
        ] {
            check(
                got <= MAX_RULE_CANDIDATES,
                "nearest_questions",
                key,
                Rule::Entries { max: MAX_RULE_CANDIDATES, got },
            )?;
        }
        if let Some(&bad) = n.neighbours.iter().find(|&&k| k == 0 || k > gpo_core::prior::MAX_NEIGHBOURS) {
            let rule = match bad {
                0 => Rule::AtLeastOne { why: "" },
                got => Rule::AtMost { max: gpo_core::prior::MAX_NEIGHBOURS, got },
            };
            check(false, "nearest_questions", "neighbours entries", rule)?;
        }
        let (min, max) = (*gpo_core::prior::TEMPERATURE_RANGE.start(), *gpo_core::prior::TEMPERATURE_RANGE.end());
        if let Some(&got) = n.temperatures.iter().find(|&&t| !(min <= t && t <= max)) {
            check(false, "nearest_questions", "temperatures entries", Rule::Between { min, max, got })?;
        }
        let max = gpo_core::prior::MAX_OPTION_WEIGHT;
        if let Some(&got) = n.option_weights.iter().find(|&&w| !(0.0..=max).contains(&w)) {
            check(false, "nearest_questions", "option_weights entries", Rule::Between { min: 0.0, max, got })?;
        }
        let e = &self.evaluation;
        let not_empty = Rule::NotEmpty { what: "" };
        check(!e.splits.is_empty(), "evaluation", "splits", not_empty.clone())?;
        check(!e.seeds.is_empty(), "evaluation", "seeds", not_empty.clone())?;
        for (key, got, max) in [
            ("splits", e.splits.len(), MAX_SPLITS),
            ("seeds", e.seeds.len(), MAX_SEEDS),
            ("sweep", e.sweep.len(), MAX_SWEEP),
        ] {
            check(got <= max, "evaluation", key, Rule::Entries { max, got })?;
        }
        at_most("evaluation", "context_questions", e.context_questions, MAX_QUESTIONS)?;
        if let Some(&k) = e.sweep.iter().find(|&&k| k > MAX_QUESTIONS) {
            at_most("evaluation", "sweep entries", k, MAX_QUESTIONS)?;
        }
        if let Some(&bad) = e.splits.iter().find(|s| !(**s > 0.0 && **s < 1.0)) {
            check(false, "evaluation", "splits entries", Rule::Fraction(bad))?;
        }
        check(!e.protocols.is_empty(), "evaluation", "protocols", not_empty)?;
        if let Some(p) = e.protocols.iter().enumerate().find_map(|(i, p)| e.protocols[..i].contains(p).then_some(p)) {
            check(false, "evaluation", "protocols", Rule::Twice(p.name().to_string()))?;
        }
        let (min, max) = (*gpo_core::prior::TEMPERATURE_RANGE.start(), *gpo_core::prior::TEMPERATURE_RANGE.end());
        let got = e.knn_temperature;
        check(min <= got && got <= max, "evaluation", "knn_temperature", Rule::Between { min, max, got })?;
        let lambda = e.ridge_lambda;
        check(lambda > 0.0 && lambda.is_finite(), "evaluation", "ridge_lambda", Rule::Positive(lambda))?;
        if let Some(n) = e.max_targets {
            let why = " (leave it out for every target)";
            check(n > 0, "evaluation", "max_targets", Rule::AtLeastOne { why })?;
            at_most("evaluation", "max_targets", n, MAX_QUESTIONS)?;
        }
        if let Some(llm) = &self.llm {
            let what = ": name at least one of base, steered, fewshot, sft, reward_model, incontext_ft";
            check(!llm.methods.is_empty(), "llm", "methods", Rule::NotEmpty { what })?;
            if let Some(m) = llm.methods.iter().enumerate().find_map(|(i, m)| llm.methods[..i].contains(m).then_some(m))
            {
                check(false, "llm", "methods", Rule::Twice(m.id().to_string()))?;
            }
            if !matches!(self.data, DataConfig::Survey { .. }) {
                return Err(ConfigProblem::LlmWithoutText);
            }
            let l = &llm.lora;
            check(l.rank > 0, "llm.lora", "rank", Rule::AtLeastOne { why: "" })?;
            at_most("llm.lora", "rank", l.rank, crate::llm::lora::MAX_RANK)?;
            check(l.alpha > 0.0 && l.alpha.is_finite(), "llm.lora", "alpha", Rule::Positive(l.alpha))?;
            let got = l.dropout;
            check((0.0..1.0).contains(&got), "llm.lora", "dropout", Rule::Between { min: 0.0, max: 0.99, got })?;
            let what = ": name at least one of q, k, v, o, gate, up, down";
            check(!l.projections.is_empty(), "llm.lora", "projections", Rule::NotEmpty { what })?;
            if let Some(p) =
                l.projections.iter().enumerate().find_map(|(i, p)| l.projections[..i].contains(p).then_some(p))
            {
                check(false, "llm.lora", "projections", Rule::Twice(format!("{p:?}").to_lowercase()))?;
            }
            check(l.blocks > 0, "llm.lora", "blocks", Rule::AtLeastOne { why: " (adapted final blocks)" })?;
            at_most("llm.lora", "blocks", l.blocks, 1024)?;
            let tables = [
                ("llm.sft", &llm.sft),
                ("llm.reward_model", &llm.reward_model),
                ("llm.incontext_ft", &llm.incontext_ft),
            ];
            for (table, t) in tables {
                check(t.steps > 0, table, "steps", Rule::AtLeastOne { why: " (updates per adapter)" })?;
                at_most(table, "steps", t.steps, 1_000_000)?;
                let lr = t.learning_rate;
                check(lr > 0.0 && lr.is_finite(), table, "learning_rate", Rule::Positive(lr))?;
                let got = t.weight_decay;
                check((0.0..1.0).contains(&got), table, "weight_decay", Rule::Between { min: 0.0, max: 0.99, got })?;
                if let Some(b) = t.batch {
                    check(b > 0, table, "batch", Rule::AtLeastOne { why: " (prompts per update)" })?;
                }
                if let Some(n) = t.eval_every {
                    let why = " (updates between validations)";
                    check(
                        n > 0 && table == "llm.incontext_ft",
                        table,
                        "eval_every",
                        match table {
                            "llm.incontext_ft" => Rule::AtLeastOne { why },
                            _ => Rule::Unsupported { why: "only lm_incontext_ft has validation groups to select on" },
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The GPO methods to train: the faithful `gpo`, then each variant as `gpo_<name>`.
    pub fn methods(&self, dim_x: usize) -> Vec<GpoMethod> {
        let method = |method: Method, model: &ModelOptions, training: &TrainOptions| GpoMethod {
            method,
            config: model.gpo_config(dim_x),
            prior: model.prior,
            training: training.clone(),
        };
        let mut methods = vec![method(Method::Gpo, &self.model, &self.training)];
        methods
            .extend(self.variants.iter().map(|(name, v)| method(Method::Variant(name.clone()), &v.model, &v.training)));
        methods
    }

    /// Checks the evaluation sizes against the data: every held-out group needs more questions than
    /// the largest number of context questions.
    pub fn check_data(&self, task: &EmbeddedSurvey) -> Result<(), TooFewQuestions> {
        let largest = self.evaluation.context_sizes().last().copied().unwrap_or(0);
        let smallest = (0..task.n_groups()).map(|g| (task.questions_of(g).len(), g)).min();
        match smallest.filter(|&(fewest, _)| largest >= fewest) {
            Some((fewest, g)) => Err(TooFewQuestions {
                keys: match self.evaluation.sweep.contains(&largest) {
                    true => "context_questions and sweep",
                    false => "context_questions",
                },
                k: largest,
                fewest,
                group: task.survey.groups[g].name.clone(),
            }),
            None => Ok(()),
        }
    }
}
