//! The command line's round trip, as a user makes it: `gpo run` on the bundled OpinionQA data
//! trains and exports a model; `gpo export` re-stores it in f16; `gpo inspect` describes it; `gpo
//! predict` answers the demo request with it; and gpo-core's `Predictor`, as an app embeds it,
//! gives the same distributions from the same file (within 1e-6: the same f32 code on the same
//! f16-decoded weights, only `gpo predict`'s JSON between them, whose f32 values parse back
//! exactly).

use burn_ndarray::NdArray;
use gpo_core::{Predictor, Request};

use crate::common::{gpo, max_difference, predicted, repo};

const TOLERANCE: f64 = 1e-6;

/// A small run: one split and seed, the faithful GPO and a kNN prior variant, a few updates each.
fn config(repo: &std::path::Path) -> String {
    let fixtures = repo.join("fixtures/opinionqa");
    format!(
        r#"
name = "round-trip"

[data]
format = "survey"
loader = "tidy"
source = "{source}"
cache = "{cache}"
template = "gpo"

[model]
d_model = 16
d_ff = 16
n_heads = 2
n_layers = 1

[training]
steps = 2
eval_every = 2
checkpoint_every = 2
validation_context = 10

[training.sampling]
kind = "code"
min_context = 5
max_context = 10
min_target = 5
max_target = 10

[evaluation]
splits = [0.8]
seeds = [0]
context_questions = 10
sweep = [10]
protocols = ["groups"]
max_targets = 40

[export]
dtype = "f32"

[variants.knn.model]
d_model = 16
d_ff = 16
n_heads = 2
n_layers = 1
prior = {{ kind = "knn_groups", temperature = 0.02 }}

[variants.knn.training]
steps = 2
eval_every = 2
checkpoint_every = 2
objective = "cross_entropy"
"#,
        source = fixtures.display(),
        cache = fixtures.join("minilm-gpo.gpoemb").display(),
    )
}

/// The demo request's context and targets (its other fields are the demo's expectations).
fn demo_request() -> serde_json::Value {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("fixtures/demo/request.json")).expect("the demo request"))
            .expect("JSON");
    serde_json::json!({ "context": file["context"], "targets": file["targets"] })
}

#[test]
fn run_export_inspect_predict_and_the_app_agree() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_owned();
    std::fs::write(path("config.toml"), config(&repo())).expect("written");
    let (ok, _, err) = gpo(&["--quiet", "run", &path("config.toml"), "--out", &path("runs"), "--jobs", "1"]);
    assert!(ok, "gpo run: {err}");
    let trained = dir.path().join("runs/round-trip/model.gpo");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("runs/round-trip/results.json")).expect("results.json"))
            .expect("JSON");
    let selected = results["runs"][0]["selected"].as_str().expect("a selected method").to_owned();

    let f16 = path("model-f16.gpo");
    let (ok, _, err) = gpo(&["--quiet", "export", trained.to_str().expect("utf-8"), "--dtype", "f16", "--out", &f16]);
    assert!(ok, "gpo export: {err}");
    let (ok, inspected, err) = gpo(&["inspect", &f16]);
    assert!(ok, "gpo inspect: {err}");
    let line = |field: &str| {
        inspected.lines().find(|l| l.starts_with(field)).map(|l| l[field.len()..].trim().to_owned()).unwrap_or_default()
    };
    assert!(line("weights").starts_with("f16"), "{inspected}");
    assert_eq!(line("method"), selected, "{inspected}");
    assert!(line("trained on").starts_with("opinionqa (seed 0"), "{inspected}");
    assert!(line("check").ends_with("ok"), "{inspected}");

    let request = demo_request();
    std::fs::write(path("request.json"), request.to_string()).expect("written");
    let (ok, stdout, err) = gpo(&["--quiet", "predict", "--model", &f16, "--input", &path("request.json")]);
    assert!(ok, "gpo predict: {err}");
    let cli = predicted(&stdout);

    let app = Predictor::<NdArray>::from_bytes(&std::fs::read(&f16).expect("the f16 file"), &Default::default())
        .expect("the exported file loads");
    let request: Request = serde_json::from_value(request).expect("a request");
    let response = app.answer(&request).expect("the app's prediction");
    let app: Vec<Vec<f64>> =
        response.predictions.iter().map(|p| p.distribution.iter().map(|&v| f64::from(v)).collect()).collect();
    assert_eq!(app.len(), request.targets.len());
    let difference = max_difference(&cli, &app);
    println!("gpo predict vs Predictor on the f16 file: {difference:.1e}");
    assert!(difference <= TOLERANCE, "gpo predict and the app differ by {difference}");
    for distribution in &app {
        let sum: f64 = distribution.iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-5 && distribution.iter().all(|p| p.is_finite() && *p >= 0.0),
            "{distribution:?}"
        );
    }
}
