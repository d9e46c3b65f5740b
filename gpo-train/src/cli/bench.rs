//! `gpo bench train|predict|embed`.

use anyhow::Context;
use std::path::Path;

use burn_ndarray::NdArray;
use gpo_train::bench::{OtherLoad, Shapes, bench_predict, bench_pytorch, bench_train, matmul_peak};
use gpo_train::config::RunConfig;
use gpo_train::embed::{SentenceEncoder, SurveyTemplate, Template, bench_embed, bench_sentence_transformers};
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
    let header = || {
        println!(
            "{:<52} {:>10} {:>9} {:>7} {:>12} {:>8}",
            "benchmark", "ms", "GFLOP/s", "% peak", "PyTorch ms", "speedup"
        )
    };
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
            header();
            let (timing, batches) =
                bench_train(&task, &gpo_config, config.training.sampling, iterations).map_err(anyhow::Error::msg)?;
            let shapes = Shapes { config: gpo_config, train_batches: batches, predict: (0, 0) };
            let torch = bench_pytorch(&script, &shapes, "train").and_then(|v| v["train_ms"].as_f64());
            row(&timing, torch);
        }
        super::BenchTarget::Predict => {
            header();
            let k = config.evaluation.context_questions;
            let (timing, shape) = bench_predict(&task, &gpo_config, k, iterations).map_err(anyhow::Error::msg)?;
            let shapes = Shapes { config: gpo_config, train_batches: Vec::new(), predict: shape };
            let torch = bench_pytorch(&script, &shapes, "predict").and_then(|v| v["predict_ms"].as_f64());
            row(&timing, torch);
        }
        super::BenchTarget::Embed => {
            let model = model.context("gpo bench embed needs --model <folder or wheel>")?;
            let texts = Template::Gpo.survey_texts(&task.survey)?;
            let texts: Vec<&str> = texts.iter().take(200).map(String::as_str).collect();
            bench_embed_side_by_side(model, &texts, peak)?;
        }
    }
    Ok(())
}

/// `gpo bench embed`: gpo's encoder and sentence-transformers on the same texts, batch sizes and
/// thread count, one after the other in this run, with achieved GFLOP/s and the other load.
fn bench_embed_side_by_side(model: &Path, texts: &[&str], burn_peak: f64) -> anyhow::Result<()> {
    const BATCHES: [usize; 2] = [1, 32];
    let mut encoder = SentenceEncoder::<NdArray<f32>>::open(model, &Default::default())?;
    let threads = encoder.threads();
    let flops = encoder.flops(texts)?;
    println!(
        "{} texts ({:.2} GFLOP per text), {threads} threads; peak {:.1} GFLOP/s = {threads} × burn-ndarray's 1-thread matmul",
        texts.len(),
        flops / texts.len() as f64 / 1e9,
        burn_peak * threads as f64
    );
    let load = OtherLoad::start();
    let ours = bench_embed(&mut encoder, texts, &BATCHES)?;
    let our_load = load.and_then(|l| l.fraction());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/bench_sentence_transformers.py");
    let load = OtherLoad::start();
    let reference = bench_sentence_transformers(&script, model, texts, &BATCHES, threads);
    let reference_load = load.and_then(|l| l.fraction());
    let gflops = |texts_per_second: f64| texts_per_second * flops / texts.len() as f64 / 1e9;
    let percent = |g: f64| 100.0 * g / (burn_peak * threads as f64);
    println!(
        "{:>6} {:>12} {:>9} {:>7} {:>22} {:>9} {:>7}",
        "batch", "gpo texts/s", "GFLOP/s", "% peak", "sentence-tf. texts/s", "GFLOP/s", "ratio"
    );
    for row in &ours.rows {
        let ours = row.texts_per_second();
        let theirs = reference.as_ref().ok().and_then(|r| r.rows.iter().find(|(b, _)| *b == row.batch_size));
        let (theirs_s, theirs_g, ratio) = match theirs {
            Some(&(_, t)) => (format!("{t:.1}"), format!("{:.1}", gflops(t)), format!("{:.2}×", ours / t)),
            None => ("–".into(), "–".into(), "–".into()),
        };
        println!(
            "{:>6} {:>12.1} {:>9.1} {:>6.1}% {:>22} {:>9} {:>7}",
            row.batch_size,
            ours,
            gflops(ours),
            percent(gflops(ours)),
            theirs_s,
            theirs_g,
            ratio
        );
    }
    let load_text = |l: Option<f64>| l.map_or_else(|| "unknown".to_owned(), |l| format!("{:.0}%", 100.0 * l));
    println!(
        "other load: {} during gpo, {} during sentence-transformers",
        load_text(our_load),
        load_text(reference_load)
    );
    match &reference {
        Ok(r) => {
            println!(
                "sentence-transformers: torch {}, {} threads; torch's own matmul (1024³ f32): {:.1} GFLOP/s",
                r.torch, r.threads, r.matmul_gflops
            );
            if let Some(&(batch, t)) = r.rows.last() {
                let needed = gflops(1.5 * t);
                println!(
                    "1.5× sentence-transformers at batch {batch} needs {needed:.1} GFLOP/s on these texts: {:.2}× torch's matmul peak",
                    needed / r.matmul_gflops
                );
            }
        }
        Err(why) => println!("sentence-transformers: not measured ({why})"),
    }
    Ok(())
}
