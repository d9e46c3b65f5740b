//! Population priors of a survey: gpo-core's [`PopulationPrior`] (one implementation, shared
//! with the model file, the predictor and the browser) filled with the answers of a set of the
//! survey's groups. GPO's prior variants read them, and the `train_mean` / `knn_groups` baselines
//! are them. In training, an episode's own group is left out, so that a meta-training group never
//! sees its own answers through the prior.

use gpo_core::prior::{DEFAULT_NEIGHBOURS, PopulationPrior, PriorError, PriorGroup, PriorQuestion, QuestionRef};

pub use gpo_core::prior::{NeighbourRule, NeighbourWeights, OptionMatch, PriorKind};
use serde::{Deserialize, Serialize};

use crate::task::EmbeddedSurvey;

/// Which prior a question gets: from the population's answers to it, or as a new question's (a
/// prior variant's training targets: `[training] target_priors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetPriors {
    /// The population's answers to the question itself (the episode's group left out): what a
    /// test target gets under the `groups` protocol.
    #[default]
    Answered,
    /// The prior of a new question: the mean prior of its nearest other questions with as many
    /// options, its own answers set aside (gpo-core's rule for unknown questions): what a test
    /// target gets under the `questions` protocol. Measured there on OpinionQA (docs/experiments.md, "GPO
    /// variants"): validation rises, the test falls; so it is not the default.
    AsNew,
}

impl TargetPriors {
    /// How the prior sees survey question `q` (its index in the prior).
    fn question_ref(self, q: usize) -> QuestionRef {
        match self {
            Self::Answered => QuestionRef::Known(q),
            Self::AsNew => QuestionRef::Hidden(q),
        }
    }
}

/// A prior over some of a survey's groups, addressed by the survey's group and question indices.
#[derive(Debug, Clone, PartialEq)]
pub struct SurveyPrior {
    prior: PopulationPrior,
    /// Survey index of each prior group.
    groups: Vec<usize>,
}

impl SurveyPrior {
    /// The prior of `kind` drawn from `groups` (survey indices) over every question of the survey.
    pub fn new(task: &EmbeddedSurvey, kind: PriorKind, groups: &[usize]) -> Result<Self, PriorError> {
        let all: Vec<usize> = (0..task.survey.questions.len()).collect();
        Self::over(task, kind, groups, &all)
    }

    /// The prior of `kind` drawn from `groups`' answers to `questions` only (survey indices): the
    /// other questions are in the prior as questions no group answered, so their prior comes from
    /// their nearest answered questions (gpo-core's rule for unknown questions), as a new
    /// question's would.
    pub fn over(
        task: &EmbeddedSurvey,
        kind: PriorKind,
        groups: &[usize],
        questions: &[usize],
    ) -> Result<Self, PriorError> {
        let n_questions = task.survey.questions.len();
        let mut known = vec![false; n_questions];
        questions.iter().filter(|&&q| q < n_questions).for_each(|&q| known[q] = true);
        let questions = task
            .survey
            .questions
            .iter()
            .zip(&task.embeddings)
            .map(|(q, embeddings)| PriorQuestion::new(&q.key, q.ordinal.clone(), embeddings, task.dim))
            .collect();
        let prior_groups = groups
            .iter()
            .map(|&g| PriorGroup {
                name: task.survey.groups[g].name.clone(),
                answers: (0..n_questions)
                    .map(|q| task.answer(g, q).filter(|_| known[q]).map(<[f64]>::to_vec))
                    .collect(),
            })
            .collect();
        let prior = PopulationPrior::new(kind, task.metric(), DEFAULT_NEIGHBOURS, task.dim, questions, prior_groups)?;
        Ok(Self { prior, groups: groups.to_vec() })
    }

    /// The same prior with another rule for new questions.
    pub fn with_neighbour_rule(self, rule: NeighbourRule) -> Result<Self, PriorError> {
        Ok(Self { prior: self.prior.with_neighbour_rule(rule)?, groups: self.groups })
    }

    /// The same prior with every question's neighbours ranked once
    /// ([`PopulationPrior::with_ranked_neighbours`]): for a prior that computes many priors of
    /// questions as new ones ([`Self::episode_priors`] with [`TargetPriors::AsNew`]).
    pub fn with_ranked_neighbours(self) -> Self {
        Self { prior: self.prior.with_ranked_neighbours(), groups: self.groups }
    }

    /// The core prior (what a model file stores).
    pub fn prior(&self) -> &PopulationPrior {
        &self.prior
    }

    /// Whether any prior group's answer to survey question `question` is in the prior (false for
    /// the questions [`Self::over`] left out, and for indices beyond the survey).
    pub fn is_answered(&self, question: usize) -> bool {
        self.prior.groups().iter().any(|g| g.answers.get(question).is_some_and(Option::is_some))
    }

    /// Whether survey question `question` gets a prior for survey group `group`, which is left
    /// out when it is one of the prior groups (gpo-core's [`PopulationPrior::has_prior`]), as a
    /// known question or, with [`TargetPriors::AsNew`], as a new one. On GlobalOpinionQA a
    /// question only a held-out country answered, with an option count no answered question has,
    /// has none.
    pub fn is_defined(&self, question: usize, group: Option<usize>, how: TargetPriors) -> bool {
        let exclude = group.and_then(|g| self.groups.iter().position(|&p| p == g));
        question < self.prior.questions().len() && self.prior.has_prior(&how.question_ref(question), exclude)
    }

    /// The questions of `pool` that get a prior for every group outside the prior ([`Self::is_defined`]).
    pub fn defined_in(&self, pool: &[usize]) -> Vec<usize> {
        pool.iter().copied().filter(|&q| self.is_defined(q, None, TargetPriors::Answered)).collect()
    }

    /// The survey indices of the prior groups.
    pub fn groups(&self) -> &[usize] {
        &self.groups
    }

    /// The prior distribution of each of `questions` for `group`, whose answers to `context` are
    /// shown; `group` itself is left out when it is one of the prior groups.
    pub fn distributions(
        &self,
        task: &EmbeddedSurvey,
        group: usize,
        context: &[usize],
        questions: &[usize],
    ) -> Result<Vec<Vec<f64>>, PriorError> {
        self.distributions_of(task, group, context, questions.iter().map(|&q| QuestionRef::Known(q)).collect())
    }

    /// The priors of a training episode, `context` then `targets`: as [`Self::distributions`],
    /// the targets' as `how` says (with [`TargetPriors::AsNew`], each from its nearest other
    /// questions, its own answers set aside), in one pass (the group weights computed once).
    pub fn episode_priors(
        &self,
        task: &EmbeddedSurvey,
        group: usize,
        context: &[usize],
        targets: &[usize],
        how: TargetPriors,
    ) -> Result<Vec<Vec<f64>>, PriorError> {
        let questions =
            context.iter().map(|&q| QuestionRef::Known(q)).chain(targets.iter().map(|&q| how.question_ref(q)));
        self.distributions_of(task, group, context, questions.collect())
    }

    fn distributions_of(
        &self,
        task: &EmbeddedSurvey,
        group: usize,
        context: &[usize],
        targets: Vec<QuestionRef>,
    ) -> Result<Vec<Vec<f64>>, PriorError> {
        let shown: Vec<(QuestionRef, &[f64])> =
            context.iter().filter_map(|&q| Some((QuestionRef::Known(q), task.answer(group, q)?))).collect();
        let exclude = self.groups.iter().position(|&g| g == group);
        Ok(self.prior.distributions(&shown, &targets, exclude)?.into_iter().map(|v| v.distribution).collect())
    }
}

/// The candidates for the rule that gives a new question its prior ([`NeighbourRule`]): options
/// by position, then by meaning at every one of `option_weights`; with each, every count of
/// `neighbours`, each with equal weights and with similarity weights at every one of
/// `temperatures`; in that order.
pub fn rule_candidates(neighbours: &[usize], temperatures: &[f64], option_weights: &[f64]) -> Vec<NeighbourRule> {
    let pairings = std::iter::once(OptionMatch::Position)
        .chain(option_weights.iter().map(|&weight| OptionMatch::Meaning { weight }));
    pairings
        .flat_map(|options| {
            neighbours.iter().flat_map(move |&n| {
                let similarity = temperatures.iter().map(|&t| NeighbourWeights::Similarity { temperature: t });
                std::iter::once(NeighbourWeights::Equal).chain(similarity).map(move |weights| NeighbourRule {
                    neighbours: n,
                    weights,
                    options,
                })
            })
        })
        .collect()
}

/// A rule for new questions with its score in the selection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RuleScore {
    /// The rule.
    pub rule: NeighbourRule,
    /// Mean alignment of its priors with the left-out groups' answers.
    pub score: f64,
}

/// The rule for new questions a run uses, and how it was chosen ([`select_rule`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSelection {
    /// The candidate with the best score (the first of equals).
    pub selected: NeighbourRule,
    /// Every candidate, in the order given.
    pub candidates: Vec<RuleScore>,
    /// The (group, question) pairs scored.
    pub pairs: usize,
}

/// Selects the rule for new questions among `candidates` on `groups`' answers to `questions`
/// (the meta-training data: never a test group, never a new question), leaving one group and one
/// question out at a time: each question's prior as a new question ([`QuestionRef::Hidden`], its
/// own answers set aside) from the *other* groups' answers (train mean) is scored against the
/// left-out group's answer, as a held-out group's answer to a new question is at test time. The
/// candidate with the best mean alignment wins; the first of equals, so a grid that starts with
/// the default rule keeps it unless another does better.
pub fn select_rule(
    task: &EmbeddedSurvey,
    groups: &[usize],
    questions: &[usize],
    candidates: &[NeighbourRule],
) -> Result<RuleSelection, PriorError> {
    let SurveyPrior { mut prior, groups: prior_groups } =
        SurveyPrior::over(task, PriorKind::TrainMean, groups, questions)?.with_ranked_neighbours();
    // Per prior group (its index in the prior and in the survey), the questions it answered that
    // have a prior without it, as new questions.
    let items: Vec<(usize, usize, Vec<usize>)> = (prior_groups.iter().enumerate())
        .map(|(i, &g)| {
            let answered = |q: usize| task.answer(g, q).is_some();
            let targets =
                questions.iter().copied().filter(|&q| answered(q) && prior.has_prior(&QuestionRef::Hidden(q), Some(i)));
            (i, g, targets.collect())
        })
        .collect();
    let mut scored = Vec::with_capacity(candidates.len());
    let mut pairs = 0;
    for &rule in candidates {
        prior = prior.with_neighbour_rule(rule)?;
        let mut scores = Vec::new();
        for (i, g, targets) in &items {
            let hidden: Vec<QuestionRef> = targets.iter().map(|&q| QuestionRef::Hidden(q)).collect();
            for (&q, value) in targets.iter().zip(prior.distributions(&[], &hidden, Some(*i))?) {
                scores.extend(task.answer(*g, q).and_then(|truth| task.score(q, &value.distribution, truth)));
            }
        }
        pairs = scores.len();
        scored.push(RuleScore { rule, score: gpo_core::metrics::mean(&scores).unwrap_or(f64::NEG_INFINITY) });
    }
    // The best score, the first of equals.
    let best = scored.iter().reduce(|best, c| if c.score > best.score { c } else { best });
    let selected = best.map_or_else(NeighbourRule::default, |b| b.rule);
    Ok(RuleSelection { selected, candidates: scored, pairs })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::synthetic::{SyntheticSpec, synthetic_survey};

    /// The rule for new questions recomputed independently in f64, for the tests of its users:
    /// question `q`'s distribution as the mean of `mean_of(c)` (a distribution over `c`'s options)
    /// over the `rule.neighbours` questions `c` of `pool` other than `q` with as many options whose
    /// unit mean option embeddings are most similar to `q`'s (plus, options matched by meaning,
    /// the weight × their matched options' mean similarity: gpo-core's `option_signatures` and
    /// `match_options`, tested there against independent values), weighted as `rule` says, each
    /// value taken for `q`'s option from the option it is paired with.
    pub(crate) fn reference_rule(
        task: &EmbeddedSurvey,
        pool: &[usize],
        q: usize,
        rule: NeighbourRule,
        mean_of: impl Fn(usize) -> Vec<f64>,
    ) -> Vec<f64> {
        let unit = |q: usize| -> Vec<f64> {
            let mut v = vec![0.0; task.dim];
            task.embeddings[q]
                .chunks_exact(task.dim)
                .for_each(|r| v.iter_mut().zip(r).for_each(|(s, &x)| *s += f64::from(x)));
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter().map(|x| x / norm).collect()
        };
        let options = |q: usize| task.survey.questions[q].options.len();
        let signatures = |q: usize| gpo_core::prior::option_signatures(&task.embeddings[q], options(q), task.dim);
        let pairing = |c: usize| -> (f64, Vec<usize>) {
            let cosine: f64 = unit(c).iter().zip(unit(q)).map(|(a, b)| a * b).sum();
            match rule.options {
                OptionMatch::Position => (cosine, (0..options(q)).collect()),
                OptionMatch::Meaning { weight } => {
                    let (order, matched) = gpo_core::prior::match_options(&signatures(q), &signatures(c));
                    (cosine + weight * matched, order)
                }
            }
        };
        let mut near: Vec<(f64, usize)> =
            pool.iter().filter(|&&c| c != q && options(c) == options(q)).map(|&c| (pairing(c).0, c)).collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0));
        near.truncate(rule.neighbours);
        let weights: Vec<f64> = match rule.weights {
            NeighbourWeights::Equal => vec![1.0; near.len()],
            NeighbourWeights::Similarity { temperature } => {
                near.iter().map(|(s, _)| ((s - near[0].0) / temperature).exp()).collect()
            }
        };
        let total: f64 = weights.iter().sum();
        let mut mean = vec![0.0; options(q)];
        for (&(_, c), w) in near.iter().zip(&weights) {
            let (values, order) = (mean_of(c), pairing(c).1);
            mean.iter_mut().zip(order).for_each(|(m, k)| *m += w * values[k] / total);
        }
        mean
    }

    /// The selection's score of a rule recomputed independently in f64: per group and question,
    /// the other groups' mean answers to the question's nearest others ([`reference_rule`]),
    /// scored against the group's answer, averaged over every (group, question). Tolerance 1e-9
    /// (gpo-core's question vectors are f32; the equal-weights scores agree to ~1e-15, the
    /// similarity weights to ~1e-6 relative per weight, averaged over hundreds of items).
    fn reference_score(task: &EmbeddedSurvey, groups: &[usize], questions: &[usize], rule: NeighbourRule) -> f64 {
        let mut scores = Vec::new();
        for &g in groups {
            let others: Vec<usize> = groups.iter().copied().filter(|&o| o != g).collect();
            let mean_of = |c: usize| -> Vec<f64> {
                let answers: Vec<&[f64]> = others.iter().map(|&h| task.answer(h, c).unwrap()).collect();
                (0..answers[0].len())
                    .map(|o| answers.iter().map(|a| a[o]).sum::<f64>() / answers.len() as f64)
                    .collect()
            };
            for &q in questions {
                let predicted = reference_rule(task, questions, q, rule, mean_of);
                scores.extend(task.score(q, &predicted, task.answer(g, q).unwrap()));
            }
        }
        scores.iter().sum::<f64>() / scores.len() as f64
    }

    #[test]
    fn the_rule_is_selected_by_leaving_one_group_and_question_out() {
        let task =
            synthetic_survey(SyntheticSpec { groups: 5, questions: 40, dim: 6, clusters: 2, sharpness: 3.0, seed: 7 });
        let (groups, questions): (Vec<usize>, Vec<usize>) = ((0..4).collect(), (0..30).collect());
        let candidates = rule_candidates(&[5, 2], &[0.05], &[0.5]);
        let similarity = |t: f64| NeighbourWeights::Similarity { temperature: t };
        let by_position = [
            NeighbourRule { neighbours: 5, weights: NeighbourWeights::Equal, ..Default::default() },
            NeighbourRule { neighbours: 5, weights: similarity(0.05), ..Default::default() },
            NeighbourRule { neighbours: 2, weights: NeighbourWeights::Equal, ..Default::default() },
            NeighbourRule { neighbours: 2, weights: similarity(0.05), ..Default::default() },
        ];
        let by_meaning = by_position.map(|r| NeighbourRule { options: OptionMatch::Meaning { weight: 0.5 }, ..r });
        assert_eq!(candidates, [by_position, by_meaning].concat());
        let selection = select_rule(&task, &groups, &questions, &candidates).unwrap();
        assert_eq!(selection.pairs, 4 * 30);
        // Options matched by meaning change the values on these questions.
        assert_ne!(selection.candidates[0].score, selection.candidates[4].score);
        for (c, &rule) in selection.candidates.iter().zip(&candidates) {
            assert_eq!(c.rule, rule);
            let expected = reference_score(&task, &groups, &questions, rule);
            assert!((c.score - expected).abs() < 1e-9, "{rule:?}: {} vs {expected}", c.score);
        }
        let best = selection.candidates.iter().map(|c| c.score).fold(f64::NEG_INFINITY, f64::max);
        let first_best = selection.candidates.iter().find(|c| c.score == best).unwrap();
        assert_eq!(selection.selected, first_best.rule);
        // Equal candidates: the first is kept.
        let twice = [candidates[1], candidates[1], candidates[0]];
        let again = select_rule(&task, &groups, &questions, &twice).unwrap();
        assert_eq!(again.candidates[0].score, again.candidates[1].score);
        let best = if again.candidates[2].score > again.candidates[0].score { candidates[0] } else { candidates[1] };
        assert_eq!(again.selected, best);
        // Deterministic.
        assert_eq!(select_rule(&task, &groups, &questions, &candidates).unwrap(), selection);
    }
}
