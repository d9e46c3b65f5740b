//! `gpo bench train|predict|embed`.

use anyhow::Context;
use std::path::Path;

use burn_ndarray::NdArray;
use gpo_train::bench::{Shapes, bench_predict, bench_pytorch, bench_train, matmul_peak};
use gpo_train::config::RunConfig;
use gpo_train::embed::{SentenceEncoder, SurveyTemplate, Template, bench_embed};
use gpo_train::run::load_task;

pub fn bench(
    what: super::BenchTarget,
    config_path: &Path,
    iterations: usize,
    model: Option<&Path>,
) -> anyhow::Result<()> {
    let config = RunConfig::load(config_path)?;
    let (task, _) = load_task(&config.data)?;
    let gpo_config = config.model.gpo_config(task.dim);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/bench_pytorch.py");
    let peak = matmul_peak();
    println!("matmul peak (burn-ndarray, 512³ f32): {peak:.1} GFLOP/s");
    println!("{:<52} {:>10} {:>9} {:>7} {:>12} {:>8}", "benchmark", "ms", "GFLOP/s", "% peak", "PyTorch ms", "speedup");
    let row = |t: &gpo_train::bench::Timing, torch_ms: Option<f64>| {
        let torch = torch_ms.map(|m| format!("{m:.2}")).unwrap_or_else(|| "–".into());
        let speedup = torch_ms.map(|m| format!("{:.2}×", m / t.ms)).unwrap_or_else(|| "–".into());
        println!(
            "{:<52} {:>10.2} {:>9.2} {:>6.1}% {:>12} {:>8}",
            t.what,
            t.ms,
            t.gflops,
            100.0 * t.gflops / peak,
            torch,
            speedup
        );
    };
    match what {
        super::BenchTarget::Train => {
            let (timing, batches) =
                bench_train(&task, &gpo_config, config.training.sampling, iterations).map_err(anyhow::Error::msg)?;
            let shapes = Shapes { config: gpo_config, train_batches: batches, predict: (0, 0) };
            let torch = bench_pytorch(&script, &shapes, "train").and_then(|v| v["train_ms"].as_f64());
            row(&timing, torch);
        }
        super::BenchTarget::Predict => {
            let k = config.evaluation.context_questions;
            let (timing, shape) = bench_predict(&task, &gpo_config, k, iterations).map_err(anyhow::Error::msg)?;
            let shapes = Shapes { config: gpo_config, train_batches: Vec::new(), predict: shape };
            let torch = bench_pytorch(&script, &shapes, "predict").and_then(|v| v["predict_ms"].as_f64());
            row(&timing, torch);
        }
        super::BenchTarget::Embed => {
            let model = model.context("gpo bench embed needs --model <folder or wheel>")?;
            let mut encoder = SentenceEncoder::<NdArray<f32>>::open(model, &Default::default())?;
            let texts = Template::Gpo.survey_texts(&task.survey)?;
            let texts: Vec<&str> = texts.iter().take(200).map(String::as_str).collect();
            let table = bench_embed(&mut encoder, &texts, &[1, 32])?;
            println!("{table}");
        }
    }
    Ok(())
}
