//! The encoder file: one sentence encoder (its id, configuration, pooling, tokenizer and weights)
//! in one sealed, checked file, in f32, f16 or int8.
//!
//! Layout: a [`crate::container`] of magic `GPOENCOD` whose payload is postcard-encoded: the
//! [`EncoderSpec`], the `tokenizer.json` bytes, the [`EncoderDType`] and the checkpoint tensors in
//! [`BertConfig::checkpoint_tensors`] order. In int8, every 2-D tensor (the embedding tables and
//! the linear weights, `[rows, cols]` as in the checkpoint) is stored as one i8 per value and one
//! f32 scale per block of [`INT8_BLOCK`] consecutive values of a row (the row's last block may be
//! shorter): `value ≈ q · scale`, `scale = max |block| / 127`, symmetric, round to nearest. The
//! 1-D tensors (biases, LayerNorm) stay f32. The weights are dequantised to f32 when the encoder is
//! built.
//!
//! Why blocks of 128 and not one scale per row (measured on all-MiniLM-L6-v2, worst cosine against
//! f32 over the reference texts of `fixtures/embed/minilm_reference.json`): one scale per row
//! 0.99633, per row for the embeddings and per 128 for the linear weights 0.99914, per 64 for every
//! tensor 0.99945, per 32 0.99955. A row of a linear weight mixes inputs of very different
//! ranges, and one outlier sets the step of the whole row; blocks of 128 cost 3% more bytes than
//! one scale per row.

//! Reading checks everything before the model is built: the configuration's sizes are bounded
//! ([`BertConfig::validate`]), every tensor must be the one the configuration lists, with its
//! shape, as many bytes as the shape and dtype need, and finite values.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::str::FromStr;

use burn::tensor::backend::Backend;
use half::f16;
use serde::{Deserialize, Serialize};

use super::{BertConfig, EncoderError, EncoderSpec, SentenceEncoder};
use crate::container::{self, ContainerError, FieldError, FieldReader};
use crate::weights::NamedTensor;

/// First bytes of every encoder file.
pub const MAGIC: [u8; 8] = *b"GPOENCOD";
/// Version of the layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;
/// Values of a row sharing one int8 scale.
pub const INT8_BLOCK: usize = 128;
/// Largest `tokenizer.json` an encoder file may carry (MiniLM's is 0.7 MB).
const MAX_TOKENIZER_BYTES: usize = 64 << 20;

/// How an encoder file stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncoderDType {
    /// 32-bit floats: the checkpoint's values.
    F32,
    /// 16-bit floats.
    F16,
    /// 8-bit integers with one f32 scale per [`INT8_BLOCK`] values of a row of every 2-D tensor;
    /// 1-D tensors in f32.
    Int8,
}

impl EncoderDType {
    /// Every storage type.
    pub const ALL: [EncoderDType; 3] = [Self::F32, Self::F16, Self::Int8];

    /// The name on the command line: `f32`, `f16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Int8 => "int8",
        }
    }
}

impl FromStr for EncoderDType {
    type Err = EncoderFileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| EncoderFileError::Invalid(format!("unknown encoder dtype `{s}`: expected f32, f16 or int8")))
    }
}

impl core::fmt::Display for EncoderDType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not a usable encoder file, or an encoder cannot be written as one.
#[derive(Debug, thiserror::Error)]
pub enum EncoderFileError {
    /// The container is damaged, of another kind or of another version.
    #[error("{}", container_message(.0))]
    Container(ContainerError),
    /// A field of the payload does not decode.
    #[error("encoder file: payload does not decode: {0}")]
    Decode(FieldError),
    /// The file could not be encoded.
    #[error("encoder file: cannot encode: {0}")]
    Encode(String),
    /// The payload decodes but is inconsistent (the field or tensor is named).
    #[error("encoder file: {0}")]
    Invalid(String),
    /// The encoder it describes cannot be built.
    #[error("encoder file: {0}")]
    Encoder(EncoderError),
}

crate::cause_in_message!(EncoderFileError { Decode(FieldError), Encoder(EncoderError) });

fn container_message(error: &ContainerError) -> String {
    match error {
        ContainerError::BadMagic { .. } => {
            "not a gpo encoder file (bad magic bytes; write one with `gpo export-encoder`)".into()
        }
        ContainerError::UnsupportedVersion { found } => format!(
            "unsupported encoder file version {found} (this build reads version {FORMAT_VERSION}): write it again with \
             this gpo's `gpo export-encoder`"
        ),
        other => format!("encoder file: {other}"),
    }
}

#[derive(Serialize)]
struct StoredTensor {
    name: String,
    shape: Vec<u64>,
    /// The values in the file's dtype, little-endian.
    data: Vec<u8>,
    /// Int8 2-D tensors: one f32 scale per block of a row, row-major, little-endian; else empty.
    scales: Vec<u8>,
}

#[derive(Serialize)]
struct Payload {
    id: String,
    config: BertConfig,
    max_seq_length: Option<u64>,
    normalize: bool,
    tokenizer_json: Vec<u8>,
    dtype: EncoderDType,
    tensors: Vec<StoredTensor>,
}

/// A sentence encoder as stored in an encoder file: everything [`SentenceEncoder::new`] needs.
#[derive(Debug, Clone)]
pub struct EncoderFile {
    spec: EncoderSpec,
    tokenizer_json: Vec<u8>,
    dtype: EncoderDType,
    tensors: Vec<NamedTensor>,
}

impl EncoderFile {
    /// An encoder file of `spec`, its `tokenizer.json` and its checkpoint tensors (exactly those
    /// [`BertConfig::checkpoint_tensors`] lists, in any order), to be stored as `dtype`.
    pub fn new(
        spec: EncoderSpec,
        tokenizer_json: Vec<u8>,
        tensors: Vec<NamedTensor>,
        dtype: EncoderDType,
    ) -> Result<Self, EncoderFileError> {
        let tensors = checked_tensors(&spec.config, tensors)?;
        if tokenizer_json.len() > MAX_TOKENIZER_BYTES {
            return Err(EncoderFileError::Invalid(format!(
                "tokenizer.json is {} bytes, more than the {MAX_TOKENIZER_BYTES} allowed",
                tokenizer_json.len()
            )));
        }
        Ok(Self { spec, tokenizer_json, dtype, tensors })
    }

    /// The encoder's spec (id, configuration, truncation, pooling).
    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// The checkpoint tensors, in [`BertConfig::checkpoint_tensors`] order (as read: dequantised
    /// values of an int8 or f16 file).
    pub fn tensors(&self) -> &[NamedTensor] {
        &self.tensors
    }

    /// How the weights are (or will be) stored.
    pub fn dtype(&self) -> EncoderDType {
        self.dtype
    }

    /// The same encoder, to be stored as `dtype`.
    pub fn with_dtype(mut self, dtype: EncoderDType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The encoder on `device`, with the file's weights (dequantised to f32).
    pub fn encoder<B: Backend>(self, device: &B::Device) -> Result<SentenceEncoder<B>, EncoderError> {
        SentenceEncoder::new(self.spec, &self.tokenizer_json, self.tensors, device)
    }

    /// Encodes the file. Fails on a weight the dtype cannot hold (non-finite, or beyond f16's range).
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncoderFileError> {
        let tensors =
            self.tensors.iter().map(|t| encode_tensor(t, self.dtype)).collect::<Result<Vec<_>, EncoderFileError>>()?;
        let payload = Payload {
            id: self.spec.id.clone(),
            config: self.spec.config.clone(),
            max_seq_length: self.spec.max_seq_length.map(|n| n as u64),
            normalize: self.spec.normalize,
            tokenizer_json: self.tokenizer_json.clone(),
            dtype: self.dtype,
            tensors,
        };
        let payload = postcard::to_allocvec(&payload).map_err(|e| EncoderFileError::Encode(e.to_string()))?;
        Ok(container::seal(&MAGIC, FORMAT_VERSION, &payload))
    }

    /// Decodes and checks a file; nothing is allocated beyond what the checked payload holds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncoderFileError> {
        let (_, payload) = container::open(bytes, &MAGIC, &[FORMAT_VERSION]).map_err(EncoderFileError::Container)?;
        // Field by field: an error names the field and its offset, and no length is trusted
        // beyond the bytes that follow it.
        let mut r = FieldReader::new(payload, None);
        let id = r.value(|| "id".into())?;
        let config: BertConfig = r.value(|| "config".into())?;
        config.validate()?;
        let max_seq_length = r.value(|| "max_seq_length".into())?;
        let normalize = r.value(|| "normalize".into())?;
        let tokenizer_json = r.bytes(|| "tokenizer_json".into())?.to_vec();
        let dtype = r.value(|| "dtype".into())?;
        let n = r.len(|| "tensors".into(), usize::MAX, "tensors")?;
        // A count past the configuration's is refused by the check after, with nothing allocated
        // for it in advance.
        let mut tensors = Vec::with_capacity(n.min(config.checkpoint_tensors().len()));
        for i in 0..n {
            tensors.push(StoredTensor {
                name: r.value(|| format!("tensors[{i}].name"))?,
                shape: r.value(|| format!("tensors[{i}].shape"))?,
                data: r.bytes(|| format!("tensors[{i}].data"))?.to_vec(),
                scales: r.bytes(|| format!("tensors[{i}].scales"))?.to_vec(),
            });
        }
        r.finish()?;
        let decoded = Payload { id, config, max_seq_length, normalize, tokenizer_json, dtype, tensors };
        decoded.config.validate()?;
        let max_seq_length = decoded
            .max_seq_length
            .map(|n| usize::try_from(n).map_err(|_| EncoderFileError::Invalid(format!("max_seq_length {n}"))))
            .transpose()?;
        let dtype = decoded.dtype;
        let tensors = decoded
            .tensors
            .into_iter()
            .map(|t| decode_tensor(t, dtype))
            .collect::<Result<Vec<_>, EncoderFileError>>()?;
        let spec = EncoderSpec { id: decoded.id, config: decoded.config, max_seq_length, normalize: decoded.normalize };
        Self::new(spec, decoded.tokenizer_json, tensors, dtype)
    }
}

/// `tensors` in the configuration's order, each the one it lists with its shape and finite values.
fn checked_tensors(config: &BertConfig, tensors: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, EncoderFileError> {
    config.validate()?;
    let order = crate::weights::parameter_order(&config.checkpoint_tensors(), &tensors)
        .map_err(|e| EncoderFileError::Invalid(e.to_string()))?;
    let mut slots: Vec<Option<NamedTensor>> = tensors.into_iter().map(Some).collect();
    let checked: Vec<NamedTensor> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    if let Some(t) = checked.iter().find(|t| t.values.iter().any(|v| !v.is_finite())) {
        return Err(EncoderFileError::Invalid(format!("tensor `{}` holds a non-finite value", t.name)));
    }
    Ok(checked)
}

fn encode_tensor(tensor: &NamedTensor, dtype: EncoderDType) -> Result<StoredTensor, EncoderFileError> {
    let shape = tensor.shape.iter().map(|&d| d as u64).collect();
    let mut data = Vec::new();
    let mut scales = Vec::new();
    match (dtype, tensor.shape.as_slice()) {
        (EncoderDType::F16, _) => {
            if let Some(bad) = tensor.values.iter().find(|v| v.abs() > f16::MAX.to_f32()) {
                return Err(EncoderFileError::Invalid(format!(
                    "tensor `{}`: {bad} is beyond f16's range",
                    tensor.name
                )));
            }
            let half: Vec<f16> = tensor.values.iter().map(|&v| f16::from_f32(v)).collect();
            data.extend_from_slice(bytemuck::cast_slice(&half));
        }
        (EncoderDType::Int8, &[_, cols]) => {
            for block in tensor.values.chunks_exact(cols).flat_map(|row| row.chunks(INT8_BLOCK)) {
                let max = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                scales.extend_from_slice(&scale.to_le_bytes());
                data.extend(block.iter().map(|&v| libm::roundf(v / scale).clamp(-127.0, 127.0) as i8 as u8));
            }
        }
        (EncoderDType::F32 | EncoderDType::Int8, _) => data.extend_from_slice(bytemuck::cast_slice(&tensor.values)),
    }
    Ok(StoredTensor { name: tensor.name.clone(), shape, data, scales })
}

fn decode_tensor(stored: StoredTensor, dtype: EncoderDType) -> Result<NamedTensor, EncoderFileError> {
    let name = stored.name;
    let bad = |what: String| EncoderFileError::Invalid(format!("tensor `{name}`: {what}"));
    let shape: Vec<usize> = stored
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
        .collect::<Result<_, _>>()?;
    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| bad("size overflow".into()))?;
    let expect_bytes = |size: usize, what: &str, got: usize| {
        if numel.checked_mul(size) == Some(got) {
            Ok(())
        } else {
            Err(bad(format!("{got} bytes of {what} for shape {shape:?}")))
        }
    };
    let values = match (dtype, shape.as_slice()) {
        (EncoderDType::F16, _) => {
            expect_bytes(2, "f16", stored.data.len())?;
            bytemuck::pod_collect_to_vec::<u8, f16>(&stored.data).into_iter().map(f16::to_f32).collect()
        }
        (EncoderDType::Int8, &[rows, cols]) => {
            expect_bytes(1, "i8", stored.data.len())?;
            let blocks = rows.checked_mul(cols.div_ceil(INT8_BLOCK)).ok_or_else(|| bad("size overflow".into()))?;
            if blocks.checked_mul(4) != Some(stored.scales.len()) {
                return Err(bad(format!("{} bytes of scales for {blocks} blocks", stored.scales.len())));
            }
            let scales = bytemuck::pod_collect_to_vec::<u8, f32>(&stored.scales);
            if scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
                return Err(bad("a scale that is not a positive number".into()));
            }
            let mut values = Vec::with_capacity(numel);
            let blocks = stored.data.chunks_exact(cols.max(1)).flat_map(|row| row.chunks(INT8_BLOCK));
            for (block, &scale) in blocks.zip(&scales) {
                values.extend(block.iter().map(|&q| f32::from(q as i8) * scale));
            }
            values
        }
        (EncoderDType::F32 | EncoderDType::Int8, _) => {
            expect_bytes(4, "f32", stored.data.len())?;
            bytemuck::pod_collect_to_vec::<u8, f32>(&stored.data)
        }
    };
    if (dtype != EncoderDType::Int8 || shape.len() != 2) && !stored.scales.is_empty() {
        return Err(bad("scales on a tensor stored without them".into()));
    }
    Ok(NamedTensor { name, shape, values })
}
