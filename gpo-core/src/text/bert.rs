//! BERT without its pooler (embeddings, then post-norm transformer layers with GELU), the model
//! under sentence-transformers' BERT encoders such as all-MiniLM-L6-v2.
//!
//! Written out rather than built on `burn::nn::transformer`: every projection runs as one
//! `[batch · seq, d] × [d, d']` product over the flattened tokens (the generic module multiplies
//! each sequence of the batch separately, packing the weights once per sequence).
//!
//! Weights are named as in a Hugging Face checkpoint (`encoder.layer.0.attention.self.query.weight`,
//! PyTorch's `[out, in]` layout for linear weights): [`BertConfig::checkpoint_tensors`] lists them,
//! [`BertModel::from_checkpoint`] builds the model from them.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use burn_nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use serde::{Deserialize, Serialize};

use super::EncoderError;
use crate::weights::{NamedTensor, load_named_tensors};

/// Most layers, heads, or entries of any one dimension a configuration may ask for: far above any
/// BERT sentence encoder (bert-large has 24 layers, 1,024 wide, 30,522 words), far below sizes that
/// would exhaust memory when the model is built. Checked by [`BertConfig::validate`] before
/// anything is allocated.
const MAX_DIM: usize = 1 << 18;
/// Most layers.
const MAX_LAYERS: usize = 256;
/// Most parameters in all (a checkpoint of 1 GB in f32).
const MAX_PARAMETERS: usize = 1 << 28;

/// The fields of a Hugging Face BERT `config.json` that the encoder needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl BertConfig {
    /// Checks that the configuration is one this model implements and that every size is in
    /// bounds, so that building the model cannot exhaust memory or divide by zero.
    pub fn validate(&self) -> Result<(), EncoderError> {
        let bad = |message: String| Err(EncoderError::Config(message));
        if self.hidden_act != "gelu" || self.position_embedding_type != "absolute" {
            return bad(format!(
                "hidden_act {:?} / position_embedding_type {:?} unsupported (need gelu / absolute)",
                self.hidden_act, self.position_embedding_type
            ));
        }
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if value == 0 || value > MAX_DIM {
                return bad(format!("{field} = {value}, expected 1 to {MAX_DIM}"));
            }
        }
        if self.num_hidden_layers == 0 || self.num_hidden_layers > MAX_LAYERS {
            return bad(format!("num_hidden_layers = {}, expected 1 to {MAX_LAYERS}", self.num_hidden_layers));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad(format!("layer_norm_eps = {}, expected a positive number", self.layer_norm_eps));
        }
        let parameters = self.parameter_count();
        if parameters > MAX_PARAMETERS {
            return bad(format!("{parameters} parameters, more than the {MAX_PARAMETERS} allowed"));
        }
        Ok(())
    }

    /// The checkpoint tensors a model of this configuration is built from: Hugging Face names and
    /// shapes (linear weights `[out, in]`), in a fixed order. A checkpoint's other tensors (the
    /// pooler, `embeddings.position_ids`) are not used.
    pub fn checkpoint_tensors(&self) -> Vec<(String, Vec<usize>)> {
        checkpoint_names(self).into_iter().map(|name| (name.checkpoint, name.shape)).collect()
    }

    /// Number of parameters of the model (all in u128 arithmetic, saturated to `usize::MAX`).
    fn parameter_count(&self) -> usize {
        let (d, ff) = (self.hidden_size as u128, self.intermediate_size as u128);
        let embeddings =
            (self.vocab_size as u128 + self.max_position_embeddings as u128 + self.type_vocab_size as u128) * d + 2 * d;
        let layer = 4 * (d * d + d) + 2 * d * ff + ff + d + 4 * d;
        let total = embeddings + self.num_hidden_layers as u128 * layer;
        usize::try_from(total).unwrap_or(usize::MAX)
    }
}

/// Word, position and token-type embeddings, summed and layer-normalised.
#[derive(Module, Debug)]
struct BertEmbeddings<B: Backend> {
    word_embeddings: Embedding<B>,
    position_embeddings: Embedding<B>,
    token_type_embeddings: Embedding<B>,
    layer_norm: LayerNorm<B>,
}

/// Multi-head self-attention of one layer (its output projection included).
#[derive(Module, Debug)]
struct BertSelfAttention<B: Backend> {
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    output: Linear<B>,
    n_heads: usize,
}

/// The feed-forward block of one layer (GELU between its two projections).
#[derive(Module, Debug)]
struct BertFeedForward<B: Backend> {
    linear_inner: Linear<B>,
    linear_outer: Linear<B>,
}

/// One post-norm BERT layer: `x = norm_1(x + mha(x))`, then `x = norm_2(x + pwff(x))`.
#[derive(Module, Debug)]
struct BertLayer<B: Backend> {
    mha: BertSelfAttention<B>,
    norm_1: LayerNorm<B>,
    pwff: BertFeedForward<B>,
    norm_2: LayerNorm<B>,
}

/// The encoder's layers.
#[derive(Module, Debug)]
struct BertEncoder<B: Backend> {
    layers: Vec<BertLayer<B>>,
}

/// BERT without its pooler: embeddings, then post-norm transformer layers with GELU.
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
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / libm::sqrt(dh as f64));
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

/// How a checkpoint tensor becomes a module parameter.
struct CheckpointName {
    /// Hugging Face name.
    checkpoint: String,
    /// Module path in [`BertModel`].
    module: String,
    /// Shape in the checkpoint (PyTorch layout).
    shape: Vec<usize>,
    /// Whether the tensor is a linear weight (`[out, in]` in the checkpoint, `[in, out]` in Burn).
    transpose: bool,
}

/// Every parameter of a model of `config`, in the checkpoint's naming.
fn checkpoint_names(config: &BertConfig) -> Vec<CheckpointName> {
    let (d, ff) = (config.hidden_size, config.intermediate_size);
    let mut names = Vec::new();
    let mut add = |checkpoint: String, module: String, shape: Vec<usize>, transpose: bool| {
        names.push(CheckpointName { checkpoint, module, shape, transpose });
    };
    for (table, rows) in [
        ("word_embeddings", config.vocab_size),
        ("position_embeddings", config.max_position_embeddings),
        ("token_type_embeddings", config.type_vocab_size),
    ] {
        add(format!("embeddings.{table}.weight"), format!("embeddings.{table}.weight"), vec![rows, d], false);
    }
    // A LayerNorm's `weight`/`bias` are Burn's `gamma`/`beta`.
    let norm = |add: &mut dyn FnMut(String, String, Vec<usize>, bool), checkpoint: &str, module: &str| {
        add(format!("{checkpoint}.LayerNorm.weight"), format!("{module}.gamma"), vec![d], false);
        add(format!("{checkpoint}.LayerNorm.bias"), format!("{module}.beta"), vec![d], false);
    };
    let linear =
        |add: &mut dyn FnMut(String, String, Vec<usize>, bool), checkpoint: &str, module: &str, inputs, outputs| {
            add(format!("{checkpoint}.weight"), format!("{module}.weight"), vec![outputs, inputs], true);
            add(format!("{checkpoint}.bias"), format!("{module}.bias"), vec![outputs], false);
        };
    norm(&mut add, "embeddings", "embeddings.layer_norm");
    for i in 0..config.num_hidden_layers {
        let (hf, burn) = (format!("encoder.layer.{i}"), format!("encoder.layers.{i}"));
        for projection in ["query", "key", "value"] {
            linear(&mut add, &format!("{hf}.attention.self.{projection}"), &format!("{burn}.mha.{projection}"), d, d);
        }
        linear(&mut add, &format!("{hf}.attention.output.dense"), &format!("{burn}.mha.output"), d, d);
        norm(&mut add, &format!("{hf}.attention.output"), &format!("{burn}.norm_1"));
        linear(&mut add, &format!("{hf}.intermediate.dense"), &format!("{burn}.pwff.linear_inner"), d, ff);
        linear(&mut add, &format!("{hf}.output.dense"), &format!("{burn}.pwff.linear_outer"), ff, d);
        norm(&mut add, &format!("{hf}.output"), &format!("{burn}.norm_2"));
    }
    names
}

impl<B: Backend> BertModel<B> {
    /// A model of the configured shape with untrained weights; `config` must have passed
    /// [`BertConfig::validate`].
    fn new(config: &BertConfig, device: &B::Device) -> Self {
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

    /// The model of `config` with the weights of `tensors`, named and shaped as
    /// [`BertConfig::checkpoint_tensors`] lists them. Fails, naming the tensor, when one is missing,
    /// has another shape or a non-finite value, or is not a parameter of the model.
    pub fn from_checkpoint(
        config: &BertConfig,
        tensors: Vec<NamedTensor>,
        device: &B::Device,
    ) -> Result<Self, EncoderError> {
        config.validate()?;
        let names = checkpoint_names(config);
        let mut by_name: alloc::collections::BTreeMap<String, NamedTensor> = alloc::collections::BTreeMap::new();
        for tensor in tensors {
            if by_name.contains_key(&tensor.name) {
                return Err(EncoderError::Weights(format!("tensor `{}` given twice", tensor.name)));
            }
            by_name.insert(tensor.name.clone(), tensor);
        }
        let mut module_tensors = Vec::with_capacity(names.len());
        for name in names {
            let tensor = by_name
                .remove(&name.checkpoint)
                .ok_or_else(|| EncoderError::Weights(format!("missing tensor `{}`", name.checkpoint)))?;
            if tensor.shape != name.shape {
                return Err(EncoderError::Weights(format!(
                    "tensor `{}` has shape {:?}, expected {:?}",
                    name.checkpoint, tensor.shape, name.shape
                )));
            }
            if tensor.values.len() != name.shape.iter().product::<usize>() {
                return Err(EncoderError::Weights(format!(
                    "tensor `{}` has {} values for shape {:?}",
                    name.checkpoint,
                    tensor.values.len(),
                    name.shape
                )));
            }
            let (shape, values) = if name.transpose {
                let (rows, cols) = (name.shape[0], name.shape[1]);
                let mut out = vec![0.0f32; tensor.values.len()];
                for (r, row) in tensor.values.chunks_exact(cols).enumerate() {
                    for (c, &v) in row.iter().enumerate() {
                        out[c * rows + r] = v;
                    }
                }
                (vec![cols, rows], out)
            } else {
                (tensor.shape, tensor.values)
            };
            module_tensors.push(NamedTensor { name: name.module, shape, values });
        }
        if let Some(extra) = by_name.keys().next() {
            return Err(EncoderError::Weights(format!("tensor `{extra}` is not a parameter of the model")));
        }
        load_named_tensors(Self::new(config, device), &module_tensors)
            .map_err(|e| EncoderError::Weights(format!("{e}")))
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
