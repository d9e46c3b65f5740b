//! The paper's in-context finetune baseline (`lm_incontext_ft`, docs/original.md §7): one LoRA
//! adapter per split and seed, meta-trained on the meta-training groups' few-shot prompts (a
//! group's answer distributions on its context questions, then one of its other questions, that
//! question's distribution the target of the letter distribution), kept at the update with the
//! lowest loss on the validation groups' few-shot prompts (never the test groups'), and asked
//! exactly `lm_fewshot`'s prompts of the held-out groups.
//!
//! The adapter sits on the model's last block; the residual stream entering it is computed once
//! per distinct prompt, a group's ~2,000-token context once for all its questions
//! ([`ChoiceScorer::shared_residuals`]). The training groups' prompts of one run are the held-out
//! groups' prompts of another (the same context questions and targets per seed), so one pass
//! serves every run; `lm_fewshot`'s answers are read off the same streams through the unadapted
//! block when both methods run (the same model on the same prompts, up to f32 sums in another
//! order), instead of a second pass.

use std::collections::{BTreeMap, HashMap};

use burn::tensor::backend::AutodiffBackend;

use super::llm::{LlmAnswers, LlmOptions, LlmProgress, LlmPrompting, LlmRunEpisodes, fnv1a};
use super::{EvalEpisode, EvalError};
use crate::llm::lora::{SharedStreams, fit_selected, letter_distributions};
use crate::llm::{ChoicePrompt, ChoiceScorer, LlamaTail};
use crate::method::{LmMethod, Method};
use crate::task::EmbeddedSurvey;

/// Prompts through the tail at a time when nothing is trained (answers, validation).
const CHUNK: usize = 16;

/// One adapter: the prompts it learns from, is selected on and answers (indices of the run's
/// distinct prompts).
struct Job {
    key: String,
    seed: u64,
    train: (Vec<usize>, Vec<Vec<f64>>),
    validation: (Vec<usize>, Vec<Vec<f64>>),
    /// Held-out prompts and their answer keys.
    test: Vec<(usize, String)>,
}

/// The distinct prompts of a pass, in first-seen order (a group's few-shot prompts together, so
/// that they share their prefix).
#[derive(Default)]
struct Prompts {
    list: Vec<ChoicePrompt>,
    index: HashMap<u64, usize>,
}

impl Prompts {
    fn add(&mut self, prompt: ChoicePrompt) -> usize {
        *self.index.entry(fnv1a(&prompt.text)).or_insert_with(|| {
            self.list.push(prompt);
            self.list.len() - 1
        })
    }
}

/// What [`train_all`] did: `lm_incontext_ft`'s prompts scored, distinct prompts run and tokens
/// run; and, when it answered `lm_fewshot`'s prompts too, their number and the seconds its
/// tail took for them.
pub(crate) struct Outcome {
    pub incontext: (usize, usize, usize),
    pub fewshot: Option<(usize, usize, f64)>,
}

/// Trains the adapters `lm_incontext_ft` needs for `runs` (`prompting(seed, split)`) and keeps
/// their answers in `answers` (`save`d after each round of `threads` adapters), skipping
/// adapters whose answers are all kept; with `fewshot`, also answers `lm_fewshot`'s prompts
/// (`fewshot(seed)`) that `answers` lacks, from the same streams.
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_all<A: AutodiffBackend>(
    task: &EmbeddedSurvey,
    scorer: &ChoiceScorer<A::InnerBackend>,
    threads: usize,
    options: &LlmOptions,
    prompting: &dyn Fn(u64, u64) -> LlmPrompting,
    fewshot: Option<&dyn Fn(u64) -> LlmPrompting>,
    runs: &[LlmRunEpisodes],
    answers: &mut LlmAnswers,
    save: &dyn Fn(&LlmAnswers) -> Result<(), EvalError>,
    progress: &dyn LlmProgress,
) -> Result<Outcome, EvalError> {
    let name = Method::Lm(LmMethod::IncontextFt);
    let training =
        options.training(LmMethod::IncontextFt).ok_or_else(|| EvalError::Baseline(format!("{name} trains nothing")))?;
    let mut prompts = Prompts::default();
    // Labelled prompts of episodes: (prompt, the group's distribution on the target).
    let labelled = |prompts: &mut Prompts, p: &LlmPrompting, episodes: &[EvalEpisode]| {
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for e in episodes {
            for (&q, prompt) in e.targets.iter().zip(p.prompts(task, e)?) {
                if let Some(answer) = task.answer(e.group, q) {
                    rows.push(prompts.add(prompt));
                    targets.push(answer.to_vec());
                }
            }
        }
        Ok::<_, EvalError>((rows, targets))
    };
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    let mut scored = 0;
    let mut fewshot_missing = Vec::new();
    let mut fewshot_asked = 0;
    for run in runs {
        let p = prompting(run.seed, run.split);
        let key = p.adapter_key(task, &EvalEpisode::new(0, Vec::new(), Vec::new()));
        scored += run.test.iter().map(|e| e.targets.len()).sum::<usize>();
        if !jobs.contains_key(&key) {
            let train = labelled(&mut prompts, &p, &run.train)?;
            let validation = labelled(&mut prompts, &p, &run.validation)?;
            let mut test = Vec::new();
            for e in &run.test {
                for prompt in p.prompts(task, e)? {
                    let answer_key = p.answer_key(task, e, &prompt.text);
                    test.push((prompts.add(prompt), answer_key));
                }
            }
            jobs.insert(key.clone(), Job { key, seed: run.seed, train, validation, test });
        }
        if let Some(fewshot) = fewshot {
            let f = fewshot(run.seed);
            for e in &run.test {
                for prompt in f.prompts(task, e)? {
                    fewshot_asked += 1;
                    if answers.get(&prompt.text).is_none() {
                        fewshot_missing.push(prompts.add(prompt));
                    }
                }
            }
        }
    }
    fewshot_missing.sort_unstable();
    fewshot_missing.dedup();
    let todo: Vec<Job> = jobs.into_values().filter(|j| j.test.iter().any(|(_, k)| answers.get(k).is_none())).collect();
    if let Some(job) = todo.iter().find(|j| j.train.0.is_empty() || j.validation.0.is_empty()) {
        let what = match job.train.0.is_empty() {
            true => "no training group's prompt to learn from",
            false => "no validation group's prompt to select on",
        };
        return Err(EvalError::Baseline(format!("{name}: the run with seed {} has {what}", job.seed)));
    }
    let fewshot_outcome = |answered: usize, seconds: f64| fewshot.map(|_| (fewshot_asked, answered, seconds));
    if todo.is_empty() && fewshot_missing.is_empty() {
        return Ok(Outcome { incontext: (scored, 0, 0), fewshot: fewshot_outcome(0, 0.0) });
    }

    // The prompts this pass needs, in first-seen order, and where each went.
    let mut needed = vec![false; prompts.list.len()];
    for job in &todo {
        let rows = job.train.0.iter().chain(&job.validation.0).chain(job.test.iter().map(|(r, _)| r));
        rows.for_each(|&r| needed[r] = true);
    }
    fewshot_missing.iter().for_each(|&r| needed[r] = true);
    let mut at = vec![usize::MAX; needed.len()];
    let mut distinct = Vec::new();
    for (r, prompt) in prompts.list.iter().enumerate().filter(|(r, _)| needed[*r]) {
        at[r] = distinct.len();
        distinct.push(prompt.clone());
    }
    let tail = scorer.tail(options.lora.blocks)?;
    options.lora.validate(tail.config().n_layers).map_err(|e| EvalError::Baseline(format!("[llm.lora] {e}")))?;
    let frozen_tokens = scorer.run_tokens(&distinct)?;
    let lengths = scorer.tokens(&distinct)?;
    // Progress counts tokens: the frozen blocks' once per prompt (a shared prefix once), then
    // the adapted block's over every prompt of every update.
    let step_tokens = training.batch.unwrap_or(8) * lengths.iter().map(Vec::len).sum::<usize>() / lengths.len().max(1);
    drop(lengths);
    let train_tokens = todo.len() * training.steps * step_tokens;
    tracing::info!(
        method = %name,
        adapters = todo.len(),
        prompts = distinct.len(),
        frozen_tokens,
        steps = training.steps,
        fewshot_prompts = fewshot_missing.len(),
        "language model: in-context finetuning"
    );
    progress.lm_start(&name, frozen_tokens + train_tokens);
    let streams = scorer.shared_residuals(&distinct, tail.first_block(), &|n| progress.lm_tokens(n))?;

    // lm_fewshot's answers: the same streams through the unadapted block.
    let start = std::time::Instant::now();
    let rows: Vec<usize> = fewshot_missing.iter().map(|&r| at[r]).collect();
    for (chunk, originals) in rows.chunks(CHUNK).zip(fewshot_missing.chunks(CHUNK)) {
        let predicted = letter_distributions(&tail, None, &streams.batch(chunk)).map_err(EvalError::Baseline)?;
        for (&r, answer) in originals.iter().zip(predicted) {
            answers.insert(&prompts.list[r].text, answer);
        }
    }
    let fewshot_seconds = start.elapsed().as_secs_f64();
    if !fewshot_missing.is_empty() {
        save(answers)?;
    }

    let train_tail = tail.autodiff::<A>();
    let device = streams.device();
    let remap = |rows: &[usize]| rows.iter().map(|&r| at[r]).collect::<Vec<usize>>();
    let train = |job: &Job| -> Result<Vec<Vec<f64>>, EvalError> {
        let (train_rows, validation_rows) = (remap(&job.train.0), remap(&job.validation.0));
        let seed = fnv1a(&job.key);
        let adapter = options.lora.init::<A>(tail.config(), seed, &device);
        let mut on_step = |_: usize, _: f64| progress.lm_tokens(step_tokens);
        let kept = fit_selected(
            &train_tail,
            &tail,
            adapter,
            &streams,
            (&train_rows, &job.train.1),
            (&validation_rows, &job.validation.1),
            training,
            seed,
            &mut on_step,
        );
        tracing::info!(
            method = %name,
            seed = job.seed,
            train = train_rows.len(),
            validation = validation_rows.len(),
            selected_step = kept.step,
            losses = ?kept.validation,
            "adapter selected on the validation groups"
        );
        answer(&tail, &kept.adapter, &streams, &job.test.iter().map(|(r, _)| at[*r]).collect::<Vec<_>>())
    };
    super::llm_trained::in_rounds(
        &todo,
        threads,
        train,
        |job| job.test.iter().map(|(_, k)| k.as_str()).collect(),
        answers,
        save,
    )?;
    progress.lm_done();
    Ok(Outcome {
        incontext: (scored, if todo.is_empty() { 0 } else { distinct.len() }, frozen_tokens),
        fewshot: fewshot_outcome(fewshot_missing.len(), fewshot_seconds),
    })
}

/// The letter distributions of `rows` of `streams` through `tail` adapted by `adapter`.
fn answer<B: burn::tensor::backend::Backend>(
    tail: &LlamaTail<B>,
    adapter: &crate::llm::lora::LoraAdapter<B>,
    streams: &SharedStreams<B>,
    rows: &[usize],
) -> Result<Vec<Vec<f64>>, EvalError> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        out.extend(letter_distributions(tail, Some(adapter), &streams.batch(chunk)).map_err(EvalError::Baseline)?);
    }
    Ok(out)
}
