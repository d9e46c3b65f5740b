//! The meta-training loop (docs/original.md §4): every update is one batch holding all training groups.

use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::ElementConversion;
use burn::tensor::backend::{AutodiffBackend, Backend};
use gpo_core::prior::NeighbourRule;
use gpo_core::rng::SplitMix64;
use gpo_core::{Episode, Gpo, GpoBatch, GpoConfig, ModelFile, ModelMetadata, WeightDType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::checkpoint::{Checkpoint, CheckpointError};
use super::curve::CurvePoint;
use super::record;
use super::sampler::{EpisodeSampler, Sampling};
use crate::eval::{EvalEpisode, GpoPredictor, Predictor, draw_episodes_with_targets, score};
use crate::method::Method;
use crate::prior::{PriorKind, SurveyPrior, TargetPriors};
use crate::split::Split;
use crate::task::EmbeddedSurvey;

/// Training hyperparameters (the `[training]` table of a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainOptions {
    /// Optimizer updates (the original: 200,000).
    pub steps: usize,
    /// Adam learning rate at step 0, decayed to 0 by a cosine schedule.
    pub learning_rate: f64,
    /// How context and target questions are drawn.
    pub sampling: Sampling,
    /// Meta-training groups per update, drawn anew each update (absent: all of them, as the
    /// original).
    pub groups_per_update: Option<usize>,
    /// What the updates minimise.
    pub objective: Objective,
    /// Which priors a prior variant's training targets carry.
    pub target_priors: TargetPriors,
    /// Score the validation set every this many updates (and after the last).
    pub eval_every: usize,
    /// Write a checkpoint every this many updates (0: never; always after the last).
    pub checkpoint_every: usize,
    /// Context questions shown for each validation group.
    pub validation_context: usize,
    /// Threads one update's gradients are computed on ([`update`]); 1 (the default) computes
    /// them on the training thread. `gpo run` already spreads its runs over the cores (`--jobs`),
    /// so more helps a single run, such as `configs/opinionqa-full.toml` with `--jobs 1`.
    /// Results are bit-identical for the same seed and thread count.
    #[serde(skip_serializing_if = "is_one")]
    pub threads: usize,
}

/// Serde's test for leaving `threads = 1` out of what is stored (so the fingerprints of runs
/// made before the option existed stay valid).
fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            steps: 1000,
            learning_rate: 3e-4,
            sampling: Sampling::default(),
            groups_per_update: None,
            objective: Objective::GaussianNll,
            target_priors: TargetPriors::Answered,
            eval_every: 100,
            checkpoint_every: 0,
            validation_context: 20,
            threads: 1,
        }
    }
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The original's Gaussian negative log-likelihood of each true probability ([`Gpo::loss`]).
    GaussianNll,
    /// Cross-entropy of each target distribution ([`Gpo::cross_entropy`]); σ goes unused.
    CrossEntropy,
}

impl Objective {
    /// What the loss of a batch of `episodes` is averaged over: its real target options (Gaussian
    /// NLL) or its target questions (cross-entropy), at least 1.
    pub fn denominator(self, episodes: &[Episode]) -> usize {
        let count = |e: &Episode| match self {
            Self::GaussianNll => e.n_target_tokens(),
            Self::CrossEntropy => e.target_options().len(),
        };
        episodes.iter().map(count).sum::<usize>().max(1)
    }

    /// The loss of `model` on `batch`.
    pub fn loss<B: Backend>(
        self,
        model: &Gpo<B>,
        batch: &GpoBatch<B>,
    ) -> Result<burn::tensor::Tensor<B, 1>, gpo_core::BatchError> {
        match self {
            Self::GaussianNll => model.loss(batch),
            Self::CrossEntropy => model.cross_entropy(batch),
        }
    }
}

/// One GPO method to meta-train: the faithful model or one of its variants.
#[derive(Debug, Clone, PartialEq)]
pub struct GpoMethod {
    /// The faithful `gpo` or a variant.
    pub method: Method,
    /// The network; `config.prior` is set exactly when `prior` is.
    pub config: GpoConfig,
    /// The population prior the network reads (prior variants only).
    pub prior: Option<PriorKind>,
    /// Training hyperparameters.
    pub training: TrainOptions,
}

impl GpoMethod {
    /// The method's prior over `groups`' answers to `questions`, new questions' priors by `rule`,
    /// if it reads one.
    pub fn population_prior(
        &self,
        task: &EmbeddedSurvey,
        groups: &[usize],
        questions: &[usize],
        rule: NeighbourRule,
    ) -> Result<Option<SurveyPrior>, gpo_core::PriorError> {
        // Ranked once: every new question's prior then reads its neighbours off the ranking.
        let prior = |kind| {
            Ok(SurveyPrior::over(task, kind, groups, questions)?.with_neighbour_rule(rule)?.with_ranked_neighbours())
        };
        self.prior.map(prior).transpose()
    }
}

/// CPU seconds the calling thread has used (its wall clock where the platform has no thread CPU
/// clock). Only differences of two readings on one thread mean anything.
pub fn thread_cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `t` is a valid, writable timespec; clock_gettime writes only into it.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9;
        }
    }
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// A finished training run.
pub struct Trained<B: Backend> {
    /// The model with the best validation score.
    pub model: Gpo<B>,
    /// Update at which it was taken.
    pub best_step: usize,
    /// Its validation score.
    pub best_score: Option<f64>,
    /// Loss and validation curve.
    pub curve: Vec<CurvePoint>,
    /// Updates done in total.
    pub steps: usize,
    /// Wall-clock seconds spent in this process (resumed work excluded).
    pub seconds: f64,
    /// Whether all `steps` updates are done (false when stopped early by `stop_after`).
    pub finished: bool,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad model configuration.
    #[error("model configuration: {0}")]
    Config(gpo_core::model::ConfigError),
    /// An episode could not be built.
    #[error("training batch: {0}")]
    Batch(gpo_core::BatchError),
    /// Validation failed.
    #[error("validation: {0}")]
    Eval(crate::eval::EvalError),
    /// Checkpoint problem.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A stored model did not load.
    #[error("stored model: {0}")]
    Model(gpo_core::ModelFileError),
    /// The population prior could not be computed.
    #[error("population prior: {0}")]
    Prior(gpo_core::PriorError),
    /// A Burn record could not be stored.
    #[error("checkpoint record: {0}")]
    Record(super::record::RecordError),
    /// A thread computing part of an update's gradients panicked.
    #[error("a training thread panicked")]
    Thread,
    /// The loss stopped being a number.
    #[error("training diverged at update {step}: loss is {loss}")]
    Diverged {
        /// Update.
        step: usize,
        /// Loss value.
        loss: f64,
    },
}

gpo_core::cause_in_message!(TrainError {
    Config(gpo_core::model::ConfigError),
    Batch(gpo_core::BatchError),
    Eval(crate::eval::EvalError),
    Model(gpo_core::ModelFileError),
    Prior(gpo_core::PriorError),
});

/// `CosineAnnealingLR(T_max = steps)` with η_min = 0, as the original, read at update `step`.
pub fn cosine_learning_rate(base: f64, step: usize, steps: usize) -> f64 {
    base * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / steps.max(1) as f64).cos())
}

/// Validation episodes, drawn once per run so that every evaluation sees the same contexts. Like
/// the test's, they hold only questions with a population prior (training groups' answers to
/// the training prior's questions), so that every method, prior variants included, is scored on
/// the same items.
pub fn validation_episodes(
    task: &EmbeddedSurvey,
    split: &Split,
    k: usize,
    seed: u64,
) -> Result<Vec<EvalEpisode>, TrainError> {
    let mut rng = SplitMix64::new(seed ^ 0x0076_616C_6964);
    let (context, targets) = split.validation_pools();
    let prior = SurveyPrior::over(task, PriorKind::TrainMean, &split.train_groups, split.training_prior_questions())?;
    let context = prior.defined_in(context);
    let targets = targets.map(|t| prior.defined_in(t));
    Ok(draw_episodes_with_targets(task, &split.validation_groups, &context, targets.as_deref(), k, &mut rng))
}

/// Identifies a training run in its checkpoint: the sha256 (hex) of the JSON of everything that
/// determines its result — the method (name, network, prior, training options), the split and the
/// seed. Any change to them makes an existing checkpoint belong to another run.
pub(crate) fn fingerprint(method: &GpoMethod, split: &Split, seed: u64) -> String {
    #[derive(Serialize)]
    struct Settings<'a> {
        method: &'a Method,
        config: &'a GpoConfig,
        prior: &'a Option<PriorKind>,
        training: &'a TrainOptions,
        split: &'a Split,
        seed: u64,
    }
    let settings = Settings {
        method: &method.method,
        config: &method.config,
        prior: &method.prior,
        training: &method.training,
        split,
        seed,
    };
    // Plain structs with string keys: serialising them to JSON cannot fail.
    let json = serde_json::to_vec(&settings).unwrap_or_default();
    Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect()
}

/// A checkpoint's state, checked against the run it resumes.
struct Resumed<B: AutodiffBackend> {
    model: Gpo<B>,
    optimizer: record::GpoOptimizer<B>,
    saved: Checkpoint,
}

/// Loads the checkpoint at `path` for the run of `fingerprint` (method `method`): its step must be
/// one the run can reach, its curve must end there, and its records and best model must fit the
/// method's network. Every failure is an error naming the file, none a panic.
fn load_resumed<B: AutodiffBackend>(
    path: &Path,
    fingerprint: &str,
    method: &GpoMethod,
    model: Gpo<B>,
    optimizer: record::GpoOptimizer<B>,
    device: &B::Device,
) -> Result<Resumed<B>, TrainError> {
    let saved = Checkpoint::load(path, fingerprint)?;
    let steps = method.training.steps;
    let invalid = |message: String| TrainError::Checkpoint(CheckpointError::invalid(path, message));
    if saved.step == 0 || saved.step > steps {
        return Err(invalid(format!("it is at update {}, but the run has updates 1 to {steps}", saved.step)));
    }
    if saved.curve.len() != saved.step + 1 || saved.curve.last().map(|p| p.step) != Some(saved.step) {
        return Err(invalid(format!(
            "its training curve has {} points, not one per update up to {}",
            saved.curve.len(),
            saved.step
        )));
    }
    if let Some((step, score, bytes)) = &saved.best {
        if *step > saved.step || !score.is_finite() {
            return Err(invalid(format!("its best model (update {step}, score {score}) is not one of its updates")));
        }
        let file = ModelFile::from_bytes(bytes).map_err(|e| invalid(format!("best model: {e}")))?;
        if file.config() != &method.config {
            return Err(invalid("its best model has another network configuration".into()));
        }
        file.to_model::<B::InnerBackend>(device).map_err(|e| invalid(format!("best model: {e}")))?;
    }
    let model = record::load_model(model, &saved.model, device).map_err(|e| invalid(e.to_string()))?;
    let optimizer =
        record::load_optimizer(optimizer, &model, &saved.optimizer, device).map_err(|e| invalid(e.to_string()))?;
    Ok(Resumed { model, optimizer, saved })
}

fn model_file_bytes<B: Backend>(
    model: &Gpo<B>,
    config: &GpoConfig,
    prior: Option<&SurveyPrior>,
) -> Result<Vec<u8>, TrainError> {
    let metadata = ModelMetadata::new("", config.dim_x, None);
    let prior = prior.map(|p| p.prior().clone());
    Ok(ModelFile::from_model(model, config, metadata, WeightDType::F32, prior).and_then(|f| f.to_bytes())?)
}

/// Where a training run keeps its state, and how much of it to do now.
#[derive(Debug, Clone, Copy, Default)]
pub struct Session<'a> {
    /// Checkpoint file: written every `checkpoint_every` updates, at the end and when stopping.
    pub checkpoint: Option<&'a Path>,
    /// Continue from the checkpoint if one of the same run exists.
    pub resume: bool,
    /// Stop (after checkpointing) once this many updates are done, to continue later.
    pub stop_after: Option<usize>,
}

/// One optimizer update of `model` on the batch of `episodes` at `learning_rate`: the loss, its
/// gradients, the Adam step. Returns the updated model and the loss before the step; a loss that
/// is not finite is [`TrainError::Diverged`] at `step`, and no step is taken.
///
/// With `threads` > 1 the episodes are cut into that many contiguous parts ([`parts`]); each
/// part's share of the loss (its own loss times its share of the loss's denominator,
/// [`Objective::denominator`]: together, the whole batch's loss) and its gradients are computed on
/// a thread of its own, on a fork of the model with an autodiff graph of its own
/// ([`Module::fork`]), and the gradients are summed in part order. The same seed and thread count
/// give the same bits; another thread count sums in another order, so its bits differ.
pub(crate) fn update<B: AutodiffBackend>(
    model: Gpo<B>,
    optimizer: &mut record::GpoOptimizer<B>,
    objective: Objective,
    episodes: &[Episode],
    (learning_rate, step): (f64, usize),
    threads: usize,
    device: &B::Device,
) -> Result<(Gpo<B>, f64), TrainError> {
    let parts = parts(episodes, threads);
    let (loss, grads) = if parts.len() <= 1 {
        let batch = GpoBatch::<B>::new(episodes, device)?;
        let loss = objective.loss(&model, &batch)?;
        let value: f64 = loss.clone().into_scalar().elem();
        (value, GradientsParams::from_grads(loss.backward(), &model))
    } else {
        let total = parts.iter().map(|part| objective.denominator(part)).sum::<usize>().max(1) as f64;
        let results: Vec<Result<(f64, GradientsParams), TrainError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (parts.iter())
                .map(|&part| {
                    let fork = model.clone().fork(device);
                    scope.spawn(move || {
                        let batch = GpoBatch::<B>::new(part, device)?;
                        let share = objective.denominator(part) as f64 / total;
                        let loss = objective.loss(&fork, &batch)?.mul_scalar(share);
                        let value: f64 = loss.clone().into_scalar().elem();
                        Ok((value, GradientsParams::from_grads(loss.backward(), &fork)))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(Err(TrainError::Thread))).collect()
        });
        let (mut value, mut sum) = (0.0, GradientsAccumulator::<Gpo<B>>::new());
        for result in results {
            let (part_loss, grads) = result?;
            value += part_loss;
            sum.accumulate(&model, grads);
        }
        (value, sum.grads())
    };
    if !loss.is_finite() {
        return Err(TrainError::Diverged { step, loss });
    }
    Ok((optimizer.step(learning_rate, model, grads), loss))
}

/// `episodes` cut into `threads` contiguous parts (fewer when there are fewer episodes), in
/// order, their sizes at most one apart, the first ones the larger.
pub(crate) fn parts(episodes: &[Episode], threads: usize) -> Vec<&[Episode]> {
    let n = threads.clamp(1, episodes.len().max(1));
    let (size, extra) = (episodes.len() / n, episodes.len() % n);
    let mut rest = episodes;
    (0..n)
        .map(|i| {
            let (part, tail) = rest.split_at(size + usize::from(i < extra));
            rest = tail;
            part
        })
        .collect()
}

/// Trains `method` on `split` from `seed`. With `session.resume`, a checkpoint of the same run is
/// continued exactly where it stopped: the result is bit-identical to an uninterrupted run.
pub fn train<B: AutodiffBackend>(
    task: &EmbeddedSurvey,
    split: &Split,
    method: &GpoMethod,
    seed: u64,
    session: Session,
    device: &B::Device,
    progress: &dyn super::TrainProgress,
) -> Result<Trained<B::InnerBackend>, TrainError> {
    let Session { checkpoint, resume, stop_after } = session;
    let (config, options) = (&method.config, &method.training);
    let fingerprint = fingerprint(method, split, seed);
    let mut model = config.init_seeded::<B>(device, seed)?;
    let mut optimizer = record::new_optimizer::<B>();
    let mut rng = SplitMix64::new(seed ^ 0x0074_7261_696E);
    let mut start = 0;
    let mut best: Option<(usize, f64, Vec<u8>)> = None;
    let mut curve = Vec::new();

    if let Some(path) = checkpoint.filter(|_| resume) {
        // A write killed mid-way leaves its temporary file beside the checkpoint.
        let stale = crate::fsutil::remove_stale_temporaries(path)
            .map_err(|error| CheckpointError::Io { path: path.display().to_string(), error })?;
        for file in stale {
            tracing::info!(path = %file.display(), "removed the temporary file of an interrupted checkpoint write");
        }
    }
    if let Some(path) = checkpoint.filter(|p| resume && p.exists()) {
        let resumed = load_resumed(path, &fingerprint, method, model, optimizer, device)?;
        (model, optimizer) = (resumed.model, resumed.optimizer);
        let saved = resumed.saved;
        rng = SplitMix64::new(saved.rng_state);
        start = saved.step;
        best = saved.best;
        curve = saved.curve;
        tracing::info!(step = start, path = %path.display(), "resumed from checkpoint");
    }

    // Ranked once (`population_prior`): priors of questions as new ones read their neighbours off it.
    let prior =
        method.population_prior(task, &split.train_groups, split.training_prior_questions(), split.neighbour_rule)?;
    let sampler = EpisodeSampler::new(
        task,
        &split.train_groups,
        &split.train_questions,
        options.sampling,
        prior.as_ref().map(|p| (p, options.target_priors)),
    )
    .with_groups_per_update(options.groups_per_update);
    let validation = validation_episodes(task, split, options.validation_context, seed)?;
    progress.start(&method.method, options.steps, start);
    let validate = |model: &Gpo<B::InnerBackend>| -> Result<Option<f64>, TrainError> {
        let predictor =
            GpoPredictor::new(model.clone(), method.method.clone(), prior.as_ref().map(|p| p.prior().clone()))?;
        Ok(score(task, &validation, &predictor.predict(task, &validation)?).micro())
    };
    if start == 0 {
        // The untrained model is a candidate too: a prior variant starts at its prior, which
        // training must beat on validation to replace.
        let valid = model.valid();
        let score = validate(&valid)?;
        tracing::info!(method = %method.method, fraction = split.train_fraction, seed, step = 0, validation = ?score, "validated");
        if let Some(score) = score {
            best = Some((0, score, model_file_bytes(&valid, config, prior.as_ref())?));
        }
        curve.push(CurvePoint { step: 0, loss: None, validation: score, cpu_seconds: 0.0 });
    }
    let started = Instant::now();
    let mut done = start;
    let mut cpu_seconds = curve.last().map_or(0.0, |p: &CurvePoint| p.cpu_seconds);

    for step in start..options.steps {
        let update_started = thread_cpu_seconds();
        let learning_rate = cosine_learning_rate(options.learning_rate, step, options.steps);
        let episodes = sampler.sample(&mut rng)?;
        let loss_value;
        (model, loss_value) = update(
            model,
            &mut optimizer,
            options.objective,
            &episodes,
            (learning_rate, step),
            options.threads,
            device,
        )?;
        cpu_seconds += (thread_cpu_seconds() - update_started).max(0.0);

        done = step + 1;
        let stopping = stop_after == Some(done);
        let mut point = CurvePoint { step: done, loss: Some(loss_value), validation: None, cpu_seconds };
        if done % options.eval_every.max(1) == 0 || done == options.steps {
            let valid = model.valid();
            let score = validate(&valid)?;
            point.validation = score;
            let (method, fraction) = (&method.method, split.train_fraction);
            tracing::info!(%method, fraction, seed, step = done, loss = loss_value, validation = ?score, "validated");
            if let Some(score) = score.filter(|s| best.as_ref().is_none_or(|(_, b, _)| s > b)) {
                best = Some((done, score, model_file_bytes(&valid, config, prior.as_ref())?));
            }
        }
        let point_validation = point.validation;
        curve.push(point);
        if let Some(path) = checkpoint {
            let every = options.checkpoint_every;
            if (every > 0 && done % every == 0) || done == options.steps || stopping {
                Checkpoint {
                    fingerprint: fingerprint.clone(),
                    step: done,
                    rng_state: rng.state(),
                    model: record::model_bytes(&model).map_err(TrainError::Record)?,
                    optimizer: record::optimizer_bytes(&optimizer).map_err(TrainError::Record)?,
                    best: best.clone(),
                    curve: curve.clone(),
                }
                .save(path)?;
            }
        }
        progress.update(done, loss_value, point_validation);
        if stopping {
            break;
        }
    }

    let valid = model.valid();
    let (model, best_step, best_score) = match best {
        Some((step, score, bytes)) => (ModelFile::from_bytes(&bytes)?.to_model(&valid.device())?, step, Some(score)),
        None => (valid, done, None),
    };
    Ok(Trained {
        model,
        best_step,
        best_score,
        curve,
        steps: done,
        seconds: started.elapsed().as_secs_f64(),
        finished: done == options.steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{SyntheticSpec, synthetic_survey};
    use burn::tensor::Tensor;
    use burn_autodiff::Autodiff;
    use burn_ndarray::NdArray;

    type B = Autodiff<NdArray<f32>>;

    #[test]
    fn parts_are_contiguous_in_order_and_balanced() {
        let task =
            synthetic_survey(SyntheticSpec { groups: 5, questions: 12, dim: 4, clusters: 2, sharpness: 3.0, seed: 1 });
        let all: Vec<Episode> =
            (0..5).map(|g| super::super::sampler::episode(&task, g, &[0, 1], &[2, 3], None).unwrap()).collect();
        let sizes = |threads: usize| parts(&all, threads).iter().map(|p| p.len()).collect::<Vec<_>>();
        assert_eq!(sizes(1), [5]);
        assert_eq!(sizes(2), [3, 2]);
        assert_eq!(sizes(3), [2, 2, 1]);
        assert_eq!(sizes(8), [1, 1, 1, 1, 1], "never an empty part");
        assert_eq!(sizes(0), [5]);
        let joined: Vec<&Episode> = parts(&all, 3).into_iter().flatten().collect();
        assert!(joined.iter().zip(&all).all(|(a, b)| core::ptr::eq(*a, b)), "the episodes in order");
        assert_eq!(parts(&all[..0], 2).len(), 1);
    }

    #[test]
    fn one_thread_is_left_out_of_the_stored_options() {
        // Runs made before `threads` existed keep their fingerprints (and so resume).
        let one = serde_json::to_value(TrainOptions::default()).unwrap();
        assert!(one.get("threads").is_none(), "{one}");
        let two = serde_json::to_value(TrainOptions { threads: 2, ..TrainOptions::default() }).unwrap();
        assert_eq!(two["threads"], 2);
        let read: TrainOptions = serde_json::from_value(one).unwrap();
        assert_eq!(read.threads, 1);
    }

    /// The model's predictions on `batch` after one update of a fresh model on `episodes` with
    /// `threads`, and the update's loss.
    fn after_update(episodes: &[Episode], objective: Objective, threads: usize) -> (Vec<f32>, f64) {
        let device = Default::default();
        let config = GpoConfig::new(6).with_d_model(8).with_d_ff(8).with_n_layers(2);
        let model = config.init_seeded::<B>(&device, 3).unwrap();
        let mut optimizer = record::new_optimizer::<B>();
        let (model, loss) = update(model, &mut optimizer, objective, episodes, (1e-2, 0), threads, &device).unwrap();
        let batch = GpoBatch::<NdArray<f32>>::new(episodes, &device).unwrap();
        let mean: Tensor<NdArray<f32>, 2> = model.valid().forward(&batch).unwrap().mean;
        (mean.into_data().to_vec().unwrap(), loss)
    }

    #[test]
    fn an_update_on_threads_is_the_whole_batchs_update() {
        let task =
            synthetic_survey(SyntheticSpec { groups: 7, questions: 40, dim: 6, clusters: 2, sharpness: 3.0, seed: 5 });
        let groups: Vec<usize> = (0..7).collect();
        let questions: Vec<usize> = (0..40).collect();
        let sampling = Sampling::Code { min_context: 3, max_context: 8, min_target: 4, max_target: 9 };
        let sampler = EpisodeSampler::new(&task, &groups, &questions, sampling, None);
        let episodes = sampler.sample(&mut SplitMix64::new(11)).unwrap();
        for objective in [Objective::GaussianNll, Objective::CrossEntropy] {
            let batch = GpoBatch::<NdArray<f32>>::new(&episodes, &Default::default()).unwrap();
            let expected = match objective {
                Objective::GaussianNll => batch.n_real_targets(),
                Objective::CrossEntropy => batch.target_options().iter().map(Vec::len).sum(),
            };
            assert_eq!(objective.denominator(&episodes), expected);
            let (one, loss_one) = after_update(&episodes, objective, 1);
            for threads in [2, 3] {
                let (many, loss_many) = after_update(&episodes, objective, threads);
                // The parts' losses add up to the batch's (f32 sums in another order: ~1e-7
                // relative); the updated weights, hence the predictions, agree to f32 rounding
                // through Adam's first step (each weight moves by lr × g / (|g| + ε)).
                assert!(
                    (loss_one - loss_many).abs() <= 1e-5 * loss_one.abs(),
                    "{objective:?}, {threads}: {loss_one} vs {loss_many}"
                );
                let worst = one.iter().zip(&many).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{objective:?}, {threads} threads: predictions differ by {worst}");
                // The same thread count: the same bits.
                assert_eq!(after_update(&episodes, objective, threads), (many, loss_many));
            }
        }
    }
}
