//! Which of a group's questions are shown as context and which are predicted.

use gpo_core::rng::SplitMix64;

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
