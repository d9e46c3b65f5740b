//! Evaluation: predictors (GPO and the baselines) on the same episodes, scored with the survey's
//! alignment metric, micro- and macro-averaged (docs/original.md §5).

mod baselines;
pub mod context;
mod episodes;
mod gpo;
mod llm;

pub use baselines::{KnnGroups, NearestQuestion, RidgePopulation, RidgeRewardModel, TrainGroupMean, Uniform};
pub use episodes::{EvalEpisode, draw_episodes, draw_episodes_with_targets};
pub use gpo::GpoPredictor;
pub use llm::{LlmAnswers, LlmMethodRun, LlmPredictor, LlmPrompting, LlmRun, fnv1a};

use gpo_core::metrics::ScoreTable;

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
}

gpo_core::cause_in_message!(EvalError {
    Batch(gpo_core::BatchError),
    Predict(gpo_core::PredictError),
    Prior(gpo_core::PriorError),
});

/// Anything that predicts a group's answer distributions from its context answers.
pub trait Predictor {
    /// Short method name used in results (`gpo`, `uniform`, …).
    fn name(&self) -> String;

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
