//! A Llama-family causal language model on Burn, built from a GGUF file: token embedding,
//! pre-norm blocks of grouped-query attention with rotary position embeddings and a SwiGLU
//! feed-forward, RMSNorm, and the output head (tied to the token embedding when the file has no
//! `output.weight`). A [`KvCache`] keeps the keys and values of a prompt prefix so that many
//! continuations of it are computed once.
//!
//! Weights are dequantised to f32 when the model is built. Query and key weights are used as the
//! GGUF file stores them: llama.cpp's converter permutes them for its "normal" RoPE, which rotates
//! adjacent pairs `(x₂ᵢ, x₂ᵢ₊₁)`, so that is the rotation applied here (equal, in every attention
//! score, to Hugging Face's half-split rotation of the unpermuted weights).

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};

use super::gguf::{Gguf, GgufError};

/// Models whose f32 weights would take more than this many bytes are refused.
pub const MAX_F32_BYTES: usize = 8 << 30;

/// The shape of a Llama model, from the `llama.*` metadata of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Width of the hidden states.
    pub d_model: usize,
    /// Width of the feed-forward layer.
    pub d_ff: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention: each serves `n_heads / n_kv_heads` query heads).
    pub n_kv_heads: usize,
    /// RoPE frequency base.
    pub rope_base: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Longest sequence the model was trained on (`llama.context_length`), when the file says.
    pub context: Option<usize>,
}

impl LlamaConfig {
    /// Reads the configuration of an `llama` GGUF file and checks it against the stored tensors.
    pub fn from_gguf(gguf: &Gguf) -> Result<Self, GgufError> {
        let arch = gguf.string("general.architecture")?;
        if arch != "llama" {
            return Err(GgufError::Metadata {
                key: "general.architecture".into(),
                message: format!("{arch:?}: only \"llama\" is supported"),
            });
        }
        let size = |key: &str| -> Result<usize, GgufError> {
            let v = gguf.uint(key)?;
            usize::try_from(v).ok().filter(|&v| v > 0 && v <= 1 << 20).ok_or_else(|| GgufError::Metadata {
                key: key.to_owned(),
                message: format!("{v} is not in 1–{}", 1 << 20),
            })
        };
        let config = Self {
            vocab: gguf.tensor("token_embd.weight")?.dims.get(1).copied().unwrap_or(0),
            d_model: size("llama.embedding_length")?,
            d_ff: size("llama.feed_forward_length")?,
            n_layers: size("llama.block_count")?,
            n_heads: size("llama.attention.head_count")?,
            n_kv_heads: size("llama.attention.head_count_kv")?,
            rope_base: gguf.float("llama.rope.freq_base").unwrap_or(10_000.0) as f32,
            rms_eps: gguf.float("llama.attention.layer_norm_rms_epsilon")?,
            context: match gguf.metadata.contains_key("llama.context_length") {
                true => Some(size("llama.context_length")?),
                false => None,
            },
        };
        let bad = |message: String| GgufError::Metadata { key: "llama.*".into(), message };
        if config.vocab == 0 || config.vocab > 1 << 24 {
            return Err(bad(format!("a vocabulary of {} tokens (token_embd.weight)", config.vocab)));
        }
        if config.n_heads > config.d_model / 2
            || !config.d_model.is_multiple_of(config.n_heads)
            || !config.n_heads.is_multiple_of(config.n_kv_heads)
            || !config.head_dim().is_multiple_of(2)
        {
            return Err(bad(format!(
                "{} heads of {} and {} key/value heads do not divide evenly into even head widths",
                config.n_heads, config.d_model, config.n_kv_heads
            )));
        }
        if let Ok(dim) = gguf.uint("llama.rope.dimension_count")
            && dim as usize != config.head_dim()
        {
            return Err(bad(format!("partial RoPE ({dim} of {} dimensions) is not supported", config.head_dim())));
        }
        let (d, kv, ff) = (config.d_model, config.n_kv_heads * config.head_dim(), config.d_ff);
        let mut expected =
            vec![("token_embd.weight".to_owned(), vec![d, config.vocab]), ("output_norm.weight".into(), vec![d])];
        if gguf.tensors.contains_key("output.weight") {
            expected.push(("output.weight".into(), vec![d, config.vocab]));
        }
        for i in 0..config.n_layers {
            for (name, dims) in [
                ("attn_norm", vec![d]),
                ("attn_q", vec![d, d]),
                ("attn_k", vec![d, kv]),
                ("attn_v", vec![d, kv]),
                ("attn_output", vec![d, d]),
                ("ffn_norm", vec![d]),
                ("ffn_gate", vec![d, ff]),
                ("ffn_up", vec![d, ff]),
                ("ffn_down", vec![ff, d]),
            ] {
                expected.push((format!("blk.{i}.{name}.weight"), dims));
            }
        }
        let mut values = 0usize;
        for (name, dims) in &expected {
            let info = gguf.tensor(name)?;
            if &info.dims != dims {
                return Err(GgufError::Tensor {
                    name: name.clone(),
                    message: format!("dimensions {:?}, the configuration implies {dims:?}", info.dims),
                });
            }
            values += info.len();
        }
        if values.saturating_mul(4) > MAX_F32_BYTES {
            return Err(bad(format!("{values} parameters need more than {MAX_F32_BYTES} bytes as f32")));
        }
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Floating-point operations of a forward pass over `seq` tokens after `past` cached ones, per
    /// sequence (multiply–adds count 2; the blocks' projections, attention's two products, no
    /// output head; norms, RoPE, softmax and activations left out).
    pub fn forward_flops(&self, seq: usize, past: usize) -> f64 {
        let (d, kv, ff) = (self.d_model as f64, (self.n_kv_heads * self.head_dim()) as f64, self.d_ff as f64);
        let (n, total) = (seq as f64, (past + seq) as f64);
        let projections = 2.0 * n * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * ff);
        let attention = 4.0 * n * total * d;
        self.n_layers as f64 * (projections + attention)
    }
}

/// `x / √(mean(x²) + ε) · w` over the last dimension.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    weight: Param<Tensor<B, 1>>,
    eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, d]`; output: the same
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let rms = x.clone().powi_scalar(2).mean_dim(2).add_scalar(self.eps).sqrt();
        x / rms * self.weight.val().unsqueeze::<3>()
    }
}

/// One pre-norm block: `x += attn(norm(x))`, then `x += ffn(norm(x))`.
#[derive(Module, Debug)]
pub struct LlamaBlock<B: Backend> {
    attn_norm: RmsNorm<B>,
    q: Linear<B>,
    k: Linear<B>,
    v: Linear<B>,
    o: Linear<B>,
    ffn_norm: RmsNorm<B>,
    gate: Linear<B>,
    up: Linear<B>,
    down: Linear<B>,
}

/// Keys and values of the positions seen so far, per block, `[batch, kv_heads, len, head_dim]`.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<(Tensor<B, 4>, Tensor<B, 4>)>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The cache of a batch of one repeated `batch` times (a shared prefix for `batch`
    /// continuations).
    pub fn repeat(&self, batch: usize) -> Self {
        let rep = |t: &Tensor<B, 4>| t.clone().repeat_dim(0, batch);
        Self { layers: self.layers.iter().map(|(k, v)| (rep(k), rep(v))).collect(), len: self.len }
    }
}

/// The model: configuration, embedding, blocks, final norm and output head.
#[derive(Debug)]
pub struct Llama<B: Backend> {
    config: LlamaConfig,
    embed: Embedding<B>,
    blocks: Vec<LlamaBlock<B>>,
    norm: RmsNorm<B>,
    /// `[d, vocab]`; the transposed token embedding when the file ties them.
    output: Tensor<B, 2>,
}

fn matrix<B: Backend>(gguf: &Gguf, name: &str, device: &B::Device) -> Result<Tensor<B, 2>, GgufError> {
    let dims = gguf.tensor(name)?.dims.clone();
    let values = gguf.dequantize(name)?;
    // GGUF stores `ne = [in, out]`: `out` rows of `in` values, i.e. the `[out, in]` matrix.
    Ok(Tensor::from_data(TensorData::new(values, [dims[1], dims[0]]), device))
}

/// A bias-free `Linear` (weight `[in, out]`) from a GGUF matrix, transposed on the host so the
/// products run on a contiguous weight.
fn linear<B: Backend>(gguf: &Gguf, name: &str, device: &B::Device) -> Result<Linear<B>, GgufError> {
    let dims = gguf.tensor(name)?.dims.clone();
    let (n_in, n_out) = (dims[0], dims[1]);
    let values = gguf.dequantize(name)?;
    let mut transposed = vec![0f32; values.len()];
    for (o, row) in values.chunks_exact(n_in).enumerate() {
        for (i, &x) in row.iter().enumerate() {
            transposed[i * n_out + o] = x;
        }
    }
    let weight = Tensor::from_data(TensorData::new(transposed, [n_in, n_out]), device);
    Ok(Linear { weight: Param::from_tensor(weight), bias: None })
}

fn norm<B: Backend>(gguf: &Gguf, name: &str, eps: f64, device: &B::Device) -> Result<RmsNorm<B>, GgufError> {
    let values = gguf.dequantize(name)?;
    let n = values.len();
    Ok(RmsNorm { weight: Param::from_tensor(Tensor::from_data(TensorData::new(values, [n]), device)), eps })
}

impl<B: Backend> Llama<B> {
    /// Builds the model of a GGUF file on `device` (weights dequantised to f32).
    pub fn from_gguf(gguf: &Gguf, device: &B::Device) -> Result<Self, GgufError> {
        let config = LlamaConfig::from_gguf(gguf)?;
        let eps = config.rms_eps;
        let blocks = (0..config.n_layers)
            .map(|i| {
                let w = |name: &str| format!("blk.{i}.{name}.weight");
                Ok(LlamaBlock {
                    attn_norm: norm(gguf, &w("attn_norm"), eps, device)?,
                    q: linear(gguf, &w("attn_q"), device)?,
                    k: linear(gguf, &w("attn_k"), device)?,
                    v: linear(gguf, &w("attn_v"), device)?,
                    o: linear(gguf, &w("attn_output"), device)?,
                    ffn_norm: norm(gguf, &w("ffn_norm"), eps, device)?,
                    gate: linear(gguf, &w("ffn_gate"), device)?,
                    up: linear(gguf, &w("ffn_up"), device)?,
                    down: linear(gguf, &w("ffn_down"), device)?,
                })
            })
            .collect::<Result<Vec<_>, GgufError>>()?;
        let embedding = matrix(gguf, "token_embd.weight", device)?;
        let output = match gguf.tensors.contains_key("output.weight") {
            true => linear(gguf, "output.weight", device)?.weight.val(),
            false => embedding.clone().transpose(),
        };
        Ok(Self {
            embed: Embedding { weight: Param::from_tensor(embedding) },
            norm: norm(gguf, "output_norm.weight", eps, device)?,
            blocks,
            output,
            config,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// An empty cache for [`Llama::forward`].
    pub fn cache(&self) -> KvCache<B> {
        KvCache { layers: Vec::new(), len: 0 }
    }

    /// Final normalised hidden states of `ids` (each below the vocabulary size: the caller
    /// checks, as [`super::LlmEmbedder`] does), which follow the positions in `cache` (appended
    /// to it). Sequences of a batch may be padded on the right: causal attention never lets a real
    /// token see a later padding position.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]`; `cache`: `[batch, …]` (or empty)
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Tensor<B, 3> {
        let [batch, seq] = ids.dims();
        let device = ids.device();
        let c = &self.config;
        let (h, kv, hd) = (c.n_heads, c.n_kv_heads, c.head_dim());
        let past = cache.len;
        let (cos, sin) = rope_tables::<B>(c.rope_base, hd, past, seq, &device);
        // Query i (position past + i) sees keys 0 ..= past + i; the mask is tiled over the
        // `rep` query heads that share a key/value head (below).
        let rep = h / kv;
        let mask = Tensor::<B, 2, Bool>::tril_mask([seq, past + seq], past as i64, &device)
            .reshape([1, 1, 1, seq, past + seq])
            .expand([batch, kv, rep, seq, past + seq])
            .reshape([batch, kv, rep * seq, past + seq]);
        let mut x = self.embed.forward(ids);
        for (i, block) in self.blocks.iter().enumerate() {
            let a = block.attn_norm.forward(x.clone());
            let heads = |t: Tensor<B, 3>, n: usize| t.reshape([batch, seq, n, hd]).swap_dims(1, 2);
            let q = rotate(heads(block.q.forward(a.clone()), h), &cos, &sin);
            let mut k = rotate(heads(block.k.forward(a.clone()), kv), &cos, &sin);
            let mut v = heads(block.v.forward(a), kv);
            if let Some((past_k, past_v)) = cache.layers.get(i) {
                k = Tensor::cat(vec![past_k.clone(), k], 2);
                v = Tensor::cat(vec![past_v.clone(), v], 2);
            }
            match cache.layers.get_mut(i) {
                Some(slot) => *slot = (k.clone(), v.clone()),
                None => cache.layers.push((k.clone(), v.clone())),
            }
            // Grouped-query attention without copying keys and values per query head: query head
            // `g · rep + r` uses key/value head `g` (Hugging Face's `repeat_kv` order), so the
            // queries of a group stack into one `[rep · seq, hd]` matrix per key/value head.
            let q = q.reshape([batch, kv, rep * seq, hd]);
            let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (hd as f64).sqrt());
            let weights = softmax(scores.mask_fill(mask.clone(), f32::NEG_INFINITY), 3);
            let context = weights.matmul(v).reshape([batch, h, seq, hd]).swap_dims(1, 2).reshape([batch, seq, h * hd]);
            x = x + block.o.forward(context);
            let f = block.ffn_norm.forward(x.clone());
            x = x + block.down.forward(silu(block.gate.forward(f.clone())) * block.up.forward(f));
        }
        cache.len = past + seq;
        self.norm.forward(x)
    }

    /// Next-token logits of hidden states.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, d_model]`; output: `[batch, seq, vocab]`
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        hidden.matmul(self.output.clone().unsqueeze::<3>())
    }
}

/// Token ids as a `[rows, longest]` tensor, shorter rows padded on the right with id 0 (causal
/// attention never lets a real token see a later position).
pub fn token_ids<B: Backend>(rows: &[&[u32]], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let data: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&t| i64::from(t)).chain(std::iter::repeat_n(0, width - r.len())))
        .collect();
    Tensor::from_data(TensorData::new(data, [rows.len(), width]), device)
}

/// `cos` and `sin` of `position · θᵢ`, `θᵢ = base^(−2i/head_dim)`, for positions `past ..
/// past + seq`, computed in f32 as Hugging Face's Llama does, `[1, 1, seq, head_dim / 2]`.
fn rope_tables<B: Backend>(
    base: f32,
    head_dim: usize,
    past: usize,
    seq: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32)).collect();
    let angles: Vec<f32> = (past..past + seq).flat_map(|p| inv_freq.iter().map(move |&f| p as f32 * f)).collect();
    let table = |f: fn(f32) -> f32| {
        let values: Vec<f32> = angles.iter().map(|&a| f(a)).collect();
        Tensor::<B, 4>::from_data(TensorData::new(values, [1, 1, seq, half]), device)
    };
    (table(f32::cos), table(f32::sin))
}

/// Rotates adjacent pairs: `(x₂ᵢ, x₂ᵢ₊₁) ↦ (x₂ᵢ cos − x₂ᵢ₊₁ sin, x₂ᵢ sin + x₂ᵢ₊₁ cos)`.
///
/// # Shapes
/// - `x`: `[batch, heads, seq, head_dim]`; `cos`, `sin`: `[1, 1, seq, head_dim / 2]`
fn rotate<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, s, d] = x.dims();
    let pairs = x.reshape([b, h, s, d / 2, 2]);
    let even = pairs.clone().narrow(4, 0, 1).reshape([b, h, s, d / 2]);
    let odd = pairs.narrow(4, 1, 1).reshape([b, h, s, d / 2]);
    let rotated_even = even.clone() * cos.clone() - odd.clone() * sin.clone();
    let rotated_odd = even * sin.clone() + odd * cos.clone();
    Tensor::stack::<5>(vec![rotated_even, rotated_odd], 4).reshape([b, h, s, d])
}
