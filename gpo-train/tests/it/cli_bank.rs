//! `gpo export-bank` on a small synthetic survey: the bank holds the survey's questions, their
//! embeddings (f16) and the held-out groups' answers; a model whose prior reads a held-out group,
//! or results of another run, are clear errors naming the files.

use std::path::Path;
use std::process::Command;

use burn_ndarray::NdArray;
use gpo_core::prior::PriorKind;
use gpo_core::{GpoConfig, ModelFile, ModelMetadata, WeightDType};
use gpo_train::config::RunConfig;
use gpo_train::pipeline::load_task;
use gpo_train::prior::SurveyPrior;
use gpo_train::report::{Results, RunResult};

const CONFIG: &str = r#"
name = "bank-test"

[data]
format = "synthetic"
groups = 8
questions = 12
dim = 4
clusters = 2
sharpness = 4.0
seed = 1

[evaluation]
splits = [0.6]
seeds = [0]
context_questions = 3
sweep = [3]
"#;

fn gpo(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpo")).args(args).current_dir(dir).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|g| format!("group {g}")).collect()
}

fn write_results(path: &Path, config: &RunConfig, runs: usize, dim: usize) {
    let run = RunResult {
        protocol: gpo_train::protocol::Protocol::Groups,
        train_fraction: 0.6,
        seed: 0,
        train_groups: names(0..4),
        new_questions: Vec::new(),
        no_prior_questions: Vec::new(),
        validation_groups: names(4..5),
        test_groups: names(5..8),
        models: Vec::new(),
        selected: None,
        scores: Vec::new(),
        context_use: Vec::new(),
        neighbour_rule: None,
    };
    let results = Results {
        name: config.name.clone(),
        dataset: "synthetic".into(),
        metric: gpo_train::data::Metric::Wasserstein,
        n_groups: 8,
        n_questions: 12,
        embedding_dim: dim,
        config: config.clone(),
        runs: vec![run; runs],
        summary: Vec::new(),
        sweep: Vec::new(),
        llm: None,
    };
    std::fs::write(path, serde_json::to_vec(&results).unwrap()).unwrap();
}

/// A prior model (kNN groups) whose prior groups are survey groups `prior_groups`.
fn write_model(path: &Path, config: &RunConfig, prior_groups: &[usize]) {
    let (task, info) = load_task(&config.data).unwrap();
    let gpo_config =
        GpoConfig::new(task.dim).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1).with_prior(true);
    let model = gpo_config.init_seeded::<NdArray<f32>>(&Default::default(), 1).unwrap();
    let prior = SurveyPrior::new(&task, PriorKind::KnnGroups { temperature: 0.05 }, prior_groups).unwrap();
    let mut metadata = ModelMetadata::new(&info.model, task.dim, info.template);
    metadata.method = "gpo_knn".into();
    let file =
        ModelFile::from_model(&model, &gpo_config, metadata, WeightDType::F16, Some(prior.prior().clone())).unwrap();
    std::fs::write(path, file.to_bytes().unwrap()).unwrap();
}

#[test]
fn export_bank_writes_the_questions_embeddings_and_held_out_groups() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("run.toml"), CONFIG).unwrap();
    let config = RunConfig::load(&d.join("run.toml")).unwrap();
    let (task, _) = load_task(&config.data).unwrap();
    std::fs::create_dir_all(d.join("run")).unwrap();
    write_results(&d.join("run/results.json"), &config, 1, task.dim);
    write_model(&d.join("run/model.gpo"), &config, &[0, 1, 2, 3, 4]);

    let bank_args = ["export-bank", "--config", "run.toml", "--results", "run/results.json", "--out", "data"];
    let (ok, out, err) = gpo(d, &bank_args);
    assert!(ok, "{err}");
    assert!(out.contains("12 questions") && out.contains("3 held-out groups"), "{out}");
    let bank: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("data/bank.json")).unwrap()).unwrap();
    assert_eq!(bank["method"], "gpo_knn");
    assert_eq!(bank["prior"]["kind"], "knn_groups");
    assert_eq!(bank["metric"], "wasserstein");
    assert_eq!(bank["dim"], 4);
    assert!(bank.get("prior_groups").is_none() && bank.get("knn_temperature").is_none(), "the model carries those");
    let questions = bank["questions"].as_array().unwrap();
    assert_eq!(questions.len(), task.survey.questions.len());
    let mut row = 0;
    for (q, expected) in questions.iter().zip(&task.survey.questions) {
        assert_eq!(q["key"], expected.key.as_str());
        assert_eq!(q["options"].as_array().unwrap().len(), expected.options.len());
        assert_eq!(q["row"], row);
        row += expected.options.len();
    }
    assert_eq!(bank["rows"], row);
    let groups: Vec<&str> = bank["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(groups, ["group 5", "group 6", "group 7"]);
    // Answers: the survey's, to 4 decimals.
    let g5 = &task.survey.groups[5];
    let (&q, p) = g5.answers.iter().next().unwrap();
    let stored: Vec<f64> = bank["groups"][0]["answers"][task.survey.questions[q].key.as_str()]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(stored.iter().zip(p).all(|(a, b)| (a - b).abs() <= 0.5e-4 + 1e-12), "{stored:?} vs {p:?}");
    // Embeddings: the task's, as little-endian f16, in question order.
    let f16 = std::fs::read(d.join("data/embeddings.f16")).unwrap();
    let expected: Vec<u8> =
        task.embeddings.iter().flatten().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
    assert_eq!(f16.len(), row * task.dim * 2);
    assert_eq!(f16, expected);

    // A prior that reads a held-out group.
    write_model(&d.join("run/model.gpo"), &config, &[0, 1, 5]);
    let (ok, _, err) = gpo(d, &bank_args);
    assert!(!ok && err.contains("model.gpo") && err.contains("group 5") && err.contains("held-out"), "{err}");
    write_model(&d.join("run/model.gpo"), &config, &[0, 1, 2, 3, 4]);
    // Results of two runs, of another config, with another dimension.
    write_results(&d.join("run/results.json"), &config, 2, task.dim);
    let (ok, _, err) = gpo(d, &bank_args);
    assert!(!ok && err.contains("results.json") && err.contains("2 runs"), "{err}");
    let mut renamed = config.clone();
    renamed.name = "other".into();
    write_results(&d.join("run/results.json"), &renamed, 1, task.dim);
    let (ok, _, err) = gpo(d, &bank_args);
    assert!(!ok && err.contains("run `other`") && err.contains("run.toml"), "{err}");
    write_results(&d.join("run/results.json"), &config, 1, task.dim + 1);
    let (ok, _, err) = gpo(d, &bank_args);
    assert!(!ok && err.contains("5-d"), "{err}");
    // Missing files are named.
    let (ok, _, err) = gpo(d, &["export-bank", "--config", "run.toml", "--results", "nowhere/results.json"]);
    assert!(!ok && err.contains("nowhere/results.json"), "{err}");
    write_results(&d.join("run/results.json"), &config, 1, task.dim);
    let (ok, _, err) =
        gpo(d, &["export-bank", "--config", "run.toml", "--results", "run/results.json", "--model", "no.gpo"]);
    assert!(!ok && err.contains("no.gpo"), "{err}");
}
