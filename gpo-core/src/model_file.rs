//! The `.gpo` model file: a GPO model's configuration, provenance and weights in one small,
//! checked, portable file.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `GPOMODEL` |
//! | 4 | format version (u32) |
//! | 8 | payload length (u64) |
//! | 4 | CRC-32 (IEEE) of the payload |
//! | n | payload: postcard-encoded [`GpoConfig`], [`ModelMetadata`], [`WeightDType`] and the named weight tensors |
//!
//! Weights are stored as f32, f16 or bf16, little-endian. Loading checks every field and returns a
//! [`ModelFileError`]; it never panics, and allocates only what the checked payload already holds.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use burn::tensor::backend::Backend;
use half::{bf16, f16};
use serde::{Deserialize, Serialize};

use crate::model::{ConfigError, Gpo, GpoConfig};
use crate::weights::{NamedTensor, WeightError, load_named_tensors, named_tensors};

/// First bytes of every `.gpo` file.
pub const MAGIC: [u8; 8] = *b"GPOMODEL";
/// Version of the layout written by this crate (2: the configuration gained `prior`; version 1
/// files are refused with [`ModelFileError::UnsupportedVersion`]).
pub const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = MAGIC.len() + 4 + 8 + 4;

/// Storage type of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightDType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
}

impl WeightDType {
    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
        }
    }

    /// The name used on the command line and in reports: `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::BF16 => "bf16",
        }
    }

    fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        out.reserve(values.len() * self.size());
        for &v in values {
            match self {
                Self::F32 => out.extend_from_slice(&v.to_le_bytes()),
                Self::F16 => out.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
                Self::BF16 => out.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
            }
        }
    }

    fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Self::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Self::F16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Self::BF16 => bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        }
    }
}

/// Where a model came from: what it expects as input and how it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Identifier of the sentence-embedding model that produced the inputs.
    pub embedding_model: String,
    /// Dimension of those embeddings; equals the config's `dim_x`.
    pub embedding_dim: u64,
    /// Identifier of the text template that turned (question, option) into text.
    pub text_template: String,
    /// Dataset the model was meta-trained on.
    pub dataset: String,
    /// Seed of the training run.
    pub seed: u64,
    /// Number of optimizer updates.
    pub training_steps: u64,
    /// Validation alignment score of the kept model, if measured.
    pub validation_score: Option<f64>,
    /// Method name in the run's results (`gpo`, `gpo_<variant>`).
    pub method: String,
    /// For prior models: how the population prior is computed, as the trainer describes it (for
    /// gpo-train, the JSON of its prior kind); empty otherwise.
    pub prior: String,
    /// For prior models: the meta-training groups the prior is computed from.
    pub prior_groups: Vec<String>,
    /// Version of the crate that wrote the file.
    pub crate_version: String,
}

impl ModelMetadata {
    /// Metadata for a model over `embedding_dim`-dimensional inputs, with this crate's version
    /// and every other field empty or zero.
    pub fn new(embedding_model: &str, embedding_dim: usize, text_template: &str) -> Self {
        Self {
            embedding_model: embedding_model.to_string(),
            embedding_dim: embedding_dim as u64,
            text_template: text_template.to_string(),
            dataset: String::new(),
            seed: 0,
            training_steps: 0,
            validation_score: None,
            method: String::new(),
            prior: String::new(),
            prior_groups: Vec::new(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Why bytes are not a valid `.gpo` model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelFileError {
    /// Fewer bytes than the header.
    #[error("file is truncated: {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    /// The magic bytes are wrong.
    #[error("not a .gpo model file (bad magic bytes)")]
    BadMagic,
    /// Written by an unknown format version.
    #[error("unsupported .gpo format version {found} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
    },
    /// The payload length in the header disagrees with the file size.
    #[error("file size mismatch: header declares a {declared}-byte payload, file holds {actual} bytes")]
    Length {
        /// Declared payload length.
        declared: u64,
        /// Bytes present after the header.
        actual: usize,
    },
    /// The payload checksum is wrong.
    #[error("checksum mismatch (file is corrupted): stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// CRC in the header.
        stored: u32,
        /// CRC of the payload.
        computed: u32,
    },
    /// The payload does not decode.
    #[error("payload does not decode: {0}")]
    Decode(String),
    /// The configuration is invalid.
    #[error("invalid model configuration: {0}")]
    Config(#[from] ConfigError),
    /// Metadata contradicts the configuration.
    #[error("metadata embedding dimension {metadata} differs from the model's dim_x {config}")]
    Dimension {
        /// `metadata.embedding_dim`.
        metadata: u64,
        /// `config.dim_x`.
        config: usize,
    },
    /// A tensor's bytes do not match its shape and the dtype.
    #[error("tensor `{name}`: {bytes} bytes do not hold shape {shape:?} as {dtype}")]
    TensorBytes {
        /// Tensor name.
        name: String,
        /// Declared shape.
        shape: Vec<u64>,
        /// Byte count.
        bytes: usize,
        /// Declared dtype.
        dtype: &'static str,
    },
    /// The weights do not fit the configuration.
    #[error("weights do not fit the configuration: {0}")]
    Weights(#[from] WeightError),
}

#[derive(Serialize, Deserialize)]
struct StoredTensor {
    name: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    config: GpoConfig,
    metadata: ModelMetadata,
    dtype: WeightDType,
    tensors: Vec<StoredTensor>,
}

/// A decoded (or to-be-encoded) model file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    /// The architecture.
    pub config: GpoConfig,
    /// Provenance.
    pub metadata: ModelMetadata,
    /// Storage type of the weights.
    pub dtype: WeightDType,
    /// The weights, as f32 values (already rounded to `dtype` when decoded).
    pub tensors: Vec<NamedTensor>,
}

impl ModelFile {
    /// Captures `model`'s weights.
    pub fn from_model<B: Backend>(
        model: &Gpo<B>,
        config: &GpoConfig,
        metadata: ModelMetadata,
        dtype: WeightDType,
    ) -> Self {
        Self { config: config.clone(), metadata, dtype, tensors: named_tensors::<B, _>(model) }
    }

    /// Encodes the file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let tensors = self
            .tensors
            .iter()
            .map(|t| {
                let mut data = Vec::new();
                self.dtype.encode(&t.values, &mut data);
                StoredTensor { name: t.name.clone(), shape: t.shape.iter().map(|&d| d as u64).collect(), data }
            })
            .collect();
        let payload =
            Payload { config: self.config.clone(), metadata: self.metadata.clone(), dtype: self.dtype, tensors };
        // Serialising plain structs into a Vec cannot fail.
        let payload = postcard::to_allocvec(&payload).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Decodes and checks a file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelFileError> {
        let header = bytes.get(..HEADER_LEN).ok_or(ModelFileError::TooShort(bytes.len()))?;
        if header[..8] != MAGIC {
            return Err(ModelFileError::BadMagic);
        }
        let field = |range: core::ops::Range<usize>| &header[range];
        let version = u32::from_le_bytes(field(8..12).try_into().unwrap_or_default());
        if version != FORMAT_VERSION {
            return Err(ModelFileError::UnsupportedVersion { found: version });
        }
        let declared = u64::from_le_bytes(field(12..20).try_into().unwrap_or_default());
        let stored = u32::from_le_bytes(field(20..24).try_into().unwrap_or_default());
        let payload = &bytes[HEADER_LEN..];
        if declared != payload.len() as u64 {
            return Err(ModelFileError::Length { declared, actual: payload.len() });
        }
        let computed = crc32fast::hash(payload);
        if computed != stored {
            return Err(ModelFileError::Checksum { stored, computed });
        }
        let (decoded, rest): (Payload, _) =
            postcard::take_from_bytes(payload).map_err(|e| ModelFileError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ModelFileError::Decode(alloc::format!("{} trailing bytes", rest.len())));
        }
        decoded.config.validate()?;
        if decoded.metadata.embedding_dim != decoded.config.dim_x as u64 {
            return Err(ModelFileError::Dimension {
                metadata: decoded.metadata.embedding_dim,
                config: decoded.config.dim_x,
            });
        }
        let dtype = decoded.dtype;
        let tensors = decoded
            .tensors
            .into_iter()
            .map(|t| {
                let shape: Option<Vec<usize>> = t.shape.iter().map(|&d| usize::try_from(d).ok()).collect();
                let numel = shape.as_ref().and_then(|s| s.iter().try_fold(1usize, |n, &d| n.checked_mul(d)));
                match (shape, numel.and_then(|n| n.checked_mul(dtype.size()))) {
                    (Some(shape), Some(len)) if len == t.data.len() => {
                        Ok(NamedTensor { values: dtype.decode(&t.data), name: t.name, shape })
                    }
                    _ => Err(ModelFileError::TensorBytes {
                        bytes: t.data.len(),
                        name: t.name,
                        shape: t.shape,
                        dtype: dtype.name(),
                    }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { config: decoded.config, metadata: decoded.metadata, dtype, tensors })
    }

    /// Builds the model on `device` with the file's weights.
    pub fn to_model<B: Backend>(&self, device: &B::Device) -> Result<Gpo<B>, ModelFileError> {
        let model = self.config.init::<B>(device)?;
        Ok(load_named_tensors(model, &self.tensors)?)
    }
}
