//! `gpo bench train|predict|embed`.

use anyhow::Context;
use std::path::Path;

use burn_ndarray::NdArray;
use gpo_train::bench::{
    Official, OtherLoad, Shapes, TrainComparison, bench_predict, bench_pytorch, bench_train, bench_train_official,
    matmul_peak,
};
use gpo_train::config::RunConfig;
use gpo_train::embed::{SurveyTemplate, Template, bench_embed, bench_sentence_transformers, embed_texts, open_encoder};
use gpo_train::pipeline::load_task;

pub fn bench(
    what: super::BenchTarget,
    config_path: &Path,
    iterations: usize,
    model: Option<&Path>,
    encoders: &[std::path::PathBuf],
    official: Option<(&Path, &Path)>,
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
        super::BenchTarget::Train => match official {
            None => {
                header();
                let timing = bench_train(&task, &gpo_config, config.training.sampling, iterations)?;
                row(&timing, None);
                println!(
                    "against the official training step: --official <checkout of github.com/jamqd/Group-Preference-Optimization>"
                );
            }
            Some((checkout, python)) => {
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/bench_official.py");
                let official = Official { checkout, python, script: &script };
                bench_against_official(&task, &gpo_config, config.training.sampling, iterations, &official, peak)?;
            }
        },
        super::BenchTarget::Predict => {
            header();
            let k = config.evaluation.context_questions;
            let (timing, shape) = bench_predict(&task, &gpo_config, k, iterations)?;
            let shapes = Shapes { config: gpo_config, predict: shape };
            let torch = bench_pytorch(&script, &shapes, "predict").and_then(|v| v["predict_ms"].as_f64());
            row(&timing, torch);
        }
        super::BenchTarget::Embed => {
            let model = model.context("gpo bench embed needs --model <folder or wheel>")?;
            let all_texts = Template::Gpo.survey_texts(&task.survey)?;
            let texts: Vec<&str> = all_texts.iter().take(200).map(String::as_str).collect();
            bench_embed_side_by_side(model, &texts, peak)?;
            if !encoders.is_empty() {
                let all: Vec<&str> = all_texts.iter().map(String::as_str).collect();
                bench_encoder_files(model, encoders, &texts, &all)?;
            }
        }
        super::BenchTarget::Lm => {
            let model = model.context("gpo bench lm needs --model <.gguf or wheel>")?;
            bench_lm(model, &task.survey, iterations, peak)?;
        }
    }
    Ok(())
}

/// `gpo bench train --official`: the official training step and gpo's on the same updates, for
/// the 40% and 80% splits at 1 and 2 threads on both sides, as a table of medians and ratios.
fn bench_against_official(
    task: &gpo_train::task::EmbeddedSurvey,
    config: &gpo_core::GpoConfig,
    sampling: gpo_train::train::Sampling,
    updates: usize,
    official: &Official,
    peak: f64,
) -> anyhow::Result<()> {
    println!(
        "{:>6} {:>7} {:>13} {:>12} {:>8} {:>8} {:>15} {:>9} {:>7} {:>11}",
        "split",
        "groups",
        "threads o/g",
        "official ms",
        "gpo ms",
        "ratio",
        "ratio min–max",
        "GFLOP/s",
        "% peak",
        "other load"
    );
    let mut rows: Vec<TrainComparison> = Vec::new();
    for fraction in [0.4, 0.8] {
        for threads in [1, 2] {
            let r = bench_train_official(task, config, sampling, (fraction, threads), updates, official)?;
            let load = r.other_load.map_or_else(|| "unknown".to_owned(), |l| format!("{:.0}%", 100.0 * l));
            println!(
                "{:>5.0}% {:>7} {:>13} {:>12.1} {:>8.1} {:>7.2}× {:>15} {:>9.1} {:>6.1}% {:>11}",
                100.0 * r.fraction,
                r.groups,
                format!("{} / {}", r.official_threads, r.gpo_threads),
                r.official_ms,
                r.gpo_ms,
                r.ratio,
                format!("{:.2}–{:.2}", r.ratio_min, r.ratio_max),
                r.gpo_gflops,
                100.0 * r.gpo_gflops / peak,
                load
            );
            rows.push(r);
        }
    }
    if let Some(r) = rows.first() {
        println!(
            "{} update pairs per row after 2 warm-up pairs: the official step (torch {}; collate, forward, backward, Adam, cosine scheduler) draws each update's questions, gpo's update (episodes, batch, loss, backward, Adam) runs the same ones right after; ratio = official ms / gpo ms per pair (> 1: gpo faster), median",
            r.updates, r.torch
        );
    }
    Ok(())
}

/// `gpo bench embed`: gpo's encoder and sentence-transformers on the same texts, batch sizes and
/// thread count, one after the other in this run, with achieved GFLOP/s and the other load.
fn bench_embed_side_by_side(model: &Path, texts: &[&str], burn_peak: f64) -> anyhow::Result<()> {
    const BATCHES: [usize; 2] = [1, 32];
    let mut encoder = open_encoder::<NdArray<f32>>(model, &Default::default())?;
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

/// `gpo bench embed --encoder …`: encoder files beside the `--model` encoder in this run: texts/s
/// on the same texts and batch sizes, and the worst and mean cosine of their vectors against the
/// model's over all of the survey's texts.
fn bench_encoder_files(
    model: &Path,
    encoders: &[std::path::PathBuf],
    texts: &[&str],
    all_texts: &[&str],
) -> anyhow::Result<()> {
    const BATCHES: [usize; 2] = [1, 32];
    let mut reference = open_encoder::<NdArray<f32>>(model, &Default::default())?;
    let baseline = bench_embed(&mut reference, texts, &BATCHES)?;
    let want = embed_texts(&mut reference, all_texts, 32, |_| {})?;
    let dim = reference.dim();
    println!(
        "encoder files beside {} (texts/s on the {} texts above; cosine to its vectors over all {} survey texts)",
        model.display(),
        texts.len(),
        all_texts.len()
    );
    println!(
        "{:<40} {:>12} {:>11} {:>11} {:>7} {:>11} {:>7} {:>10} {:>10}",
        "encoder", "bytes", "load s", "b1 texts/s", "ratio", "b32 texts/s", "ratio", "worst cos", "mean cos"
    );
    let row = |name: &str, bytes: u64, load: f64, table: &gpo_train::embed::BenchTable, cosines: Option<(f64, f64)>| {
        let rate = |i: usize| table.rows[i].texts_per_second();
        let ratio = |i: usize| rate(i) / baseline.rows[i].texts_per_second();
        let (worst, mean) =
            cosines.map_or(("–".into(), "–".into()), |(w, m)| (format!("{w:.7}"), format!("{m:.7}")));
        println!(
            "{name:<40} {bytes:>12} {load:>11.2} {:>11.1} {:>6.2}× {:>11.1} {:>6.2}× {worst:>10} {mean:>10}",
            rate(0),
            ratio(0),
            rate(1),
            ratio(1)
        );
    };
    row(&model.display().to_string(), std::fs::metadata(model).map_or(0, |m| m.len()), 0.0, &baseline, None);
    for path in encoders {
        let started = std::time::Instant::now();
        let mut encoder = open_encoder::<NdArray<f32>>(path, &Default::default())?;
        let load = started.elapsed().as_secs_f64();
        let table = bench_embed(&mut encoder, texts, &BATCHES)?;
        let got = embed_texts(&mut encoder, all_texts, 32, |_| {})?;
        let cosines: Vec<f64> = want
            .chunks_exact(dim)
            .zip(got.chunks_exact(dim))
            .map(|(a, b)| {
                let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
                let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                dot / (norm(a) * norm(b))
            })
            .collect();
        let worst = cosines.iter().copied().fold(1.0, f64::min);
        let mean = cosines.iter().sum::<f64>() / cosines.len().max(1) as f64;
        let bytes = std::fs::metadata(path).with_context(|| path.display().to_string())?.len();
        row(&path.display().to_string(), bytes, load, &table, Some((worst, mean)));
    }
    Ok(())
}

/// `gpo bench lm`: a GGUF model on the first questions of the survey, one thread: the prompt of
/// each question (prefill, batch 1), then all its options after the cached prompt (scoring, one
/// batch, the next-token logits of every position), as `LlmEmbedder` and the LLM baselines run them.
fn bench_lm(model: &Path, survey: &gpo_train::data::Survey, questions: usize, peak: f64) -> anyhow::Result<()> {
    use gpo_train::llm::embed::prefix_groups;
    use gpo_train::llm::llama::token_ids;
    use gpo_train::llm::{Gguf, Llama, gguf_tokenizer, read_gguf_bytes};
    use std::time::Instant;

    let (name, bytes) = read_gguf_bytes(model)?;
    let gguf = Gguf::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    let device = Default::default();
    let llama = Llama::<NdArray<f32>>::from_gguf(&gguf, &device).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let tokenizer = gguf_tokenizer(&gguf).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let config = llama.config().clone();
    let (mut prefill_s, mut prefill_tokens, mut prefill_flops) = (0.0, 0usize, 0.0);
    let (mut score_s, mut score_tokens, mut score_flops) = (0.0, 0usize, 0.0);
    let head_flops = 2.0 * (config.d_model * config.vocab) as f64;
    for question in survey.questions.iter().take(questions.max(1)) {
        let tokens: Vec<Vec<u32>> = Template::Gpo
            .question_texts(question)?
            .iter()
            .map(|t| tokenizer.encode(t.as_str(), false).map(|e| e.get_ids().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        // The grouping `LlmEmbedder` uses: the options' shared prompt, then each option's tokens.
        for (range, shared) in prefix_groups(&tokens) {
            let mut cache = llama.cache();
            if shared > 0 {
                let started = Instant::now();
                let _ = llama.forward(token_ids(&[&tokens[range.start][..shared]], &device), &mut cache).into_data();
                prefill_s += started.elapsed().as_secs_f64();
                prefill_tokens += shared;
                prefill_flops += config.forward_flops(shared, 0);
            }
            let suffixes: Vec<&[u32]> = tokens[range.clone()].iter().map(|t| &t[shared..]).collect();
            let width = suffixes.iter().map(|s| s.len()).max().unwrap_or(0);
            let mut cache = if shared > 0 { cache.repeat(suffixes.len()) } else { cache };
            let started = Instant::now();
            let hidden = llama.forward(token_ids(&suffixes, &device), &mut cache);
            let _ = llama.logits(hidden).into_data();
            score_s += started.elapsed().as_secs_f64();
            score_tokens += suffixes.iter().map(|s| s.len()).sum::<usize>();
            score_flops += suffixes.len() as f64 * (config.forward_flops(width, shared) + width as f64 * head_flops);
        }
    }
    println!(
        "{name}: {} layers, d {}, {} questions, 1 thread; peak {peak:.1} GFLOP/s (burn-ndarray 512³ matmul)",
        config.n_layers, config.d_model, questions
    );
    println!("{:<42} {:>8} {:>10} {:>10} {:>9} {:>7}", "phase", "tokens", "seconds", "tokens/s", "GFLOP/s", "% peak");
    for (what, tokens, seconds, flops) in [
        ("prefill (each question's prompt, batch 1)", prefill_tokens, prefill_s, prefill_flops),
        ("scoring (its options after the cache)", score_tokens, score_s, score_flops),
    ] {
        let gflops = flops / seconds.max(f64::MIN_POSITIVE) / 1e9;
        println!(
            "{what:<42} {tokens:>8} {seconds:>10.3} {:>10.1} {gflops:>9.1} {:>6.1}%",
            tokens as f64 / seconds.max(f64::MIN_POSITIVE),
            100.0 * gflops / peak
        );
    }
    Ok(())
}
