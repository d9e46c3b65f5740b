//! A survey together with the embedding of each of its (question, option) texts: the input of
//! training, evaluation and every baseline.

use crate::data::{Metric, Survey};

/// Why embeddings do not fit a survey.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// Not one embedding block per question.
    #[error("{found} embedding blocks for {expected} questions")]
    QuestionCount {
        /// Questions in the survey.
        expected: usize,
        /// Blocks given.
        found: usize,
    },
    /// A question's block is not `options × dim` long.
    #[error("question `{key}`: {len} embedding values for {options} options of dimension {dim}")]
    BlockLength {
        /// Question key.
        key: String,
        /// Values given.
        len: usize,
        /// Options of the question.
        options: usize,
        /// Embedding dimension.
        dim: usize,
    },
    /// The dimension is zero.
    #[error("embedding dimension must be positive")]
    ZeroDimension,
}

/// A survey and its option embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedSurvey {
    /// Questions, groups and answers.
    pub survey: Survey,
    /// Per question, its options' embeddings, row-major `options × dim`.
    pub embeddings: Vec<Vec<f32>>,
    /// Embedding dimension.
    pub dim: usize,
}

impl EmbeddedSurvey {
    /// Pairs a survey with its embeddings, checking that every block fits its question.
    pub fn new(survey: Survey, embeddings: Vec<Vec<f32>>, dim: usize) -> Result<Self, TaskError> {
        if dim == 0 {
            return Err(TaskError::ZeroDimension);
        }
        if embeddings.len() != survey.questions.len() {
            return Err(TaskError::QuestionCount { expected: survey.questions.len(), found: embeddings.len() });
        }
        for (question, block) in survey.questions.iter().zip(&embeddings) {
            if block.len() != question.options.len() * dim {
                return Err(TaskError::BlockLength {
                    key: question.key.clone(),
                    len: block.len(),
                    options: question.options.len(),
                    dim,
                });
            }
        }
        Ok(Self { survey, embeddings, dim })
    }

    /// How predictions are scored.
    pub fn metric(&self) -> Metric {
        self.survey.metric
    }

    /// Number of groups.
    pub fn n_groups(&self) -> usize {
        self.survey.groups.len()
    }

    /// Questions answered by `group`, in index order.
    pub fn questions_of(&self, group: usize) -> Vec<usize> {
        self.survey.groups[group].answers.keys().copied().collect()
    }

    /// `group`'s distribution on `question`, if it answered it.
    pub fn answer(&self, group: usize, question: usize) -> Option<&[f64]> {
        self.survey.groups[group].answers.get(&question).map(Vec::as_slice)
    }

    /// Scores a predicted distribution against the truth with the survey's metric (`None` when
    /// the item cannot be scored, e.g. an ordinal span of zero).
    pub fn score(&self, question: usize, predicted: &[f64], truth: &[f64]) -> Option<f64> {
        match self.metric() {
            Metric::Wasserstein => {
                gpo_core::metrics::wasserstein_alignment(&self.survey.questions[question].ordinal, predicted, truth)
            }
            Metric::JensenShannon => gpo_core::metrics::js_alignment(predicted, truth),
        }
    }
}
