//! Run configuration: the TOML file that `gpo run` reads (see `configs/`). Unknown keys are
//! errors, and every value is checked before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gpo_core::{GpoConfig, WeightDType};
use serde::{Deserialize, Serialize};

use crate::llm::prompt::PromptFormat;
use crate::method::{LmMethod, Method};
use crate::prior::PriorKind;
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

/// The LLM baselines of a run (`[llm]`): a GGUF causal language model prompted with each held-out
/// group's target questions at the headline number of context questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmOptions {
    /// The `.gguf` file, or a wheel/zip holding one (relative to the config's folder).
    pub model: PathBuf,
    /// The template the model was tuned with (`chatml` for SmolLM2-Instruct, `alpaca`).
    pub prompt: PromptFormat,
    /// The methods (`base`, `steered`, `fewshot`), each reported as `lm_<name>`.
    pub methods: Vec<LmMethod>,
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

/// A configuration problem, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Config file.
    pub path: String,
    /// What is wrong.
    pub message: String,
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
/// Most `[evaluation]` splits.
pub const MAX_SPLITS: usize = 64;
/// Most `[evaluation]` seeds.
pub const MAX_SEEDS: usize = 1024;
/// Most `[evaluation]` sweep entries.
pub const MAX_SWEEP: usize = 1024;
/// Most `[variants.<name>]` tables.
pub const MAX_VARIANTS: usize = 64;
/// Largest synthetic survey (`[data] format = "synthetic"`): groups and questions each.
pub const MAX_SYNTHETIC_COUNT: usize = 100_000;
/// Largest synthetic embedding dimension.
pub const MAX_SYNTHETIC_DIM: usize = 65_536;
/// Largest synthetic `groups × questions` and `questions × dim` (numbers held in memory).
pub const MAX_SYNTHETIC_VALUES: usize = 100_000_000;

/// `[table] field must be at most max, got value` when `value > max`.
fn at_most(table: &str, field: &str, value: usize, max: usize) -> Result<(), String> {
    if value > max {
        return Err(format!("[{table}] {field} must be at most {max}, got {value}"));
    }
    Ok(())
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
fn check_sizes(table: &str, model: &ModelOptions, t: &TrainOptions) -> Result<(), String> {
    let m = format!("{table}model");
    at_most(&m, "d_model", model.d_model, MAX_D_MODEL)?;
    at_most(&m, "d_ff", model.d_ff, MAX_D_FF)?;
    at_most(&m, "n_layers", model.n_layers, MAX_LAYERS)?;
    at_most(&m, "emb_depth", model.emb_depth, MAX_EMB_DEPTH)?;
    at_most(&m, "n_heads", model.n_heads, MAX_HEADS)?;
    let weights = parameter_count(model);
    if weights > MAX_PARAMETERS {
        return Err(format!(
            "[{m}] d_model {}, d_ff {}, n_layers {} and emb_depth {} make {weights} weights; at most {MAX_PARAMETERS} \
             are allowed",
            model.d_model, model.d_ff, model.n_layers, model.emb_depth
        ));
    }
    let tr = format!("{table}training");
    at_most(&tr, "steps", t.steps, MAX_STEPS)?;
    at_most(&tr, "eval_every", t.eval_every, MAX_STEPS)?;
    at_most(&tr, "checkpoint_every", t.checkpoint_every, MAX_STEPS)?;
    if t.eval_every == 0 {
        return Err(format!("[{tr}] eval_every must be at least 1 (validation every that many updates), got 0"));
    }
    at_most(&tr, "validation_context", t.validation_context, MAX_QUESTIONS)?;
    at_most(&tr, "groups_per_update", t.groups_per_update.unwrap_or(0), MAX_SYNTHETIC_COUNT)?;
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
fn check_data_sizes(data: &DataConfig) -> Result<(), String> {
    if let DataConfig::Synthetic { groups, questions, dim, clusters, sharpness, .. } = *data {
        for (field, value) in [("groups", groups), ("questions", questions), ("dim", dim), ("clusters", clusters)] {
            if value == 0 {
                return Err(format!("[data] {field} must be at least 1, got 0"));
            }
        }
        at_most("data", "groups", groups, MAX_SYNTHETIC_COUNT)?;
        at_most("data", "questions", questions, MAX_SYNTHETIC_COUNT)?;
        at_most("data", "clusters", clusters, MAX_SYNTHETIC_COUNT)?;
        at_most("data", "dim", dim, MAX_SYNTHETIC_DIM)?;
        at_most("data", "groups × questions", groups * questions, MAX_SYNTHETIC_VALUES)?;
        at_most("data", "questions × dim", questions * dim, MAX_SYNTHETIC_VALUES)?;
        if !sharpness.is_finite() {
            return Err(format!("[data] sharpness must be finite, got {sharpness}"));
        }
    }
    Ok(())
}

/// Checks one method's `[model]` and `[training]` tables; `table` prefixes the table names.
fn validate_method(table: &str, model: &ModelOptions, t: &TrainOptions) -> Result<(), String> {
    check_sizes(table, model, t)?;
    model.gpo_config(1).validate().map_err(|e| format!("[{table}model] {e}"))?;
    if let Some(kind) = model.prior {
        kind.validate().map_err(|e| format!("[{table}model] {e}"))?;
    }
    if t.steps == 0 {
        return Err(format!("[{table}training] steps must be positive"));
    }
    if t.groups_per_update == Some(0) {
        return Err(format!("[{table}training] groups_per_update must be positive"));
    }
    if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
        return Err(format!("[{table}training] learning_rate must be positive, got {}", t.learning_rate));
    }
    if let Sampling::Code { min_context, max_context, min_target, max_target } = t.sampling
        && (min_context > max_context || min_target > max_target || min_target == 0)
    {
        return Err(format!(
            "[{table}training.sampling] needs 0 < min_target ≤ max_target and min_context ≤ max_context"
        ));
    }
    Ok(())
}

/// The split settings that moved to `[split]` (they were per method in `[training]` and
/// `[variants.<name>.training]`, and `new_questions` in `[evaluation]`): where one of them is
/// still given, a message saying so.
fn moved_split_key(config: &toml::Table) -> Option<String> {
    let table = |t: &toml::Table, name: &str| t.get(name).and_then(toml::Value::as_table).cloned();
    let mut tables: Vec<(String, toml::Table, &[&str])> = Vec::new();
    const TRAINING: &[&str] = &["validation", "validation_fraction"];
    tables.extend(table(config, "training").map(|t| ("training".to_string(), t, TRAINING)));
    tables.extend(table(config, "evaluation").map(|t| ("evaluation".to_string(), t, &["new_questions"][..])));
    for (name, variant) in table(config, "variants").unwrap_or_default() {
        let training = variant.as_table().and_then(|v| table(v, "training"));
        tables.extend(training.map(|t| (format!("variants.{name}.training"), t, TRAINING)));
    }
    tables.into_iter().find_map(|(name, t, keys)| {
        let key = keys.iter().find(|k| t.contains_key(**k))?;
        Some(format!("[{name}] {key}: moved to [split] (one split for every method of a run: `[split] {key} = …`)"))
    })
}

impl RunConfig {
    /// Reads and checks a config file; relative data paths are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError { path: path.display().to_string(), message };
        let text = crate::fsutil::read_capped_to_string(path, crate::fsutil::MAX_CONFIG_BYTES)
            .map_err(|e| error(crate::fsutil::reason(&e)))?;
        let mut config: RunConfig = toml::from_str(&text).map_err(|e| {
            // An unknown key that moved says where it went.
            let moved = toml::from_str::<toml::Table>(&text).ok().and_then(|table| moved_split_key(&table));
            error(moved.unwrap_or_else(|| e.to_string()))
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
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return Err(format!("name `{}` must be a plain folder name", self.name));
        }
        if self.model.prior.is_some() {
            return Err("[model] the faithful model reads no prior; give it to a [variants.<name>.model]".into());
        }
        check_data_sizes(&self.data)?;
        if let DataConfig::Survey { template, .. } = &self.data {
            template.parse::<gpo_core::template::Template>().map_err(|e| format!("[data] template: {e}"))?;
        }
        validate_method("", &self.model, &self.training)?;
        if self.variants.len() > MAX_VARIANTS {
            return Err(format!("at most {MAX_VARIANTS} [variants.<name>] tables, got {}", self.variants.len()));
        }
        for (name, variant) in &self.variants {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return Err(format!("[variants.{name}] a variant name is lower-case letters, digits and `_`"));
            }
            validate_method(&format!("variants.{name}."), &variant.model, &variant.training)?;
        }
        self.split.validate()?;
        let e = &self.evaluation;
        if e.splits.is_empty() || e.seeds.is_empty() {
            return Err("[evaluation] splits and seeds must not be empty".into());
        }
        for (field, len, max) in [
            ("splits", e.splits.len(), MAX_SPLITS),
            ("seeds", e.seeds.len(), MAX_SEEDS),
            ("sweep", e.sweep.len(), MAX_SWEEP),
        ] {
            if len > max {
                return Err(format!("[evaluation] {field} may hold at most {max} entries, got {len}"));
            }
        }
        at_most("evaluation", "context_questions", e.context_questions, MAX_QUESTIONS)?;
        if let Some(k) = e.sweep.iter().find(|&&k| k > MAX_QUESTIONS) {
            return Err(format!("[evaluation] sweep entries must be at most {MAX_QUESTIONS}, got {k}"));
        }
        if let Some(bad) = e.splits.iter().find(|s| !(**s > 0.0 && **s < 1.0)) {
            return Err(format!("[evaluation] split {bad} must be a fraction in (0, 1)"));
        }
        if e.protocols.is_empty() {
            return Err("[evaluation] protocols must not be empty".into());
        }
        if let Some(p) = e.protocols.iter().enumerate().find_map(|(i, p)| e.protocols[..i].contains(p).then_some(p)) {
            return Err(format!("[evaluation] protocol `{}` is listed twice", p.name()));
        }
        if !gpo_core::prior::TEMPERATURE_RANGE.contains(&e.knn_temperature) {
            return Err(format!(
                "[evaluation] knn_temperature must be between 1e-6 and 1e6, got {:e}",
                e.knn_temperature
            ));
        }
        if e.ridge_lambda.is_nan() || e.ridge_lambda <= 0.0 {
            return Err("[evaluation] ridge_lambda must be positive".into());
        }
        if let Some(n) = e.max_targets {
            if n == 0 {
                return Err("[evaluation] max_targets must be at least 1 (leave it out for every target)".into());
            }
            at_most("evaluation", "max_targets", n, MAX_QUESTIONS)?;
        }
        if let Some(llm) = &self.llm {
            if llm.methods.is_empty() {
                return Err("[llm] methods must name at least one of base, steered, fewshot".into());
            }
            if let Some(m) = llm.methods.iter().enumerate().find_map(|(i, m)| llm.methods[..i].contains(m).then_some(m))
            {
                return Err(format!("[llm] method `{}` is listed twice", m.id()));
            }
            if !matches!(self.data, DataConfig::Survey { .. }) {
                return Err("[llm] needs survey data: synthetic questions have no text to prompt with".into());
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
