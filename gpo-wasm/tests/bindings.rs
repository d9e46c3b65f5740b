//! The bindings' error handling, run with `wasm-bindgen-test` in Node:
//! `cargo test -p gpo-wasm --target wasm32-unknown-unknown` (runner: `wasm-bindgen-test-runner`).
//! Every bad input must reject with a JavaScript `Error` carrying a clear message.
#![cfg(target_arch = "wasm32")]

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use gpo_core::metrics::Metric;
use gpo_core::prior::{PopulationPrior, PriorGroup, PriorKind, PriorQuestion};
use gpo_core::{GpoConfig, ModelFile, ModelMetadata, WeightDType};
use gpo_wasm::GpoModel;
use js_sys::{Array, Float32Array, Float64Array, Object, Reflect, Uint32Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

const DIM: usize = 6;

fn model_bytes() -> Vec<u8> {
    let config = GpoConfig::new(DIM).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1);
    let model = config.init_seeded::<NdArray>(&NdArrayDevice::Cpu, 7).unwrap();
    ModelFile::from_model(&model, &config, ModelMetadata::new("test", DIM, None), WeightDType::F32, None)
        .and_then(|f| f.to_bytes())
        .unwrap()
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

/// `question` with `name` set to `value`.
fn with(question: JsValue, name: &str, value: JsValue) -> JsValue {
    Reflect::set(&question, &name.into(), &value).unwrap();
    question
}

fn keys(keys: &[&str]) -> JsValue {
    keys.iter().map(|k| JsValue::from(*k)).collect::<Array>().into()
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
        (context(&[2], &emb(2, 0.1), &[-0.5, 1.5]), good_targets(), "negative or non-finite probability"),
        // A distribution that does not sum to 1.
        (context(&[2], &emb(2, 0.1), &[0.5, 0.6]), good_targets(), "sums to 1.1"),
        // Priors are the model's to compute; keys must match the questions.
        (with(good_context(), "priors", f32s(&[0.5, 0.5])), good_targets(), "context.priors"),
        (good_context(), with(good_targets(), "priors", f32s(&[0.2, 0.3, 0.5])), "pass `keys`"),
        (with(good_context(), "keys", keys(&["a", "b"])), good_targets(), "context.keys has 2 keys for 1 questions"),
        (good_context(), with(good_targets(), "keys", JsValue::from(3)), "targets.keys must be an array"),
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

/// Two prior groups over a 2-option question `C` and a 3-option question `T`.
fn small_prior() -> PopulationPrior {
    let c = PriorQuestion::new("C", vec![1.0, 2.0], &emb(2, 0.1), DIM);
    let t = PriorQuestion::new("T", vec![1.0, 2.0, 3.0], &emb(3, 0.2), DIM);
    let groups = vec![
        PriorGroup { name: "A".into(), answers: vec![Some(vec![0.3, 0.7]), Some(vec![0.2, 0.3, 0.5])] },
        PriorGroup { name: "B".into(), answers: vec![Some(vec![0.9, 0.1]), Some(vec![0.6, 0.3, 0.1])] },
    ];
    PopulationPrior::new(PriorKind::KnnGroups { temperature: 0.02 }, Metric::Wasserstein, 5, DIM, vec![c, t], groups)
        .unwrap()
}

fn prior_model_bytes() -> Vec<u8> {
    let config = GpoConfig::new(DIM).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1).with_prior(true);
    let model = config.init_seeded::<NdArray>(&NdArrayDevice::Cpu, 7).unwrap();
    let mut metadata = ModelMetadata::new("test", DIM, None);
    metadata.method = "gpo_knn".into();
    ModelFile::from_model(&model, &config, metadata, WeightDType::F32, Some(small_prior()))
        .and_then(|f| f.to_bytes())
        .unwrap()
}

/// The `distribution`s of `model.priors(context, targets, kind)`.
fn prior_distributions(model: &GpoModel, context: JsValue, targets: JsValue, kind: JsValue) -> Vec<Vec<f64>> {
    let priors = model.priors(context, targets, kind).unwrap_or_else(|_| panic!("priors failed"));
    priors
        .iter()
        .map(|p| Reflect::get(&p, &"distribution".into()).unwrap().dyn_into::<Float64Array>().unwrap().to_vec())
        .collect()
}

fn priors_error(model: &GpoModel, context: JsValue, targets: JsValue, kind: JsValue) -> String {
    match model.priors(context, targets, kind) {
        Ok(_) => panic!("expected an error"),
        Err(e) => String::from(JsValue::from(e).dyn_into::<js_sys::Error>().unwrap().message()),
    }
}

fn close(a: &[f64], b: &[f64], tolerance: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tolerance)
}

#[wasm_bindgen_test]
async fn prior_models_compute_their_priors_from_keys() {
    let plain = model().await;
    assert!(!plain.uses_prior());
    assert_eq!(plain.prior(), "");
    assert!(plain.prior_groups().is_empty() && plain.prior_questions().is_empty());
    let model = GpoModel::load(prior_model_bytes(), JsValue::UNDEFINED).await.unwrap_or_else(|_| panic!("load failed"));
    assert!(model.uses_prior());
    assert_eq!(model.method(), "gpo_knn");
    assert!(model.prior().contains("knn_groups"), "{}", model.prior());
    assert_eq!(model.prior_groups(), vec!["A".to_string(), "B".to_string()]);
    assert_eq!(model.prior_questions(), vec!["C".to_string(), "T".to_string()]);

    // The group answers C exactly as A does: the kNN prior of T is (almost) A's answer.
    let c = || with(context(&[2], &emb(2, 0.1), &[0.3, 0.7]), "keys", keys(&["C"]));
    let t = || with(targets(&[3], &emb(3, 0.2)), "keys", keys(&["T"]));
    let result = JsFuture::from(model.predict(c(), t())).await.unwrap_or_else(|_| panic!("predict failed"));
    let d: Vec<f64> = result
        .dyn_into::<Array>()
        .unwrap()
        .get(0)
        .dyn_into::<Float32Array>()
        .unwrap()
        .to_vec()
        .into_iter()
        .map(f64::from)
        .collect();
    let prior = prior_distributions(&model, c(), t(), JsValue::UNDEFINED);
    let knn = prior_distributions(&model, c(), t(), "knn_groups".into());
    assert_eq!(prior, knn, "the model's prior is its kNN-groups baseline");
    assert_eq!(prior, prior_distributions(&model, c(), t(), "model".into()));
    assert!(close(&prior[0], &[0.2, 0.3, 0.5], 1e-3), "{prior:?}");
    // An untrained prior model predicts its prior: the residual head starts at zero.
    assert!(close(&d, &prior[0], 1e-3), "{d:?} vs {prior:?}");
    let mean = prior_distributions(&model, c(), t(), "train_mean".into());
    assert!(close(&mean[0], &[0.4, 0.3, 0.3], 1e-6), "{mean:?}"); // stored as f32

    // A question whose key the prior does not know takes its nearest known question's prior.
    let unknown = with(targets(&[3], &emb(3, 0.2)), "keys", keys(&["NEW"]));
    let priors = model.priors(c(), unknown, JsValue::UNDEFINED).unwrap_or_else(|_| panic!("priors failed"));
    let first = priors.get(0);
    assert_eq!(Reflect::get(&first, &"source".into()).unwrap().as_string().as_deref(), Some("nearest"));
    let nearest: Array = Reflect::get(&first, &"nearest".into()).unwrap().dyn_into().unwrap();
    assert_eq!(nearest.get(0).as_string().as_deref(), Some("T"));
    let answered = model.priors(c(), t(), JsValue::UNDEFINED).unwrap_or_else(|_| panic!("priors failed")).get(0);
    assert_eq!(Reflect::get(&answered, &"source".into()).unwrap().as_string().as_deref(), Some("answered"));

    // Errors: priors given, no known question with that many options, a known key with another
    // option count, a bad kind, priors of a model without prior data.
    let message = rejection(&model, with(c(), "priors", f32s(&[0.5, 0.5])), t()).await;
    assert!(message.contains("keys"), "{message}");
    let four = with(targets(&[4], &emb(4, 0.2)), "keys", keys(&["NEW"]));
    let message = rejection(&model, c(), four).await;
    assert!(message.contains("no prior for a new question with 4 options"), "{message}");
    let wrong = with(targets(&[2], &emb(2, 0.2)), "keys", keys(&["T"]));
    let message = rejection(&model, c(), wrong).await;
    assert!(message.contains("`T` has 2 options here but 3"), "{message}");
    let message = priors_error(&model, c(), t(), "quantum".into());
    assert!(message.contains("kind must be"), "{message}");
    let message = priors_error(&plain, c(), t(), JsValue::UNDEFINED);
    assert!(message.contains("carries no prior data"), "{message}");
}

#[wasm_bindgen_test]
fn metrics_check_their_inputs() {
    let a = gpo_wasm::wasserstein_alignment(&[1.0, 2.0], &[1.0, 0.0], &[1.0, 0.0]).unwrap_or(f64::NAN);
    assert!((a - 1.0).abs() < 1e-12);
    assert!(gpo_wasm::wasserstein_alignment(&[1.0], &[1.0, 0.0], &[1.0, 0.0]).is_err());
    assert!(gpo_wasm::js_alignment(&[0.5, 0.5], &[0.5]).is_err());
}

/// Questions given as text (cargo feature `text`): a tiny encoder file built here, with a
/// whitespace word-level tokenizer, and a model trained on its vectors.
#[cfg(feature = "text")]
mod text {
    use super::*;
    use gpo_core::rng::SplitMix64;
    use gpo_core::template::Template;
    use gpo_core::text::{BertConfig, EncoderDType, EncoderFile, EncoderSpec};
    use gpo_core::weights::NamedTensor;
    use gpo_wasm::GpoEncoder;

    const TOKENIZER: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
        "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},
        "post_processor":{"type":"BertProcessing","sep":["[SEP]",1],"cls":["[CLS]",0]},"decoder":null,
        "model":{"type":"WordLevel","vocab":{"[CLS]":0,"[SEP]":1,"[UNK]":2,"how":3,"much":4,"do":5,
        "you":6,"trust":7,"the":8,"news":9,"a":10,"lot":11},"unk_token":"[UNK]"}}"#;
    const WIDTH: usize = 8;

    fn encoder_bytes(id: &str) -> Vec<u8> {
        let config = BertConfig {
            vocab_size: 12,
            hidden_size: WIDTH,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            intermediate_size: 16,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            position_embedding_type: "absolute".into(),
        };
        let mut rng = SplitMix64::new(3);
        let tensors = config
            .checkpoint_tensors()
            .into_iter()
            .map(|(name, shape)| {
                let offset = if name.ends_with("LayerNorm.weight") { 1.0 } else { 0.0 };
                let values = (0..shape.iter().product()).map(|_| (offset + rng.next_f64() - 0.5) as f32).collect();
                NamedTensor { name, shape, values }
            })
            .collect();
        let spec = EncoderSpec { id: id.into(), config, max_seq_length: None, normalize: true };
        EncoderFile::new(spec, TOKENIZER.as_bytes().to_vec(), tensors, EncoderDType::F16)
            .and_then(|f| f.to_bytes())
            .expect("a consistent tiny encoder file")
    }

    async fn text_model() -> GpoModel {
        let config = GpoConfig::new(WIDTH).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1);
        let model = config.init_seeded::<NdArray>(&NdArrayDevice::Cpu, 7).unwrap();
        let metadata = ModelMetadata::new("test/tiny-bert", WIDTH, Some(Template::Gpo));
        let bytes = ModelFile::from_model(&model, &config, metadata, WeightDType::F32, None)
            .and_then(|f| f.to_bytes())
            .unwrap();
        GpoModel::load(bytes, JsValue::UNDEFINED).await.unwrap_or_else(|_| panic!("load failed"))
    }

    fn message(error: wasm_bindgen::JsError) -> String {
        String::from(JsValue::from(error).dyn_into::<js_sys::Error>().expect("an Error").message())
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    fn json(text: &str) -> JsValue {
        js_sys::JSON::parse(text).expect("valid JSON")
    }

    #[wasm_bindgen_test]
    async fn a_question_by_text_is_its_embeddings() {
        let encoder = GpoEncoder::load(&encoder_bytes("test/tiny-bert")).unwrap_or_else(|e| panic!("{}", message(e)));
        assert_eq!(
            (encoder.id(), encoder.dimension(), encoder.dtype()),
            ("test/tiny-bert".into(), WIDTH, "f16".into())
        );
        let model = text_model().await;
        assert!(!model.has_encoder());
        let model = model.with_encoder(&encoder).await.unwrap_or_else(|e| panic!("{}", message(e)));
        assert!(model.has_encoder());
        let options = ["a lot", "not at all"];
        let rows = model.embed_question("how much do you trust the news", strings(&options)).unwrap().to_vec();
        assert_eq!(rows.len(), 2 * WIDTH);
        // The template's texts, through the encoder: what embedQuestion gave.
        let texts = gpo_wasm::question_texts("gpo", "how much do you trust the news", strings(&options)).unwrap();
        assert_eq!(encoder.embed(texts).unwrap().to_vec(), rows);
        // `answer` with the question as text equals `answer` with its embeddings.
        let by_text = r#"{"context": [], "targets": [{"key": "T", "text": "how much do you trust the news",
            "options": ["a lot", "not at all"]}]}"#;
        let rows_json: Vec<String> = rows.chunks(WIDTH).map(|r| format!("{r:?}")).collect();
        let by_embeddings =
            format!(r#"{{"context": [], "targets": [{{"key": "T", "embeddings": [{}]}}]}}"#, rows_json.join(","));
        let a = JsFuture::from(model.answer(json(by_text))).await.unwrap_or_else(|_| panic!("answers"));
        let b = JsFuture::from(model.answer(json(&by_embeddings))).await.unwrap_or_else(|_| panic!("answers"));
        assert_eq!(
            String::from(js_sys::JSON::stringify(&a).unwrap()),
            String::from(js_sys::JSON::stringify(&b).unwrap())
        );
        assert!(String::from(js_sys::JSON::stringify(&a).unwrap()).starts_with(r#"{"predictions":[{"key":"T","#));
    }

    #[wasm_bindgen_test]
    async fn foreign_encoders_and_bad_requests_are_errors() {
        assert!(message(GpoEncoder::load(&[1, 2, 3]).err().expect("refused")).contains("invalid encoder file"));
        let mut flipped = encoder_bytes("test/tiny-bert");
        let last = flipped.len() - 1;
        flipped[last] ^= 0x5a;
        assert!(message(GpoEncoder::load(&flipped).err().expect("refused")).contains("invalid encoder file"));
        let other = GpoEncoder::load(&encoder_bytes("other/encoder")).unwrap_or_else(|e| panic!("{}", message(e)));
        let model = text_model().await;
        let refused = message(model.with_encoder(&other).await.err().expect("another encoder is refused"));
        assert!(refused.contains("test/tiny-bert") && refused.contains("other/encoder"), "{refused}");
        // Without an encoder, a question by text is refused by name.
        async fn rejection(model: &GpoModel, value: JsValue) -> String {
            match JsFuture::from(model.answer(value)).await {
                Ok(_) => panic!("expected an error"),
                Err(e) => String::from(e.dyn_into::<js_sys::Error>().expect("an Error").message()),
            }
        }
        let by_text = json(r#"{"context": [], "targets": [{"text": "why", "options": ["a", "b"]}]}"#);
        let text = rejection(&model, by_text).await;
        assert!(text.contains("targets[0]: a question given by text needs an encoder"), "{text}");
        let unknown = rejection(&model, json(r#"{"context": [], "targets": [], "extra": 1}"#)).await;
        assert!(unknown.contains("unknown field `extra`"), "{unknown}");
        assert!(rejection(&model, JsValue::from(3)).await.contains("expected an object"));
    }
}
