//! GPO meta-training and prediction on the bundled OpinionQA data (`configs/opinionqa.toml`: its
//! embeddings cache, its `[model]` and `[training]` settings), on the CPU backend that `gpo run`
//! uses (burn-ndarray, f32), with the same allocator (mimalloc).
//!
//! - `train_update/<method>`: one meta-training update of each method the config lists (the
//!   faithful `gpo`, then every `gpo_<variant>`) at the 0.8 split, seed 0: batch build from
//!   pre-drawn episodes, loss (the method's objective), backward, Adam step. An update takes
//!   seconds on 2 cores and its work varies with the drawn context and target counts (10–100
//!   each), so ten batches are drawn up front from the method's sampler (fixed seed) and cycled
//!   through, with flat sampling over ten samples: whatever the iterations per sample, the
//!   measured updates cover every batch equally often, and the mean is the mean update over the
//!   ten batches. The spread between samples is mostly that batch mix, not noise. Drawing the
//!   episodes (and their priors) is not timed; its mean time per batch is printed.
//! - `predict_one_group/<method>/<context>+<targets>`: latency of predicting one held-out group
//!   (the split's first test group) with 20 context questions and every other question as targets
//!   (~650), then with 20 context questions and 100 targets; episode and batch construction
//!   (prior included) are timed. Throughput counts target questions. The models are untrained
//!   (weights do not change the work).
//!
//! About a minute and a half on 2 busy cores:
//!
//!     cargo bench -p gpo-train --bench gpo
//!     cargo bench -p gpo-train --bench gpo -- --quick      # a quick look

use std::path::Path;
use std::time::{Duration, Instant};

use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::ElementConversion;
use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use gpo_core::rng::SplitMix64;
use gpo_core::{Episode, Gpo, GpoBatch};
use gpo_train::config::RunConfig;
use gpo_train::eval::{GpoPredictor, Predictor, draw_episodes};
use gpo_train::task::EmbeddedSurvey;
use gpo_train::train::{EpisodeSampler, GpoMethod, Protocol, Split};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Cpu = NdArray<f32>;
type Train = Autodiff<Cpu>;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/opinionqa.toml");
const TRAIN_FRACTION: f64 = 0.8;
const SEED: u64 = 0;
/// Samples per benchmark.
const SAMPLES: usize = 10;
/// Training batches drawn up front and cycled through: as many as samples, so that the measured
/// updates cover every batch equally often.
const N_BATCHES: usize = SAMPLES;
const CONTEXT: usize = 20;
const FEW_TARGETS: usize = 100;

/// The data, the split and the methods of the run config.
struct Setup {
    task: EmbeddedSurvey,
    split: Split,
    /// The config's GPO methods.
    methods: Vec<GpoMethod>,
}

fn setup() -> Setup {
    // As the `gpo` binary: freed memory stays with the process.
    gpo_train::allocator::keep_freed_memory();
    let config = RunConfig::load(Path::new(CONFIG)).expect("configs/opinionqa.toml");
    let (task, _) = gpo_train::pipeline::load_task(&config.data).expect("OpinionQA data and embeddings");
    let split = Split::new(&task, Protocol::Groups, TRAIN_FRACTION, SEED, &config.split).expect("split");
    let methods = config.methods(task.dim);
    Setup { task, split, methods }
}

/// Times one update of `method` (cycling through [`N_BATCHES`] pre-drawn batches).
fn bench_update(group: &mut BenchmarkGroup<WallTime>, setup: &Setup, method: &GpoMethod) {
    let Setup { task, split, .. } = setup;
    let device = Default::default();
    let prior = method
        .population_prior(task, &split.train_groups, split.training_prior_questions(), split.neighbour_rule)
        .expect("prior");
    let sampler = EpisodeSampler::new(
        task,
        &split.train_groups,
        &split.train_questions,
        method.training.sampling,
        prior.as_ref().map(|p| (p, method.training.target_priors)),
    )
    .with_groups_per_update(method.training.groups_per_update);
    let mut rng = SplitMix64::new(SEED ^ 0x0062_656E_6368);
    let start = Instant::now();
    let batches: Vec<Vec<Episode>> =
        (0..N_BATCHES).map(|_| sampler.sample(&mut rng).expect("training episodes")).collect();
    let drawing = start.elapsed().as_secs_f64() / N_BATCHES as f64;
    let tokens =
        |f: fn(&Episode) -> usize| -> f64 { batches.iter().flatten().map(f).sum::<usize>() as f64 / N_BATCHES as f64 };
    println!(
        "{}: {} groups per batch, on average {:.0} context + {:.0} target tokens per batch; \
         drawing a batch (untimed below) takes {:.1} ms",
        method.method,
        batches.first().map_or(0, Vec::len),
        tokens(Episode::n_context_tokens),
        tokens(Episode::n_target_tokens),
        drawing * 1e3
    );
    let mut model = Some(method.config.init_seeded::<Train>(&device, SEED).expect("model"));
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init::<Train, Gpo<Train>>();
    let (objective, learning_rate) = (method.training.objective, method.training.learning_rate);
    let mut next = 0;
    group.bench_function(method.method.name(), |b| {
        b.iter(|| {
            let episodes = &batches[next % N_BATCHES];
            next += 1;
            let current = model.take().expect("model");
            let batch = GpoBatch::<Train>::new(episodes, &device).expect("batch");
            let loss = objective.loss(&current, &batch).expect("loss");
            let value: f64 = loss.clone().into_scalar().elem();
            let grads = GradientsParams::from_grads(loss.backward(), &current);
            model = Some(optimizer.step(learning_rate, current, grads));
            value
        });
    });
}

/// A group with the sampling settings every benchmark here uses: few, flat samples (an update
/// takes up to seconds).
fn benchmark_group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

fn train_update(c: &mut Criterion) {
    let setup = setup();
    let mut group = benchmark_group(c, "train_update");
    for method in &setup.methods {
        bench_update(&mut group, &setup, method);
    }
    group.finish();
}

fn predict_one_group(c: &mut Criterion) {
    let Setup { task, split, methods } = setup();
    let device = Default::default();
    let held_out = split.test_groups[0];
    let all: Vec<usize> = (0..task.survey.questions.len()).collect();
    let drawn = draw_episodes(&task, &[held_out], &all, CONTEXT, &mut SplitMix64::new(SEED)).remove(0);
    let sizes = [drawn.targets.len(), FEW_TARGETS.min(drawn.targets.len())];

    let mut group = benchmark_group(c, "predict_one_group");
    for method in &methods {
        let model = method.config.init_seeded::<Cpu>(&device, SEED).expect("model");
        let prior = method
            .population_prior(&task, &split.meta_train_groups(), &split.seen_questions, split.neighbour_rule)
            .expect("prior")
            .map(|p| p.prior().clone());
        // What an app runs: gpo-core's Predictor, priors computed from the model's prior data.
        let predictor = GpoPredictor::new(model, method.method.clone(), prior).expect("predictor");
        for n_targets in sizes {
            let mut episode = drawn.clone();
            episode.targets.truncate(n_targets);
            group.throughput(Throughput::Elements(n_targets as u64));
            let id = BenchmarkId::new(method.method.name(), format!("{}+{n_targets}", drawn.context.len()));
            group.bench_function(id, |b| {
                b.iter(|| predictor.predict(&task, std::slice::from_ref(&episode)).expect("prediction"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train_update, predict_one_group);
criterion_main!(benches);
