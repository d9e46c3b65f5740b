//! Training episodes: which questions of each training group are context and which are targets
//! at each update (docs/original.md §4).

use gpo_core::rng::SplitMix64;
use gpo_core::{Episode, Question};
use serde::{Deserialize, Serialize};

use crate::prior::{SurveyPrior, TargetPriors};
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
    groups_per_update: Option<usize>,
    questions: Vec<usize>,
    sampling: Sampling,
    /// The prior the episodes carry and which priors its targets get.
    prior: Option<(&'a SurveyPrior, TargetPriors)>,
    /// With a prior: per survey group, whether each question has a prior for it (its own answers
    /// left out; for targets as new questions, as a new one too), computed once here rather than
    /// at every update.
    usable: Option<Vec<Vec<bool>>>,
}

impl<'a> EpisodeSampler<'a> {
    /// A sampler over `groups`, using only `questions`; episodes carry `prior` where given, the
    /// targets' as its [`TargetPriors`] say (with [`TargetPriors::AsNew`], questions without such
    /// a prior for a group are left out of its episodes).
    pub fn new(
        task: &'a EmbeddedSurvey,
        groups: &[usize],
        questions: &[usize],
        sampling: Sampling,
        prior: Option<(&'a SurveyPrior, TargetPriors)>,
    ) -> Self {
        let usable = prior.map(|(p, how)| {
            (0..task.n_groups())
                .map(|g| {
                    let mut row = vec![false; task.survey.questions.len()];
                    if groups.contains(&g) {
                        for &q in questions.iter().filter(|&&q| task.answer(g, q).is_some()) {
                            row[q] = p.is_defined(q, Some(g), TargetPriors::Answered)
                                && (how == TargetPriors::Answered || p.is_defined(q, Some(g), how));
                        }
                    }
                    row
                })
                .collect()
        });
        Self {
            task,
            groups: groups.to_vec(),
            groups_per_update: None,
            questions: questions.to_vec(),
            sampling,
            prior,
            usable,
        }
    }

    /// Each batch holds `n` of the groups, drawn anew for every batch, instead of all of them (the
    /// original); `None` (or `n` not below the number of groups) keeps all.
    pub fn with_groups_per_update(mut self, n: Option<usize>) -> Self {
        self.groups_per_update = n;
        self
    }

    /// One batch: an episode per group (per drawn group with `groups_per_update`). One
    /// permutation of the questions is drawn for the whole batch (as the original for OpinionQA,
    /// where every group shares the question set); each group keeps the questions it answered, in
    /// that order, and the counts are capped per group so that every episode has at least one
    /// context and one target question.
    pub fn sample(&self, rng: &mut SplitMix64) -> Result<Vec<Episode>, super::TrainError> {
        let groups = match self.groups_per_update {
            Some(n) if n < self.groups.len() => {
                let mut drawn = self.groups.clone();
                rng.shuffle(&mut drawn);
                drawn.truncate(n.max(1));
                drawn.sort_unstable();
                drawn
            }
            _ => self.groups.clone(),
        };
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
        groups
            .iter()
            .map(|&group| {
                // A prior variant only sees questions that have a prior for this group (its own
                // answers left out): all of them on OpinionQA, not on GlobalOpinionQA.
                let answered: Vec<usize> = order
                    .iter()
                    .copied()
                    .filter(|&q| self.task.answer(group, q).is_some())
                    .filter(|&q| self.usable.as_ref().is_none_or(|u| u[group][q]))
                    .collect();
                let n_context = n_context.min(answered.len().saturating_sub(1));
                let n_target = n_target.min(answered.len() - n_context);
                let (context, targets) = (&answered[..n_context], &answered[n_context..n_context + n_target]);
                episode(self.task, group, context, targets, self.prior)
            })
            .collect()
    }
}

/// Builds a model episode for `group` from question indices, with the group's answers as the
/// training truth of the targets; every question carries its `prior` distribution (the group
/// itself left out of it) where one is given, the targets' as its [`TargetPriors`] say.
pub fn episode(
    task: &EmbeddedSurvey,
    group: usize,
    context: &[usize],
    targets: &[usize],
    prior: Option<(&SurveyPrior, TargetPriors)>,
) -> Result<Episode, super::TrainError> {
    let mut episode = Episode::new(task.dim)?;
    let to_f32 = |p: &[f64]| -> Vec<f32> { p.iter().map(|&v| v as f32).collect() };
    let answer = |q: usize| to_f32(task.answer(group, q).unwrap_or_default());
    let questions: Vec<usize> = context.iter().chain(targets).copied().collect();
    let priors: Vec<Option<Vec<f32>>> = match prior {
        Some((prior, how)) => {
            prior.episode_priors(task, group, context, targets, how)?.iter().map(|p| Some(to_f32(p))).collect()
        }
        None => vec![None; questions.len()],
    };
    for (i, &q) in questions.iter().enumerate() {
        let truth = answer(q);
        let mut question = Question::new(&task.embeddings[q]).answer(&truth);
        if let Some(p) = &priors[i] {
            question = question.prior(p);
        }
        if i < context.len() {
            episode.push_context(question)?;
        } else {
            episode.push_target(question)?;
        }
    }
    Ok(episode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{SyntheticSpec, synthetic_survey};

    #[test]
    fn groups_per_update_draws_that_many_groups_per_batch() {
        let task =
            synthetic_survey(SyntheticSpec { groups: 8, questions: 40, dim: 4, clusters: 2, sharpness: 3.0, seed: 1 });
        let groups: Vec<usize> = (0..8).collect();
        let questions: Vec<usize> = (0..40).collect();
        let sampling = Sampling::Code { min_context: 3, max_context: 6, min_target: 5, max_target: 10 };
        let all = EpisodeSampler::new(&task, &groups, &questions, sampling, None);
        assert_eq!(all.sample(&mut SplitMix64::new(0)).unwrap().len(), 8, "all groups by default");
        for n in [1, 3] {
            let sampler =
                EpisodeSampler::new(&task, &groups, &questions, sampling, None).with_groups_per_update(Some(n));
            let shapes = |seed: u64| -> Vec<Vec<(usize, usize)>> {
                let mut rng = SplitMix64::new(seed);
                (0..5)
                    .map(|_| {
                        let batch = sampler.sample(&mut rng).unwrap();
                        assert_eq!(batch.len(), n);
                        batch.iter().map(|e| (e.n_context_tokens(), e.n_target_tokens())).collect()
                    })
                    .collect()
            };
            assert_eq!(shapes(7), shapes(7), "deterministic in the seed");
        }
        // As many groups as there are (or more) is every group.
        let sampler = EpisodeSampler::new(&task, &groups, &questions, sampling, None).with_groups_per_update(Some(9));
        assert_eq!(sampler.sample(&mut SplitMix64::new(0)).unwrap().len(), 8);
    }
}
