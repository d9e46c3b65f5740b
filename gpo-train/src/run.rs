//! `gpo run`: the whole experiment. For every (split, seed): train, select on validation,
//! evaluate GPO and the baselines on the same held-out contexts for every number of context
//! questions; then aggregate, report, plot and export.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use gpo_core::rng::SplitMix64;
use gpo_core::{ModelFile, ModelMetadata};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::config::{DataConfig, RunConfig, parse_dtype};
use crate::eval::{
    EvalError, GpoPredictor, KnnGroups, Predictor, RidgeRewardModel, TrainGroupMean, Uniform, draw_episodes, score,
};
use crate::fsutil::write_atomic;
use crate::pipeline::EmbeddingInfo;
use crate::report::{MethodScore, Results, RunResult, summarise, write_report};
use crate::synthetic::{SyntheticSpec, synthetic_survey};
use crate::task::EmbeddedSurvey;
use crate::train::{Session, Split, SplitError, TrainError, train};

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
    /// Writing results failed.
    #[error("writing {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
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
            let info = EmbeddingInfo { model: "synthetic".into(), template: "synthetic".into() };
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
    move |source| RunError::Io { path: path.display().to_string(), source }
}

/// Runs the experiment on backend `B`, writing into `out_dir` (`runs/<name>`). With `resume`,
/// training runs continue from their checkpoints (finished ones are not redone).
pub fn run_experiment<B: AutodiffBackend>(
    config: &RunConfig,
    out_dir: &Path,
    resume: bool,
    device: &B::Device,
) -> Result<Results, RunError> {
    let (task, info) = load_task(&config.data)?;
    check_sizes(&task, config)?;
    std::fs::create_dir_all(out_dir.join("checkpoints")).map_err(io(out_dir))?;
    let names =
        |groups: &[usize]| -> Vec<String> { groups.iter().map(|&g| task.survey.groups[g].name.clone()).collect() };
    let all_questions: Vec<usize> = (0..task.survey.questions.len()).collect();
    let ks = config.context_sizes();
    let training = &config.training;
    let model_config = config.model.gpo_config(task.dim);

    let progress = MultiProgress::new();
    let runs_bar =
        progress.add(ProgressBar::new((config.evaluation.splits.len() * config.evaluation.seeds.len()) as u64));
    runs_bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} runs {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    runs_bar.set_prefix("experiment");
    let steps_bar = progress.add(ProgressBar::new(training.steps as u64));
    steps_bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} updates {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    steps_bar.set_prefix("training");

    let mut runs = Vec::new();
    let mut export_model = None;
    let largest_split = config.evaluation.splits.iter().copied().fold(f64::MIN, f64::max);
    for &fraction in &config.evaluation.splits {
        for &seed in &config.evaluation.seeds {
            runs_bar.set_message(format!("split {:.0}% seed {seed}", fraction * 100.0));
            let split = Split::new(&task, fraction, seed, training.validation, training.validation_fraction)?;
            let checkpoint = out_dir.join("checkpoints").join(format!("split{:.0}-seed{seed}.ckpt", fraction * 100.0));
            tracing::info!(
                fraction,
                seed,
                train = split.train_groups.len(),
                test = split.test_groups.len(),
                "training"
            );
            let session = Session { checkpoint: Some(&checkpoint), resume, stop_after: None };
            let trained = train::<B>(&task, &split, &model_config, training, seed, session, device, &steps_bar)?;
            let gpo = GpoPredictor::new(&trained.model, &trained.model.device(), "gpo");
            let train_mean = TrainGroupMean::new(&split.train_groups);
            let knn = KnnGroups::new(&split.train_groups, config.evaluation.knn_temperature);
            let ridge = RidgeRewardModel::new(config.evaluation.ridge_lambda);
            let methods: [&dyn Predictor; 5] = [&gpo, &Uniform, &train_mean, &knn, &ridge];
            let mut scores = Vec::new();
            for &k in &ks {
                // Every method sees exactly the same contexts.
                let mut rng = SplitMix64::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(k as u64));
                let episodes = draw_episodes(&task, &split.test_groups, &all_questions, k, &mut rng);
                for method in methods {
                    let table = score(&task, &episodes, &method.predict(&task, &episodes)?);
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
            let headline = |m: &str| {
                scores
                    .iter()
                    .find(|s| s.method == m && s.k == config.evaluation.context_questions)
                    .and_then(|s| s.micro)
            };
            tracing::info!(fraction, seed, gpo = ?headline("gpo"), train_mean = ?headline("train_mean"), "evaluated");
            runs.push(RunResult {
                train_fraction: fraction,
                seed,
                train_groups: names(&split.train_groups),
                validation_groups: names(&split.validation_groups),
                test_groups: names(&split.test_groups),
                best_step: trained.best_step,
                validation_score: trained.best_score,
                train_seconds: trained.seconds,
                curve: trained.curve,
                scores,
            });
            // The exported model: the largest meta-training split, first seed.
            if fraction == largest_split && export_model.is_none() {
                let mut metadata = ModelMetadata::new(&info.model, task.dim, &info.template);
                metadata.dataset = task.survey.name.clone();
                metadata.seed = seed;
                metadata.training_steps = trained.best_step as u64;
                metadata.validation_score = trained.best_score;
                let dtype = parse_dtype(&config.export.dtype).unwrap_or(gpo_core::WeightDType::F16);
                export_model = Some(ModelFile::from_model(&trained.model, &model_config, metadata, dtype));
            }
            runs_bar.inc(1);
        }
    }
    steps_bar.finish_and_clear();
    runs_bar.finish_and_clear();

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
    let json = serde_json::to_vec_pretty(&results).map_err(|e| RunError::Data(e.to_string()))?;
    let results_path = out_dir.join("results.json");
    write_atomic(&results_path, &json).map_err(io(&results_path))?;
    write_report(&results, out_dir).map_err(io(out_dir))?;
    if let Some(model) = export_model {
        let path = out_dir.join("model.gpo");
        write_atomic(&path, &model.to_bytes()).map_err(io(&path))?;
    }
    Ok(results)
}

/// `runs/<name>` under `root`.
pub fn run_dir(root: &Path, config: &RunConfig) -> PathBuf {
    root.join(&config.name)
}
