//! Population priors: what a set of known groups (the *prior groups*, a model's meta-training
//! groups) answer, the extra input of GPO's prior models ([`crate::GpoConfig::prior`]) and the
//! population baselines.
//!
//! A [`PopulationPrior`] holds the prior groups' answer distributions per question and computes,
//! for a new group shown on some context questions, a prior distribution for any question:
//!
//! * [`PriorKind::TrainMean`]: the prior groups' average answer;
//! * [`PriorKind::KnnGroups`]: the prior groups weighted by `softmax(−d / temperature)`, `d` a
//!   group's mean misalignment (1 − alignment) with the new group over the context questions.
//!
//! **Unknown questions.** A question that no prior group answered (a new question, or one whose
//! key the prior does not hold) has no population answer. Its prior is then the mean of the
//! `neighbours` questions nearest to it in embedding space (cosine similarity of the questions'
//! mean option embeddings) among those with the same number of options, options aligned by
//! position ([`PriorSource::Nearest`]), weighted as the prior's [`NeighbourRule`] says: equally,
//! or by `exp((s − s₁) / temperature)`, `s` a neighbour's similarity and `s₁` the nearest one's.
//! The candidates are the known questions, each with its prior, and the group's own context questions, each with the group's answer: where the group
//! answered a neighbour, its answer stands in for the population's estimate of it, so a group's
//! answers to questions like a new one shape its prior for it. A question is never its own
//! neighbour. Where no candidate has that many options the prior is undefined and
//! [`PriorError::NoNeighbour`] is returned: never a silent uniform.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::batch::Question;
use crate::metrics::{Metric, mean};

/// Largest accepted `|sum − 1|` of an answer distribution given to a prior or a predictor.
pub const SUM_TOLERANCE: f64 = 1e-3;

/// Default number of nearest known questions whose priors make an unknown question's prior.
pub const DEFAULT_NEIGHBOURS: usize = 5;

/// Largest number of nearest questions averaged for an unknown question.
pub const MAX_NEIGHBOURS: usize = 1_024;

/// The kNN temperature's accepted range: below it every weight but the best group's underflows to
/// zero (the kNN prior is then its nearest group), above it the weights are uniform (the prior is
/// the train mean); both are better asked for by name.
pub const TEMPERATURE_RANGE: core::ops::RangeInclusive<f64> = 1e-6..=1e6;

/// Largest magnitude of an option's ordinal value: Wasserstein distances between groups stay
/// finite (far below `f64::MAX`) for any answers.
pub const MAX_ORDINAL: f64 = 1e9;

/// How an unknown question's prior weighs its nearest questions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NeighbourWeights {
    /// Every neighbour counts the same (the only rule of format-3 model files).
    Equal,
    /// Neighbour `i` weighs `exp((s_i − s_1) / temperature)`, `s_i` its cosine similarity to the
    /// question and `s_1` the nearest neighbour's: a low temperature trusts the nearest
    /// questions, a high one tends to equal weights.
    Similarity {
        /// Softmax temperature, in [`TEMPERATURE_RANGE`].
        temperature: f64,
    },
}

/// The rule for unknown questions (see the module docs): how many nearest questions with as many
/// options make the prior, and how they are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourRule {
    /// How many nearest questions (1 to [`MAX_NEIGHBOURS`]).
    pub neighbours: usize,
    /// Their weights.
    pub weights: NeighbourWeights,
}

impl Default for NeighbourRule {
    /// [`DEFAULT_NEIGHBOURS`] questions, equally weighted.
    fn default() -> Self {
        Self { neighbours: DEFAULT_NEIGHBOURS, weights: NeighbourWeights::Equal }
    }
}

impl NeighbourRule {
    /// Checks the parameters: a count in 1..=[`MAX_NEIGHBOURS`], a temperature in
    /// [`TEMPERATURE_RANGE`].
    pub fn validate(&self) -> Result<(), PriorError> {
        if self.neighbours == 0 || self.neighbours > MAX_NEIGHBOURS {
            return Err(PriorError::Neighbours(self.neighbours));
        }
        match self.weights {
            NeighbourWeights::Similarity { temperature } if !TEMPERATURE_RANGE.contains(&temperature) => {
                Err(PriorError::Temperature(temperature))
            }
            _ => Ok(()),
        }
    }

    /// The weighted mean of the neighbours' `values` (each a distribution over `options`, with
    /// the neighbour's question vector) for the question of unit vector `vector`; similarities are
    /// computed only where the weights read them.
    fn mean(&self, values: &[(&[f64], &[f32])], vector: &[f32], options: usize) -> Vec<f64> {
        let mut mean = alloc::vec![0.0; options];
        match self.weights {
            NeighbourWeights::Equal => {
                for (p, _) in values {
                    mean.iter_mut().zip(*p).for_each(|(m, v)| *m += v / values.len() as f64);
                }
            }
            NeighbourWeights::Similarity { temperature } => {
                let similarities: Vec<f64> = values.iter().map(|(_, u)| dot(u, vector)).collect();
                let best = similarities.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = similarities.iter().map(|s| libm::exp((s - best) / temperature)).collect();
                // The nearest neighbour weighs 1, so the total is at least 1.
                let total: f64 = weights.iter().sum();
                for ((p, _), w) in values.iter().zip(&weights) {
                    mean.iter_mut().zip(*p).for_each(|(m, v)| *m += w / total * v);
                }
            }
        }
        mean
    }
}

impl core::fmt::Display for NeighbourRule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.weights {
            NeighbourWeights::Equal => write!(f, "the mean of the {} nearest questions", self.neighbours),
            NeighbourWeights::Similarity { temperature } => write!(
                f,
                "the {} nearest questions weighted by similarity (temperature {temperature})",
                self.neighbours
            ),
        }
    }
}

/// Which population prior a model reads (or a baseline predicts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PriorKind {
    /// The prior groups' average answer.
    TrainMean,
    /// The prior groups weighted by `exp(−(d − min d) / temperature)` over the context questions.
    KnnGroups {
        /// Softmax temperature (positive).
        temperature: f64,
    },
}

impl PriorKind {
    /// Checks the parameters: a kNN temperature in [`TEMPERATURE_RANGE`].
    pub fn validate(&self) -> Result<(), PriorError> {
        match *self {
            Self::TrainMean => Ok(()),
            Self::KnnGroups { temperature } if TEMPERATURE_RANGE.contains(&temperature) => Ok(()),
            Self::KnnGroups { temperature } => Err(PriorError::Temperature(temperature)),
        }
    }

    /// `train_mean` or `knn_groups`: the name of the baseline this prior is.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TrainMean => "train_mean",
            Self::KnnGroups { .. } => "knn_groups",
        }
    }
}

/// Why a prior cannot be built or computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriorError {
    /// A kNN temperature outside [`TEMPERATURE_RANGE`].
    #[error("prior temperature must be between 1e-6 and 1e6, got {0:e}")]
    Temperature(f64),
    /// `neighbours` is zero or above [`MAX_NEIGHBOURS`].
    #[error("the number of neighbour questions must be between 1 and 1024, got {0}")]
    Neighbours(usize),
    /// No prior group.
    #[error("a prior needs at least one group")]
    NoGroups,
    /// Two questions share a key.
    #[error("question key `{0}` appears twice")]
    DuplicateKey(String),
    /// A question without options or a key.
    #[error("prior question {0}: needs a non-empty key and at least one option")]
    EmptyQuestion(usize),
    /// An option's ordinal value that is not finite or above [`MAX_ORDINAL`] in magnitude.
    #[error(
        "prior question `{key}`: ordinal value {value:e} of option {option} is not a finite number of magnitude at most 1e9"
    )]
    Ordinal {
        /// Question key.
        key: String,
        /// Option index.
        option: usize,
        /// The value.
        value: f64,
    },
    /// A question vector of the wrong length.
    #[error("prior question `{key}`: {found} embedding values, expected {expected} (one mean option embedding)")]
    VectorLength {
        /// Question key.
        key: String,
        /// Values given.
        found: usize,
        /// Embedding dimension.
        expected: usize,
    },
    /// A question vector with a value that is not finite.
    #[error("prior question `{key}`: embedding value {index} is not finite")]
    VectorValue {
        /// Question key.
        key: String,
        /// Position of the value.
        index: usize,
    },
    /// A group's answers do not cover the questions.
    #[error("prior group `{group}`: {found} answer slots for {expected} questions")]
    AnswerCount {
        /// Group name.
        group: String,
        /// Slots given.
        found: usize,
        /// Questions of the prior.
        expected: usize,
    },
    /// A group's answer is not a distribution over the question's options.
    #[error("prior group `{group}`, question `{key}`: {why}")]
    BadAnswer {
        /// Group name.
        group: String,
        /// Question key.
        key: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A question's key is known but its option count differs.
    #[error("question `{key}` has {found} options here but {expected} in the prior")]
    OptionCount {
        /// Question key.
        key: String,
        /// Options given.
        found: usize,
        /// Options in the prior.
        expected: usize,
    },
    /// An unknown question with an option count no known question has.
    #[error(
        "no prior for {}: no prior group answered it and no other question with {options} options is known or in the context",
        match question { Some(key) => alloc::format!("question `{key}` ({options} options)"), None => alloc::format!("a new question with {options} options") }
    )]
    NoNeighbour {
        /// The question's key, when the prior holds it.
        question: Option<String>,
        /// Option count.
        options: usize,
    },
    /// A context answer given for a known question is not a distribution over its options.
    #[error("context answer {index}: {why}")]
    BadContext {
        /// Position among the context answers.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// `exclude` names no prior group.
    #[error("excluded group {0} is not a prior group")]
    ExcludedGroup(usize),
}

/// A question of the prior: its key, the ordinal values of its options, and its embedding (the
/// unit-length mean of its option embeddings, used to find the questions nearest an unknown one).
#[derive(Debug, Clone, PartialEq)]
pub struct PriorQuestion {
    /// Unique key (the survey's question key).
    pub key: String,
    /// Ordinal value of each option (read by the Wasserstein metric).
    pub ordinal: Vec<f64>,
    /// Unit-length mean option embedding.
    pub vector: Vec<f32>,
}

impl PriorQuestion {
    /// A question from its option embeddings (`ordinal.len() × dim`, row-major).
    pub fn new(key: &str, ordinal: Vec<f64>, option_embeddings: &[f32], dim: usize) -> Self {
        Self { key: key.into(), vector: question_vector(option_embeddings, dim), ordinal }
    }

    /// Number of options.
    pub fn n_options(&self) -> usize {
        self.ordinal.len()
    }
}

/// The unit-length mean of `options × dim` option embeddings (zero if they are all zero or the
/// length is not a multiple of `dim`).
pub fn question_vector(option_embeddings: &[f32], dim: usize) -> Vec<f32> {
    let mut sum = alloc::vec![0.0f64; dim];
    if dim > 0 && option_embeddings.len().is_multiple_of(dim) {
        for row in option_embeddings.chunks_exact(dim) {
            sum.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v));
        }
    }
    let norm = libm::sqrt(sum.iter().map(|v| v * v).sum::<f64>());
    sum.iter().map(|&v| if norm > 0.0 && norm.is_finite() { (v / norm) as f32 } else { 0.0 }).collect()
}

/// A prior group: its name and its answer distribution on each question of the prior (`None`
/// where it did not answer), in the prior's question order.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorGroup {
    /// Group name.
    pub name: String,
    /// Per question, the group's answer distribution.
    pub answers: Vec<Option<Vec<f64>>>,
}

/// A question as a prior sees it: a known question of the prior, or an unknown one given by its
/// embedding and option count. Made by [`PopulationPrior::resolve`].
#[derive(Debug, Clone, PartialEq)]
pub enum QuestionRef {
    /// Index of a question of the prior.
    Known(usize),
    /// A question of the prior whose own answers are set aside: its prior comes from the rule for
    /// unknown questions over the *other* known questions, as a new question's would. Training a
    /// prior model for new questions gives its targets these priors (leave one question out), the
    /// priors it will read at test time.
    Hidden(usize),
    /// A question the prior does not hold.
    Unknown {
        /// Unit-length mean option embedding.
        vector: Vec<f32>,
        /// Number of options.
        options: usize,
    },
}

/// Where a question's prior came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorSource {
    /// The prior groups' answers to the question itself.
    Answered,
    /// No prior group answered it: the weighted mean of its nearest questions with as many
    /// options ([`NeighbourRule`]).
    Nearest {
        /// The known questions whose prior it averages (indices into
        /// [`PopulationPrior::questions`]), nearest first.
        known: Vec<usize>,
        /// The context questions whose answers it averages (positions in the context), nearest
        /// first: the group's own answers to neighbours it answered.
        context: Vec<usize>,
    },
}

/// A question's prior distribution and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorValue {
    /// Probability of each option.
    pub distribution: Vec<f64>,
    /// How it was obtained.
    pub source: PriorSource,
}

/// The prior groups' answers and the rule that turns them into a prior (see the module docs).
#[derive(Debug, Clone)]
pub struct PopulationPrior {
    kind: PriorKind,
    metric: Metric,
    rule: NeighbourRule,
    dim: usize,
    questions: Vec<PriorQuestion>,
    groups: Vec<PriorGroup>,
    index: BTreeMap<String, usize>,
    /// Per known question, the other known questions with as many options, most similar first
    /// ([`Self::with_ranked_neighbours`]); empty until then.
    ranked: Vec<Vec<u32>>,
}

/// Equal priors give equal values: the neighbour ranking is a cache and does not count.
impl PartialEq for PopulationPrior {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, self.metric, self.rule, self.dim) == (other.kind, other.metric, other.rule, other.dim)
            && self.questions == other.questions
            && self.groups == other.groups
    }
}

/// Checks that `p` is a distribution over `options` options.
fn check_distribution(p: &[f64], options: usize) -> Result<(), &'static str> {
    if p.len() != options {
        return Err("the number of probabilities differs from the number of options");
    }
    if p.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err("probabilities must be finite and non-negative");
    }
    let sum: f64 = p.iter().sum();
    if (sum - 1.0).abs() > SUM_TOLERANCE {
        return Err("probabilities must sum to 1");
    }
    Ok(())
}

impl PopulationPrior {
    /// A prior of `kind` over `groups`' answers to `questions` (embeddings of dimension `dim`),
    /// scored with `metric`; unknown questions take the mean prior of their `neighbours` nearest
    /// known questions ([`Self::with_neighbour_rule`] weighs them otherwise). Every size and value
    /// is checked.
    pub fn new(
        kind: PriorKind,
        metric: Metric,
        neighbours: usize,
        dim: usize,
        questions: Vec<PriorQuestion>,
        groups: Vec<PriorGroup>,
    ) -> Result<Self, PriorError> {
        kind.validate()?;
        let rule = NeighbourRule { neighbours, weights: NeighbourWeights::Equal };
        rule.validate()?;
        if groups.is_empty() {
            return Err(PriorError::NoGroups);
        }
        let mut index = BTreeMap::new();
        for (i, q) in questions.iter().enumerate() {
            if q.key.is_empty() || q.ordinal.is_empty() {
                return Err(PriorError::EmptyQuestion(i));
            }
            if let Some((option, &value)) =
                q.ordinal.iter().enumerate().find(|(_, o)| !o.is_finite() || o.abs() > MAX_ORDINAL)
            {
                return Err(PriorError::Ordinal { key: q.key.clone(), option, value });
            }
            if q.vector.len() != dim {
                return Err(PriorError::VectorLength { key: q.key.clone(), found: q.vector.len(), expected: dim });
            }
            if let Some(index) = q.vector.iter().position(|v| !v.is_finite()) {
                return Err(PriorError::VectorValue { key: q.key.clone(), index });
            }
            if index.insert(q.key.clone(), i).is_some() {
                return Err(PriorError::DuplicateKey(q.key.clone()));
            }
        }
        for g in &groups {
            if g.answers.len() != questions.len() {
                return Err(PriorError::AnswerCount {
                    group: g.name.clone(),
                    found: g.answers.len(),
                    expected: questions.len(),
                });
            }
            for (q, answer) in questions.iter().zip(&g.answers) {
                if let Some(p) = answer {
                    check_distribution(p, q.n_options()).map_err(|why| PriorError::BadAnswer {
                        group: g.name.clone(),
                        key: q.key.clone(),
                        why,
                    })?;
                }
            }
        }
        Ok(Self { kind, metric, rule, dim, questions, groups, index, ranked: Vec::new() })
    }

    /// The same prior with each known question's neighbours ranked once (the other known
    /// questions with as many options, by similarity): priors of unanswered and
    /// [`QuestionRef::Hidden`] questions then skip the search over every question. Values are
    /// identical to the unranked prior's; costs `questions² × dim` once, so it is meant for a
    /// prior that computes many such priors (training for new questions).
    pub fn with_ranked_neighbours(mut self) -> Self {
        let n = self.questions.len();
        let mut similarity = alloc::vec![0.0f64; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let s = dot(&self.questions[i].vector, &self.questions[j].vector);
                similarity[i * n + j] = s;
                similarity[j * n + i] = s;
            }
        }
        self.ranked = (0..n)
            .map(|i| {
                let options = self.questions[i].n_options();
                let mut order: Vec<u32> =
                    (0..n).filter(|&j| j != i && self.questions[j].n_options() == options).map(|j| j as u32).collect();
                let row = &similarity[i * n..(i + 1) * n];
                order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
                order
            })
            .collect();
        self
    }

    /// The prior's kind.
    pub fn kind(&self) -> PriorKind {
        self.kind
    }

    /// The metric that compares groups (kNN weights).
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Nearest known questions averaged for an unknown question.
    pub fn neighbours(&self) -> usize {
        self.rule.neighbours
    }

    /// The rule for unknown questions.
    pub fn neighbour_rule(&self) -> NeighbourRule {
        self.rule
    }

    /// The same prior with another rule for unknown questions (checked).
    pub fn with_neighbour_rule(mut self, rule: NeighbourRule) -> Result<Self, PriorError> {
        rule.validate()?;
        self.rule = rule;
        Ok(self)
    }

    /// Embedding dimension of the question vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The known questions.
    pub fn questions(&self) -> &[PriorQuestion] {
        &self.questions
    }

    /// The prior groups.
    pub fn groups(&self) -> &[PriorGroup] {
        &self.groups
    }

    /// Index of the known question with `key`.
    pub fn question_index(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// Index of the prior group named `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// The same prior with another kind (same groups and questions).
    pub fn with_kind(mut self, kind: PriorKind) -> Result<Self, PriorError> {
        kind.validate()?;
        self.kind = kind;
        Ok(self)
    }

    /// How this prior sees a question with optional `key` and `options × dim` option embeddings:
    /// known when its key is one of the prior's questions, unknown otherwise (no key, or a key
    /// the prior does not hold). A known key with another number of options is an error.
    pub fn resolve(
        &self,
        key: Option<&str>,
        option_embeddings: &[f32],
        options: usize,
    ) -> Result<QuestionRef, PriorError> {
        if let Some(i) = key.and_then(|k| self.question_index(k)) {
            let expected = self.questions[i].n_options();
            if expected != options {
                return Err(PriorError::OptionCount { key: self.questions[i].key.clone(), found: options, expected });
            }
            return Ok(QuestionRef::Known(i));
        }
        Ok(QuestionRef::Unknown { vector: question_vector(option_embeddings, self.dim), options })
    }

    /// The prior of each of `targets` for a group whose answers to `context` are given; with
    /// `exclude`, that prior group is left out (a meta-training group never sees its own answers
    /// through the prior).
    pub fn distributions(
        &self,
        context: &[(QuestionRef, &[f64])],
        targets: &[QuestionRef],
        exclude: Option<usize>,
    ) -> Result<Vec<PriorValue>, PriorError> {
        if let Some(g) = exclude
            && g >= self.groups.len()
        {
            return Err(PriorError::ExcludedGroup(g));
        }
        for (index, (question, answer)) in context.iter().enumerate() {
            let options = match question {
                QuestionRef::Known(i) | QuestionRef::Hidden(i) => self.questions[*i].n_options(),
                QuestionRef::Unknown { options, .. } => *options,
            };
            check_distribution(answer, options).map_err(|why| PriorError::BadContext { index, why })?;
        }
        let weights = self.weights(context, exclude);
        targets.iter().map(|q| self.prior_of(q, &weights, context)).collect()
    }

    /// Whether [`Self::distributions`] gives `question` a prior when prior group `exclude` is
    /// left out: some other prior group answered it, or (its answers unknown) some other question
    /// with as many options, whose prior the rule for unknown questions then uses. `false` is the
    /// case that gives [`PriorError::NoNeighbour`].
    pub fn has_prior(&self, question: &QuestionRef, exclude: Option<usize>) -> bool {
        let answered = |q: usize| {
            self.groups.iter().enumerate().any(|(g, group)| Some(g) != exclude && group.answers[q].is_some())
        };
        let (options, own) = match question {
            QuestionRef::Known(q) if answered(*q) => return true,
            QuestionRef::Known(q) | QuestionRef::Hidden(q) => (self.questions[*q].n_options(), Some(*q)),
            QuestionRef::Unknown { options, .. } => (*options, None),
        };
        self.questions.iter().enumerate().any(|(i, q)| Some(i) != own && q.n_options() == options && answered(i))
    }

    /// The priors of a group's `context` questions (shown with their answers) and of the
    /// `targets`, each resolved by its key and option embeddings ([`Self::resolve`]): what a
    /// prior model reads, and the prior baselines of the same data.
    #[allow(clippy::type_complexity)]
    pub fn for_questions(
        &self,
        context: &[Question<'_>],
        targets: &[Question<'_>],
    ) -> Result<(Vec<PriorValue>, Vec<PriorValue>), PriorError> {
        let resolve = |q: &Question<'_>| {
            let options = q.embeddings().len().checked_div(self.dim).unwrap_or(0);
            self.resolve(q.key_str(), q.embeddings(), options)
        };
        let answers: Vec<Vec<f64>> = context
            .iter()
            .map(|q| q.answer_values().unwrap_or_default().iter().map(|&v| f64::from(v)).collect())
            .collect();
        let context_refs: Vec<QuestionRef> = context.iter().map(resolve).collect::<Result<_, _>>()?;
        let shown: Vec<(QuestionRef, &[f64])> =
            context_refs.iter().cloned().zip(answers.iter().map(Vec::as_slice)).collect();
        let all: Vec<QuestionRef> =
            context_refs.into_iter().map(Ok).chain(targets.iter().map(resolve)).collect::<Result<_, _>>()?;
        let mut priors = self.distributions(&shown, &all, None)?;
        let target_priors = priors.split_off(context.len());
        Ok((priors, target_priors))
    }

    /// Each prior group's weight (0 for the excluded group).
    fn weights(&self, context: &[(QuestionRef, &[f64])], exclude: Option<usize>) -> Vec<f64> {
        let included = |g: usize| Some(g) != exclude;
        let PriorKind::KnnGroups { temperature } = self.kind else {
            return (0..self.groups.len()).map(|g| if included(g) { 1.0 } else { 0.0 }).collect();
        };
        let distances: Vec<Option<f64>> = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                if !included(g) {
                    return None;
                }
                let gaps: Vec<f64> = context
                    .iter()
                    .filter_map(|(question, mine)| {
                        let QuestionRef::Known(q) = question else { return None };
                        let theirs = group.answers[*q].as_deref()?;
                        self.metric.score(&self.questions[*q].ordinal, theirs, mine).map(|s| 1.0 - s)
                    })
                    .collect();
                mean(&gaps)
            })
            .collect();
        // Groups sharing no scored context question with the new group get the mean distance.
        let known: Vec<f64> = distances.iter().flatten().copied().collect();
        let fallback = mean(&known).unwrap_or(0.0);
        let best = known.iter().copied().fold(f64::INFINITY, f64::min);
        let best = if best.is_finite() { best } else { 0.0 };
        distances
            .iter()
            .enumerate()
            .map(|(g, d)| if included(g) { libm::exp(-(d.unwrap_or(fallback) - best) / temperature) } else { 0.0 })
            .collect()
    }

    /// `Σ weight · answer` over the groups that answered question `q`, normalised; `None` when no
    /// group with positive weight answered it.
    fn weighted_mean(&self, q: usize, weights: &[f64]) -> Option<Vec<f64>> {
        let mut sum = alloc::vec![0.0; self.questions[q].n_options()];
        let mut any = false;
        for (group, &w) in self.groups.iter().zip(weights) {
            if w <= 0.0 {
                continue;
            }
            if let Some(answer) = &group.answers[q] {
                any = true;
                sum.iter_mut().zip(answer).for_each(|(s, a)| *s += w * a);
            }
        }
        let total: f64 = sum.iter().sum();
        (any && total > 0.0 && total.is_finite()).then(|| sum.iter().map(|s| s / total).collect())
    }

    fn prior_of(
        &self,
        question: &QuestionRef,
        weights: &[f64],
        context: &[(QuestionRef, &[f64])],
    ) -> Result<PriorValue, PriorError> {
        let (vector, options, own) = match question {
            QuestionRef::Known(q) => {
                if let Some(distribution) = self.weighted_mean(*q, weights) {
                    return Ok(PriorValue { distribution, source: PriorSource::Answered });
                }
                (self.questions[*q].vector.as_slice(), self.questions[*q].n_options(), Some(*q))
            }
            QuestionRef::Hidden(q) => (self.questions[*q].vector.as_slice(), self.questions[*q].n_options(), Some(*q)),
            QuestionRef::Unknown { vector, options } => (vector.as_slice(), *options, None),
        };
        // The group's answer to known question `i`, where its context shows one.
        let answered = |i: usize| {
            context.iter().position(|(r, _)| matches!(r, QuestionRef::Known(k) | QuestionRef::Hidden(k) if *k == i))
        };
        // Context questions the prior does not know, with as many options (never the question
        // itself), as candidates: `(position in the context, vector)`.
        let unknown_context: Vec<(usize, &[f32])> = context
            .iter()
            .enumerate()
            .filter_map(|(c, (r, _))| match r {
                QuestionRef::Unknown { vector: v, options: o } if *o == options && r != question => {
                    Some((c, v.as_slice()))
                }
                _ => None,
            })
            .collect();
        // A candidate's value: the group's own answer where the context has one (a known question
        // it answered becomes that context answer), else its prior; with its question vector.
        let value = |candidate: Neighbour| -> Option<(Neighbour, Vec<f64>, &[f32])> {
            match candidate {
                Neighbour::Known(i) => {
                    let v = self.questions[i].vector.as_slice();
                    match answered(i) {
                        Some(c) => Some((Neighbour::Context(c), context[c].1.to_vec(), v)),
                        None => Some((candidate, self.weighted_mean(i, weights)?, v)),
                    }
                }
                Neighbour::Context(c) => {
                    let v = unknown_context.iter().find(|&&(u, _)| u == c).map_or(&[][..], |&(_, v)| v);
                    Some((candidate, context[c].1.to_vec(), v))
                }
            }
        };
        // Most similar first, ties by index (known questions before context ones), so the choice
        // is deterministic; the ranking cached by `with_ranked_neighbours` where it applies (read
        // lazily: only until enough neighbours have a value).
        let ranked: Box<dyn Iterator<Item = Neighbour> + '_> = match own.and_then(|q| self.ranked.get(q)) {
            Some(order) if unknown_context.is_empty() => Box::new(order.iter().map(|&i| Neighbour::Known(i as usize))),
            _ => {
                let n_known = self.questions.len();
                let known = self.questions.iter().enumerate().filter_map(|(i, q)| {
                    (Some(i) != own && q.n_options() == options).then_some((i, q.vector.as_slice()))
                });
                let shown = unknown_context.iter().map(|&(c, v)| (n_known + c, v));
                Box::new(
                    rank_by_similarity(vector, known.chain(shown))
                        .into_iter()
                        .map(move |i| if i < n_known { Neighbour::Known(i) } else { Neighbour::Context(i - n_known) }),
                )
            }
        };
        let nearest: Vec<(Neighbour, Vec<f64>, &[f32])> = ranked.filter_map(value).take(self.rule.neighbours).collect();
        if nearest.is_empty() {
            return Err(PriorError::NoNeighbour { question: own.map(|q| self.questions[q].key.clone()), options });
        }
        let values: Vec<(&[f64], &[f32])> = nearest.iter().map(|(_, p, u)| (p.as_slice(), *u)).collect();
        let distribution = self.rule.mean(&values, vector, options);
        let (mut known, mut shown) = (Vec::new(), Vec::new());
        for (n, _, _) in &nearest {
            match *n {
                Neighbour::Known(i) => known.push(i),
                Neighbour::Context(c) => shown.push(c),
            }
        }
        Ok(PriorValue { distribution, source: PriorSource::Nearest { known, context: shown } })
    }
}

/// A candidate neighbour of an unknown question: a known question of the prior, or a context
/// question it does not know (position in the context).
#[derive(Debug, Clone, Copy)]
enum Neighbour {
    Known(usize),
    Context(usize),
}

/// The candidates' indices, most similar to `vector` first (similarity: the dot product of unit
/// question vectors, see [`question_vector`]; ties by index, so the order is deterministic). The
/// rule that picks an unknown question's nearest known questions, for callers that show them.
pub fn rank_by_similarity<'a>(vector: &[f32], candidates: impl IntoIterator<Item = (usize, &'a [f32])>) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = candidates.into_iter().map(|(i, c)| (dot(c, vector), i)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// `Σ a·b` in f64 (the similarity of two unit question vectors).
fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn question(key: &str, options: usize, direction: &[f32]) -> PriorQuestion {
        let ordinal = (1..=options).map(|i| i as f64).collect();
        let rows: Vec<f32> = (0..options).flat_map(|_| direction.iter().copied()).collect();
        PriorQuestion::new(key, ordinal, &rows, direction.len())
    }

    /// Two groups, three questions (q2 answered by nobody).
    fn prior(kind: PriorKind) -> PopulationPrior {
        let questions =
            vec![question("q0", 2, &[1.0, 0.0]), question("q1", 2, &[0.0, 1.0]), question("q2", 3, &[1.0, 1.0])];
        let groups = vec![
            PriorGroup { name: "a".into(), answers: vec![Some(vec![1.0, 0.0]), Some(vec![0.2, 0.8]), None] },
            PriorGroup { name: "b".into(), answers: vec![Some(vec![0.0, 1.0]), Some(vec![0.6, 0.4]), None] },
        ];
        PopulationPrior::new(kind, Metric::Wasserstein, 2, 2, questions, groups).unwrap()
    }

    fn unknown_of(p: &PopulationPrior, options: usize) -> QuestionRef {
        p.resolve(None, &vec![0.5; options * 2], options).unwrap()
    }

    #[test]
    fn ranking_is_by_similarity_then_index() {
        let unit = |x: f32, y: f32| question_vector(&[x, y], 2);
        let (a, b, c, d) = (unit(1.0, 0.0), unit(0.0, 1.0), unit(1.0, 1.0), unit(0.0, 1.0));
        let candidates = [(0, a.as_slice()), (1, b.as_slice()), (2, c.as_slice()), (3, d.as_slice())];
        // Nearest to (1, 0.1): a, then the diagonal c, then the tie b/d by index.
        assert_eq!(rank_by_similarity(&unit(1.0, 0.1), candidates), vec![0, 2, 1, 3]);
        assert_eq!(rank_by_similarity(&unit(0.0, 1.0), candidates[2..].iter().copied()), vec![3, 2]);
        assert!(rank_by_similarity(&a, core::iter::empty()).is_empty());
    }

    #[test]
    fn has_prior_says_exactly_when_distributions_succeed() {
        // One group answers q0 only: q1 (2 options) then takes q0's answer, q2 (3 options) has no
        // neighbour; leaving that group out leaves nothing.
        let questions =
            vec![question("q0", 2, &[1.0, 0.0]), question("q1", 2, &[0.0, 1.0]), question("q2", 3, &[1.0, 1.0])];
        let groups = vec![
            PriorGroup { name: "a".into(), answers: vec![Some(vec![1.0, 0.0]), None, None] },
            PriorGroup { name: "b".into(), answers: vec![None, None, None] },
        ];
        let p = PopulationPrior::new(PriorKind::TrainMean, Metric::JensenShannon, 2, 2, questions, groups).unwrap();
        let cases =
            [QuestionRef::Known(0), QuestionRef::Known(1), QuestionRef::Known(2), unknown_of(&p, 2), unknown_of(&p, 3)];
        for q in &cases {
            for exclude in [None, Some(0), Some(1)] {
                let works = p.distributions(&[], core::slice::from_ref(q), exclude).is_ok();
                assert_eq!(p.has_prior(q, exclude), works, "{q:?}, exclude {exclude:?}");
            }
        }
        assert!(p.has_prior(&QuestionRef::Known(1), None) && !p.has_prior(&QuestionRef::Known(0), Some(0)));
        // A question's own answers do not make it its own neighbour.
        assert!(!p.has_prior(&QuestionRef::Known(2), None));
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn train_mean_averages_and_leaves_the_excluded_group_out() {
        let p = prior(PriorKind::TrainMean);
        let v = p.distributions(&[], &[QuestionRef::Known(1)], None).unwrap();
        assert!(close(&v[0].distribution, &[0.4, 0.6]));
        let v = p.distributions(&[], &[QuestionRef::Known(1)], Some(0)).unwrap();
        assert!(close(&v[0].distribution, &[0.6, 0.4]));
        assert_eq!(p.distributions(&[], &[], Some(2)), Err(PriorError::ExcludedGroup(2)));
    }

    #[test]
    fn knn_weights_follow_the_context_agreement() {
        // The new group answers q0 like group a: W1 distances 0 (a) and 1 (b), span 1, so the
        // weights are 1 and exp(−1 / 0.5).
        let p = prior(PriorKind::KnnGroups { temperature: 0.5 });
        let mine = [1.0, 0.0];
        let v = p.distributions(&[(QuestionRef::Known(0), &mine)], &[QuestionRef::Known(1)], None).unwrap();
        let wb = libm::exp(-2.0);
        let expected = [(0.2 + wb * 0.6) / (1.0 + wb), (0.8 + wb * 0.4) / (1.0 + wb)];
        assert!(close(&v[0].distribution, &expected), "{:?}", v[0].distribution);
        assert_eq!(v[0].source, PriorSource::Answered);
    }

    #[test]
    fn unknown_questions_take_their_nearest_known_questions() {
        let p = prior(PriorKind::TrainMean);
        // Closest to q1's direction: q1 first, then q0.
        let rows = [0.1, 1.0, 0.1, 1.0];
        let unknown = p.resolve(None, &rows, 2).unwrap();
        let v = p.distributions(&[], &[unknown], None).unwrap();
        assert_eq!(v[0].source, PriorSource::Nearest { known: vec![1, 0], context: vec![] });
        assert!(close(&v[0].distribution, &[(0.4 + 0.5) / 2.0, (0.6 + 0.5) / 2.0]));
        // A known key that nobody answered (q2) and no other 3-option question: a typed error.
        let q2 = p.resolve(Some("q2"), &[0.0; 6], 3).unwrap();
        assert_eq!(
            p.distributions(&[], core::slice::from_ref(&q2), None),
            Err(PriorError::NoNeighbour { question: Some("q2".into()), options: 3 })
        );
        assert!(!p.has_prior(&q2, None));
        assert!(p.has_prior(&unknown_of(&p, 2), None) && !p.has_prior(&unknown_of(&p, 4), None));
        assert!(p.has_prior(&QuestionRef::Known(0), Some(0)) && p.has_prior(&QuestionRef::Known(1), None));
        assert!(matches!(p.resolve(Some("q0"), &[0.0; 6], 3), Err(PriorError::OptionCount { .. })));
    }

    #[test]
    fn hidden_questions_take_their_other_nearest_questions_and_ranking_changes_nothing() {
        // Four 2-option questions along directions at 0°, 20°, 50° and 90°, one 3-option question.
        let questions = vec![
            question("q0", 2, &deg(0.0)),
            question("q1", 2, &deg(20.0)),
            question("q2", 2, &deg(50.0)),
            question("q3", 2, &deg(90.0)),
            question("q4", 3, &deg(45.0)),
        ];
        let answers = |a: [f64; 4]| {
            let mut v: Vec<Option<Vec<f64>>> = a.iter().map(|&x| Some(vec![x, 1.0 - x])).collect();
            v.push(Some(vec![0.2, 0.3, 0.5]));
            v
        };
        let groups = vec![
            PriorGroup { name: "a".into(), answers: answers([0.1, 0.2, 0.3, 0.4]) },
            PriorGroup { name: "b".into(), answers: answers([0.5, 0.6, 0.7, 0.8]) },
        ];
        let plain = PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, 2, 2, questions, groups).unwrap();
        let ranked = plain.clone().with_ranked_neighbours();
        assert_eq!(plain, ranked, "the ranking is a cache");
        for p in [&plain, &ranked] {
            // Group a left out, so the prior is group b's answers. q1 hidden: its two nearest
            // others are q0 (20° away) and q2 (30°), b's answers 0.5 and 0.7, averaged: 0.6. q0
            // hidden: q1 (20°) and q2 (50°), 0.6 and 0.7: 0.65.
            let v = p.distributions(&[], &[QuestionRef::Hidden(1), QuestionRef::Hidden(0)], Some(0)).unwrap();
            assert_eq!(v[0].source, PriorSource::Nearest { known: vec![0, 2], context: vec![] });
            assert!(close(&v[0].distribution, &[0.6, 0.4]), "{:?}", v[0].distribution);
            assert_eq!(v[1].source, PriorSource::Nearest { known: vec![1, 2], context: vec![] });
            assert!(close(&v[1].distribution, &[0.65, 0.35]), "{:?}", v[1].distribution);
            // Known questions keep their own answers; the only 3-option question has no other.
            let v = p.distributions(&[], &[QuestionRef::Known(1)], None).unwrap();
            assert_eq!(v[0].source, PriorSource::Answered);
            assert!(!p.has_prior(&QuestionRef::Hidden(4), None) && p.has_prior(&QuestionRef::Known(4), None));
            assert_eq!(
                p.distributions(&[], &[QuestionRef::Hidden(4)], None),
                Err(PriorError::NoNeighbour { question: Some("q4".into()), options: 3 })
            );
        }
        // Every hidden and unknown prior is the same with and without the ranking.
        let all: Vec<QuestionRef> = (0..5).map(QuestionRef::Hidden).filter(|q| plain.has_prior(q, None)).collect();
        assert_eq!(plain.distributions(&[], &all, Some(1)), ranked.distributions(&[], &all, Some(1)));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let p = prior(PriorKind::TrainMean);
        let bad = [0.5, 0.2];
        assert!(matches!(
            p.distributions(&[(QuestionRef::Known(0), &bad)], &[], None),
            Err(PriorError::BadContext { index: 0, .. })
        ));
        let groups = vec![PriorGroup { name: "a".into(), answers: vec![Some(vec![0.5, 0.6])] }];
        let questions = vec![question("q0", 2, &[1.0, 0.0])];
        assert!(matches!(
            PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, 1, 2, questions, groups),
            Err(PriorError::BadAnswer { .. })
        ));
        assert!(PriorKind::KnnGroups { temperature: 0.0 }.validate().is_err());
    }

    /// A unit vector at `d` degrees.
    fn deg(d: f64) -> [f32; 2] {
        [libm::cos(d.to_radians()) as f32, libm::sin(d.to_radians()) as f32]
    }

    /// Four 2-option questions q0..q3 along 0°, 20°, 50° and 90°, answered by groups a (0.1, 0.2,
    /// 0.3, 0.4 on the first option) and b (0.5 … 0.8): a train-mean prior of 0.3, 0.4, 0.5, 0.6
    /// whose unknown questions take their `neighbours` nearest.
    fn fan(neighbours: usize) -> PopulationPrior {
        let questions: Vec<PriorQuestion> = [0.0, 20.0, 50.0, 90.0]
            .iter()
            .enumerate()
            .map(|(i, &d)| question(&alloc::format!("q{i}"), 2, &deg(d)))
            .collect();
        let answers = |a: [f64; 4]| a.iter().map(|&x| Some(vec![x, 1.0 - x])).collect::<Vec<_>>();
        let groups = vec![
            PriorGroup { name: "a".into(), answers: answers([0.1, 0.2, 0.3, 0.4]) },
            PriorGroup { name: "b".into(), answers: answers([0.5, 0.6, 0.7, 0.8]) },
        ];
        PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, neighbours, 2, questions, groups).unwrap()
    }

    #[test]
    fn the_groups_own_answers_stand_in_for_its_neighbours() {
        // The hidden-question geometry above: q0..q3 at 0°, 20°, 50°, 90°; the prior is the
        // train mean of a and b (q0 0.3, q1 0.4, q2 0.5, q3 0.6 on the first option). q1 hidden,
        // its 2 nearest others are q0 and q2. The group answered q0 (0.9) in its context: q0's
        // place takes that answer, q2 keeps the prior's 0.5, so (0.9 + 0.5) / 2 = 0.7.
        let plain = fan(2);
        let ranked = plain.clone().with_ranked_neighbours();
        let mine = [0.9, 0.1];
        for p in [&plain, &ranked] {
            let v = p.distributions(&[(QuestionRef::Known(0), &mine)], &[QuestionRef::Hidden(1)], None).unwrap();
            assert!(close(&v[0].distribution, &[0.7, 0.3]), "{:?}", v[0].distribution);
            assert_eq!(v[0].source, PriorSource::Nearest { known: vec![2], context: vec![0] });
            // A known answered question keeps the population's answer, context or not.
            let v = p.distributions(&[(QuestionRef::Known(0), &mine)], &[QuestionRef::Known(0)], None).unwrap();
            assert!(close(&v[0].distribution, &[0.3, 0.7]) && v[0].source == PriorSource::Answered);
        }
        // A context question the prior does not know, at 15°: the nearest to an unknown question
        // at 10° (then q0 at 0°), with the group's answer 0.2: (0.2 + 0.3) / 2 = 0.25.
        let typed = |d: f64| plain.resolve(None, &[deg(d), deg(d)].concat(), 2).unwrap();
        let shown = [0.2, 0.8];
        let v = plain.distributions(&[(typed(15.0), &shown)], &[typed(10.0), typed(15.0)], None).unwrap();
        assert!(close(&v[0].distribution, &[0.25, 0.75]), "{:?}", v[0].distribution);
        assert_eq!(v[0].source, PriorSource::Nearest { known: vec![0], context: vec![0] });
        // The context question itself is never its own neighbour: q0 and q1, (0.3 + 0.4) / 2.
        assert!(close(&v[1].distribution, &[0.35, 0.65]), "{:?}", v[1].distribution);
        assert_eq!(v[1].source, PriorSource::Nearest { known: vec![1, 0], context: vec![] });
        // A context question with another option count is no neighbour.
        let three = plain.resolve(None, &[deg(10.0), deg(10.0), deg(10.0)].concat(), 3).unwrap();
        assert_eq!(
            plain.distributions(&[(three.clone(), &[0.2, 0.3, 0.5])], &[typed(10.0)], None).unwrap()[0].source,
            PriorSource::Nearest { known: vec![0, 1], context: vec![] }
        );
        // …and a 3-option question has only it: the group's answer.
        let other = plain.resolve(None, &[deg(30.0), deg(30.0), deg(30.0)].concat(), 3).unwrap();
        let v = plain.distributions(&[(three, &[0.2, 0.3, 0.5])], &[other], None).unwrap();
        assert!(close(&v[0].distribution, &[0.2, 0.3, 0.5]));
    }

    #[test]
    fn similarity_weights_trust_the_nearest_questions() {
        // The geometry above (q0..q3 at 0°, 20°, 50°, 90°; train mean of a and b: 0.3, 0.4, 0.5,
        // 0.6 on the first option). q1 hidden, its 3 nearest others: q0 (cos 20°), q2 (cos 30°),
        // q3 (cos 70°). At temperature 0.1 their weights are 1, exp((cos 30° − cos 20°) / 0.1) =
        // 0.478704 and exp((cos 70° − cos 20°) / 0.1) = 0.002537, so the prior's first option is
        // (0.3 + 0.5 · 0.478704 + 0.6 · 0.002537) / 1.481241 = 0.365149 (python3's math, f64).
        // Tolerance 1e-6: the question vectors are f32 (cosines to ~1e-7, divided by 0.1).
        let equal = fan(3);
        let rule = NeighbourRule { neighbours: 3, weights: NeighbourWeights::Similarity { temperature: 0.1 } };
        let weighted = equal.clone().with_neighbour_rule(rule).unwrap();
        assert_eq!(weighted.neighbour_rule(), rule);
        assert_ne!(weighted, equal);
        let near = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        for p in [weighted.clone(), weighted.clone().with_ranked_neighbours()] {
            let v = p.distributions(&[], &[QuestionRef::Hidden(1)], None).unwrap();
            assert!(near(&v[0].distribution, &[0.365149, 0.634851]), "{:?}", v[0].distribution);
            assert_eq!(v[0].source, PriorSource::Nearest { known: vec![0, 2, 3], context: vec![] });
        }
        // Equal weights: (0.3 + 0.5 + 0.6) / 3.
        let v = equal.distributions(&[], &[QuestionRef::Hidden(1)], None).unwrap();
        assert!(close(&v[0].distribution, &[1.4 / 3.0, 1.6 / 3.0]), "{:?}", v[0].distribution);
        // A typed context question (15°, the group's answer 0.2) as a neighbour of an unknown
        // question at 10°, then q0 (0.3): weights 1 and exp((cos 10° − cos 5°) / 0.1) = 0.892374,
        // (0.2 + 0.3 · 0.892374) / 1.892374 = 0.247156.
        let two = weighted.with_neighbour_rule(NeighbourRule { neighbours: 2, ..rule }).unwrap();
        let typed = |d: f64| two.resolve(None, &[deg(d), deg(d)].concat(), 2).unwrap();
        let v = two.distributions(&[(typed(15.0), &[0.2, 0.8])], &[typed(10.0)], None).unwrap();
        assert!(near(&v[0].distribution, &[0.247156, 0.752844]), "{:?}", v[0].distribution);
        assert_eq!(v[0].source, PriorSource::Nearest { known: vec![0], context: vec![0] });
        // Checked like the kNN temperature and the count.
        for bad in [
            NeighbourRule { neighbours: 0, weights: NeighbourWeights::Equal },
            NeighbourRule { neighbours: 2, weights: NeighbourWeights::Similarity { temperature: 0.0 } },
            NeighbourRule { neighbours: 2, weights: NeighbourWeights::Similarity { temperature: f64::NAN } },
        ] {
            assert!(two.clone().with_neighbour_rule(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absurd_priors_are_refused_with_what_and_where() {
        let build = |kind: PriorKind, neighbours: usize, questions: Vec<PriorQuestion>| {
            let groups = vec![PriorGroup { name: "a".into(), answers: vec![None; questions.len()] }];
            PopulationPrior::new(kind, Metric::Wasserstein, neighbours, 2, questions, groups)
        };
        let good = || vec![question("q0", 2, &[1.0, 0.0])];
        let mut nan = good();
        nan[0].vector[1] = f32::NAN;
        let e = build(PriorKind::TrainMean, 2, nan).unwrap_err();
        assert_eq!(e, PriorError::VectorValue { key: "q0".into(), index: 1 });
        assert_eq!(alloc::format!("{e}"), "prior question `q0`: embedding value 1 is not finite");
        let mut far = good();
        far[0].ordinal[1] = -1e308;
        assert_eq!(
            build(PriorKind::TrainMean, 2, far).unwrap_err(),
            PriorError::Ordinal { key: "q0".into(), option: 1, value: -1e308 }
        );
        for n in [0, MAX_NEIGHBOURS + 1] {
            assert_eq!(build(PriorKind::TrainMean, n, good()).unwrap_err(), PriorError::Neighbours(n));
        }
        for t in [1e-300, 0.0, -1.0, 1e7, f64::NAN, f64::INFINITY] {
            let kind = PriorKind::KnnGroups { temperature: t };
            assert!(matches!(build(kind, 2, good()), Err(PriorError::Temperature(_))), "{t}");
        }
        assert!(build(PriorKind::KnnGroups { temperature: 1e-6 }, MAX_NEIGHBOURS, good()).is_ok());
    }

    #[test]
    fn a_question_without_prior_is_named() {
        let p = prior(PriorKind::TrainMean);
        let q2 = p.resolve(Some("q2"), &[0.0; 6], 3).unwrap();
        let e = p.distributions(&[], &[q2], None).unwrap_err();
        assert!(alloc::format!("{e}").starts_with("no prior for question `q2` (3 options): "), "{e}");
        let e = p.distributions(&[], &[unknown_of(&p, 4)], None).unwrap_err();
        assert!(alloc::format!("{e}").starts_with("no prior for a new question with 4 options: "), "{e}");
    }
}
