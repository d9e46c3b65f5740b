//! One inference path: for a prior model and a faithful model, gpo-train's evaluation (the in-run
//! predictor and the exported file), gpo-core's `Predictor` and `gpo predict` give the same
//! distributions on the same episode of the bundled OpinionQA data, and the exported `.gpo` is
//! used with no other file. Tolerance 1e-6: all paths run the same f32 code on the same weights
//! (an f32 file stores them exactly), so only the JSON round trip of `gpo predict` could differ,
//! and serde_json writes f32 values that parse back exactly.

use burn_ndarray::NdArray;
use gpo_core::prior::PriorKind;
use gpo_core::weights::reinitialize;
use gpo_core::{GpoConfig, ModelFile, ModelMetadata, Predictor, Question, WeightDType};
use gpo_train::config::RunConfig;
use gpo_train::eval::{EvalEpisode, GpoPredictor, Predictor as _};
use gpo_train::method::Method;
use gpo_train::pipeline::load_task;
use gpo_train::prior::SurveyPrior;
use gpo_train::task::EmbeddedSurvey;

use crate::common::{gpo, max_difference, predicted, repo};

type Cpu = NdArray<f32>;
const TOLERANCE: f64 = 1e-6;

fn task() -> EmbeddedSurvey {
    let config = RunConfig::load(&repo().join("configs/opinionqa.toml")).unwrap();
    load_task(&config.data).unwrap().0
}

/// The four paths on one episode; returns the in-run evaluation's distributions.
fn check_paths(task: &EmbeddedSurvey, config: &GpoConfig, kind: Option<PriorKind>, seed: u64) -> Vec<Vec<f64>> {
    let device = Default::default();
    // Every weight random (a prior model's residual head starts at zero otherwise).
    let model = reinitialize(config.init::<Cpu>(&device).unwrap(), seed);
    let prior_groups: Vec<usize> = (0..12).collect();
    let prior = kind.map(|k| SurveyPrior::new(task, k, &prior_groups).unwrap().prior().clone());
    let metadata = ModelMetadata::new("test", task.dim, None);
    let file = ModelFile::from_model(&model, config, metadata, WeightDType::F32, prior.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.gpo");
    std::fs::write(&model_path, file.to_bytes().unwrap()).unwrap();

    let group = 14;
    let answered = task.questions_of(group);
    let episode = EvalEpisode::new(group, answered[..20].to_vec(), answered[20..50].to_vec());
    let episodes = std::slice::from_ref(&episode);

    // 1. gpo-train's evaluation during a run: the trained model and the prior over the groups.
    let in_run = GpoPredictor::new(model, Method::Gpo, prior).unwrap().predict(task, episodes).unwrap().remove(0);
    // 2. gpo-train's evaluation of the exported file, read back from disk.
    let loaded = ModelFile::from_bytes(&std::fs::read(&model_path).unwrap()).unwrap();
    let exported =
        GpoPredictor::<Cpu>::from_file(&loaded, &device, Method::Gpo).unwrap().predict(task, episodes).unwrap();
    assert!(max_difference(&in_run, &exported[0]) <= TOLERANCE);
    // 3. gpo-core's Predictor, as an app calls it.
    let key = |q: usize| task.survey.questions[q].key.as_str();
    let answers: Vec<Vec<f32>> =
        episode.context.iter().map(|&q| task.answer(group, q).unwrap().iter().map(|&v| v as f32).collect()).collect();
    let context: Vec<Question> = episode
        .context
        .iter()
        .zip(&answers)
        .map(|(&q, a)| Question::new(&task.embeddings[q]).key(key(q)).answer(a))
        .collect();
    let targets: Vec<Question> =
        episode.targets.iter().map(|&q| Question::new(&task.embeddings[q]).key(key(q))).collect();
    let app: Vec<Vec<f64>> = Predictor::<Cpu>::new(&loaded, &device)
        .unwrap()
        .predict(&context, &targets)
        .unwrap()
        .into_iter()
        .map(|p| p.distribution.into_iter().map(f64::from).collect())
        .collect();
    assert!(max_difference(&in_run, &app) <= TOLERANCE);
    // 4. `gpo predict` with the model file alone (embeddings and keys in the request).
    let rows = |q: usize| -> Vec<Vec<f32>> { task.embeddings[q].chunks(task.dim).map(<[f32]>::to_vec).collect() };
    let request = serde_json::json!({
        "context": episode.context.iter().zip(&answers).map(|(&q, a)| serde_json::json!({"key": key(q), "embeddings": rows(q), "distribution": a})).collect::<Vec<_>>(),
        "targets": episode.targets.iter().map(|&q| serde_json::json!({"key": key(q), "embeddings": rows(q)})).collect::<Vec<_>>(),
    });
    let request_path = dir.path().join("request.json");
    std::fs::write(&request_path, request.to_string()).unwrap();
    let (ok, stdout, stderr) = gpo(&[
        "--quiet",
        "predict",
        "--model",
        model_path.to_str().unwrap(),
        "--input",
        request_path.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let cli = predicted(&stdout);
    let difference = max_difference(&in_run, &cli);
    println!("{:?}: largest difference between the paths {difference:.1e}", kind.map(|k| k.name()));
    assert!(difference <= TOLERANCE, "gpo predict differs by {difference}");
    in_run
}

#[test]
fn every_path_gives_the_same_distributions() {
    let task = task();
    let small = GpoConfig::new(task.dim).with_d_model(32).with_d_ff(32).with_n_heads(4).with_n_layers(2);
    let faithful = check_paths(&task, &small, None, 3);
    let knn = check_paths(&task, &small.clone().with_prior(true), Some(PriorKind::KnnGroups { temperature: 0.02 }), 3);
    let mean = check_paths(&task, &small.with_prior(true), Some(PriorKind::TrainMean), 3);
    // The prior reaches the model: different priors, different predictions.
    assert!(max_difference(&knn, &mean) > 1e-4 && max_difference(&knn, &faithful) > 1e-4);
}
