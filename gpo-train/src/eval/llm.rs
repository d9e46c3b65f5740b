//! The LLM baselines (docs/original.md §7) as predictors: `lm_base`, `lm_steered` and `lm_fewshot`
//! prompt a language model with each target question ([`crate::llm::prompt`]) and read its
//! next-token distribution over the option letters ([`crate::llm::ChoiceScorer`]).
//!
//! A run does not call the model itself: `gpo run` first collects every prompt that any of its
//! (split, seed) runs will ask, asks each distinct prompt once ([`LlmAnswers`]: a zero-shot
//! prompt is the same in every run that scores its question), then each run's
//! [`LlmPredictor`] renders its prompts again and looks their answers up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::{AutodiffBackend, Backend};
use gpo_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::{EvalEpisode, EvalError, Predictions, Predictor};
use crate::llm::lora::{LoraConfig, LoraTraining};
use crate::llm::prompt::{AnsweredQuestion, PromptFormat, QuestionText, few_shot, persona, zero_shot};
use crate::llm::{ChoicePrompt, ChoiceScorer};
use crate::method::{LmMethod, Method};
use crate::split::Split;
use crate::task::EmbeddedSurvey;

/// The LLM baselines of a run (`[llm]`): a GGUF causal language model prompted with each held-out
/// group's target questions at the headline number of context questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmOptions {
    /// The `.gguf` file, or a wheel/zip holding one (relative to the config's folder).
    pub model: PathBuf,
    /// The template the model was tuned with (`chatml` for SmolLM2-Instruct, `alpaca`).
    pub prompt: PromptFormat,
    /// The methods (`base`, `steered`, `fewshot`, `sft`, `reward_model`, `incontext_ft`), each
    /// reported as `lm_<name>`.
    pub methods: Vec<LmMethod>,
    /// The adapters of the trained methods (`[llm.lora]`; the original's by default: rank 12,
    /// α 32, dropout 0.05, query and value, here on the last block).
    #[serde(default)]
    pub lora: LoraConfig,
    /// How `lm_sft` trains each held-out group's adapter on its context questions (`[llm.sft]`).
    #[serde(default)]
    pub sft: LoraTraining,
    /// How `lm_reward_model` trains each held-out group's adapter and score head on its context
    /// questions (`[llm.reward_model]`; minibatches count questions).
    #[serde(default)]
    pub reward_model: LoraTraining,
    /// How `lm_incontext_ft` meta-trains one adapter per split and seed on the meta-training
    /// groups' few-shot prompts, selected on the validation groups' (`[llm.incontext_ft]`;
    /// [`LoraTraining::incontext`] by default).
    #[serde(default = "LoraTraining::incontext")]
    pub incontext_ft: LoraTraining,
}

impl LlmOptions {
    /// How a trained method trains (`None` for the prompting methods).
    pub fn training(&self, method: LmMethod) -> Option<&LoraTraining> {
        match method {
            LmMethod::Sft => Some(&self.sft),
            LmMethod::RewardModel => Some(&self.reward_model),
            LmMethod::IncontextFt => Some(&self.incontext_ft),
            LmMethod::Base | LmMethod::Steered | LmMethod::Fewshot => None,
        }
    }
}

/// How one LLM baseline prompts: the method, the model's prompt format, the run's seed (it
/// orders the letters of the few-shot context's answer distributions and seeds adapters) and,
/// for the trained methods, a fingerprint of how they train ([`trained_fingerprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmPrompting {
    /// Which baseline.
    pub method: LmMethod,
    /// The model's template.
    pub format: PromptFormat,
    /// The run's seed.
    pub seed: u64,
    /// [`trained_fingerprint`] of the run's LLM options (part of a trained method's answer keys,
    /// so that answers trained otherwise are not reused).
    pub trained: u64,
    /// [`split_fingerprint`] of the run's split (part of `lm_incontext_ft`'s answer keys: its
    /// adapter learns from the split's meta-training groups).
    pub split: u64,
}

/// FNV-1a of a split's training and validation groups (by name, in order): what
/// `lm_incontext_ft`'s adapter of a run learns from and is selected on.
pub fn split_fingerprint(task: &EmbeddedSurvey, split: &Split) -> u64 {
    let names = |groups: &[usize]| {
        groups.iter().map(|&g| task.survey.groups[g].name.as_str()).collect::<Vec<_>>().join("\u{1f}")
    };
    fnv1a(&format!("{}\n{}", names(&split.train_groups), names(&split.validation_groups)))
}

/// FNV-1a of the adapters' shape and how `method` trains them ([`LlmOptions::lora`],
/// [`LlmOptions::training`]).
pub fn trained_fingerprint(options: &LlmOptions, method: LmMethod) -> u64 {
    match options.training(method) {
        Some(training) => fnv1a(&format!("{:?}\n{:?}", options.lora, training)),
        None => 0,
    }
}

impl LlmPrompting {
    /// The prompts for an episode's targets, in target order.
    pub fn prompts(&self, task: &EmbeddedSurvey, episode: &EvalEpisode) -> Result<Vec<ChoicePrompt>, EvalError> {
        let text = |q: usize| {
            let question = &task.survey.questions[q];
            QuestionText { text: &question.text, options: &question.options }
        };
        let group = &task.survey.groups[episode.group];
        let steer = persona(&group.attribute, &group.name);
        let context: Vec<AnsweredQuestion> = match self.method {
            LmMethod::Fewshot | LmMethod::IncontextFt => episode
                .context
                .iter()
                .filter_map(|&q| {
                    let distribution = task.answer(episode.context_group, q)?;
                    let mut order: Vec<usize> = (0..distribution.len()).collect();
                    // One generator per (seed, group, question): a context question lists its
                    // letters the same way in every prompt of the group.
                    let mixed =
                        self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((episode.group as u64) << 32 | q as u64);
                    SplitMix64::new(mixed).shuffle(&mut order);
                    Some(AnsweredQuestion { question: text(q), distribution, order })
                })
                .collect(),
            LmMethod::Base | LmMethod::Steered | LmMethod::Sft | LmMethod::RewardModel => Vec::new(),
        };
        episode
            .targets
            .iter()
            .map(|&q| {
                let rendered = match self.method {
                    LmMethod::Base | LmMethod::Sft | LmMethod::RewardModel => zero_shot(self.format, text(q), None),
                    LmMethod::Steered => zero_shot(self.format, text(q), Some(&steer)),
                    LmMethod::Fewshot | LmMethod::IncontextFt => few_shot(self.format, &context, text(q)),
                };
                let rendered = rendered.map_err(|e| {
                    EvalError::Baseline(format!(
                        "{}: question {}: {e}",
                        Method::Lm(self.method),
                        task.survey.questions[q].key
                    ))
                })?;
                Ok(ChoicePrompt { text: rendered, options: task.survey.questions[q].options.len() })
            })
            .collect()
    }
}

impl LlmPrompting {
    /// What a trained method's adapter for `episode` learns from: the method, how it trains, the
    /// seed, and the group whose answers it reads and its context questions (the per-group
    /// methods: episodes of one group, seed and context in several splits share one adapter) or
    /// the split (`lm_incontext_ft`: one adapter for every episode of a run).
    pub fn adapter_key(&self, task: &EmbeddedSurvey, episode: &EvalEpisode) -> String {
        if self.method == LmMethod::IncontextFt {
            return format!("{}\n{:016x}\n{}\n{:016x}", Method::Lm(self.method), self.trained, self.seed, self.split);
        }
        let keys: Vec<&str> = episode.context.iter().map(|&q| task.survey.questions[q].key.as_str()).collect();
        format!(
            "{}\n{:016x}\n{}\n{}\n{}",
            Method::Lm(self.method),
            self.trained,
            self.seed,
            task.survey.groups[episode.context_group].name,
            keys.join(",")
        )
    }

    /// The key a prompt's answer is kept under: the prompt itself for the prompting methods
    /// (one answer in every run and group); for a trained method, its adapter's key and the
    /// prompt.
    pub fn answer_key(&self, task: &EmbeddedSurvey, episode: &EvalEpisode, prompt: &str) -> String {
        match self.method.is_trained() {
            false => prompt.to_owned(),
            true => format!("{}\n{prompt}", self.adapter_key(task, episode)),
        }
    }
}

/// FNV-1a (64 bits) of a text: the key a prompt's answer is kept under (prompts are long; a
/// collision among the few thousand of a run has odds near 10⁻¹²).
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The language model behind a run's LLM baselines, and what each of them cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRun {
    /// The model file's name.
    pub model: String,
    /// Its prompt format.
    pub prompt: PromptFormat,
    /// One entry per LLM baseline, in the order they ran.
    pub methods: Vec<LlmMethodRun>,
}

/// What one LLM baseline cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmMethodRun {
    /// The LLM baseline.
    pub method: Method,
    /// Prompts scored over all runs (one per held-out group and target question).
    pub prompts_scored: usize,
    /// Distinct prompts the model ran (a zero-shot prompt recurs across groups and runs).
    pub prompts_run: usize,
    /// Tokens the model ran (shared prefixes once).
    pub tokens: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Threads.
    pub threads: usize,
}

/// A language model's answer (letter distribution) to each distinct prompt asked, and what
/// asking cost, per method.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LlmAnswers {
    answers: HashMap<u64, Vec<f64>>,
    /// What each method's prompts cost when they were asked.
    pub costs: Vec<LlmMethodRun>,
}

/// `llm-answers` files start with this.
const ANSWERS_MAGIC: [u8; 8] = *b"GPOLLMA\0";
/// Their layout version (2: a [`gpo_core::container`], with the payload's length; version 1 had
/// none and is refused with a message saying to delete the file, which only caches answers).
const ANSWERS_VERSION: u32 = 2;

/// What an answers file holds: the model and prompt format that answered, and the answers.
#[derive(Debug, Serialize, Deserialize)]
struct StoredAnswers {
    model: String,
    prompt: PromptFormat,
    answers: Vec<(u64, Vec<f64>)>,
    costs: Vec<LlmMethodRun>,
}

impl LlmAnswers {
    /// No answers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The prompts among `prompts` not answered yet, each once, in their first order.
    pub fn missing(&self, prompts: impl IntoIterator<Item = ChoicePrompt>) -> Vec<ChoicePrompt> {
        let mut seen = std::collections::HashSet::new();
        prompts
            .into_iter()
            .filter(|p| {
                let key = fnv1a(&p.text);
                !self.answers.contains_key(&key) && seen.insert(key)
            })
            .collect()
    }

    /// Asks `scorer` every prompt of `prompts` (distinct, not answered yet) and keeps the
    /// answers; `on_tokens` is told the tokens of each finished group of prompts.
    pub fn ask<B: Backend>(
        &mut self,
        scorer: &ChoiceScorer<B>,
        prompts: Vec<ChoicePrompt>,
        on_tokens: &(dyn Fn(usize) + Sync),
    ) -> Result<(), EvalError> {
        let answers = scorer.choose(&prompts, on_tokens)?;
        self.answers.extend(prompts.iter().map(|p| fnv1a(&p.text)).zip(answers));
        Ok(())
    }

    /// Keeps `answer` under `key` ([`LlmPrompting::answer_key`]).
    pub fn insert(&mut self, key: &str, answer: Vec<f64>) {
        self.answers.insert(fnv1a(key), answer);
    }

    /// The answer to a prompt, if asked.
    pub fn get(&self, prompt: &str) -> Option<&[f64]> {
        self.answers.get(&fnv1a(prompt)).map(Vec::as_slice)
    }

    /// Distinct prompts answered.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The file bytes: a [`gpo_core::container`] (magic, version, length, CRC-32) around the
    /// payload (postcard) naming the `model` and `prompt` format that answered.
    pub fn to_bytes(&self, model: &str, prompt: PromptFormat) -> Result<Vec<u8>, AnswersFileError> {
        let mut answers: Vec<(u64, Vec<f64>)> = self.answers.iter().map(|(k, v)| (*k, v.clone())).collect();
        answers.sort_by_key(|(k, _)| *k);
        let costs = self.costs.clone();
        let payload = postcard::to_allocvec(&StoredAnswers { model: model.into(), prompt, answers, costs })
            .map_err(AnswersFileError::Encode)?;
        Ok(gpo_core::container::seal(&ANSWERS_MAGIC, ANSWERS_VERSION, &payload))
    }

    /// Reads [`LlmAnswers::to_bytes`]' output, refusing a corrupt file or one answered by another
    /// model or prompt format.
    pub fn from_bytes(bytes: &[u8], model: &str, prompt: PromptFormat) -> Result<Self, AnswersFileError> {
        use gpo_core::container::{ContainerError, open};
        let (_, payload) = open(bytes, &ANSWERS_MAGIC, &[ANSWERS_VERSION]).map_err(|e| match e {
            ContainerError::BadMagic { .. } => AnswersFileError::NotAnswers,
            ContainerError::UnsupportedVersion { found } => AnswersFileError::Version { found },
            other => AnswersFileError::Container(other),
        })?;
        let s: StoredAnswers = postcard::from_bytes(payload).map_err(AnswersFileError::Decode)?;
        if s.model != model || s.prompt != prompt {
            return Err(AnswersFileError::OtherModel {
                found: (s.model, s.prompt),
                wanted: (model.to_owned(), prompt),
            });
        }
        Ok(Self { answers: s.answers.into_iter().collect(), costs: s.costs })
    }
}

/// Why an answers file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AnswersFileError {
    /// Another kind of file.
    #[error("not a gpo LLM answers file")]
    NotAnswers,
    /// A layout this build does not read.
    #[error(
        "format version {found} (this build reads {ANSWERS_VERSION}): the file only caches answers; delete it and \
         the run asks the prompts again"
    )]
    Version {
        /// The file's version.
        found: u32,
    },
    /// Truncated or corrupted.
    #[error("{0}")]
    Container(gpo_core::container::ContainerError),
    /// The payload is not answers.
    #[error("payload does not decode: {0}")]
    Decode(postcard::Error),
    /// The answers could not be encoded.
    #[error("encoding answers: {0}")]
    Encode(postcard::Error),
    /// Another model or prompt format answered.
    #[error("answered by {} with {:?} prompts, this run asks {} with {:?}", found.0, found.1, wanted.0, wanted.1)]
    OtherModel {
        /// The model and prompt format that answered.
        found: (String, PromptFormat),
        /// This run's.
        wanted: (String, PromptFormat),
    },
}

/// How asking a language model reports its progress (the command line draws a bar from it).
pub trait LlmProgress: Sync {
    /// The model starts answering the prompts of `method`, `tokens` tokens in all.
    fn lm_start(&self, _method: &Method, _tokens: usize) {}
    /// It ran `tokens` more tokens.
    fn lm_tokens(&self, _tokens: usize) {}
    /// It answered them all.
    fn lm_done(&self) {}
}

impl LlmProgress for () {}

/// What the LLM baselines of one run (a split and a seed) are asked and may learn from.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRunEpisodes {
    /// The run's seed.
    pub seed: u64,
    /// [`split_fingerprint`] of its split.
    pub split: u64,
    /// The held-out groups' episodes at the headline number of context questions: what every
    /// method is scored on.
    pub test: Vec<EvalEpisode>,
    /// The training groups' episodes, drawn as the test groups' ([`super::TestEpisodes::meta_training`]):
    /// what `lm_incontext_ft` learns from.
    pub train: Vec<EvalEpisode>,
    /// The validation groups' episodes: what `lm_incontext_ft` is selected on.
    pub validation: Vec<EvalEpisode>,
}

/// Asks `scorer` every prompt that the LLM baselines of `options` render for `runs`' test
/// episodes, each distinct prompt once, method after method; the trained methods train their
/// adapters on autodiff backend `A` ([`super::llm_trained`], [`super::llm_incontext`]; when
/// `lm_incontext_ft` runs, `lm_fewshot`'s answers come from its pass over the same prompts).
/// The answers are kept in the file at `path` after each method (and each adapter), and with
/// `resume` a run starts from what the file holds and asks only what is missing. `threads` is
/// recorded with each method's cost.
pub fn ask_all<A: AutodiffBackend>(
    task: &EmbeddedSurvey,
    scorer: &ChoiceScorer<A::InnerBackend>,
    threads: usize,
    options: &LlmOptions,
    runs: &[LlmRunEpisodes],
    (path, resume): (&Path, bool),
    progress: &dyn LlmProgress,
) -> Result<(LlmAnswers, LlmRun), EvalError> {
    let (methods, format) = (&options.methods, options.prompt);
    let model = scorer.name().to_owned();
    let file = |error| EvalError::AnswersFile { path: path.to_path_buf(), error };
    let mut answers = match resume && path.exists() {
        true => {
            let bytes = crate::fsutil::read_capped(path, crate::fsutil::MAX_CHECKPOINT_BYTES)
                .map_err(|error| EvalError::Io { path: path.to_path_buf(), error })?;
            LlmAnswers::from_bytes(&bytes, &model, format).map_err(file)?
        }
        false => LlmAnswers::new(),
    };
    let save = |answers: &LlmAnswers| -> Result<(), EvalError> {
        let bytes = answers.to_bytes(&model, format).map_err(file)?;
        crate::fsutil::write_atomic(path, &bytes).map_err(|error| EvalError::Io { path: path.to_path_buf(), error })
    };
    let episodes: Vec<(u64, EvalEpisode)> =
        runs.iter().flat_map(|r| r.test.iter().map(|e| (r.seed, e.clone()))).collect();
    let episodes = &episodes[..];
    // lm_fewshot's answers come from lm_incontext_ft's pass when both run.
    let shared_fewshot = methods.contains(&LmMethod::Fewshot) && methods.contains(&LmMethod::IncontextFt);
    for &method in methods {
        if method == LmMethod::Fewshot && shared_fewshot {
            continue;
        }
        let name = Method::Lm(method);
        let trained = trained_fingerprint(options, method);
        let prompting = |seed| LlmPrompting { method, format, seed, trained, split: 0 };
        let start = std::time::Instant::now();
        let (asked, distinct, tokens) = match method {
            LmMethod::IncontextFt => {
                let with_split = |seed, split| LlmPrompting { method, format, seed, trained, split };
                let fewshot = |seed| LlmPrompting { method: LmMethod::Fewshot, format, seed, trained: 0, split: 0 };
                let outcome = super::llm_incontext::train_all::<A>(
                    task,
                    scorer,
                    threads,
                    options,
                    &with_split,
                    shared_fewshot.then_some(&fewshot as &dyn Fn(u64) -> LlmPrompting),
                    runs,
                    &mut answers,
                    &save,
                    progress,
                )?;
                if let Some((asked, answered, seconds)) = outcome.fewshot {
                    // Its cost: the unadapted block on the shared streams (their pass counts
                    // as lm_incontext_ft's).
                    record(&mut answers, Method::Lm(LmMethod::Fewshot), (asked, answered, 0), seconds, threads);
                }
                outcome.incontext
            }
            _ if method.is_trained() => super::llm_trained::train_all::<A>(
                task,
                scorer,
                threads,
                options,
                &prompting,
                episodes,
                &mut answers,
                &save,
                progress,
            )?,
            _ => {
                let mut prompts = Vec::new();
                for (seed, episode) in episodes {
                    prompts.extend(prompting(*seed).prompts(task, episode)?);
                }
                let asked = prompts.len();
                let prompts = answers.missing(prompts);
                let tokens = scorer.run_tokens(&prompts)?;
                let distinct = prompts.len();
                if distinct > 0 {
                    tracing::info!(method = %name, prompts = distinct, asked, tokens, "language model: prompting");
                    progress.lm_start(&name, tokens);
                    answers.ask(scorer, prompts, &|n| progress.lm_tokens(n))?;
                    progress.lm_done();
                }
                (asked, distinct, tokens)
            }
        };
        if distinct == 0 && answers.costs.iter().any(|c| c.method == name) {
            tracing::info!(method = %name, path = %path.display(), "language model: every answer kept from before");
            continue;
        }
        let seconds = start.elapsed().as_secs_f64();
        tracing::info!(method = %name, seconds, tokens_per_second = tokens as f64 / seconds.max(1e-9), "language model: done");
        record(&mut answers, name, (asked, distinct, tokens), seconds, threads);
        save(&answers)?;
    }
    let costs = methods.iter().filter_map(|&m| answers.costs.iter().find(|c| c.method == Method::Lm(m)));
    let run = LlmRun { model, prompt: format, methods: costs.cloned().collect() };
    Ok((answers, run))
}

/// Records what `method` cost: `(prompts scored, distinct prompts run, tokens run)` in `seconds`
/// on `threads` threads; a resumed method's cost adds to what it had cost before (a method
/// that ran nothing keeps its record).
fn record(
    answers: &mut LlmAnswers,
    method: Method,
    (asked, run, tokens): (usize, usize, usize),
    seconds: f64,
    threads: usize,
) {
    let before = answers.costs.iter().position(|c| c.method == method).map(|i| answers.costs.remove(i));
    if run == 0
        && let Some(before) = before
    {
        answers.costs.push(before);
        return;
    }
    let (run_before, tokens_before, seconds_before) =
        before.map_or((0, 0, 0.0), |c| (c.prompts_run, c.tokens, c.seconds));
    answers.costs.push(LlmMethodRun {
        method,
        prompts_scored: asked,
        prompts_run: run_before + run,
        tokens: tokens_before + tokens,
        seconds: seconds_before + seconds,
        threads,
    });
}

/// An LLM baseline in a run: its prompts' answers, looked up.
pub struct LlmPredictor<'a> {
    prompting: LlmPrompting,
    answers: &'a LlmAnswers,
}

impl<'a> LlmPredictor<'a> {
    /// A predictor reading `answers`, which must hold every prompt it will render.
    pub fn new(prompting: LlmPrompting, answers: &'a LlmAnswers) -> Self {
        Self { prompting, answers }
    }
}

impl Predictor for LlmPredictor<'_> {
    fn name(&self) -> Method {
        Method::Lm(self.prompting.method)
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        episodes
            .iter()
            .map(|e| {
                let prompts = self.prompting.prompts(task, e)?;
                prompts
                    .iter()
                    .zip(&e.targets)
                    .map(|(p, &q)| {
                        let key = self.prompting.answer_key(task, e, &p.text);
                        self.answers.get(&key).map(<[f64]>::to_vec).ok_or_else(|| {
                            EvalError::Baseline(format!(
                                "{}: no answer was computed for group {}'s question {}",
                                self.name(),
                                task.survey.groups[e.group].name,
                                task.survey.questions[q].key
                            ))
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(text: &str) -> ChoicePrompt {
        ChoicePrompt { text: text.into(), options: 2 }
    }

    #[test]
    fn answers_round_trip_and_refuse_corruption_and_other_models() {
        let mut answers = LlmAnswers::new();
        answers.answers.insert(fnv1a("a"), vec![0.25, 0.75]);
        answers.answers.insert(fnv1a("b"), vec![1.0, 0.0]);
        answers.costs.push(LlmMethodRun {
            method: Method::Lm(LmMethod::Base),
            prompts_scored: 4,
            prompts_run: 2,
            tokens: 10,
            seconds: 0.5,
            threads: 2,
        });
        assert_eq!(answers.missing([prompt("a"), prompt("c"), prompt("c"), prompt("d")]), [prompt("c"), prompt("d")]);
        let bytes = answers.to_bytes("m", PromptFormat::Chatml).unwrap();
        assert_eq!(LlmAnswers::from_bytes(&bytes, "m", PromptFormat::Chatml).unwrap(), answers);
        assert_eq!(
            LlmAnswers::from_bytes(&bytes, "m", PromptFormat::Chatml).unwrap().get("a"),
            Some(&[0.25, 0.75][..])
        );
        let err = |b: &[u8]| LlmAnswers::from_bytes(b, "m", PromptFormat::Chatml).unwrap_err().to_string();
        assert!(err(&bytes[..bytes.len() - 1]).contains("size mismatch"));
        assert!(err(&bytes[..10]).contains("truncated"));
        assert!(err(&gpo_core::container::seal(b"GPOMODEL", 3, b"x")).contains("not a gpo LLM answers file"));
        let mut old = bytes.clone();
        old[8] = 1;
        assert!(err(&old).contains("delete it"), "version 1 files (no length field) are refused, saying what to do");
        let mut flipped = bytes.clone();
        flipped[30] ^= 4;
        assert!(err(&flipped).contains("checksum"));
        let mut version = bytes.clone();
        version[8] = 9;
        assert!(err(&version).contains("format version 9"));
        assert!(
            LlmAnswers::from_bytes(&bytes, "other", PromptFormat::Chatml)
                .unwrap_err()
                .to_string()
                .contains("answered by m")
        );
        assert!(LlmAnswers::from_bytes(&bytes, "m", PromptFormat::Alpaca).is_err());
        // Every truncation is an error, never a panic.
        for n in 0..bytes.len() {
            assert!(LlmAnswers::from_bytes(&bytes[..n], "m", PromptFormat::Chatml).is_err(), "{n}");
        }
    }
}
