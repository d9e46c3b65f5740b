//! Texts in, sentence vectors out: the BERT sentence encoder gpo embeds (question, option) texts
//! with (all-MiniLM-L6-v2 by default), numerically equal to sentence-transformers for BERT models
//! with mean pooling and, when the model lists it, L2 normalisation.
//!
//! Behind the `text` feature (std and the pure-Rust `tokenizers`). The pipeline: the model's
//! tokenizer (truncating at `max_seq_length`, no padding of its own), [`BertModel`] over each part
//! of a batch padded to its own longest text, mean pooling over real tokens, L2 normalisation.
//! A batch is split over threads in contiguous parts ([`crate::parallel::in_parts`]).
//!
//! An encoder comes from a checkpoint's tensors ([`SentenceEncoder::new`]) or from an encoder
//! file ([`EncoderFile`]: one sealed file with the tokenizer, the configuration and the weights in
//! f32, f16 or int8, written by `gpo export-encoder`).

mod bert;
mod file;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

pub use bert::{BertConfig, BertModel};
pub use file::{EncoderDType, EncoderFile, EncoderFileError, INT8_BLOCK, MAGIC as ENCODER_FILE_MAGIC};

use crate::weights::NamedTensor;

/// Why an encoder cannot be built or cannot embed.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// The model configuration is unsupported or out of bounds.
    #[error("encoder configuration: {0}")]
    Config(String),
    /// The tokenizer cannot be read, or failed on some input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The weights do not fit the configuration (the tensor is named).
    #[error("encoder weights: {0}")]
    Weights(String),
    /// A thread of the split batch panicked, or the backend's output could not be read.
    #[error("encoder: {0}")]
    Backend(String),
}

/// What identifies an encoder and how it pools, besides its weights and tokenizer.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSpec {
    /// Identifier recorded in caches and model files, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub id: String,
    /// The BERT configuration.
    pub config: BertConfig,
    /// Inputs are truncated to this many tokens (special tokens included); `None`: the
    /// position embeddings' length. Never more than that length.
    pub max_seq_length: Option<usize>,
    /// Whether pooled vectors are L2-normalised (sentence-transformers' `Normalize` module).
    pub normalize: bool,
}

/// Texts in, vectors out: what a [`crate::Predictor`] needs to embed questions given by text.
/// [`SentenceEncoder`] on any backend implements it, so an encoder can run on another backend
/// than the model (a browser embeds on the CPU for a WebGPU model).
pub trait TextEncoder: core::fmt::Debug + Send + Sync {
    /// The model's identifier (recorded in model files: a model reads only its own encoder's
    /// vectors).
    fn id(&self) -> &str;
    /// Length of each vector.
    fn dim(&self) -> usize;
    /// The vectors of `texts`, `texts.len() × dim` values, row-major, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EncoderError>;
}

/// A shared encoder (one encoder serving several predictors, or a caller that keeps using it).
impl<T: TextEncoder + ?Sized> TextEncoder for alloc::sync::Arc<T> {
    fn id(&self) -> &str {
        (**self).id()
    }

    fn dim(&self) -> usize {
        (**self).dim()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EncoderError> {
        (**self).embed(texts)
    }
}

impl<B: Backend> TextEncoder for SentenceEncoder<B> {
    fn id(&self) -> &str {
        SentenceEncoder::id(self)
    }

    fn dim(&self) -> usize {
        SentenceEncoder::dim(self)
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EncoderError> {
        SentenceEncoder::embed(self, texts)
    }
}

/// A tokenizer and a BERT model: texts in, sentence vectors out.
///
/// The same thread count gives the same bits on every run; another count pads some texts to
/// other lengths, which changes the order of the backend's sums (about 1e-7).
pub struct SentenceEncoder<B: Backend> {
    model: BertModel<B>,
    tokenizer: Tokenizer,
    spec: EncoderSpec,
    max_seq_length: usize,
    threads: usize,
    device: B::Device,
}

impl<B: Backend> core::fmt::Debug for SentenceEncoder<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("spec", &self.spec)
            .field("max_seq_length", &self.max_seq_length)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> SentenceEncoder<B> {
    /// Builds the encoder from its spec, its `tokenizer.json` (Hugging Face tokenizers) and its
    /// checkpoint tensors (see [`BertConfig::checkpoint_tensors`]), on `device`; uses every
    /// available core (see [`SentenceEncoder::with_threads`]).
    pub fn new(
        spec: EncoderSpec,
        tokenizer_json: &[u8],
        tensors: Vec<NamedTensor>,
        device: &B::Device,
    ) -> Result<Self, EncoderError> {
        spec.config.validate()?;
        let positions = spec.config.max_position_embeddings;
        let max_seq_length = spec.max_seq_length.unwrap_or(positions).min(positions);
        if max_seq_length < 2 {
            return Err(EncoderError::Config(format!("max_seq_length {max_seq_length}, expected at least 2")));
        }
        let mut tokenizer =
            Tokenizer::from_bytes(tokenizer_json).map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        // tokenizer.json may carry fixed padding and its own truncation: replace both with
        // sentence-transformers' behaviour (truncate at max_seq_length; no padding here: each part
        // of a batch is padded to its own longest text when the tensors are built, with masked
        // positions whose ids are never read).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_seq_length, ..TruncationParams::default() }))
            .map_err(|e| EncoderError::Tokenizer(format!("truncation: {e}")))?;
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > spec.config.vocab_size {
            return Err(EncoderError::Config(format!(
                "the tokenizer has {vocab} tokens, the model's vocabulary {}",
                spec.config.vocab_size
            )));
        }
        let model = BertModel::from_checkpoint(&spec.config, tensors, device)?;
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self { model, tokenizer, spec, max_seq_length, threads, device: device.clone() })
    }

    /// Encodes with `threads` threads (default: the available cores): a batch is split into that
    /// many contiguous parts, each run through the model on its own thread and padded to its own
    /// longest text.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The model's identifier.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// Length of each vector.
    pub fn dim(&self) -> usize {
        self.spec.config.hidden_size
    }

    /// The spec the encoder was built from.
    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// Threads a batch is split over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Inputs longer than this many tokens (special tokens included) are truncated.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// The vectors of `texts`, `texts.len() × dim` values, row-major, in order: one batch, split
    /// over the encoder's threads. Callers embedding many texts group them by length first, so
    /// that a batch pads little.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EncoderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.encode(texts)?;
        crate::parallel::in_parts(
            &encodings,
            self.threads,
            |part| self.embed_encodings(part),
            || EncoderError::Backend("an embedding thread panicked".into()),
        )
    }

    /// Floating-point operations of embedding `texts` one at a time (no padding): per text of `n`
    /// tokens and per layer, the projections `2n(4d² + 2d·ff)` and attention's two products
    /// `4n²d` (multiply–adds count 2; embeddings, norms, softmax and GELU left out).
    pub fn flops(&self, texts: &[&str]) -> Result<f64, EncoderError> {
        let c = &self.spec.config;
        let (d, ff, layers) = (c.hidden_size as f64, c.intermediate_size as f64, c.num_hidden_layers as f64);
        Ok(self
            .encode(texts)?
            .iter()
            .map(|enc| {
                let n = enc.len() as f64;
                layers * (2.0 * n * (4.0 * d * d + 2.0 * d * ff) + 4.0 * n * n * d)
            })
            .sum())
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Encoding>, EncoderError> {
        self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EncoderError::Tokenizer(e.to_string()))
    }

    /// Pooled (and normalised) vectors of tokenised texts, `encodings.len() × dim` row-major.
    fn embed_encodings(&self, encodings: &[Encoding]) -> Result<Vec<f32>, EncoderError> {
        let batch = encodings.len();
        let seq = encodings.iter().map(Encoding::len).max().unwrap_or(0);
        let mut ids = alloc::vec![0i64; batch * seq];
        let mut types = alloc::vec![0i64; batch * seq];
        let mut mask = alloc::vec![0f32; batch * seq];
        for (row, enc) in encodings.iter().enumerate() {
            let at = row * seq;
            for (j, ((&id, &ty), &m)) in
                enc.get_ids().iter().zip(enc.get_type_ids()).zip(enc.get_attention_mask()).enumerate()
            {
                ids[at + j] = i64::from(id);
                types[at + j] = i64::from(ty);
                mask[at + j] = m as f32;
            }
        }
        // Embedding lookups index by these; an id beyond a table would abort in the backend.
        let c = &self.spec.config;
        if ids.iter().any(|&t| t as u64 >= c.vocab_size as u64)
            || types.iter().any(|&t| t as u64 >= c.type_vocab_size as u64)
        {
            return Err(EncoderError::Tokenizer("a token id beyond the model's vocabulary".into()));
        }
        let device = &self.device;
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
        let types = Tensor::<B, 2, Int>::from_data(TensorData::new(types, [batch, seq]), device);
        let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [batch, seq]), device);
        let padded = encodings.iter().any(|enc| enc.len() < seq);
        let hidden = self.model.forward(ids, types, padded.then(|| mask.clone().equal_elem(0.0)));
        let mut pooled = mean_pool(hidden, mask);
        if self.spec.normalize {
            pooled = l2_normalize(pooled);
        }
        pooled.into_data().into_vec::<f32>().map_err(|e| EncoderError::Backend(format!("reading output: {e:?}")))
    }
}

/// Mean of the hidden states over real (non-padding) tokens, as sentence-transformers' Pooling:
/// `sum(h · mask) / max(sum(mask), 1e-9)`.
///
/// # Shapes
/// - `hidden`: `[batch, seq, dim]`
/// - `mask`: `[batch, seq]`, 1 for real tokens, 0 for padding
/// - output: `[batch, dim]`
fn mean_pool<B: Backend>(hidden: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
    let [batch, seq, dim] = hidden.dims();
    let mask = mask.reshape([batch, seq, 1]);
    let sum = (hidden * mask.clone()).sum_dim(1).reshape([batch, dim]);
    let count = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
    sum / count
}

/// `x / max(‖x‖₂, 1e-12)` per row, as `torch.nn.functional.normalize`.
fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::weights::named_tensors;
    use alloc::string::ToString;
    use alloc::vec;
    use burn_ndarray::NdArray;

    type B = NdArray<f32>;

    /// A whitespace word-level tokenizer with BERT's `[CLS] … [SEP]` around each text.
    const TOKENIZER: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
        "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},
        "post_processor":{"type":"BertProcessing","sep":["[SEP]",1],"cls":["[CLS]",0]},"decoder":null,
        "model":{"type":"WordLevel","vocab":{"[CLS]":0,"[SEP]":1,"[UNK]":2,"how":3,"much":4,"do":5,
        "you":6,"trust":7,"the":8,"news":9,"a":10,"lot":11},"unk_token":"[UNK]"}}"#;

    fn config() -> BertConfig {
        BertConfig {
            vocab_size: 12,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            // Wider than one int8 block (128): rows of `intermediate.dense`'s transpose split in two.
            intermediate_size: 136,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            position_embedding_type: "absolute".into(),
        }
    }

    /// Seeded checkpoint tensors for `config` (uniform in ±0.5; LayerNorm weights near 1).
    fn checkpoint(config: &BertConfig, seed: u64) -> Vec<NamedTensor> {
        let mut rng = SplitMix64::new(seed);
        config
            .checkpoint_tensors()
            .into_iter()
            .map(|(name, shape)| {
                let offset = if name.ends_with("LayerNorm.weight") { 1.0 } else { 0.0 };
                let values = (0..shape.iter().product()).map(|_| (offset + rng.next_f64() - 0.5) as f32).collect();
                NamedTensor { name, shape, values }
            })
            .collect()
    }

    fn encoder(max_seq_length: Option<usize>) -> SentenceEncoder<B> {
        let spec = EncoderSpec { id: "test/tiny-bert".into(), config: config(), max_seq_length, normalize: true };
        SentenceEncoder::new(spec, TOKENIZER.as_bytes(), checkpoint(&config(), 7), &Default::default())
            .expect("a consistent tiny encoder")
    }

    #[test]
    fn linear_weights_are_transposed_and_norms_renamed() {
        let tensors = checkpoint(&config(), 1);
        let find = |name: &str| tensors.iter().find(|t| t.name == name).expect("listed").clone();
        let model = BertModel::<B>::from_checkpoint(&config(), tensors.clone(), &Default::default()).expect("loads");
        let loaded = named_tensors(&model);
        let get = |name: &str| loaded.iter().find(|t| t.name == name).expect("a parameter").clone();
        // `intermediate.dense.weight` is [ff, d] = [136, 8] in the checkpoint, [8, 136] in Burn.
        let hf = find("encoder.layer.1.intermediate.dense.weight");
        let burn = get("encoder.layers.1.pwff.linear_inner.weight");
        assert_eq!((hf.shape.clone(), burn.shape.clone()), (vec![136, 8], vec![8, 136]));
        for (o, i) in [(0, 0), (3, 5), (135, 7)] {
            assert_eq!(hf.values[o * 8 + i], burn.values[i * 136 + o]);
        }
        assert_eq!(find("embeddings.LayerNorm.weight").values, get("embeddings.layer_norm.gamma").values);
        assert_eq!(find("encoder.layer.0.output.LayerNorm.bias").values, get("encoder.layers.0.norm_2.beta").values);
        // Every parameter comes from the checkpoint: as many tensors and values.
        assert_eq!(loaded.len(), tensors.len());
        let count = |ts: &[NamedTensor]| ts.iter().map(|t| t.values.len()).sum::<usize>();
        assert_eq!(count(&loaded), count(&tensors));
    }

    #[test]
    fn a_checkpoint_that_does_not_fit_is_refused_by_name() {
        let load = |tensors| BertModel::<B>::from_checkpoint(&config(), tensors, &Default::default()).map(|_| ());
        let message = |r: Result<(), EncoderError>| r.expect_err("must be refused").to_string();

        let mut missing = checkpoint(&config(), 1);
        missing.retain(|t| t.name != "encoder.layer.1.attention.self.key.bias");
        assert!(message(load(missing)).contains("missing tensor `encoder.layer.1.attention.self.key.bias`"));

        let mut reshaped = checkpoint(&config(), 1);
        reshaped[0].shape = vec![8, 12];
        assert!(message(load(reshaped)).contains("embeddings.word_embeddings.weight` has shape [8, 12]"));

        let mut extra = checkpoint(&config(), 1);
        extra.push(NamedTensor { name: "pooler.dense.bias".into(), shape: vec![8], values: vec![0.0; 8] });
        assert!(message(load(extra)).contains("`pooler.dense.bias` is not a parameter"));

        let mut twice = checkpoint(&config(), 1);
        twice.push(twice[3].clone());
        assert!(message(load(twice)).contains("given twice"));

        let mut short = checkpoint(&config(), 1);
        short[2].values.pop();
        assert!(message(load(short)).contains("values for shape"));

        let mut nan = checkpoint(&config(), 1);
        nan[5].values[0] = f32::NAN;
        assert!(message(load(nan)).contains("non-finite"));
    }

    #[test]
    fn configurations_out_of_bounds_are_refused_before_allocating() {
        let refused = |edit: fn(&mut BertConfig)| {
            let mut c = config();
            edit(&mut c);
            c.validate().expect_err("must be refused").to_string()
        };
        assert!(refused(|c| c.num_attention_heads = 0).contains("num_attention_heads = 0"));
        assert!(refused(|c| c.num_attention_heads = 3).contains("not a multiple"));
        assert!(refused(|c| c.vocab_size = usize::MAX).contains("vocab_size"));
        assert!(refused(|c| c.num_hidden_layers = 100_000).contains("num_hidden_layers"));
        assert!(refused(|c| c.hidden_act = "relu".into()).contains("unsupported"));
        assert!(refused(|c| c.layer_norm_eps = f64::NAN).contains("layer_norm_eps"));
        // Each size in bounds, the product not: 200k words × 200k wide.
        assert!(refused(|c| (c.vocab_size, c.hidden_size) = (200_000, 200_000)).contains("parameters"));
        config().validate().expect("the test configuration is valid");
    }

    #[test]
    fn padding_and_the_thread_split_do_not_change_a_vector() {
        let texts = ["how much do you trust the news", "a lot", "trust", "you do the news a lot how much"];
        let alone: Vec<Vec<f32>> =
            texts.iter().map(|t| encoder(None).with_threads(1).embed(&[t]).expect("embeds")).collect();
        for threads in [1, 2, 3] {
            let together = encoder(None).with_threads(threads).embed(&texts).expect("embeds");
            assert_eq!(together.len(), texts.len() * 8);
            for (want, got) in alone.iter().zip(together.chunks_exact(8)) {
                // Padding is masked: only the order of sums may differ (a few f32 ulps of unit vectors).
                let diff = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(diff <= 1e-6, "{threads} threads: max |diff| {diff}");
            }
        }
        for v in &alone {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() <= 1e-6, "normalised: {norm}");
        }
        assert!(alone[0].iter().zip(&alone[1]).any(|(a, b)| (a - b).abs() > 1e-3), "texts differ");
    }

    #[test]
    fn inputs_are_truncated_at_max_seq_length() {
        // With 4 tokens ([CLS] how much [SEP]) the rest of a longer text is cut.
        let short = encoder(Some(4)).embed(&["how much"]).expect("embeds");
        let long = encoder(Some(4)).embed(&["how much do you trust the news"]).expect("embeds");
        assert_eq!(short, long);
        assert_eq!(encoder(Some(100)).max_seq_length(), 16, "never beyond the position embeddings");
        let err = SentenceEncoder::<B>::new(
            EncoderSpec { id: "x".into(), config: config(), max_seq_length: None, normalize: true },
            b"{not json",
            checkpoint(&config(), 7),
            &Default::default(),
        )
        .expect_err("a broken tokenizer.json is refused");
        assert!(matches!(err, EncoderError::Tokenizer(_)));
    }

    #[test]
    fn mean_pooling_and_normalisation_match_an_f64_reference() {
        let hidden: Vec<f32> = (0..2 * 3 * 4).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
        let mask = [1.0f32, 1.0, 0.0, 1.0, 1.0, 1.0];
        let device = Default::default();
        let h = Tensor::<B, 3>::from_data(TensorData::new(hidden.clone(), [2, 3, 4]), &device);
        let m = Tensor::<B, 2>::from_data(TensorData::new(mask.to_vec(), [2, 3]), &device);
        let got = l2_normalize(mean_pool(h, m)).into_data().into_vec::<f32>().expect("f32");
        for b in 0..2 {
            let real: Vec<usize> = (0..3).filter(|&s| mask[b * 3 + s] == 1.0).collect();
            let mean: Vec<f64> = (0..4)
                .map(|d| real.iter().map(|&s| f64::from(hidden[(b * 3 + s) * 4 + d])).sum::<f64>() / real.len() as f64)
                .collect();
            let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
            for d in 0..4 {
                // f32 sums of three terms: a few ulps.
                assert!((f64::from(got[b * 4 + d]) - mean[d] / norm).abs() <= 1e-6);
            }
        }
    }

    #[test]
    fn an_encoder_file_keeps_the_encoder_in_every_dtype() {
        let texts = ["how much do you trust the news", "a lot", "trust"];
        let want = encoder(None).with_threads(1).embed(&texts).expect("embeds");
        let spec = EncoderSpec { id: "test/tiny-bert".into(), config: config(), max_seq_length: None, normalize: true };
        let tensors = checkpoint(&config(), 7);
        let mut sizes = Vec::new();
        for (dtype, bound) in [(EncoderDType::F32, 0.0), (EncoderDType::F16, 1e-2), (EncoderDType::Int8, 5e-2)] {
            let file = EncoderFile::new(spec.clone(), TOKENIZER.as_bytes().to_vec(), tensors.clone(), dtype)
                .expect("a consistent file");
            let bytes = file.to_bytes().expect("encodes");
            sizes.push(bytes.len());
            let read = EncoderFile::from_bytes(&bytes).expect("decodes");
            assert_eq!((read.spec(), read.dtype()), (&spec, dtype));
            let got =
                read.encoder::<B>(&Default::default()).expect("builds").with_threads(1).embed(&texts).expect("embeds");
            let diff = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            // f32: the same weights, the same bits. f16 (11-bit mantissa) and int8 (per-block
            // scales) perturb the ±0.5 random weights of this tiny model by up to 2.4e-4 and
            // 2e-3; its unit vectors move by less than the bounds.
            assert!(diff <= bound, "{dtype}: max |diff| {diff}");
        }
        assert!(sizes[1] < sizes[0] && sizes[2] < sizes[1], "sizes {sizes:?}");
    }

    #[test]
    fn int8_values_are_within_half_a_step_of_their_block() {
        let tensors = checkpoint(&config(), 3);
        let spec = EncoderSpec { id: "q".into(), config: config(), max_seq_length: None, normalize: true };
        let bytes = EncoderFile::new(spec, TOKENIZER.as_bytes().to_vec(), tensors.clone(), EncoderDType::Int8)
            .and_then(|f| f.to_bytes())
            .expect("encodes");
        let read = EncoderFile::from_bytes(&bytes).expect("decodes");
        assert!(tensors.iter().any(|t| t.shape.len() == 2 && t.shape[1] > INT8_BLOCK), "a row of two blocks");
        for (want, got) in tensors.iter().zip(read.tensors()) {
            assert_eq!(want.name, got.name);
            if want.shape.len() == 1 {
                assert_eq!(want.values, got.values, "1-D tensors stay f32");
                continue;
            }
            fn blocks(t: &NamedTensor) -> Vec<&[f32]> {
                t.values.chunks_exact(t.shape[1]).flat_map(|r| r.chunks(INT8_BLOCK)).collect()
            }
            for (w, g) in blocks(want).into_iter().zip(blocks(got)) {
                let step = w.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))) / 127.0;
                for (a, b) in w.iter().zip(g) {
                    // Half a quantisation step, plus f32 rounding of the product q · scale.
                    assert!((f64::from(*a) - f64::from(*b)).abs() <= step * 0.5 + 1e-6, "{}", want.name);
                }
            }
        }
    }

    #[test]
    fn a_damaged_encoder_file_is_refused_and_never_panics() {
        let spec = EncoderSpec { id: "d".into(), config: config(), max_seq_length: Some(8), normalize: false };
        let bytes = EncoderFile::new(spec, TOKENIZER.as_bytes().to_vec(), checkpoint(&config(), 5), EncoderDType::Int8)
            .and_then(|f| f.to_bytes())
            .expect("encodes");
        let message = |b: &[u8]| EncoderFile::from_bytes(b).expect_err("refused").to_string();
        assert!(message(&bytes[..bytes.len() / 2]).contains("file size mismatch"));
        assert!(message(&crate::container::seal(b"GPOMODEL", 3, b"a model")).contains("not a gpo encoder file"));
        let mut version = bytes.clone();
        version[8] = 9;
        assert!(message(&version).contains("version 9"));
        // Flipped bytes with the checksum made right again: decoding and the checks must catch
        // what the CRC no longer does, without panicking or allocating without bound.
        let mut rng = SplitMix64::new(11);
        for _ in 0..300 {
            let mut damaged = bytes.clone();
            let at = crate::container::HEADER_LEN + (rng.next_f64() * (bytes.len() - 24) as f64) as usize;
            damaged[at] ^= 1 << (rng.next_f64() * 8.0) as u32;
            let crc = crc32fast::hash(&damaged[24..]);
            damaged[20..24].copy_from_slice(&crc.to_le_bytes());
            if let Ok(file) = EncoderFile::from_bytes(&damaged) {
                // A flip inside a weight or a scale: still a consistent file, and it builds or says why.
                let _ = file.encoder::<B>(&Default::default());
            }
        }
        let mut nan = checkpoint(&config(), 5);
        nan[0].values[0] = f32::INFINITY;
        let spec = EncoderSpec { id: "d".into(), config: config(), max_seq_length: None, normalize: false };
        let err = EncoderFile::new(spec, Vec::new(), nan, EncoderDType::F16).expect_err("non-finite refused");
        assert!(err.to_string().contains("non-finite"));
    }

    #[test]
    fn a_missing_duplicated_or_unexpected_tensor_is_named() {
        let spec = EncoderSpec { id: "n".into(), config: config(), max_seq_length: None, normalize: false };
        let error = |tensors: Vec<NamedTensor>| {
            let err = EncoderFile::new(spec.clone(), Vec::new(), tensors, EncoderDType::F32).expect_err("refused");
            err.to_string()
        };
        let good = checkpoint(&config(), 5);
        let mut gone = good.clone();
        let name = gone.remove(2).name;
        assert_eq!(error(gone), format!("encoder file: missing parameter `{name}`"));
        let mut twice = good.clone();
        twice.push(good[1].clone());
        assert_eq!(error(twice), format!("encoder file: parameter `{}` is stored twice", good[1].name));
        let mut extra = good.clone();
        extra.push(NamedTensor { name: "extra.weight".into(), shape: vec![1], values: vec![0.0] });
        assert_eq!(error(extra), "encoder file: unexpected parameter `extra.weight`");
    }
}
