//! Import of vectors made elsewhere (e.g. 4096-d LLM embeddings as in the paper): a 2-D `.npy`
//! or safetensors matrix, one row per text, with the texts in a JSONL file (one JSON string a line).

use std::path::Path;

use half::{bf16, f16};

use super::{EmbedError, EmbeddingCache, Precision};

/// A row-major 2-D f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows (texts).
    pub rows: usize,
    /// Number of columns (embedding dimension).
    pub cols: usize,
    /// `rows × cols` values.
    pub data: Vec<f32>,
}

fn import_err(path: &Path, message: impl Into<String>) -> EmbedError {
    EmbedError::Import { path: path.to_path_buf(), message: message.into() }
}

/// Reads a 2-D matrix from `.npy` (f32 or f16, little-endian) or `.safetensors` (the only tensor,
/// or the one named `tensor`), by file extension.
pub fn read_matrix(path: &Path, tensor: Option<&str>) -> Result<Matrix, EmbedError> {
    let bytes = crate::fsutil::read_capped(path, crate::fsutil::MAX_CACHE_BYTES)
        .map_err(|e| EmbedError::io(path)(crate::fsutil::without_path(e)))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => parse_npy(path, &bytes),
        Some("safetensors") => parse_safetensors(path, &bytes, tensor),
        _ => Err(import_err(path, "unknown vector file type (expected .npy or .safetensors)")),
    }
}

/// Parses NumPy's `.npy` format (versions 1–3): a 2-D `<f4` or `<f2` array, C or Fortran order.
pub fn parse_npy(path: &Path, bytes: &[u8]) -> Result<Matrix, EmbedError> {
    let err = |m: &str| import_err(path, format!("npy: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("bad magic bytes"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            let b = bytes.get(8..12).ok_or_else(|| err("truncated header"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(err(&format!("unsupported format version {v}"))),
    };
    let header = bytes.get(start..start + header_len).ok_or_else(|| err("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err("header is not text"))?;
    let field = |name: &str| -> Option<&str> {
        let at = header.find(&format!("'{name}'"))? + name.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr").ok_or_else(|| err("no descr"))?;
    let elem = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f2'") {
        2
    } else {
        return Err(err(&format!(
            "dtype {} unsupported (need little-endian f4 or f2)",
            descr.split(',').next().unwrap_or("")
        )));
    };
    let fortran = field("fortran_order").ok_or_else(|| err("no fortran_order"))?.starts_with("True");
    let shape = field("shape").ok_or_else(|| err("no shape"))?;
    let shape = shape.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| err("malformed shape"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| err("malformed shape")))
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(err(&format!("array has {} dimensions, need 2", dims.len())));
    };
    let raw = &bytes[start + header_len..];
    if Some(raw.len()) != rows.checked_mul(cols).and_then(|n| n.checked_mul(elem)) {
        let needed = rows.checked_mul(cols).and_then(|n| n.checked_mul(elem));
        let needed = needed.map_or_else(|| "more than fit in memory".to_string(), |n| n.to_string());
        return Err(err(&format!("data is {} bytes, shape ({rows}, {cols}) needs {needed}", raw.len())));
    }
    let values: Vec<f32> = if elem == 4 {
        raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
    };
    let data = if fortran { (0..rows * cols).map(|i| values[(i % cols) * rows + i / cols]).collect() } else { values };
    Ok(Matrix { rows, cols, data })
}

/// Reads a 2-D F32/F16/BF16/F64 tensor from safetensors bytes.
pub fn parse_safetensors(path: &Path, bytes: &[u8], tensor: Option<&str>) -> Result<Matrix, EmbedError> {
    use safetensors::SafeTensors;
    let st = SafeTensors::deserialize(bytes).map_err(|e| import_err(path, format!("safetensors: {e}")))?;
    let mut names = st.names();
    names.sort();
    let name = match (tensor, names.as_slice()) {
        (Some(name), _) => name,
        (None, [only]) => only,
        (None, _) => {
            return Err(import_err(path, format!("holds tensors {names:?}; say which one to import")));
        }
    };
    let view = st.tensor(name).map_err(|e| import_err(path, format!("tensor {name:?}: {e}")))?;
    let [rows, cols] = view.shape()[..] else {
        return Err(import_err(path, format!("tensor {name:?} has shape {:?}, need 2-D", view.shape())));
    };
    let data = float_values(&view)
        .ok_or_else(|| import_err(path, format!("tensor {name:?} has dtype {:?}, need a float type", view.dtype())))?;
    Ok(Matrix { rows, cols, data })
}

/// The values of a float tensor (f32, f16, bf16 or f64, little-endian) as f32; `None` for other
/// dtypes.
pub(crate) fn float_values(view: &safetensors::tensor::TensorView<'_>) -> Option<Vec<f32>> {
    use safetensors::Dtype;
    let raw = view.data();
    Some(match view.dtype() {
        Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => raw.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => {
            raw.chunks_exact(8).filter_map(|c| c.try_into().ok()).map(|c| f64::from_le_bytes(c) as f32).collect()
        }
        _ => return None,
    })
}

/// Reads a JSONL file of strings, one text per line (blank lines are not allowed: the n-th line
/// is the n-th row).
pub fn read_texts_jsonl(path: &Path) -> Result<Vec<String>, EmbedError> {
    let content = crate::fsutil::read_capped_to_string(path, crate::fsutil::MAX_SURVEY_BYTES)
        .map_err(|e| EmbedError::io(path)(crate::fsutil::without_path(e)))?;
    content
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str::<String>(line)
                .map_err(|e| import_err(path, format!("line {}: expected a JSON string: {e}", i + 1)))
        })
        .collect()
}

/// Builds a cache from a vector file and its texts file, recording `model_id` and `template_id`.
pub fn import_embeddings(
    vectors: &Path,
    tensor: Option<&str>,
    texts: &Path,
    model_id: &str,
    template_id: &str,
    precision: Precision,
) -> Result<EmbeddingCache, EmbedError> {
    let matrix = read_matrix(vectors, tensor)?;
    let texts_list = read_texts_jsonl(texts)?;
    if texts_list.len() != matrix.rows {
        return Err(import_err(
            texts,
            format!("{} texts but {} has {} rows", texts_list.len(), vectors.display(), matrix.rows),
        ));
    }
    if let Some(at) = matrix.data.iter().position(|x| !x.is_finite()) {
        let row = at / matrix.cols.max(1);
        return Err(import_err(
            vectors,
            format!(
                "row {row} (text {:?}) has the non-finite value {} in column {}",
                texts_list[row],
                matrix.data[at],
                at % matrix.cols.max(1)
            ),
        ));
    }
    let mut cache = EmbeddingCache::new(model_id, template_id, matrix.cols, precision);
    cache.insert_rows(&texts_list, &matrix.data)?;
    tracing::info!(
        texts = cache.len(),
        dim = matrix.cols,
        model = model_id,
        template = template_id,
        "embeddings imported"
    );
    Ok(cache)
}

/// Encodes a row-major f32 matrix as NumPy `.npy` (version 1.0, `<f4`, C order).
pub fn encode_npy(rows: usize, cols: usize, data: &[f32]) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header + newline, padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
