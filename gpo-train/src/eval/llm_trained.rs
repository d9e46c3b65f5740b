//! The paper's trained LLM baselines (docs/original.md §7) on LoRA adapters ([`crate::llm::lora`]):
//! `lm_sft` trains one adapter per held-out group, seed and context (the group's context
//! questions as zero-shot prompts, its answer distributions as targets) and asks it the group's
//! target questions alone.
//!
//! The adapters sit on the model's last blocks; the residual stream entering them is computed
//! once per distinct prompt, then every update runs the adapted blocks only. Each adapter's
//! answers are kept (under [`LlmPrompting::answer_key`]) in the run's answers file as soon as it
//! is trained, so `--resume` skips finished adapters.

use std::collections::{BTreeMap, HashMap};

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use super::llm::{LlmAnswers, LlmProgress, LlmPrompting, fnv1a};
use super::{EvalEpisode, EvalError};
use crate::config::LlmOptions;
use crate::llm::lora::{TailBatch, fit, letter_distributions};
use crate::llm::prompt::{QuestionText, zero_shot};
use crate::llm::{ChoicePrompt, ChoiceScorer};
use crate::method::Method;
use crate::task::EmbeddedSurvey;

/// One adapter to train: what it learns from and what it is asked.
struct Job {
    key: String,
    /// Context prompts and the group's answer distribution on each.
    context: Vec<(ChoicePrompt, Vec<f64>)>,
    /// Target prompts and their answer keys.
    targets: Vec<(ChoicePrompt, String)>,
}

/// Trains the adapters that `prompting`'s trained method needs for `episodes` and keeps their
/// answers in `answers` (`save`d after each adapter), skipping adapters whose answers are all
/// kept; `threads` adapters train at a time. Returns the prompts scored, the distinct prompts the frozen model ran, and the tokens
/// it ran.
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
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    let mut scored = 0;
    let zero_shot_prompt = |p: &LlmPrompting, q: usize| -> Result<ChoicePrompt, EvalError> {
        let question = &task.survey.questions[q];
        let text = zero_shot(p.format, QuestionText { text: &question.text, options: &question.options }, None)
            .map_err(|e| EvalError::Baseline(format!("question {}: {e}", question.key)))?;
        Ok(ChoicePrompt { text, options: question.options.len() })
    };
    for (seed, episode) in episodes {
        let p = prompting(*seed);
        let key = p.adapter_key(task, episode);
        let targets = p.prompts(task, episode)?;
        scored += targets.len();
        let job = match jobs.entry(key.clone()) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let mut context = Vec::new();
                for &q in &episode.context {
                    if let Some(answer) = task.answer(episode.context_group, q) {
                        context.push((zero_shot_prompt(&p, q)?, answer.to_vec()));
                    }
                }
                v.insert(Job { key, context, targets: Vec::new() })
            }
        };
        for prompt in targets {
            let answer_key = p.answer_key(task, episode, &prompt.text);
            if !job.targets.iter().any(|(_, k)| *k == answer_key) {
                job.targets.push((prompt, answer_key));
            }
        }
    }
    let todo: Vec<Job> = jobs
        .into_values()
        .filter(|j| !j.context.is_empty() && j.targets.iter().any(|(_, k)| answers.get(k).is_none()))
        .collect();
    let method = prompting(0).method;
    let name = Method::Lm(method);
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
        for prompt in job.context.iter().map(|(p, _)| p).chain(job.targets.iter().map(|(p, _)| p)) {
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
    let context_tokens = |j: &Job| j.context.iter().map(|(p, _)| lengths[index[&fnv1a(&p.text)]]).sum::<usize>();
    let train_tokens: usize = todo.iter().map(|j| context_tokens(j) * options.sft.steps).sum();
    tracing::info!(
        method = %name,
        adapters = todo.len(),
        prompts = distinct.len(),
        frozen_tokens,
        steps = options.sft.steps,
        "language model: training adapters"
    );
    progress.lm_start(&name, frozen_tokens + train_tokens);
    let streams = scorer.residuals(&distinct, tail.first_block(), &|n| progress.lm_tokens(n))?;
    let stream = |p: &ChoicePrompt| streams[index[&fnv1a(&p.text)]].clone();
    let device = streams.first().map(|s| s.device()).unwrap_or_default();
    // Adapters train `threads` at a time, one per thread (each result depends on its job
    // alone), their answers kept after each round.
    let train = |job: &Job| -> Result<Vec<Vec<f64>>, EvalError> {
        let context: Vec<_> = job.context.iter().map(|(p, _)| stream(p)).collect();
        let batch = TailBatch::new(&context, job.context.iter().map(|(p, _)| p.options).collect());
        let targets: Vec<Vec<f64>> = job.context.iter().map(|(_, t)| t.clone()).collect();
        let seed = fnv1a(&job.key);
        let adapter = options.lora.init::<A>(tail.config(), seed, &device);
        let (mut first, mut last) = (f64::NAN, f64::NAN);
        let step_tokens = context_tokens(job);
        let adapter = fit(&train_tail, adapter, &batch, &targets, &options.sft, seed, &mut |step, loss| {
            if step == 0 {
                first = loss;
            }
            last = loss;
            progress.lm_tokens(step_tokens);
        });
        tracing::debug!(method = %name, adapter = %job.key.replace('\n', " "), first, last, "adapter trained");
        let asked: Vec<_> = job.targets.iter().map(|(p, _)| stream(p)).collect();
        let asked = TailBatch::new(&asked, job.targets.iter().map(|(p, _)| p.options).collect());
        letter_distributions(&tail, Some(&adapter.valid()), &asked).map_err(EvalError::Baseline)
    };
    for round in todo.chunks(threads.max(1)) {
        let results: Vec<Result<Vec<Vec<f64>>, EvalError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = round.iter().map(|job| scope.spawn(|| train(job))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(EvalError::Baseline("an adapter's thread panicked".into()))))
                .collect()
        });
        for (job, predicted) in round.iter().zip(results) {
            for ((_, key), answer) in job.targets.iter().zip(predicted?) {
                answers.insert(key, answer);
            }
        }
        save(answers)?;
    }
    progress.lm_done();
    Ok((scored, distinct.len(), frozen_tokens))
}
