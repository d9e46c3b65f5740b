//! Alignment metrics on plain `f64` slices, exactly as the original evaluation computes them.
//!
//! * [`wasserstein_alignment`]: OpinionQA's score, `1 − WD(P, Q) / (max(o) − min(o))`, with WD as
//!   `scipy.stats.wasserstein_distance(o, o, P, Q)`.
//! * [`js_alignment`]: GlobalOpinionQA's score, `1 − JSdist(P, Q)` as
//!   `scipy.spatial.distance.jensenshannon(P, Q)` (natural log).
//!
//! Invalid inputs give `None` instead of a number: the original counts a NaN JS distance as a perfect
//! score (docs/original.md §9.5), which silently inflates results.

use alloc::vec::Vec;

/// Checks that `w` is a usable weight vector: non-empty, finite, non-negative, positive sum.
/// Returns the sum.
fn weight_sum(w: &[f64]) -> Option<f64> {
    if w.is_empty() || w.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return None;
    }
    let sum: f64 = w.iter().sum();
    (sum > 0.0 && sum.is_finite()).then_some(sum)
}

/// 1-D earth mover's distance between two distributions on the same support `ordinal`.
///
/// Equals `scipy.stats.wasserstein_distance(ordinal, ordinal, p, q)`: weights are renormalised, the
/// support may be unsorted, non-monotone or tied. `None` on invalid input (lengths differ, empty,
/// non-finite values, negative weights, zero mass).
pub fn wasserstein_distance(ordinal: &[f64], p: &[f64], q: &[f64]) -> Option<f64> {
    if ordinal.len() != p.len() || ordinal.len() != q.len() || ordinal.iter().any(|o| !o.is_finite()) {
        return None;
    }
    let (p_sum, q_sum) = (weight_sum(p)?, weight_sum(q)?);
    let mut order: Vec<usize> = (0..ordinal.len()).collect();
    // A stable sort keeps the tie order of scipy's argsort irrelevant: tied support points
    // contribute zero-width intervals.
    order.sort_by(|&a, &b| ordinal[a].total_cmp(&ordinal[b]));
    let (mut p_cum, mut q_cum, mut distance) = (0.0, 0.0, 0.0);
    for pair in order.windows(2) {
        p_cum += p[pair[0]];
        q_cum += q[pair[0]];
        let width = ordinal[pair[1]] - ordinal[pair[0]];
        distance += (p_cum / p_sum - q_cum / q_sum).abs() * width;
    }
    Some(distance)
}

/// OpinionQA alignment: `1 − WD(P, Q) / (max(ordinal) − min(ordinal))`, in `[0, 1]`.
///
/// `None` when the question cannot be scored (max = min: the original skips such items) or the
/// input is invalid (see [`wasserstein_distance`]).
pub fn wasserstein_alignment(ordinal: &[f64], p: &[f64], q: &[f64]) -> Option<f64> {
    let distance = wasserstein_distance(ordinal, p, q)?;
    let max = ordinal.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = ordinal.iter().copied().fold(f64::INFINITY, f64::min);
    let span = max - min;
    (span > 0.0).then(|| 1.0 - distance / span)
}

/// `x · ln(x / y)` with scipy's `rel_entr` conventions for the cases that can occur here.
fn relative_entropy_term(x: f64, y: f64) -> f64 {
    if x > 0.0 { x * libm::log(x / y) } else { 0.0 }
}

/// Jensen–Shannon distance with the natural log, as `scipy.spatial.distance.jensenshannon(p, q)`.
///
/// Inputs are renormalised; `0 · ln 0 = 0`. A divergence that rounds below zero is clamped to 0
/// (scipy would return NaN). `None` on invalid input.
pub fn js_distance(p: &[f64], q: &[f64]) -> Option<f64> {
    if p.len() != q.len() {
        return None;
    }
    let (p_sum, q_sum) = (weight_sum(p)?, weight_sum(q)?);
    let mut divergence = 0.0;
    for (&pi, &qi) in p.iter().zip(q) {
        let (pi, qi) = (pi / p_sum, qi / q_sum);
        let mi = (pi + qi) / 2.0;
        divergence += relative_entropy_term(pi, mi) + relative_entropy_term(qi, mi);
    }
    Some(libm::sqrt((divergence / 2.0).max(0.0)))
}

/// GlobalOpinionQA alignment: `1 − JSdist(P, Q)`, in `[1 − √ln2, 1]`. `None` on invalid input.
pub fn js_alignment(p: &[f64], q: &[f64]) -> Option<f64> {
    js_distance(p, q).map(|d| 1.0 - d)
}

/// Index of the largest entry (the first one on ties, as `numpy.argmax`). `None` when empty or NaN.
pub fn argmax(values: &[f64]) -> Option<usize> {
    if values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut best = 0;
    for (i, v) in values.iter().enumerate().skip(1) {
        if *v > values[best] {
            best = i;
        }
    }
    (!values.is_empty()).then_some(best)
}

/// Top-1 agreement: whether the predicted and the true distributions have the same most likely
/// option (the paper's individual-level "alignment accuracy"). `None` on invalid input.
pub fn top1_match(predicted: &[f64], truth: &[f64]) -> Option<bool> {
    if predicted.len() != truth.len() {
        return None;
    }
    Some(argmax(predicted)? == argmax(truth)?)
}

/// Per-item scores collected per group, averaged the two usual ways.
///
/// The original reports the micro-average (every (group, question) item weighs the same); the
/// macro-average (mean of group means) weighs every group the same.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreTable {
    groups: Vec<Vec<f64>>,
}

impl ScoreTable {
    /// An empty table for `n_groups` groups.
    pub fn new(n_groups: usize) -> Self {
        Self { groups: alloc::vec![Vec::new(); n_groups] }
    }

    /// Records one item's score for `group`. Out-of-range groups and `None` scores (unscorable
    /// items) are ignored, as the original skips them.
    pub fn record(&mut self, group: usize, score: Option<f64>) {
        if let (Some(items), Some(score)) = (self.groups.get_mut(group), score) {
            items.push(score);
        }
    }

    /// Number of scored items over all groups.
    pub fn n_items(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }

    /// Mean score of each group (`None` for a group without items).
    pub fn group_means(&self) -> Vec<Option<f64>> {
        self.groups.iter().map(|items| mean(items)).collect()
    }

    /// Mean over all items of all groups.
    pub fn micro(&self) -> Option<f64> {
        let n = self.n_items();
        (n > 0).then(|| self.groups.iter().flatten().sum::<f64>() / n as f64)
    }

    /// Mean of the group means, over the groups that have items.
    pub fn macro_average(&self) -> Option<f64> {
        let means: Vec<f64> = self.group_means().into_iter().flatten().collect();
        mean(&means)
    }
}

/// Arithmetic mean; `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Population standard deviation (`numpy.std`, ddof 0); `None` when empty.
pub fn std_dev(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    let var = values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / values.len() as f64;
    Some(libm::sqrt(var))
}

/// How a survey's predictions are scored: the alignment metric of its dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// OpinionQA: [`wasserstein_alignment`] over the options' ordinal values.
    Wasserstein,
    /// GlobalOpinionQA: [`js_alignment`].
    JensenShannon,
}

impl Metric {
    /// The alignment of `predicted` with `truth` for a question whose options sit at `ordinal`
    /// (read by [`Metric::Wasserstein`] only). `None` where the item cannot be scored.
    pub fn score(self, ordinal: &[f64], predicted: &[f64], truth: &[f64]) -> Option<f64> {
        match self {
            Self::Wasserstein => wasserstein_alignment(ordinal, predicted, truth),
            Self::JensenShannon => js_alignment(predicted, truth),
        }
    }
}
