//! `gpo run`: the whole experiment. For every (split, seed): train, select on validation,
//! evaluate GPO and the baselines on the same held-out contexts for every number of context
//! questions; then aggregate, report, plot and export.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::backend::{AutodiffBackend, Backend};
use gpo_core::rng::SplitMix64;
use gpo_core::{Gpo, GpoConfig, ModelFile, ModelMetadata, PopulationPrior};

use crate::config::{DataConfig, RunConfig};
use crate::eval::{
    EvalError, GpoPredictor, KnnGroups, NearestQuestion, Predictor, RidgePopulation, RidgeRewardModel, TrainGroupMean,
    Uniform, draw_episodes_with_targets, score,
};
use crate::fsutil::write_atomic;
use crate::method::Method;
use crate::pipeline::EmbeddingInfo;
use crate::prior::{PriorKind, SurveyPrior, TargetPriors};
use crate::protocol::Protocol;
use crate::report::{MethodScore, Results, RunResult, TrainedModel, summarise, write_report};
use crate::synthetic::{SyntheticSpec, synthetic_survey};
use crate::task::EmbeddedSurvey;
use crate::train::{ExperimentProgress, GpoMethod, Session, Split, SplitError, TrainError, TrainProgress, train};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data could not be loaded.
    #[error("{0}")]
    Data(String),
    /// The config asks for something the data cannot give.
    #[error("config: {0}")]
    Config(String),
    /// A split is impossible.
    #[error("split: {0}")]
    Split(#[from] SplitError),
    /// Training failed.
    #[error("training: {0}")]
    Train(#[from] TrainError),
    /// Evaluation failed.
    #[error("evaluation: {0}")]
    Eval(#[from] EvalError),
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

/// Loads the survey and its embeddings as the config says.
pub fn load_task(data: &DataConfig) -> Result<(EmbeddedSurvey, EmbeddingInfo), RunError> {
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
        DataConfig::Survey { .. } => crate::pipeline::load_embedded_survey(data).map_err(RunError::Data),
    }
}

/// Checks the evaluation sizes against the data: every held-out group needs more questions than
/// the largest number of context questions.
fn check_sizes(task: &EmbeddedSurvey, config: &RunConfig) -> Result<(), RunError> {
    let largest = config.context_sizes().last().copied().unwrap_or(0);
    let fewest = (0..task.n_groups()).map(|g| task.questions_of(g).len()).min().unwrap_or(0);
    if largest >= fewest {
        return Err(RunError::Config(format!(
            "k = {largest} context questions is not smaller than the {fewest} questions of the smallest group"
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
    fn run<B: AutodiffBackend>(
        &self,
        RunKey { protocol, fraction, seed }: RunKey,
        device: &B::Device,
        progress: &dyn TrainProgress,
    ) -> Result<RunOutcome<B::InnerBackend>, RunError> {
        let (task, config) = (self.task, self.config);
        let training = &config.training;
        let split = Split::with_protocol(
            task,
            protocol,
            config.evaluation.new_questions,
            fraction,
            seed,
            training.validation,
            training.validation_fraction,
        )?;
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
                Method::Gpo | Method::Variant(_) | Method::Selected => continue,
            });
        }
        let mut methods: Vec<&dyn Predictor> = predictors.iter().map(|p| p as &dyn Predictor).collect();
        methods.extend(baselines.iter().map(|b| b.as_ref()));
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
        if !no_prior.is_empty() {
            tracing::info!(
                protocol = protocol_name,
                fraction,
                seed,
                questions = no_prior.len(),
                "held-out groups' questions without a population prior: not scored"
            );
        }
        let context_pool = defined.defined_in(context_pool);
        let targets = targets.map(|t| defined.defined_in(t));
        let (context_pool, targets) = (context_pool.as_slice(), targets.as_deref());
        let mut scores = Vec::new();
        for k in config.context_sizes() {
            // Every method sees exactly the same contexts (and both protocols the same draw of
            // the same seed).
            let mut rng = SplitMix64::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(k as u64));
            let episodes = draw_episodes_with_targets(task, &split.test_groups, context_pool, targets, k, &mut rng);
            for method in &methods {
                let table = score(task, &episodes, &method.predict(task, &episodes)?);
                let per_group = episodes
                    .iter()
                    .zip(table.group_means())
                    .filter_map(|(e, m)| Some((task.survey.groups[e.group].name.clone(), m?)))
                    .collect();
                scores.push(MethodScore {
                    method: method.name(),
                    k,
                    micro: table.micro(),
                    macro_average: table.macro_average(),
                    per_group,
                });
            }
        }
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
        for baseline in Method::baselines(protocol) {
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
    let (task, info) = load_task(&config.data)?;
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

    progress.runs(runs_to_do.len());
    let job = RunJob { task: &task, config, methods: &methods, out_dir, resume };
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

/// `runs/<name>` under `root`.
pub fn run_dir(root: &Path, config: &RunConfig) -> PathBuf {
    root.join(&config.name)
}
