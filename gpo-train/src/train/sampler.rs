//! Training episodes: which questions of each training group are context and which are targets
//! at each update (GPO-SPEC §4).

use gpo_core::rng::SplitMix64;
use gpo_core::{BatchError, Episode};
use serde::{Deserialize, Serialize};

use crate::task::EmbeddedSurvey;

/// How the numbers of context and target questions are drawn at each update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sampling {
    /// The official code: `n_ctx ~ U[min_context, max_context]` questions, then
    /// `n_tar ~ U[min_target, min(max_target, n_q − n_ctx)]`, shared by the whole batch.
    Code {
        /// Fewest context questions.
        min_context: usize,
        /// Most context questions.
        max_context: usize,
        /// Fewest target questions.
        min_target: usize,
        /// Most target questions.
        max_target: usize,
    },
    /// The paper's Algorithm 1: `m ~ U[1, n_q − 1]` context questions, all others targets.
    Paper,
}

impl Default for Sampling {
    fn default() -> Self {
        Self::Code { min_context: 10, max_context: 100, min_target: 10, max_target: 100 }
    }
}

/// Draws training episodes for a fixed set of groups and questions.
pub struct EpisodeSampler<'a> {
    task: &'a EmbeddedSurvey,
    groups: Vec<usize>,
    questions: Vec<usize>,
    sampling: Sampling,
}

impl<'a> EpisodeSampler<'a> {
    /// A sampler over `groups`, using only `questions`.
    pub fn new(task: &'a EmbeddedSurvey, groups: &[usize], questions: &[usize], sampling: Sampling) -> Self {
        Self { task, groups: groups.to_vec(), questions: questions.to_vec(), sampling }
    }

    /// One batch: an episode per group. One permutation of the questions is drawn for the whole
    /// batch (as the original for OpinionQA, where every group shares the question set); each
    /// group keeps the questions it answered, in that order, and the counts are capped per group
    /// so that every episode has at least one context and one target question.
    pub fn sample(&self, rng: &mut SplitMix64) -> Result<Vec<Episode>, BatchError> {
        let mut order = self.questions.clone();
        rng.shuffle(&mut order);
        let n_q = order.len();
        let (n_context, n_target) = match self.sampling {
            Sampling::Code { min_context, max_context, min_target, max_target } => {
                let max_context = max_context.min(n_q.saturating_sub(min_target)).max(min_context.min(n_q));
                let n_context = rng.range_inclusive(min_context.min(max_context), max_context);
                let max_target = max_target.min(n_q.saturating_sub(n_context));
                (n_context, rng.range_inclusive(min_target.min(max_target), max_target))
            }
            Sampling::Paper => {
                let n_context = rng.range_inclusive(1, n_q.saturating_sub(1).max(1));
                (n_context, n_q)
            }
        };
        self.groups
            .iter()
            .map(|&group| {
                let answered: Vec<usize> =
                    order.iter().copied().filter(|&q| self.task.answer(group, q).is_some()).collect();
                let n_context = n_context.min(answered.len().saturating_sub(1));
                let n_target = n_target.min(answered.len() - n_context);
                episode(self.task, group, &answered[..n_context], &answered[n_context..n_context + n_target], true)
            })
            .collect()
    }
}

/// Builds a model episode for `group` from question indices. Target answers are included when
/// `with_target_answers` (training: they enter the loss; never the model's input).
pub fn episode(
    task: &EmbeddedSurvey,
    group: usize,
    context: &[usize],
    targets: &[usize],
    with_target_answers: bool,
) -> Result<Episode, BatchError> {
    let mut episode = Episode::new(task.dim)?;
    let as_f32 =
        |q: usize| -> Vec<f32> { task.answer(group, q).unwrap_or_default().iter().map(|&p| p as f32).collect() };
    for &q in context {
        episode.push_context(&task.embeddings[q], &as_f32(q))?;
    }
    for &q in targets {
        let answer = with_target_answers.then(|| as_f32(q));
        episode.push_target(&task.embeddings[q], answer.as_deref())?;
    }
    Ok(episode)
}
