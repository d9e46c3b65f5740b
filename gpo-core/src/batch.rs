//! Episodes (one group's context and target questions) built from plain slices, and the padded
//! tensor batch that the model reads.
//!
//! An app needs no Burn knowledge to describe an episode: push each question's option embeddings
//! (row-major, `options × dim_x`) and, for context questions, the group's answer distribution.

use alloc::vec::Vec;
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

/// Why an episode or a batch cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// `dim_x` was zero.
    #[error("the embedding dimension must be positive")]
    ZeroDimension,
    /// A question had no options.
    #[error("{side} question {question} has no options")]
    NoOptions {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        question: usize,
    },
    /// The embedding slice is not `options × dim_x` long.
    #[error("{side} question {question}: {len} embedding values is not a multiple of the embedding dimension {dim_x}")]
    EmbeddingLength {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        question: usize,
        /// Length of the embedding slice.
        len: usize,
        /// Expected embedding dimension.
        dim_x: usize,
    },
    /// The probabilities do not match the number of options.
    #[error("{side} question {question}: {probabilities} probabilities for {options} options")]
    ProbabilityCount {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        question: usize,
        /// Number of probabilities given.
        probabilities: usize,
        /// Number of options (embedding rows).
        options: usize,
    },
    /// An embedding value or a probability is NaN or infinite.
    #[error("{side} question {question}: non-finite {what}")]
    NonFinite {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        question: usize,
        /// `"embedding"`, `"probability"` or `"prior"`.
        what: &'static str,
    },
    /// The prior does not match the number of options.
    #[error("{side} question {question}: a prior of {prior} values for {options} options")]
    PriorCount {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        question: usize,
        /// Number of prior values given.
        prior: usize,
        /// Number of options (embedding rows).
        options: usize,
    },
    /// A probability is negative.
    #[error("{side} question {question}: negative probability {value}")]
    NegativeProbability {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        question: usize,
        /// The offending value.
        value: f32,
    },
    /// A context question without the group's answer.
    #[error("context question {question} has no answer distribution")]
    MissingAnswer {
        /// Index of the question among the context questions.
        question: usize,
    },
    /// Some questions of an episode carry a prior and others do not.
    #[error("{side} question {question}: either every question of an episode has a prior or none has")]
    MixedPriors {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        question: usize,
    },
    /// A prior model was given episodes without priors, or a model without a prior episodes with.
    #[error("{}", if *model_reads_prior {
        "this model reads a population prior for every question, and the episodes carry none"
    } else {
        "the episodes carry population priors, but this model reads none"
    })]
    PriorMismatch {
        /// Whether the model reads priors.
        model_reads_prior: bool,
    },
    /// Episodes of one batch disagree on carrying priors.
    #[error("episode {episode} carries priors and episode 0 does not, or the reverse")]
    BatchPriors {
        /// Index of the episode in the batch.
        episode: usize,
    },
    /// The batch holds no episode.
    #[error("a batch needs at least one episode")]
    EmptyBatch,
    /// An episode has no target question.
    #[error("episode {episode} has no target question")]
    NoTargets {
        /// Index of the episode in the batch.
        episode: usize,
    },
    /// Episodes of one batch, or an episode and the model, disagree on `dim_x`.
    #[error("embedding dimension {found} does not match the expected {expected}")]
    DimensionMismatch {
        /// Expected dimension.
        expected: usize,
        /// Dimension found.
        found: usize,
    },
}

/// Whether a question is shown with the group's answer (context) or predicted (target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A context question: shown to the model with the group's answer distribution.
    Context,
    /// A target question: predicted.
    Target,
}

impl Side {
    /// `"context"` or `"target"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Context => "context",
            Self::Target => "target",
        }
    }
}

impl core::fmt::Display for Side {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One question of an episode or a prediction request: its options' embeddings and, optionally,
/// its key, the group's answer distribution and the population prior.
///
/// ```
/// use gpo_core::Question;
/// let embeddings = [0.1f32, 0.2, 0.3, 0.4]; // two options of dimension 2, row-major
/// let question = Question::new(&embeddings).key("Q1").answer(&[0.25, 0.75]);
/// assert_eq!(question.answer_values(), Some(&[0.25f32, 0.75][..]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Question<'a> {
    embeddings: &'a [f32],
    key: Option<&'a str>,
    answer: Option<&'a [f32]>,
    prior: Option<&'a [f32]>,
}

impl<'a> Question<'a> {
    /// A question whose options have these embeddings (`options × dim_x`, row-major).
    pub fn new(embeddings: &'a [f32]) -> Self {
        Self { embeddings, key: None, answer: None, prior: None }
    }

    /// The question's key: a [`crate::Predictor`] looks its population prior up by it.
    pub fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    /// The group's answer distribution over the options: the model's input for a context
    /// question; for a target question, the truth that only the loss reads.
    pub fn answer(mut self, probabilities: &'a [f32]) -> Self {
        self.answer = Some(probabilities);
        self
    }

    /// The population prior over the options, read by prior models ([`crate::GpoConfig::prior`]).
    /// A [`crate::Predictor`] computes it itself; set it only when building episodes directly.
    pub fn prior(mut self, prior: &'a [f32]) -> Self {
        self.prior = Some(prior);
        self
    }

    /// The option embeddings.
    pub fn embeddings(&self) -> &'a [f32] {
        self.embeddings
    }

    /// The key, if given.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key
    }

    /// The answer distribution, if given.
    pub fn answer_values(&self) -> Option<&'a [f32]> {
        self.answer
    }

    /// The prior, if given.
    pub fn prior_values(&self) -> Option<&'a [f32]> {
        self.prior
    }
}

/// One group's episode: context questions with the group's answer distributions, and target
/// questions whose distributions are to be predicted (or, in training, scored).
///
/// Either every question carries a population prior (for prior models) or none does; a prior
/// model refuses an episode without priors ([`crate::Gpo::forward`]).
///
/// ```
/// use gpo_core::{Episode, Question};
/// let mut episode = Episode::new(2).unwrap();
/// episode.push_context(Question::new(&[1.0, 0.0, 0.0, 1.0]).answer(&[0.3, 0.7])).unwrap();
/// episode.push_target(Question::new(&[0.5, 0.5, 1.0, 0.0, 0.0, 1.0])).unwrap();
/// assert_eq!(episode.target_options(), &[3]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    dim_x: usize,
    context_x: Vec<f32>,
    context_y: Vec<f32>,
    context_prior: Vec<f32>,
    n_context_questions: usize,
    target_x: Vec<f32>,
    target_y: Vec<f32>,
    target_prior: Vec<f32>,
    target_options: Vec<usize>,
    has_prior: Option<bool>,
}

impl Episode {
    /// An empty episode for embeddings of dimension `dim_x`.
    pub fn new(dim_x: usize) -> Result<Self, BatchError> {
        if dim_x == 0 {
            return Err(BatchError::ZeroDimension);
        }
        Ok(Self {
            dim_x,
            context_x: Vec::new(),
            context_y: Vec::new(),
            context_prior: Vec::new(),
            n_context_questions: 0,
            target_x: Vec::new(),
            target_y: Vec::new(),
            target_prior: Vec::new(),
            target_options: Vec::new(),
            has_prior: None,
        })
    }

    /// Embedding dimension.
    pub fn dim_x(&self) -> usize {
        self.dim_x
    }

    /// Whether `other` has the same option embeddings in the same context and target slots
    /// (answers and priors aside): the groups of an OpinionQA training batch, which answer the
    /// same questions. A batch of such episodes multiplies them by the model's first layer once.
    pub fn same_embeddings(&self, other: &Episode) -> bool {
        self.context_x == other.context_x && self.target_x == other.target_x
    }

    /// Number of context option tokens.
    pub fn n_context_tokens(&self) -> usize {
        self.context_y.len()
    }

    /// Number of context questions.
    pub fn n_context_questions(&self) -> usize {
        self.n_context_questions
    }

    /// Number of target option tokens.
    pub fn n_target_tokens(&self) -> usize {
        self.target_y.len()
    }

    /// Option count of each target question, in push order.
    pub fn target_options(&self) -> &[usize] {
        &self.target_options
    }

    /// Whether the questions carry population priors (`false` for an empty episode).
    pub fn has_prior(&self) -> bool {
        self.has_prior.unwrap_or(false)
    }

    /// Adds a context question; it needs its [`Question::answer`].
    pub fn push_context(&mut self, question: Question<'_>) -> Result<(), BatchError> {
        let index = self.n_context_questions;
        let answer = question.answer.ok_or(BatchError::MissingAnswer { question: index })?;
        let options = self.check(Side::Context, index, &question)?;
        self.context_x.extend_from_slice(question.embeddings);
        self.context_y.extend_from_slice(answer);
        push_prior(&mut self.context_prior, options, question.prior);
        self.n_context_questions += 1;
        Ok(())
    }

    /// Adds a target question. Its [`Question::answer`], when known (training, evaluation), only
    /// enters the loss; the model never sees it.
    pub fn push_target(&mut self, question: Question<'_>) -> Result<(), BatchError> {
        let index = self.target_options.len();
        let options = self.check(Side::Target, index, &question)?;
        self.target_x.extend_from_slice(question.embeddings);
        match question.answer {
            Some(p) => self.target_y.extend_from_slice(p),
            None => self.target_y.resize(self.target_y.len() + options, 0.0),
        }
        push_prior(&mut self.target_prior, options, question.prior);
        self.target_options.push(options);
        Ok(())
    }

    fn check(&mut self, side: Side, question: usize, q: &Question<'_>) -> Result<usize, BatchError> {
        let embeddings = q.embeddings;
        if embeddings.is_empty() {
            return Err(BatchError::NoOptions { side, question });
        }
        if !embeddings.len().is_multiple_of(self.dim_x) {
            return Err(BatchError::EmbeddingLength { side, question, len: embeddings.len(), dim_x: self.dim_x });
        }
        if embeddings.iter().any(|v| !v.is_finite()) {
            return Err(BatchError::NonFinite { side, question, what: "embedding" });
        }
        let options = embeddings.len() / self.dim_x;
        if let Some(p) = q.answer {
            if p.len() != options {
                return Err(BatchError::ProbabilityCount { side, question, probabilities: p.len(), options });
            }
            check_distribution(side, question, "probability", p)?;
        }
        if let Some(p) = q.prior {
            if p.len() != options {
                return Err(BatchError::PriorCount { side, question, prior: p.len(), options });
            }
            check_distribution(side, question, "prior", p)?;
        }
        let has_prior = q.prior.is_some();
        match self.has_prior {
            Some(before) if before != has_prior => return Err(BatchError::MixedPriors { side, question }),
            _ => self.has_prior = Some(has_prior),
        }
        Ok(options)
    }
}

/// Rejects NaN, infinite and negative values of a distribution.
fn check_distribution(side: Side, question: usize, what: &'static str, p: &[f32]) -> Result<(), BatchError> {
    if p.iter().any(|v| !v.is_finite()) {
        return Err(BatchError::NonFinite { side, question, what });
    }
    match p.iter().find(|v| **v < 0.0) {
        Some(&value) => Err(BatchError::NegativeProbability { side, question, value }),
        None => Ok(()),
    }
}

/// Appends a question's prior (zeros when it has none: such episodes never reach a prior model).
fn push_prior(out: &mut Vec<f32>, options: usize, prior: Option<&[f32]>) {
    match prior {
        Some(p) => out.extend_from_slice(p),
        None => out.resize(out.len() + options, 0.0),
    }
}

/// Episodes padded into tensors. Padding is explicit (masks), never inferred from zero features.
#[derive(Debug, Clone)]
pub struct GpoBatch<B: Backend> {
    /// Context option embeddings, [batch, n_context, dim_x].
    pub(crate) context_x: Tensor<B, 3>,
    /// Context answer probabilities, [batch, n_context].
    pub(crate) context_y: Tensor<B, 2>,
    /// Population prior of each context option, [batch, n_context].
    pub(crate) context_prior: Tensor<B, 2>,
    /// `true` where a context slot is padding, [batch, n_context]; `None` when no slot is (every
    /// episode has as many context options: all OpinionQA training batches), so that the
    /// attention skips masking.
    pub(crate) context_pad: Option<Tensor<B, 2, Bool>>,
    /// Target option embeddings, [batch, n_target, dim_x].
    pub(crate) target_x: Tensor<B, 3>,
    /// True target probabilities (zero when unknown), [batch, n_target].
    pub(crate) target_y: Tensor<B, 2>,
    /// Population prior of each target option, [batch, n_target].
    pub(crate) target_prior: Tensor<B, 2>,
    /// `true` where a target slot is padding, [batch, n_target].
    pub(crate) target_pad: Tensor<B, 2, Bool>,
    /// For each target slot, the index of its question in the episode's target questions
    /// (0 for padding), [batch, n_target].
    pub(crate) target_question: Tensor<B, 2, Int>,
    /// For each target question, the slot of each of its options (0 for padding),
    /// [batch, n_questions, max_options].
    pub(crate) question_slots: Tensor<B, 3, Int>,
    /// `true` where `question_slots` is padding, [batch, n_questions, max_options].
    pub(crate) question_slot_pad: Tensor<B, 3, Bool>,
    /// Option count of each target question of each episode.
    pub(crate) target_options: Vec<Vec<usize>>,
    /// Whether the episodes carry population priors.
    pub(crate) has_prior: bool,
    /// Embedding dimension.
    pub(crate) dim_x: usize,
    /// Whether every episode has the same option embeddings in the same context and target slots
    /// (the groups of an OpinionQA training batch answer the same questions): the model then
    /// multiplies them by its first layer once for the whole batch.
    pub(crate) shared_x: bool,
}

impl<B: Backend> GpoBatch<B> {
    /// Pads `episodes` into one batch on `device`. An episode may have no context (the model then
    /// predicts from the targets' embeddings alone) but must have at least one target.
    pub fn new(episodes: &[Episode], device: &B::Device) -> Result<Self, BatchError> {
        let first = episodes.first().ok_or(BatchError::EmptyBatch)?;
        let dim_x = first.dim_x;
        for (index, episode) in episodes.iter().enumerate() {
            if episode.dim_x != dim_x {
                return Err(BatchError::DimensionMismatch { expected: dim_x, found: episode.dim_x });
            }
            if episode.target_options.is_empty() {
                return Err(BatchError::NoTargets { episode: index });
            }
            if episode.has_prior() != first.has_prior() {
                return Err(BatchError::BatchPriors { episode: index });
            }
        }
        let batch = episodes.len();
        // At least one (padding) context slot, so that tensors never have a zero dimension.
        let n_context = episodes.iter().map(Episode::n_context_tokens).max().unwrap_or(0).max(1);
        let n_target = episodes.iter().map(Episode::n_target_tokens).max().unwrap_or(0);
        let n_questions = episodes.iter().map(|e| e.target_options.len()).max().unwrap_or(0);
        let max_options = episodes.iter().flat_map(|e| e.target_options.iter().copied()).max().unwrap_or(0);

        let mut context_x = Vec::with_capacity(batch * n_context * dim_x);
        let mut context_y = Vec::with_capacity(batch * n_context);
        let mut context_prior = Vec::with_capacity(batch * n_context);
        let mut context_pad = Vec::with_capacity(batch * n_context);
        let mut target_x = Vec::with_capacity(batch * n_target * dim_x);
        let mut target_y = Vec::with_capacity(batch * n_target);
        let mut target_prior = Vec::with_capacity(batch * n_target);
        let mut target_pad = Vec::with_capacity(batch * n_target);
        let mut target_question = Vec::with_capacity(batch * n_target);
        let mut question_slots = Vec::with_capacity(batch * n_questions * max_options);
        let mut question_slot_pad = Vec::with_capacity(batch * n_questions * max_options);

        for episode in episodes {
            let real = episode.n_context_tokens();
            pad_rows(&mut context_x, &episode.context_x, n_context * dim_x);
            pad_rows(&mut context_y, &episode.context_y, n_context);
            pad_rows(&mut context_prior, &episode.context_prior, n_context);
            context_pad.extend((0..n_context).map(|slot| slot >= real));

            let real = episode.n_target_tokens();
            pad_rows(&mut target_x, &episode.target_x, n_target * dim_x);
            pad_rows(&mut target_y, &episode.target_y, n_target);
            pad_rows(&mut target_prior, &episode.target_prior, n_target);
            target_pad.extend((0..n_target).map(|slot| slot >= real));

            let mut slot = 0i64;
            for (question, &options) in episode.target_options.iter().enumerate() {
                target_question.extend(core::iter::repeat_n(question as i64, options));
                question_slots.extend((0..max_options as i64).map(|k| if k < options as i64 { slot + k } else { 0 }));
                question_slot_pad.extend((0..max_options).map(|k| k >= options));
                slot += options as i64;
            }
            target_question.resize(target_question.len() + (n_target - real), 0);
            let missing = (n_questions - episode.target_options.len()) * max_options;
            question_slots.resize(question_slots.len() + missing, 0);
            question_slot_pad.resize(question_slot_pad.len() + missing, true);
        }

        let float = |values: Vec<f32>, shape: &[usize]| TensorData::new(values, shape.to_vec());
        Ok(Self {
            context_x: Tensor::from_data(float(context_x, &[batch, n_context, dim_x]), device),
            context_y: Tensor::from_data(float(context_y, &[batch, n_context]), device),
            context_prior: Tensor::from_data(float(context_prior, &[batch, n_context]), device),
            context_pad: (context_pad.contains(&true))
                .then(|| Tensor::from_data(TensorData::new(context_pad, [batch, n_context]), device)),
            target_x: Tensor::from_data(float(target_x, &[batch, n_target, dim_x]), device),
            target_y: Tensor::from_data(float(target_y, &[batch, n_target]), device),
            target_prior: Tensor::from_data(float(target_prior, &[batch, n_target]), device),
            target_pad: Tensor::from_data(TensorData::new(target_pad, [batch, n_target]), device),
            target_question: Tensor::from_data(TensorData::new(target_question, [batch, n_target]), device),
            question_slots: Tensor::from_data(
                TensorData::new(question_slots, [batch, n_questions, max_options]),
                device,
            ),
            question_slot_pad: Tensor::from_data(
                TensorData::new(question_slot_pad, [batch, n_questions, max_options]),
                device,
            ),
            target_options: episodes.iter().map(|e| e.target_options.clone()).collect(),
            has_prior: first.has_prior(),
            dim_x,
            shared_x: episodes.iter().all(|e| e.same_embeddings(first)),
        })
    }

    /// Number of real (non-padding) target option slots over the whole batch.
    pub fn n_real_targets(&self) -> usize {
        self.target_options.iter().flatten().sum()
    }

    /// Option count of each target question of each episode.
    pub fn target_options(&self) -> &[Vec<usize>] {
        &self.target_options
    }

    /// `true` where a target slot is padding, [batch, n_target].
    pub fn target_pad(&self) -> Tensor<B, 2, Bool> {
        self.target_pad.clone()
    }

    /// True target probabilities (zero when unknown), [batch, n_target].
    pub fn target_y(&self) -> Tensor<B, 2> {
        self.target_y.clone()
    }

    /// Whether the episodes carry population priors.
    pub fn has_prior(&self) -> bool {
        self.has_prior
    }

    /// Embedding dimension.
    pub fn dim_x(&self) -> usize {
        self.dim_x
    }
}

/// Appends `values` to `out` and zero-pads to `len` entries.
fn pad_rows(out: &mut Vec<f32>, values: &[f32], len: usize) {
    out.extend_from_slice(values);
    out.resize(out.len() + (len - values.len()), 0.0);
}
