//! Baselines, run on exactly the same episodes as GPO.
//!
//! * [`Uniform`]: every option equally likely.
//! * [`TrainGroupMean`]: the meta-training groups' average answer (a strong population prior on
//!   OpinionQA, where all groups answer the same questions; the paper does not report it).
//! * [`KnnGroups`]: meta-training groups weighted by how well their answers match the test
//!   group's context answers.
//! * [`RidgeRewardModel`]: a per-group reward-model analogue, ridge regression from an option's
//!   embedding to its probability, fitted on the context questions only.

use super::{EvalEpisode, EvalError, Predictions, Predictor, normalise};
use crate::task::EmbeddedSurvey;

fn uniform(options: usize) -> Vec<f64> {
    vec![1.0 / options as f64; options]
}

fn n_options(task: &EmbeddedSurvey, question: usize) -> usize {
    task.survey.questions[question].options.len()
}

/// Uniform distribution over the options.
pub struct Uniform;

impl Predictor for Uniform {
    fn name(&self) -> String {
        "uniform".into()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        Ok(episodes.iter().map(|e| e.targets.iter().map(|&q| uniform(n_options(task, q))).collect()).collect())
    }
}

/// Weighted average of `groups`' answers on `question`; uniform when none answered it.
fn weighted_mean(task: &EmbeddedSurvey, groups: &[(usize, f64)], question: usize) -> Vec<f64> {
    let mut mean = vec![0.0; n_options(task, question)];
    for &(g, weight) in groups {
        if let Some(answer) = task.answer(g, question) {
            mean.iter_mut().zip(answer).for_each(|(m, a)| *m += weight * a);
        }
    }
    normalise(&mut mean);
    mean
}

/// The meta-training groups' average answer distribution per question.
pub struct TrainGroupMean {
    groups: Vec<usize>,
}

impl TrainGroupMean {
    /// Averages over `train_groups`.
    pub fn new(train_groups: &[usize]) -> Self {
        Self { groups: train_groups.to_vec() }
    }

    /// The population prior of `question`.
    pub fn prior(&self, task: &EmbeddedSurvey, question: usize) -> Vec<f64> {
        let equal: Vec<(usize, f64)> = self.groups.iter().map(|&g| (g, 1.0)).collect();
        weighted_mean(task, &equal, question)
    }
}

impl Predictor for TrainGroupMean {
    fn name(&self) -> String {
        "train_mean".into()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        Ok(episodes.iter().map(|e| e.targets.iter().map(|&q| self.prior(task, q)).collect()).collect())
    }
}

/// Training groups weighted by `softmax(−d / temperature)`, where `d` is a group's mean
/// misalignment (1 − alignment score) with the test group over the context questions.
pub struct KnnGroups {
    groups: Vec<usize>,
    temperature: f64,
}

impl KnnGroups {
    /// Neighbours among `train_groups`; `temperature` sets how sharply the closest dominate.
    pub fn new(train_groups: &[usize], temperature: f64) -> Self {
        Self { groups: train_groups.to_vec(), temperature }
    }

    /// The prediction for every target question of one episode.
    pub fn predict_episode(&self, task: &EmbeddedSurvey, episode: &EvalEpisode) -> Vec<Vec<f64>> {
        let weights = self.weights(task, episode);
        episode.targets.iter().map(|&q| weighted_mean(task, &weights, q)).collect()
    }

    fn weights(&self, task: &EmbeddedSurvey, episode: &EvalEpisode) -> Vec<(usize, f64)> {
        let distances: Vec<Option<f64>> = self
            .groups
            .iter()
            .map(|&g| {
                let gaps: Vec<f64> = episode
                    .context
                    .iter()
                    .filter_map(|&q| {
                        let (mine, theirs) = (task.answer(episode.group, q)?, task.answer(g, q)?);
                        task.score(q, theirs, mine).map(|s| 1.0 - s)
                    })
                    .collect();
                gpo_core::metrics::mean(&gaps)
            })
            .collect();
        // Groups sharing no context question with the test group get the average distance.
        let known: Vec<f64> = distances.iter().flatten().copied().collect();
        let fallback = gpo_core::metrics::mean(&known).unwrap_or(0.0);
        let best = known.iter().copied().fold(f64::INFINITY, f64::min);
        let best = if best.is_finite() { best } else { 0.0 };
        self.groups
            .iter()
            .zip(distances)
            .map(|(&g, d)| (g, (-(d.unwrap_or(fallback) - best) / self.temperature).exp()))
            .collect()
    }
}

impl Predictor for KnnGroups {
    fn name(&self) -> String {
        "knn_groups".into()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        Ok(episodes.iter().map(|e| self.predict_episode(task, e)).collect())
    }
}

/// Per-group ridge regression from option embedding to probability, fitted on the group's
/// context questions only; predictions are clipped at a small positive floor and renormalised
/// per question. With no context it predicts uniform.
pub struct RidgeRewardModel {
    lambda: f64,
}

/// Smallest predicted score before renormalisation (keeps every option possible).
const SCORE_FLOOR: f64 = 1e-3;

impl RidgeRewardModel {
    /// Ridge with penalty `lambda` (on the centred problem; the intercept is not penalised).
    pub fn new(lambda: f64) -> Self {
        Self { lambda }
    }

    /// Fits on `(x, y)` rows and returns a function scoring new rows. Uses the dual form, as
    /// there are far fewer context options than embedding dimensions.
    fn fit(&self, rows: &[&[f32]], y: &[f64]) -> Option<impl Fn(&[f32]) -> f64> {
        let n = rows.len();
        let dim = rows.first()?.len();
        let y_mean = y.iter().sum::<f64>() / n as f64;
        let mut x_mean = vec![0.0; dim];
        for row in rows {
            x_mean.iter_mut().zip(*row).for_each(|(m, &v)| *m += v as f64 / n as f64);
        }
        let centred: Vec<Vec<f64>> =
            rows.iter().map(|row| row.iter().zip(&x_mean).map(|(&v, m)| v as f64 - m).collect()).collect();
        let mut gram = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let dot: f64 = centred[i].iter().zip(&centred[j]).map(|(a, b)| a * b).sum();
                gram[i * n + j] = dot;
                gram[j * n + i] = dot;
            }
            gram[i * n + i] += self.lambda;
        }
        let target: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
        let alpha = cholesky_solve(&mut gram, n, &target)?;
        let mut weights = vec![0.0; dim];
        for (a, row) in alpha.iter().zip(&centred) {
            weights.iter_mut().zip(row).for_each(|(w, v)| *w += a * v);
        }
        Some(move |x: &[f32]| {
            y_mean + x.iter().zip(&x_mean).zip(&weights).map(|((&v, m), w)| (v as f64 - m) * w).sum::<f64>()
        })
    }
}

/// Solves `A x = b` for symmetric positive-definite `A` (row-major `n × n`, overwritten by its
/// Cholesky factor). `None` if `A` is not positive definite.
fn cholesky_solve(a: &mut [f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    let mut z = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            z[i] -= a[i * n + k] * z[k];
        }
        z[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= a[k * n + i] * z[k];
        }
        z[i] /= a[i * n + i];
    }
    Some(z)
}

impl Predictor for RidgeRewardModel {
    fn name(&self) -> String {
        "ridge_rm".into()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        let dim = task.dim;
        Ok(episodes
            .iter()
            .map(|e| {
                let mut rows: Vec<&[f32]> = Vec::new();
                let mut y = Vec::new();
                for &q in &e.context {
                    if let Some(answer) = task.answer(e.group, q) {
                        rows.extend(task.embeddings[q].chunks_exact(dim));
                        y.extend_from_slice(answer);
                    }
                }
                let model = self.fit(&rows, &y);
                e.targets
                    .iter()
                    .map(|&q| match &model {
                        Some(score) => {
                            let mut p: Vec<f64> =
                                task.embeddings[q].chunks_exact(dim).map(|x| score(x).max(SCORE_FLOOR)).collect();
                            normalise(&mut p);
                            p
                        }
                        None => uniform(n_options(task, q)),
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::cholesky_solve;

    #[test]
    fn cholesky_solves_a_known_system() {
        // A = [[4, 2], [2, 3]], x = [1, -1] → b = [2, -1].
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let x = cholesky_solve(&mut a, 2, &[2.0, -1.0]).unwrap();
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] + 1.0).abs() < 1e-12);
        assert!(cholesky_solve(&mut [0.0, 0.0, 0.0, 0.0], 2, &[1.0, 1.0]).is_none());
    }
}
