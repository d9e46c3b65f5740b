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
use crate::method::Method;
use crate::prior::{PriorKind, SurveyPrior};
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
        Method::Uniform.name()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        Ok(episodes.iter().map(|e| e.targets.iter().map(|&q| uniform(n_options(task, q))).collect()).collect())
    }
}

/// A population prior as a baseline: its prediction for every target is the prior itself.
fn prior_predictions(
    prior: &SurveyPrior,
    task: &EmbeddedSurvey,
    episodes: &[EvalEpisode],
) -> Result<Predictions, EvalError> {
    episodes.iter().map(|e| Ok(prior.distributions(task, e.group, &e.context, &e.targets)?)).collect()
}

/// The meta-training groups' average answer distribution per question (gpo-core's
/// [`PriorKind::TrainMean`]).
pub struct TrainGroupMean {
    prior: SurveyPrior,
}

impl TrainGroupMean {
    /// Averages over `train_groups`.
    pub fn new(task: &EmbeddedSurvey, train_groups: &[usize]) -> Result<Self, EvalError> {
        Ok(Self { prior: SurveyPrior::new(task, PriorKind::TrainMean, train_groups)? })
    }
}

impl Predictor for TrainGroupMean {
    fn name(&self) -> String {
        Method::TrainMean.name()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        prior_predictions(&self.prior, task, episodes)
    }
}

/// Training groups weighted by `softmax(−d / temperature)`, where `d` is a group's mean
/// misalignment (1 − alignment score) with the test group over the context questions (gpo-core's
/// [`PriorKind::KnnGroups`]).
pub struct KnnGroups {
    prior: SurveyPrior,
}

impl KnnGroups {
    /// Neighbours among `train_groups`; `temperature` sets how sharply the closest dominate.
    pub fn new(task: &EmbeddedSurvey, train_groups: &[usize], temperature: f64) -> Result<Self, EvalError> {
        Ok(Self { prior: SurveyPrior::new(task, PriorKind::KnnGroups { temperature }, train_groups)? })
    }
}

impl Predictor for KnnGroups {
    fn name(&self) -> String {
        Method::KnnGroups.name()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        prior_predictions(&self.prior, task, episodes)
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
        Method::RidgeRm.name()
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
