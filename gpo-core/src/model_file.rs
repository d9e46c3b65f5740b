//! The `.gpo` model file: a GPO model's configuration, provenance and weights in one small,
//! checked, portable file.
//!
//! Layout: a [`crate::container`] of magic `GPOMODEL` whose payload is postcard-encoded
//! [`GpoConfig`], [`ModelMetadata`], [`WeightDType`], the named weight tensors and, for prior
//! models, the population prior.
//!
//! Weights are stored as f32, f16 or bf16, little-endian. A prior model ([`GpoConfig::prior`])
//! carries everything its prior needs ([`PopulationPrior`]): the prior kind and its parameters,
//! the metric, the rule for questions no prior group answered ([`crate::prior::NeighbourRule`]:
//! how many nearest questions, weighted how; format 4, format-3 files weigh them equally), the
//! prior groups' answer distributions keyed by question, and each known question's ordinal values
//! and mean option embedding; stored as f32 with f32 weights, else as f16. So a `.gpo` file is
//! used with no other file.
//!
//! Loading reads the payload field by field and returns a [`ModelFileError`] that names the field
//! (and its byte offset) or the tensor; it never panics, and allocates only what the checked
//! payload already holds: every length is checked against the bytes that follow it, and every
//! parameter of the configuration must be stored once with its shape before any model is built.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use burn::tensor::backend::Backend;
use half::{bf16, f16};
use serde::{Deserialize, Serialize};

use crate::container::{self, ContainerError, FieldError, FieldReader, FieldSpan};
use crate::metrics::Metric;
use crate::model::{ConfigError, Gpo, GpoConfig};
use crate::prior::{
    NeighbourRule, NeighbourWeights, OptionMatch, PopulationPrior, PriorError, PriorGroup, PriorKind, PriorQuestion,
    SIGNATURE_DIM,
};
use crate::template::Template;
use crate::weights::{NamedTensor, WeightError, load_named_tensors, named_tensors};

/// First bytes of every `.gpo` file.
pub const MAGIC: [u8; 8] = *b"GPOMODEL";
/// Version of the layout written by this crate (3: prior models carry their prior's data; the
/// metadata's template and prior are typed; 4: the prior's rule for unknown questions says how
/// it weighs the nearest questions; 5: and how it pairs their options, with the prior questions'
/// option signatures). [`READ_VERSIONS`] are read; older files are refused with
/// [`ModelFileError::Container`] ([`ContainerError::UnsupportedVersion`]).
pub const FORMAT_VERSION: u32 = 5;

/// The versions this crate reads: 3 (its unknown questions' priors weigh the nearest questions
/// equally, the only rule then), 4 (options paired by position, the only pairing then) and 5.
pub const READ_VERSIONS: [u32; 3] = [3, 4, 5];

/// Storage type of the weights (`f32`, `f16` or `bf16` in configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
}

impl core::str::FromStr for WeightDType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::F32, Self::F16, Self::BF16]
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| alloc::format!("unknown dtype `{s}`: expected f32, f16 or bf16"))
    }
}

impl WeightDType {
    /// Every storage type.
    pub const ALL: [WeightDType; 3] = [Self::F32, Self::F16, Self::BF16];

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

    /// Largest finite magnitude the type holds.
    pub fn max_value(self) -> f32 {
        match self {
            Self::F32 => f32::MAX,
            Self::F16 => f16::MAX.to_f32(),
            Self::BF16 => bf16::MAX.to_f32(),
        }
    }

    /// Appends `values` in this type; the first value that is not finite or beyond the type's
    /// range is returned as the error (it would be stored as infinity).
    fn encode(self, values: &[f32], out: &mut Vec<u8>) -> Result<(), f32> {
        if let Some(&bad) = values.iter().find(|v| !v.is_finite() || v.abs() > self.max_value()) {
            return Err(bad);
        }
        match self {
            Self::F32 => out.extend_from_slice(bytemuck::cast_slice(values)),
            Self::F16 => {
                let half: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
                out.extend_from_slice(bytemuck::cast_slice(&half));
            }
            Self::BF16 => {
                let half: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
                out.extend_from_slice(bytemuck::cast_slice(&half));
            }
        }
        Ok(())
    }

    /// Decodes little-endian values; `None` unless `bytes` holds a whole number of them.
    fn decode(self, bytes: &[u8]) -> Option<Vec<f32>> {
        if !bytes.len().is_multiple_of(self.size()) {
            return None;
        }
        // `pod_collect_to_vec` copies into an aligned buffer, whatever the payload's alignment.
        Some(match self {
            Self::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(bytes),
            Self::F16 => bytemuck::pod_collect_to_vec::<u8, f16>(bytes).into_iter().map(f16::to_f32).collect(),
            Self::BF16 => bytemuck::pod_collect_to_vec::<u8, bf16>(bytes).into_iter().map(bf16::to_f32).collect(),
        })
    }
}

/// Where a model came from: what it expects as input and how it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Identifier of the sentence-embedding model that produced the inputs.
    pub embedding_model: String,
    /// Dimension of those embeddings; equals the config's `dim_x`.
    pub embedding_dim: u64,
    /// The text template that turned (question, option) into the embedded text (`None` for
    /// inputs not made from text, e.g. synthetic data).
    pub text_template: Option<Template>,
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
    /// Version of the crate that wrote the file.
    pub crate_version: String,
}

impl ModelMetadata {
    /// Metadata for a model over `embedding_dim`-dimensional inputs, with this crate's version
    /// and every other field empty or zero.
    pub fn new(embedding_model: &str, embedding_dim: usize, text_template: Option<Template>) -> Self {
        Self {
            embedding_model: embedding_model.to_string(),
            embedding_dim: embedding_dim as u64,
            text_template,
            dataset: String::new(),
            seed: 0,
            training_steps: 0,
            validation_score: None,
            method: String::new(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The message of a container error, for a `.gpo` file.
fn container_message(error: &ContainerError) -> String {
    match error {
        ContainerError::BadMagic { .. } => "not a .gpo model file (bad magic bytes)".into(),
        ContainerError::UnsupportedVersion { found } => alloc::format!(
            "unsupported .gpo format version {found} (this build reads versions 3 to {FORMAT_VERSION}; version 2 files \
             lack the prior data that version 3 carries: re-export the model with this gpo, e.g. `gpo run` again)"
        ),
        other => other.to_string(),
    }
}

/// Why bytes are not a valid `.gpo` model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelFileError {
    /// The sealed container is truncated, of another kind or version, or corrupted.
    #[error("{}", container_message(.0))]
    Container(ContainerError),
    /// A field of the payload does not decode.
    #[error("payload does not decode: {0}")]
    Decode(FieldError),
    /// The file could not be encoded.
    #[error("cannot encode the model file: {0}")]
    Encode(String),
    /// The configuration is invalid.
    #[error("invalid model configuration: {0}")]
    Config(ConfigError),
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
    /// The weights do not fit the configuration (a tensor missing, unexpected, stored twice or
    /// of another shape: the tensor is named).
    #[error("weights do not fit the configuration: {0}")]
    Weights(WeightError),
    /// A weight the storage type cannot hold (it would become infinite), or a non-finite one.
    #[error("tensor `{name}`: value {value} cannot be stored as {dtype} (largest magnitude {max})")]
    OutOfRange {
        /// Tensor name.
        name: String,
        /// The value.
        value: f32,
        /// Storage type.
        dtype: &'static str,
        /// Largest finite magnitude of the type.
        max: f32,
    },
    /// A prior model without its prior, or a prior with a model that reads none.
    #[error("{}", if *config_reads_prior {
        "the configuration reads a population prior but the file carries no prior data"
    } else {
        "the file carries prior data but the configuration reads no prior"
    })]
    PriorPresence {
        /// Whether the configuration reads a prior.
        config_reads_prior: bool,
    },
    /// The stored prior is malformed.
    #[error("prior: {0}")]
    Prior(String),
    /// The prior is invalid.
    #[error("prior: {0}")]
    PriorData(PriorError),
}

crate::cause_in_message!(ModelFileError {
    Decode(FieldError),
    Config(ConfigError),
    Weights(WeightError),
    PriorData(PriorError),
});

#[derive(Serialize)]
struct StoredTensor {
    name: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

#[derive(Serialize)]
struct StoredQuestion {
    key: String,
    ordinal: Vec<f64>,
}

/// [`PriorKind`] as postcard stores it (postcard cannot read serde's internally tagged enums).
#[derive(Serialize, Deserialize)]
enum StoredKind {
    TrainMean,
    KnnGroups { temperature: f64 },
}

impl From<PriorKind> for StoredKind {
    fn from(kind: PriorKind) -> Self {
        match kind {
            PriorKind::TrainMean => Self::TrainMean,
            PriorKind::KnnGroups { temperature } => Self::KnnGroups { temperature },
        }
    }
}

impl From<StoredKind> for PriorKind {
    fn from(kind: StoredKind) -> Self {
        match kind {
            StoredKind::TrainMean => Self::TrainMean,
            StoredKind::KnnGroups { temperature } => Self::KnnGroups { temperature },
        }
    }
}

/// [`OptionMatch`] as postcard stores it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum StoredMatch {
    Position,
    Meaning { weight: f64 },
}

impl From<OptionMatch> for StoredMatch {
    fn from(options: OptionMatch) -> Self {
        match options {
            OptionMatch::Position => Self::Position,
            OptionMatch::Meaning { weight } => Self::Meaning { weight },
        }
    }
}

impl From<StoredMatch> for OptionMatch {
    fn from(options: StoredMatch) -> Self {
        match options {
            StoredMatch::Position => Self::Position,
            StoredMatch::Meaning { weight } => Self::Meaning { weight },
        }
    }
}

/// [`NeighbourWeights`] as postcard stores it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum StoredWeights {
    Equal,
    Similarity { temperature: f64 },
}

impl From<NeighbourWeights> for StoredWeights {
    fn from(weights: NeighbourWeights) -> Self {
        match weights {
            NeighbourWeights::Equal => Self::Equal,
            NeighbourWeights::Similarity { temperature } => Self::Similarity { temperature },
        }
    }
}

impl From<StoredWeights> for NeighbourWeights {
    fn from(weights: StoredWeights) -> Self {
        match weights {
            StoredWeights::Equal => Self::Equal,
            StoredWeights::Similarity { temperature } => Self::Similarity { temperature },
        }
    }
}

/// A [`PopulationPrior`] as stored: group-major answered bitmap and concatenated answers.
#[derive(Serialize)]
struct StoredPrior {
    kind: StoredKind,
    metric: Metric,
    neighbours: u32,
    /// Absent from version-3 files (equal weights).
    neighbour_weights: StoredWeights,
    /// Absent from version-3 and 4 files (by position).
    option_match: StoredMatch,
    dim: u32,
    dtype: WeightDType,
    groups: Vec<String>,
    questions: Vec<StoredQuestion>,
    /// `n_questions × dim` question vectors.
    vectors: Vec<u8>,
    /// Every question's option signatures (`options × SIGNATURE_DIM` each), in question order,
    /// where the rule reads them (options matched by meaning), none otherwise (absent from
    /// version-3 and 4 files).
    signatures: Vec<u8>,
    /// Bit `g · n_questions + q` (LSB first): group `g` answered question `q`.
    answered: Vec<u8>,
    /// The answered distributions, group-major, question order.
    answers: Vec<u8>,
}

#[derive(Serialize)]
struct Payload {
    config: GpoConfig,
    metadata: ModelMetadata,
    dtype: WeightDType,
    tensors: Vec<StoredTensor>,
    prior: Option<StoredPrior>,
}

/// The storage type of a prior's values for weights of type `dtype`.
fn prior_dtype(dtype: WeightDType) -> WeightDType {
    match dtype {
        WeightDType::F32 => WeightDType::F32,
        WeightDType::F16 | WeightDType::BF16 => WeightDType::F16,
    }
}

fn encode_prior(prior: &PopulationPrior, dtype: WeightDType) -> Result<StoredPrior, ModelFileError> {
    let dtype = prior_dtype(dtype);
    let range = |what: &'static str| {
        move |value| ModelFileError::OutOfRange {
            name: what.into(),
            value,
            dtype: dtype.name(),
            max: dtype.max_value(),
        }
    };
    let n_q = prior.questions().len();
    let mut vectors = Vec::new();
    for q in prior.questions() {
        dtype.encode(&q.vector, &mut vectors).map_err(range("prior question vector"))?;
    }
    // All questions have signatures, or none has (a prior decoded from an older file).
    let mut signatures = Vec::new();
    if prior.questions().iter().all(|q| !q.signatures.is_empty()) {
        for q in prior.questions() {
            dtype.encode(&q.signatures, &mut signatures).map_err(range("prior option signature"))?;
        }
    }
    let mut answered = alloc::vec![0u8; (prior.groups().len() * n_q).div_ceil(8)];
    let mut answers = Vec::new();
    for (g, group) in prior.groups().iter().enumerate() {
        for (q, answer) in group.answers.iter().enumerate() {
            if let Some(p) = answer {
                let bit = g * n_q + q;
                answered[bit / 8] |= 1 << (bit % 8);
                let values: Vec<f32> = p.iter().map(|&v| v as f32).collect();
                dtype.encode(&values, &mut answers).map_err(range("prior answer"))?;
            }
        }
    }
    Ok(StoredPrior {
        kind: prior.kind().into(),
        metric: prior.metric(),
        neighbours: u32::try_from(prior.neighbours())
            .map_err(|_| ModelFileError::Prior("too many neighbours".into()))?,
        neighbour_weights: prior.neighbour_rule().weights.into(),
        option_match: prior.neighbour_rule().options.into(),
        dim: u32::try_from(prior.dim()).map_err(|_| ModelFileError::Prior("dimension too large".into()))?,
        dtype,
        groups: prior.groups().iter().map(|g| g.name.clone()).collect(),
        questions: prior
            .questions()
            .iter()
            .map(|q| StoredQuestion { key: q.key.clone(), ordinal: q.ordinal.clone() })
            .collect(),
        vectors,
        signatures,
        answered,
        answers,
    })
}

/// Largest number of prior groups a model file may hold.
pub const MAX_PRIOR_GROUPS: usize = 4_096;
/// Largest number of prior questions a model file may hold.
pub const MAX_PRIOR_QUESTIONS: usize = 1 << 20;
/// Largest number of (group, question) answer slots of a prior, answered or not: a decoded prior
/// keeps one per pair (24 bytes on 64-bit targets), so its memory before any answer stays under
/// about 100 MB.
pub const MAX_PRIOR_SLOTS: usize = 1 << 22;

/// Decodes a stored prior. Every count is checked against the documented limits and the bytes
/// present before anything is allocated for it (the groups' answer slots, the decoded vectors and
/// answers), so a file declaring a huge prior is one error, never an allocation failure.
fn decode_prior(stored: StoredPrior) -> Result<PopulationPrior, ModelFileError> {
    let bad = |field: &str, what: String| ModelFileError::Prior(alloc::format!("`{field}`: {what}"));
    let (n_g, n_q) = (stored.groups.len(), stored.questions.len());
    if n_g == 0 || n_g > MAX_PRIOR_GROUPS {
        return Err(bad("groups", alloc::format!("{n_g} groups, expected 1 to {MAX_PRIOR_GROUPS}")));
    }
    if n_q > MAX_PRIOR_QUESTIONS {
        return Err(bad("questions", alloc::format!("{n_q} questions, at most {MAX_PRIOR_QUESTIONS}")));
    }
    let slots = n_g * n_q; // both bounded above: no overflow
    if slots > MAX_PRIOR_SLOTS {
        return Err(bad(
            "answered",
            alloc::format!(
                "{n_g} groups × {n_q} questions = {slots} answer slots, more than the {MAX_PRIOR_SLOTS} a model file may hold"
            ),
        ));
    }
    let dim = stored.dim as usize;
    if dim == 0 || dim > crate::model::MAX_DIM_X {
        return Err(bad("dim", alloc::format!("{dim}, expected 1 to {}", crate::model::MAX_DIM_X)));
    }
    let neighbours = stored.neighbours as usize;
    if neighbours == 0 || neighbours > crate::prior::MAX_NEIGHBOURS {
        return Err(bad("neighbours", alloc::format!("{neighbours}, expected 1 to {}", crate::prior::MAX_NEIGHBOURS)));
    }
    let kind: PriorKind = stored.kind.into();
    kind.validate().map_err(|e| bad("kind", e.to_string()))?;
    let rule = NeighbourRule { neighbours, weights: stored.neighbour_weights.into(), options: OptionMatch::Position };
    rule.validate().map_err(|e| bad("neighbour_weights", e.to_string()))?;
    let rule = NeighbourRule { options: stored.option_match.into(), ..rule };
    rule.validate().map_err(|e| bad("option_match", e.to_string()))?;
    for (q, question) in stored.questions.iter().enumerate() {
        let options = question.ordinal.len();
        if options == 0 || options > crate::predictor::MAX_OPTIONS {
            return Err(bad(
                "questions",
                alloc::format!(
                    "question {q} (`{}`) has {options} options, expected 1 to {}",
                    question.key,
                    crate::predictor::MAX_OPTIONS
                ),
            ));
        }
    }
    let dtype = stored.dtype;
    let vector_bytes = n_q * dim * dtype.size(); // ≤ 2^20 · 2^16 · 4
    if stored.vectors.len() != vector_bytes {
        return Err(bad(
            "vectors",
            alloc::format!(
                "{} bytes, expected {vector_bytes} ({n_q} questions × {dim} × {})",
                stored.vectors.len(),
                dtype.name()
            ),
        ));
    }
    if stored.answered.len() != slots.div_ceil(8) {
        return Err(bad(
            "answered",
            alloc::format!(
                "{} bytes, expected {} (one bit per {n_g} groups × {n_q} questions)",
                stored.answered.len(),
                slots.div_ceil(8)
            ),
        ));
    }
    let n_options: usize = stored.questions.iter().map(|q| q.ordinal.len()).sum(); // ≤ 2^20 · 2^6
    let signature_bytes = n_options * SIGNATURE_DIM * dtype.size();
    if !stored.signatures.is_empty() && stored.signatures.len() != signature_bytes {
        return Err(bad(
            "signatures",
            alloc::format!(
                "{} bytes, expected none or {signature_bytes} ({n_options} options × {SIGNATURE_DIM} × {})",
                stored.signatures.len(),
                dtype.name()
            ),
        ));
    }
    if stored.signatures.is_empty() && matches!(rule.options, OptionMatch::Meaning { .. }) {
        return Err(bad("signatures", "none stored, but the rule matches options by meaning".into()));
    }
    let is_answered = |bit: usize| stored.answered[bit / 8] & (1 << (bit % 8)) != 0;
    if (slots..slots.div_ceil(8) * 8).any(is_answered) {
        return Err(bad("answered", "bits past the last (group, question) slot are set".into()));
    }
    // The answer values the bitmap announces, before they are decoded.
    let announced: usize =
        (0..slots).filter(|&bit| is_answered(bit)).map(|bit| stored.questions[bit % n_q].ordinal.len()).sum();
    if stored.answers.len() != announced * dtype.size() {
        return Err(bad(
            "answers",
            alloc::format!(
                "{} bytes, the answered bitmap announces {announced} values ({} bytes)",
                stored.answers.len(),
                announced * dtype.size()
            ),
        ));
    }
    let vectors = dtype.decode(&stored.vectors).ok_or(bad("vectors", "not a whole number of values".into()))?;
    let signatures =
        dtype.decode(&stored.signatures).ok_or(bad("signatures", "not a whole number of values".into()))?;
    if let Some(at) = signatures.iter().position(|v| !v.is_finite()) {
        return Err(bad("signatures", alloc::format!("value {at} is not finite")));
    }
    let values = dtype.decode(&stored.answers).ok_or(bad("answers", "not a whole number of values".into()))?;
    let mut at = 0usize;
    let mut groups = Vec::with_capacity(n_g);
    for (g, name) in stored.groups.into_iter().enumerate() {
        let mut answers = Vec::with_capacity(n_q);
        for (q, question) in stored.questions.iter().enumerate() {
            if !is_answered(g * n_q + q) {
                answers.push(None);
                continue;
            }
            let k = question.ordinal.len();
            let p = values.get(at..at + k).ok_or(bad("answers", "fewer values than the bitmap announces".into()))?;
            at += k;
            // f16 values are rounded (2^-11 relative): renormalise them; f32 values are kept as
            // stored, so that an f32 file round-trips f32-representable answers exactly.
            let sum: f64 = p.iter().map(|&v| f64::from(v)).sum();
            let renormalise = dtype != WeightDType::F32 && sum > 0.0;
            answers
                .push(Some(p.iter().map(|&v| if renormalise { f64::from(v) / sum } else { f64::from(v) }).collect()));
        }
        groups.push(PriorGroup { name, answers });
    }
    let mut signature_at = 0;
    let questions = stored
        .questions
        .into_iter()
        .enumerate()
        .map(|(i, q)| {
            let n = if signatures.is_empty() { 0 } else { q.ordinal.len() * SIGNATURE_DIM };
            signature_at += n;
            PriorQuestion {
                key: q.key,
                vector: vectors[i * dim..(i + 1) * dim].to_vec(),
                signatures: signatures[signature_at - n..signature_at].to_vec(),
                ordinal: q.ordinal,
            }
        })
        .collect();
    Ok(PopulationPrior::new(kind, stored.metric, neighbours, dim, questions, groups)?.with_neighbour_rule(rule)?)
}

/// A stored tensor's values, checked against its shape and the dtype.
fn decode_tensor(
    name: String,
    shape: Vec<u64>,
    data: &[u8],
    dtype: WeightDType,
) -> Result<NamedTensor, ModelFileError> {
    let dims: Option<Vec<usize>> = shape.iter().map(|&d| usize::try_from(d).ok()).collect();
    let numel = dims.as_ref().and_then(|s| s.iter().try_fold(1usize, |n, &d| n.checked_mul(d)));
    match (dims, numel.and_then(|n| n.checked_mul(dtype.size()))) {
        (Some(dims), Some(len)) if len == data.len() => {
            if let Some(values) = dtype.decode(data) {
                return Ok(NamedTensor { values, name, shape: dims });
            }
        }
        _ => {}
    }
    Err(ModelFileError::TensorBytes { bytes: data.len(), name, shape, dtype: dtype.name() })
}

/// Reads a stored prior's fields of a file of `version` (the counts against the bytes left and
/// the limits; the consistency of the whole is [`decode_prior`]'s).
fn read_prior(r: &mut FieldReader<'_, '_>, version: u32) -> Result<StoredPrior, FieldError> {
    let kind = r.value(|| "prior.kind".into())?;
    let metric = r.value(|| "prior.metric".into())?;
    let neighbours = r.value(|| "prior.neighbours".into())?;
    let neighbour_weights =
        if version >= 4 { r.value(|| "prior.neighbour_weights".into())? } else { StoredWeights::Equal };
    let option_match = if version >= 5 { r.value(|| "prior.option_match".into())? } else { StoredMatch::Position };
    let dim = r.value(|| "prior.dim".into())?;
    let dtype = r.value(|| "prior.dtype".into())?;
    let n_groups = r.len(|| "prior.groups".into(), MAX_PRIOR_GROUPS, "groups")?;
    let mut groups = Vec::with_capacity(n_groups);
    for g in 0..n_groups {
        groups.push(r.value(|| alloc::format!("prior.groups[{g}]"))?);
    }
    let n_questions = r.len(|| "prior.questions".into(), MAX_PRIOR_QUESTIONS, "questions")?;
    let mut questions = Vec::with_capacity(n_questions);
    for q in 0..n_questions {
        let key = r.value(|| alloc::format!("prior.questions[{q}].key"))?;
        let options =
            r.len(|| alloc::format!("prior.questions[{q}].ordinal"), crate::predictor::MAX_OPTIONS, "options")?;
        let mut ordinal = Vec::with_capacity(options);
        for o in 0..options {
            ordinal.push(r.value(|| alloc::format!("prior.questions[{q}].ordinal[{o}]"))?);
        }
        questions.push(StoredQuestion { key, ordinal });
    }
    let vectors = r.bytes(|| "prior.vectors".into())?.to_vec();
    let signatures = if version >= 5 { r.bytes(|| "prior.signatures".into())?.to_vec() } else { Vec::new() };
    let answered = r.bytes(|| "prior.answered".into())?.to_vec();
    let answers = r.bytes(|| "prior.answers".into())?.to_vec();
    Ok(StoredPrior {
        kind,
        metric,
        neighbours,
        neighbour_weights,
        option_match,
        dim,
        dtype,
        groups,
        questions,
        vectors,
        signatures,
        answered,
        answers,
    })
}

/// A model file: a configuration, its weights, their storage type, provenance, and the prior a
/// prior model reads. Checked once, when it is made ([`Self::from_model`]) or decoded
/// ([`Self::from_bytes`]): a value of this type is always a valid file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    config: GpoConfig,
    metadata: ModelMetadata,
    dtype: WeightDType,
    /// As f32 values (already rounded to `dtype` when decoded).
    tensors: Vec<NamedTensor>,
    prior: Option<PopulationPrior>,
}

impl ModelFile {
    /// Captures `model`'s weights, with the prior a prior model reads. Fails on a prior model
    /// without its prior (or the reverse), metadata that contradicts the configuration, and
    /// weights that do not fit it.
    pub fn from_model<B: Backend>(
        model: &Gpo<B>,
        config: &GpoConfig,
        metadata: ModelMetadata,
        dtype: WeightDType,
        prior: Option<PopulationPrior>,
    ) -> Result<Self, ModelFileError> {
        // Option signatures are stored only where the rule reads them.
        let prior = prior.map(PopulationPrior::without_unread_signatures);
        let file = Self { config: config.clone(), metadata, dtype, tensors: named_tensors::<B, _>(model), prior };
        file.check()?;
        Ok(file)
    }

    /// The architecture.
    pub fn config(&self) -> &GpoConfig {
        &self.config
    }

    /// Provenance.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// Storage type of the weights.
    pub fn dtype(&self) -> WeightDType {
        self.dtype
    }

    /// The weights, as f32 values (already rounded to the storage type when decoded).
    pub fn tensors(&self) -> &[NamedTensor] {
        &self.tensors
    }

    /// The population prior of a prior model (`None` for a model without a prior).
    pub fn prior(&self) -> Option<&PopulationPrior> {
        self.prior.as_ref()
    }

    /// The same file stored as `dtype` ([`Self::to_bytes`] fails if a weight does not fit it).
    pub fn with_dtype(self, dtype: WeightDType) -> Self {
        Self { dtype, ..self }
    }

    /// The same file with other provenance, checked against the configuration.
    pub fn with_metadata(self, metadata: ModelMetadata) -> Result<Self, ModelFileError> {
        let file = Self { metadata, ..self };
        file.check()?;
        Ok(file)
    }

    /// Encodes the file. Fails on a weight the storage type cannot hold.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelFileError> {
        let tensors = self
            .tensors
            .iter()
            .map(|t| {
                let mut data = Vec::new();
                self.dtype.encode(&t.values, &mut data).map_err(|value| ModelFileError::OutOfRange {
                    name: t.name.clone(),
                    value,
                    dtype: self.dtype.name(),
                    max: self.dtype.max_value(),
                })?;
                Ok(StoredTensor { name: t.name.clone(), shape: t.shape.iter().map(|&d| d as u64).collect(), data })
            })
            .collect::<Result<Vec<_>, ModelFileError>>()?;
        let prior = self.prior.as_ref().map(|p| encode_prior(p, self.dtype)).transpose()?;
        let payload =
            Payload { config: self.config.clone(), metadata: self.metadata.clone(), dtype: self.dtype, tensors, prior };
        let payload = postcard::to_allocvec(&payload).map_err(|e| ModelFileError::Encode(e.to_string()))?;
        Ok(container::seal(&MAGIC, FORMAT_VERSION, &payload))
    }

    /// The checks of every new file (made or decoded): a valid configuration whose parameter count
    /// equals the stored values, matching metadata, and a prior exactly when the model reads one.
    fn check(&self) -> Result<(), ModelFileError> {
        self.config.validate()?;
        if self.metadata.embedding_dim != self.config.dim_x as u64 {
            return Err(ModelFileError::Dimension { metadata: self.metadata.embedding_dim, config: self.config.dim_x });
        }
        self.check_tensors()?;
        if self.config.prior != self.prior.is_some() {
            return Err(ModelFileError::PriorPresence { config_reads_prior: self.config.prior });
        }
        if let Some(prior) = &self.prior
            && prior.dim() != self.config.dim_x
        {
            return Err(ModelFileError::Prior(alloc::format!(
                "question vectors are {}-d, the model's inputs {}-d",
                prior.dim(),
                self.config.dim_x
            )));
        }
        Ok(())
    }

    /// Every parameter of the configuration is stored once, with its shape and as many values,
    /// and nothing else is: the first tensor that is not is named.
    fn check_tensors(&self) -> Result<(), ModelFileError> {
        crate::weights::parameter_order(&self.config.parameter_shapes()?, &self.tensors)?;
        Ok(())
    }

    /// Decodes and checks a file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelFileError> {
        Self::read(bytes, None)
    }

    /// Every field of a valid file and where its bytes lie, in file order: the spans are
    /// contiguous from the end of the container header to the end of the file. For tools that
    /// show or mutate a file's structure (the fuzz tests change counts, bitmaps and values in
    /// place). Fails as [`Self::from_bytes`] does.
    ///
    /// The fields: `config`, `metadata`, `dtype`, `tensors.len`, then per tensor
    /// `tensors[i].name`, `.shape`, `.data.len`, `.data`; `prior` (the option tag), then for a
    /// prior model `prior.kind`, `prior.metric`, `prior.neighbours`, `prior.neighbour_weights` (not
    /// in version-3 files), `prior.dim`, `prior.dtype`,
    /// `prior.groups.len`, `prior.groups[g]`, `prior.questions.len`, `prior.questions[q].key`,
    /// `prior.questions[q].ordinal.len`, `prior.questions[q].ordinal[o]`, and `prior.vectors`,
    /// `prior.answered` and `prior.answers`, each after its `.len`.
    pub fn layout(bytes: &[u8]) -> Result<Vec<FieldSpan>, ModelFileError> {
        let mut spans = Vec::new();
        Self::read(bytes, Some(&mut spans))?;
        Ok(spans)
    }

    /// Decodes a file field by field (so that an error names the field and its byte offset, and
    /// every count is checked against the bytes left before anything is allocated for it).
    fn read(bytes: &[u8], spans: Option<&mut Vec<FieldSpan>>) -> Result<Self, ModelFileError> {
        let (version, payload) = container::open(bytes, &MAGIC, &READ_VERSIONS).map_err(ModelFileError::Container)?;
        let mut r = FieldReader::new(payload, spans);
        let config: GpoConfig = r.value(|| "config".into())?;
        let parameters = config.parameter_shapes()?.len();
        let metadata: ModelMetadata = r.value(|| "metadata".into())?;
        let dtype: WeightDType = r.value(|| "dtype".into())?;
        let n = r.len(|| "tensors".into(), usize::MAX, "tensors")?;
        // A count past the configuration's is kept for the check that names the extra tensor,
        // but allocates nothing in advance.
        let mut tensors = Vec::with_capacity(n.min(parameters));
        for i in 0..n {
            let name: String = r.value(|| alloc::format!("tensors[{i}].name"))?;
            let shape: Vec<u64> = r.value(|| alloc::format!("tensors[{i}].shape"))?;
            let data = r.bytes(|| alloc::format!("tensors[{i}].data"))?;
            tensors.push(decode_tensor(name, shape, data, dtype)?);
        }
        let start = r.at();
        let prior = match r.value::<u8>(|| "prior".into())? {
            0 => None,
            1 => Some(decode_prior(read_prior(&mut r, version)?)?),
            tag => {
                let reason = alloc::format!("option tag {tag}, expected 0 (no prior) or 1");
                return Err(r.error_at(start, "prior".into(), reason).into());
            }
        };
        r.finish()?;
        let file = Self { config, metadata, dtype, tensors, prior };
        file.check()?;
        Ok(file)
    }

    /// Builds the model on `device` with the file's weights (the file was checked when made, so
    /// nothing larger than the stored weights is allocated).
    pub fn to_model<B: Backend>(&self, device: &B::Device) -> Result<Gpo<B>, ModelFileError> {
        let model = self.config.init::<B>(device)?;
        Ok(load_named_tensors(model, &self.tensors)?)
    }

    /// Number of scalar parameters.
    pub fn n_parameters(&self) -> usize {
        self.tensors.iter().map(|t| t.values.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{format, vec};

    const DIM: usize = 8;

    /// A prior model's file with no weights around `prior`: decoding reaches the prior section
    /// (the parameter count is compared after it).
    fn sealed(prior: StoredPrior) -> Vec<u8> {
        let payload = Payload {
            config: GpoConfig::new(DIM).with_prior(true),
            metadata: ModelMetadata::new("t", DIM, None),
            dtype: WeightDType::F32,
            tensors: Vec::new(),
            prior: Some(prior),
        };
        container::seal(&MAGIC, FORMAT_VERSION, &postcard::to_allocvec(&payload).unwrap())
    }

    /// `groups × questions` (2 options each), none answered, every count consistent.
    fn stored(groups: usize, questions: usize) -> StoredPrior {
        StoredPrior {
            kind: StoredKind::KnnGroups { temperature: 0.05 },
            metric: Metric::Wasserstein,
            neighbours: 5,
            neighbour_weights: StoredWeights::Equal,
            option_match: StoredMatch::Position,
            dim: DIM as u32,
            dtype: WeightDType::F32,
            groups: (0..groups).map(|g| format!("g{g}")).collect(),
            questions: (0..questions)
                .map(|q| StoredQuestion { key: format!("q{q}"), ordinal: vec![1.0, 2.0] })
                .collect(),
            vectors: vec![0; questions * DIM * 4],
            signatures: Vec::new(),
            answered: vec![0; (groups * questions).div_ceil(8)],
            answers: Vec::new(),
        }
    }

    fn error(prior: StoredPrior) -> String {
        match ModelFile::from_bytes(&sealed(prior)) {
            Err(e @ (ModelFileError::Prior(_) | ModelFileError::PriorData(_) | ModelFileError::Decode(_))) => {
                e.to_string()
            }
            other => panic!("expected a prior error, got {other:?}"),
        }
    }

    #[test]
    fn a_huge_declared_prior_is_one_error_before_anything_is_allocated() {
        // The reported file: 16,384 groups × 16,384 questions, none answered, its 32 MB bitmap
        // consistent; it used to ask for 24 bytes per slot (6.4 GB) before any check.
        let m = error(stored(16_384, 16_384));
        assert!(m.contains("`prior.groups` at byte") && m.contains("16384 groups, at most 4096"), "{m}");
        let m = error(stored(4_096, 16_384));
        assert!(m.contains("`answered`") && m.contains("67108864 answer slots"), "{m}");
        // Within the limits the prior decodes (the missing weights are the next error).
        let m = ModelFile::from_bytes(&sealed(stored(4, 10))).unwrap_err().to_string();
        assert_eq!(m, "weights do not fit the configuration: missing parameter `embedder.0.weight`");
    }

    /// A valid file of a small model, with or without a prior.
    fn valid(prior: bool) -> Vec<u8> {
        let config =
            GpoConfig::new(DIM).with_d_model(4).with_d_ff(4).with_n_heads(2).with_n_layers(1).with_prior(prior);
        let model = config.init_seeded::<burn_ndarray::NdArray<f32>>(&Default::default(), 3).unwrap();
        let prior = prior.then(|| {
            let q = |key: &str| PriorQuestion::new(key, vec![1.0, 2.0], &[0.5; 2 * DIM], DIM);
            let groups = vec![PriorGroup { name: "g".into(), answers: vec![Some(vec![0.25, 0.75]), None] }];
            PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, 1, DIM, vec![q("A"), q("B")], groups)
                .unwrap()
        });
        ModelFile::from_model(&model, &config, ModelMetadata::new("t", DIM, None), WeightDType::F32, prior)
            .and_then(|f| f.to_bytes())
            .unwrap()
    }

    #[test]
    fn the_parameter_list_is_the_models() {
        let device = Default::default();
        for (prior, emb_depth, n_layers) in [(false, 2, 1), (true, 3, 2), (false, 2, 0)] {
            let config = GpoConfig::new(5)
                .with_d_model(4)
                .with_d_ff(6)
                .with_n_heads(2)
                .with_emb_depth(emb_depth)
                .with_n_layers(n_layers)
                .with_prior(prior);
            let listed = match config.parameter_shapes() {
                Ok(listed) => listed,
                Err(e) => {
                    assert_eq!(n_layers, 0, "{e}");
                    continue;
                }
            };
            let model = config.init::<burn_ndarray::NdArray<f32>>(&device).unwrap();
            let built: Vec<_> = named_tensors(&model).into_iter().map(|t| (t.name, t.shape)).collect();
            assert_eq!(listed, built);
            assert_eq!(listed.iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>(), config.n_parameters());
        }
    }

    #[test]
    fn the_layout_covers_the_payload_field_by_field() {
        for prior in [false, true] {
            let bytes = valid(prior);
            let spans = ModelFile::layout(&bytes).unwrap();
            assert_eq!(spans[0].range.start, container::HEADER_LEN);
            assert_eq!(spans.last().unwrap().range.end, bytes.len());
            assert!(spans.windows(2).all(|w| w[0].range.end == w[1].range.start));
            let names: Vec<&str> = spans.iter().map(|s| s.field.as_str()).collect();
            assert_eq!(names[..5], ["config", "metadata", "dtype", "tensors.len", "tensors[0].name"]);
            assert_eq!(names.contains(&"prior.answered"), prior);
            assert_eq!(names.contains(&"prior.questions[1].ordinal[1]"), prior);
        }
    }

    /// `bytes` without the fields named `fields`, sealed as `version`.
    fn without(bytes: &[u8], fields: &[&str], version: u32) -> Vec<u8> {
        let spans = ModelFile::layout(bytes).unwrap();
        let mut payload = Vec::new();
        let mut at = container::HEADER_LEN;
        for span in spans.iter().filter(|s| fields.contains(&s.field.as_str())) {
            payload.extend_from_slice(&bytes[at..span.range.start]);
            at = span.range.end;
        }
        payload.extend_from_slice(&bytes[at..]);
        container::seal(&MAGIC, version, &payload)
    }

    #[test]
    fn older_versions_read_with_the_rules_of_their_time_and_version_5_keeps_the_rule() {
        let bytes = valid(true);
        let file = ModelFile::from_bytes(&bytes).unwrap();
        let prior = file.prior().unwrap();
        assert_eq!(prior.neighbour_rule(), NeighbourRule { neighbours: 1, ..Default::default() });
        // Options by position: no signatures stored.
        assert!(prior.questions().iter().all(|q| q.signatures.is_empty()));
        // The same file as version 4 wrote it (no option pairing, no signatures), and as version 3
        // (no weights either): the same prior without signatures.
        let unsigned = |f: &ModelFile| -> Vec<PriorQuestion> {
            f.prior().unwrap().questions().iter().map(|q| PriorQuestion { signatures: vec![], ..q.clone() }).collect()
        };
        let v4 = without(&bytes, &["prior.option_match", "prior.signatures.len", "prior.signatures"], 4);
        let v3 = without(
            &bytes,
            &["prior.neighbour_weights", "prior.option_match", "prior.signatures.len", "prior.signatures"],
            3,
        );
        for old in [&v4, &v3] {
            let read = ModelFile::from_bytes(old).unwrap();
            assert_eq!(read.prior().unwrap().neighbour_rule(), prior.neighbour_rule());
            assert_eq!(read.prior().unwrap().questions(), unsigned(&file).as_slice());
            assert!(ModelFile::layout(old).unwrap().iter().all(|s| s.field != "prior.signatures"));
            // Options cannot be matched by meaning without signatures.
            let meaning = NeighbourRule { options: OptionMatch::Meaning { weight: 0.3 }, ..prior.neighbour_rule() };
            assert_eq!(
                read.prior().unwrap().clone().with_neighbour_rule(meaning).unwrap_err(),
                PriorError::NoSignatures("A".into())
            );
            // Written again, it is a version-5 file without signatures, read back equal.
            let again = read.to_bytes().unwrap();
            assert_eq!(ModelFile::from_bytes(&again).unwrap(), read);
        }
        // Without the version, an older payload is a newer file cut short.
        assert!(ModelFile::from_bytes(&container::seal(&MAGIC, 5, &v4[container::HEADER_LEN..])).is_err());
        for version in [2, 6] {
            let m = decode_error(&container::seal(&MAGIC, version, &v4[container::HEADER_LEN..]));
            assert!(m.contains(&format!("unsupported .gpo format version {version}")), "{m}");
        }
        // Similarity weights and options matched by meaning are stored and read back.
        let rule = NeighbourRule {
            neighbours: 1,
            weights: NeighbourWeights::Similarity { temperature: 0.05 },
            options: OptionMatch::Meaning { weight: 0.3 },
        };
        let signed = |key: &str, x: f32| {
            let rows: Vec<f32> = (0..2 * DIM).map(|i| x * (i * i) as f32).collect();
            PriorQuestion::new(key, vec![1.0, 2.0], &rows, DIM)
        };
        let groups = vec![PriorGroup { name: "g".into(), answers: vec![Some(vec![0.25, 0.75]), None] }];
        let questions = vec![signed("A", 0.1), signed("B", -0.2)];
        let prior = PopulationPrior::new(PriorKind::TrainMean, Metric::Wasserstein, 1, DIM, questions, groups)
            .unwrap()
            .with_neighbour_rule(rule)
            .unwrap();
        assert!(prior.questions().iter().all(|q| q.signatures.len() == 2 * SIGNATURE_DIM));
        let weighted = ModelFile { prior: Some(prior.clone()), ..file.clone() }.to_bytes().unwrap();
        let read = ModelFile::from_bytes(&weighted).unwrap();
        // An f32 file: the prior exactly, signatures included.
        assert_eq!(read.prior().unwrap(), &prior);
        assert_ne!(read, file);
        // Built from a model, a prior whose rule does not read signatures is stored without them.
        let unread =
            prior.clone().with_neighbour_rule(NeighbourRule { options: OptionMatch::Position, ..rule }).unwrap();
        let config = file.config().clone();
        let model = config.init_seeded::<burn_ndarray::NdArray<f32>>(&Default::default(), 3).unwrap();
        let metadata = file.metadata().clone();
        let stored = ModelFile::from_model(&model, &config, metadata, WeightDType::F32, Some(unread)).unwrap();
        assert!(stored.prior().unwrap().questions().iter().all(|q| q.signatures.is_empty()));
        let stored_bytes = stored.to_bytes().unwrap();
        assert_eq!(ModelFile::from_bytes(&stored_bytes).unwrap(), stored);
        assert!(stored_bytes.len() < weighted.len());
    }

    /// `bytes` with the field `field`'s bytes replaced by `with` (the container resealed).
    fn replaced(bytes: &[u8], field: &str, with: &[u8]) -> Vec<u8> {
        let spans = ModelFile::layout(bytes).unwrap();
        let span = &spans.iter().find(|s| s.field == field).unwrap().range;
        let mut payload = bytes[container::HEADER_LEN..span.start].to_vec();
        payload.extend_from_slice(with);
        payload.extend_from_slice(&bytes[span.end..]);
        container::seal(&MAGIC, FORMAT_VERSION, &payload)
    }

    fn decode_error(bytes: &[u8]) -> String {
        ModelFile::from_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn a_field_that_does_not_decode_is_named_with_its_offset() {
        let bytes = valid(true);
        let offset = |field: &str| {
            ModelFile::layout(&bytes).unwrap().into_iter().find(|s| s.field == field).unwrap().range.start
        };
        // An unknown dtype (postcard's "Serde Deserialization Error").
        let m = decode_error(&replaced(&bytes, "dtype", &[7]));
        assert_eq!(
            m,
            format!(
                "payload does not decode: `dtype` at byte {}: a value its type does not take (an unknown variant or a number out of range)",
                offset("dtype")
            )
        );
        // A count of 2^60 (postcard said "Tried to parse invalid utf-8").
        let huge = postcard::to_allocvec(&(1u64 << 60)).unwrap();
        let m = decode_error(&replaced(&bytes, "prior.groups.len", &huge));
        assert!(m.contains("`prior.groups`") && m.contains("1152921504606846976 groups, at most 4096"), "{m}");
        let m = decode_error(&replaced(&bytes, "tensors.len", &huge));
        assert!(m.contains("`tensors`") && m.contains("1152921504606846976 tensors declared, only"), "{m}");
        let m = decode_error(&replaced(&bytes, "prior.answers.len", &huge));
        assert!(m.contains("`prior.answers`") && m.contains("bytes declared, only"), "{m}");
        // Text that is not UTF-8, an option tag, a truncated payload, trailing bytes.
        let m = decode_error(&replaced(&bytes, "prior.groups[0]", &[1, 0xFF]));
        assert!(m.contains("`prior.groups[0]`") && m.ends_with("text that is not valid UTF-8"), "{m}");
        let m = decode_error(&replaced(&bytes, "prior", &[2]));
        assert!(m.contains("`prior`") && m.ends_with("option tag 2, expected 0 (no prior) or 1"), "{m}");
        let mut cut = bytes[container::HEADER_LEN..offset("prior.answers.len")].to_vec();
        cut.push(9);
        let m = decode_error(&container::seal(&MAGIC, FORMAT_VERSION, &cut));
        assert!(m.contains("`prior.answers`") && m.ends_with("9 bytes declared, only 0 bytes follow"), "{m}");
        let mut long = bytes[container::HEADER_LEN..].to_vec();
        long.extend_from_slice(&[0, 0]);
        let m = decode_error(&container::seal(&MAGIC, FORMAT_VERSION, &long));
        assert!(m.contains("`end`") && m.ends_with("2 bytes after the last field"), "{m}");
    }

    #[test]
    fn a_cause_is_printed_or_returned_as_source_not_both() {
        use crate::PredictError;
        use core::error::Error;
        let config = || ConfigError::Zero { field: "d_model" };
        let errors: [&dyn Error; 5] = [
            &ModelFileError::from(config()),
            &ModelFileError::from(WeightError::Missing("x".into())),
            &ModelFileError::from(PriorError::Neighbours(0)),
            &PredictError::from(ModelFileError::from(config())),
            &PredictError::from(PriorError::Neighbours(0)),
        ];
        for error in errors {
            // What a chain printer shows (anyhow's `{:#}`): each error, then its sources.
            let mut printed = error.to_string();
            let mut current = Some(error);
            while let Some(e) = current {
                if let Some(cause) = e.source() {
                    assert!(!e.to_string().contains(&cause.to_string()), "`{e}` prints its source `{cause}`");
                    printed = format!("{printed}: {cause}");
                }
                current = e.source();
            }
            assert!(printed.matches("must be positive").count() <= 1, "{printed}");
        }
    }

    /// A NaN weight (a diverged run) fits no storage type: encoding refuses it.
    #[test]
    fn a_nan_weight_is_refused_when_encoding() {
        let file = ModelFile::from_bytes(&valid(false)).unwrap();
        let mut tensors = file.tensors.clone();
        tensors[1].values[0] = f32::NAN;
        let nan = ModelFile { tensors, ..file }.with_dtype(WeightDType::BF16);
        assert!(matches!(nan.to_bytes(), Err(ModelFileError::OutOfRange { .. })));
    }

    #[test]
    fn a_missing_duplicated_or_misshapen_tensor_is_named() {
        let file = ModelFile::from_bytes(&valid(false)).unwrap();
        // Making and decoding a file share the check.
        let error = |tensors: Vec<NamedTensor>| ModelFile { tensors, ..file.clone() }.check().unwrap_err().to_string();
        let mut t = file.tensors.clone();
        let gone = t.remove(3);
        assert_eq!(error(t), format!("weights do not fit the configuration: missing parameter `{}`", gone.name));
        let mut t = file.tensors.clone();
        t.push(t[5].clone());
        assert_eq!(
            error(t),
            format!("weights do not fit the configuration: parameter `{}` is stored twice", file.tensors[5].name)
        );
        let mut t = file.tensors.clone();
        t[0].name = "embedder.9.weight".into();
        assert!(error(t).contains("missing parameter `embedder.0.weight`"));
        let mut t = file.tensors.clone();
        t.push(NamedTensor { name: "extra".into(), shape: vec![1], values: vec![0.0] });
        assert_eq!(error(t), "weights do not fit the configuration: unexpected parameter `extra`");
        let mut t = file.tensors.clone();
        t[1].shape = vec![t[1].values.len(), 1];
        assert!(error(t).contains(&format!("parameter `{}` has shape", file.tensors[1].name)));
    }

    #[test]
    fn absurd_prior_values_are_refused_and_named() {
        let mut p = stored(2, 3);
        p.neighbours = u32::MAX;
        assert!(error(p).contains("`neighbours`: 4294967295, expected 1 to 1024"));
        let mut p = stored(2, 3);
        p.kind = StoredKind::KnnGroups { temperature: 1e-300 };
        assert!(error(p).contains("`kind`: prior temperature must be between 1e-6 and 1e6"));
        let mut p = stored(2, 3);
        p.neighbour_weights = StoredWeights::Similarity { temperature: 0.0 };
        assert!(error(p).contains("`neighbour_weights`: prior temperature must be between 1e-6 and 1e6"));
        let mut p = stored(2, 3);
        p.option_match = StoredMatch::Meaning { weight: f64::NAN };
        assert!(error(p).contains("`option_match`: the option-matching weight must be between 0 and 100"));
        let mut p = stored(2, 3);
        p.option_match = StoredMatch::Meaning { weight: 0.3 };
        assert!(error(p).contains("`signatures`: none stored, but the rule matches options by meaning"));
        let mut p = stored(2, 3);
        p.signatures = vec![0; 3 * 2 * SIGNATURE_DIM * 4 - 4];
        let m = error(p);
        assert!(m.contains("`signatures`: 380 bytes, expected none or 384 (6 options × 16 × f32)"), "{m}");
        let mut p = stored(2, 3);
        p.signatures = [f32::NAN.to_le_bytes(); 3 * 2 * SIGNATURE_DIM].concat();
        assert!(error(p).contains("`signatures`: value 0 is not finite"));
        let mut p = stored(2, 3);
        p.questions[1].ordinal = vec![1.0, 1e308];
        let m = error(p);
        assert!(m.contains("question `q1`") && m.contains("ordinal value 1e308 of option 1"), "{m}");
        let mut p = stored(2, 3);
        p.questions[2].ordinal = vec![1.0; 65];
        let m = error(p);
        assert!(m.contains("`prior.questions[2].ordinal` at byte") && m.ends_with("65 options, at most 64"), "{m}");
        let mut p = stored(2, 3);
        p.questions[2].ordinal = vec![];
        assert!(error(p).contains("question 2 (`q2`) has 0 options, expected 1 to 64"));
        let mut p = stored(2, 3);
        p.answered[0] |= 1 << 7; // slot 7 of 6
        assert!(error(p).contains("bits past the last"));
        let mut p = stored(2, 3);
        p.answered[0] |= 1; // group 0 answered q0: two values announced, none stored
        assert!(error(p).contains("`answers`: 0 bytes, the answered bitmap announces 2 values (8 bytes)"));
        let mut p = stored(2, 3);
        p.vectors.pop();
        assert!(error(p).contains("`vectors`: 95 bytes, expected 96"));
        let mut p = stored(2, 3);
        p.answered.push(0);
        assert!(error(p).contains("`answered`: 2 bytes, expected 1"));
        assert!(error(stored(0, 3)).contains("0 groups"));
    }
}
