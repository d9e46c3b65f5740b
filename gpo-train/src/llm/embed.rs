//! LLM embeddings as the paper made them (docs/original.md §2.3): the mean over a text's tokens of the
//! final normalised hidden state of a causal language model.
//!
//! The texts of one question (its prompt with each option appended as the response) share a
//! long token prefix. A causal model's states for that prefix do not depend on what follows, so
//! the prefix runs once (its keys and values kept in a [`KvCache`]) and only each option's tokens
//! run after it, all options of a question as one batch. The result equals one pass per text,
//! up to the order of the backend's sums.

use std::path::Path;

use burn::prelude::*;

use super::LlmError;
use super::llama::{KvCache, token_ids};
use super::lm::LanguageModel;
use crate::embed::{EmbedError, TextEmbedder, embed_in_parts};

/// Texts share a prefix worth caching when at least this many tokens agree.
const MIN_SHARED_PREFIX: usize = 8;

/// A GGUF causal language model as a [`TextEmbedder`].
pub struct LlmEmbedder<B: Backend> {
    lm: LanguageModel<B>,
    id: String,
    threads: usize,
}

impl<B: Backend> LlmEmbedder<B> {
    /// Opens a `.gguf` file, or the wheel/zip holding one, on `device`.
    pub fn open(path: &Path, device: &B::Device) -> Result<Self, LlmError> {
        let lm = LanguageModel::open(path, device)?;
        Ok(Self {
            id: format!("gguf/{}", lm.name()),
            lm,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        })
    }

    /// Runs groups of texts on `threads` threads (default: the available cores). Each group is
    /// computed the same way on any thread, so results do not depend on the count.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Token ids of a text (BOS first where the model wants it).
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        self.lm.tokens(text).map_err(|e| EmbedError::Tokenizer(e.to_string()))
    }

    /// Mean states of texts that share `prefix` tokens (then each its own suffix), `n × dim`.
    fn embed_group(&self, prefix: &[u32], suffixes: &[&[u32]]) -> Result<Vec<f32>, EmbedError> {
        let (model, device) = (self.lm.model(), self.lm.device());
        let dim = model.config().d_model;
        let read = |t: Tensor<B, 2>| {
            t.into_data().into_vec::<f32>().map_err(|e| EmbedError::Tokenizer(format!("reading states: {e:?}")))
        };
        let mut cache: KvCache<B> = model.cache();
        let prefix_sum = match prefix.is_empty() {
            true => vec![0f32; dim],
            false => read(model.forward(token_ids(&[prefix], device), &mut cache).sum_dim(1).reshape([1, dim]))?,
        };
        let mut out = Vec::with_capacity(suffixes.len() * dim);
        let longest = suffixes.iter().map(|s| s.len()).max().unwrap_or(0);
        let suffix_states = match longest {
            0 => None,
            _ => {
                let mut cache = if prefix.is_empty() { model.cache() } else { cache.repeat(suffixes.len()) };
                let hidden = model.forward(token_ids(suffixes, device), &mut cache);
                Some(read(hidden.reshape([suffixes.len() * longest, dim]))?)
            }
        };
        for (row, suffix) in suffixes.iter().enumerate() {
            let n = prefix.len() + suffix.len();
            if n == 0 {
                return Err(EmbedError::Tokenizer("a text has no tokens: its mean state is undefined".into()));
            }
            let mut sum: Vec<f64> = prefix_sum.iter().map(|&x| f64::from(x)).collect();
            if let Some(states) = &suffix_states {
                for state in states[row * longest * dim..].chunks_exact(dim).take(suffix.len()) {
                    sum.iter_mut().zip(state).for_each(|(s, &x)| *s += f64::from(x));
                }
            }
            out.extend(sum.iter().map(|s| (s / n as f64) as f32));
        }
        Ok(out)
    }
}

/// Splits token sequences, in order, into runs that share a prefix of at least
/// [`MIN_SHARED_PREFIX`] tokens and at least half of each text (the options of one question share
/// all but their last few tokens; two questions share only the template's opening); each run is
/// `(range, shared prefix length)`.
pub fn prefix_groups(tokens: &[Vec<u32>]) -> Vec<(std::ops::Range<usize>, usize)> {
    let common = |a: &[u32], b: &[u32]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let mut groups = Vec::new();
    let mut start = 0;
    while start < tokens.len() {
        // Keep at least one token of every text out of the prefix, so each has its own pass.
        let mut shared = tokens[start].len().saturating_sub(1);
        let mut end = start + 1;
        while end < tokens.len() {
            let with_next = shared.min(common(&tokens[start], &tokens[end])).min(tokens[end].len().saturating_sub(1));
            let most = |t: &Vec<u32>| 2 * with_next >= t.len();
            if with_next < MIN_SHARED_PREFIX || !most(&tokens[start]) || !most(&tokens[end]) {
                break;
            }
            shared = with_next;
            end += 1;
        }
        if end == start + 1 {
            shared = 0;
        }
        groups.push((start..end, shared));
        start = end;
    }
    groups
}

impl<B: Backend> TextEmbedder for LlmEmbedder<B> {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.lm.model().config().d_model
    }

    fn parallelism(&self) -> usize {
        self.threads
    }

    fn embeds_in_order(&self) -> bool {
        true
    }

    fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let tokens: Vec<Vec<u32>> = texts.iter().map(|t| self.tokens(t)).collect::<Result<_, _>>()?;
        let groups = prefix_groups(&tokens);
        let run = |(range, shared): &(std::ops::Range<usize>, usize)| {
            let suffixes: Vec<&[u32]> = tokens[range.clone()].iter().map(|t| &t[*shared..]).collect();
            self.embed_group(&tokens[range.start][..*shared], &suffixes)
        };
        // Contiguous runs of groups per thread; each group is computed alone, whichever thread
        // runs it, so the results do not depend on the count.
        embed_in_parts(&groups, self.threads, |part| {
            let mut out = Vec::with_capacity(part.iter().map(|(r, _)| r.len()).sum::<usize>() * self.dim());
            for group in part {
                out.extend(run(group)?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_group_by_shared_prefix_and_keep_a_token_of_their_own() {
        let q1: Vec<u32> = (0..20).collect();
        let with = |base: &[u32], tail: &[u32]| -> Vec<u32> { base.iter().chain(tail).copied().collect() };
        let q2: Vec<u32> = (0..10).chain(50..70).collect(); // shares 10 of its 30 tokens with q1
        let tokens = vec![
            with(&q1, &[100, 101]),
            with(&q1, &[102]),
            with(&q1, &[103, 104, 105]),
            with(&q2, &[1]),
            with(&q2, &[2]),
            with(&q1[..5], &[9]), // shares only 5 tokens: a group of its own
            q1.clone(),
            q1.clone(), // identical texts: the prefix stops one token short of them
        ];
        let groups = prefix_groups(&tokens);
        assert_eq!(groups, vec![(0..3, 20), (3..5, 30), (5..6, 0), (6..8, 19)]);
        assert_eq!(prefix_groups(&[]), vec![]);
        assert_eq!(prefix_groups(&[vec![1]]), vec![(0..1, 0)]);
    }
}
