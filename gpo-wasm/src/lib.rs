//! # gpo-wasm
//!
//! [GPO](https://arxiv.org/abs/2310.11523) in the browser: wasm-bindgen bindings over
//! [`gpo_core`], running on WebGPU (burn-wgpu, cargo feature `webgpu`) or on the CPU (burn-ndarray).
//!
//! ```js
//! import init, { GpoModel } from "./pkg/gpo_wasm.js";
//! await init();
//! const model = await GpoModel.load(new Uint8Array(await (await fetch("model.gpo")).arrayBuffer()));
//! console.log(model.backend); // "webgpu" or "cpu"
//! const [dist] = await model.predict(
//!   { embeddings: ctxEmb, options: new Uint32Array([3]), distributions: new Float32Array([0.2, 0.5, 0.3]), keys: ["Q1"] },
//!   { embeddings: tgtEmb, options: new Uint32Array([4]), keys: ["Q2"] },
//! );
//! ```
//!
//! Questions can also come as text: an encoder file (`gpo export-encoder`, the model's own
//! sentence encoder) embeds them on the CPU, whatever backend the model runs on, and
//! `answer` takes the request `gpo predict` reads:
//!
//! ```js
//! import { GpoEncoder } from "./pkg/gpo_wasm.js";
//! const encoder = GpoEncoder.load(new Uint8Array(await (await fetch("encoder.gpoenc")).arrayBuffer()));
//! const texts = await model.withEncoder(encoder);
//! const { predictions } = await texts.answer({
//!   context: [{ text: "How much do you trust the news?", options: ["A lot", "Not at all"], distribution: [0.3, 0.7] }],
//!   targets: [{ text: "Should voting be compulsory?", options: ["Yes", "No"] }],
//! });
//! ```
//!
//! Everything runs through gpo-core's `Predictor`, the inference path `gpo predict` uses too.
//! Prior models (`model.usesPrior`, e.g. `gpo_knn`) compute each question's population prior from
//! the prior data in their `.gpo` file: by `keys` for the questions the prior knows, from the
//! nearest known questions for the others; `model.priors(context, targets)` returns those priors
//! (and, with a `kind`, the train-mean or kNN-groups baseline of the same data).
//!
//! Every bad input (a corrupt or foreign file, a wrong embedding dimension, lengths that
//! disagree, NaN, a distribution that does not sum to 1) rejects with a JavaScript `Error` whose
//! message says what is wrong; nothing panics. Targets attend only to the context, so each
//! target's prediction does not depend on the other targets.

use std::rc::Rc;
#[cfg(feature = "text")]
use std::sync::Arc;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use gpo_core::prior::{PriorKind, PriorSource};
use gpo_core::request::{Request, RequestError};
#[cfg(feature = "text")]
use gpo_core::text::{EncoderFile, SentenceEncoder};
use gpo_core::{ModelFile, PredictError, Predictor};
use js_sys::{Array, Float32Array, Float64Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

mod input;

use input::read_questions;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Which backend `GpoModel.load` should use: `"auto"` (the default) takes WebGPU when
 * `navigator.gpu` gives an adapter and the build has WebGPU, else the CPU. */
export type GpoBackend = "auto" | "webgpu" | "cpu";

/** Options of `GpoModel.load`. */
export interface GpoLoadOptions {
  backend?: GpoBackend;
}

/** The context questions of one group: their option embeddings (row-major, one row of
 * `model.dimension` values per option, questions one after the other), the number of options of
 * each question, and the group's answer distribution over each question's options (concatenated). */
export interface GpoContext {
  embeddings: Float32Array;
  options: Uint32Array | number[];
  distributions: Float32Array | number[];
  /** The questions' keys (one per question): a prior model finds their priors by key; a question
   * without a known key gets the prior of its nearest known questions. */
  keys?: string[];
}

/** The target questions, laid out as in `GpoContext`, without distributions. */
export interface GpoTargets {
  embeddings: Float32Array;
  options: Uint32Array | number[];
  /** As `GpoContext.keys`. */
  keys?: string[];
}

/** A target question's population prior, and where it came from: `"answered"` (the prior groups
 * answered it) or `"nearest"` (the prior of the known questions `nearest`, by key, nearest first,
 * weighted by the model's rule for unknown questions, `GpoModel.priorRule`). */
export interface GpoPrior {
  distribution: Float64Array;
  source: "answered" | "nearest";
  nearest: string[];
}

/** A question of a `GpoRequest` (as `gpo predict` reads it): `embeddings` (one array per option),
 * or `text` with `options` (embedded by the model's encoder, see `GpoModel.withEncoder`); `key`
 * finds a prior model's prior; a context question carries the group's `distribution`. */
export interface GpoRequestQuestion {
  key?: string;
  text?: string;
  options?: string[];
  embeddings?: number[][];
  distribution?: number[];
}

/** A group's answered context questions and the targets to predict. */
export interface GpoRequest {
  context: GpoRequestQuestion[];
  targets: GpoRequestQuestion[];
}

/** `GpoModel.answer`'s result (as `gpo predict` writes it): one prediction per target, with a
 * prior model's prior and where it came from (`nearest`: the keys of the known questions it
 * averages, for a question no prior group answered). */
export interface GpoResponse {
  predictions: {
    key: string | null;
    distribution: number[];
    prior?: { distribution: number[]; source: "answered" | "nearest"; nearest: string[] };
  }[];
}

/** Which prior `GpoModel.priors` computes: the model's own (default) or one of the baselines. */
export type GpoPriorKind = "model" | "train_mean" | "knn_groups";
"#;

/// The backend a model runs on.
#[allow(clippy::large_enum_variant)] // one per model, behind an Rc: boxing would only add a hop
enum Runner {
    Cpu(Predictor<NdArray>),
    #[cfg(feature = "webgpu")]
    WebGpu(Predictor<burn::backend::Wgpu>),
}

/// A GPO model loaded from a `.gpo` file, ready to predict group answer distributions.
#[wasm_bindgen]
pub struct GpoModel {
    runner: Rc<Runner>,
    file: ModelFile,
    /// The encoder of [`GpoModel::with_encoder`], if any.
    #[cfg(feature = "text")]
    encoder: Option<Arc<SentenceEncoder<NdArray>>>,
}

/// A sentence encoder read from an encoder file (`gpo export-encoder`): texts in, vectors out, on
/// the CPU (one thread). Cargo feature `text`.
#[cfg(feature = "text")]
#[wasm_bindgen]
pub struct GpoEncoder {
    encoder: Arc<SentenceEncoder<NdArray>>,
    dtype: &'static str,
}

#[cfg(feature = "text")]
#[wasm_bindgen]
impl GpoEncoder {
    /// Validates an encoder file (its checksum, configuration, tokenizer and every tensor) and
    /// builds the encoder.
    pub fn load(bytes: &[u8]) -> Result<GpoEncoder, JsError> {
        let file = EncoderFile::from_bytes(bytes).map_err(|e| JsError::new(&format!("invalid encoder file: {e}")))?;
        let dtype = file.dtype().name();
        let encoder = file
            .encoder::<NdArray>(&NdArrayDevice::Cpu)
            .map_err(|e| JsError::new(&format!("invalid encoder file: {e}")))?
            .with_threads(1);
        Ok(GpoEncoder { encoder: Arc::new(encoder), dtype })
    }

    /// The encoder's identifier (`sentence-transformers/all-MiniLM-L6-v2`): a model reads only the
    /// vectors of the encoder it was trained on.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.encoder.id().to_string()
    }

    /// Length of each vector.
    #[wasm_bindgen(getter)]
    pub fn dimension(&self) -> usize {
        self.encoder.dim()
    }

    /// How the file stores the weights: `"f32"`, `"f16"` or `"int8"`.
    #[wasm_bindgen(getter)]
    pub fn dtype(&self) -> String {
        self.dtype.to_string()
    }

    /// The vectors of `texts`, `texts.length × dimension` values, row-major, as `gpo embed`
    /// computes them.
    pub fn embed(&self, texts: Vec<String>) -> Result<Float32Array, JsError> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = self.encoder.embed(&refs).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Float32Array::from(vectors.as_slice()))
    }
}

fn predict_error(error: PredictError) -> JsError {
    JsError::new(&error.to_string())
}

fn request_error(error: RequestError) -> JsError {
    JsError::new(&format!("request: {error}"))
}

/// A `GpoRequest` object, through its JSON (the format `gpo predict` reads, unknown fields refused).
fn read_request(value: &JsValue) -> Result<Request, JsError> {
    if !value.is_object() {
        return Err(JsError::new("request: expected an object { context: [...], targets: [...] }"));
    }
    let json = js_sys::JSON::stringify(value)
        .map_err(|_| JsError::new("request: cannot be written as JSON (a cycle, or a BigInt)"))?;
    let json = String::from(json);
    serde_json::from_str(&json).map_err(|e| JsError::new(&format!("request: {e}")))
}

#[wasm_bindgen]
impl GpoModel {
    /// Validates a `.gpo` file and builds the model on the chosen backend
    /// (`options.backend`: `"auto"` (default), `"webgpu"` or `"cpu"`).
    pub async fn load(
        bytes: Vec<u8>,
        #[wasm_bindgen(unchecked_param_type = "GpoLoadOptions | undefined")] options: JsValue,
    ) -> Result<GpoModel, JsError> {
        let requested = requested_backend(&options)?;
        let file = ModelFile::from_bytes(&bytes).map_err(|e| JsError::new(&format!("invalid .gpo model file: {e}")))?;
        let runner = match requested {
            Requested::Cpu => Runner::Cpu(cpu_model(&file)?),
            Requested::WebGpu => webgpu_model(&file).await?,
            Requested::Auto => match webgpu_model(&file).await {
                Ok(runner) => runner,
                Err(_) => Runner::Cpu(cpu_model(&file)?),
            },
        };
        Ok(GpoModel {
            runner: Rc::new(runner),
            file,
            #[cfg(feature = "text")]
            encoder: None,
        })
    }

    /// The same model, on the same backend, with `encoder` embedding the questions `answer` gets
    /// as text (cargo feature `text`). Rejects an encoder other than the model's embedding model (naming both), or a
    /// model whose inputs were not made from text.
    #[cfg(feature = "text")]
    #[wasm_bindgen(js_name = withEncoder)]
    pub async fn with_encoder(&self, encoder: &GpoEncoder) -> Result<GpoModel, JsError> {
        fn attach<B: burn::tensor::backend::Backend>(
            predictor: Predictor<B>,
            encoder: &Arc<SentenceEncoder<NdArray>>,
        ) -> Result<Predictor<B>, JsError> {
            predictor.with_encoder(Arc::clone(encoder)).map_err(request_error)
        }
        let shared = Arc::clone(&encoder.encoder);
        let runner = match self.runner.as_ref() {
            Runner::Cpu(_) => Runner::Cpu(attach(cpu_model(&self.file)?, &shared)?),
            #[cfg(feature = "webgpu")]
            Runner::WebGpu(_) => match webgpu_model(&self.file).await? {
                Runner::WebGpu(p) => Runner::WebGpu(attach(p, &shared)?),
                Runner::Cpu(p) => Runner::Cpu(attach(p, &shared)?),
            },
        };
        Ok(GpoModel { runner: Rc::new(runner), file: self.file.clone(), encoder: Some(shared) })
    }

    /// Whether questions can be given as text (an encoder was attached with `withEncoder`).
    #[wasm_bindgen(getter, js_name = hasEncoder)]
    pub fn has_encoder(&self) -> bool {
        #[cfg(feature = "text")]
        return self.encoder.is_some();
        #[cfg(not(feature = "text"))]
        false
    }

    /// The option embeddings of a question given by text (`options.length × dimension` values,
    /// row-major), as `answer` embeds it: the model's template, then its encoder (`withEncoder`).
    /// Embed a question once, then ask it for many groups by its `embeddings`.
    #[cfg(feature = "text")]
    #[wasm_bindgen(js_name = embedQuestion)]
    pub fn embed_question(&self, text: &str, options: Vec<String>) -> Result<Float32Array, JsError> {
        let rows = match self.runner.as_ref() {
            Runner::Cpu(p) => p.embed_question(text, &options),
            #[cfg(feature = "webgpu")]
            Runner::WebGpu(p) => p.embed_question(text, &options),
        }
        .map_err(request_error)?;
        Ok(Float32Array::from(rows.as_slice()))
    }

    /// Answers a request as `gpo predict` does (the same JSON: questions by `embeddings`, or by
    /// `text` and `options` with an encoder attached): resolves to one prediction per target, with
    /// a prior model's prior and where it came from.
    #[wasm_bindgen(unchecked_return_type = "Promise<GpoResponse>")]
    pub fn answer(&self, #[wasm_bindgen(unchecked_param_type = "GpoRequest")] request: JsValue) -> Promise {
        let request = match read_request(&request) {
            Ok(request) => request,
            Err(error) => return Promise::reject(&error.into()),
        };
        let runner = Rc::clone(&self.runner);
        wasm_bindgen_futures::future_to_promise(async move {
            let response = match runner.as_ref() {
                Runner::Cpu(p) => p.answer_async(&request).await,
                #[cfg(feature = "webgpu")]
                Runner::WebGpu(p) => p.answer_async(&request).await,
            }
            .map_err(request_error)?;
            let json = serde_json::to_string(&response).map_err(|e| JsError::new(&format!("response: {e}")))?;
            js_sys::JSON::parse(&json)
        })
    }

    /// `"webgpu"` or `"cpu"`: the backend the model runs on.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.runner.as_ref() {
            Runner::Cpu(_) => "cpu",
            #[cfg(feature = "webgpu")]
            Runner::WebGpu(_) => "webgpu",
        }
        .to_string()
    }

    /// The embedding dimension the model expects.
    #[wasm_bindgen(getter)]
    pub fn dimension(&self) -> usize {
        self.file.config().dim_x
    }

    /// Identifier of the sentence-embedding model the inputs must come from.
    #[wasm_bindgen(getter, js_name = embeddingModel)]
    pub fn embedding_model(&self) -> String {
        self.file.metadata().embedding_model.clone()
    }

    /// Id of the text template that turned (question, option) into text (`gpo`, `plain`; empty
    /// for inputs not made from text).
    #[wasm_bindgen(getter, js_name = textTemplate)]
    pub fn text_template(&self) -> String {
        self.file.metadata().text_template.map(|t| t.id().to_string()).unwrap_or_default()
    }

    /// Dataset the model was meta-trained on.
    #[wasm_bindgen(getter)]
    pub fn dataset(&self) -> String {
        self.file.metadata().dataset.clone()
    }

    /// Whether the model reads a population prior for every option (computed from the prior data
    /// in its file).
    #[wasm_bindgen(getter, js_name = usesPrior)]
    pub fn uses_prior(&self) -> bool {
        self.file.config().prior
    }

    /// The prior's kind and parameters as JSON (`{"kind":"knn_groups","temperature":0.02}`);
    /// empty for models without a prior.
    #[wasm_bindgen(getter)]
    pub fn prior(&self) -> String {
        self.file.prior().map(|p| kind_json(p.kind())).unwrap_or_default()
    }

    /// The prior's rule for questions it does not know, in words (e.g. "the 40 nearest questions
    /// weighted by similarity (temperature 0.05)"); empty for models without a prior.
    #[wasm_bindgen(getter, js_name = priorRule)]
    pub fn prior_rule(&self) -> String {
        self.file.prior().map(|p| p.neighbour_rule().to_string()).unwrap_or_default()
    }

    /// The groups the prior is computed from (empty for models without a prior).
    #[wasm_bindgen(getter, js_name = priorGroups)]
    pub fn prior_groups(&self) -> Vec<String> {
        self.file.prior().map(|p| p.groups().iter().map(|g| g.name.clone()).collect()).unwrap_or_default()
    }

    /// The keys of the questions the prior knows (empty for models without a prior).
    #[wasm_bindgen(getter, js_name = priorQuestions)]
    pub fn prior_questions(&self) -> Vec<String> {
        self.file.prior().map(|p| p.questions().iter().map(|q| q.key.clone()).collect()).unwrap_or_default()
    }

    /// The method name in the training run's results (`gpo`, `gpo_knn`, …).
    #[wasm_bindgen(getter)]
    pub fn method(&self) -> String {
        self.file.metadata().method.clone()
    }

    /// Number of scalar parameters.
    #[wasm_bindgen(getter)]
    pub fn parameters(&self) -> usize {
        self.file.n_parameters()
    }

    /// Predicts the group's answer distribution on every target question, given its answers on
    /// the context questions. Resolves to one `Float32Array` per target question.
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array[]>")]
    pub fn predict(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GpoContext")] context: JsValue,
        #[wasm_bindgen(unchecked_param_type = "GpoTargets")] targets: JsValue,
    ) -> Promise {
        let dim = self.file.config().dim_x;
        let read = read_questions("context", &context, dim, true)
            .and_then(|c| Ok((c, read_questions("targets", &targets, dim, false)?)));
        let (context, targets) = match read {
            Ok(questions) => questions,
            Err(error) => return Promise::reject(&error.into()),
        };
        let runner = Rc::clone(&self.runner);
        wasm_bindgen_futures::future_to_promise(async move {
            let (c, t) = (context.questions(dim), targets.questions(dim));
            let predictions = match runner.as_ref() {
                Runner::Cpu(p) => p.predict_async(&c, &t).await,
                #[cfg(feature = "webgpu")]
                Runner::WebGpu(p) => p.predict_async(&c, &t).await,
            }
            .map_err(predict_error)?;
            Ok(predictions.iter().map(|p| Float32Array::from(p.distribution.as_slice())).collect::<Array>().into())
        })
    }

    /// The population prior of every target question, as the model computes it (`kind`
    /// `"model"`, the default), or the `"train_mean"` / `"knn_groups"` baseline computed from the
    /// same prior groups (`knn_groups` at the model's temperature, or 0.02 for a train-mean
    /// model). One `GpoPrior` per target; an error for a model without prior data.
    #[wasm_bindgen(unchecked_return_type = "GpoPrior[]")]
    pub fn priors(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GpoContext")] context: JsValue,
        #[wasm_bindgen(unchecked_param_type = "GpoTargets")] targets: JsValue,
        #[wasm_bindgen(unchecked_param_type = "GpoPriorKind | undefined")] kind: JsValue,
    ) -> Result<Array, JsError> {
        let prior = self.file.prior().ok_or_else(|| {
            JsError::new("this model carries no prior data (it reads no prior): priors are not defined")
        })?;
        let model_kind = prior.kind();
        let kind = if kind.is_undefined() || kind.is_null() {
            model_kind
        } else {
            match kind.as_string().as_deref() {
                Some("model") => model_kind,
                Some("train_mean") => PriorKind::TrainMean,
                Some("knn_groups") => match model_kind {
                    PriorKind::KnnGroups { .. } => model_kind,
                    PriorKind::TrainMean => PriorKind::KnnGroups { temperature: 0.02 },
                },
                _ => return Err(JsError::new("kind must be \"model\", \"train_mean\" or \"knn_groups\"")),
            }
        };
        let dim = self.file.config().dim_x;
        let context = read_questions("context", &context, dim, true)?;
        let targets = read_questions("targets", &targets, dim, false)?;
        // The prior alone: no model is built for it.
        let prior = prior.clone().with_kind(kind).map_err(|e| JsError::new(&e.to_string()))?;
        let (context, targets) = (context.questions(dim), targets.questions(dim));
        gpo_core::predictor::check_request(dim, &context, &targets).map_err(predict_error)?;
        let (_, values) = prior.for_questions(&context, &targets).map_err(|e| predict_error(e.into()))?;
        let table = prior.questions();
        let out = Array::new();
        for value in values {
            let o = Object::new();
            let set = |k: &str, v: &JsValue| {
                Reflect::set(&o, &k.into(), v).map_err(|_| JsError::new("cannot build the result"))
            };
            set("distribution", &Float64Array::from(value.distribution.as_slice()).into())?;
            let (source, nearest, context) = match &value.source {
                PriorSource::Answered => ("answered", Array::new(), Array::new()),
                PriorSource::Nearest { known, context } => (
                    "nearest",
                    known.iter().map(|&q| JsValue::from(table[q].key.as_str())).collect(),
                    context.iter().map(|&c| JsValue::from(c as u32)).collect(),
                ),
            };
            set("source", &source.into())?;
            set("nearest", &nearest.into())?;
            set("context", &context.into())?;
            out.push(&o);
        }
        Ok(out)
    }
}

/// The texts `template` (`"gpo"` or `"plain"`) embeds for a question and its options: one per
/// option, exactly as `gpo embed` builds them.
#[wasm_bindgen(js_name = questionTexts)]
pub fn question_texts(template: &str, text: &str, options: Vec<String>) -> Result<Vec<String>, JsError> {
    let template: gpo_core::template::Template =
        template.parse().map_err(|e: gpo_core::template::TemplateError| JsError::new(&e.to_string()))?;
    template.texts(text, &options).map_err(|e| JsError::new(&e.to_string()))
}

/// The questions of a bank nearest to a question, most similar first: the similarity rule a prior
/// model's new questions use (gpo-core's `rank_by_similarity`: the dot product of the questions'
/// unit mean option embeddings; ties by index). Question `i` of the bank has `options[i]` option
/// embeddings starting at row `rows[i]` of `embeddings` (`dimension` values a row); `query` holds
/// the question's option embeddings. Returns the indices of the `count` nearest bank questions.
#[wasm_bindgen(js_name = nearestQuestions)]
pub fn nearest_questions(
    embeddings: &[f32],
    rows: &[u32],
    options: &[u32],
    dimension: usize,
    query: &[f32],
    count: usize,
) -> Result<Vec<u32>, JsError> {
    let fail = |why: &str| Err(JsError::new(&format!("nearestQuestions: {why}")));
    if dimension == 0 || !embeddings.len().is_multiple_of(dimension) {
        return fail("embeddings must be a whole number of rows of `dimension` values");
    }
    if query.is_empty() || !query.len().is_multiple_of(dimension) {
        return fail("query must be one or more rows of `dimension` values");
    }
    if rows.len() != options.len() {
        return fail("rows and options must have one entry per bank question");
    }
    let available = embeddings.len() / dimension;
    let mut vectors = Vec::with_capacity(rows.len());
    for (i, (&row, &n)) in rows.iter().zip(options).enumerate() {
        let (row, n) = (row as usize, n as usize);
        if n == 0 || row.checked_add(n).is_none_or(|end| end > available) {
            return Err(JsError::new(&format!(
                "nearestQuestions: question {i}: rows {row}..{} are not within the {available} rows of embeddings",
                row.saturating_add(n)
            )));
        }
        vectors.push(gpo_core::prior::question_vector(&embeddings[row * dimension..(row + n) * dimension], dimension));
    }
    let query = gpo_core::prior::question_vector(query, dimension);
    let ranked = gpo_core::prior::rank_by_similarity(&query, vectors.iter().map(Vec::as_slice).enumerate());
    Ok(ranked.into_iter().take(count).map(|i| i as u32).collect())
}

fn kind_json(kind: PriorKind) -> String {
    match kind {
        PriorKind::TrainMean => r#"{"kind":"train_mean"}"#.to_string(),
        PriorKind::KnnGroups { temperature } => format!(r#"{{"kind":"knn_groups","temperature":{temperature}}}"#),
    }
}

/// `1 − W₁(p, q) / (max ordinal − min ordinal)`: the OpinionQA alignment of a predicted
/// distribution `q` with the true `p` over options at positions `ordinal` (as `gpo_core::metrics`).
#[wasm_bindgen(js_name = wassersteinAlignment)]
pub fn wasserstein_alignment(ordinal: &[f64], p: &[f64], q: &[f64]) -> Result<f64, JsError> {
    gpo_core::metrics::wasserstein_alignment(ordinal, p, q).ok_or_else(|| {
        JsError::new("wassersteinAlignment: ordinal, p and q must have the same length (≥ 1), finite values")
    })
}

/// `1 − Jensen–Shannon distance` (natural log, as scipy's default and the original's metric): the
/// GlobalOpinionQA alignment of `q` with `p`, in [1 − sqrt(ln 2), 1].
#[wasm_bindgen(js_name = jsAlignment)]
pub fn js_alignment(p: &[f64], q: &[f64]) -> Result<f64, JsError> {
    gpo_core::metrics::js_alignment(p, q)
        .ok_or_else(|| JsError::new("jsAlignment: p and q must have the same length (≥ 1), finite values"))
}

enum Requested {
    Auto,
    WebGpu,
    Cpu,
}

fn requested_backend(options: &JsValue) -> Result<Requested, JsError> {
    if options.is_undefined() || options.is_null() {
        return Ok(Requested::Auto);
    }
    if !options.is_object() {
        return Err(JsError::new("load options must be an object such as { backend: \"cpu\" }"));
    }
    let backend = Reflect::get(options, &"backend".into()).unwrap_or(JsValue::UNDEFINED);
    if backend.is_undefined() {
        return Ok(Requested::Auto);
    }
    match backend.as_string().as_deref() {
        Some("auto") => Ok(Requested::Auto),
        Some("webgpu") => Ok(Requested::WebGpu),
        Some("cpu") => Ok(Requested::Cpu),
        _ => Err(JsError::new("options.backend must be \"auto\", \"webgpu\" or \"cpu\"")),
    }
}

fn cpu_model(file: &ModelFile) -> Result<Predictor<NdArray>, JsError> {
    Predictor::<NdArray>::new(file, &NdArrayDevice::Cpu)
        .map_err(|e| JsError::new(&format!("invalid .gpo model file: {e}")))
}

#[cfg(feature = "webgpu")]
async fn webgpu_model(file: &ModelFile) -> Result<Runner, JsError> {
    use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, graphics::AutoGraphicsApi, init_setup_async};
    use std::cell::Cell;
    thread_local! {
        static READY: Cell<bool> = const { Cell::new(false) };
    }
    if !READY.get() {
        if !webgpu_adapter().await {
            return Err(JsError::new("WebGPU is not available: navigator.gpu gave no adapter"));
        }
        init_setup_async::<AutoGraphicsApi>(&WgpuDevice::default(), RuntimeOptions::default()).await;
        READY.set(true);
    }
    let model = Predictor::<burn::backend::Wgpu>::new(file, &WgpuDevice::default())
        .map_err(|e| JsError::new(&format!("invalid .gpo model file: {e}")))?;
    Ok(Runner::WebGpu(model))
}

#[cfg(not(feature = "webgpu"))]
async fn webgpu_model(_file: &ModelFile) -> Result<Runner, JsError> {
    Err(JsError::new("this build of gpo-wasm has no WebGPU backend (build it with the `webgpu` feature)"))
}

/// Whether `navigator.gpu.requestAdapter()` resolves to an adapter.
#[cfg(feature = "webgpu")]
async fn webgpu_adapter() -> bool {
    let get = |target: &JsValue, key: &str| Reflect::get(target, &key.into()).unwrap_or(JsValue::UNDEFINED);
    let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
    if !gpu.is_object() {
        return false;
    }
    let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<js_sys::Function>() else {
        return false;
    };
    let Ok(promise) = request.call0(&gpu).and_then(|p| p.dyn_into::<Promise>()) else {
        return false;
    };
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok_and(|adapter| adapter.is_object())
}
