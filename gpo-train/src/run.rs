//! `gpo run`: the whole experiment, as named steps. [`plan`] lists the runs (protocol, split,
//! seed); the LLM baselines' prompts are answered first ([`ask_llm`]); then each run trains every
//! GPO method ([`train_methods`]), makes them predictors over their priors ([`predictors`]),
//! scores them with the baselines on the same held-out contexts for every number of context
//! questions ([`crate::eval::score_methods`]) and selects on validation ([`select`]); last, the
//! runs are summarised and reported, and one run's selected model is exported ([`export`]).

mod steps;

use std::path::{Path, PathBuf};

use burn::tensor::backend::{AutodiffBackend, Backend};
use gpo_core::{Gpo, ModelFile, ModelFileError, ModelMetadata, PopulationPrior};

use crate::config::{EvalOptions, LlmOptions, RunConfig, TooFewQuestions};
use crate::eval::{EvalError, LlmAnswers, LlmRun, LlmRunEpisodes, TestEpisodes, ask_all, split_fingerprint};
use crate::fsutil::write_atomic;
use crate::llm::ChoiceScorer;
use crate::pipeline::{EmbeddingInfo, LoadError, load_task_with_progress};
use crate::protocol::Protocol;
use crate::report::{Results, TrainedModel, summarise, write_report};
use crate::split::SplitError;
use crate::task::EmbeddedSurvey;
use crate::train::{ExperimentProgress, GpoMethod, TrainError};
use steps::Experiment;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The config asks for more context questions than the data has (the command line adds the
    /// file).
    #[error(transparent)]
    Config(#[from] TooFewQuestions),
    /// A split is impossible.
    #[error("split: {0}")]
    Split(SplitError),
    /// Training failed.
    #[error("training: {0}")]
    Train(TrainError),
    /// Evaluation failed.
    #[error("evaluation: {0}")]
    Eval(EvalError),
    /// The exported model could not be encoded.
    #[error("export: {path}: {error}")]
    Export {
        /// The model file.
        path: PathBuf,
        /// Why (in the message, not a `source`).
        error: ModelFileError,
    },
    /// Writing results failed.
    #[error("writing {path}: {error}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause (in the message, not a `source`: a chain would print it twice).
        error: std::io::Error,
    },
    /// The results could not be encoded as JSON.
    #[error("encoding results.json: {0}")]
    Json(serde_json::Error),
}

gpo_core::cause_in_message!(RunError { Split(SplitError), Train(TrainError), Eval(EvalError) });

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |error| RunError::Io { path: path.to_path_buf(), error }
}

/// Which run of the experiment: a protocol, a meta-training fraction and a seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunKey {
    /// What the test measures.
    pub protocol: Protocol,
    /// Meta-training fraction of the groups.
    pub fraction: f64,
    /// Seed of the split, initialisation, sampling and contexts.
    pub seed: u64,
}

/// Step "plan": every (protocol, split, seed) of `evaluation`, and the run whose selected model
/// is exported: the first protocol's (a model for new groups when `groups` is run), largest
/// split, first seed.
pub fn plan(evaluation: &EvalOptions) -> (Vec<RunKey>, Option<usize>) {
    let runs: Vec<RunKey> = (evaluation.protocols.iter())
        .flat_map(|&protocol| {
            let seeds = move |fraction| evaluation.seeds.iter().map(move |&seed| RunKey { protocol, fraction, seed });
            evaluation.splits.iter().flat_map(move |&fraction| seeds(fraction))
        })
        .collect();
    let largest = evaluation.splits.iter().copied().fold(f64::MIN, f64::max);
    let export = runs.iter().position(|r| r.protocol == evaluation.protocols[0] && r.fraction == largest);
    (runs, export)
}

/// Step "export": the model file of a run's selected model.
fn export<B: Backend>(
    task: &EmbeddedSurvey,
    info: &EmbeddingInfo,
    seed: u64,
    (model, method, summary, prior): (Gpo<B>, GpoMethod, TrainedModel, Option<PopulationPrior>),
    dtype: gpo_core::WeightDType,
) -> Result<ModelFile, ModelFileError> {
    let mut metadata = ModelMetadata::new(&info.model, task.dim, info.template);
    metadata.dataset = task.survey.name.clone();
    metadata.seed = seed;
    metadata.method = summary.method.name();
    metadata.training_steps = summary.best_step as u64;
    metadata.validation_score = summary.validation_score;
    ModelFile::from_model(&model, &method.config, metadata, dtype, prior)
}

/// Runs the experiment on backend `B`, writing into `out_dir` (`runs/<name>`), with up to `jobs`
/// (split, seed) runs at a time (each single-threaded, so the results do not depend on `jobs`).
/// With `resume`, training runs continue from their checkpoints (finished ones are not redone).
/// Progress goes to `progress` (the CLI draws bars from it).
pub fn run_experiment<B: AutodiffBackend>(
    config: &RunConfig,
    out_dir: &Path,
    resume: bool,
    jobs: usize,
    device: &B::Device,
    progress: &dyn ExperimentProgress,
) -> Result<Results, RunError> {
    let (task, info) = load_task_with_progress(&config.data, progress)?;
    config.check_data(&task)?;
    std::fs::create_dir_all(out_dir.join("checkpoints")).map_err(io(out_dir))?;
    // What a run killed while writing model.gpo, results.json or the report left behind
    // (checkpoints clean their own folder when they resume).
    for file in crate::fsutil::remove_stale_temporaries_in(out_dir).map_err(io(out_dir))? {
        tracing::info!(path = %file.display(), "removed a stale temporary file");
    }
    let methods = config.methods(task.dim);
    let (runs, export_run) = plan(&config.evaluation);
    let rules = config.nearest_questions.candidates();
    let mut experiment = Experiment {
        task: &task,
        methods: &methods,
        split: &config.split,
        rules: &rules,
        evaluation: &config.evaluation,
        out_dir,
        resume,
        llm: None,
    };
    // The LLM baselines first: every distinct prompt of every run, asked once.
    let llm = match &config.llm {
        Some(options) => Some(ask_llm::<B>(&experiment, options, &runs, jobs, device, progress)?),
        None => None,
    };
    experiment.llm = config.llm.as_ref().zip(llm.as_ref().map(|(answers, _)| answers));

    progress.runs(runs.len());
    let outcomes = crate::workers::in_order(
        &runs,
        jobs,
        || progress.worker(),
        |worker, &key| experiment.run::<B>(key, device, worker.as_ref()),
        || progress.run_done(),
    );
    let mut results = Vec::new();
    let mut model = None;
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let Some(outcome) = outcome else { continue };
        let (result, kept) = outcome?;
        if let Some(kept) = kept.filter(|_| Some(index) == export_run) {
            let file = export(&task, &info, result.seed, kept, config.export.dtype);
            model = Some(file.map_err(|error| RunError::Export { path: out_dir.join("model.gpo"), error })?);
        }
        results.push(result);
    }
    let sweep = summarise(&results);
    let summary = sweep.iter().filter(|e| e.k == config.evaluation.context_questions).cloned().collect();
    let results = Results {
        name: config.name.clone(),
        dataset: task.survey.name.clone(),
        metric: task.metric(),
        n_groups: task.n_groups(),
        n_questions: task.survey.questions.len(),
        embedding_dim: task.dim,
        config: config.clone(),
        runs: results,
        summary,
        sweep,
        llm: llm.map(|(_, run)| run),
    };
    // The model first and results.json last: a run that has results.json is complete.
    if let Some(model) = model {
        let path = out_dir.join("model.gpo");
        let bytes = model.to_bytes().map_err(|error| RunError::Export { path: path.clone(), error })?;
        write_atomic(&path, &bytes).map_err(io(&path))?;
    }
    write_report(&results, out_dir).map_err(io(out_dir))?;
    let json = serde_json::to_vec_pretty(&results).map_err(RunError::Json)?;
    let path = out_dir.join("results.json");
    write_atomic(&path, &json).map_err(io(&path))?;
    Ok(results)
}

/// Asks the language model of `options` every prompt that the LLM baselines of `runs` will score
/// (at the headline number of context questions), on `threads` threads of backend `B`, keeping
/// the answers in the run's folder (`llm-answers.bin`) so that a resumed run asks only what is
/// missing.
fn ask_llm<B: AutodiffBackend>(
    experiment: &Experiment,
    options: &LlmOptions,
    runs: &[RunKey],
    threads: usize,
    device: &B::Device,
    progress: &dyn ExperimentProgress,
) -> Result<(LlmAnswers, LlmRun), RunError> {
    let (task, evaluation) = (experiment.task, experiment.evaluation);
    let scorer =
        ChoiceScorer::<B::InnerBackend>::open(&options.model, device).map_err(EvalError::from)?.with_threads(threads);
    let (k, max_targets) = (evaluation.context_questions, evaluation.max_targets);
    let mut episodes = Vec::new();
    for &key in runs {
        let split = experiment.split(key)?;
        let drawn = TestEpisodes::draw(task, &split, key.seed, &[k], max_targets)?;
        let (train, validation) = TestEpisodes::meta_training(task, &split, key.seed, k, max_targets);
        episodes.push(LlmRunEpisodes {
            seed: key.seed,
            split: split_fingerprint(task, &split),
            test: drawn.per_k.into_iter().flat_map(|(_, e)| e).collect(),
            train,
            validation,
        });
    }
    let store = (experiment.out_dir.join("llm-answers.bin"), experiment.resume);
    Ok(ask_all::<B>(task, &scorer, threads, options, &episodes, (&store.0, store.1), progress)?)
}

/// `runs/<name>` under `root`.
pub fn run_dir(root: &Path, config: &RunConfig) -> PathBuf {
    root.join(&config.name)
}
