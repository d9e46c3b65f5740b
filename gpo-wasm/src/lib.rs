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
//!   { embeddings: ctxEmb, options: new Uint32Array([3]), distributions: new Float32Array([0.2, 0.5, 0.3]) },
//!   { embeddings: tgtEmb, options: new Uint32Array([4]) },
//! );
//! ```
//!
//! Prior models (`model.usesPrior`, e.g. `gpo_knn`) also need `priors` on both objects: the
//! population prior of every option, laid out like `distributions`.
//!
//! Every bad input (a corrupt or foreign file, a wrong embedding dimension, lengths that
//! disagree, NaN, a missing prior) rejects with a JavaScript `Error` whose message says what is wrong; nothing
//! panics. Targets attend only to the context, so each target's prediction does not depend on the
//! other targets.

use std::rc::Rc;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use burn::tensor::backend::Backend;
use gpo_core::{Episode, Gpo, GpoBatch, ModelFile};
use js_sys::{Array, Float32Array, Promise, Reflect};
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
  /** The population prior of every option, concatenated like `distributions`: required when
   * `model.usesPrior` (e.g. the kNN-groups mixture of `model.priorGroups`), ignored otherwise. */
  priors?: Float32Array | number[];
}

/** The target questions, laid out as in `GpoContext`, without distributions. */
export interface GpoTargets {
  embeddings: Float32Array;
  options: Uint32Array | number[];
  /** As `GpoContext.priors`: required when `model.usesPrior`. */
  priors?: Float32Array | number[];
}
"#;

/// The backend a model runs on.
#[allow(clippy::large_enum_variant)] // one per model, behind an Rc: boxing would only add a hop
enum Runner {
    Cpu(Gpo<NdArray>),
    #[cfg(feature = "webgpu")]
    WebGpu(Gpo<burn::backend::Wgpu>),
}

/// A GPO model loaded from a `.gpo` file, ready to predict group answer distributions.
#[wasm_bindgen]
pub struct GpoModel {
    runner: Rc<Runner>,
    file: ModelFile,
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
        Ok(GpoModel { runner: Rc::new(runner), file })
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
        self.file.config.dim_x
    }

    /// Identifier of the sentence-embedding model the inputs must come from.
    #[wasm_bindgen(getter, js_name = embeddingModel)]
    pub fn embedding_model(&self) -> String {
        self.file.metadata.embedding_model.clone()
    }

    /// Identifier of the text template that turned (question, option) into text.
    #[wasm_bindgen(getter, js_name = textTemplate)]
    pub fn text_template(&self) -> String {
        self.file.metadata.text_template.clone()
    }

    /// Dataset the model was meta-trained on.
    #[wasm_bindgen(getter)]
    pub fn dataset(&self) -> String {
        self.file.metadata.dataset.clone()
    }

    /// Whether the model reads a population prior for every option (`priors` in `predict`'s
    /// context and targets are then required).
    #[wasm_bindgen(getter, js_name = usesPrior)]
    pub fn uses_prior(&self) -> bool {
        self.file.config.prior
    }

    /// How the prior is computed, as the trainer wrote it (gpo-train: JSON such as
    /// `{"kind":"knn_groups","temperature":0.02}`); empty for models without a prior.
    #[wasm_bindgen(getter)]
    pub fn prior(&self) -> String {
        self.file.metadata.prior.clone()
    }

    /// The meta-training groups the prior is computed from (empty for models without a prior).
    #[wasm_bindgen(getter, js_name = priorGroups)]
    pub fn prior_groups(&self) -> Vec<String> {
        self.file.metadata.prior_groups.clone()
    }

    /// The method name in the training run's results (`gpo`, `gpo_knn`, …).
    #[wasm_bindgen(getter)]
    pub fn method(&self) -> String {
        self.file.metadata.method.clone()
    }

    /// Number of scalar parameters.
    #[wasm_bindgen(getter)]
    pub fn parameters(&self) -> usize {
        self.file.tensors.iter().map(|t| t.values.len()).sum()
    }

    /// Predicts the group's answer distribution on every target question, given its answers on
    /// the context questions. Resolves to one `Float32Array` per target question.
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array[]>")]
    pub fn predict(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GpoContext")] context: JsValue,
        #[wasm_bindgen(unchecked_param_type = "GpoTargets")] targets: JsValue,
    ) -> Promise {
        match self.episode(&context, &targets) {
            Ok(episode) => {
                let runner = Rc::clone(&self.runner);
                wasm_bindgen_futures::future_to_promise(async move {
                    let distributions = match runner.as_ref() {
                        Runner::Cpu(model) => run(model, &NdArrayDevice::Cpu, &episode).await?,
                        #[cfg(feature = "webgpu")]
                        Runner::WebGpu(model) => run(model, &Default::default(), &episode).await?,
                    };
                    Ok(distributions.iter().map(|d| Float32Array::from(d.as_slice())).collect::<Array>().into())
                })
            }
            Err(error) => Promise::reject(&error.into()),
        }
    }

    fn episode(&self, context: &JsValue, targets: &JsValue) -> Result<Episode, JsError> {
        let dim = self.file.config.dim_x;
        let context = read_questions("context", context, dim, true)?;
        let targets = read_questions("targets", targets, dim, false)?;
        if targets.options.is_empty() {
            return Err(JsError::new("targets: at least one target question is needed"));
        }
        if self.file.config.prior {
            for (side, questions) in [("context", &context), ("targets", &targets)] {
                if !questions.has_priors() {
                    return Err(JsError::new(&format!(
                        "{side}.priors is missing: this model ({}) reads a population prior for every option \
                         (a Float32Array laid out like the distributions; see usesPrior, prior and priorGroups)",
                        self.method_or_kind()
                    )));
                }
            }
        }
        let mut episode = Episode::new(dim).map_err(batch_error)?;
        for q in context.iter(dim) {
            episode
                .push_context_with_prior(q.embeddings, q.distribution.unwrap_or_default(), q.prior)
                .map_err(batch_error)?;
        }
        for q in targets.iter(dim) {
            episode.push_target_with_prior(q.embeddings, None, q.prior).map_err(batch_error)?;
        }
        Ok(episode)
    }

    fn method_or_kind(&self) -> String {
        let m = &self.file.metadata;
        match (m.method.is_empty(), m.prior.is_empty()) {
            (false, false) => format!("{}, prior {}", m.method, m.prior),
            (false, true) => m.method.clone(),
            (true, false) => format!("prior {}", m.prior),
            (true, true) => "a prior model".into(),
        }
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

/// `1 − Jensen–Shannon distance (base 2)`: the GlobalOpinionQA alignment of `q` with `p`.
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

fn cpu_model(file: &ModelFile) -> Result<Gpo<NdArray>, JsError> {
    file.to_model::<NdArray>(&NdArrayDevice::Cpu).map_err(|e| JsError::new(&format!("invalid .gpo model file: {e}")))
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
    let model = file
        .to_model::<burn::backend::Wgpu>(&WgpuDevice::default())
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

/// Runs the model on one episode and reads the result back asynchronously (WebGPU cannot block).
async fn run<B: Backend>(model: &Gpo<B>, device: &B::Device, episode: &Episode) -> Result<Vec<Vec<f32>>, JsValue> {
    let batch = GpoBatch::<B>::new(core::slice::from_ref(episode), device).map_err(batch_error)?;
    let mean = model.forward(&batch).mean;
    let data = mean
        .into_data_async()
        .await
        .map_err(|e| JsError::new(&format!("reading the prediction back failed: {e:?}")))?;
    let values: Vec<f32> = data
        .convert::<f32>()
        .into_vec()
        .map_err(|e| JsError::new(&format!("reading the prediction back failed: {e:?}")))?;
    let mut slot = 0;
    let mut out = Vec::with_capacity(episode.target_options().len());
    for &options in episode.target_options() {
        let question = values.get(slot..slot + options).ok_or_else(|| JsError::new("prediction is too short"))?;
        out.push(question.to_vec());
        slot += options;
    }
    Ok(out)
}

fn batch_error(error: gpo_core::BatchError) -> JsError {
    JsError::new(&error.to_string())
}
