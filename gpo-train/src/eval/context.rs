//! Whether a method reads the few-shot context: measured on the held-out groups' episodes.
//!
//! * **Swap sensitivity** ([`swapped`]): each held-out group is shown another held-out group's
//!   answers to the same context questions; how far its predictions move (mean total variation,
//!   [`mean_total_variation`]) and how much its alignment with its own answers falls.
//! * **Group contrast** ([`contrast`]): over pairs of held-out groups and the targets both are
//!   scored on, the mean total variation between their predicted distributions over the mean total
//!   variation between their true ones: 1 when the predictions differ between groups as much as
//!   the groups do, 0 when every group gets the same prediction.
//! * **Related context** ([`related_episodes`]): each target gets its own context, the `k`
//!   questions of the context pool nearest to it in embedding space (what an app asking about a
//!   new question gives), instead of one random draw.

use gpo_core::prior::{question_vector, rank_by_similarity};
use serde::{Deserialize, Serialize};

use super::{EvalEpisode, EvalError, Predictions, Predictor, score};
use crate::method::Method;
use crate::task::EmbeddedSurvey;

/// `½ Σ |p − q|`, the total variation distance of two distributions over the same options.
pub fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// The episodes with each group shown the next group's answers (in episode order, cyclically) to
/// those of its context questions that the next group answered; scored against its own answers as
/// before. Empty with fewer than two episodes.
pub fn swapped(task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Vec<EvalEpisode> {
    if episodes.len() < 2 {
        return Vec::new();
    }
    episodes
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let other = episodes[(i + 1) % episodes.len()].group;
            let context = e.context.iter().copied().filter(|&q| task.answer(other, q).is_some()).collect();
            EvalEpisode { group: e.group, context_group: other, context, targets: e.targets.clone() }
        })
        .collect()
}

/// The mean total variation between paired predictions (same episodes, same targets), over every
/// target; `None` when there is none.
pub fn mean_total_variation(a: &Predictions, b: &Predictions) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            sum += total_variation(p, q);
            n += 1;
        }
    }
    (n > 0).then(|| sum / n as f64)
}

/// Predicted over true group contrast: over every pair of episodes (groups) and every target both
/// have and both groups answered, `Σ TV(predicted) / Σ TV(true)`. `None` without such a pair, or
/// when the true distributions never differ.
pub fn contrast(task: &EmbeddedSurvey, episodes: &[EvalEpisode], predictions: &Predictions) -> Option<f64> {
    let (mut predicted, mut truth) = (0.0, 0.0);
    for i in 0..episodes.len() {
        for j in i + 1..episodes.len() {
            let (a, b) = (&episodes[i], &episodes[j]);
            for (ti, &q) in a.targets.iter().enumerate() {
                let Some(tj) = b.targets.iter().position(|&t| t == q) else { continue };
                let (Some(ta), Some(tb)) = (task.answer(a.group, q), task.answer(b.group, q)) else { continue };
                predicted += total_variation(&predictions[i][ti], &predictions[j][tj]);
                truth += total_variation(ta, tb);
            }
        }
    }
    (truth > 0.0).then(|| predicted / truth)
}

/// Targets per held-out group in the related-context setting (spread evenly over its targets):
/// each is an episode of its own, so all of them would multiply the evaluation's cost.
pub const RELATED_TARGETS: usize = 100;

/// Positions of at most `max` of `n` targets, spread evenly (every one when `n ≤ max`).
fn spread(n: usize, max: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by(n.div_ceil(max.max(1)).max(1))
}

/// One episode per (episode, target) for at most `max_targets` targets of each episode (spread
/// evenly): the target alone, with the `k` questions of `pool` nearest to it (by the similarity
/// rule of gpo-core's prior: unit mean option embeddings) that the group answered, the target
/// itself excluded.
pub fn related_episodes(
    task: &EmbeddedSurvey,
    episodes: &[EvalEpisode],
    pool: &[usize],
    k: usize,
    max_targets: usize,
) -> Vec<EvalEpisode> {
    let vector = |q: usize| question_vector(&task.embeddings[q], task.dim);
    let pool_vectors: Vec<Vec<f32>> = pool.iter().map(|&q| vector(q)).collect();
    let mut out = Vec::new();
    for e in episodes {
        for target in spread(e.targets.len(), max_targets).map(|i| e.targets[i]) {
            let candidates = pool
                .iter()
                .zip(&pool_vectors)
                .filter(|&(&q, _)| q != target && task.answer(e.group, q).is_some())
                .map(|(&q, v)| (q, v.as_slice()));
            let mut context: Vec<usize> = rank_by_similarity(&vector(target), candidates).into_iter().take(k).collect();
            context.sort_unstable();
            out.push(EvalEpisode::new(e.group, context, vec![target]));
        }
    }
    out
}

/// Whether one method reads the context, at one number of context questions `k` of one (split,
/// seed): the measurements of this module on the held-out groups' episodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextUse {
    /// The method.
    pub method: Method,
    /// Context questions.
    pub k: usize,
    /// Micro-averaged alignment with the random context, on the related setting's targets.
    pub random: Option<f64>,
    /// Micro-averaged alignment with each target's related context (its `k` nearest questions).
    pub related: Option<f64>,
    /// Mean total variation between the predictions with the group's own context answers and
    /// with another held-out group's.
    pub swap_tv: Option<f64>,
    /// Alignment with the own context answers minus with another group's (micro, all targets).
    pub swap_drop: Option<f64>,
    /// Predicted over true contrast between held-out groups (1: as different as the groups).
    pub contrast: Option<f64>,
    /// The same with each target's related context (absent in results written before it).
    #[serde(default)]
    pub related_contrast: Option<f64>,
}

/// Measures `method` on `episodes` (random context, `k` questions each), whose `predictions` it
/// made: swap sensitivity, group contrast, and the related setting over `pool` (the questions
/// contexts are drawn from).
pub fn measure(
    task: &EmbeddedSurvey,
    method: &dyn Predictor,
    episodes: &[EvalEpisode],
    predictions: &Predictions,
    pool: &[usize],
    k: usize,
) -> Result<ContextUse, EvalError> {
    let micro = score(task, episodes, predictions).micro();
    let swapped_episodes = swapped(task, episodes);
    let (swap_tv, swap_drop) = if swapped_episodes.is_empty() {
        (None, None)
    } else {
        let moved = method.predict(task, &swapped_episodes)?;
        let drop = micro.zip(score(task, &swapped_episodes, &moved).micro()).map(|(own, other)| own - other);
        (mean_total_variation(predictions, &moved), drop)
    };
    // The random context's predictions on the related setting's targets (a target's prediction
    // does not depend on the other targets).
    let (subset, subset_predictions): (Vec<EvalEpisode>, Predictions) = episodes
        .iter()
        .zip(predictions)
        .map(|(e, p)| {
            let keep: Vec<usize> = spread(e.targets.len(), RELATED_TARGETS).collect();
            let targets = keep.iter().map(|&i| e.targets[i]).collect();
            (EvalEpisode { targets, ..e.clone() }, keep.iter().map(|&i| p[i].clone()).collect())
        })
        .unzip();
    let related_episodes = related_episodes(task, episodes, pool, k, RELATED_TARGETS);
    let (related, related_contrast) = if related_episodes.is_empty() {
        (None, None)
    } else {
        let predicted = method.predict(task, &related_episodes)?;
        (score(task, &related_episodes, &predicted).micro(), contrast(task, &related_episodes, &predicted))
    };
    Ok(ContextUse {
        method: method.name(),
        k,
        random: score(task, &subset, &subset_predictions).micro(),
        related,
        swap_tv,
        swap_drop,
        contrast: contrast(task, episodes, predictions),
        related_contrast,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Group, Metric, Question, Survey};
    use std::collections::BTreeMap;

    /// Three groups, four 2-option questions whose option embeddings point along axes.
    fn task() -> EmbeddedSurvey {
        let questions: Vec<Question> = (0..4)
            .map(|i| Question {
                key: format!("Q{i}"),
                text: format!("question {i}"),
                options: vec!["a".into(), "b".into()],
                ordinal: vec![1.0, 2.0],
            })
            .collect();
        let group = |name: &str, p: [f64; 4]| Group {
            name: name.into(),
            attribute: "attr".into(),
            answers: (0..4).map(|q| (q, vec![p[q], 1.0 - p[q]])).collect::<BTreeMap<_, _>>(),
        };
        let groups = vec![group("g0", [0.1, 0.2, 0.3, 0.4]), group("g1", [0.9, 0.8, 0.7, 0.6]), group("g2", [0.5; 4])];
        let survey = Survey { name: "test".into(), metric: Metric::Wasserstein, questions, groups };
        // Question q's two options share one direction; question 3 is close to question 0.
        let dirs = [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.9, 0.1, 0.0]];
        let embeddings = dirs.iter().map(|d| d.iter().chain(d).copied().collect()).collect();
        EmbeddedSurvey { survey, embeddings, dim: 3 }
    }

    #[test]
    fn total_variation_is_half_the_l1_distance() {
        assert_eq!(total_variation(&[0.2, 0.8], &[0.2, 0.8]), 0.0);
        assert!((total_variation(&[1.0, 0.0, 0.0], &[0.0, 0.5, 0.5]) - 1.0).abs() < 1e-12);
        assert!((total_variation(&[0.2, 0.3, 0.5], &[0.3, 0.3, 0.4]) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn swapping_shows_the_next_group_its_answers() {
        let task = task();
        let episodes: Vec<EvalEpisode> = (0..3).map(|g| EvalEpisode::new(g, vec![0, 1], vec![2, 3])).collect();
        let s = swapped(&task, &episodes);
        assert_eq!(s.iter().map(|e| (e.group, e.context_group)).collect::<Vec<_>>(), [(0, 1), (1, 2), (2, 0)]);
        assert!(s.iter().zip(&episodes).all(|(a, b)| a.context == b.context && a.targets == b.targets));
        assert!(swapped(&task, &episodes[..1]).is_empty());
    }

    #[test]
    fn contrast_is_one_for_the_truth_and_zero_for_a_shared_prediction() {
        let task = task();
        let episodes: Vec<EvalEpisode> = (0..3).map(|g| EvalEpisode::new(g, vec![0], vec![2, 3])).collect();
        let truth: Predictions = episodes
            .iter()
            .map(|e| e.targets.iter().map(|&q| task.answer(e.group, q).expect("answered").to_vec()).collect())
            .collect();
        assert!((contrast(&task, &episodes, &truth).expect("defined") - 1.0).abs() < 1e-12);
        let shared: Predictions = vec![vec![vec![0.5, 0.5]; 2]; 3];
        assert_eq!(contrast(&task, &episodes, &shared), Some(0.0));
        assert_eq!(mean_total_variation(&truth, &truth), Some(0.0));
        // |p − 0.5| on targets 2 and 3: 0.2, 0.1 (g0), 0.2, 0.1 (g1), 0, 0 (g2).
        assert!((mean_total_variation(&truth, &shared).expect("defined") - 0.1).abs() < 1e-12);
    }

    #[test]
    fn related_context_is_the_nearest_answered_questions() {
        let task = task();
        let episodes = [EvalEpisode::new(1, vec![], vec![3, 1])];
        let related = related_episodes(&task, &episodes, &[0, 1, 2, 3], 1, 5);
        // Question 3 is nearest question 0; question 1's nearest is 3 (0 and 2 are orthogonal
        // to it).
        assert_eq!(related.len(), 2);
        assert_eq!((related[0].group, related[0].context.clone(), related[0].targets.clone()), (1, vec![0], vec![3]));
        assert_eq!(related[1].context, vec![3]);
        assert_eq!(related_episodes(&task, &episodes, &[0, 1, 2, 3], 3, 1).len(), 1, "max_targets");
        assert_eq!(spread(10, 3).collect::<Vec<_>>(), [0, 4, 8]);
        assert_eq!(spread(2, 100).collect::<Vec<_>>(), [0, 1]);
    }
}
