//! GGUF v3 (llama.cpp's model file), read from bytes: header, typed metadata, tensor directory,
//! and dequantisation of F32, F16, BF16, Q4_0, Q4_1 and Q8_0 tensors to f32 exactly as ggml
//! defines them (`ggml-quants.c`: `dequantize_row_q4_0`, `_q4_1`, `_q8_0`).
//!
//! Every count and length read from the file is checked against the bytes that remain before
//! anything is allocated, so a hostile file is an error, never a panic or an abort.
//!
//! Layout (little-endian): `GGUF`, version `u32`, tensor count `u64`, metadata count `u64`; the
//! metadata (`string` key, `u32` type, value); per tensor its name, `u32` dimension count, `u64`
//! dimensions (fastest-varying first), `u32` ggml type and `u64` offset into the data section,
//! which starts at the next multiple of `general.alignment` (default 32) after the directory.

use std::collections::BTreeMap;
use std::ops::Range;

use half::{bf16, f16};

/// Arrays nest at most this deep (the format allows arrays of arrays; nothing real nests).
pub const MAX_NESTING: usize = 8;
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;

/// What is wrong with a GGUF file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GgufError {
    /// Not a GGUF file, or a version other than 2 or 3.
    #[error("not a GGUF v2/v3 file: {0}")]
    Header(String),
    /// The file ends inside an item.
    #[error("truncated at byte {offset}: {what} needs {needed} more bytes")]
    Truncated {
        /// Where the item starts.
        offset: usize,
        /// What was being read.
        what: String,
        /// Bytes it needs beyond the end.
        needed: usize,
    },
    /// A metadata entry or tensor entry is malformed.
    #[error("{what}: {message}")]
    Malformed {
        /// The key or tensor concerned.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A metadata key the caller needs is absent or of another type.
    #[error("metadata {key:?}: {message}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong (missing, or its type).
        message: String,
    },
    /// A tensor is absent, or of a type this reader does not dequantise.
    #[error("tensor {name:?}: {message}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// UTF-8 `string`.
    String(String),
    /// `array` of values of one type.
    Array(Vec<Value>),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float64`.
    F64(f64),
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a float of either width.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "uint8",
            Value::I8(_) => "int8",
            Value::U16(_) => "uint16",
            Value::I16(_) => "int16",
            Value::U32(_) => "uint32",
            Value::I32(_) => "int32",
            Value::F32(_) => "float32",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::U64(_) => "uint64",
            Value::I64(_) => "int64",
            Value::F64(_) => "float64",
        }
    }
}

/// The ggml tensor types this reader knows the size of (and dequantises).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit floats.
    F32,
    /// IEEE half floats.
    F16,
    /// bfloat16.
    BF16,
    /// Blocks of 32: f16 scale `d`, 16 bytes of 4-bit `q`; `x = (q − 8)·d`.
    Q4_0,
    /// Blocks of 32: f16 scale `d` and minimum `m`, 16 bytes of 4-bit `q`; `x = q·d + m`.
    Q4_1,
    /// Blocks of 32: f16 scale `d`, 32 signed bytes `q`; `x = q·d`.
    Q8_0,
}

impl TensorType {
    /// From ggml's type number.
    pub fn from_ggml(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// `(values per block, bytes per block)`.
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q8_0 => (32, 34),
        }
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Dimensions, fastest-varying first (ggml's `ne`): a `[rows, cols]` matrix is `[cols, rows]`.
    pub dims: Vec<usize>,
    /// Storage type.
    pub ty: TensorType,
    /// Its bytes within the file.
    pub bytes: Range<usize>,
}

impl TensorInfo {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the tensor holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed GGUF file: its metadata and tensor directory over the file's bytes.
#[derive(Debug, Clone)]
pub struct Gguf<'a> {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorInfo>,
    bytes: &'a [u8],
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        let remaining = self.bytes.len() - self.at;
        if n > remaining {
            return Err(GgufError::Truncated { offset: self.at, what: what(), needed: n - remaining });
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let slice = self.take(N, || what.to_owned())?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// A count that must fit in what is left when each item takes at least `min_item` bytes.
    fn count(&mut self, what: &str, min_item: usize) -> Result<usize, GgufError> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n).ok().filter(|&n| n.checked_mul(min_item).is_some_and(|b| b <= self.remaining()));
        fits.ok_or_else(|| GgufError::Malformed {
            what: what.to_owned(),
            message: format!("{n} items cannot fit in the {} bytes left", self.remaining()),
        })
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.count(what, 1)?;
        let bytes = self.take(n, || what.to_owned())?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| GgufError::Malformed { what: what.to_owned(), message: format!("not UTF-8: {e}") })
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(u8::from_le_bytes(self.array(key)?)),
            1 => Value::I8(i8::from_le_bytes(self.array(key)?)),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(GgufError::Malformed { what: key.to_owned(), message: format!("bool byte {b}") });
                }
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(GgufError::Malformed {
                        what: key.to_owned(),
                        message: format!("arrays nest deeper than {MAX_NESTING}"),
                    });
                }
                let item_ty = self.u32(key)?;
                let min_item = match item_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8..=12 => 8,
                    t => {
                        return Err(GgufError::Malformed { what: key.to_owned(), message: format!("value type {t}") });
                    }
                };
                let n = self.count(key, min_item)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item_ty, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            t => return Err(GgufError::Malformed { what: key.to_owned(), message: format!("value type {t}") }),
        })
    }
}

impl<'a> Gguf<'a> {
    /// Parses the header, metadata and tensor directory of `bytes` (the whole file) and checks
    /// that every tensor lies inside the file with the size its type and dimensions imply.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError> {
        let mut r = Reader { bytes, at: 0 };
        let magic = r.take(4, || "magic".into()).map_err(|_| GgufError::Header("shorter than 4 bytes".into()))?;
        if magic != b"GGUF" {
            return Err(GgufError::Header(format!("magic {magic:02x?}, expected \"GGUF\"")));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Header(format!("version {version}")));
        }
        // A tensor entry takes at least 8 + 4 + 4 + 8 bytes, a metadata entry 8 + 4 + 1.
        let n_tensors = r.count("tensor count", 24)?;
        let n_metadata = r.count("metadata count", 13)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_metadata {
            let key = r.string("metadata key")?;
            let ty = r.u32(&key)?;
            let value = r.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(GgufError::Malformed { what: key, message: "key appears twice".into() });
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => {
                v.as_u64().and_then(|a| usize::try_from(a).ok()).filter(|a| a.is_power_of_two()).ok_or_else(|| {
                    GgufError::Malformed {
                        what: "general.alignment".into(),
                        message: format!("{v:?} is not a power of two"),
                    }
                })?
            }
        };
        let mut directory = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = r.string("tensor name")?;
            let n_dims = r.u32(&name)? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::Malformed { what: name, message: format!("{n_dims} dimensions (1–4)") });
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = r.u64(&name)?;
                dims.push(
                    usize::try_from(d)
                        .map_err(|_| GgufError::Malformed { what: name.clone(), message: format!("dimension {d}") })?,
                );
            }
            let ty_id = r.u32(&name)?;
            let ty = TensorType::from_ggml(ty_id).ok_or_else(|| GgufError::Tensor {
                name: name.clone(),
                message: format!("ggml type {ty_id} is not supported (F32, F16, BF16, Q4_0, Q4_1, Q8_0)"),
            })?;
            let offset = r.u64(&name)?;
            directory.push((name, dims, ty, offset));
        }
        let data_start = r.at.div_ceil(alignment) * alignment;
        let mut tensors = BTreeMap::new();
        for (name, dims, ty, offset) in directory {
            let malformed = |message: String| GgufError::Malformed { what: name.clone(), message };
            let len = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| malformed(format!("dimensions {dims:?} overflow")))?;
            let (per_block, block_bytes) = ty.block();
            if dims[0] % per_block != 0 {
                return Err(malformed(format!("first dimension {} is not a multiple of {per_block}", dims[0])));
            }
            let size = (len / per_block)
                .checked_mul(block_bytes)
                .ok_or_else(|| malformed(format!("dimensions {dims:?} overflow")))?;
            let start = usize::try_from(offset)
                .ok()
                .filter(|o| o % alignment == 0)
                .and_then(|o| o.checked_add(data_start))
                .ok_or_else(|| malformed(format!("offset {offset} is not aligned to {alignment}")))?;
            let end = start.checked_add(size).filter(|&e| e <= bytes.len()).ok_or_else(|| {
                malformed(format!("{size} bytes at {start} run past the end of the file ({} bytes)", bytes.len()))
            })?;
            if tensors.insert(name.clone(), TensorInfo { dims, ty, bytes: start..end }).is_some() {
                return Err(malformed("tensor name appears twice".into()));
            }
        }
        Ok(Self { version, metadata, tensors, bytes })
    }

    fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::Metadata { key: key.to_owned(), message: "missing".into() })
    }

    /// A metadata string.
    pub fn string(&self, key: &str) -> Result<&str, GgufError> {
        match self.get(key)? {
            Value::String(s) => Ok(s),
            v => Err(GgufError::Metadata { key: key.to_owned(), message: format!("{}, not a string", v.type_name()) }),
        }
    }

    /// A metadata non-negative integer of any width.
    pub fn uint(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.get(key)?;
        v.as_u64().ok_or_else(|| GgufError::Metadata {
            key: key.to_owned(),
            message: format!("{}, not a non-negative integer", v.type_name()),
        })
    }

    /// A metadata float of either width.
    pub fn float(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.get(key)?;
        v.as_f64().ok_or_else(|| GgufError::Metadata {
            key: key.to_owned(),
            message: format!("{}, not a float", v.type_name()),
        })
    }

    /// A metadata array.
    pub fn array(&self, key: &str) -> Result<&[Value], GgufError> {
        match self.get(key)? {
            Value::Array(items) => Ok(items),
            v => Err(GgufError::Metadata { key: key.to_owned(), message: format!("{}, not an array", v.type_name()) }),
        }
    }

    /// A tensor's directory entry.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensors.get(name).ok_or_else(|| GgufError::Tensor { name: name.to_owned(), message: "missing".into() })
    }

    /// A tensor's values as f32, in storage order (its first dimension fastest), dequantised.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let info = self.tensor(name)?;
        Ok(dequantize(info.ty, &self.bytes[info.bytes.clone()]))
    }
}

/// Dequantises whole blocks of type `ty` (any trailing partial block is ignored; [`Gguf::parse`]
/// guarantees there is none).
pub fn dequantize(ty: TensorType, bytes: &[u8]) -> Vec<f32> {
    let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    let (per_block, block_bytes) = ty.block();
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * per_block);
    for block in bytes.chunks_exact(block_bytes) {
        match ty {
            TensorType::F32 => out.push(f32::from_le_bytes([block[0], block[1], block[2], block[3]])),
            TensorType::F16 => out.push(half(block)),
            TensorType::BF16 => out.push(bf16::from_le_bytes([block[0], block[1]]).to_f32()),
            TensorType::Q4_0 => {
                let d = half(block);
                let qs = &block[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0x0f) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
            TensorType::Q4_1 => {
                let (d, m) = (half(block), half(&block[2..4]));
                let qs = &block[4..20];
                out.extend(qs.iter().map(|&q| (q & 0x0f) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
            TensorType::Q8_0 => {
                let d = half(block);
                out.extend(block[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Int, Tensor, TensorData};

    /// A GGUF string: its `u64` length, then its bytes.
    fn string(s: &str) -> Vec<u8> {
        [(s.len() as u64).to_le_bytes().to_vec(), s.as_bytes().to_vec()].concat()
    }

    /// A GGUF file built by hand: `metadata` entries (already encoded after their key) and
    /// tensors `(name, dims, ggml type, data)`.
    fn build(metadata: &[(&str, u32, Vec<u8>)], tensors: &[(&str, Vec<u64>, u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((metadata.len() as u64).to_le_bytes());
        for (key, ty, value) in metadata {
            out.extend(string(key));
            out.extend(ty.to_le_bytes());
            out.extend(value);
        }
        let mut offset = 0u64;
        for (name, dims, ty, data) in tensors {
            out.extend(string(name));
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset += (data.len() as u64).div_ceil(32) * 32;
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        for (_, _, _, data) in tensors {
            out.extend(data);
            out.resize(out.len().div_ceil(32) * 32, 0);
        }
        out
    }

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn blocks_dequantise_as_ggml_defines_them() {
        // Q4_0: d = 0.5, nibbles j (low) and 15 − j (high): x[j] = (j − 8)·0.5, x[16 + j] = (7 − j)·0.5.
        let mut q4_0 = f16_bytes(0.5).to_vec();
        q4_0.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let want: Vec<f32> =
            (0..16).map(|j| (j as f32 - 8.0) * 0.5).chain((0..16).map(|j| (7.0 - j as f32) * 0.5)).collect();
        assert_eq!(dequantize(TensorType::Q4_0, &q4_0), want);
        // Q4_1: d = 0.25, m = −1: x = q·0.25 − 1.
        let mut q4_1 = [f16_bytes(0.25), f16_bytes(-1.0)].concat();
        q4_1.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let want: Vec<f32> =
            (0..16).map(|j| j as f32 * 0.25 - 1.0).chain((0..16).map(|j| (15 - j) as f32 * 0.25 - 1.0)).collect();
        assert_eq!(dequantize(TensorType::Q4_1, &q4_1), want);
        // Q8_0: d = 2, q = −16 … 15.
        let mut q8_0 = f16_bytes(2.0).to_vec();
        q8_0.extend((-16i8..16).map(|q| q as u8));
        let want: Vec<f32> = (-16..16).map(|q| q as f32 * 2.0).collect();
        assert_eq!(dequantize(TensorType::Q8_0, &q8_0), want);
        assert_eq!(dequantize(TensorType::F16, &[f16_bytes(1.5), f16_bytes(-3.0)].concat()), vec![1.5, -3.0]);
        assert_eq!(dequantize(TensorType::BF16, &bf16::from_f32(-2.5).to_le_bytes()), vec![-2.5]);
        assert_eq!(dequantize(TensorType::F32, &7.25f32.to_le_bytes()), vec![7.25]);
    }

    #[test]
    fn a_small_file_parses_and_its_tensors_read_back() {
        let mut strings = 8u32.to_le_bytes().to_vec();
        strings.extend(2u64.to_le_bytes());
        strings.extend(string("a"));
        strings.extend(string("b"));
        let matrix: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let bytes = build(
            &[
                ("general.architecture", 8, string("llama")),
                ("llama.block_count", 4, 2u32.to_le_bytes().to_vec()),
                ("llama.rope.freq_base", 6, 1e5f32.to_le_bytes().to_vec()),
                ("tokenizer.ggml.tokens", 9, strings),
            ],
            &[("w", vec![3, 2], 0, matrix), ("n", vec![1], 0, 9f32.to_le_bytes().to_vec())],
        );
        let gguf = Gguf::parse(&bytes).unwrap();
        assert_eq!(gguf.string("general.architecture").unwrap(), "llama");
        assert_eq!(gguf.uint("llama.block_count").unwrap(), 2);
        assert_eq!(gguf.float("llama.rope.freq_base").unwrap(), 1e5);
        assert_eq!(gguf.array("tokenizer.ggml.tokens").unwrap().len(), 2);
        assert_eq!(gguf.tensor("w").unwrap().dims, vec![3, 2]);
        assert_eq!(gguf.dequantize("w").unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(gguf.dequantize("n").unwrap(), vec![9.0]);
        assert!(matches!(gguf.uint("general.architecture"), Err(GgufError::Metadata { .. })));
        assert!(matches!(gguf.dequantize("missing"), Err(GgufError::Tensor { .. })));
    }

    /// A complete one-block Llama with its tokenizer, in F32 (d 8, 2 heads, 1 key/value head).
    fn tiny_llama() -> Vec<u8> {
        let strings = |items: &[&str]| {
            let mut v = 8u32.to_le_bytes().to_vec();
            v.extend((items.len() as u64).to_le_bytes());
            items.iter().for_each(|s| v.extend(string(s)));
            v
        };
        let mut types = 5u32.to_le_bytes().to_vec();
        types.extend(4u64.to_le_bytes());
        [1i32, 1, 1, 3].iter().for_each(|t| types.extend(t.to_le_bytes()));
        let u32v = |x: u32| x.to_le_bytes().to_vec();
        let (d, kv, ff, vocab) = (8u64, 4u64, 16u64, 4u64);
        let f32s = |n: u64| (0..n).flat_map(|i| ((i % 7) as f32 * 0.1 - 0.3).to_le_bytes()).collect::<Vec<u8>>();
        let tensors: Vec<(String, Vec<u64>)> = vec![
            ("token_embd.weight".into(), vec![d, vocab]),
            ("output_norm.weight".into(), vec![d]),
            ("blk.0.attn_norm.weight".into(), vec![d]),
            ("blk.0.attn_q.weight".into(), vec![d, d]),
            ("blk.0.attn_k.weight".into(), vec![d, kv]),
            ("blk.0.attn_v.weight".into(), vec![d, kv]),
            ("blk.0.attn_output.weight".into(), vec![d, d]),
            ("blk.0.ffn_norm.weight".into(), vec![d]),
            ("blk.0.ffn_gate.weight".into(), vec![d, ff]),
            ("blk.0.ffn_up.weight".into(), vec![d, ff]),
            ("blk.0.ffn_down.weight".into(), vec![ff, d]),
        ];
        let tensors: Vec<(&str, Vec<u64>, u32, Vec<u8>)> =
            tensors.iter().map(|(n, dims)| (n.as_str(), dims.clone(), 0, f32s(dims.iter().product()))).collect();
        build(
            &[
                ("general.architecture", 8, string("llama")),
                ("llama.block_count", 4, u32v(1)),
                ("llama.embedding_length", 4, u32v(8)),
                ("llama.feed_forward_length", 4, u32v(16)),
                ("llama.attention.head_count", 4, u32v(2)),
                ("llama.attention.head_count_kv", 4, u32v(1)),
                ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5f32.to_le_bytes().to_vec()),
                ("tokenizer.ggml.model", 8, string("gpt2")),
                ("tokenizer.ggml.pre", 8, string("smollm")),
                ("tokenizer.ggml.tokens", 9, strings(&["a", "b", "ab", "<|s|>"])),
                ("tokenizer.ggml.token_type", 9, types),
                ("tokenizer.ggml.merges", 9, strings(&["a b"])),
            ],
            &tensors,
        )
    }

    /// Mutated tiny models (bytes flipped, set to extremes, cut short, inserted) through the whole
    /// path — parse, dequantise, configure, tokenizer, build, one forward step: a value or an error,
    /// never a panic. `GPO_FUZZ_CASES` sets the number of mutants (default 300).
    #[test]
    fn mutated_models_are_values_or_errors() {
        use burn_ndarray::NdArray;

        use crate::llm::{Llama, LlamaConfig, gguf_tokenizer};
        let valid = tiny_llama();
        let device = Default::default();
        let model = Llama::<NdArray<f32>>::from_gguf(&Gguf::parse(&valid).unwrap(), &device).unwrap();
        let ids =
            |t: u32| Tensor::<NdArray<f32>, 2, Int>::from_data(TensorData::new(vec![i64::from(t)], [1, 1]), &device);
        assert_eq!(model.forward(ids(2), &mut model.cache()).dims(), [1, 1, 8]);
        let tokenizer = gguf_tokenizer(&Gguf::parse(&valid).unwrap()).unwrap();
        assert_eq!(tokenizer.encode("ab<|s|>", false).unwrap().get_ids(), &[2, 3]);

        let cases = std::env::var("GPO_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300u64);
        let mut rng = gpo_core::rng::SplitMix64::new(7);
        let (mut parsed, mut built) = (0, 0);
        for _ in 0..cases {
            let mut bytes = valid.clone();
            let at = |rng: &mut gpo_core::rng::SplitMix64, len: usize| (rng.next_u64() % len.max(1) as u64) as usize;
            for _ in 0..1 + rng.next_u64() % 4 {
                let i = at(&mut rng, bytes.len());
                match rng.next_u64() % 4 {
                    0 => bytes[i] ^= 1 << (rng.next_u64() % 8),
                    1 => bytes[i] = [0x00, 0xff, 0x7f, 0x80][(rng.next_u64() % 4) as usize],
                    2 => bytes.truncate(i),
                    _ => bytes.insert(i, rng.next_u64() as u8),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let Ok(gguf) = Gguf::parse(&bytes) else { continue };
            parsed += 1;
            for name in gguf.tensors.keys() {
                let _ = gguf.dequantize(name);
            }
            let _ = gguf_tokenizer(&gguf).map(|t| t.encode("ab a b<|s|>", false).map(|e| e.get_ids().to_vec()));
            if LlamaConfig::from_gguf(&gguf).is_ok()
                && let Ok(model) = Llama::<NdArray<f32>>::from_gguf(&gguf, &device)
            {
                built += 1;
                let _ = model.forward(ids(0), &mut model.cache()).into_data();
            }
        }
        println!("{cases} mutants: {parsed} parsed, {built} built and run");
    }

    #[test]
    fn hostile_sizes_are_errors_not_allocations() {
        let huge_count = |at: usize| {
            let mut bytes = build(&[], &[]);
            bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            Gguf::parse(&bytes).unwrap_err()
        };
        assert!(matches!(huge_count(8), GgufError::Malformed { .. }), "tensor count");
        assert!(matches!(huge_count(16), GgufError::Malformed { .. }), "metadata count");
        // A string longer than the file, an array of 2^60 items, arrays nested past the limit.
        let long = [u64::MAX.to_le_bytes().to_vec(), b"x".to_vec()].concat();
        assert!(Gguf::parse(&build(&[("k", 8, long)], &[])).is_err());
        let mut array = 4u32.to_le_bytes().to_vec();
        array.extend((1u64 << 60).to_le_bytes());
        assert!(Gguf::parse(&build(&[("k", 9, array)], &[])).is_err());
        let mut nested = Vec::new();
        for _ in 0..=MAX_NESTING {
            nested.extend(9u32.to_le_bytes());
            nested.extend(1u64.to_le_bytes());
        }
        let err = Gguf::parse(&build(&[("k", 9, nested)], &[])).unwrap_err();
        assert!(err.to_string().contains("nest"), "{err}");
        // A tensor whose dimensions overflow, or whose data would run past the end of the file.
        let overflow = build(&[], &[("t", vec![1 << 32, 1 << 32, 1 << 32], 0, vec![0; 4])]);
        assert!(Gguf::parse(&overflow).unwrap_err().to_string().contains("overflow"));
        let past_end = build(&[], &[("t", vec![64], 0, vec![0; 4])]);
        assert!(Gguf::parse(&past_end).unwrap_err().to_string().contains("past the end"));
        let bad_type = build(&[], &[("t", vec![32], 12, vec![0; 32])]);
        assert!(Gguf::parse(&bad_type).unwrap_err().to_string().contains("not supported"));
        // Every truncation of a valid file is an error.
        let valid = build(&[("k", 4, 1u32.to_le_bytes().to_vec())], &[("t", vec![2], 0, vec![0; 8])]);
        Gguf::parse(&valid).unwrap();
        for n in 0..valid.len() - 32 {
            assert!(Gguf::parse(&valid[..n]).is_err(), "truncated at {n}");
        }
    }
}
