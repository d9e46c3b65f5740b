//! Evaluation: predictors (GPO and the baselines) on the same episodes, scored with the survey's
//! alignment metric, micro- and macro-averaged (docs/original.md §5).

mod baselines;
pub mod context;
mod episodes;
mod gpo;
mod llm;
mod llm_incontext;
mod llm_trained;

pub use baselines::{
    BaselineOptions, KnnGroups, NearestQuestion, RidgePopulation, RidgeRewardModel, TrainGroupMean, Uniform, baselines,
};
pub use episodes::{EvalEpisode, TestEpisodes, draw_episodes, draw_episodes_with_targets};
pub use gpo::GpoPredictor;
pub use llm::{
    AnswersFileError, LlmAnswers, LlmMethodRun, LlmOptions, LlmPredictor, LlmProgress, LlmPrompting, LlmRun,
    LlmRunEpisodes, ask_all, fnv1a, split_fingerprint, trained_fingerprint,
};

use std::collections::BTreeMap;

use gpo_core::metrics::ScoreTable;
use serde::{Deserialize, Serialize};

use crate::method::Method;
use crate::task::EmbeddedSurvey;

/// Per episode, per target question, a predicted distribution over the question's options.
pub type Predictions = Vec<Vec<Vec<f64>>>;

/// Why a predictor failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model could not take the episode.
    #[error("cannot build a model batch: {0}")]
    Batch(gpo_core::BatchError),
    /// The model could not predict.
    #[error("prediction: {0}")]
    Predict(gpo_core::PredictError),
    /// A population prior could not be computed.
    #[error("population prior: {0}")]
    Prior(gpo_core::PriorError),
    /// A language model could not answer.
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmError),
    /// A baseline cannot predict these episodes.
    #[error("{0}")]
    Baseline(String),
    /// A language model's answers file.
    #[error("{path}: {error}")]
    AnswersFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        error: AnswersFileError,
    },
    /// Reading or writing a file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause (in the message, not a `source`).
        error: std::io::Error,
    },
}

gpo_core::cause_in_message!(EvalError {
    Batch(gpo_core::BatchError),
    Predict(gpo_core::PredictError),
    Prior(gpo_core::PriorError),
});

/// Anything that predicts a group's answer distributions from its context answers.
pub trait Predictor {
    /// The method it is, as results name it.
    fn name(&self) -> Method;

    /// Predictions for every target question of every episode.
    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError>;
}

/// Scores predictions: one table row per episode, one item per scorable target question.
pub fn score(task: &EmbeddedSurvey, episodes: &[EvalEpisode], predictions: &Predictions) -> ScoreTable {
    let mut table = ScoreTable::new(episodes.len());
    for (row, (episode, predicted)) in episodes.iter().zip(predictions).enumerate() {
        for (&question, p) in episode.targets.iter().zip(predicted) {
            if let Some(truth) = task.answer(episode.group, question) {
                table.record(row, task.score(question, p, truth));
            }
        }
    }
    table
}

/// One method's score at one number of context questions, for one (split, seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodScore {
    /// The method.
    pub method: Method,
    /// Context questions per test group.
    pub k: usize,
    /// Mean over all (group, question) items, as the original.
    pub micro: Option<f64>,
    /// Mean of the per-group means.
    #[serde(rename = "macro")]
    pub macro_average: Option<f64>,
    /// Mean per test group.
    pub per_group: BTreeMap<String, f64>,
}

/// Scores every method of `methods` on the episodes of every k, and measures at the `headline` k
/// whether it reads the context ([`context::measure`]); the methods of `headline_only` (the LLM
/// baselines, whose prompts are the costly part) are scored at the headline k only, and not
/// measured.
pub fn score_methods(
    task: &EmbeddedSurvey,
    episodes: &TestEpisodes,
    headline: usize,
    methods: &[&dyn Predictor],
    headline_only: &[&dyn Predictor],
) -> Result<(Vec<MethodScore>, Vec<context::ContextUse>), EvalError> {
    let mut scores = Vec::new();
    let mut context_use = Vec::new();
    for (k, episodes_k) in &episodes.per_k {
        let at_headline = *k == headline;
        let others = headline_only.iter().filter(|_| at_headline);
        for (i, method) in methods.iter().chain(others).enumerate() {
            let predictions = method.predict(task, episodes_k)?;
            if at_headline && i < methods.len() {
                let pool = &episodes.context_pool;
                context_use.push(context::measure(task, *method, episodes_k, &predictions, pool, *k)?);
            }
            let table = score(task, episodes_k, &predictions);
            let per_group = episodes_k
                .iter()
                .zip(table.group_means())
                .filter_map(|(e, m)| Some((task.survey.groups[e.group].name.clone(), m?)))
                .collect();
            scores.push(MethodScore {
                method: method.name(),
                k: *k,
                micro: table.micro(),
                macro_average: table.macro_average(),
                per_group,
            });
        }
    }
    Ok((scores, context_use))
}

/// Normalises non-negative scores into a distribution; uniform when they sum to zero.
pub(crate) fn normalise(scores: &mut [f64]) {
    let sum: f64 = scores.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        scores.iter_mut().for_each(|s| *s /= sum);
    } else {
        let uniform = 1.0 / scores.len().max(1) as f64;
        scores.iter_mut().for_each(|s| *s = uniform);
    }
}
