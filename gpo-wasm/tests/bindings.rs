//! The bindings' error handling, run with `wasm-bindgen-test` in Node:
//! `cargo test -p gpo-wasm --target wasm32-unknown-unknown` (runner: `wasm-bindgen-test-runner`).
//! Every bad input must reject with a JavaScript `Error` carrying a clear message.
#![cfg(target_arch = "wasm32")]

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use gpo_core::{GpoConfig, ModelFile, ModelMetadata, WeightDType};
use gpo_wasm::GpoModel;
use js_sys::{Array, Float32Array, Object, Reflect, Uint32Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

const DIM: usize = 6;

fn model_bytes() -> Vec<u8> {
    let config = GpoConfig::new(DIM).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1);
    let model = config.init_seeded::<NdArray>(&NdArrayDevice::Cpu, 7).unwrap();
    ModelFile::from_model(&model, &config, ModelMetadata::new("test", DIM, "t"), WeightDType::F32).to_bytes()
}

async fn model() -> GpoModel {
    GpoModel::load(model_bytes(), JsValue::UNDEFINED).await.unwrap_or_else(|_| panic!("load failed"))
}

fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn f32s(values: &[f32]) -> JsValue {
    Float32Array::from(values).into()
}

fn counts(values: &[u32]) -> JsValue {
    Uint32Array::from(values).into()
}

fn context(options: &[u32], embeddings: &[f32], distributions: &[f32]) -> JsValue {
    object(&[("embeddings", f32s(embeddings)), ("options", counts(options)), ("distributions", f32s(distributions))])
}

fn targets(options: &[u32], embeddings: &[f32]) -> JsValue {
    object(&[("embeddings", f32s(embeddings)), ("options", counts(options))])
}

/// The message of the `Error` the promise rejects with (fails if it resolves or rejects otherwise).
async fn rejection(model: &GpoModel, context: JsValue, targets: JsValue) -> String {
    match JsFuture::from(model.predict(context, targets)).await {
        Ok(_) => panic!("expected an error"),
        Err(e) => String::from(e.dyn_into::<js_sys::Error>().expect("rejects with an Error").message()),
    }
}

fn emb(rows: usize, value: f32) -> Vec<f32> {
    (0..rows * DIM).map(|i| value + i as f32 * 0.01).collect()
}

#[wasm_bindgen_test]
async fn predicts_one_distribution_per_target() {
    let model = model().await;
    assert_eq!(model.backend(), "cpu");
    assert_eq!(model.dimension(), DIM);
    let result =
        JsFuture::from(model.predict(context(&[2], &emb(2, 0.1), &[0.3, 0.7]), targets(&[3, 2], &emb(5, 0.2))))
            .await
            .unwrap_or_else(|_| panic!("predict failed"));
    let result: Array = result.dyn_into().unwrap();
    assert_eq!(result.length(), 2);
    for (i, k) in [3usize, 2].into_iter().enumerate() {
        let d: Vec<f32> = result.get(i as u32).dyn_into::<Float32Array>().unwrap().to_vec();
        assert_eq!(d.len(), k);
        assert!((d.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // No context is allowed: the model predicts from the questions alone.
    let empty = context(&[], &[], &[]);
    assert!(JsFuture::from(model.predict(empty, targets(&[2], &emb(2, 0.0)))).await.is_ok());
}

#[wasm_bindgen_test]
async fn bad_files_are_errors() {
    for (bytes, needle) in [
        (vec![], "truncated"),
        (b"not a gpo file at all, just text".to_vec(), "invalid .gpo model file"),
        (
            {
                let mut b = model_bytes();
                let last = b.len() - 1;
                b[last] ^= 0xff;
                b
            },
            "checksum",
        ),
    ] {
        match GpoModel::load(bytes, JsValue::UNDEFINED).await {
            Ok(_) => panic!("loaded a bad file"),
            Err(e) => {
                let e: js_sys::Error = JsValue::from(e).dyn_into().unwrap();
                let message = String::from(e.message()).to_lowercase();
                assert!(message.contains(needle), "{message}");
            }
        }
    }
    let options = object(&[("backend", "quantum".into())]);
    assert!(GpoModel::load(model_bytes(), options).await.is_err());
    // Node has no WebGPU: asking for it is an error, not a silent fallback.
    let options = object(&[("backend", "webgpu".into())]);
    assert!(GpoModel::load(model_bytes(), options).await.is_err());
}

#[wasm_bindgen_test]
async fn bad_inputs_are_errors() {
    let model = model().await;
    let good_context = || context(&[2], &emb(2, 0.1), &[0.5, 0.5]);
    let good_targets = || targets(&[3], &emb(3, 0.2));
    let cases: Vec<(JsValue, JsValue, &str)> = vec![
        // Wrong embedding dimension.
        (context(&[2], &[0.1; 2 * (DIM + 1)], &[0.5, 0.5]), good_targets(), "dimension 6"),
        // Embedding rows and option counts disagree.
        (good_context(), targets(&[2], &emb(3, 0.2)), "targets.embeddings has 18 values"),
        // Distribution length disagrees with the options.
        (context(&[2], &emb(2, 0.1), &[1.0]), good_targets(), "context.distributions has 1 values"),
        // NaN in embeddings, NaN and negative probabilities.
        (good_context(), targets(&[3], &[f32::NAN; 3 * DIM]), "non-finite embedding"),
        (context(&[2], &emb(2, 0.1), &[f32::NAN, 0.5]), good_targets(), "non-finite probability"),
        (context(&[2], &emb(2, 0.1), &[-0.5, 1.5]), good_targets(), "negative probability"),
        // Zero or fractional option counts.
        (good_context(), targets(&[0], &[]), "whole number"),
        (
            good_context(),
            object(&[("embeddings", f32s(&emb(3, 0.2))), ("options", JsValue::from(Array::of1(&1.5.into())))]),
            "whole number",
        ),
        // No targets; wrong types.
        (good_context(), targets(&[], &[]), "at least one target"),
        (JsValue::from(3), good_targets(), "context must be an object"),
        (
            good_context(),
            object(&[("embeddings", JsValue::from(Array::new())), ("options", counts(&[1]))]),
            "Float32Array",
        ),
        (good_context(), object(&[("embeddings", f32s(&emb(1, 0.0))), ("options", JsValue::from(4))]), "typed array"),
        (
            good_context(),
            object(&[("embeddings", f32s(&emb(1, 0.0))), ("options", JsValue::from(Array::of1(&"x".into())))]),
            "only numbers",
        ),
    ];
    for (c, t, needle) in cases {
        let message = rejection(&model, c, t).await;
        assert!(message.contains(needle), "{message:?} should mention {needle:?}");
    }
}

fn prior_model_bytes() -> Vec<u8> {
    let config = GpoConfig::new(DIM).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1).with_prior(true);
    let model = config.init_seeded::<NdArray>(&NdArrayDevice::Cpu, 7).unwrap();
    let mut metadata = ModelMetadata::new("test", DIM, "t");
    metadata.method = "gpo_knn".into();
    metadata.prior = r#"{"kind":"knn_groups","temperature":0.02}"#.into();
    metadata.prior_groups = vec!["A".into(), "B".into()];
    ModelFile::from_model(&model, &config, metadata, WeightDType::F32).to_bytes()
}

fn with_priors(question: JsValue, priors: &[f32]) -> JsValue {
    Reflect::set(&question, &"priors".into(), &f32s(priors)).unwrap();
    question
}

#[wasm_bindgen_test]
async fn prior_models_need_priors() {
    let plain = model().await;
    assert!(!plain.uses_prior());
    assert_eq!(plain.prior(), "");
    assert!(plain.prior_groups().is_empty());
    let model = GpoModel::load(prior_model_bytes(), JsValue::UNDEFINED).await.unwrap_or_else(|_| panic!("load failed"));
    assert!(model.uses_prior());
    assert_eq!(model.method(), "gpo_knn");
    assert!(model.prior().contains("knn_groups"));
    assert_eq!(model.prior_groups(), vec!["A".to_string(), "B".to_string()]);

    let c = || context(&[2], &emb(2, 0.1), &[0.3, 0.7]);
    let t = || targets(&[3], &emb(3, 0.2));
    let result = JsFuture::from(model.predict(with_priors(c(), &[0.5, 0.5]), with_priors(t(), &[0.2, 0.3, 0.5])))
        .await
        .unwrap_or_else(|_| panic!("predict failed"));
    let d: Vec<f32> = result.dyn_into::<Array>().unwrap().get(0).dyn_into::<Float32Array>().unwrap().to_vec();
    // An untrained prior model predicts its prior: the residual head starts at zero.
    for (p, q) in d.iter().zip([0.2, 0.3, 0.5]) {
        assert!((p - q).abs() < 1e-3, "{d:?}");
    }
    // A model without a prior accepts (and ignores) priors.
    assert!(
        JsFuture::from(plain.predict(with_priors(c(), &[0.5, 0.5]), with_priors(t(), &[0.2, 0.3, 0.5]))).await.is_ok()
    );

    let cases: Vec<(JsValue, JsValue, &str)> = vec![
        (c(), with_priors(t(), &[0.2, 0.3, 0.5]), "context.priors is missing"),
        (with_priors(c(), &[0.5, 0.5]), t(), "targets.priors is missing"),
        (with_priors(c(), &[1.0]), with_priors(t(), &[0.2, 0.3, 0.5]), "context.priors has 1 values"),
        (with_priors(c(), &[0.5, 0.5]), with_priors(t(), &[0.5, 0.5]), "targets.priors has 2 values"),
        (with_priors(c(), &[f32::NAN, 0.5]), with_priors(t(), &[0.2, 0.3, 0.5]), "non-finite prior"),
        (with_priors(c(), &[0.5, 0.5]), with_priors(t(), &[-0.2, 0.7, 0.5]), "negative probability"),
    ];
    for (c, t, needle) in cases {
        let message = rejection(&model, c, t).await;
        assert!(message.contains(needle), "{message:?} should mention {needle:?}");
    }
    let missing = rejection(&model, c(), t()).await;
    assert!(missing.contains("gpo_knn"), "{missing}");
}

#[wasm_bindgen_test]
fn metrics_check_their_inputs() {
    let a = gpo_wasm::wasserstein_alignment(&[1.0, 2.0], &[1.0, 0.0], &[1.0, 0.0]).unwrap_or(f64::NAN);
    assert!((a - 1.0).abs() < 1e-12);
    assert!(gpo_wasm::wasserstein_alignment(&[1.0], &[1.0, 0.0], &[1.0, 0.0]).is_err());
    assert!(gpo_wasm::js_alignment(&[0.5, 0.5], &[0.5]).is_err());
}
