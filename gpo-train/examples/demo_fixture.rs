//! Writes `fixtures/demo/`: the demo model (the browser demo's `gpo_knn`, trained by
//! `gpo-wasm/tests/demo.toml` on the bundled OpinionQA data, exported as `gpo run` exports it)
//! and a request for one of its held-out groups with the predictions gpo-core's `Predictor` gives
//! (read back by gpo-core's crate-level example and README's).
//!
//! `cargo run -p gpo-train --example demo_fixture` (about a minute in release, a few in debug).

use std::path::Path;

use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use gpo_core::rng::SplitMix64;
use gpo_core::{ModelFile, Predictor, Question};
use gpo_train::config::RunConfig;
use gpo_train::eval::draw_episodes;
use gpo_train::pipeline::load_task;
use gpo_train::run::run_experiment;
use gpo_train::train::NoProgress;

const CONTEXT: usize = 10;
const TARGETS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = RunConfig::load(&root.join("gpo-wasm/tests/demo.toml"))?;
    let out = std::env::temp_dir().join("gpo-demo-fixture");
    let results = run_experiment::<Autodiff<NdArray<f32>>>(&config, &out, false, 1, &Default::default(), &NoProgress)?;
    let bytes = std::fs::read(out.join("model.gpo"))?;
    let file = ModelFile::from_bytes(&bytes)?;
    let (task, _) = load_task(&config.data)?;
    let run = &results.runs[0];
    let group = task.survey.groups.iter().position(|g| g.name == run.test_groups[0]).ok_or("no test group")?;
    let all: Vec<usize> = (0..task.survey.questions.len()).collect();
    let episode = draw_episodes(&task, &[group], &all, CONTEXT, &mut SplitMix64::new(7)).remove(0);
    let targets: Vec<usize> = episode.targets[..TARGETS].to_vec();
    let key = |q: usize| task.survey.questions[q].key.clone();
    let rows = |q: usize| -> Vec<Vec<f32>> { task.embeddings[q].chunks(task.dim).map(<[f32]>::to_vec).collect() };
    let answer =
        |q: usize| -> Vec<f32> { task.answer(group, q).unwrap_or_default().iter().map(|&v| v as f32).collect() };
    let answers: Vec<Vec<f32>> = episode.context.iter().map(|&q| answer(q)).collect();
    let keys: Vec<String> = episode.context.iter().chain(&targets).map(|&q| key(q)).collect();
    let context: Vec<Question> = episode
        .context
        .iter()
        .zip(&answers)
        .zip(&keys)
        .map(|((&q, a), k)| Question::new(&task.embeddings[q]).key(k).answer(a))
        .collect();
    let target_questions: Vec<Question> =
        targets.iter().zip(&keys[CONTEXT..]).map(|(&q, k)| Question::new(&task.embeddings[q]).key(k)).collect();
    let predictions =
        Predictor::<NdArray<f32>>::new(&file, &Default::default())?.predict(&context, &target_questions)?;
    let request = serde_json::json!({
        "group": task.survey.groups[group].name,
        "context": episode.context.iter().zip(&answers).map(|(&q, a)| serde_json::json!({"key": key(q), "embeddings": rows(q), "distribution": a})).collect::<Vec<_>>(),
        "targets": targets.iter().map(|&q| serde_json::json!({"key": key(q), "embeddings": rows(q)})).collect::<Vec<_>>(),
        "expected": predictions.iter().map(|p| &p.distribution).collect::<Vec<_>>(),
    });
    let dir = root.join("fixtures/demo");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("model.gpo"), &bytes)?;
    std::fs::write(dir.join("request.json"), serde_json::to_vec(&request)?)?;
    println!(
        "wrote {} ({} bytes, method {}) and request.json",
        dir.join("model.gpo").display(),
        bytes.len(),
        file.metadata().method
    );
    Ok(())
}
