//! The steps of one run of an experiment: train, predict, score, select.

use std::path::Path;

use burn::tensor::backend::{AutodiffBackend, Backend};
use gpo_core::{Gpo, PopulationPrior};

use super::{RunError, RunKey};
use crate::config::{EvalOptions, LlmOptions};
use crate::eval::{
    BaselineOptions, EvalError, GpoPredictor, LlmAnswers, LlmPredictor, LlmPrompting, MethodScore, Predictor,
    TestEpisodes, baselines, score_methods, split_fingerprint, trained_fingerprint,
};
use crate::method::Method;
use crate::prior::{NeighbourRule, select_rule};
use crate::protocol::Protocol;
use crate::report::{RunResult, TrainedModel};
use crate::split::{Split, SplitError, SplitOptions};
use crate::task::EmbeddedSurvey;
use crate::train::{GpoMethod, Session, TrainProgress, train};

/// What every run of an experiment reads.
pub(super) struct Experiment<'a> {
    pub(super) task: &'a EmbeddedSurvey,
    pub(super) methods: &'a [GpoMethod],
    pub(super) split: &'a SplitOptions,
    /// The candidates for the rule for new questions' priors.
    pub(super) rules: &'a [NeighbourRule],
    pub(super) evaluation: &'a EvalOptions,
    /// The run's folder and whether training continues from its checkpoints.
    pub(super) out_dir: &'a Path,
    pub(super) resume: bool,
    /// The LLM baselines' options and their answers to every prompt of every run.
    pub(super) llm: Option<(&'a LlmOptions, &'a LlmAnswers)>,
}

/// A run's trained GPO methods: each model with its training summary.
type TrainedMethods<B> = Vec<(Gpo<B>, TrainedModel)>;

/// What one run gives: its results and the model its selection kept, with the prior that model
/// reads at test time (over the meta-training groups).
pub(super) type RunOutcome<B> = (RunResult, Option<(Gpo<B>, GpoMethod, TrainedModel, Option<PopulationPrior>)>);

impl Experiment<'_> {
    pub(super) fn split(&self, key: RunKey) -> Result<Split, SplitError> {
        Split::new(self.task, key.protocol, key.fraction, key.seed, self.split)
    }

    /// One run: train, predict, score, select.
    pub(super) fn run<B: AutodiffBackend>(
        &self,
        key: RunKey,
        device: &B::Device,
        progress: &dyn TrainProgress,
    ) -> Result<RunOutcome<B::InnerBackend>, RunError> {
        let (task, evaluation) = (self.task, self.evaluation);
        let mut split = self.split(key)?;
        let (protocol, fraction, seed) = (key.protocol.name(), key.fraction, key.seed);
        // Step "rule": the rule for new questions' priors, on the meta-training data.
        let rules = select_rule(task, &split.meta_train_groups(), &split.seen_questions, self.rules)
            .map_err(|e| RunError::Eval(e.into()))?;
        split.neighbour_rule = rules.selected;
        tracing::info!(protocol, fraction, seed, rule = %rules.selected, "rule for new questions");
        let (train, test) = (split.train_groups.len(), split.test_groups.len());
        tracing::info!(protocol, fraction, seed, train, test, new_questions = split.new_questions.len(), "training");
        let trained = train_methods::<B>(task, &split, self.methods, (self.out_dir, self.resume), device, progress)?;
        let (gpo, priors) = predictors(task, &split, self.methods, &trained)?;
        let meta_train = split.meta_train_groups();
        let options = BaselineOptions {
            knn_temperature: evaluation.knn_temperature,
            ridge_lambda: evaluation.ridge_lambda,
            neighbour_rule: split.neighbour_rule,
        };
        let baselines = baselines(key.protocol, task, &meta_train, &split.seen_questions, options)?;
        let episodes = TestEpisodes::draw(task, &split, seed, &evaluation.context_sizes(), evaluation.max_targets)?;
        if !episodes.no_prior.is_empty() {
            let questions = episodes.no_prior.len();
            tracing::info!(
                protocol,
                fraction,
                seed,
                questions,
                "held-out questions without a population prior: not scored"
            );
        }
        let split_fingerprint = split_fingerprint(task, &split);
        let llm: Vec<LlmPredictor> = (self.llm.iter())
            .flat_map(|&(options, answers)| {
                let prompting = move |method| LlmPrompting {
                    method,
                    format: options.prompt,
                    seed,
                    trained: trained_fingerprint(options, method),
                    split: split_fingerprint,
                };
                options.methods.iter().map(move |&m| LlmPredictor::new(prompting(m), answers))
            })
            .collect();
        let methods: Vec<&dyn Predictor> =
            gpo.iter().map(|p| p as &dyn Predictor).chain(baselines.iter().map(|b| b.as_ref())).collect();
        let llm: Vec<&dyn Predictor> = llm.iter().map(|p| p as &dyn Predictor).collect();
        let (mut scores, context_use) = score_methods(task, &episodes, evaluation.context_questions, &methods, &llm)?;
        let summaries: Vec<TrainedModel> = trained.iter().map(|(_, summary)| summary.clone()).collect();
        let (best, selected) = select(&summaries, &mut scores);
        for s in scores.iter().filter(|s| s.k == evaluation.context_questions) {
            tracing::info!(protocol, fraction, seed, method = %s.method, score = ?s.micro, "evaluated");
        }
        let names = |groups: &[usize]| groups.iter().map(|&g| task.survey.groups[g].name.clone()).collect();
        let keys = |questions: &[usize]| questions.iter().map(|&q| task.survey.questions[q].key.clone()).collect();
        let result = RunResult {
            protocol: key.protocol,
            train_fraction: fraction,
            seed,
            train_groups: names(&split.train_groups),
            new_questions: keys(&split.new_questions),
            no_prior_questions: keys(&episodes.no_prior),
            validation_groups: names(&split.validation_groups),
            test_groups: names(&split.test_groups),
            models: summaries,
            selected,
            scores,
            context_use,
            neighbour_rule: Some(rules),
        };
        drop(gpo);
        let kept = best.and_then(|i| trained.into_iter().zip(priors).nth(i).map(|(t, prior)| (t, prior, i)));
        Ok((result, kept.map(|((model, summary), prior, i)| (model, self.methods[i].clone(), summary, prior))))
    }
}

/// Step "train": every GPO method on `split`, each continuing from its checkpoint in
/// `out_dir/checkpoints` when `resume` is set.
fn train_methods<B: AutodiffBackend>(
    task: &EmbeddedSurvey,
    split: &Split,
    methods: &[GpoMethod],
    (out_dir, resume): (&Path, bool),
    device: &B::Device,
    progress: &dyn TrainProgress,
) -> Result<TrainedMethods<B::InnerBackend>, RunError> {
    // The `groups` protocol keeps the names of runs made before protocols existed.
    let tag = match split.protocol {
        Protocol::Groups => String::new(),
        Protocol::Questions => format!("{}-", split.protocol.name()),
    };
    let mut trained = Vec::new();
    for method in methods {
        let name = format!("{tag}split{:.0}-seed{}-{}.ckpt", split.train_fraction * 100.0, split.seed, method.method);
        let checkpoint = out_dir.join("checkpoints").join(name);
        let session = Session { checkpoint: Some(&checkpoint), resume, stop_after: None };
        let run = train::<B>(task, split, method, split.seed, session, device, progress)?;
        let summary = TrainedModel {
            method: method.method.clone(),
            best_step: run.best_step,
            validation_score: run.best_score,
            train_seconds: run.seconds,
            curve: run.curve,
        };
        trained.push((run.model, summary));
    }
    Ok(trained)
}

/// Step "predict": the trained GPO methods as predictors, each reading its population prior over
/// the meta-training groups (validation groups are meta-training data too: held out of gradient
/// updates for model selection, but available to the baselines and to the priors at test time,
/// with their answers to every seen question). Returns the predictors and the priors.
#[allow(clippy::type_complexity)]
fn predictors<B: Backend>(
    task: &EmbeddedSurvey,
    split: &Split,
    methods: &[GpoMethod],
    trained: &TrainedMethods<B>,
) -> Result<(Vec<GpoPredictor<B>>, Vec<Option<PopulationPrior>>), EvalError> {
    let meta_train = split.meta_train_groups();
    let mut predictors = Vec::new();
    let mut priors = Vec::new();
    for (method, (model, _)) in methods.iter().zip(trained) {
        let prior = method
            .population_prior(task, &meta_train, &split.seen_questions, split.neighbour_rule)?
            .map(|p| p.prior().clone());
        predictors.push(GpoPredictor::new(model.clone(), method.method.clone(), prior.clone())?);
        priors.push(prior);
    }
    Ok((predictors, priors))
}

/// Step "select", on validation only: the GPO method with the best validation score, and its
/// method when it has one, whose test scores are repeated in `scores` as `selected_gpo`.
fn select(models: &[TrainedModel], scores: &mut Vec<MethodScore>) -> (Option<usize>, Option<Method>) {
    let score = |t: &TrainedModel| t.validation_score.unwrap_or(f64::NEG_INFINITY);
    let best = models.iter().enumerate().max_by(|a, b| score(a.1).total_cmp(&score(b.1))).map(|(i, _)| i);
    let selected = best.filter(|&i| models[i].validation_score.is_some()).map(|i| models[i].method.clone());
    if let Some(name) = &selected {
        let copies: Vec<MethodScore> = (scores.iter().filter(|s| &s.method == name))
            .map(|s| MethodScore { method: Method::Selected, ..s.clone() })
            .collect();
        scores.extend(copies);
    }
    (best, selected)
}
