//! `gpo bench train|predict`: time per training update and the latency of one held-out group's
//! prediction, with achieved GFLOP/s against this machine's measured matmul peak, and the same
//! network in PyTorch timed side by side when `python3` with torch is available.

use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
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
/// `n_target` target tokens (multiply–adds count 2; softmax, norms and activations ignored).
pub fn forward_flops(config: &GpoConfig, n_context: usize, n_target: usize) -> f64 {
    let (d, ff, n) = (config.d_model as f64, config.d_ff as f64, (n_context + n_target) as f64);
    let (c, t) = (n_context as f64, n_target as f64);
    let embedder = n * 2.0 * ((config.dim_x as f64 + 1.0) * d + (config.emb_depth as f64 - 1.0) * d * d);
    let layer = n * 2.0 * d * d      // queries
        + c * 2.0 * 2.0 * d * d      // keys and values (context only)
        + 2.0 * n * c * 2.0 * d      // scores and weighted values
        + n * 2.0 * d * d            // output projection
        + n * 2.0 * 2.0 * d * ff; // feed-forward
    let head = t * 2.0 * (d * ff + ff * 2.0);
    embedder + config.n_layers as f64 * layer + head
}

/// Shapes of the measured work, for the PyTorch side.
#[derive(Debug, Clone, Serialize)]
pub struct Shapes {
    /// Model configuration.
    pub config: GpoConfig,
    /// Per update, per group: (context tokens, target tokens).
    pub train_batches: BatchShapes,
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
}

/// Per update, per group: (context tokens, target tokens).
pub type BatchShapes = Vec<Vec<(usize, usize)>>;

/// Times `iterations` training updates (after 2 warm-up updates) at the run's settings.
pub fn bench_train(
    task: &EmbeddedSurvey,
    config: &GpoConfig,
    sampling: Sampling,
    iterations: usize,
) -> Result<(Timing, BatchShapes), BenchError> {
    type B = Autodiff<Cpu>;
    let device = Default::default();
    let split = Split::new(task, Protocol::Groups, 0.8, 0, &SplitOptions::default())?;
    let sampler = EpisodeSampler::new(task, &split.train_groups, &split.train_questions, sampling, None);
    let mut model = config.init_seeded::<B>(&device, 0).map_err(TrainError::from)?;
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init::<B, gpo_core::Gpo<B>>();
    let mut rng = SplitMix64::new(1);
    let (mut times, mut flops, mut shapes) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations + 2 {
        let episodes = sampler.sample(&mut rng)?;
        let start = Instant::now();
        let batch = GpoBatch::<B>::new(&episodes, &device).map_err(TrainError::from)?;
        let loss = model.loss(&batch).map_err(TrainError::from)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-4, model, grads);
        let _ = model.valid();
        let elapsed = start.elapsed().as_secs_f64();
        if i >= 2 {
            times.push(elapsed);
            let shape: Vec<(usize, usize)> = episodes.iter().map(tokens).collect();
            // Backward costs about twice the forward pass.
            flops.push(3.0 * shape.iter().map(|&(c, t)| forward_flops(config, c, t)).sum::<f64>() / elapsed);
            shapes.push(shape);
        }
    }
    let timing = Timing { what: "training update".into(), ms: median(times) * 1e3, gflops: median(flops) / 1e9 };
    Ok((timing, shapes))
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
    started: Instant,
}

impl OtherLoad {
    /// Starts measuring.
    pub fn start() -> Option<Self> {
        Some(Self { busy_ticks: machine_busy_ticks()?, own_ticks: own_ticks()?, started: Instant::now() })
    }

    /// Other processes' share of all cores since [`OtherLoad::start`] (0 = idle, 1 = every core busy).
    pub fn fraction(&self) -> Option<f64> {
        let busy = machine_busy_ticks()?.saturating_sub(self.busy_ticks);
        let own = own_ticks()?.saturating_sub(self.own_ticks);
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
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (field 14) is index 11.
    (11..15).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}
