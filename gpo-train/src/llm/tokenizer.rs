//! The tokenizer a GGUF file carries in its metadata (`tokenizer.ggml.*`), built as a
//! `tokenizers::Tokenizer`: GPT-2-style byte-level BPE (`tokenizer.ggml.model = "gpt2"`) from the
//! token list and merges, control tokens (`token_type` 3) as special added tokens, and the
//! pre-tokenizer that `tokenizer.ggml.pre` names.

use serde_json::json;
use tokenizers::Tokenizer;

use super::gguf::{Gguf, GgufError, Value};

/// Vocabularies larger than this are refused (real ones are ≤ 256k).
pub const MAX_VOCAB: usize = 1 << 20;

/// ggml's token type of a control token (`<|im_start|>` and the like).
const CONTROL: u64 = 3;
/// ggml's token type of a user-defined token.
const USER_DEFINED: u64 = 4;

/// The pre-tokenizers of `tokenizer.ggml.pre` this builder knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's byte-level split (`default`, `gpt2`).
    Gpt2,
    /// SmolLM: every digit on its own, then GPT-2's byte-level split (the models' own
    /// `tokenizer.json`: `Digits { individual_digits: true }`, then `ByteLevel`).
    SmolLm,
}

impl PreTokenizer {
    /// From `tokenizer.ggml.pre`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "default" | "gpt2" => Some(Self::Gpt2),
            "smollm" => Some(Self::SmolLm),
            _ => None,
        }
    }

    fn json(self) -> serde_json::Value {
        let byte_level =
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        match self {
            Self::Gpt2 => byte_level,
            Self::SmolLm => json!({
                "type": "Sequence",
                "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level],
            }),
        }
    }
}

fn strings<'a>(gguf: &'a Gguf, key: &str) -> Result<Vec<&'a str>, GgufError> {
    gguf.array(key)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(GgufError::Metadata { key: key.to_owned(), message: format!("item {i} is not a string") }),
        })
        .collect()
}

/// Builds the tokenizer of a GGUF file (no special tokens are added around an encoded text: a
/// prompt template writes its own).
pub fn gguf_tokenizer(gguf: &Gguf) -> Result<Tokenizer, GgufError> {
    let model = gguf.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(GgufError::Metadata {
            key: "tokenizer.ggml.model".into(),
            message: format!("{model:?}: only byte-level BPE (\"gpt2\") is supported"),
        });
    }
    let pre_name = gguf.string("tokenizer.ggml.pre").unwrap_or("default");
    let pre = PreTokenizer::from_name(pre_name).ok_or_else(|| GgufError::Metadata {
        key: "tokenizer.ggml.pre".into(),
        message: format!("{pre_name:?}: known are \"default\", \"gpt2\" and \"smollm\""),
    })?;
    let tokens = strings(gguf, "tokenizer.ggml.tokens")?;
    if tokens.is_empty() || tokens.len() > MAX_VOCAB {
        return Err(GgufError::Metadata {
            key: "tokenizer.ggml.tokens".into(),
            message: format!("{} tokens (1–{MAX_VOCAB})", tokens.len()),
        });
    }
    let types: Vec<u64> = match gguf.metadata.get("tokenizer.ggml.token_type") {
        None => vec![1; tokens.len()],
        Some(_) => gguf.array("tokenizer.ggml.token_type")?.iter().map(|v| v.as_u64().unwrap_or(0)).collect(),
    };
    if types.len() != tokens.len() {
        return Err(GgufError::Metadata {
            key: "tokenizer.ggml.token_type".into(),
            message: format!("{} types for {} tokens", types.len(), tokens.len()),
        });
    }
    let merges = strings(gguf, "tokenizer.ggml.merges")?;
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        if vocab.insert((*token).to_owned(), json!(id)).is_some() {
            return Err(GgufError::Metadata {
                key: "tokenizer.ggml.tokens".into(),
                message: format!("token {token:?} appears twice (second at id {id})"),
            });
        }
    }
    for (i, merge) in merges.iter().enumerate() {
        let mut parts = merge.split(' ');
        let ok = matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty());
        if !ok {
            return Err(GgufError::Metadata {
                key: "tokenizer.ggml.merges".into(),
                message: format!("merge {i} {merge:?} is not two tokens separated by one space"),
            });
        }
    }
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, ty))| matches!(**ty, CONTROL | USER_DEFINED))
        .map(|(id, (token, ty))| {
            json!({
                "id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": *ty == USER_DEFINED, "special": *ty == CONTROL,
            })
        })
        .collect();
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre.json(),
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });
    Tokenizer::from_bytes(spec.to_string().as_bytes()).map_err(|e| GgufError::Metadata {
        key: "tokenizer.ggml.*".into(),
        message: format!("the tokenizer does not build: {e}"),
    })
}
