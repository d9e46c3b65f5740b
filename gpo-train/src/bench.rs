//! `gpo bench train|predict`: time per training update and the latency of one held-out group's
//! prediction, with achieved GFLOP/s against this machine's measured matmul peak, and the same
//! network in PyTorch timed side by side when `python3` with torch is available.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Tensor;
use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use gpo_core::rng::SplitMix64;
use gpo_core::{Episode, GpoBatch, GpoConfig};
use serde::Serialize;

use crate::eval::draw_episodes;
use crate::task::EmbeddedSurvey;
use crate::train::{EpisodeSampler, Protocol, Sampling, Split, SplitError, SplitOptions, TrainError};

type Cpu = NdArray<f32>;

/// Floating-point operations of one forward pass over an episode with `n_context` context and
/// `n_target` target tokens (multiply–adds count 2; softmax, norms and activations ignored): what
/// gpo computes, whose last layer leaves out the context tokens' rows.
pub fn forward_flops(config: &GpoConfig, n_context: usize, n_target: usize) -> f64 {
    let (d, ff, n) = (config.d_model as f64, config.d_ff as f64, (n_context + n_target) as f64);
    let (c, t) = (n_context as f64, n_target as f64);
    let embedder = n * 2.0 * ((config.dim_x as f64 + 1.0) * d + (config.emb_depth as f64 - 1.0) * d * d);
    // A layer whose `q` query tokens attend to the context.
    let layer = |q: f64| {
        q * 2.0 * d * d              // queries
        + c * 2.0 * 2.0 * d * d      // keys and values (context only)
        + 2.0 * q * c * 2.0 * d      // scores and weighted values
        + q * 2.0 * d * d            // output projection
        + q * 2.0 * 2.0 * d * ff // feed-forward
    };
    let head = t * 2.0 * (d * ff + ff * 2.0);
    // The last layer computes the target tokens only.
    let layers = match config.n_layers {
        0 => 0.0,
        l => (l - 1) as f64 * layer(n) + layer(t),
    };
    embedder + layers + head
}

/// Floating-point operations of one training update over `episodes` on `threads` threads, as
/// gpo computes them: 3 × [`forward_flops`] per episode (backward costs about twice the forward
/// pass), less the first layer's product with the option embeddings where the episodes of one
/// thread's batch share them ([`Episode::same_embeddings`]: the batch computes it once).
pub fn update_flops(config: &GpoConfig, episodes: &[Episode], threads: usize) -> f64 {
    let per_episode: f64 = episodes.iter().map(tokens).map(|(c, t)| 3.0 * forward_flops(config, c, t)).sum();
    let once: f64 = crate::train::parts(episodes, threads)
        .iter()
        .filter_map(|part| part.split_first())
        .filter(|(first, rest)| rest.iter().all(|e| e.same_embeddings(first)))
        .map(|(first, rest)| {
            let (c, t) = tokens(first);
            let product = (c + t) as f64 * 2.0 * config.dim_x as f64 * config.d_model as f64;
            3.0 * product * rest.len() as f64
        })
        .sum();
    per_episode - once
}

/// Shapes of the measured work, for the PyTorch side.
#[derive(Debug, Clone, Serialize)]
pub struct Shapes {
    /// Model configuration.
    pub config: GpoConfig,
    /// The prediction episode: (context tokens, target tokens).
    pub predict: (usize, usize),
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// What was timed.
    pub what: String,
    /// Median milliseconds.
    pub ms: f64,
    /// Achieved GFLOP/s.
    pub gflops: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// This machine's f32 matmul throughput through burn-ndarray (GFLOP/s), the reference peak.
pub fn matmul_peak() -> f64 {
    let device = Default::default();
    let n = 512;
    let a = Tensor::<Cpu, 2>::ones([n, n], &device);
    let b = Tensor::<Cpu, 2>::ones([n, n], &device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let times: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            let _ = a.clone().matmul(b.clone()).into_data();
            start.elapsed().as_secs_f64()
        })
        .collect();
    2.0 * (n * n * n) as f64 / median(times) / 1e9
}

fn tokens(episode: &Episode) -> (usize, usize) {
    (episode.n_context_tokens(), episode.n_target_tokens())
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The data cannot be split.
    #[error("split: {0}")]
    Split(#[from] SplitError),
    /// The model, a batch or the sampler failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The official code could not be run or answered something unexpected.
    #[error("official code ({script}): {message}")]
    Official {
        /// The driver script.
        script: String,
        /// What went wrong.
        message: String,
    },
    /// The setup cannot be compared with the official code.
    #[error("{0}")]
    Setup(String),
}

/// Times `iterations` training updates (after 2 warm-up updates) at the run's settings.
pub fn bench_train(
    task: &EmbeddedSurvey,
    config: &GpoConfig,
    sampling: Sampling,
    iterations: usize,
) -> Result<Timing, BenchError> {
    type B = Autodiff<Cpu>;
    let device = Default::default();
    let split = Split::new(task, Protocol::Groups, 0.8, 0, &SplitOptions::default())?;
    let sampler = EpisodeSampler::new(task, &split.train_groups, &split.train_questions, sampling, None);
    let mut model = config.init_seeded::<B>(&device, 0).map_err(TrainError::from)?;
    let mut optimizer = crate::train::new_optimizer::<B>();
    let mut rng = SplitMix64::new(1);
    let (mut times, mut flops) = (Vec::new(), Vec::new());
    for i in 0..iterations + 2 {
        let episodes = sampler.sample(&mut rng)?;
        let start = Instant::now();
        let objective = crate::train::Objective::GaussianNll;
        (model, _) = crate::train::update(model, &mut optimizer, objective, &episodes, (1e-4, i), 1, &device)?;
        let elapsed = start.elapsed().as_secs_f64();
        if i >= 2 {
            times.push(elapsed);
            flops.push(update_flops(config, &episodes, 1) / elapsed);
        }
    }
    let timing = Timing { what: "training update".into(), ms: median(times) * 1e3, gflops: median(flops) / 1e9 };
    Ok(timing)
}

/// Times the prediction of one held-out group: `k` context questions, every other question a target.
pub fn bench_predict(
    task: &EmbeddedSurvey,
    config: &GpoConfig,
    k: usize,
    iterations: usize,
) -> Result<(Timing, (usize, usize)), BenchError> {
    let device = Default::default();
    let model = config.init_seeded::<Cpu>(&device, 0).map_err(TrainError::from)?;
    let all: Vec<usize> = (0..task.survey.questions.len()).collect();
    let episode = draw_episodes(task, &[0], &all, k, &mut SplitMix64::new(0)).remove(0);
    let built = crate::train::sampler::episode(task, 0, &episode.context, &episode.targets, None)?;
    let shape = tokens(&built);
    let mut times = Vec::new();
    for i in 0..iterations + 2 {
        let start = Instant::now();
        let batch = GpoBatch::<Cpu>::new(std::slice::from_ref(&built), &device).map_err(TrainError::from)?;
        let _ = model.forward(&batch).map_err(TrainError::from)?.mean.into_data();
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let ms = median(times) * 1e3;
    let gflops = forward_flops(config, shape.0, shape.1) / (ms / 1e3) / 1e9;
    Ok((
        Timing { what: format!("predict one group ({k} context, {} targets)", episode.targets.len()), ms, gflops },
        shape,
    ))
}

/// Where the official code is and how to run it (`gpo bench train --official`).
#[derive(Debug, Clone)]
pub struct Official<'a> {
    /// A checkout of github.com/jamqd/Group-Preference-Optimization.
    pub checkout: &'a Path,
    /// The Python interpreter with torch.
    pub python: &'a Path,
    /// `tools/bench_official.py`.
    pub script: &'a Path,
}

/// One row of `gpo bench train --official`: the official training step and gpo's on the same
/// updates (the same groups, the same context and target questions), one after the other.
#[derive(Debug, Clone, Serialize)]
pub struct TrainComparison {
    /// Meta-training split fraction.
    pub fraction: f64,
    /// Groups per update.
    pub groups: usize,
    /// Threads torch was given.
    pub official_threads: usize,
    /// Threads one gpo update uses (`[training] threads`).
    pub gpo_threads: usize,
    /// Timed update pairs (after 2 warm-up pairs).
    pub updates: usize,
    /// Median milliseconds per update, official and gpo.
    pub official_ms: f64,
    /// See `official_ms`.
    pub gpo_ms: f64,
    /// Median, lowest and highest per-update ratio official ms / gpo ms (> 1: gpo is faster).
    pub ratio: f64,
    /// See `ratio`.
    pub ratio_min: f64,
    /// See `ratio`.
    pub ratio_max: f64,
    /// gpo's achieved GFLOP/s (median over its updates; the FLOPs it computes, [`update_flops`]).
    pub gpo_gflops: f64,
    /// Other processes' share of the machine's cores while the pairs ran.
    pub other_load: Option<f64>,
    /// The torch version.
    pub torch: String,
}

/// Times the official training step (its collate, forward, backward, Adam and cosine scheduler,
/// run by `official.script` from the checkout) against gpo's update (episodes, batch, loss,
/// backward, Adam: what `gpo run` does per update) on the `fraction` split's meta-training
/// groups, update by update: the official code draws each update's questions, gpo runs the same
/// ones right after. `threads` is torch's thread count and gpo's ([`crate::train::TrainOptions::threads`]).
pub fn bench_train_official(
    task: &EmbeddedSurvey,
    config: &GpoConfig,
    sampling: Sampling,
    (fraction, threads): (f64, usize),
    updates: usize,
    official: &Official,
) -> Result<TrainComparison, BenchError> {
    let script = official.script.display().to_string();
    let fail = |message: String| BenchError::Official { script: script.clone(), message };
    let Sampling::Code { min_context, max_context, min_target, max_target } = sampling else {
        return Err(BenchError::Setup(
            "the official collate draws as `sampling.kind = \"code\"`; the config's sampling is `paper`".into(),
        ));
    };
    let split = Split::new(task, Protocol::Groups, fraction, 0, &SplitOptions::default())?;
    let (groups, questions) = (&split.train_groups, &split.train_questions);
    // The official OpinionQA collate gives every group the same questions.
    for &g in groups {
        if let Some(&q) = questions.iter().find(|&&q| task.answer(g, q).is_none()) {
            let (group, key) = (&task.survey.groups[g].name, &task.survey.questions[q].key);
            return Err(BenchError::Setup(format!(
                "group {group:?} did not answer question {key:?}: the official OpinionQA collate needs every group to answer every question"
            )));
        }
    }
    let options: Vec<usize> = questions.iter().map(|&q| task.survey.questions[q].options.len()).collect();
    let mut data: Vec<f32> = questions.iter().flat_map(|&q| task.embeddings[q].iter().copied()).collect();
    for &g in groups {
        data.extend(questions.iter().flat_map(|&q| task.answer(g, q).unwrap_or_default().iter().map(|&p| p as f32)));
    }
    let steps = 1000;
    let setup = serde_json::json!({
        "threads": threads,
        "seed": 0,
        "steps": steps,
        "dim_x": task.dim,
        "options": options,
        "groups": groups.len(),
        "sampling": {"min_context": min_context, "max_context": max_context, "min_target": min_target, "max_target": max_target},
        "model": {"d_model": config.d_model, "emb_depth": config.emb_depth, "dim_feedforward": config.d_ff,
                  "nhead": config.n_heads, "dropout": config.dropout, "num_layers": config.n_layers},
    });
    let dir = tempfile_dir().ok_or_else(|| fail("cannot make a temporary folder".into()))?;
    let (setup_path, data_path) = (dir.join("setup.json"), dir.join("data.bin"));
    let io = |e: std::io::Error| fail(e.to_string());
    std::fs::write(&setup_path, setup.to_string()).map_err(io)?;
    std::fs::write(&data_path, data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).map_err(io)?;
    let mut child = std::process::Command::new(official.python)
        .arg("-W")
        .arg("ignore")
        .arg(official.script)
        .arg(official.checkout)
        .arg(&setup_path)
        .arg(&data_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", official.python.display())))?;
    let sizes = (fraction, steps, updates, threads);
    let result = compare_updates(task, config, (groups, questions), sizes, &mut child, &fail);
    let _ = child.kill();
    let output = child.wait_with_output();
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| match (&e, output) {
        (BenchError::Official { .. }, Ok(out)) if !out.stderr.is_empty() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            fail(format!("{e}; its last error line: {}", stderr.lines().last().unwrap_or("").trim()))
        }
        _ => e,
    })
}

fn compare_updates(
    task: &EmbeddedSurvey,
    config: &GpoConfig,
    (groups, questions): (&[usize], &[usize]),
    (fraction, steps, updates, threads): (f64, usize, usize, usize),
    child: &mut std::process::Child,
    fail: &dyn Fn(String) -> BenchError,
) -> Result<TrainComparison, BenchError> {
    use std::io::{BufRead, Write};
    type B = Autodiff<Cpu>;
    let mut stdin = child.stdin.take().ok_or_else(|| fail("no stdin".into()))?;
    let mut lines = std::io::BufReader::new(child.stdout.take().ok_or_else(|| fail("no stdout".into()))?).lines();
    let mut read = || -> Result<serde_json::Value, BenchError> {
        let line = lines.next().ok_or_else(|| fail("it stopped".into()))?.map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&line).map_err(|e| fail(format!("unexpected output {line:?}: {e}")))
    };
    let ready = read()?;
    let torch = ready["torch"].as_str().unwrap_or("?").to_owned();
    let device = Default::default();
    let mut model = config.init_seeded::<B>(&device, 0).map_err(TrainError::from)?;
    let mut optimizer = crate::train::new_optimizer::<B>();
    let indices = |value: &serde_json::Value| -> Result<Vec<usize>, BenchError> {
        let list = value.as_array().ok_or_else(|| fail(format!("expected a list of question indices, got {value}")))?;
        list.iter()
            .map(|v| v.as_u64().map(|i| i as usize).filter(|&i| i < questions.len()).map(|i| questions[i]))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| fail(format!("question indices out of range in {value}")))
    };
    let load = OtherLoad::start_with_child(child.id());
    let (mut official_ms, mut gpo_ms, mut ratios, mut gflops) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for step in 0..updates + 2 {
        writeln!(stdin, "update").map_err(|e| fail(e.to_string()))?;
        let answer = read()?;
        let theirs = answer["ms"].as_f64().ok_or_else(|| fail(format!("no time in {answer}")))?;
        let (context, targets) = (indices(&answer["context"])?, indices(&answer["targets"])?);
        let start = Instant::now();
        let episodes: Vec<Episode> = (groups.iter())
            .map(|&g| crate::train::sampler::episode(task, g, &context, &targets, None))
            .collect::<Result<_, _>>()?;
        let learning_rate = crate::train::cosine_learning_rate(3e-4, step, steps);
        let objective = crate::train::Objective::GaussianNll;
        (model, _) =
            crate::train::update(model, &mut optimizer, objective, &episodes, (learning_rate, step), threads, &device)?;
        let ours = start.elapsed().as_secs_f64() * 1e3;
        if step >= 2 {
            let flops = update_flops(config, &episodes, threads);
            official_ms.push(theirs);
            gpo_ms.push(ours);
            ratios.push(theirs / ours);
            gflops.push(flops / (ours / 1e3) / 1e9);
        }
    }
    let other_load = load.and_then(|l| l.fraction());
    let _ = writeln!(stdin, "quit");
    let bounds = ratios.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    Ok(TrainComparison {
        fraction,
        groups: groups.len(),
        official_threads: threads,
        gpo_threads: threads,
        updates,
        official_ms: median(official_ms),
        gpo_ms: median(gpo_ms),
        ratio: median(ratios),
        ratio_min: bounds.0,
        ratio_max: bounds.1,
        gpo_gflops: median(gflops),
        other_load,
        torch,
    })
}

/// Runs `tools/bench_pytorch.py` on the same shapes; `None` when python3 with torch is missing.
pub fn bench_pytorch(script: &Path, shapes: &Shapes, which: &str) -> Option<serde_json::Value> {
    let dir = tempfile_dir()?;
    let path = dir.join("shapes.json");
    std::fs::write(&path, serde_json::to_vec(shapes).ok()?).ok()?;
    let output = std::process::Command::new("python3").arg(script).arg(&path).arg(which).output().ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !output.status.success() {
        tracing::warn!(
            "PyTorch benchmark unavailable: {}",
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

fn tempfile_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("gpo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// The CPU time other processes took while a measurement ran, as a fraction of the machine's
/// cores (Linux: `/proc/stat` less this process's own and its waited-for children's time; `None`
/// elsewhere). Benchmarks print it beside their timings: these machines are shared.
#[derive(Debug, Clone, Copy)]
pub struct OtherLoad {
    busy_ticks: u64,
    own_ticks: u64,
    /// A running child process whose time is ours too, and its ticks at the start.
    child: Option<(u32, u64)>,
    started: Instant,
}

impl OtherLoad {
    /// Starts measuring.
    pub fn start() -> Option<Self> {
        Some(Self { busy_ticks: machine_busy_ticks()?, own_ticks: own_ticks()?, child: None, started: Instant::now() })
    }

    /// Starts measuring, counting the running child process `pid` as this process's own work.
    pub fn start_with_child(pid: u32) -> Option<Self> {
        let child = Some((pid, process_ticks(&format!("/proc/{pid}/stat"))?));
        Some(Self { child, ..Self::start()? })
    }

    /// Other processes' share of all cores since [`OtherLoad::start`] (0 = idle, 1 = every core busy).
    pub fn fraction(&self) -> Option<f64> {
        let busy = machine_busy_ticks()?.saturating_sub(self.busy_ticks);
        let child = match self.child {
            Some((pid, at_start)) => process_ticks(&format!("/proc/{pid}/stat"))?.saturating_sub(at_start),
            None => 0,
        };
        let own = own_ticks()?.saturating_sub(self.own_ticks) + child;
        let hz = ticks_per_second()?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let wall = self.started.elapsed().as_secs_f64();
        (hz > 0 && wall > 0.0).then(|| (busy.saturating_sub(own) as f64 / hz as f64 / wall / cores).clamp(0.0, 1.0))
    }
}

fn ticks_per_second() -> Option<i64> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads a configuration value.
        Some(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Busy ticks of all cores: user, nice, system, irq, softirq and steal in `/proc/stat`.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// This process's user and system ticks plus those of its waited-for children (`/proc/self/stat`
/// fields 14–17, counted after the parenthesised command name).
fn own_ticks() -> Option<u64> {
    process_ticks("/proc/self/stat")
}

/// A process's user and system ticks plus its waited-for children's, from its `stat` file.
fn process_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (field 14) is index 11.
    (11..15).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{SyntheticSpec, synthetic_survey};

    /// A stand-in for `tools/bench_official.py` speaking its protocol (no torch needed): each
    /// update takes 5 ms and draws `body`'s questions.
    fn driver(dir: &Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("driver.py");
        let script = format!(
            "import json, sys\nprint(json.dumps({{'ready': True, 'torch': 'none'}}), flush=True)\nfor line in sys.stdin:\n    if line.strip() == 'quit':\n        break\n{body}\n"
        );
        std::fs::write(&path, script).unwrap();
        path
    }

    #[test]
    fn gpo_runs_the_updates_the_official_driver_draws() {
        let task =
            synthetic_survey(SyntheticSpec { groups: 10, questions: 30, dim: 6, clusters: 2, sharpness: 3.0, seed: 3 });
        let config = GpoConfig::new(6).with_d_model(8).with_d_ff(8).with_n_layers(1);
        let sampling = Sampling::Code { min_context: 3, max_context: 5, min_target: 3, max_target: 5 };
        let dir = tempfile::tempdir().unwrap();
        let python = Path::new("python3");
        let checkout = dir.path();
        let ok = driver(
            dir.path(),
            "    print(json.dumps({'ms': 5.0, 'loss': 1.0, 'context': [0, 1, 2], 'targets': [3, 4]}), flush=True)",
        );
        let official = Official { checkout, python, script: &ok };
        let row = bench_train_official(&task, &config, sampling, (0.8, 2), 3, &official).unwrap();
        let split = Split::new(&task, Protocol::Groups, 0.8, 0, &SplitOptions::default()).unwrap();
        assert_eq!((row.fraction, row.official_threads, row.gpo_threads), (0.8, 2, 2));
        assert_eq!(
            (row.groups, row.updates, row.official_ms, row.torch.as_str()),
            (split.train_groups.len(), 3, 5.0, "none")
        );
        assert!(row.gpo_ms > 0.0 && (row.ratio_min..=row.ratio_max).contains(&row.ratio));
        // An odd number of pairs: the median ratio is the official time over gpo's median time.
        assert!((row.ratio - 5.0 / row.gpo_ms).abs() < 1e-12 * row.ratio, "{} vs {}", row.ratio, row.gpo_ms);

        // A question index outside the split's questions is one clear error naming the driver.
        let bad =
            driver(dir.path(), "    print(json.dumps({'ms': 5.0, 'context': [0, 99], 'targets': [3]}), flush=True)");
        let official = Official { checkout, python, script: &bad };
        let error = bench_train_official(&task, &config, sampling, (0.8, 1), 1, &official).unwrap_err().to_string();
        assert!(error.contains("driver.py") && error.contains("out of range"), "{error}");
        // A driver that fails: its last error line is in the message.
        let failing = driver(dir.path(), "    raise SystemExit('no torch here')");
        let official = Official { checkout, python, script: &failing };
        let error = bench_train_official(&task, &config, sampling, (0.8, 1), 1, &official).unwrap_err().to_string();
        assert!(error.contains("it stopped") && error.contains("no torch here"), "{error}");
        // No interpreter.
        let official = Official { checkout, python: Path::new("/nonexistent/python3"), script: &ok };
        let error = bench_train_official(&task, &config, sampling, (0.8, 1), 1, &official).unwrap_err().to_string();
        assert!(error.contains("cannot start /nonexistent/python3"), "{error}");
        // The paper's sampling has no official collate.
        let official = Official { checkout, python, script: &ok };
        let error = bench_train_official(&task, &config, Sampling::Paper, (0.8, 1), 1, &official).unwrap_err();
        assert!(matches!(error, BenchError::Setup(_)), "{error}");
    }
}
