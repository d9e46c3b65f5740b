//! Results of an experiment: `results.json`, the paper-style `report.md` and the SVG plots.

mod markdown;
pub mod svg;

pub use markdown::write_report;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

use crate::config::RunConfig;
pub use crate::eval::context::ContextUse;
pub use crate::eval::{LlmMethodRun, LlmRun, MethodScore};
use crate::method::Method;
use crate::prior::RuleSelection;
use crate::protocol::Protocol;
use crate::train::CurvePoint;

/// One GPO method's training in one (split, seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// The faithful `gpo` or a variant.
    pub method: Method,
    /// Update of the kept model.
    pub best_step: usize,
    /// Its validation score.
    pub validation_score: Option<f64>,
    /// Training time in this process, seconds.
    pub train_seconds: f64,
    /// Loss and validation curve.
    pub curve: Vec<CurvePoint>,
}

/// One (protocol, split, seed): the trained GPO methods and the evaluation of every method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// What the test measures (`groups` when absent: files written before protocols).
    #[serde(default)]
    pub protocol: Protocol,
    /// Meta-training fraction of the groups.
    pub train_fraction: f64,
    /// Seed of split, initialisation, sampling and contexts.
    pub seed: u64,
    /// Groups that trained the model.
    pub train_groups: Vec<String>,
    /// Questions held out as new (the test targets of the `questions` protocol; empty otherwise).
    #[serde(default)]
    pub new_questions: Vec<String>,
    /// Questions of the held-out groups that no method was scored on, because the population
    /// prior does not exist for them (no meta-training group answered them and no answered
    /// question has their option count; GlobalOpinionQA). Empty on OpinionQA.
    #[serde(default)]
    pub no_prior_questions: Vec<String>,
    /// Groups scored for model selection.
    pub validation_groups: Vec<String>,
    /// Held-out groups.
    pub test_groups: Vec<String>,
    /// The GPO methods trained, in config order.
    pub models: Vec<TrainedModel>,
    /// The GPO method with the best validation score, whose test scores `selected_gpo` repeats.
    #[serde(default)]
    pub selected: Option<Method>,
    /// Every method at every k.
    pub scores: Vec<MethodScore>,
    /// Whether each method (not the LLM baselines) reads the context, at the headline k
    /// (`eval::context`; absent in results written before it).
    #[serde(default)]
    pub context_use: Vec<ContextUse>,
    /// The rule for new questions' priors the run selected, with every candidate's score
    /// (absent in results written before it: the mean of the 5 nearest questions).
    #[serde(default)]
    pub neighbour_rule: Option<RuleSelection>,
}

/// Mean ± std over seeds of one method at one (protocol, split, k).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryEntry {
    /// What the test measures (`groups` when absent).
    #[serde(default)]
    pub protocol: Protocol,
    /// Meta-training fraction.
    pub train_fraction: f64,
    /// The method.
    pub method: Method,
    /// Context questions.
    pub k: usize,
    /// Mean of the seeds' micro-averaged scores.
    pub mean: f64,
    /// Population standard deviation over seeds.
    pub std: f64,
    /// Number of seeds.
    pub seeds: usize,
}

/// Everything `gpo run` measured (`results.json`).
///
/// Written with one more key than its fields, `margins` ([`margins`] of `config` and `runs`,
/// derived on every write); reading ignores it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Results {
    /// Run name.
    pub name: String,
    /// Dataset name.
    pub dataset: String,
    /// Metric (`wasserstein` or `jensen_shannon`).
    pub metric: crate::data::Metric,
    /// Groups in the data.
    pub n_groups: usize,
    /// Questions in the data.
    pub n_questions: usize,
    /// Embedding dimension.
    pub embedding_dim: usize,
    /// The configuration that produced these results.
    pub config: RunConfig,
    /// One entry per (split, seed).
    pub runs: Vec<RunResult>,
    /// Headline: every (split, method) at the configured number of context questions.
    pub summary: Vec<SummaryEntry>,
    /// Every (split, method, k) of the sweep.
    pub sweep: Vec<SummaryEntry>,
    /// The LLM baselines' model and cost, when the run had them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmRun>,
}

/// Aggregates the runs' micro-averaged scores over seeds for every (protocol, split, method, k).
pub fn summarise(runs: &[RunResult]) -> Vec<SummaryEntry> {
    type Key = (Protocol, u64, Method, usize);
    let mut groups: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    let mut order: Vec<Key> = Vec::new();
    for run in runs {
        for score in &run.scores {
            let key = (run.protocol, run.train_fraction.to_bits(), score.method.clone(), score.k);
            if !groups.contains_key(&key) {
                order.push(key.clone());
            }
            groups.entry(key).or_default().extend(score.micro);
        }
    }
    order.sort_by(|a, b| a.0.cmp(&b.0).then(f64::from_bits(a.1).total_cmp(&f64::from_bits(b.1))).then(a.3.cmp(&b.3)));
    order
        .into_iter()
        .filter_map(|key| {
            let values = &groups[&key];
            Some(SummaryEntry {
                protocol: key.0,
                train_fraction: f64::from_bits(key.1),
                method: key.2,
                k: key.3,
                mean: gpo_core::metrics::mean(values)?,
                std: gpo_core::metrics::std_dev(values)?,
                seeds: values.len(),
            })
        })
        .collect()
}

/// What a prior-reading GPO variant adds over its prior alone at one (split, k): the mean over
/// seeds of the paired per-seed difference `variant − prior baseline` (same run: same split, seed,
/// test groups and contexts) and its population standard deviation over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarginEntry {
    /// What the test measures.
    #[serde(default)]
    pub protocol: Protocol,
    /// Meta-training fraction.
    pub train_fraction: f64,
    /// The variant (`gpo_<variant>`).
    pub method: Method,
    /// The baseline that is its prior alone (`train_mean` or `knn_groups`).
    pub prior_method: Method,
    /// Context questions.
    pub k: usize,
    /// Mean over seeds of the paired difference.
    pub mean: f64,
    /// Population standard deviation over seeds of the paired difference.
    pub std: f64,
    /// Seeds where both were scored.
    pub seeds: usize,
}

/// The GPO variants of `config` that read a prior, with their prior's baseline under
/// `protocol`, in config order.
pub fn prior_variants(config: &RunConfig, protocol: Protocol) -> Vec<(Method, Method)> {
    config
        .variants
        .iter()
        .filter_map(|(name, v)| {
            let prior = Method::prior_baseline(v.model.prior.as_ref()?, protocol);
            Some((Method::Variant(name.clone()), prior))
        })
        .collect()
}

/// The margin of every prior-reading variant over its prior alone, per protocol and split, at
/// the headline number of context questions; a (protocol, split, variant) where no seed scored
/// both is left out.
pub fn margins(config: &RunConfig, runs: &[RunResult]) -> Vec<MarginEntry> {
    let k = config.evaluation.context_questions;
    let mut cells: Vec<(Protocol, f64)> = runs.iter().map(|r| (r.protocol, r.train_fraction)).collect();
    cells.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    cells.dedup();
    let mut entries = Vec::new();
    for (protocol, split) in cells {
        for (method, prior) in &prior_variants(config, protocol) {
            let differences: Vec<f64> = runs
                .iter()
                .filter(|r| r.protocol == protocol && r.train_fraction == split)
                .filter_map(|r| {
                    // The first score of a method at k, as the summary's tables read them.
                    let micro = |m: &Method| r.scores.iter().find(|s| &s.method == m && s.k == k)?.micro;
                    Some(micro(method)? - micro(prior)?)
                })
                .collect();
            let (Some(mean), Some(std)) =
                (gpo_core::metrics::mean(&differences), gpo_core::metrics::std_dev(&differences))
            else {
                continue;
            };
            entries.push(MarginEntry {
                protocol,
                train_fraction: split,
                method: method.clone(),
                prior_method: prior.clone(),
                k,
                mean,
                std,
                seeds: differences.len(),
            });
        }
    }
    entries
}

impl Serialize for Results {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The fields in their order, then `margins`.
        #[derive(Serialize)]
        struct Json<'a> {
            name: &'a String,
            dataset: &'a String,
            metric: &'a crate::data::Metric,
            n_groups: usize,
            n_questions: usize,
            embedding_dim: usize,
            config: &'a RunConfig,
            runs: &'a [RunResult],
            summary: &'a [SummaryEntry],
            sweep: &'a [SummaryEntry],
            margins: Vec<MarginEntry>,
            #[serde(skip_serializing_if = "Option::is_none")]
            llm: &'a Option<LlmRun>,
        }
        // Exhaustive: a new field of `Results` does not compile until it is written here.
        let Results { name, dataset, metric, n_groups, n_questions, embedding_dim, config, runs, summary, sweep, llm } =
            self;
        Json {
            name,
            dataset,
            metric,
            n_groups: *n_groups,
            n_questions: *n_questions,
            embedding_dim: *embedding_dim,
            config,
            runs,
            summary,
            sweep,
            margins: margins(config, runs),
            llm,
        }
        .serialize(serializer)
    }
}
