//! `gpo predict` end to end: the same questions given by survey key, by text and options, and by
//! raw embeddings give the same distributions; bad requests are one clear error.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn_ndarray::NdArray;
use gpo_core::metrics::Metric;
use gpo_core::prior::{PopulationPrior, PriorGroup, PriorKind, PriorQuestion};
use gpo_core::template::Template;
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
    let metadata = ModelMetadata::new("sentence-transformers/all-MiniLM-L6-v2", 384, Some(Template::Gpo));
    let file = ModelFile::from_model(&model, &config, metadata, WeightDType::F32, None).unwrap();
    std::fs::write(&model_path, file.to_bytes().unwrap()).unwrap();
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

/// A 2-group prior over a 2-option question `C` and a 3-option question `T` (embeddings of
/// dimension 4), train-mean kind: `T`'s prior is [0.4, 0.3, 0.3].
fn small_prior() -> PopulationPrior {
    let c = PriorQuestion::new("C", vec![1.0, 2.0], &[0.1, 0.2, 0.3, 0.4, 0.4, 0.3, 0.2, 0.1], 4);
    let t =
        PriorQuestion::new("T", vec![1.0, 2.0, 3.0], &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 4);
    let groups = vec![
        PriorGroup { name: "A".into(), answers: vec![Some(vec![0.3, 0.7]), Some(vec![0.2, 0.3, 0.5])] },
        PriorGroup { name: "B".into(), answers: vec![Some(vec![0.5, 0.5]), Some(vec![0.6, 0.3, 0.1])] },
    ];
    PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, 5, 4, vec![c, t], groups).unwrap()
}

#[test]
fn prior_models_compute_their_prior_from_the_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = GpoConfig::new(4).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1).with_prior(true);
    let model = config.init_seeded::<NdArray<f32>>(&Default::default(), 5).unwrap();
    let mut metadata = ModelMetadata::new("test", 4, Some(Template::Gpo));
    metadata.method = "gpo_mean".into();
    let model_path = dir.path().join("prior.gpo");
    let file = ModelFile::from_model(&model, &config, metadata, WeightDType::F32, Some(small_prior())).unwrap();
    std::fs::write(&model_path, file.to_bytes().unwrap()).unwrap();
    let model_arg = model_path.to_str().unwrap();

    let (ok, out, err) = gpo(&["inspect", "--json", model_arg]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["metadata"]["method"], "gpo_mean");
    assert_eq!(info["prior"]["groups"], serde_json::json!(["A", "B"]));
    assert_eq!(info["prior"]["kind"]["kind"], "train_mean");
    assert_eq!(info["config"]["prior"], true);
    let (ok, out, err) = gpo(&["inspect", model_arg]);
    assert!(ok && out.contains("gpo_mean") && out.contains("train_mean"), "{out}{err}");

    let request = |target: serde_json::Value| {
        let context = serde_json::json!({"key": "C", "embeddings": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], "distribution": [0.3, 0.7]});
        let path = dir.path().join("req.json");
        std::fs::write(&path, serde_json::json!({"context": [context], "targets": [target]}).to_string()).unwrap();
        gpo(&["predict", "--model", model_arg, "--input", path.to_str().unwrap()])
    };
    let rows = serde_json::json!([[0.0, 0.1, 0.0, 0.1], [1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]]);
    let (ok, out, err) = request(serde_json::json!({"key": "T", "embeddings": rows}));
    assert!(ok, "{err}");
    let known = predictions(&out);
    // An untrained prior model predicts its prior (the residual head starts at zero).
    for (p, q) in known[0].iter().zip([0.4, 0.3, 0.3]) {
        assert!((p - q).abs() < 1e-3, "{known:?}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["predictions"][0]["prior"]["source"], "answered");
    // A question the prior does not know takes its nearest known question's prior (T: the only
    // 3-option question), and says so.
    let (ok, out, err) = request(serde_json::json!({"key": "NEW", "embeddings": rows}));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["predictions"][0]["prior"]["source"], "nearest");
    assert_eq!(v["predictions"][0]["prior"]["nearest"], serde_json::json!(["T"]));
    assert_eq!(predictions(&out), known);
    // No known question has 4 options: a clear error, never a silent uniform prior.
    let four =
        serde_json::json!([[0.0, 0.1, 0.0, 0.1], [1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]);
    let (ok, _, err) = request(serde_json::json!({"embeddings": four}));
    assert!(!ok && err.contains("no prior for a new question with 4 options"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 1, "one readable message: {err}");
    // Priors are the model's to compute.
    let (ok, _, err) = request(serde_json::json!({"key": "T", "embeddings": rows, "prior": [0.2, 0.3, 0.5]}));
    assert!(!ok && err.contains("prior"), "{err}");
    // A target with a distribution, a context distribution that does not sum to 1.
    let (ok, _, err) = request(serde_json::json!({"key": "T", "embeddings": rows, "distribution": [0.2, 0.3, 0.5]}));
    assert!(!ok && err.contains("targets[0]"), "{err}");
}

/// A model whose rule pairs options by meaning, asked through `gpo predict` about a question the
/// prior does not know whose options are `T`'s in another order: its prior is `T`'s, option for
/// option by meaning, whichever order the request lists them in (and in the neighbour's order by
/// position). Untrained prior model: it predicts its prior (within 1e-3 of the residual head's
/// zero start, as above).
#[test]
fn a_model_that_pairs_options_by_meaning_follows_the_options_in_any_order() {
    use gpo_core::prior::{NeighbourRule, OptionMatch};
    let dir = tempfile::tempdir().unwrap();
    // T's options differ in dims 2–3 (what they say); the question's part is dims 0–1.
    let options = [[1.0, 0.0, 2.0, 0.0], [1.0, 0.0, 0.0, 2.0], [1.0, 0.0, -2.0, -2.0]];
    let t = PriorQuestion::new("T", vec![1.0, 2.0, 3.0], options.as_flattened(), 4);
    let groups = vec![PriorGroup { name: "A".into(), answers: vec![Some(vec![0.6, 0.3, 0.1])] }];
    let prior = PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, 1, 4, vec![t], groups).unwrap();
    let config = GpoConfig::new(4).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1).with_prior(true);
    let model = config.init_seeded::<NdArray<f32>>(&Default::default(), 5).unwrap();
    let ask = |options_match: OptionMatch, order: [usize; 3]| -> Vec<f64> {
        let rule = NeighbourRule { options: options_match, ..prior.neighbour_rule() };
        let prior = prior.clone().with_neighbour_rule(rule).unwrap();
        let metadata = ModelMetadata::new("test", 4, Some(Template::Gpo));
        let file = ModelFile::from_model(&model, &config, metadata, WeightDType::F32, Some(prior)).unwrap();
        let model_path = dir.path().join("meaning.gpo");
        std::fs::write(&model_path, file.to_bytes().unwrap()).unwrap();
        let rows: Vec<[f32; 4]> = order.iter().map(|&i| options[i]).collect();
        let request = serde_json::json!({"context": [], "targets": [{"embeddings": rows}]});
        let path = dir.path().join("req.json");
        std::fs::write(&path, request.to_string()).unwrap();
        let (ok, out, err) =
            gpo(&["predict", "--model", model_path.to_str().unwrap(), "--input", path.to_str().unwrap()]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["predictions"][0]["prior"]["source"], "nearest");
        predictions(&out).remove(0)
    };
    let near = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let t = [0.6, 0.3, 0.1];
        let by_meaning = ask(OptionMatch::Meaning { weight: 0.3 }, order);
        let expected: Vec<f64> = order.iter().map(|&i| t[i]).collect();
        assert!(near(&by_meaning, &expected), "{order:?}: {by_meaning:?} vs {expected:?}");
        let by_position = ask(OptionMatch::Position, order);
        assert!(near(&by_position, &t), "{order:?}: {by_position:?}");
    }
}

#[test]
fn context_distributions_must_sum_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = GpoConfig::new(4).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1);
    let model = config.init_seeded::<NdArray<f32>>(&Default::default(), 5).unwrap();
    let model_path = dir.path().join("m.gpo");
    let file =
        ModelFile::from_model(&model, &config, ModelMetadata::new("test", 4, None), WeightDType::F32, None).unwrap();
    std::fs::write(&model_path, file.to_bytes().unwrap()).unwrap();
    for (distribution, expected) in [
        (serde_json::json!([1.5, 1.5]), "sums to 3"),
        (serde_json::json!([0.0, 0.0]), "sums to 0"),
        (serde_json::json!([1.5, -0.5]), "negative"),
    ] {
        let context = serde_json::json!({"embeddings": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], "distribution": distribution});
        let target = serde_json::json!({"embeddings": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]});
        let path = dir.path().join("req.json");
        std::fs::write(&path, serde_json::json!({"context": [context, context], "targets": [target]}).to_string())
            .unwrap();
        let (ok, _, err) =
            gpo(&["predict", "--model", model_path.to_str().unwrap(), "--input", path.to_str().unwrap()]);
        assert!(!ok && err.contains(expected) && err.contains("context question 0"), "{err}");
    }
}

/// A request larger than the documented limits (here 6,000 context questions, which once built a
/// 30,000² attention matrix and aborted) is one clear error before anything is allocated.
#[test]
fn oversized_requests_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = GpoConfig::new(4).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1);
    let model = config.init_seeded::<NdArray<f32>>(&Default::default(), 5).unwrap();
    let model_path = dir.path().join("m.gpo");
    let file =
        ModelFile::from_model(&model, &config, ModelMetadata::new("test", 4, None), WeightDType::F32, None).unwrap();
    std::fs::write(&model_path, file.to_bytes().unwrap()).unwrap();
    let question =
        serde_json::json!({"embeddings": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], "distribution": [0.5, 0.5]});
    let target = serde_json::json!({"embeddings": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]});
    let path = dir.path().join("req.json");
    let body = serde_json::json!({"context": vec![question; 6000], "targets": [target]});
    std::fs::write(&path, body.to_string()).unwrap();
    let (ok, _, err) = gpo(&["predict", "--model", model_path.to_str().unwrap(), "--input", path.to_str().unwrap()]);
    assert!(!ok && err.contains("context questions: 6000 is more than the limit of 1024"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 1, "{err}");
}
