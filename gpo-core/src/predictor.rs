//! [`Predictor`]: a model file turned into predictions for a group, the one inference path that
//! `gpo predict`, the browser bindings and gpo-train's evaluation all call.
//!
//! A request is a group's **context** questions (with its answer distributions) and the
//! **target** questions to predict, each a [`Question`] (option embeddings, and the question's key
//! where it has one). For a prior model the predictor computes every question's population prior
//! from the prior data the model file carries ([`crate::prior`]): by key for the questions it
//! knows, from the nearest known questions for the others.
//!
//! # Limits
//! A request holds at most [`MAX_CONTEXT_QUESTIONS`] context questions with at most
//! [`MAX_CONTEXT_TOKENS`] options in all, at most [`MAX_TARGET_QUESTIONS`] target questions, and at
//! most [`MAX_OPTIONS`] options per question; larger requests get [`PredictError::TooLarge`]
//! before anything is allocated. Targets attend only to the context, so they are run
//! [`TARGET_CHUNK_TOKENS`] options at a time with results identical to one pass.

use alloc::string::String;
use alloc::vec::Vec;

use burn::tensor::backend::Backend;

use crate::batch::{BatchError, Episode, GpoBatch, Question, Side};
use crate::model::Gpo;
use crate::model_file::{ModelFile, ModelFileError, ModelMetadata};
use crate::prior::{PopulationPrior, PriorError, PriorValue, SUM_TOLERANCE};
use crate::request::{Request, RequestError, RequestQuestion, Response, ResponsePrediction, ResponsePrior};

/// Most context questions of a request.
pub const MAX_CONTEXT_QUESTIONS: usize = 1_024;
/// Most context options (tokens) of a request: bounds the context attention.
pub const MAX_CONTEXT_TOKENS: usize = 8_192;
/// Most target questions of a request.
pub const MAX_TARGET_QUESTIONS: usize = 65_536;
/// Most options of one question.
pub const MAX_OPTIONS: usize = 64;
/// Target options run per forward pass.
pub const TARGET_CHUNK_TOKENS: usize = 2_048;

/// Why a prediction failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PredictError {
    /// The model file cannot be used.
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// A question does not fit the model.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The prior cannot be computed.
    #[error(transparent)]
    Prior(#[from] PriorError),
    /// The request is larger than the documented limits.
    #[error("{what}: {found} is more than the limit of {max}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// How many were given.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// No target question.
    #[error("a request needs at least one target question")]
    NoTargets,
    /// A question of the wrong shape.
    #[error("{side} question {question}: {why}")]
    Question {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        question: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// A context answer that does not sum to 1.
    #[error("context question {question}: the answer distribution sums to {sum}, not 1 (tolerance {SUM_TOLERANCE})")]
    NotNormalised {
        /// Index of the question among the context questions.
        question: usize,
        /// Its sum.
        sum: f32,
    },
    /// The model and the prior do not go together.
    #[error("{0}")]
    PriorMismatch(&'static str),
    /// Reading the result back from the device failed.
    #[error("reading the prediction back failed: {0}")]
    Readback(String),
}

/// The prediction for one target question.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Predicted probability of each option.
    pub distribution: Vec<f32>,
    /// For a prior model: the question's population prior and where it came from.
    pub prior: Option<PriorValue>,
}

/// A model ready to predict: the network on a device and, for a prior model, its prior.
///
/// ```
/// # use burn_ndarray::NdArray;
/// use gpo_core::{GpoConfig, ModelFile, ModelMetadata, Predictor, Question, WeightDType};
/// use gpo_core::template::Template;
/// # let device = Default::default();
/// # let config = GpoConfig::new(2).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1);
/// # let model = config.init_seeded::<NdArray>(&device, 0).unwrap();
/// # let metadata = ModelMetadata::new("demo", 2, Some(Template::Gpo));
/// # let bytes = ModelFile::from_model(&model, &config, metadata, WeightDType::F16, None).and_then(|f| f.to_bytes()).unwrap();
/// let predictor = Predictor::<NdArray>::new(&ModelFile::from_bytes(&bytes).unwrap(), &device).unwrap();
/// let predictions = predictor
///     .predict(
///         &[Question::new(&[1.0, 0.0, 0.0, 1.0]).answer(&[0.2, 0.8])],
///         &[Question::new(&[0.5, 0.5, 1.0, 0.0, 0.0, 1.0])],
///     )
///     .unwrap();
/// assert_eq!(predictions[0].distribution.len(), 3);
/// ```
#[derive(Debug)]
pub struct Predictor<B: Backend> {
    model: Gpo<B>,
    prior: Option<PopulationPrior>,
    /// The model file's metadata (what its inputs must be), when built from a file.
    metadata: Option<ModelMetadata>,
    /// The sentence encoder that embeds questions given by text (on any backend: a browser
    /// pairs a CPU encoder with a WebGPU model).
    #[cfg(feature = "text")]
    encoder: Option<alloc::boxed::Box<dyn crate::text::TextEncoder>>,
    device: B::Device,
}

/// One request turned into model episodes (target chunks) and the targets' priors.
struct Prepared {
    episodes: Vec<Episode>,
    /// Number of target chunks (`episodes` may have been moved out for batching).
    chunks: usize,
    priors: Vec<Option<PriorValue>>,
}

impl<B: Backend> Predictor<B> {
    /// Builds the model of `file` on `device`, with the prior the file carries.
    pub fn new(file: &ModelFile, device: &B::Device) -> Result<Self, PredictError> {
        let mut predictor = Self::from_model(file.to_model::<B>(device)?, file.prior().cloned())?;
        predictor.metadata = Some(file.metadata().clone());
        Ok(predictor)
    }

    /// Builds the model of the `.gpo` file `bytes` on `device` (see [`ModelFile::from_bytes`]).
    pub fn from_bytes(bytes: &[u8], device: &B::Device) -> Result<Self, PredictError> {
        Self::new(&ModelFile::from_bytes(bytes)?, device)
    }

    /// The model file's metadata (`None` for a predictor built with [`Self::from_model`]).
    pub fn metadata(&self) -> Option<&ModelMetadata> {
        self.metadata.as_ref()
    }

    /// The predictor with `encoder` embedding the questions [`Self::answer`] gets as text, through
    /// the model's template. Fails, naming both, unless the encoder is the embedding model the
    /// model file records and the model's inputs were made from text.
    #[cfg(feature = "text")]
    pub fn with_encoder(mut self, encoder: impl crate::text::TextEncoder + 'static) -> Result<Self, RequestError> {
        let mismatch = |model: &str, template: Option<crate::template::Template>| RequestError::EncoderMismatch {
            model: model.into(),
            template: template.map_or("none", |t| t.id()).into(),
            encoder: encoder.id().into(),
        };
        match &self.metadata {
            None => return Err(mismatch("(unknown: a model built without its file)", None)),
            Some(m) if m.embedding_model != encoder.id() || m.text_template.is_none() => {
                return Err(mismatch(&m.embedding_model, m.text_template));
            }
            Some(_) if encoder.dim() != self.dim_x() => {
                return Err(RequestError::EncoderDimension { encoder: encoder.dim(), model: self.dim_x() });
            }
            Some(_) => {}
        }
        self.encoder = Some(alloc::boxed::Box::new(encoder));
        Ok(self)
    }

    /// Answers `request`: embeds the questions given by text (with the encoder of
    /// [`Self::with_encoder`]), then predicts every target from the answered context.
    pub fn answer(&self, request: &Request) -> Result<Response, RequestError> {
        let embeddings = self.request_embeddings(request)?;
        let (context, targets) = request_questions(request, &embeddings);
        let predictions = self.predict(&context, &targets)?;
        Ok(self.respond(request, predictions))
    }

    /// [`Self::answer`] with an asynchronous read-back (see [`Self::predict_async`]); questions
    /// given by text are embedded synchronously, by the encoder on its own backend.
    pub async fn answer_async(&self, request: &Request) -> Result<Response, RequestError> {
        let embeddings = self.request_embeddings(request)?;
        let (context, targets) = request_questions(request, &embeddings);
        let predictions = self.predict_async(&context, &targets).await?;
        Ok(self.respond(request, predictions))
    }

    /// The option embeddings of every question of `request` (context, then targets), each
    /// `options × dim` row-major, after the request's shape is checked.
    fn request_embeddings(&self, request: &Request) -> Result<[Vec<Vec<f32>>; 2], RequestError> {
        let sides = [(Side::Context, &request.context), (Side::Target, &request.targets)];
        let too_large = |what, found, max| {
            if found > max { Err(RequestError::Predict(PredictError::TooLarge { what, found, max })) } else { Ok(()) }
        };
        too_large("context questions", request.context.len(), MAX_CONTEXT_QUESTIONS)?;
        too_large("target questions", request.targets.len(), MAX_TARGET_QUESTIONS)?;
        let dim = self.dim_x();
        let mut embeddings: [Vec<Vec<f32>>; 2] = [Vec::new(), Vec::new()];
        for (s, (side, questions)) in sides.iter().enumerate() {
            for (index, q) in questions.iter().enumerate() {
                let bad = |why: String| RequestError::Question { side: *side, index, why };
                match (*side, &q.distribution) {
                    (Side::Context, None) => {
                        return Err(bad("a context question needs the group's `distribution`".into()));
                    }
                    (Side::Target, Some(_)) => {
                        return Err(bad("a target has a `distribution`; only context questions take one".into()));
                    }
                    _ => {}
                }
                let rows = match (&q.embeddings, &q.text, &q.options) {
                    (Some(rows), None, None) => {
                        too_large("options of a question", rows.len(), MAX_OPTIONS)?;
                        if let Some(row) = rows.iter().position(|r| r.len() != dim) {
                            return Err(bad(alloc::format!(
                                "embeddings[{row}] has {} values; the model expects {dim}",
                                rows[row].len()
                            )));
                        }
                        rows.iter().flatten().copied().collect()
                    }
                    (None, Some(text), Some(options)) => {
                        too_large("options of a question", options.len(), MAX_OPTIONS)?;
                        self.embed_question(text, options).map_err(|e| match e {
                            RequestError::Text(why) => bad(why),
                            other => other,
                        })?
                    }
                    (None, None, None) if q.key.is_some() => {
                        return Err(bad("a question given by `key` alone: give its `embeddings` or `text` with `options` (gpo predict --config resolves keys)".into()));
                    }
                    _ => return Err(bad("give either `embeddings`, or `text` with `options`".into())),
                };
                embeddings[s].push(rows);
            }
        }
        Ok(embeddings)
    }

    /// The response to `request` from its targets' predictions.
    fn respond(&self, request: &Request, predictions: Vec<Prediction>) -> Response {
        let predictions = request
            .targets
            .iter()
            .zip(predictions)
            .map(|(q, p)| ResponsePrediction {
                key: q.key.clone(),
                prior: p.prior.as_ref().zip(self.prior.as_ref()).map(|(value, prior)| ResponsePrior::new(value, prior)),
                distribution: p.distribution,
            })
            .collect();
        Response { predictions }
    }

    /// The option embeddings of a question given by text, `options × dim` row-major, as
    /// [`Self::answer`] embeds it: the model's template, then the encoder of
    /// [`Self::with_encoder`]. Lets a caller embed a question once and ask it for many groups.
    #[cfg(feature = "text")]
    pub fn embed_question<S: AsRef<str>>(&self, text: &str, options: &[S]) -> Result<Vec<f32>, RequestError> {
        let encoder = self.encoder.as_ref().ok_or_else(|| {
            RequestError::Text(
                "a question given by text needs an encoder (Predictor::with_encoder; gpo predict: pass --encoder)"
                    .into(),
            )
        })?;
        // `with_encoder` admits only models whose inputs were made from text.
        let template = self.metadata.as_ref().and_then(|m| m.text_template).unwrap_or_default();
        let texts = template.texts(text, options).map_err(|e| RequestError::Text(alloc::format!("{e}")))?;
        let refs: Vec<&str> = texts.iter().map(alloc::string::String::as_str).collect();
        Ok(encoder.embed(&refs)?)
    }

    /// Without the `text` feature, questions given by text cannot be embedded.
    #[cfg(not(feature = "text"))]
    fn embed_question(&self, _text: &str, _options: &[alloc::string::String]) -> Result<Vec<f32>, RequestError> {
        Err(RequestError::Text("a question given by text needs gpo-core's `text` feature and an encoder".into()))
    }

    /// A predictor over a model already built, with `prior` for a prior model (and none for a
    /// model without a prior).
    pub fn from_model(model: Gpo<B>, prior: Option<PopulationPrior>) -> Result<Self, PredictError> {
        match (&prior, model.prior) {
            (None, true) => return Err(PredictError::PriorMismatch("this model reads a prior: give its prior data")),
            (Some(_), false) => return Err(PredictError::PriorMismatch("this model reads no prior")),
            (Some(p), true) if p.dim() != model.dim_x() => {
                return Err(PredictError::PriorMismatch(
                    "the prior's question vectors differ in dimension from the model's inputs",
                ));
            }
            _ => {}
        }
        let device = model.device();
        Ok(Self {
            model,
            prior,
            metadata: None,
            #[cfg(feature = "text")]
            encoder: None,
            device,
        })
    }

    /// The network.
    pub fn model(&self) -> &Gpo<B> {
        &self.model
    }

    /// The prior of a prior model.
    pub fn prior(&self) -> Option<&PopulationPrior> {
        self.prior.as_ref()
    }

    /// The embedding dimension the model expects.
    pub fn dim_x(&self) -> usize {
        self.model.dim_x()
    }

    /// Predicts the group's distribution on every target question from its answers to the
    /// context questions: one [`Prediction`] per target, in order.
    pub fn predict(&self, context: &[Question<'_>], targets: &[Question<'_>]) -> Result<Vec<Prediction>, PredictError> {
        Ok(self.predict_groups(&[(context, targets)], 1)?.remove(0))
    }

    /// [`Self::predict`] for several groups, `groups_per_batch` requests per forward pass (the
    /// results do not depend on it beyond floating-point rounding of the batched matmuls).
    pub fn predict_groups(
        &self,
        requests: &[(&[Question<'_>], &[Question<'_>])],
        groups_per_batch: usize,
    ) -> Result<Vec<Vec<Prediction>>, PredictError> {
        let mut prepared: Vec<Prepared> = requests.iter().map(|(c, t)| self.prepare(c, t)).collect::<Result<_, _>>()?;
        // The episodes move into one list (batched by slices, never copied); each request keeps
        // its chunk count.
        let episodes: Vec<Episode> = prepared.iter_mut().flat_map(|p| core::mem::take(&mut p.episodes)).collect();
        let mut distributions = Vec::with_capacity(episodes.len());
        for chunk in episodes.chunks(groups_per_batch.max(1)) {
            let batch = GpoBatch::<B>::new(chunk, &self.device)?;
            let data = self
                .model
                .forward(&batch)?
                .mean
                .try_into_data()
                .map_err(|e| PredictError::Readback(alloc::format!("{e:?}")))?;
            distributions.extend(split(data, batch.target_options())?);
        }
        Ok(assemble(prepared, distributions))
    }

    /// [`Self::predict`] with an asynchronous read-back, for backends that cannot block (WebGPU
    /// in a browser).
    pub async fn predict_async(
        &self,
        context: &[Question<'_>],
        targets: &[Question<'_>],
    ) -> Result<Vec<Prediction>, PredictError> {
        let prepared = self.prepare(context, targets)?;
        let mut distributions = Vec::new();
        for episode in &prepared.episodes {
            let batch = GpoBatch::<B>::new(core::slice::from_ref(episode), &self.device)?;
            let data = self
                .model
                .forward(&batch)?
                .mean
                .into_data_async()
                .await
                .map_err(|e| PredictError::Readback(alloc::format!("{e:?}")))?;
            distributions.extend(split(data, batch.target_options())?);
        }
        Ok(assemble(alloc::vec![prepared], distributions).remove(0))
    }

    /// The population prior of every target (for a prior model; `None` otherwise), as the
    /// predictor computes it for the model. Lets a caller show the prior beside the prediction.
    pub fn priors(
        &self,
        context: &[Question<'_>],
        targets: &[Question<'_>],
    ) -> Result<Option<Vec<PriorValue>>, PredictError> {
        self.check(context, targets)?;
        self.compute_priors(context, targets).map(|p| p.map(|(_, t)| t))
    }

    fn check(&self, context: &[Question<'_>], targets: &[Question<'_>]) -> Result<(), PredictError> {
        check_request(self.dim_x(), context, targets)
    }

    /// The priors of the context and target questions, for a prior model.
    #[allow(clippy::type_complexity)]
    fn compute_priors(
        &self,
        context: &[Question<'_>],
        targets: &[Question<'_>],
    ) -> Result<Option<(Vec<PriorValue>, Vec<PriorValue>)>, PredictError> {
        Ok(self.prior.as_ref().map(|p| p.for_questions(context, targets)).transpose()?)
    }

    fn prepare(&self, context: &[Question<'_>], targets: &[Question<'_>]) -> Result<Prepared, PredictError> {
        self.check(context, targets)?;
        let priors = self.compute_priors(context, targets)?;
        let to_f32 = |p: &PriorValue| -> Vec<f32> { p.distribution.iter().map(|&v| v as f32).collect() };
        let (context_priors, target_priors): (Vec<Option<Vec<f32>>>, Vec<Option<PriorValue>>) = match priors {
            Some((c, t)) => (c.iter().map(|p| Some(to_f32(p))).collect(), t.into_iter().map(Some).collect()),
            None => (alloc::vec![None; context.len()], alloc::vec![None; targets.len()]),
        };
        let target_f32: Vec<Option<Vec<f32>>> = target_priors.iter().map(|p| p.as_ref().map(to_f32)).collect();
        let dim = self.dim_x();
        let mut base = Episode::new(dim)?;
        for (q, prior) in context.iter().zip(&context_priors) {
            let mut question = Question::new(q.embeddings()).answer(q.answer_values().unwrap_or_default());
            if let Some(p) = prior {
                question = question.prior(p);
            }
            base.push_context(question)?;
        }
        let mut episodes = Vec::new();
        let mut current = base.clone();
        for (q, prior) in targets.iter().zip(&target_f32) {
            let options = q.embeddings().len() / dim;
            if current.n_target_tokens() > 0 && current.n_target_tokens() + options > TARGET_CHUNK_TOKENS {
                episodes.push(core::mem::replace(&mut current, base.clone()));
            }
            let mut question = Question::new(q.embeddings());
            if let Some(p) = prior {
                question = question.prior(p);
            }
            current.push_target(question)?;
        }
        episodes.push(current);
        Ok(Prepared { chunks: episodes.len(), episodes, priors: target_priors })
    }
}

/// The context (answered) and target questions of `request` over its resolved `embeddings`.
fn request_questions<'a>(
    request: &'a Request,
    embeddings: &'a [Vec<Vec<f32>>; 2],
) -> (Vec<Question<'a>>, Vec<Question<'a>>) {
    fn question<'a>(q: &'a RequestQuestion, embeddings: &'a [f32]) -> Question<'a> {
        let question = Question::new(embeddings);
        match &q.key {
            Some(key) => question.key(key),
            None => question,
        }
    }
    let context = request
        .context
        .iter()
        .zip(&embeddings[0])
        .map(|(q, e)| question(q, e).answer(q.distribution.as_deref().unwrap_or_default()))
        .collect();
    let targets = request.targets.iter().zip(&embeddings[1]).map(|(q, e)| question(q, e)).collect();
    (context, targets)
}

/// Checks a request's sizes, shapes and context answers for a model of input dimension `dim`
/// before anything is computed (the documented limits of this module).
pub fn check_request(dim: usize, context: &[Question<'_>], targets: &[Question<'_>]) -> Result<(), PredictError> {
    let too_large =
        |what, found, max| if found > max { Err(PredictError::TooLarge { what, found, max }) } else { Ok(()) };
    too_large("context questions", context.len(), MAX_CONTEXT_QUESTIONS)?;
    too_large("target questions", targets.len(), MAX_TARGET_QUESTIONS)?;
    if targets.is_empty() {
        return Err(PredictError::NoTargets);
    }
    let mut context_tokens = 0usize;
    for (side, questions) in [(Side::Context, context), (Side::Target, targets)] {
        for (question, q) in questions.iter().enumerate() {
            let fail = |why| PredictError::Question { side, question, why };
            let len = q.embeddings().len();
            if len == 0 || !len.is_multiple_of(dim) {
                return Err(fail("the embeddings are not a positive whole number of rows of the model's dimension"));
            }
            let options = len / dim;
            too_large("options of a question", options, MAX_OPTIONS)?;
            if q.prior_values().is_some() {
                return Err(fail("the predictor computes priors itself: give no prior"));
            }
            match (side, q.answer_values()) {
                (Side::Context, None) => return Err(fail("a context question needs the group's answer")),
                (Side::Target, Some(_)) => return Err(fail("a target question takes no answer")),
                (Side::Context, Some(p)) => {
                    if p.len() != options {
                        return Err(fail("the answer has not one probability per option"));
                    }
                    if p.iter().any(|v| !v.is_finite() || *v < 0.0) {
                        return Err(fail("the answer holds a negative or non-finite probability"));
                    }
                    let sum: f32 = p.iter().sum();
                    if (f64::from(sum) - 1.0).abs() > SUM_TOLERANCE {
                        return Err(PredictError::NotNormalised { question, sum });
                    }
                    context_tokens += options;
                }
                (Side::Target, None) => {}
            }
        }
    }
    too_large("context options", context_tokens, MAX_CONTEXT_TOKENS)
}

/// Splits a `[batch, n_target]` mean into each episode's per-question distributions.
fn split(data: burn::tensor::TensorData, target_options: &[Vec<usize>]) -> Result<Vec<Vec<Vec<f32>>>, PredictError> {
    let shape = data.shape.clone();
    let values: Vec<f32> =
        data.convert::<f32>().into_vec::<f32>().map_err(|e| PredictError::Readback(alloc::format!("{e:?}")))?;
    let n_target = shape.get(1).copied().unwrap_or(0);
    target_options
        .iter()
        .enumerate()
        .map(|(episode, options)| {
            let mut slot = episode * n_target;
            options
                .iter()
                .map(|&k| {
                    let question =
                        values.get(slot..slot + k).ok_or(PredictError::Readback("prediction is too short".into()))?;
                    slot += k;
                    Ok(question.to_vec())
                })
                .collect()
        })
        .collect()
}

/// Joins each request's target chunks back into one prediction per target.
fn assemble(prepared: Vec<Prepared>, distributions: Vec<Vec<Vec<f32>>>) -> Vec<Vec<Prediction>> {
    let mut chunks = distributions.into_iter();
    prepared
        .into_iter()
        .map(|p| {
            let flat: Vec<Vec<f32>> = chunks.by_ref().take(p.chunks).flatten().collect();
            flat.into_iter().zip(p.priors).map(|(distribution, prior)| Prediction { distribution, prior }).collect()
        })
        .collect()
}
