//! `gpo predict` end to end: the same questions given by survey key, by text and options, and by
//! raw embeddings give the same distributions; bad requests are one clear error.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn_ndarray::NdArray;
use gpo_core::{GpoConfig, ModelFile, ModelMetadata, WeightDType};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gpo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpo")).args(args).current_dir(repo()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn predictions(stdout: &str) -> Vec<Vec<f64>> {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["distribution"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect()
}

#[test]
fn keys_texts_and_embeddings_agree() {
    let dir = tempfile::tempdir().unwrap();
    let config = GpoConfig::new(384).with_n_layers(2);
    let model = config.init_seeded::<NdArray<f32>>(&Default::default(), 3).unwrap();
    let model_path = dir.path().join("m.gpo");
    let metadata = ModelMetadata::new("sentence-transformers/all-MiniLM-L6-v2", 384, "gpo");
    std::fs::write(&model_path, ModelFile::from_model(&model, &config, metadata, WeightDType::F32).to_bytes()).unwrap();
    let model_arg = model_path.to_str().unwrap();
    let request = |targets: serde_json::Value| {
        let path = dir.path().join("req.json");
        let body = serde_json::json!({
            "context": [{"key": "WORLDDANGER_W26", "distribution": [0.2, 0.7, 0.1]}],
            "targets": targets,
        });
        std::fs::write(&path, body.to_string()).unwrap();
        gpo(&["predict", "--model", model_arg, "--input", path.to_str().unwrap(), "--config", "configs/opinionqa.toml"])
    };
    let (ok, by_key, err) = request(serde_json::json!([{"key": "SAFECRIME_W26"}]));
    assert!(ok, "{err}");
    let text = "How safe, if at all, would you say your local community is from crime? Would you say it is";
    let options = ["Very safe", "Somewhat safe", "Not too safe", "Not at all safe"];
    let (ok, by_text, err) = request(serde_json::json!([{"text": text, "options": options}]));
    assert!(ok, "{err}");
    let (a, b) = (predictions(&by_key), predictions(&by_text));
    assert_eq!(a[0].len(), 4);
    assert!((a[0].iter().sum::<f64>() - 1.0).abs() < 1e-5);
    assert_eq!(a, b, "by key and by text must use the same embeddings");

    let (ok, _, err) = request(serde_json::json!([{"key": "NO_SUCH_QUESTION"}]));
    assert!(!ok && err.contains("unknown question key `NO_SUCH_QUESTION`"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 1, "one readable message: {err}");
    let (ok, _, err) = request(serde_json::json!([{"embeddings": [[0.0, 1.0]]}]));
    assert!(!ok && err.contains("the model expects 384"), "{err}");
}

#[test]
fn corrupt_model_files_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gpo");
    std::fs::write(&path, b"GPOMODEL\x01\x00\x00\x00garbage").unwrap();
    let (ok, _, err) = gpo(&["inspect", path.to_str().unwrap()]);
    assert!(!ok && err.starts_with("error: ") && err.contains("broken.gpo"), "{err}");
}

#[test]
fn prior_models_need_a_prior_per_question() {
    let dir = tempfile::tempdir().unwrap();
    let config = GpoConfig::new(4).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1).with_prior(true);
    let model = config.init_seeded::<NdArray<f32>>(&Default::default(), 5).unwrap();
    let mut metadata = ModelMetadata::new("test", 4, "gpo");
    metadata.method = "gpo_knn".into();
    metadata.prior = r#"{"kind":"knn_groups","temperature":0.02}"#.into();
    metadata.prior_groups = vec!["A".into(), "B".into()];
    let model_path = dir.path().join("prior.gpo");
    std::fs::write(&model_path, ModelFile::from_model(&model, &config, metadata, WeightDType::F32).to_bytes()).unwrap();
    let model_arg = model_path.to_str().unwrap();

    let (ok, out, err) = gpo(&["inspect", "--json", model_arg]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["metadata"]["method"], "gpo_knn");
    assert_eq!(info["metadata"]["prior_groups"], serde_json::json!(["A", "B"]));
    assert_eq!(info["config"]["prior"], true);
    let (ok, out, err) = gpo(&["inspect", model_arg]);
    assert!(ok && out.contains("gpo_knn") && out.contains("knn_groups"), "{out}{err}");

    let request = |context_prior: serde_json::Value, target_prior: serde_json::Value| {
        let mut context =
            serde_json::json!({"embeddings": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], "distribution": [0.3, 0.7]});
        let mut target = serde_json::json!({"key": "T", "embeddings": [[0.0, 0.1, 0.0, 0.1], [1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]]});
        if !context_prior.is_null() {
            context["prior"] = context_prior;
        }
        if !target_prior.is_null() {
            target["prior"] = target_prior;
        }
        let path = dir.path().join("req.json");
        std::fs::write(&path, serde_json::json!({"context": [context], "targets": [target]}).to_string()).unwrap();
        gpo(&["predict", "--model", model_arg, "--input", path.to_str().unwrap()])
    };
    let null = serde_json::Value::Null;
    let (ok, out, err) = request(serde_json::json!([0.5, 0.5]), serde_json::json!([0.2, 0.3, 0.5]));
    assert!(ok, "{err}");
    let with_prior = predictions(&out);
    assert_eq!(with_prior[0].len(), 3);
    assert!((with_prior[0].iter().sum::<f64>() - 1.0).abs() < 1e-5);
    // An untrained prior model predicts its prior (the residual head starts at zero).
    for (p, q) in with_prior[0].iter().zip([0.2, 0.3, 0.5]) {
        assert!((p - q).abs() < 1e-3, "{with_prior:?}");
    }
    let (ok, out, _) = request(serde_json::json!([0.5, 0.5]), serde_json::json!([0.6, 0.3, 0.1]));
    assert!(ok && predictions(&out) != with_prior, "the prior must reach the model");

    let (ok, _, err) = request(null.clone(), serde_json::json!([0.2, 0.3, 0.5]));
    assert!(!ok && err.contains("context[0].prior is missing") && err.contains("gpo_knn"), "{err}");
    let (ok, _, err) = request(serde_json::json!([0.5, 0.5]), null.clone());
    assert!(!ok && err.contains("targets[0].prior is missing"), "{err}");
    let (ok, _, err) = request(serde_json::json!([0.5, 0.5]), serde_json::json!([0.5, 0.5]));
    assert!(!ok && err.contains("prior"), "wrong length: {err}");
    let (ok, _, err) = request(serde_json::json!([1.5, -0.5]), serde_json::json!([0.2, 0.3, 0.5]));
    assert!(!ok && err.contains("negative"), "negative prior: {err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 1, "one readable message: {err}");
}
