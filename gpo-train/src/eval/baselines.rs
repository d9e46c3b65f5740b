//! Baselines, run on exactly the same episodes as GPO.
//!
//! * [`Uniform`]: every option equally likely.
//! * [`TrainGroupMean`]: the meta-training groups' average answer (a strong population prior on
//!   OpinionQA, where all groups answer the same questions; the paper does not report it).
//! * [`KnnGroups`]: meta-training groups weighted by how well their answers match the test
//!   group's context answers.
//! * [`RidgeRewardModel`]: a per-group reward-model analogue, ridge regression from an option's
//!   embedding to its probability, fitted on the context questions only.
//!
//! For new questions (the `questions` protocol), which no group answered before:
//!
//! * [`NearestQuestion`]: the meta-training groups' average answer to the question's nearest
//!   answered questions in embedding space (same option count, options aligned by position):
//!   gpo-core's rule for unknown questions over the train-group-mean prior.
//! * [`RidgePopulation`]: ridge regression from an option's embedding to its probability in the
//!   meta-training population, fitted on every answered question.
//!
//! [`KnnGroups`], [`Uniform`] and [`RidgeRewardModel`] also apply to new questions (`KnnGroups`
//! through the nearest-question rule, with group weights from the context).

use super::{EvalEpisode, EvalError, Predictions, Predictor, normalise};
use crate::method::Method;
use crate::prior::{NeighbourRule, PriorKind, SurveyPrior};
use crate::protocol::Protocol;
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
    fn name(&self) -> Method {
        Method::Uniform
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
    episodes.iter().map(|e| Ok(prior.distributions(task, e.context_group, &e.context, &e.targets)?)).collect()
}

/// The meta-training groups' average answer distribution per question (gpo-core's
/// [`PriorKind::TrainMean`]).
pub struct TrainGroupMean {
    prior: SurveyPrior,
}

impl TrainGroupMean {
    /// Averages over `train_groups`' answers to `questions` (the others take their nearest
    /// questions' averages, by `rule`).
    pub fn new(
        task: &EmbeddedSurvey,
        train_groups: &[usize],
        questions: &[usize],
        rule: NeighbourRule,
    ) -> Result<Self, EvalError> {
        Ok(Self {
            prior: SurveyPrior::over(task, PriorKind::TrainMean, train_groups, questions)?
                .with_neighbour_rule(rule)?
                .with_ranked_neighbours(),
        })
    }
}

impl Predictor for TrainGroupMean {
    fn name(&self) -> Method {
        Method::TrainMean
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
    /// Neighbours among `train_groups`, with their answers to `questions` (the others take their
    /// nearest questions' mixtures, by `rule`); `temperature` sets how sharply the closest
    /// groups dominate.
    pub fn new(
        task: &EmbeddedSurvey,
        train_groups: &[usize],
        questions: &[usize],
        temperature: f64,
        rule: NeighbourRule,
    ) -> Result<Self, EvalError> {
        let kind = PriorKind::KnnGroups { temperature };
        let prior = SurveyPrior::over(task, kind, train_groups, questions)?.with_neighbour_rule(rule)?;
        Ok(Self { prior: prior.with_ranked_neighbours() })
    }
}

impl Predictor for KnnGroups {
    fn name(&self) -> Method {
        Method::KnnGroups
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        prior_predictions(&self.prior, task, episodes)
    }
}

/// A new question's prior from its nearest answered questions: the train-group mean of the
/// answered questions most similar to it (cosine of the mean option embeddings) with as many
/// options, options aligned by position, as many and weighted as the run's [`NeighbourRule`]
/// says. It reads no group answer: the context is not given to the rule.
pub struct NearestQuestion {
    /// The train-group mean over the answered questions; on a new question it is the rule.
    mean: TrainGroupMean,
}

impl NearestQuestion {
    /// The answers of `train_groups` to `questions`, the only questions it treats as answered.
    pub fn new(
        task: &EmbeddedSurvey,
        train_groups: &[usize],
        questions: &[usize],
        rule: NeighbourRule,
    ) -> Result<Self, EvalError> {
        Ok(Self { mean: TrainGroupMean::new(task, train_groups, questions, rule)? })
    }
}

impl Predictor for NearestQuestion {
    fn name(&self) -> Method {
        Method::NearestQuestion
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        // A target among the answered questions would get its own average: this baseline is for
        // new questions only.
        if let Some(&q) = episodes.iter().flat_map(|e| &e.targets).find(|&&q| self.mean.prior.is_answered(q)) {
            return Err(EvalError::Baseline(format!(
                "nearest_question predicts new questions only; question `{}` is an answered one",
                task.survey.questions.get(q).map_or("?", |q| q.key.as_str())
            )));
        }
        // The population's rule alone: no context answers, so no group's own answers stand in
        // for neighbours (gpo-core's rule with context does that; kNN groups reads it).
        episodes.iter().map(|e| Ok(self.mean.prior.distributions(task, e.context_group, &[], &e.targets)?)).collect()
    }
}

/// Ridge regression from an option's embedding to its probability in the meta-training
/// population (the train-group mean), fitted on every option of the answered questions; a new
/// question's scores are clipped at a small positive floor and renormalised.
pub struct RidgePopulation {
    fit: RidgeFit,
}

impl RidgePopulation {
    /// Fits on `train_groups`' mean answers to `questions`, with penalty `lambda`.
    pub fn new(
        task: &EmbeddedSurvey,
        train_groups: &[usize],
        questions: &[usize],
        lambda: f64,
    ) -> Result<Self, EvalError> {
        let mut rows: Vec<&[f32]> = Vec::new();
        let mut y = Vec::new();
        for &q in questions {
            let answers: Vec<&[f64]> = train_groups.iter().filter_map(|&g| task.answer(g, q)).collect();
            if answers.is_empty() {
                continue;
            }
            rows.extend(task.embeddings[q].chunks_exact(task.dim));
            for option in 0..task.survey.questions[q].options.len() {
                y.push(answers.iter().map(|a| a[option]).sum::<f64>() / answers.len() as f64);
            }
        }
        let fit = ridge(&rows, &y, lambda)
            .ok_or_else(|| EvalError::Baseline("ridge_population: no answered question to fit on".into()))?;
        Ok(Self { fit })
    }
}

impl Predictor for RidgePopulation {
    fn name(&self) -> Method {
        Method::RidgePopulation
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        Ok(episodes
            .iter()
            .map(|e| e.targets.iter().map(|&q| self.fit.distribution(&task.embeddings[q], task.dim)).collect())
            .collect())
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
}

/// A fitted ridge regression `y ≈ y_mean + (x − x_mean) · weights`.
#[derive(Debug, Clone, PartialEq)]
struct RidgeFit {
    x_mean: Vec<f64>,
    y_mean: f64,
    weights: Vec<f64>,
}

impl RidgeFit {
    fn score(&self, x: &[f32]) -> f64 {
        self.y_mean
            + x.iter().zip(&self.x_mean).zip(&self.weights).map(|((&v, m), w)| (f64::from(v) - m) * w).sum::<f64>()
    }

    /// The distribution over a question's options (`options × dim` embeddings): scores clipped
    /// at [`SCORE_FLOOR`], renormalised.
    fn distribution(&self, embeddings: &[f32], dim: usize) -> Vec<f64> {
        let mut p: Vec<f64> = embeddings.chunks_exact(dim).map(|x| self.score(x).max(SCORE_FLOOR)).collect();
        normalise(&mut p);
        p
    }
}

/// Ridge regression with penalty `lambda` on the centred problem (the intercept is not
/// penalised): `weights = (XᵀX + λI)⁻¹ Xᵀy = Xᵀ(XXᵀ + λI)⁻¹ y`, solved in the dual form when
/// there are fewer rows than dimensions, in the primal otherwise (the same solution). `None` for
/// no rows, rows of differing length, or `y` of another length.
fn ridge(rows: &[&[f32]], y: &[f64], lambda: f64) -> Option<RidgeFit> {
    let n = rows.len();
    let dim = rows.first()?.len();
    if y.len() != n || rows.iter().any(|r| r.len() != dim) {
        return None;
    }
    let y_mean = y.iter().sum::<f64>() / n as f64;
    let mut x_mean = vec![0.0; dim];
    for row in rows {
        x_mean.iter_mut().zip(*row).for_each(|(m, &v)| *m += f64::from(v) / n as f64);
    }
    let centred: Vec<Vec<f64>> =
        rows.iter().map(|row| row.iter().zip(&x_mean).map(|(&v, m)| f64::from(v) - m).collect()).collect();
    let target: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
    let weights = if n <= dim {
        let mut gram = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let dot: f64 = centred[i].iter().zip(&centred[j]).map(|(a, b)| a * b).sum();
                gram[i * n + j] = dot;
                gram[j * n + i] = dot;
            }
            gram[i * n + i] += lambda;
        }
        let alpha = cholesky_solve(&mut gram, n, &target)?;
        let mut weights = vec![0.0; dim];
        for (a, row) in alpha.iter().zip(&centred) {
            weights.iter_mut().zip(row).for_each(|(w, v)| *w += a * v);
        }
        weights
    } else {
        let mut covariance = vec![0.0; dim * dim];
        let mut xty = vec![0.0; dim];
        for (row, t) in centred.iter().zip(&target) {
            for i in 0..dim {
                xty[i] += row[i] * t;
                let ri = row[i];
                let line = &mut covariance[i * dim..i * dim + i + 1];
                line.iter_mut().zip(&row[..=i]).for_each(|(c, rj)| *c += ri * rj);
            }
        }
        for i in 0..dim {
            for j in 0..i {
                covariance[j * dim + i] = covariance[i * dim + j];
            }
            covariance[i * dim + i] += lambda;
        }
        cholesky_solve(&mut covariance, dim, &xty)?
    };
    Some(RidgeFit { x_mean, y_mean, weights })
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
    fn name(&self) -> Method {
        Method::RidgeRm
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        let dim = task.dim;
        Ok(episodes
            .iter()
            .map(|e| {
                let mut rows: Vec<&[f32]> = Vec::new();
                let mut y = Vec::new();
                for &q in &e.context {
                    if let Some(answer) = task.answer(e.context_group, q) {
                        rows.extend(task.embeddings[q].chunks_exact(dim));
                        y.extend_from_slice(answer);
                    }
                }
                let model = ridge(&rows, &y, self.lambda);
                e.targets
                    .iter()
                    .map(|&q| match &model {
                        Some(fit) => fit.distribution(&task.embeddings[q], dim),
                        None => uniform(n_options(task, q)),
                    })
                    .collect()
            })
            .collect())
    }
}

/// The settings of the baselines that take any (`[evaluation]` of a run config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineOptions {
    /// Temperature of [`KnnGroups`].
    pub knn_temperature: f64,
    /// Ridge penalty of [`RidgeRewardModel`] and [`RidgePopulation`].
    pub ridge_lambda: f64,
    /// The rule for new questions of the population priors ([`TrainGroupMean`],
    /// [`NearestQuestion`], [`KnnGroups`]): the run's.
    pub neighbour_rule: NeighbourRule,
}

/// The baselines of `protocol` ([`Method::baselines`]), in report order, reading the answers of
/// `meta_train` groups to `seen` questions.
pub fn baselines(
    protocol: Protocol,
    task: &EmbeddedSurvey,
    meta_train: &[usize],
    seen: &[usize],
    options: BaselineOptions,
) -> Result<Vec<Box<dyn Predictor>>, EvalError> {
    let BaselineOptions { knn_temperature, ridge_lambda, neighbour_rule: rule } = options;
    let mut baselines: Vec<Box<dyn Predictor>> = Vec::new();
    for baseline in Method::baselines(protocol) {
        baselines.push(match baseline {
            Method::Uniform => Box::new(Uniform),
            Method::TrainMean => Box::new(TrainGroupMean::new(task, meta_train, seen, rule)?),
            Method::NearestQuestion => Box::new(NearestQuestion::new(task, meta_train, seen, rule)?),
            Method::RidgePopulation => Box::new(RidgePopulation::new(task, meta_train, seen, ridge_lambda)?),
            Method::KnnGroups => Box::new(KnnGroups::new(task, meta_train, seen, knn_temperature, rule)?),
            Method::RidgeRm => Box::new(RidgeRewardModel::new(ridge_lambda)),
            Method::Gpo | Method::Variant(_) | Method::Selected | Method::Lm(_) => continue,
        });
    }
    Ok(baselines)
}

#[cfg(test)]
mod tests {
    use super::{cholesky_solve, ridge};

    #[test]
    fn cholesky_solves_a_known_system() {
        // A = [[4, 2], [2, 3]], x = [1, -1] → b = [2, -1].
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let x = cholesky_solve(&mut a, 2, &[2.0, -1.0]).unwrap();
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] + 1.0).abs() < 1e-12);
        assert!(cholesky_solve(&mut [0.0, 0.0, 0.0, 0.0], 2, &[1.0, 1.0]).is_none());
    }

    /// A 1-d ridge against its closed form, computed by hand.
    #[test]
    fn ridge_matches_the_closed_form() {
        // 1-d: w = Σ xc·yc / (Σ xc² + λ), with xc, yc centred. x = [0, 1, 2, 3], y = [1, 3, 2, 6].
        // x̄ = 1.5, ȳ = 3; xc = [-1.5, -0.5, 0.5, 1.5], yc = [-2, 0, -1, 3];
        // Σ xc·yc = 3 + 0 − 0.5 + 4.5 = 7; Σ xc² = 5; λ = 1 → w = 7/6.
        let xs: Vec<[f32; 1]> = vec![[0.0], [1.0], [2.0], [3.0]];
        let rows: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
        let fit = ridge(&rows, &[1.0, 3.0, 2.0, 6.0], 1.0).unwrap();
        assert!((fit.weights[0] - 7.0 / 6.0).abs() < 1e-12, "{:?}", fit.weights);
        assert!((fit.score(&[1.5]) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn ridge_dual_and_primal_agree() {
        // 6 rows in 8 dimensions take the dual form; the same rows repeated twice (12 rows with
        // λ doubled) take the primal form and have the same solution: XᵀX and Xᵀy double.
        let mut rng = gpo_core::rng::SplitMix64::new(3);
        let xs: Vec<Vec<f32>> = (0..6).map(|_| (0..8).map(|_| rng.next_f64() as f32 - 0.5).collect()).collect();
        let y: Vec<f64> = (0..6).map(|_| rng.next_f64()).collect();
        let rows: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
        let dual = ridge(&rows, &y, 0.5).unwrap();
        let twice: Vec<&[f32]> = rows.iter().chain(&rows).copied().collect();
        let y2: Vec<f64> = y.iter().chain(&y).copied().collect();
        let primal = ridge(&twice, &y2, 1.0).unwrap();
        for (a, b) in dual.weights.iter().zip(&primal.weights) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        assert!(ridge(&rows, &y[..5], 1.0).is_none());
        assert!(ridge(&[], &[], 1.0).is_none());
    }

    /// `nearest_question` recomputed independently in f64: for a new question, the mean over the
    /// meta-training groups of their answers, averaged over the n seen questions with as many
    /// options whose unit mean option embeddings are most similar (cosine) to the new one's:
    /// equally (n = 5), or (n = 8) weighted by `exp((s − s₁) / 0.05)`, `s` the cosine and `s₁` the
    /// nearest one's; and with options matched by meaning. Tolerance 1e-12 with equal weights (the
    /// same sums in f64), 1e-6 with similarity weights (gpo-core's question vectors are f32:
    /// cosines to ~1e-7, over 0.05).
    #[test]
    fn nearest_question_is_the_mean_answer_of_the_nearest_seen_questions() {
        use crate::prior::{NeighbourRule, NeighbourWeights, OptionMatch};
        let similarity = NeighbourRule {
            neighbours: 8,
            weights: NeighbourWeights::Similarity { temperature: 0.05 },
            ..Default::default()
        };
        // Options matched by meaning: the matched options' mean similarity (of f32 signatures)
        // joins the cosine, so the same tolerance.
        let meaning = NeighbourRule { options: OptionMatch::Meaning { weight: 0.5 }, ..similarity };
        for (rule, tolerance) in [(NeighbourRule::default(), 1e-12), (similarity, 1e-6), (meaning, 1e-6)] {
            nearest_question_with(rule, tolerance);
        }
    }

    fn nearest_question_with(rule: crate::prior::NeighbourRule, tolerance: f64) {
        use super::super::{EvalEpisode, Predictor};
        use super::NearestQuestion;
        use crate::synthetic::{SyntheticSpec, synthetic_survey};
        let task =
            synthetic_survey(SyntheticSpec { groups: 6, questions: 60, dim: 5, clusters: 2, sharpness: 3.0, seed: 2 });
        let (groups, seen, new): (Vec<usize>, Vec<usize>, Vec<usize>) =
            ((0..4).collect(), (0..50).collect(), (50..60).collect());
        let baseline = NearestQuestion::new(&task, &groups, &seen, rule).unwrap();
        let episodes = [EvalEpisode::new(5, vec![0, 1, 2], new.clone())];
        let predicted = baseline.predict(&task, &episodes).unwrap().remove(0);
        let mean_of = |c: usize| -> Vec<f64> {
            let options = task.survey.questions[c].options.len();
            (0..options).map(|o| groups.iter().map(|&g| task.answer(g, c).unwrap()[o]).sum::<f64>() / 4.0).collect()
        };
        for (&q, p) in new.iter().zip(&predicted) {
            let expected = crate::prior::tests::reference_rule(&task, &seen, q, rule, mean_of);
            for (a, b) in p.iter().zip(&expected) {
                assert!((a - b).abs() < tolerance, "question {q}: {p:?} vs {expected:?}");
            }
        }
        // A seen question is not new: asking for it is an error, not its own average.
        let seen_target = [EvalEpisode::new(5, vec![0], vec![3])];
        assert!(baseline.predict(&task, &seen_target).is_err());
    }

    /// `ridge_population` on a population whose probabilities are exactly linear in the option
    /// embedding recovers them (λ tiny), renormalised.
    #[test]
    fn ridge_population_recovers_a_linear_population() {
        use super::super::{EvalEpisode, Predictor};
        use super::RidgePopulation;
        use crate::synthetic::{SyntheticSpec, synthetic_survey};
        let mut task =
            synthetic_survey(SyntheticSpec { groups: 3, questions: 80, dim: 3, clusters: 1, sharpness: 1.0, seed: 4 });
        // Two options per question with embeddings (a, b, c) and (−a, −b, −c): p = 0.5 + 0.2a − 0.1b.
        let mut rng = gpo_core::rng::SplitMix64::new(1);
        for q in 0..task.survey.questions.len() {
            let (a, b, c) = (rng.next_f64() - 0.5, rng.next_f64() - 0.5, rng.next_f64() - 0.5);
            task.embeddings[q] = [a, b, c, -a, -b, -c].iter().map(|&v| v as f32).collect();
            let ordinal = task.survey.questions[q].ordinal[..1].to_vec();
            task.survey.questions[q].options.truncate(2);
            task.survey.questions[q].ordinal = vec![ordinal[0], ordinal[0] + 1.0];
            let x = [f64::from(a as f32), f64::from(b as f32)];
            let p = 0.5 + 0.2 * x[0] - 0.1 * x[1];
            for group in &mut task.survey.groups {
                group.answers.insert(q, vec![p, 1.0 - p]);
            }
        }
        let baseline = RidgePopulation::new(&task, &[0, 1, 2], &(0..60).collect::<Vec<_>>(), 1e-9).unwrap();
        let episodes = [EvalEpisode::new(0, vec![], (60..80).collect())];
        let predicted = baseline.predict(&task, &episodes).unwrap().remove(0);
        for (&q, p) in episodes[0].targets.iter().zip(&predicted) {
            let truth = task.answer(0, q).unwrap();
            assert!((p[0] - truth[0]).abs() < 1e-6 && (p[1] - truth[1]).abs() < 1e-6, "{q}: {p:?} vs {truth:?}");
        }
    }
}
