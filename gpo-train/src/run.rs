//! `gpo run`: the whole experiment. For every (split, seed): train, select on validation,
//! evaluate GPO and the baselines on the same held-out contexts for every number of context
//! questions; then aggregate, report, plot and export.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::backend::{AutodiffBackend, Backend};
use gpo_core::rng::SplitMix64;
use gpo_core::{Gpo, GpoConfig, ModelFile, ModelMetadata, PopulationPrior};

use crate::config::{DataConfig, LlmOptions, RunConfig};
use crate::embed::EmbedProgress;
use crate::eval::context::measure as measure_context;
use crate::eval::{
    EvalEpisode, EvalError, GpoPredictor, KnnGroups, LlmAnswers, LlmPredictor, LlmPrompting, NearestQuestion,
    Predictor, RidgePopulation, RidgeRewardModel, TrainGroupMean, Uniform, draw_episodes_with_targets, fnv1a, score,
};
use crate::fsutil::write_atomic;
use crate::llm::ChoiceScorer;
use crate::method::Method;
use crate::pipeline::EmbeddingInfo;
use crate::prior::{PriorKind, SurveyPrior, TargetPriors};
use crate::protocol::Protocol;
use crate::report::{LlmMethodRun, LlmRun, MethodScore, Results, RunResult, TrainedModel, summarise, write_report};
use crate::synthetic::{SyntheticSpec, synthetic_survey};
use crate::task::EmbeddedSurvey;
use crate::train::{ExperimentProgress, GpoMethod, Session, Split, SplitError, TrainError, TrainProgress, train};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data could not be loaded.
    #[error("{0}")]
    Data(String),
    /// The config asks for something the data cannot give (the table and key are named; the
    /// command line adds the file).
    #[error("{0}")]
    Config(String),
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
    #[error("export: {0}")]
    Export(String),
    /// Writing results failed.
    #[error("writing {path}: {error}")]
    Io {
        /// File.
        path: String,
        /// Cause (in the message, not a `source`: a chain would print it twice).
        error: std::io::Error,
    },
}

gpo_core::cause_in_message!(RunError {
    Split(SplitError),
    Train(TrainError),
    Eval(EvalError),
});

/// Loads the survey and its embeddings as the config says (embedding missing texts silently:
/// [`load_task_with_progress`] reports them).
pub fn load_task(data: &DataConfig) -> Result<(EmbeddedSurvey, EmbeddingInfo), RunError> {
    load_task_with_progress(data, &())
}

/// [`load_task`], reporting the embedding of texts missing from the cache to `progress`.
pub fn load_task_with_progress(
    data: &DataConfig,
    progress: &dyn EmbedProgress,
) -> Result<(EmbeddedSurvey, EmbeddingInfo), RunError> {
    match data {
        DataConfig::Synthetic { groups, questions, dim, clusters, sharpness, seed } => {
            let spec = SyntheticSpec {
                groups: *groups,
                questions: *questions,
                dim: *dim,
                clusters: *clusters,
                sharpness: *sharpness,
                seed: *seed,
            };
            let info = EmbeddingInfo { model: "synthetic".into(), template: None };
            Ok((synthetic_survey(spec), info))
        }
        DataConfig::Survey { .. } => crate::pipeline::load_embedded_survey(data, progress).map_err(RunError::Data),
    }
}

/// Checks the evaluation sizes against the data: every held-out group needs more questions than
/// the largest number of context questions.
fn check_sizes(task: &EmbeddedSurvey, config: &RunConfig) -> Result<(), RunError> {
    let largest = config.context_sizes().last().copied().unwrap_or(0);
    let smallest = (0..task.n_groups()).map(|g| (task.questions_of(g).len(), g)).min();
    if let Some((fewest, g)) = smallest.filter(|&(fewest, _)| largest >= fewest) {
        let keys = if config.evaluation.sweep.contains(&largest) {
            "context_questions and sweep"
        } else {
            "context_questions"
        };
        return Err(RunError::Config(format!(
            "[evaluation] {keys}: k = {largest} context questions is not smaller than the {fewest} questions of the \
             smallest group, `{}`",
            task.survey.groups[g].name
        )));
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |error| RunError::Io { path: path.display().to_string(), error }
}

/// One (protocol, split, seed) of the experiment: train every GPO method, then score them and the
/// baselines on the same held-out contexts for every number of context questions.
struct RunJob<'a> {
    task: &'a EmbeddedSurvey,
    config: &'a RunConfig,
    methods: &'a [GpoMethod],
    out_dir: &'a Path,
    resume: bool,
    /// The LLM baselines' options and their answers to every prompt of every run.
    llm: Option<(&'a LlmOptions, &'a LlmAnswers)>,
}

/// The held-out groups' episodes of a run for every number of context questions, and the
/// questions no method is scored on.
struct TestEpisodes {
    per_k: Vec<(usize, Vec<EvalEpisode>)>,
    no_prior: Vec<usize>,
    /// The questions contexts are drawn from.
    context_pool: Vec<usize>,
}

/// Keeps at most `max` targets of each episode: the first in a fixed order of the questions, by
/// the FNV-1a hash of their keys ([`fnv1a`]).
fn limit_targets(task: &EmbeddedSurvey, episodes: &mut [EvalEpisode], max: usize) {
    for e in episodes {
        e.targets.sort_by_key(|&q| (fnv1a(&task.survey.questions[q].key), q));
        e.targets.truncate(max);
        e.targets.sort_unstable();
    }
}

/// Which run of the experiment: a protocol, a meta-training fraction and a seed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RunKey {
    protocol: Protocol,
    fraction: f64,
    seed: u64,
}

/// The model with the best validation score of a (split, seed), with the prior it reads at test
/// time (over the meta-training groups).
struct BestModel<B: Backend> {
    model: Gpo<B>,
    config: GpoConfig,
    summary: TrainedModel,
    prior: Option<PopulationPrior>,
}

/// What one (split, seed) gives: its results and its best model.
struct RunOutcome<B: Backend> {
    result: RunResult,
    best: Option<BestModel<B>>,
}

impl RunJob<'_> {
    /// The split of a run.
    fn split(&self, RunKey { protocol, fraction, seed }: RunKey) -> Result<Split, RunError> {
        let training = &self.config.training;
        Ok(Split::with_protocol(
            self.task,
            protocol,
            self.config.evaluation.new_questions,
            fraction,
            seed,
            training.validation,
            training.validation_fraction,
        )?)
    }

    /// The episodes every method of a run is scored on, for every number of context questions.
    fn test_episodes(&self, split: &Split, seed: u64) -> Result<TestEpisodes, RunError> {
        let (task, config) = (self.task, self.config);
        // Validation groups are meta-training data too (see `run`).
        let meta_train = split.meta_train_groups();
        let seen = &split.seen_questions;
        // Every method is scored on the same items: the held-out groups' questions with a population
        // prior (all of them on OpinionQA; on GlobalOpinionQA not those that only held-out
        // countries answered and whose option count no answered question has).
        let defined = SurveyPrior::over(task, PriorKind::TrainMean, &meta_train, seen).map_err(EvalError::from)?;
        let (context_pool, targets) = split.test_pools();
        let no_prior: Vec<usize> = targets
            .unwrap_or(context_pool)
            .iter()
            .copied()
            .filter(|&q| {
                !defined.is_defined(q, None, TargetPriors::Answered)
                    && split.test_groups.iter().any(|&g| task.answer(g, q).is_some())
            })
            .collect();
        let context_pool = defined.defined_in(context_pool);
        let targets = targets.map(|t| defined.defined_in(t));
        let (pool, targets) = (context_pool.as_slice(), targets.as_deref());
        let per_k = config
            .context_sizes()
            .into_iter()
            .map(|k| {
                // Every method sees exactly the same contexts (and both protocols the same draw of
                // the same seed).
                let mut rng = SplitMix64::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(k as u64));
                let mut episodes = draw_episodes_with_targets(task, &split.test_groups, pool, targets, k, &mut rng);
                if let Some(max) = config.evaluation.max_targets {
                    limit_targets(task, &mut episodes, max);
                }
                (k, episodes)
            })
            .collect();
        Ok(TestEpisodes { per_k, no_prior, context_pool })
    }

    fn run<B: AutodiffBackend>(
        &self,
        RunKey { protocol, fraction, seed }: RunKey,
        device: &B::Device,
        progress: &dyn TrainProgress,
    ) -> Result<RunOutcome<B::InnerBackend>, RunError> {
        let (task, config) = (self.task, self.config);
        let split = self.split(RunKey { protocol, fraction, seed })?;
        let protocol_name = protocol.name();
        tracing::info!(
            protocol = protocol_name,
            fraction,
            seed,
            train = split.train_groups.len(),
            test = split.test_groups.len(),
            new_questions = split.new_questions.len(),
            "training"
        );
        let mut trained = Vec::new();
        for method in self.methods {
            // The `groups` protocol keeps the names of runs made before protocols existed.
            let tag = match protocol {
                Protocol::Groups => String::new(),
                Protocol::Questions => format!("{protocol_name}-"),
            };
            let name = format!("{tag}split{:.0}-seed{seed}-{}.ckpt", fraction * 100.0, method.name);
            let checkpoint = self.out_dir.join("checkpoints").join(name);
            let session = Session { checkpoint: Some(&checkpoint), resume: self.resume, stop_after: None };
            let run = train::<B>(task, &split, method, seed, session, device, progress)?;
            let summary = TrainedModel {
                method: method.name.clone(),
                best_step: run.best_step,
                validation_score: run.best_score,
                train_seconds: run.seconds,
                curve: run.curve,
            };
            trained.push((method, run.model, summary));
        }

        // Validation groups are meta-training data too: held out of gradient updates for model
        // selection, but available to the baselines and to the priors at test time, with their
        // answers to every seen question (validation questions included).
        let meta_train = split.meta_train_groups();
        let seen = &split.seen_questions;
        let priors: Vec<Option<PopulationPrior>> = trained
            .iter()
            .map(|(method, _, _)| Ok(method.population_prior(task, &meta_train, seen)?.map(|p| p.prior().clone())))
            .collect::<Result<_, EvalError>>()?;
        let predictors: Vec<GpoPredictor<B::InnerBackend>> = trained
            .iter()
            .zip(&priors)
            .map(|((method, model, _), prior)| GpoPredictor::new(model.clone(), &method.name, prior.clone()))
            .collect::<Result<_, _>>()?;
        let evaluation = &config.evaluation;
        let mut baselines: Vec<Box<dyn Predictor>> = Vec::new();
        for baseline in Method::baselines(protocol) {
            baselines.push(match baseline {
                Method::Uniform => Box::new(Uniform),
                Method::TrainMean => Box::new(TrainGroupMean::new(task, &meta_train, seen)?),
                Method::NearestQuestion => Box::new(NearestQuestion::new(task, &meta_train, seen)?),
                Method::RidgePopulation => {
                    Box::new(RidgePopulation::new(task, &meta_train, seen, evaluation.ridge_lambda)?)
                }
                Method::KnnGroups => Box::new(KnnGroups::new(task, &meta_train, seen, evaluation.knn_temperature)?),
                Method::RidgeRm => Box::new(RidgeRewardModel::new(evaluation.ridge_lambda)),
                Method::Gpo | Method::Variant(_) | Method::Selected | Method::Lm(_) => continue,
            });
        }
        let mut methods: Vec<&dyn Predictor> = predictors.iter().map(|p| p as &dyn Predictor).collect();
        methods.extend(baselines.iter().map(|b| b.as_ref()));
        let TestEpisodes { per_k, no_prior, context_pool } = self.test_episodes(&split, seed)?;
        if !no_prior.is_empty() {
            tracing::info!(
                protocol = protocol_name,
                fraction,
                seed,
                questions = no_prior.len(),
                "held-out groups' questions without a population prior: not scored"
            );
        }
        let llm: Vec<LlmPredictor> = match self.llm {
            Some((options, answers)) => options
                .methods
                .iter()
                .map(|&method| LlmPredictor::new(LlmPrompting { method, format: options.prompt, seed }, answers))
                .collect(),
            None => Vec::new(),
        };
        let mut scores = Vec::new();
        let mut context_use = Vec::new();
        for (k, episodes) in &per_k {
            // The LLM baselines answer at the headline k only (their prompts are the costly part).
            let llm_here = llm.iter().filter(|_| *k == evaluation.context_questions).map(|p| p as &dyn Predictor);
            for (i, method) in methods.iter().copied().chain(llm_here).enumerate() {
                let predictions = method.predict(task, episodes)?;
                // Whether the method reads the context (not the LLM baselines, which come after
                // `methods`: their prompts are the costly part), at the headline k.
                if *k == evaluation.context_questions && i < methods.len() {
                    context_use.push(measure_context(task, method, episodes, &predictions, &context_pool, *k)?);
                }
                let table = score(task, episodes, &predictions);
                let per_group = episodes
                    .iter()
                    .zip(table.group_means())
                    .filter_map(|(e, m)| Some((task.survey.groups[e.group].name.clone(), m?)))
                    .collect();
                scores.push(MethodScore {
                    method: method.name(),
                    k: *k,
                    micro: table.micro(),
                    macro_average: table.macro_average(),
                    per_group,
                });
            }
        }
        // Whether each method reads the context (not the LLM baselines: their prompts are the
        // costly part), at the headline k.
        // Selection on validation only: the GPO method with the best validation score is both
        // `selected_gpo` in the scores and the run's best model.
        let best_index = trained
            .iter()
            .enumerate()
            .max_by(|a, b| {
                let score = |t: &TrainedModel| t.validation_score.unwrap_or(f64::NEG_INFINITY);
                score(&a.1.2).total_cmp(&score(&b.1.2))
            })
            .map(|(i, _)| i);
        let selected =
            best_index.filter(|&i| trained[i].2.validation_score.is_some()).map(|i| trained[i].0.name.clone());
        if let Some(name) = &selected {
            let copies: Vec<MethodScore> = scores
                .iter()
                .filter(|s| &s.method == name)
                .map(|s| MethodScore { method: Method::Selected.name(), ..s.clone() })
                .collect();
            scores.extend(copies);
        }
        let headline = |m: &str| {
            scores.iter().find(|s| s.method == m && s.k == config.evaluation.context_questions).and_then(|s| s.micro)
        };
        for method in self.methods {
            let score = headline(&method.name);
            tracing::info!(protocol = protocol_name, fraction, seed, method = %method.name, score = ?score, "evaluated");
        }
        for baseline in
            Method::baselines(protocol).into_iter().chain(llm.iter().filter_map(|p| Method::parse(&p.name())))
        {
            let score = headline(&baseline.name());
            tracing::info!(protocol = protocol_name, fraction, seed, method = %baseline, score = ?score, "evaluated");
        }
        drop(predictors);

        let names =
            |groups: &[usize]| -> Vec<String> { groups.iter().map(|&g| task.survey.groups[g].name.clone()).collect() };
        let models = trained.iter().map(|(_, _, summary)| summary.clone()).collect();
        let best =
            best_index.and_then(|i| trained.into_iter().zip(priors).nth(i)).map(|((method, model, summary), prior)| {
                BestModel { model, config: method.config.clone(), summary, prior }
            });
        Ok(RunOutcome {
            result: RunResult {
                protocol,
                train_fraction: fraction,
                seed,
                train_groups: names(&split.train_groups),
                new_questions: split.new_questions.iter().map(|&q| task.survey.questions[q].key.clone()).collect(),
                no_prior_questions: no_prior.iter().map(|&q| task.survey.questions[q].key.clone()).collect(),
                validation_groups: names(&split.validation_groups),
                test_groups: names(&split.test_groups),
                models,
                selected,
                scores,
                context_use,
            },
            best,
        })
    }
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
    check_sizes(&task, config)?;
    std::fs::create_dir_all(out_dir.join("checkpoints")).map_err(io(out_dir))?;
    // What a run killed while writing model.gpo, results.json or the report left behind
    // (checkpoints clean their own folder when they resume).
    for file in crate::fsutil::remove_stale_temporaries_in(out_dir).map_err(io(out_dir))? {
        tracing::info!(path = %file.display(), "removed a stale temporary file");
    }
    let methods = config.methods(task.dim);
    let evaluation = &config.evaluation;
    let runs_to_do: Vec<RunKey> = evaluation
        .protocols
        .iter()
        .flat_map(|&protocol| {
            evaluation.splits.iter().flat_map(move |&fraction| {
                evaluation.seeds.iter().map(move |&seed| RunKey { protocol, fraction, seed })
            })
        })
        .collect();
    // The exported model: the first protocol (a model for new groups when `groups` is run), the
    // largest meta-training split, first seed.
    let largest_split = evaluation.splits.iter().copied().fold(f64::MIN, f64::max);
    let export_run =
        runs_to_do.iter().position(|r| r.protocol == evaluation.protocols[0] && r.fraction == largest_split);

    // The LLM baselines first: every distinct prompt of every run, asked once.
    let llm_answers = match &config.llm {
        Some(options) => {
            let job = RunJob { task: &task, config, methods: &methods, out_dir, resume, llm: None };
            Some(ask_llm::<B::InnerBackend>(&job, options, &runs_to_do, jobs, device, progress)?)
        }
        None => None,
    };
    let llm = config.llm.as_ref().zip(llm_answers.as_ref().map(|(answers, _)| answers));

    progress.runs(runs_to_do.len());
    let job = RunJob { task: &task, config, methods: &methods, out_dir, resume, llm };
    let next = AtomicUsize::new(0);
    type Slot<B> = Option<Result<RunOutcome<B>, RunError>>;
    let outcomes: Mutex<Vec<Slot<B::InnerBackend>>> = Mutex::new((0..runs_to_do.len()).map(|_| None).collect());
    let workers = jobs.clamp(1, runs_to_do.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (job, next, outcomes, runs_to_do) = (&job, &next, &outcomes, &runs_to_do);
            scope.spawn(move || {
                let worker = progress.worker();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&key) = runs_to_do.get(index) else { break };
                    let outcome = job.run::<B>(key, device, worker.as_ref());
                    let failed = outcome.is_err();
                    if let Ok(mut slots) = outcomes.lock() {
                        slots[index] = Some(outcome);
                    }
                    progress.run_done();
                    if failed {
                        // Let no worker start another run.
                        next.store(runs_to_do.len(), Ordering::SeqCst);
                    }
                }
            });
        }
    });

    let mut runs = Vec::new();
    let mut export_model = None;
    let outcomes = outcomes.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let Some(outcome) = outcome else { continue };
        let RunOutcome { result, best } = outcome?;
        if Some(index) == export_run
            && let Some(BestModel { model, config: model_config, summary, prior }) = best
        {
            let mut metadata = ModelMetadata::new(&info.model, task.dim, info.template);
            metadata.dataset = task.survey.name.clone();
            metadata.seed = result.seed;
            metadata.method = summary.method.clone();
            metadata.training_steps = summary.best_step as u64;
            metadata.validation_score = summary.validation_score;
            let dtype = config.export.dtype;
            export_model = Some(ModelFile::from_model(&model, &model_config, metadata, dtype, prior));
        }
        runs.push(result);
    }

    let sweep = summarise(&runs);
    let summary = sweep.iter().filter(|e| e.k == config.evaluation.context_questions).cloned().collect();
    let results = Results {
        name: config.name.clone(),
        dataset: task.survey.name.clone(),
        metric: task.metric(),
        n_groups: task.n_groups(),
        n_questions: task.survey.questions.len(),
        embedding_dim: task.dim,
        config: config.clone(),
        runs,
        summary,
        sweep,
        llm: llm_answers.map(|(_, run)| run),
    };
    // The model first and results.json last: a run that has results.json is complete.
    if let Some(model) = export_model {
        let path = out_dir.join("model.gpo");
        let bytes = model.to_bytes().map_err(|e| RunError::Export(format!("{}: {e}", path.display())))?;
        write_atomic(&path, &bytes).map_err(io(&path))?;
    }
    write_report(&results, out_dir).map_err(io(out_dir))?;
    let json = serde_json::to_vec_pretty(&results).map_err(|e| RunError::Data(e.to_string()))?;
    let results_path = out_dir.join("results.json");
    write_atomic(&results_path, &json).map_err(io(&results_path))?;
    Ok(results)
}

/// Asks the language model of `options` every prompt that the LLM baselines of `runs` will
/// score (each distinct prompt once, method after method), on `threads` threads of backend `B`.
fn ask_llm<B: Backend>(
    job: &RunJob,
    options: &LlmOptions,
    runs: &[RunKey],
    threads: usize,
    device: &B::Device,
    progress: &dyn ExperimentProgress,
) -> Result<(LlmAnswers, LlmRun), RunError> {
    let task = job.task;
    let k = job.config.evaluation.context_questions;
    let scorer = ChoiceScorer::<B>::open(&options.model, device).map_err(EvalError::from)?.with_threads(threads);
    let mut episodes = Vec::new();
    for &key in runs {
        let split = job.split(key)?;
        let per_k = job.test_episodes(&split, key.seed)?.per_k;
        episodes.extend(per_k.into_iter().filter(|(kk, _)| *kk == k).flat_map(|(_, e)| e).map(|e| (key.seed, e)));
    }
    // Answers are kept in the run's folder after each method, so a resumed run asks only what
    // is missing.
    let path = job.out_dir.join("llm-answers.bin");
    let (model, format) = (scorer.name().to_owned(), options.prompt);
    let mut answers = match job.resume && path.exists() {
        true => {
            let bytes = crate::fsutil::read_capped(&path, crate::fsutil::MAX_CHECKPOINT_BYTES).map_err(io(&path))?;
            LlmAnswers::from_bytes(&bytes, &model, format)
                .map_err(|e| RunError::Data(format!("{}: {e}", path.display())))?
        }
        false => LlmAnswers::new(),
    };
    for &method in &options.methods {
        let mut prompts = Vec::new();
        for (seed, episode) in &episodes {
            prompts.extend(LlmPrompting { method, format, seed: *seed }.prompts(task, episode)?);
        }
        let asked = prompts.len();
        let prompts = answers.missing(prompts);
        let name = Method::Lm(method).name();
        if prompts.is_empty() && answers.costs.iter().any(|c| c.method == name) {
            tracing::info!(method = %name, path = %path.display(), "language model: every answer kept from before");
            continue;
        }
        let tokens = scorer.run_tokens(&prompts).map_err(EvalError::from)?;
        tracing::info!(method = %name, prompts = prompts.len(), asked, tokens, "language model: prompting");
        progress.lm_start(&name, tokens);
        let start = std::time::Instant::now();
        let distinct = prompts.len();
        answers.ask(&scorer, prompts, &|n| progress.lm_tokens(n))?;
        let seconds = start.elapsed().as_secs_f64();
        progress.lm_done();
        tracing::info!(method = %name, seconds, tokens_per_second = tokens as f64 / seconds.max(1e-9), "language model: done");
        // A resumed method's cost adds to what it had cost before.
        let before = answers.costs.iter().position(|c| c.method == name).map(|i| answers.costs.remove(i));
        let (run_before, tokens_before, seconds_before) =
            before.map_or((0, 0, 0.0), |c| (c.prompts_run, c.tokens, c.seconds));
        answers.costs.push(LlmMethodRun {
            method: name,
            prompts_scored: asked,
            prompts_run: run_before + distinct,
            tokens: tokens_before + tokens,
            seconds: seconds_before + seconds,
            threads,
        });
        let bytes = answers.to_bytes(&model, format).map_err(RunError::Data)?;
        write_atomic(&path, &bytes).map_err(io(&path))?;
    }
    let methods = options
        .methods
        .iter()
        .filter_map(|&m| answers.costs.iter().find(|c| c.method == Method::Lm(m).name()).cloned())
        .collect();
    let run = LlmRun { model, prompt: format, methods };
    Ok((answers, run))
}

/// `runs/<name>` under `root`.
pub fn run_dir(root: &Path, config: &RunConfig) -> PathBuf {
    root.join(&config.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{LlmError, gguf::GgufError};
    use gpo_core::model::ConfigError;

    /// The reported `dim must be positive` three times: an error that prints its cause must not
    /// also return it as `source`, or the binary's `{:#}` chain prints it again.
    #[test]
    fn the_command_line_prints_each_cause_once() {
        let zero = || ConfigError::Zero { field: "d_model" };
        let errors: Vec<anyhow::Error> = vec![
            RunError::from(TrainError::from(zero())).into(),
            RunError::from(TrainError::from(EvalError::from(gpo_core::PredictError::from(
                gpo_core::ModelFileError::from(zero()),
            ))))
            .into(),
            RunError::from(EvalError::from(gpo_core::PriorError::Neighbours(0))).into(),
            LlmError::gguf(Path::new("m.gguf"))(GgufError::Header("bad magic".into())).into(),
        ];
        for (error, cause) in errors.iter().zip(["must be positive", "must be positive", "neighbour", "bad magic"]) {
            let printed = format!("{error:#}");
            assert_eq!(printed.matches(cause).count(), 1, "{printed}");
        }
    }
}
