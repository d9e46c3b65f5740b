//! Which of a group's questions are shown as context and which are predicted.

use gpo_core::rng::SplitMix64;

use super::{EvalError, fnv1a};
use crate::prior::{PriorKind, SurveyPrior, TargetPriors};
use crate::split::Split;
use crate::task::EmbeddedSurvey;

/// One group's evaluation episode: context questions (shown with the group's answers) and target
/// questions (predicted, then scored). Indices refer to the survey's questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalEpisode {
    /// Group index in the survey: the targets are scored against its answers.
    pub group: usize,
    /// The group whose answers to the context questions are shown: `group`, except in the
    /// swap test of whether a method reads the context ([`super::context::swapped`]).
    pub context_group: usize,
    /// Context question indices.
    pub context: Vec<usize>,
    /// Target question indices.
    pub targets: Vec<usize>,
}

impl EvalEpisode {
    /// `group`'s episode, shown its own answers to `context`.
    pub fn new(group: usize, context: Vec<usize>, targets: Vec<usize>) -> Self {
        Self { group, context_group: group, context, targets }
    }
}

/// Draws `k` context questions per group among `pool` (questions the group answered), all the
/// group's other `pool` questions becoming targets — docs/original.md §5.
///
/// When every group answered the same questions (OpinionQA) one context set is shared by all
/// groups, as the original; otherwise (GlobalOpinionQA) each group draws its own. Groups with at
/// most `k` questions in the pool get `k` capped so that one target remains.
pub fn draw_episodes(
    task: &EmbeddedSurvey,
    groups: &[usize],
    pool: &[usize],
    k: usize,
    rng: &mut SplitMix64,
) -> Vec<EvalEpisode> {
    let answered = |g: usize| -> Vec<usize> { pool.iter().copied().filter(|&q| task.answer(g, q).is_some()).collect() };
    let per_group: Vec<Vec<usize>> = groups.iter().map(|&g| answered(g)).collect();
    let shared = per_group.windows(2).all(|w| w[0] == w[1]);
    let mut shared_order = per_group.first().cloned().unwrap_or_default();
    rng.shuffle(&mut shared_order);
    groups
        .iter()
        .zip(per_group)
        .map(|(&group, questions)| {
            let order = if shared {
                shared_order.clone()
            } else {
                let mut own = questions;
                rng.shuffle(&mut own);
                own
            };
            let k = k.min(order.len().saturating_sub(1));
            let mut context = order[..k].to_vec();
            let mut targets = order[k..].to_vec();
            context.sort_unstable();
            targets.sort_unstable();
            EvalEpisode::new(group, context, targets)
        })
        .collect()
}

/// Episodes whose context (`k` questions per group) is drawn from `context_pool` as
/// [`draw_episodes`] draws it, and whose targets are `targets` (the group's answered ones among
/// them) when given, every other pool question otherwise. Groups left with no target are dropped.
pub fn draw_episodes_with_targets(
    task: &EmbeddedSurvey,
    groups: &[usize],
    context_pool: &[usize],
    targets: Option<&[usize]>,
    k: usize,
    rng: &mut SplitMix64,
) -> Vec<EvalEpisode> {
    let episodes = draw_episodes(task, groups, context_pool, k, rng);
    let Some(targets) = targets else { return episodes };
    episodes
        .into_iter()
        .map(|mut e| {
            e.targets = targets.iter().copied().filter(|&q| task.answer(e.group, q).is_some()).collect();
            e
        })
        .filter(|e| !e.targets.is_empty())
        .collect()
}

/// The held-out groups' episodes of a run for every number of context questions: what every
/// method of the run is scored on (docs/original.md §5).
#[derive(Debug, Clone, PartialEq)]
pub struct TestEpisodes {
    /// `(k, episodes)` for every number of context questions, ascending.
    pub per_k: Vec<(usize, Vec<EvalEpisode>)>,
    /// The held-out groups' questions no method is scored on: no population prior exists for
    /// them (no meta-training group answered them and no answered question has their option
    /// count; GlobalOpinionQA). Empty on OpinionQA.
    pub no_prior: Vec<usize>,
    /// The questions contexts are drawn from.
    pub context_pool: Vec<usize>,
}

impl TestEpisodes {
    /// Draws the test groups' episodes of `split` for every `k` of `ks`, with `seed`: every
    /// method sees exactly the same contexts (and both protocols the same draw for the same
    /// seed). The targets are the questions with a population prior, at most `max_targets` per
    /// group when given: the first in a fixed order of the questions, by the FNV-1a hash of their
    /// keys ([`fnv1a`]), the same in every run.
    pub fn draw(
        task: &EmbeddedSurvey,
        split: &Split,
        seed: u64,
        ks: &[usize],
        max_targets: Option<usize>,
    ) -> Result<Self, EvalError> {
        // Validation groups are meta-training data too.
        let meta_train = split.meta_train_groups();
        let defined = SurveyPrior::over(task, PriorKind::TrainMean, &meta_train, &split.seen_questions)?;
        let (context_pool, targets) = split.test_pools();
        let no_prior = targets
            .unwrap_or(context_pool)
            .iter()
            .copied()
            .filter(|&q| {
                !defined.is_defined(q, None, TargetPriors::Answered)
                    && split.test_groups.iter().any(|&g| task.answer(g, q).is_some())
            })
            .collect();
        let context_pool = defined.defined_in(context_pool);
        let targets = targets.map(|t| defined.defined_in(t));
        let per_k = ks
            .iter()
            .map(|&k| {
                let mut rng = SplitMix64::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(k as u64));
                let mut episodes = draw_episodes_with_targets(
                    task,
                    &split.test_groups,
                    &context_pool,
                    targets.as_deref(),
                    k,
                    &mut rng,
                );
                cut_targets(task, &mut episodes, max_targets);
                (k, episodes)
            })
            .collect();
        Ok(Self { per_k, no_prior, context_pool })
    }

    /// The meta-training groups' episodes with `k` context questions, drawn as [`TestEpisodes::draw`]
    /// draws the test groups' (the same generator: where every group answered the same
    /// questions, the same context questions; the same cut of the targets): the training
    /// groups' (context and targets among the training questions) and the validation groups'
    /// (from [`Split::validation_pools`]). What `lm_incontext_ft` learns from and is selected on.
    pub fn meta_training(
        task: &EmbeddedSurvey,
        split: &Split,
        seed: u64,
        k: usize,
        max_targets: Option<usize>,
    ) -> (Vec<EvalEpisode>, Vec<EvalEpisode>) {
        let rng = || SplitMix64::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(k as u64));
        let mut train =
            draw_episodes_with_targets(task, &split.train_groups, &split.train_questions, None, k, &mut rng());
        let (pool, targets) = split.validation_pools();
        let mut validation = draw_episodes_with_targets(task, &split.validation_groups, pool, targets, k, &mut rng());
        cut_targets(task, &mut train, max_targets);
        cut_targets(task, &mut validation, max_targets);
        (train, validation)
    }

    /// The episodes with `k` context questions (empty when `k` was not drawn).
    pub fn at(&self, k: usize) -> &[EvalEpisode] {
        self.per_k.iter().find(|(kk, _)| *kk == k).map_or(&[], |(_, e)| e)
    }
}

/// Keeps at most `max` targets per episode (all when `None`): the first in a fixed order of the
/// questions, by the FNV-1a hash of their keys ([`fnv1a`]), the same in every run.
fn cut_targets(task: &EmbeddedSurvey, episodes: &mut [EvalEpisode], max: Option<usize>) {
    let Some(max) = max else { return };
    for e in episodes {
        e.targets.sort_by_key(|&q| (fnv1a(&task.survey.questions[q].key), q));
        e.targets.truncate(max);
        e.targets.sort_unstable();
    }
}
