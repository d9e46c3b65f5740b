//! Sentence embeddings of (question, option) texts: prompt templates, a BERT encoder on Burn,
//! model files read from a folder or a wheel, an on-disk embedding cache, and import of vectors
//! made elsewhere (for example 4096-d LLM embeddings as in the paper, docs/original.md §2.3).

pub mod bench;
pub mod bert;
pub mod cache;
pub mod import;
pub mod model_source;
pub mod template;

use std::path::PathBuf;
use std::time::Instant;

pub use bench::{BenchRow, BenchTable, ReferenceError, ReferenceRun, bench_embed, bench_sentence_transformers};
pub use bert::{EncoderError, SentenceEncoder, encoder_file, is_encoder_file, open_encoder, read_encoder_file};
pub use cache::{EmbeddingCache, Precision};
pub use gpo_core::text::{BertConfig, EncoderDType, EncoderFile, EncoderSpec};
pub use model_source::ModelFiles;
pub use template::{SurveyTemplate, Template};

pub(crate) use gpo_core::parallel::in_parts;

/// Everything that can go wrong while embedding, caching or importing; each variant names the
/// file (or text) concerned.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, not a `source`: a chain would print it twice).
        error: std::io::Error,
    },
    /// A model folder or archive is unusable (missing file, bad zip, bad JSON, bad weights).
    #[error("model {path}: {message}")]
    Model {
        /// The folder or archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer failed on some input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A cache file is corrupt, truncated, of another version, or made for another model/template.
    #[error("embedding cache {path}: {message}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An imported vector or text file is malformed.
    #[error("import {path}: {message}")]
    Import {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A text needed for training has no vector in the cache.
    #[error(
        "question {question:?}, option {option}: no embedding for this text in the cache (model {model}, template {template})"
    )]
    MissingText {
        /// Key of the question.
        question: String,
        /// 0-based option index.
        option: usize,
        /// Model id of the cache.
        model: String,
        /// Template id of the cache.
        template: String,
    },
    /// A template id is not known, or a template cannot render a question.
    #[error("template: {0}")]
    Template(String),
    /// The sentence encoder failed.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// A vector does not have the dimension the cache or model expects.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    Dimension {
        /// The cache's or model's dimension.
        expected: usize,
        /// The vector's dimension.
        got: usize,
    },
}

impl EmbedError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        move |error| Self::Io { path: path.into(), error }
    }

    pub(crate) fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Model { path: path.into(), message: message.into() }
    }
}

/// How embedding reports its progress: callbacks that the command line turns into a progress bar
/// (the library draws nothing itself). `()` ignores them.
pub trait EmbedProgress {
    /// Embedding starts: `texts` texts in all.
    fn embed_start(&self, _texts: usize) {}
    /// `texts` more texts are embedded.
    fn embedded(&self, _texts: usize) {}
    /// They are all embedded (or embedding failed).
    fn embed_done(&self) {}
}

impl EmbedProgress for () {}

/// Anything that turns texts into fixed-size vectors (gpo-core's BERT encoder, the LLM embedder, or a
/// stub in tests).
pub trait TextEmbedder {
    /// Identifier recorded in caches, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    fn model_id(&self) -> &str;
    /// Length of each vector.
    fn dim(&self) -> usize;
    /// Embeds one batch; returns `texts.len() × dim` values, row-major.
    fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<f32>, EmbedError>;
    /// How many forward passes one [`TextEmbedder::embed_batch`] call runs side by side (it splits
    /// its texts into that many parts); [`embed_texts`] hands it that many batches at a time.
    fn parallelism(&self) -> usize {
        1
    }
    /// Whether [`embed_texts`] must hand over texts in their given order (a causal model shares the
    /// prompt prefix of consecutive texts) rather than grouped by length.
    fn embeds_in_order(&self) -> bool {
        false
    }
}

/// [`in_parts`] for embedding vectors.
pub(crate) fn embed_in_parts<T: Sync>(
    items: &[T],
    threads: usize,
    embed: impl Fn(&[T]) -> Result<Vec<f32>, EmbedError> + Sync,
) -> Result<Vec<f32>, EmbedError> {
    in_parts(items, threads, embed, || EmbedError::Tokenizer("an embedding thread panicked".into()))
}

/// Embeds `texts` in batches of `batch_size` (texts per forward pass) and returns
/// `texts.len() × dim` values in the input order. Texts are grouped by length first so that a
/// batch pads little (the same trick sentence-transformers uses); an embedder that runs several
/// forward passes at once gets that many batches per call. `on_batch` is told how many texts each
/// finished call held.
pub fn embed_texts<E: TextEmbedder + ?Sized>(
    embedder: &mut E,
    texts: &[&str],
    batch_size: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<f32>, EmbedError> {
    let dim = embedder.dim();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    // Byte length is a cheap, good proxy for token count; stable sort keeps ties in input order.
    if !embedder.embeds_in_order() {
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
    }
    let mut out = vec![0.0f32; texts.len() * dim];
    for chunk in order.chunks(batch_size.max(1) * embedder.parallelism().max(1)) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let started = Instant::now();
        let vectors = embedder.embed_batch(&batch)?;
        if vectors.len() != batch.len() * dim {
            return Err(EmbedError::Dimension { expected: batch.len() * dim, got: vectors.len() });
        }
        for (row, &i) in vectors.chunks_exact(dim).zip(chunk) {
            out[i * dim..(i + 1) * dim].copy_from_slice(row);
        }
        tracing::trace!(batch = batch.len(), ms = started.elapsed().as_secs_f64() * 1e3, "embedded batch");
        on_batch(batch.len());
    }
    Ok(out)
}
