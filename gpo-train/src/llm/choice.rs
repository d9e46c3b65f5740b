//! Reading a language model's answer to a multiple-choice prompt: the distribution of its next
//! token over the option letters (docs/original.md §7, `get_next_word_probabilities` + `get_choice_probs`).
//!
//! For each option letter the probability is that of the most likely vocabulary token that
//! decodes to the letter, surrounding whitespace ignored (`A` and ` A`: the original took the
//! first, i.e. the highest, such token among the top 200); the letters of a question are then
//! normalised to sum to 1. Two bugs of the original are fixed: every letter's probability comes
//! from the full softmax (the original kept the top 200 tokens and gave a missing letter the
//! *raw* minimum logit, mixing logits with probabilities), and a prompt longer than the model's
//! context is an error (the original cut it on the right, losing the question it asked).
//!
//! Prompts that share a long prefix (the few-shot prompts of one group) run it once: its keys and
//! values are kept in a [`KvCache`] and each prompt's own tokens run after it, several prompts
//! per batch.

use std::path::Path;

use burn::prelude::*;

use super::LlmError;
use super::embed::prefix_groups;
use super::llama::{KvCache, LlamaTail, token_ids};
use super::lm::LanguageModel;
use super::lora::{SharedStreams, TailBatch};
use crate::embed::in_parts;

/// A prompt whose next token answers a question with `options` lettered options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChoicePrompt {
    /// The whole prompt.
    pub text: String,
    /// How many options (letters A, B, …) it offers.
    pub options: usize,
}

/// A batch of continuations after a shared prefix holds at most this many bytes of repeated
/// keys and values.
const BATCH_CACHE_BYTES: usize = 256 << 20;
/// At most this many prompts run as one batch.
const MAX_BATCH: usize = 16;

/// A causal language model answering multiple-choice prompts.
#[derive(Debug)]
pub struct ChoiceScorer<B: Backend> {
    lm: LanguageModel<B>,
    /// Per letter A–Z, the ids of the tokens that decode to it.
    letter_ids: Vec<Vec<u32>>,
    threads: usize,
}

impl<B: Backend> ChoiceScorer<B> {
    /// Opens a `.gguf` file, or the wheel/zip holding one, on `device`.
    pub fn open(path: &Path, device: &B::Device) -> Result<Self, LlmError> {
        Ok(Self::new(LanguageModel::open(path, device)?))
    }

    /// A scorer over a loaded model.
    pub fn new(lm: LanguageModel<B>) -> Self {
        let mut letter_ids = vec![Vec::new(); 26];
        let tokenizer = lm.tokenizer();
        for id in 0..tokenizer.get_vocab_size(true) as u32 {
            if let Ok(text) = tokenizer.decode(&[id], false)
                && let [c] = text.trim().as_bytes()
                && c.is_ascii_uppercase()
            {
                letter_ids[usize::from(c - b'A')].push(id);
            }
        }
        Self { lm, letter_ids, threads: std::thread::available_parallelism().map_or(1, usize::from) }
    }

    /// Runs prompts on `threads` threads (default: the available cores). A group of prompts
    /// sharing a prefix is computed the same way on any thread, so results do not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The model's name (`SmolLM2-135M-Instruct.Q4_1`).
    pub fn name(&self) -> &str {
        self.lm.name()
    }

    /// The ids of the tokens read as the answer letter `letter` (`'A'` …).
    pub fn letter_tokens(&self, letter: char) -> &[u32] {
        match letter {
            'A'..='Z' => &self.letter_ids[letter as usize - 'A' as usize],
            _ => &[],
        }
    }

    /// The model's last `blocks` blocks with this scorer's letter tokens, for adapters
    /// ([`super::lora`]); its answers are this scorer's (`ChoiceScorer::choose`) up to f32 sums.
    pub fn tail(&self, blocks: usize) -> Result<LlamaTail<B>, LlmError> {
        let letters: Vec<Vec<u32>> = self.letter_ids.iter().take_while(|ids| !ids.is_empty()).cloned().collect();
        self.lm.model().tail(blocks, &letters).map_err(LlmError::Prompt)
    }

    /// The residual streams entering block `block` for `prompts` (checked as
    /// [`ChoiceScorer::tokens`] checks them), one `[tokens, d_model]` tensor per prompt;
    /// `on_tokens` is told the tokens of each finished batch.
    pub fn residuals(
        &self,
        prompts: &[ChoicePrompt],
        block: usize,
        on_tokens: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Tensor<B, 2>>, LlmError> {
        let tokens = self.tokens(prompts)?;
        let (model, device) = (self.lm.model(), self.lm.device());
        // Batches of at most MAX_BATCH prompts, the same for any number of threads, spread over
        // the threads: a prompt's stream does not depend on the threads.
        let batches: Vec<&[Vec<u32>]> = tokens.chunks(MAX_BATCH).collect();
        let run = |part: &[&[Vec<u32>]]| {
            let mut streams = Vec::new();
            for chunk in part {
                let rows: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
                let x = model.residual(token_ids(&rows, device), block);
                let d = x.dims()[2];
                for (row, t) in chunk.iter().enumerate() {
                    streams.push(x.clone().slice([row..row + 1, 0..t.len(), 0..d]).reshape([t.len(), d]));
                }
                on_tokens(chunk.iter().map(Vec::len).sum());
            }
            Ok(streams)
        };
        in_parts(&batches, self.threads, run, || {
            LlmError::Prompt("a thread computing residual streams panicked".into())
        })
    }

    /// [`ChoiceScorer::residuals`] with each prefix shared by consecutive prompts (as
    /// [`ChoiceScorer::choose`] finds them) run and kept once: the few-shot prompts of a group
    /// cost their ~2,000-token context once, not once per question. A prompt's stream is the
    /// one [`ChoiceScorer::residuals`] gives, up to f32 sums in another order; it does not
    /// depend on the threads.
    pub fn shared_residuals(
        &self,
        prompts: &[ChoicePrompt],
        block: usize,
        on_tokens: &(dyn Fn(usize) + Sync),
    ) -> Result<SharedStreams<B>, LlmError> {
        let tokens = self.tokens(prompts)?;
        let groups = prefix_groups(&tokens);
        let (model, device) = (self.lm.model(), self.lm.device());
        let c = model.config();
        let d = c.d_model;
        type Group<B> = (Option<Tensor<B, 2>>, Vec<Tensor<B, 2>>);
        let run = |part: &[(std::ops::Range<usize>, usize)]| -> Result<Vec<Group<B>>, LlmError> {
            let mut out = Vec::new();
            for (range, shared) in part {
                let shared = *shared;
                let mut cache = model.cache();
                let prefix = (shared > 0).then(|| {
                    let ids = token_ids(&[&tokens[range.start][..shared]], device);
                    model.residual_after(ids, &mut cache, block).reshape([shared, d])
                });
                let suffixes: Vec<&[u32]> = tokens[range.clone()].iter().map(|t| &t[shared..]).collect();
                let longest = suffixes.iter().map(|s| s.len()).max().unwrap_or(0);
                let row_bytes = (shared + longest) * block.max(1) * 2 * c.n_kv_heads * c.head_dim() * 4;
                let batch = (BATCH_CACHE_BYTES / row_bytes.max(1)).clamp(1, MAX_BATCH);
                let mut own = Vec::with_capacity(suffixes.len());
                for chunk in suffixes.chunks(batch) {
                    let mut cache = match prefix.is_some() {
                        true => cache.repeat(chunk.len()),
                        false => model.cache(),
                    };
                    let x = model.residual_after(token_ids(chunk, device), &mut cache, block);
                    for (row, s) in chunk.iter().enumerate() {
                        own.push(x.clone().slice([row..row + 1, 0..s.len(), 0..d]).reshape([s.len(), d]));
                    }
                }
                on_tokens(shared + suffixes.iter().map(|s| s.len()).sum::<usize>());
                out.push((prefix, own));
            }
            Ok(out)
        };
        let groups = in_parts(&groups, self.threads, run, || {
            LlmError::Prompt("a thread computing residual streams panicked".into())
        })?;
        let (mut prefixes, mut parts) = (Vec::new(), Vec::with_capacity(prompts.len()));
        for (prefix, own) in groups {
            let index = prefix.map(|p| {
                prefixes.push(p);
                prefixes.len() - 1
            });
            parts.extend(own.into_iter().map(|s| (index, s)));
        }
        let parts = parts.into_iter().zip(prompts).map(|((p, s), prompt)| (p, s, prompt.options)).collect();
        SharedStreams::new(prefixes, parts).map_err(LlmError::Prompt)
    }

    /// [`ChoiceScorer::residuals`] stacked for a [`LlamaTail`] starting at block `block`.
    pub fn tail_batch(&self, prompts: &[ChoicePrompt], block: usize) -> Result<TailBatch<B>, LlmError> {
        let streams = self.residuals(prompts, block, &|_| {})?;
        Ok(TailBatch::new(&streams, prompts.iter().map(|p| p.options).collect()))
    }

    /// Token ids of every prompt, checked against the model's context and letters.
    pub fn tokens(&self, prompts: &[ChoicePrompt]) -> Result<Vec<Vec<u32>>, LlmError> {
        let context = self.lm.model().config().context;
        prompts
            .iter()
            .enumerate()
            .map(|(i, prompt)| {
                let bad = |message: String| LlmError::Prompt(format!("prompt {}: {message}", i + 1));
                let tokens = self.lm.tokens(&prompt.text).map_err(|e| bad(e.to_string()))?;
                if tokens.is_empty() {
                    return Err(bad("no tokens".into()));
                }
                if let Some(limit) = context
                    && tokens.len() > limit
                {
                    return Err(bad(format!("{} tokens, the model's context holds {limit}", tokens.len())));
                }
                if !(1..=26).contains(&prompt.options) {
                    return Err(bad(format!("{} options; 1–26 can be lettered", prompt.options)));
                }
                if let Some(l) = (0..prompt.options).find(|&l| self.letter_ids[l].is_empty()) {
                    return Err(bad(format!(
                        "no token of the vocabulary reads as the letter {}",
                        (b'A' + l as u8) as char
                    )));
                }
                Ok(tokens)
            })
            .collect()
    }

    /// The tokens [`ChoiceScorer::choose`] runs for `prompts`: a prefix shared by consecutive
    /// prompts counts once.
    pub fn run_tokens(&self, prompts: &[ChoicePrompt]) -> Result<usize, LlmError> {
        let tokens = self.tokens(prompts)?;
        Ok(prefix_groups(&tokens)
            .iter()
            .map(|(range, shared)| shared + tokens[range.clone()].iter().map(|t| t.len() - shared).sum::<usize>())
            .sum())
    }

    /// The next-token distribution over each prompt's option letters, in prompt order.
    /// `on_tokens` is told how many tokens each finished group of prompts ran.
    pub fn choose(
        &self,
        prompts: &[ChoicePrompt],
        on_tokens: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Vec<f64>>, LlmError> {
        let tokens = self.tokens(prompts)?;
        let groups = prefix_groups(&tokens);
        let run = |part: &[(std::ops::Range<usize>, usize)]| {
            let mut out = Vec::new();
            for (range, shared) in part {
                let suffixes: Vec<&[u32]> = tokens[range.clone()].iter().map(|t| &t[*shared..]).collect();
                let options: Vec<usize> = prompts[range.clone()].iter().map(|p| p.options).collect();
                out.extend(self.choose_group(&tokens[range.start][..*shared], &suffixes, &options)?);
                on_tokens(shared + suffixes.iter().map(|s| s.len()).sum::<usize>());
            }
            Ok(out)
        };
        in_parts(&groups, self.threads, run, || LlmError::Prompt("a scoring thread panicked".into()))
    }

    /// Letter distributions of prompts that share `prefix` tokens, then each its own (non-empty)
    /// suffix.
    fn choose_group(&self, prefix: &[u32], suffixes: &[&[u32]], options: &[usize]) -> Result<Vec<Vec<f64>>, LlmError> {
        let (model, device) = (self.lm.model(), self.lm.device());
        let c = model.config();
        let d = c.d_model;
        let mut cache: KvCache<B> = model.cache();
        if !prefix.is_empty() {
            model.forward(token_ids(&[prefix], device), &mut cache);
        }
        let longest = suffixes.iter().map(|s| s.len()).max().unwrap_or(0);
        let row_bytes = (prefix.len() + longest) * c.n_layers * 2 * c.n_kv_heads * c.head_dim() * 4;
        let batch = (BATCH_CACHE_BYTES / row_bytes.max(1)).clamp(1, MAX_BATCH);
        let mut out = Vec::with_capacity(suffixes.len());
        for (chunk, options) in suffixes.chunks(batch).zip(options.chunks(batch)) {
            let mut cache = match prefix.is_empty() {
                true => model.cache(),
                false => cache.repeat(chunk.len()),
            };
            let hidden = model.forward(token_ids(chunk, device), &mut cache);
            let last: Vec<Tensor<B, 2>> = chunk
                .iter()
                .enumerate()
                .map(|(row, s)| hidden.clone().slice([row..row + 1, s.len() - 1..s.len()]).reshape([1, d]))
                .collect();
            let logits = model.logits(Tensor::cat(last, 0).unsqueeze::<3>());
            let vocab = logits.dims()[2];
            let values =
                logits.into_data().into_vec::<f32>().map_err(|e| LlmError::Prompt(format!("reading logits: {e:?}")))?;
            for (row, &n) in values.chunks_exact(vocab).zip(options) {
                out.push(self.letter_distribution(row, n)?);
            }
        }
        Ok(out)
    }

    /// The distribution over the first `options` letters of one next-token logit row.
    fn letter_distribution(&self, logits: &[f32], options: usize) -> Result<Vec<f64>, LlmError> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + logits.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln();
        let mut p: Vec<f64> = self.letter_ids[..options]
            .iter()
            .map(|ids| ids.iter().map(|&id| (logits[id as usize] as f64 - lse).exp()).fold(0.0, f64::max))
            .collect();
        let sum: f64 = p.iter().sum();
        if !(sum > 0.0 && sum.is_finite()) {
            return Err(LlmError::Prompt(format!("the option letters' probabilities sum to {sum}")));
        }
        p.iter_mut().for_each(|x| *x /= sum);
        Ok(p)
    }
}
