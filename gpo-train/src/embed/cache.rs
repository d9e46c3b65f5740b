//! An on-disk embedding cache for one (model id, template id) pair, keyed by the sha256 of each
//! text: compact (f16 by default), incremental, and written atomically.
//!
//! File format, version 2: a [`gpo_core::container`] (magic `GPOEMBED`, version, payload length,
//! CRC-32) whose payload is (integers little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 1 | precision: 1 = f16, 2 = f32 |
//! | 3 | zero |
//! | 4 | dim |
//! | 8 | count |
//! | 4 + n | model id (length, UTF-8) |
//! | 4 + n | template id (length, UTF-8) |
//! | 32 × count | sha256 of each text |
//! | count × dim × 2 or 4 | vectors, row-major |
//!
//! Version 1 (the bundled caches) is still read: magic, version, the same payload, then the sha256
//! of everything before it instead of the container's length and CRC.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::f16;
use sha2::{Digest, Sha256};

use super::{EmbedError, EmbedProgress, SurveyTemplate, Template, TextEmbedder, embed_texts};
use crate::data::Survey;

const MAGIC: &[u8; 8] = b"GPOEMBED";
/// The version written.
const VERSION: u32 = 2;
/// The version before the container: the payload followed by a sha256 (still read).
const LEGACY_VERSION: u32 = 1;
const HASH_LEN: usize = 32;

/// How vectors are stored on disk (and rounded in memory, so both always agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Half precision: half the size; about 3 significant digits, ample for unit-norm embeddings.
    #[default]
    F16,
    /// Full precision.
    F32,
}

impl Precision {
    fn code(self) -> u8 {
        match self {
            Precision::F16 => 1,
            Precision::F32 => 2,
        }
    }

    fn bytes(self) -> usize {
        match self {
            Precision::F16 => 2,
            Precision::F32 => 4,
        }
    }

    fn round(self, x: f32) -> f32 {
        match self {
            Precision::F16 => f16::from_f32(x).to_f32(),
            Precision::F32 => x,
        }
    }
}

/// The key of a text: its sha256.
fn text_key(text: &str) -> [u8; HASH_LEN] {
    Sha256::digest(text.as_bytes()).into()
}

/// Vectors for texts embedded by one model through one template.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingCache {
    model_id: String,
    template_id: String,
    dim: usize,
    precision: Precision,
    keys: Vec<[u8; HASH_LEN]>,
    index: HashMap<[u8; HASH_LEN], usize>,
    vectors: Vec<f32>,
}

impl EmbeddingCache {
    /// An empty cache.
    pub fn new(model_id: impl Into<String>, template_id: impl Into<String>, dim: usize, precision: Precision) -> Self {
        Self {
            model_id: model_id.into(),
            template_id: template_id.into(),
            dim,
            precision,
            keys: Vec::new(),
            index: HashMap::new(),
            vectors: Vec::new(),
        }
    }

    /// The cache file for (`model_id`, `template_id`) in `dir`, with a file-system-safe name.
    pub fn path_in(dir: &Path, model_id: &str, template_id: &str) -> PathBuf {
        let safe = |s: &str| -> String {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
        };
        dir.join(format!("{}__{}.gpoemb", safe(model_id), safe(template_id)))
    }

    /// Opens the cache at `path` when it exists (checking it was made for this model, template and
    /// dimension), else starts an empty one.
    pub fn open_or_new(
        path: &Path,
        model_id: &str,
        template_id: &str,
        dim: usize,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        if !path.exists() {
            return Ok(Self::new(model_id, template_id, dim, precision));
        }
        let cache = Self::load(path)?;
        if cache.model_id != model_id || cache.template_id != template_id || cache.dim != dim {
            return Err(EmbedError::Cache {
                path: path.to_path_buf(),
                message: format!(
                    "made for model {:?}, template {:?}, dim {}; wanted model {model_id:?}, template {template_id:?}, dim {dim}",
                    cache.model_id, cache.template_id, cache.dim
                ),
            });
        }
        Ok(cache)
    }

    /// Model id the vectors came from.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Template id the texts were made with.
    pub fn template_id(&self) -> &str {
        &self.template_id
    }

    /// Length of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Storage precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Number of texts held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no text is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `text` has a vector.
    pub fn contains(&self, text: &str) -> bool {
        self.index.contains_key(&text_key(text))
    }

    /// The vector of `text`, if present.
    pub fn get(&self, text: &str) -> Option<&[f32]> {
        self.index.get(&text_key(text)).map(|&i| &self.vectors[i * self.dim..(i + 1) * self.dim])
    }

    /// Adds (or replaces) the vector of `text`, rounded to the cache's precision.
    pub fn insert(&mut self, text: &str, vector: &[f32]) -> Result<(), EmbedError> {
        if vector.len() != self.dim {
            return Err(EmbedError::Dimension { expected: self.dim, got: vector.len() });
        }
        let rounded = vector.iter().map(|&x| self.precision.round(x));
        let key = text_key(text);
        match self.index.get(&key) {
            Some(&i) => {
                for (slot, x) in self.vectors[i * self.dim..(i + 1) * self.dim].iter_mut().zip(rounded) {
                    *slot = x;
                }
            }
            None => {
                self.index.insert(key, self.keys.len());
                self.keys.push(key);
                self.vectors.extend(rounded);
            }
        }
        Ok(())
    }

    /// Adds one vector per text from a row-major `texts.len() × dim` matrix.
    pub fn insert_rows(&mut self, texts: &[String], matrix: &[f32]) -> Result<(), EmbedError> {
        if matrix.len() != texts.len() * self.dim {
            return Err(EmbedError::Dimension { expected: texts.len() * self.dim, got: matrix.len() });
        }
        for (text, row) in texts.iter().zip(matrix.chunks_exact(self.dim.max(1))) {
            self.insert(text, row)?;
        }
        Ok(())
    }

    /// Embeds the texts not yet in the cache, `batch_size` at a time, reporting to `progress`;
    /// returns how many were embedded (0 when all were present).
    pub fn embed_missing<E: TextEmbedder + ?Sized>(
        &mut self,
        embedder: &mut E,
        texts: &[String],
        batch_size: usize,
        progress: &dyn EmbedProgress,
    ) -> Result<usize, EmbedError> {
        if embedder.model_id() != self.model_id || embedder.dim() != self.dim {
            return Err(EmbedError::Template(format!(
                "cache is for model {:?} (dim {}), embedder is {:?} (dim {})",
                self.model_id,
                self.dim,
                embedder.model_id(),
                embedder.dim()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        let missing: Vec<&str> =
            texts.iter().map(String::as_str).filter(|t| !self.contains(t) && seen.insert(*t)).collect();
        tracing::info!(total = texts.len(), missing = missing.len(), model = %self.model_id, template = %self.template_id, "embedding cache");
        if missing.is_empty() {
            return Ok(0);
        }
        progress.embed_start(missing.len());
        let started = std::time::Instant::now();
        let vectors = embed_texts(embedder, &missing, batch_size, |n| progress.embedded(n));
        progress.embed_done();
        let vectors = vectors?;
        for (text, row) in missing.iter().zip(vectors.chunks_exact(self.dim.max(1))) {
            self.insert(text, row)?;
        }
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(embedded = missing.len(), seconds = secs, per_second = missing.len() as f64 / secs, "embedded");
        Ok(missing.len())
    }

    /// Per question of `survey`, its options' vectors as one flat `options × dim` vector, in the
    /// order of `survey.questions`. Fails, naming the question, when a text is missing.
    pub fn survey_embeddings(&self, survey: &Survey, template: Template) -> Result<Vec<Vec<f32>>, EmbedError> {
        if template.id() != self.template_id {
            return Err(EmbedError::Template(format!(
                "cache holds template {:?}, asked for {:?}",
                self.template_id,
                template.id()
            )));
        }
        survey
            .questions
            .iter()
            .map(|question| {
                let mut flat = Vec::with_capacity(question.options.len() * self.dim);
                for (option, text) in template.question_texts(question)?.iter().enumerate() {
                    let v = self.get(text).ok_or_else(|| EmbedError::MissingText {
                        question: question.key.clone(),
                        option,
                        model: self.model_id.clone(),
                        template: self.template_id.clone(),
                    })?;
                    flat.extend_from_slice(v);
                }
                Ok(flat)
            })
            .collect()
    }

    /// Writes the cache to `path` atomically: a temporary file in the same folder, then a rename.
    pub fn save(&self, path: &Path) -> Result<(), EmbedError> {
        let mut body = Vec::with_capacity(64 + self.keys.len() * (HASH_LEN + self.dim * self.precision.bytes()));
        body.extend_from_slice(&[self.precision.code(), 0, 0, 0]);
        body.extend_from_slice(&(self.dim as u32).to_le_bytes());
        body.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        for s in [&self.model_id, &self.template_id] {
            body.extend_from_slice(&(s.len() as u32).to_le_bytes());
            body.extend_from_slice(s.as_bytes());
        }
        for key in &self.keys {
            body.extend_from_slice(key);
        }
        match self.precision {
            Precision::F16 => {
                self.vectors.iter().for_each(|&x| body.extend_from_slice(&f16::from_f32(x).to_le_bytes()))
            }
            Precision::F32 => self.vectors.iter().for_each(|&x| body.extend_from_slice(&x.to_le_bytes())),
        }
        let bytes = gpo_core::container::seal(MAGIC, VERSION, &body);

        crate::fsutil::write_atomic(path, &bytes).map_err(EmbedError::io(path))?;
        tracing::debug!(path = %path.display(), texts = self.len(), bytes = bytes.len(), "embedding cache saved");
        Ok(())
    }

    /// Reads a cache file (at most [`MAX_CACHE_BYTES`](crate::fsutil::MAX_CACHE_BYTES)),
    /// checking magic, version, sizes and checksum, and that every vector is finite.
    pub fn load(path: &Path) -> Result<Self, EmbedError> {
        let bytes = crate::fsutil::read_capped(path, crate::fsutil::MAX_CACHE_BYTES)
            .map_err(|e| EmbedError::io(path)(crate::fsutil::without_path(e)))?;
        let corrupt = |message: String| EmbedError::Cache { path: path.to_path_buf(), message };
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("not an embedding cache (bad magic bytes)".into()));
        }
        if bytes.len() < MAGIC.len() + 4 {
            return Err(corrupt(format!("truncated: {} bytes", bytes.len())));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let body = match version {
            LEGACY_VERSION => {
                if bytes.len() < MAGIC.len() + 4 + HASH_LEN {
                    return Err(corrupt(format!("truncated: {} bytes", bytes.len())));
                }
                let (body, checksum) = bytes.split_at(bytes.len() - HASH_LEN);
                if Sha256::digest(body).as_slice() != checksum {
                    return Err(corrupt("checksum mismatch: the file is truncated or corrupted".into()));
                }
                &body[MAGIC.len() + 4..]
            }
            VERSION => {
                gpo_core::container::open(&bytes, MAGIC, &[VERSION]).map(|(_, payload)| payload).map_err(|e| {
                    corrupt(match e {
                        gpo_core::container::ContainerError::Checksum { .. } => {
                            "checksum mismatch: the file is truncated or corrupted".into()
                        }
                        other => other.to_string(),
                    })
                })?
            }
            other => {
                return Err(corrupt(format!(
                    "format version {other}, this build reads versions {LEGACY_VERSION} and {VERSION}"
                )));
            }
        };
        let mut r = Reader { bytes: body, pos: 0 };
        let truncated = || corrupt("truncated or malformed header".into());
        let precision = match r.take(4).ok_or_else(truncated)?[0] {
            1 => Precision::F16,
            2 => Precision::F32,
            code => return Err(corrupt(format!("unknown precision code {code}"))),
        };
        let dim = r.u32().ok_or_else(truncated)? as usize;
        let count = usize::try_from(r.u64().ok_or_else(truncated)?).map_err(|_| truncated())?;
        let model_id = r.string().ok_or_else(truncated)?;
        let template_id = r.string().ok_or_else(truncated)?;
        if let Err(e) = template_id.parse::<gpo_core::template::Template>() {
            return Err(corrupt(format!("template field: {e}")));
        }
        let sizes = count
            .checked_mul(HASH_LEN)
            .zip(count.checked_mul(dim).and_then(|n| n.checked_mul(precision.bytes())))
            .filter(|(k, v)| k.checked_add(*v) == Some(body.len() - r.pos));
        let Some((key_bytes, vector_bytes)) = sizes else {
            return Err(corrupt(format!("size mismatch: {count} texts × dim {dim} do not fit {} bytes", body.len())));
        };
        let keys: Vec<[u8; HASH_LEN]> = r
            .take(key_bytes)
            .ok_or_else(truncated)?
            .chunks_exact(HASH_LEN)
            .map(|c| <[u8; HASH_LEN]>::try_from(c).unwrap_or([0; HASH_LEN]))
            .collect();
        let raw = r.take(vector_bytes).ok_or_else(truncated)?;
        let vectors: Vec<f32> = match precision {
            Precision::F16 => raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Precision::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        };
        if let Some(at) = vectors.iter().position(|x| !x.is_finite()) {
            let entry = at / dim.max(1);
            let key: String = keys[entry].iter().map(|b| format!("{b:02x}")).collect();
            return Err(corrupt(format!(
                "entry {entry} of {count} (text sha256 {key}) has the non-finite value {} at position {}; \
                 delete the cache to embed its texts again",
                vectors[at],
                at % dim.max(1)
            )));
        }
        let index: HashMap<_, _> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        if index.len() != keys.len() {
            return Err(corrupt("duplicate text keys".into()));
        }
        Ok(Self { model_id, template_id, dim, precision, keys, index, vectors })
    }
}

/// A bounds-checked little-endian reader over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(slice)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }

    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}
