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
//! mean option embeddings) among those with the same number of options, weighted as the prior's
//! [`NeighbourRule`] says: equally, or by `exp((s − s₁) / temperature)`, `s` a neighbour's
//! similarity and `s₁` the nearest one's ([`PriorSource::Nearest`]). Options are paired by position,
//! or by meaning ([`OptionMatch::Meaning`]: each option with the neighbour's option whose
//! [`option_signatures`] are most alike, and neighbours whose options say the same things rank
//! higher).
//! The candidates are the known questions, each with its prior, and the group's own context questions, each with the group's answer: where the group
//! answered a neighbour, its answer stands in for the population's estimate of it, so a group's
//! answers to questions like a new one shape its prior for it. A question is never its own
//! neighbour. Where no candidate has that many options the prior is undefined and
//! [`PriorError::NoNeighbour`] is returned: never a silent uniform.

use alloc::borrow::Cow;
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

/// Length of an option signature ([`option_signatures`]).
pub const SIGNATURE_DIM: usize = 16;

/// Largest accepted [`OptionMatch::Meaning`] weight (the question similarities it adds to are at
/// most 1).
pub const MAX_OPTION_WEIGHT: f64 = 100.0;

/// How an unknown question's options are paired with a neighbour's.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptionMatch {
    /// Option `i` with the neighbour's option `i` (the only pairing of format-3 and 4 model files).
    #[default]
    Position,
    /// By meaning: the question's options are paired one to one with the neighbour's so that the
    /// summed similarity of their [`option_signatures`] is largest ([`match_options`]), and the
    /// neighbour's similarity to the question gains `weight` × the mean similarity of the pairs,
    /// so a neighbour whose options say what the question's say ranks higher ("A top priority"
    /// with "Top priority", whichever their positions).
    Meaning {
        /// In `[0, MAX_OPTION_WEIGHT]`.
        weight: f64,
    },
}

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
    /// How their options are paired with the question's (by position in results and model
    /// files written before it existed).
    #[serde(default)]
    pub options: OptionMatch,
}

impl Default for NeighbourRule {
    /// [`DEFAULT_NEIGHBOURS`] questions, equally weighted, options by position.
    fn default() -> Self {
        Self { neighbours: DEFAULT_NEIGHBOURS, weights: NeighbourWeights::Equal, options: OptionMatch::Position }
    }
}

impl NeighbourRule {
    /// Checks the parameters: a count in 1..=[`MAX_NEIGHBOURS`], a temperature in
    /// [`TEMPERATURE_RANGE`], an option weight in `[0, MAX_OPTION_WEIGHT]`.
    pub fn validate(&self) -> Result<(), PriorError> {
        if self.neighbours == 0 || self.neighbours > MAX_NEIGHBOURS {
            return Err(PriorError::Neighbours(self.neighbours));
        }
        if let NeighbourWeights::Similarity { temperature } = self.weights
            && !TEMPERATURE_RANGE.contains(&temperature)
        {
            return Err(PriorError::Temperature(temperature));
        }
        match self.options {
            OptionMatch::Meaning { weight } if !(0.0..=MAX_OPTION_WEIGHT).contains(&weight) => {
                Err(PriorError::OptionWeight(weight))
            }
            _ => Ok(()),
        }
    }

    /// How a candidate neighbour compares with the question: its similarity as the rule ranks
    /// and weighs it, and, options matched by meaning, which of its options each of the
    /// question's takes.
    fn compare(&self, question: Side<'_>, neighbour: Side<'_>) -> Pairing<'static> {
        let dot = dot(neighbour.vector, question.vector);
        match self.options {
            OptionMatch::Position => Pairing { similarity: dot, order: None },
            OptionMatch::Meaning { .. } => {
                let (order, matched) = match_options(question.signatures, neighbour.signatures);
                Pairing { similarity: self.similarity(dot, Some(matched)), order: Some(Cow::Owned(order)) }
            }
        }
    }

    /// A cached candidate's pairing ([`Self::compare`] without recomputing it).
    fn cached<'a>(&self, candidate: &'a Candidate) -> Pairing<'a> {
        match (self.options, &candidate.matched) {
            (OptionMatch::Meaning { .. }, Some((order, _))) => {
                Pairing { similarity: self.cached_similarity(candidate), order: Some(Cow::Borrowed(order)) }
            }
            // Without signatures a prior cannot take options by meaning (`with_neighbour_rule`).
            _ => Pairing { similarity: candidate.dot, order: None },
        }
    }

    /// A cached candidate's similarity as the rule ranks it.
    fn cached_similarity(&self, candidate: &Candidate) -> f64 {
        self.similarity(candidate.dot, candidate.matched.as_ref().map(|(_, matched)| *matched))
    }

    /// The similarity the rule ranks and weighs by, from the question vectors' dot product and,
    /// where options are paired by meaning, the pairs' mean signature similarity.
    fn similarity(&self, dot: f64, matched: Option<f64>) -> f64 {
        match (self.options, matched) {
            (OptionMatch::Meaning { weight }, Some(matched)) => dot + weight * matched,
            _ => dot,
        }
    }

    /// The weighted mean of the `neighbours`' values (each a distribution over the neighbour's
    /// `options` options, with how it compares with the question), its options taken in the
    /// pairing's order.
    fn mean(&self, neighbours: &[(&[f64], &Pairing<'_>)], options: usize) -> Vec<f64> {
        let mut mean = alloc::vec![0.0; options];
        let value = |p: &[f64], pairing: &Pairing, j: usize| match &pairing.order {
            Some(order) => order.get(j).and_then(|&k| p.get(k)).copied().unwrap_or(0.0),
            None => p.get(j).copied().unwrap_or(0.0),
        };
        match self.weights {
            NeighbourWeights::Equal => {
                for (p, pairing) in neighbours {
                    for (j, m) in mean.iter_mut().enumerate() {
                        *m += value(p, pairing, j) / neighbours.len() as f64;
                    }
                }
            }
            NeighbourWeights::Similarity { temperature } => {
                let best = neighbours.iter().map(|(_, c)| c.similarity).fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> =
                    neighbours.iter().map(|(_, c)| libm::exp((c.similarity - best) / temperature)).collect();
                // The nearest neighbour weighs 1, so the total is at least 1.
                let total: f64 = weights.iter().sum();
                for ((p, pairing), w) in neighbours.iter().zip(&weights) {
                    for (j, m) in mean.iter_mut().enumerate() {
                        *m += w / total * value(p, pairing, j);
                    }
                }
            }
        }
        mean
    }
}

/// A question or candidate neighbour as the rule for unknown questions reads it: its unit mean
/// option embedding and its options' signatures (empty where a model file did not store them).
#[derive(Debug, Clone, Copy)]
struct Side<'a> {
    vector: &'a [f32],
    signatures: &'a [f32],
}

/// How a candidate neighbour compares with a question ([`NeighbourRule::compare`]).
#[derive(Debug, Clone, PartialEq)]
struct Pairing<'a> {
    /// What the rule ranks and weighs by.
    similarity: f64,
    /// Options matched by meaning: the neighbour's option paired with each of the question's.
    order: Option<Cow<'a, [usize]>>,
}

/// Each option's signature, `options × SIGNATURE_DIM` values: what tells it from the question's
/// other options (its embedding minus the mean of the question's option embeddings, which says
/// what the question asks), projected on [`SIGNATURE_DIM`] fixed pseudo-random ±1 directions and
/// scaled to unit length (all zero where an option does not differ from the mean). Cosines
/// between signatures approximate those between the differences (Johnson–Lindenstrauss); the
/// directions are the same for every model and platform (SplitMix64 bits), so a signature stored
/// in a model file and one computed for a typed question compare. Zeros when
/// `option_embeddings` is not `options × dim` values.
pub fn option_signatures(option_embeddings: &[f32], options: usize, dim: usize) -> Vec<f32> {
    let mut signatures = alloc::vec![0.0f32; options * SIGNATURE_DIM];
    if options == 0 || dim == 0 || option_embeddings.len() != options * dim {
        return signatures;
    }
    let mut mean = alloc::vec![0.0f64; dim];
    for row in option_embeddings.chunks_exact(dim) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v) / options as f64);
    }
    let mut projected = alloc::vec![0.0f64; options * SIGNATURE_DIM];
    for r in 0..SIGNATURE_DIM {
        let mut bits = crate::rng::SplitMix64::new(SIGNATURE_SEED.wrapping_add(r as u64));
        let mut word = 0u64;
        for c in 0..dim {
            if c % 64 == 0 {
                word = bits.next_u64();
            }
            let sign = if (word >> (c % 64)) & 1 == 1 { 1.0 } else { -1.0 };
            for (o, row) in option_embeddings.chunks_exact(dim).enumerate() {
                projected[o * SIGNATURE_DIM + r] += sign * (f64::from(row[c]) - mean[c]);
            }
        }
    }
    for (out, row) in signatures.chunks_exact_mut(SIGNATURE_DIM).zip(projected.chunks_exact(SIGNATURE_DIM)) {
        let norm = libm::sqrt(row.iter().map(|v| v * v).sum::<f64>());
        if norm > 1e-12 && norm.is_finite() {
            out.iter_mut().zip(row).for_each(|(o, &v)| *o = (v / norm) as f32);
        }
    }
    signatures
}

/// Seed of the signature directions (row `r` draws its signs from `SIGNATURE_SEED + r`).
const SIGNATURE_SEED: u64 = 0x6770_6f2d_6f70_7473;

/// The pairing of question `a`'s options with question `b`'s, one to one, with the largest summed
/// similarity (dot product) of their signatures ([`option_signatures`], `SIGNATURE_DIM` values
/// per option): `order[i]` is `b`'s option paired with `a`'s option `i`; and the pairs' mean
/// similarity. Assignments within 1e-9 of the best keep options by position where they can (a
/// question compared with itself, or options with equal signatures, pair by position). The
/// Hungarian algorithm (Kuhn–Munkres with potentials, O(n³)). Questions with different numbers of
/// signatures pair by position, with similarity 0.
pub fn match_options(a: &[f32], b: &[f32]) -> (Vec<usize>, f64) {
    let n = a.len() / SIGNATURE_DIM;
    if a.len() != b.len() || !a.len().is_multiple_of(SIGNATURE_DIM) || n == 0 {
        return ((0..n).collect(), 0.0);
    }
    let similarity = |i: usize, j: usize| -> f64 {
        let (x, y) = (&a[i * SIGNATURE_DIM..(i + 1) * SIGNATURE_DIM], &b[j * SIGNATURE_DIM..(j + 1) * SIGNATURE_DIM]);
        dot(x, y)
    };
    // Costs to minimise; the diagonal's bonus breaks ties towards positions.
    let cost = |i: usize, j: usize| -similarity(i, j) - if i == j { 1e-9 } else { 0.0 };
    // 1-based rows and columns, 0 the virtual start (e-maxx's formulation).
    let (mut u, mut v) = (alloc::vec![0.0f64; n + 1], alloc::vec![0.0f64; n + 1]);
    let (mut row_of, mut way) = (alloc::vec![0usize; n + 1], alloc::vec![0usize; n + 1]);
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut min_to = alloc::vec![f64::INFINITY; n + 1];
        let mut used = alloc::vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=n {
                if used[j] {
                    continue;
                }
                let reduced = cost(i0 - 1, j - 1) - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            if j1 == 0 {
                // Only reachable with non-finite costs; signatures are finite.
                break;
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    for j in 1..=n {
        if row_of[j] > 0 {
            order[row_of[j] - 1] = j - 1;
        }
    }
    let matched = order.iter().enumerate().map(|(i, &j)| similarity(i, j)).sum::<f64>() / n as f64;
    (order, matched)
}

impl core::fmt::Display for NeighbourRule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.weights {
            NeighbourWeights::Equal => write!(f, "the mean of the {} nearest questions", self.neighbours)?,
            NeighbourWeights::Similarity { temperature } => write!(
                f,
                "the {} nearest questions weighted by similarity (temperature {temperature})",
                self.neighbours
            )?,
        }
        match self.options {
            OptionMatch::Position => Ok(()),
            OptionMatch::Meaning { weight } => write!(f, ", options matched by meaning (weight {weight})"),
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
    /// An [`OptionMatch::Meaning`] weight outside `[0, MAX_OPTION_WEIGHT]`.
    #[error("the option-matching weight must be between 0 and 100, got {0:e}")]
    OptionWeight(f64),
    /// Options matched by meaning in a prior whose questions carry no option signatures (a
    /// prior from a format-3 or 4 model file).
    #[error(
        "options cannot be matched by meaning: prior question `{0}` has no option signatures (a model file older than format 5)"
    )]
    NoSignatures(String),
    /// A question's option signatures are not `options × SIGNATURE_DIM` finite values.
    #[error(
        "{question}: {found} option signature values, expected none or {expected} finite values ({SIGNATURE_DIM} per option)"
    )]
    Signatures {
        /// `prior question `KEY`` or `an unknown question`.
        question: String,
        /// Values given.
        found: usize,
        /// `options × SIGNATURE_DIM`.
        expected: usize,
    },
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
    /// Its options' signatures ([`option_signatures`], `options × SIGNATURE_DIM`), or none (a
    /// prior from a model file older than format 5: options then pair by position only).
    pub signatures: Vec<f32>,
}

impl PriorQuestion {
    /// A question from its option embeddings (`ordinal.len() × dim`, row-major).
    pub fn new(key: &str, ordinal: Vec<f64>, option_embeddings: &[f32], dim: usize) -> Self {
        Self {
            key: key.into(),
            vector: question_vector(option_embeddings, dim),
            signatures: option_signatures(option_embeddings, ordinal.len(), dim),
            ordinal,
        }
    }

    fn side(&self) -> Side<'_> {
        Side { vector: &self.vector, signatures: &self.signatures }
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
        /// Its options' signatures ([`option_signatures`], `options × SIGNATURE_DIM`).
        signatures: Vec<f32>,
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
    /// Per known question, the other known questions with as many options, with how they
    /// compare, most similar first under the rule's pairing ([`Self::with_ranked_neighbours`]);
    /// empty until then.
    ranked: Vec<Vec<Candidate>>,
}

/// A known question as a cached candidate neighbour of another ([`PopulationPrior::ranked`]).
#[derive(Debug, Clone)]
struct Candidate {
    index: u32,
    /// Dot product of the two question vectors.
    dot: f64,
    /// The options matched by meaning ([`match_options`]), where both questions have signatures.
    matched: Option<(Vec<usize>, f64)>,
}

/// Equal priors give equal values: the neighbour ranking is a cache and does not count.
impl PartialEq for PopulationPrior {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, self.metric, self.rule, self.dim) == (other.kind, other.metric, other.rule, other.dim)
            && self.questions == other.questions
            && self.groups == other.groups
    }
}

/// Checks that `signatures` are `options × SIGNATURE_DIM` finite values (or none, where `may_lack`);
/// `Err((found, expected))` otherwise.
fn check_signatures(signatures: &[f32], options: usize, may_lack: bool) -> Result<(), (usize, usize)> {
    let expected = options.saturating_mul(SIGNATURE_DIM);
    let fits = signatures.len() == expected || (may_lack && signatures.is_empty());
    if fits && signatures.iter().all(|v| v.is_finite()) { Ok(()) } else { Err((signatures.len(), expected)) }
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
        let rule = NeighbourRule { neighbours, weights: NeighbourWeights::Equal, options: OptionMatch::Position };
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
            check_signatures(&q.signatures, q.n_options(), true).map_err(|(found, expected)| {
                PriorError::Signatures { question: alloc::format!("prior question `{}`", q.key), found, expected }
            })?;
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
    /// questions with as many options, by the rule's similarity; their options matched by meaning
    /// once too): priors of unanswered and [`QuestionRef::Hidden`] questions then skip the search
    /// over every question. Values are identical to the unranked prior's; costs `questions² × dim`
    /// once, so it is meant for a prior that computes many such priors (training for new
    /// questions, selecting the rule).
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
                (0..n)
                    .filter(|&j| j != i && self.questions[j].n_options() == options)
                    .map(|j| Candidate { index: j as u32, dot: similarity[i * n + j], matched: None })
                    .collect()
            })
            .collect();
        if let OptionMatch::Meaning { .. } = self.rule.options {
            self.match_ranked();
        }
        self.sort_ranked();
        self
    }

    /// Pairs the options of every cached candidate with its question's by meaning, where both
    /// have signatures and it is not done yet ([`match_options`], once per pair).
    fn match_ranked(&mut self) {
        for (question, list) in self.questions.iter().zip(&mut self.ranked) {
            for candidate in list.iter_mut().filter(|c| c.matched.is_none()) {
                let neighbour = &self.questions[candidate.index as usize];
                if !question.signatures.is_empty() && !neighbour.signatures.is_empty() {
                    candidate.matched = Some(match_options(&question.signatures, &neighbour.signatures));
                }
            }
        }
    }

    /// Orders the cached candidates by the rule's similarity, most similar first, ties by index.
    fn sort_ranked(&mut self) {
        let rule = self.rule;
        for list in &mut self.ranked {
            list.sort_by(|a, b| {
                rule.cached_similarity(b).total_cmp(&rule.cached_similarity(a)).then(a.index.cmp(&b.index))
            });
        }
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

    /// The same prior with another rule for unknown questions (checked; options can be matched
    /// by meaning only where every question has option signatures).
    pub fn with_neighbour_rule(mut self, rule: NeighbourRule) -> Result<Self, PriorError> {
        rule.validate()?;
        if let OptionMatch::Meaning { .. } = rule.options
            && let Some(q) = self.questions.iter().find(|q| q.signatures.is_empty())
        {
            return Err(PriorError::NoSignatures(q.key.clone()));
        }
        let resort = !self.ranked.is_empty() && rule.options != self.rule.options;
        self.rule = rule;
        if resort {
            if let OptionMatch::Meaning { .. } = rule.options {
                self.match_ranked();
            }
            self.sort_ranked();
        }
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

    /// The same prior without its questions' option signatures where its rule does not read
    /// them (options paired by position): what a model file stores.
    pub(crate) fn without_unread_signatures(mut self) -> Self {
        if self.rule.options == OptionMatch::Position {
            self.questions.iter_mut().for_each(|q| q.signatures = Vec::new());
            self.ranked.iter_mut().flatten().for_each(|c| c.matched = None);
        }
        self
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
        Ok(QuestionRef::Unknown {
            vector: question_vector(option_embeddings, self.dim),
            options,
            signatures: option_signatures(option_embeddings, options, self.dim),
        })
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
        if let OptionMatch::Meaning { .. } = self.rule.options {
            let unknown = context.iter().map(|(q, _)| q).chain(targets).filter_map(|q| match q {
                QuestionRef::Unknown { options, signatures, .. } => Some((*options, signatures.as_slice())),
                _ => None,
            });
            for (options, signatures) in unknown {
                check_signatures(signatures, options, false).map_err(|(found, expected)| PriorError::Signatures {
                    question: "an unknown question".into(),
                    found,
                    expected,
                })?;
            }
        }
        let weights = self.weights(context, exclude);
        // Each known question's weighted mean is computed once per call, however many targets
        // take it as a neighbour.
        let mut means = BTreeMap::new();
        targets.iter().map(|q| self.prior_of(q, &weights, context, &mut means)).collect()
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
        means: &mut BTreeMap<usize, Option<Vec<f64>>>,
    ) -> Result<PriorValue, PriorError> {
        let (me, options, own) = match question {
            QuestionRef::Known(q) => {
                if let Some(distribution) = self.weighted_mean(*q, weights) {
                    return Ok(PriorValue { distribution, source: PriorSource::Answered });
                }
                (self.questions[*q].side(), self.questions[*q].n_options(), Some(*q))
            }
            QuestionRef::Hidden(q) => (self.questions[*q].side(), self.questions[*q].n_options(), Some(*q)),
            QuestionRef::Unknown { vector, options, signatures } => (Side { vector, signatures }, *options, None),
        };
        // The group's answer to known question `i`, where its context shows one.
        let answered = |i: usize| {
            context.iter().position(|(r, _)| matches!(r, QuestionRef::Known(k) | QuestionRef::Hidden(k) if *k == i))
        };
        // Context questions the prior does not know, with as many options (never the question
        // itself), as candidates: `(position in the context, how the rule reads it)`.
        let unknown_context: Vec<(usize, Side<'_>)> = context
            .iter()
            .enumerate()
            .filter_map(|(c, (r, _))| match r {
                QuestionRef::Unknown { vector, options: o, signatures } if *o == options && r != question => {
                    Some((c, Side { vector, signatures }))
                }
                _ => None,
            })
            .collect();
        // A candidate's value: the group's own answer where the context has one (a known question
        // it answered becomes that context answer), else its prior; with how the rule reads it.
        let mut value = |candidate: Neighbour| -> Option<(Neighbour, Vec<f64>, Side<'_>)> {
            match candidate {
                Neighbour::Known(i) => {
                    let side = self.questions[i].side();
                    match answered(i) {
                        Some(c) => Some((Neighbour::Context(c), context[c].1.to_vec(), side)),
                        None => {
                            let mean = means.entry(i).or_insert_with(|| self.weighted_mean(i, weights));
                            Some((candidate, mean.clone()?, side))
                        }
                    }
                }
                Neighbour::Context(c) => {
                    let side = unknown_context.iter().find(|&&(u, _)| u == c).map(|&(_, side)| side)?;
                    Some((candidate, context[c].1.to_vec(), side))
                }
            }
        };
        // Most similar first, ties by index (known questions before context ones), so the choice
        // is deterministic; the ranking cached by `with_ranked_neighbours` where it applies (read
        // lazily: only until enough neighbours have a value), with each candidate's pairing where
        // it is known.
        let ranked: Box<dyn Iterator<Item = (Neighbour, Option<Pairing<'_>>)> + '_> =
            match own.and_then(|q| self.ranked.get(q)) {
                Some(list) if unknown_context.is_empty() => {
                    Box::new(list.iter().map(|c| (Neighbour::Known(c.index as usize), Some(self.rule.cached(c)))))
                }
                _ => {
                    let n_known = self.questions.len();
                    let known = self
                        .questions
                        .iter()
                        .enumerate()
                        .filter_map(|(i, q)| (Some(i) != own && q.n_options() == options).then_some((i, q.side())));
                    let shown = unknown_context.iter().map(|&(c, side)| (n_known + c, side));
                    Box::new(self.rank(me, known.chain(shown)).into_iter().map(move |(i, pairing)| {
                        (if i < n_known { Neighbour::Known(i) } else { Neighbour::Context(i - n_known) }, pairing)
                    }))
                }
            };
        // Similarities and pairings are computed only where the rule reads them.
        let reads = !matches!((self.rule.weights, self.rule.options), (NeighbourWeights::Equal, OptionMatch::Position));
        let nearest: Vec<(Neighbour, Vec<f64>, Pairing<'_>)> = ranked
            .filter_map(|(n, pairing)| {
                let (n, p, side) = value(n)?;
                let pairing = match pairing {
                    Some(pairing) => pairing,
                    None if reads => self.rule.compare(me, side),
                    None => Pairing { similarity: 0.0, order: None },
                };
                Some((n, p, pairing))
            })
            .take(self.rule.neighbours)
            .collect();
        if nearest.is_empty() {
            return Err(PriorError::NoNeighbour { question: own.map(|q| self.questions[q].key.clone()), options });
        }
        let values: Vec<(&[f64], &Pairing<'_>)> =
            nearest.iter().map(|(_, p, pairing)| (p.as_slice(), pairing)).collect();
        let distribution = self.rule.mean(&values, options);
        let (mut known, mut shown) = (Vec::new(), Vec::new());
        for (n, ..) in &nearest {
            match *n {
                Neighbour::Known(i) => known.push(i),
                Neighbour::Context(c) => shown.push(c),
            }
        }
        Ok(PriorValue { distribution, source: PriorSource::Nearest { known, context: shown } })
    }

    /// The `candidates` most similar to `question` first as the rule ranks them (ties by index),
    /// with their pairings where ranking computed them (options matched by meaning).
    fn rank<'a>(
        &self,
        question: Side<'_>,
        candidates: impl Iterator<Item = (usize, Side<'a>)>,
    ) -> Vec<(usize, Option<Pairing<'static>>)> {
        match self.rule.options {
            OptionMatch::Position => rank_by_similarity(question.vector, candidates.map(|(i, side)| (i, side.vector)))
                .into_iter()
                .map(|i| (i, None))
                .collect(),
            OptionMatch::Meaning { .. } => {
                let mut scored: Vec<(usize, Pairing<'static>)> =
                    candidates.map(|(i, side)| (i, self.rule.compare(question, side))).collect();
                scored.sort_by(|a, b| b.1.similarity.total_cmp(&a.1.similarity).then(a.0.cmp(&b.0)));
                scored.into_iter().map(|(i, pairing)| (i, Some(pairing))).collect()
            }
        }
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
    use alloc::string::ToString;
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
        let rule = NeighbourRule {
            neighbours: 3,
            weights: NeighbourWeights::Similarity { temperature: 0.1 },
            ..Default::default()
        };
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
            NeighbourRule { neighbours: 0, weights: NeighbourWeights::Equal, ..Default::default() },
            NeighbourRule {
                neighbours: 2,
                weights: NeighbourWeights::Similarity { temperature: 0.0 },
                ..Default::default()
            },
            NeighbourRule {
                neighbours: 2,
                weights: NeighbourWeights::Similarity { temperature: f64::NAN },
                ..Default::default()
            },
        ] {
            assert!(two.clone().with_neighbour_rule(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn option_signatures_are_the_projected_option_differences() {
        // Reference: python3, the same definition in f64 (SplitMix64 rows seeded SIGNATURE_SEED + r,
        // bit c % 64 of the row's (c / 64)-th draw the sign of coordinate c). Tolerance 1e-6: the
        // signatures are f32.
        let embeddings = [0.5, -1.0, 2.0, 1.5, 0.25, -0.75, -0.5, 1.0, 0.0];
        let s = option_signatures(&embeddings, 3, 3);
        assert_eq!(s.len(), 3 * SIGNATURE_DIM);
        let expected = [
            [0.0538122, 0.2869984, 0.2869984, 0.2869984],
            [0.0, -0.3888889, -0.3888889, -0.0555556],
            [-0.075665, -0.0504433, -0.0504433, -0.3531033],
        ];
        for (row, want) in s.chunks_exact(SIGNATURE_DIM).zip(expected) {
            assert!(row.iter().zip(want).all(|(a, b)| (f64::from(*a) - b).abs() < 1e-6), "{row:?} vs {want:?}");
            let norm: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            assert!((norm - 1.0).abs() < 1e-6);
        }
        // The question's part (what every option shares) does not count; options that do not
        // differ have no signature; a wrong length gives zeros.
        let shifted: Vec<f32> = embeddings.iter().zip([3.0, -2.0, 1.0].iter().cycle()).map(|(e, d)| e + d).collect();
        let t = option_signatures(&shifted, 3, 3);
        assert!(s.iter().zip(&t).all(|(a, b)| (a - b).abs() < 1e-6));
        assert!(option_signatures(&[0.3, 0.4, 0.3, 0.4], 2, 2).iter().all(|&v| v == 0.0));
        assert_eq!(option_signatures(&[0.3; 5], 2, 2), vec![0.0; 2 * SIGNATURE_DIM]);
    }

    #[test]
    fn options_are_matched_by_the_best_assignment() {
        // Against every permutation (n ≤ 6), on signatures of pseudo-random options.
        let mut rng = crate::rng::SplitMix64::new(11);
        for n in 1..=6 {
            for _ in 0..20 {
                let mut random = |k: usize| (0..k).map(|_| rng.next_f64() as f32 - 0.5).collect::<Vec<f32>>();
                let (a, b) = (option_signatures(&random(n * 8), n, 8), option_signatures(&random(n * 8), n, 8));
                let (order, matched) = match_options(&a, &b);
                let sim = |i: usize, j: usize| {
                    dot(&a[i * SIGNATURE_DIM..(i + 1) * SIGNATURE_DIM], &b[j * SIGNATURE_DIM..(j + 1) * SIGNATURE_DIM])
                };
                let mut best = f64::NEG_INFINITY;
                let mut perm: Vec<usize> = (0..n).collect();
                permutations(&mut perm, 0, &mut |p| {
                    best = best.max(p.iter().enumerate().map(|(i, &j)| sim(i, j)).sum())
                });
                let mut sorted = order.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
                assert!((matched * n as f64 - best).abs() < 1e-9, "n {n}: {} vs {best}", matched * n as f64);
            }
        }
        // A question with itself, or options without signatures: by position.
        let a = option_signatures(&[0.1, 0.9, 0.4, 0.2, 0.7, 0.3, 0.5, 0.5, 0.0], 3, 3);
        let (order, matched) = match_options(&a, &a);
        assert_eq!(order, [0, 1, 2]);
        assert!((matched - 1.0).abs() < 1e-6);
        assert_eq!(match_options(&[0.0; 3 * SIGNATURE_DIM], &[0.0; 3 * SIGNATURE_DIM]), (vec![0, 1, 2], 0.0));
        assert_eq!(match_options(&a, &a[..2 * SIGNATURE_DIM]), (vec![0, 1, 2], 0.0));
    }

    fn permutations(p: &mut Vec<usize>, k: usize, visit: &mut impl FnMut(&[usize])) {
        if k == p.len() {
            return visit(p);
        }
        for i in k..p.len() {
            p.swap(k, i);
            permutations(p, k + 1, visit);
            p.swap(k, i);
        }
    }

    /// A 3-option question in 6 dimensions: its part `base` (dims 0–1, at `degrees`) shared by its
    /// options, and each option's own part (dims 2–5).
    fn worded(key: &str, degrees: f64, options: [[f32; 4]; 3]) -> (PriorQuestion, Vec<f32>) {
        let base = deg(degrees);
        let rows: Vec<f32> = options.iter().flat_map(|o| base.iter().chain(o).copied()).collect();
        (PriorQuestion::new(key, vec![1.0, 2.0, 3.0], &rows, 6), rows)
    }

    #[test]
    fn options_matched_by_meaning_take_the_neighbours_values_of_the_same_option() {
        // Options A, B, C (dims 2–3) and D, E, F (dims 4–5, unrelated to them).
        let [a, b, c] = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0]];
        let [d, e, f] = [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, -1.0, -1.0]];
        // q0: the nearest question (10°), other options; q1: at 30°, A B C in reverse order.
        let (q0, _) = worded("q0", 10.0, [d, e, f]);
        let (q1, _) = worded("q1", 30.0, [c, b, a]);
        let groups =
            vec![PriorGroup { name: "g".into(), answers: vec![Some(vec![0.5, 0.3, 0.2]), Some(vec![0.6, 0.3, 0.1])] }];
        let position =
            PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, 1, 6, vec![q0, q1], groups).unwrap();
        let (_, typed) = worded("new", 0.0, [a, b, c]);
        let new = position.resolve(None, &typed, 3).unwrap();
        // By position: the nearest question, q0, option by option.
        let v = position.distributions(&[], core::slice::from_ref(&new), None).unwrap();
        assert_eq!(v[0].distribution, [0.5, 0.3, 0.2]);
        assert_eq!(v[0].source, PriorSource::Nearest { known: vec![0], context: vec![] });
        // By meaning, weight 1: q1 (cos 30° + 1 · 1) outranks q0 (cos 10° + 1 · the mean
        // similarity of unrelated options, |·| ≤ ~0.5 after the projection), and its values come
        // option by option in reverse: A takes q1's A (its third option).
        let rule = NeighbourRule { options: OptionMatch::Meaning { weight: 1.0 }, ..position.neighbour_rule() };
        let meaning = position.clone().with_neighbour_rule(rule).unwrap();
        let v = meaning.distributions(&[], core::slice::from_ref(&new), None).unwrap();
        assert!(close(&v[0].distribution, &[0.1, 0.3, 0.6]), "{:?}", v[0].distribution);
        assert_eq!(v[0].source, PriorSource::Nearest { known: vec![1], context: vec![] });
        // Weight 0: ranked by question only (q0), its options still paired by meaning (which
        // for unrelated options is some one-to-one pairing of its values).
        let zero = NeighbourRule { options: OptionMatch::Meaning { weight: 0.0 }, ..rule };
        let v = position
            .clone()
            .with_neighbour_rule(zero)
            .unwrap()
            .distributions(&[], core::slice::from_ref(&new), None)
            .unwrap();
        assert_eq!(v[0].source, PriorSource::Nearest { known: vec![0], context: vec![] });
        let mut sorted = v[0].distribution.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(close(&sorted, &[0.2, 0.3, 0.5]));
        // A typed context question with C B A reversed, answered by the group, is a neighbour as
        // well, its answer taken by meaning.
        let (_, context) = worded("ctx", 5.0, [c, b, a]);
        let shown = meaning.resolve(None, &context, 3).unwrap();
        let two = meaning.clone().with_neighbour_rule(NeighbourRule { neighbours: 2, ..rule }).unwrap();
        let v = two.distributions(&[(shown, &[0.7, 0.2, 0.1])], core::slice::from_ref(&new), None).unwrap();
        assert_eq!(v[0].source, PriorSource::Nearest { known: vec![1], context: vec![0] });
        assert!(close(&v[0].distribution, &[(0.1 + 0.1) / 2.0, (0.3 + 0.2) / 2.0, (0.6 + 0.7) / 2.0]));
        // Ranked once or searched each time: the same values, hidden questions included.
        for p in [meaning.clone(), meaning.clone().with_ranked_neighbours()] {
            let hidden = p.distributions(&[], &[QuestionRef::Hidden(0), QuestionRef::Hidden(1)], None).unwrap();
            assert_eq!(
                hidden,
                meaning.distributions(&[], &[QuestionRef::Hidden(0), QuestionRef::Hidden(1)], None).unwrap()
            );
        }
        let ranked = position.clone().with_ranked_neighbours();
        let switched = ranked.clone().with_neighbour_rule(rule).unwrap();
        assert_eq!(
            switched.distributions(&[], &[QuestionRef::Hidden(0)], None).unwrap(),
            meaning.distributions(&[], &[QuestionRef::Hidden(0)], None).unwrap()
        );
        // Checked: the weight's range, and signatures where options are matched by meaning.
        for weight in [-0.1, 100.5, f64::NAN] {
            let bad = NeighbourRule { options: OptionMatch::Meaning { weight }, ..rule };
            assert!(matches!(position.clone().with_neighbour_rule(bad), Err(PriorError::OptionWeight(_))));
        }
        let QuestionRef::Unknown { vector, options, .. } = new.clone() else { unreachable!() };
        let unsigned = QuestionRef::Unknown { vector, options, signatures: vec![] };
        let m = meaning.distributions(&[], core::slice::from_ref(&unsigned), None).unwrap_err().to_string();
        assert_eq!(
            m,
            "an unknown question: 0 option signature values, expected none or 48 finite values (16 per option)"
        );
        assert!(position.distributions(&[], &[unsigned], None).is_ok());
        assert_eq!(rule.to_string(), "the mean of the 1 nearest questions, options matched by meaning (weight 1)");
    }

    /// An app may list a question's options in any order: options matched by meaning give the
    /// same prior, option for option, whichever order a new question lists them in (options by
    /// position give another). Options here differ only in what they say (no letters in these
    /// embeddings), so the pairing is exact.
    #[test]
    fn a_new_questions_prior_follows_its_options_in_any_order() {
        let [a, b, c] = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.5]];
        let (q0, _) = worded("q0", 10.0, [a, b, c]);
        let (q1, _) = worded("q1", 25.0, [c, a, b]);
        let (q2, _) = worded("q2", 40.0, [b, c, a]);
        let groups = vec![PriorGroup {
            name: "g".into(),
            answers: vec![Some(vec![0.5, 0.3, 0.2]), Some(vec![0.1, 0.6, 0.3]), Some(vec![0.2, 0.2, 0.6])],
        }];
        let position =
            PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, 3, 6, vec![q0, q1, q2], groups).unwrap();
        let similarity = NeighbourWeights::Similarity { temperature: 0.1 };
        let rule = NeighbourRule { neighbours: 3, weights: similarity, options: OptionMatch::Meaning { weight: 0.3 } };
        let meaning = position.clone().with_neighbour_rule(rule).unwrap();
        let asked = |p: &PopulationPrior, order: [usize; 3]| {
            let options = order.map(|i| [a, b, c][i]);
            let (_, rows) = worded("new", 0.0, options);
            let new = p.resolve(None, &rows, 3).unwrap();
            p.distributions(&[], &[new], None).unwrap().remove(0).distribution
        };
        let listed = asked(&meaning, [0, 1, 2]);
        for order in [[2, 1, 0], [1, 2, 0], [0, 2, 1]] {
            let reordered = asked(&meaning, order);
            let expected: Vec<f64> = order.iter().map(|&i| listed[i]).collect();
            assert!(
                reordered.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-12),
                "{order:?}: {reordered:?} vs {expected:?}"
            );
        }
        // By position the reversed question gets the values in the neighbours' order.
        let (forward, reversed) = (asked(&position, [0, 1, 2]), asked(&position, [2, 1, 0]));
        assert!(forward.iter().zip(&reversed).all(|(x, y)| (x - y).abs() < 1e-12));
        assert!((reversed[0] - listed[2]).abs() > 0.05, "{reversed:?} vs {listed:?}");
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
