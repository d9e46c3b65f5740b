//! The paper's trained LLM baselines (docs/original.md §7) on LoRA adapters ([`crate::llm::lora`]),
//! one adapter per held-out group, seed and context, trained on the group's context questions:
//! - `lm_sft`: the zero-shot prompt of each context question, its answer distribution as the
//!   target of the letter distribution; asked the group's target questions alone;
//! - `lm_reward_model`: a scalar head on the adapted model scores each option (the prompt
//!   followed by the option's letter); a question's scores, softmax-normalised, are trained
//!   towards the group's distribution and predict the targets' distributions.
//!
//! The adapters sit on the model's last blocks; the residual stream entering them is computed
//! once per distinct prompt, then every update runs the adapted blocks only. Each adapter's
//! answers are kept (under [`LlmPrompting::answer_key`]) in the run's answers file as soon as it
//! is trained, so `--resume` skips finished adapters.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use gpo_core::template::letters;

use super::llm::LlmOptions;
use super::llm::{LlmAnswers, LlmProgress, LlmPrompting, fnv1a};
use super::{EvalEpisode, EvalError};
use crate::llm::lora::{
    RewardModel, TailBatch, end_to_end, fit, fit_reward, letter_distributions, reward_distributions,
};
use crate::llm::prompt::{QuestionText, zero_shot};
use crate::llm::{ChoicePrompt, ChoiceScorer};
use crate::method::{LmMethod, Method};
use crate::task::EmbeddedSurvey;

/// One adapter to train: what it learns from and what it is asked. Each question comes as its
/// prompts: the zero-shot prompt (`lm_sft`), or that prompt followed by each option's letter
/// (`lm_reward_model`).
struct Job {
    key: String,
    /// Context questions' prompts and the group's answer distribution on each.
    context: Vec<(Vec<ChoicePrompt>, Vec<f64>)>,
    /// Target questions' prompts and their answer keys.
    targets: Vec<(Vec<ChoicePrompt>, String)>,
}

/// The prompts the trained `method` reads for question `q`.
fn question_prompts(task: &EmbeddedSurvey, p: &LlmPrompting, q: usize) -> Result<Vec<ChoicePrompt>, EvalError> {
    let question = &task.survey.questions[q];
    let text = zero_shot(p.format, QuestionText { text: &question.text, options: &question.options }, None)
        .map_err(|e| EvalError::Baseline(format!("question {}: {e}", question.key)))?;
    let options = question.options.len();
    Ok(match p.method {
        LmMethod::RewardModel => {
            letters().take(options).map(|l| ChoicePrompt { text: format!("{text}{l}"), options }).collect()
        }
        _ => vec![ChoicePrompt { text, options }],
    })
}

/// The rows of each question's prompts when they are laid end to end.
fn rows(questions: &[&Vec<ChoicePrompt>]) -> Vec<Range<usize>> {
    end_to_end(questions.iter().map(|prompts| prompts.len()))
}

/// Trains the adapters that `prompting`'s trained method needs for `episodes` and keeps their
/// answers in `answers` (`save`d after each round), skipping adapters whose answers are all
/// kept; `threads` adapters train at a time. Returns the prompts scored, the distinct prompts
/// the frozen blocks ran, and the tokens they ran.
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_all<A: AutodiffBackend>(
    task: &EmbeddedSurvey,
    scorer: &ChoiceScorer<A::InnerBackend>,
    threads: usize,
    options: &LlmOptions,
    prompting: &dyn Fn(u64) -> LlmPrompting,
    episodes: &[(u64, EvalEpisode)],
    answers: &mut LlmAnswers,
    save: &dyn Fn(&LlmAnswers) -> Result<(), EvalError>,
    progress: &dyn LlmProgress,
) -> Result<(usize, usize, usize), EvalError> {
    let method = prompting(0).method;
    let name = Method::Lm(method);
    let training = options.training(method).ok_or_else(|| EvalError::Baseline(format!("{name} trains nothing")))?;
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    let mut scored = 0;
    for (seed, episode) in episodes {
        let p = prompting(*seed);
        let key = p.adapter_key(task, episode);
        scored += episode.targets.len();
        let job = match jobs.entry(key.clone()) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let mut context = Vec::new();
                for &q in &episode.context {
                    if let Some(answer) = task.answer(episode.context_group, q) {
                        context.push((question_prompts(task, &p, q)?, answer.to_vec()));
                    }
                }
                v.insert(Job { key, context, targets: Vec::new() })
            }
        };
        for (&q, prompt) in episode.targets.iter().zip(p.prompts(task, episode)?) {
            let answer_key = p.answer_key(task, episode, &prompt.text);
            if !job.targets.iter().any(|(_, k)| *k == answer_key) {
                job.targets.push((question_prompts(task, &p, q)?, answer_key));
            }
        }
    }
    let todo: Vec<Job> = jobs
        .into_values()
        .filter(|j| !j.context.is_empty() && j.targets.iter().any(|(_, k)| answers.get(k).is_none()))
        .collect();
    if todo.is_empty() {
        return Ok((scored, 0, 0));
    }
    let tail = scorer.tail(options.lora.blocks)?;
    options.lora.validate(tail.config().n_layers).map_err(|e| EvalError::Baseline(format!("[llm.lora] {e}")))?;
    let train_tail = tail.autodiff::<A>();

    // The frozen blocks, once per distinct prompt.
    let mut distinct: Vec<ChoicePrompt> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    for job in &todo {
        let questions = job.context.iter().map(|(p, _)| p).chain(job.targets.iter().map(|(p, _)| p));
        for prompt in questions.flatten() {
            index.entry(fnv1a(&prompt.text)).or_insert_with(|| {
                distinct.push(prompt.clone());
                distinct.len() - 1
            });
        }
    }
    let lengths: Vec<usize> = scorer.tokens(&distinct)?.iter().map(Vec::len).collect();
    let frozen_tokens: usize = lengths.iter().sum();
    // Progress counts tokens: the frozen blocks' once per prompt, then the adapted blocks' at
    // every update of every adapter.
    let context_tokens =
        |j: &Job| j.context.iter().flat_map(|(p, _)| p).map(|p| lengths[index[&fnv1a(&p.text)]]).sum::<usize>();
    let train_tokens: usize = todo.iter().map(|j| context_tokens(j) * training.steps).sum();
    tracing::info!(
        method = %name,
        adapters = todo.len(),
        prompts = distinct.len(),
        frozen_tokens,
        steps = training.steps,
        "language model: training adapters"
    );
    progress.lm_start(&name, frozen_tokens + train_tokens);
    let streams = scorer.residuals(&distinct, tail.first_block(), &|n| progress.lm_tokens(n))?;
    let device = streams.first().map(|s| s.device()).unwrap_or_default();
    let batch_of = |questions: &[&Vec<ChoicePrompt>]| {
        let prompts: Vec<&ChoicePrompt> = questions.iter().copied().flatten().collect();
        let x: Vec<_> = prompts.iter().map(|p| streams[index[&fnv1a(&p.text)]].clone()).collect();
        TailBatch::new(&x, prompts.iter().map(|p| p.options).collect())
    };
    let train = |job: &Job| -> Result<Vec<Vec<f64>>, EvalError> {
        let context: Vec<&Vec<ChoicePrompt>> = job.context.iter().map(|(p, _)| p).collect();
        let batch = batch_of(&context);
        let targets: Vec<Vec<f64>> = job.context.iter().map(|(_, t)| t.clone()).collect();
        let asked: Vec<&Vec<ChoicePrompt>> = job.targets.iter().map(|(p, _)| p).collect();
        let seed = fnv1a(&job.key);
        let adapter = options.lora.init::<A>(tail.config(), seed, &device);
        let (mut first, mut last) = (f64::NAN, f64::NAN);
        let step_tokens = context_tokens(job);
        let mut on_step = |step: usize, loss: f64| {
            if step == 0 {
                first = loss;
            }
            last = loss;
            progress.lm_tokens(step_tokens);
        };
        let predicted = match method {
            LmMethod::RewardModel => {
                let model = RewardModel::new(adapter, tail.config().d_model, &device);
                let ranges = rows(&context);
                let model = fit_reward(&train_tail, model, &batch, &ranges, &targets, training, seed, &mut on_step);
                reward_distributions(&tail, &model.valid(), &batch_of(&asked), &rows(&asked))
            }
            _ => {
                let adapter = fit(&train_tail, adapter, &batch, &targets, training, seed, &mut on_step);
                letter_distributions(&tail, Some(&adapter.valid()), &batch_of(&asked))
            }
        };
        tracing::debug!(method = %name, adapter = %job.key.replace('\n', " "), first, last, "adapter trained");
        predicted.map_err(EvalError::Baseline)
    };
    in_rounds(&todo, threads, train, |job| job.targets.iter().map(|(_, k)| k.as_str()).collect(), answers, save)?;
    progress.lm_done();
    Ok((scored, distinct.len(), frozen_tokens))
}

/// Trains `jobs` `threads` at a time, one per thread (each result depends on its job alone):
/// `train` gives a job's answers, one per key of `keys`, kept in `answers` and `save`d after
/// each round.
pub(super) fn in_rounds<J: Sync>(
    jobs: &[J],
    threads: usize,
    train: impl Fn(&J) -> Result<Vec<Vec<f64>>, EvalError> + Sync,
    keys: impl Fn(&J) -> Vec<&str>,
    answers: &mut LlmAnswers,
    save: &dyn Fn(&LlmAnswers) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    for round in jobs.chunks(threads.max(1)) {
        let results: Vec<Result<Vec<Vec<f64>>, EvalError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = round.iter().map(|job| scope.spawn(|| train(job))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(EvalError::Baseline("an adapter's thread panicked".into()))))
                .collect()
        });
        for (job, predicted) in round.iter().zip(results) {
            for (key, answer) in keys(job).into_iter().zip(predicted?) {
                answers.insert(key, answer);
            }
        }
        save(answers)?;
    }
    Ok(())
}
