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

use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, silu, softmax};
use burn::tensor::backend::AutodiffBackend;

use gpo_core::rng::SplitMix64;

use super::gguf::{Gguf, GgufError};
use super::lora::{BlockLora, LoraAdapter, LoraLinear, Projection};

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

impl<B: Backend> LlamaBlock<B> {
    /// The block over residual streams `x`, its projections adapted by `lora` (dropout drawn
    /// from `rng` where given), with the keys and values of earlier positions `past`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d]`; `past`: `[batch, kv_heads, past, head_dim]` each
    /// - output: `[batch, queries, d]` (`queries` = `seq`, or 1 where `at` picks one position per
    ///   row), and this block's keys and values over `past + seq` positions
    fn forward(
        &self,
        x: Tensor<B, 3>,
        at: &Attention<B>,
        past: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
        frozen: Option<&Frozen<B>>,
        lora: Option<&BlockLora<B>>,
        mut rng: Option<&mut SplitMix64>,
    ) -> (Tensor<B, 3>, (Tensor<B, 4>, Tensor<B, 4>)) {
        let [batch, seq, _] = x.dims();
        let (h, kv, hd) = (at.heads, at.kv_heads, at.head_dim);
        let lo = |p: Projection| lora.and_then(|l| l.get(p));
        let a = match frozen {
            Some(f) => f.a.clone(),
            None => self.attn_norm.forward(x.clone()),
        };
        let (a_q, x) = match &at.rows {
            Some(rows) => (a.clone().gather(1, rows.clone()), x.gather(1, rows.clone())),
            None => (a.clone(), x),
        };
        let queries = a_q.dims()[1];
        let heads = |t: Tensor<B, 3>, n: usize, len: usize| t.reshape([batch, len, n, hd]).swap_dims(1, 2);
        let q = project(&self.q, lo(Projection::Q), a_q, None, rng.as_deref_mut());
        let q = rotate(heads(q, h, queries), &at.q_rope);
        let k = project(&self.k, lo(Projection::K), a.clone(), frozen.map(|f| f.k.clone()), rng.as_deref_mut());
        let mut k = rotate(heads(k, kv, seq), &at.k_rope);
        let v = project(&self.v, lo(Projection::V), a, frozen.map(|f| f.v.clone()), rng.as_deref_mut());
        let mut v = heads(v, kv, seq);
        if let Some((past_k, past_v)) = past {
            k = Tensor::cat(vec![past_k, k], 2);
            v = Tensor::cat(vec![past_v, v], 2);
        }
        // Grouped-query attention without copying keys and values per query head: query head
        // `g · rep + r` uses key/value head `g` (Hugging Face's `repeat_kv` order), so the
        // queries of a group stack into one `[rep · queries, hd]` matrix per key/value head.
        let q = q.reshape([batch, kv, (h / kv) * queries, hd]);
        let scores = q.matmul(k.clone().swap_dims(2, 3)).mul_scalar(1.0 / (hd as f64).sqrt());
        let weights = softmax(scores.mask_fill(at.mask.clone(), f32::NEG_INFINITY), 3);
        let context = weights.matmul(v.clone()).reshape([batch, h, queries, hd]).swap_dims(1, 2).reshape([
            batch,
            queries,
            h * hd,
        ]);
        let x = x + project(&self.o, lo(Projection::O), context, None, rng.as_deref_mut());
        let f = self.ffn_norm.forward(x.clone());
        let gate = project(&self.gate, lo(Projection::Gate), f.clone(), None, rng.as_deref_mut());
        let up = project(&self.up, lo(Projection::Up), f, None, rng.as_deref_mut());
        let x = x + project(&self.down, lo(Projection::Down), silu(gate) * up, None, rng);
        (x, (k, v))
    }
}

/// `linear(x)` (or `base`, that product computed before), plus the adapter's low-rank
/// correction where there is one.
fn project<B: Backend>(
    linear: &Linear<B>,
    lora: Option<&LoraLinear<B>>,
    x: Tensor<B, 3>,
    base: Option<Tensor<B, 3>>,
    rng: Option<&mut SplitMix64>,
) -> Tensor<B, 3> {
    match (lora, base) {
        (None, None) => linear.forward(x),
        (None, Some(base)) => base,
        (Some(lora), None) => linear.forward(x.clone()) + lora.forward(x, rng),
        (Some(lora), Some(base)) => base + lora.forward(x, rng),
    }
}

/// What a tail's first block computes from its input alone, whatever the adapters: the
/// normalised stream and its unadapted key and value projections ([`LlamaTail::freeze`]).
/// Training computes it once for its prompts instead of at every update.
#[derive(Debug, Clone)]
pub struct Frozen<B: Backend> {
    /// `[batch, seq, d_model]`.
    a: Tensor<B, 3>,
    /// `[batch, seq, kv_heads · head_dim]` each.
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
}

impl<B: Backend> Frozen<B> {
    /// The rows `index`, cut to their first `longest` positions (as [`super::lora::TailBatch::select`]).
    pub fn select(&self, index: Tensor<B, 1, Int>, longest: usize) -> Self {
        let cut = |t: &Tensor<B, 3>| {
            let t = t.clone().select(0, index.clone());
            let [n, _, w] = t.dims();
            t.slice([0..n, 0..longest, 0..w])
        };
        Self { a: cut(&self.a), k: cut(&self.k), v: cut(&self.v) }
    }

    /// Their device.
    pub fn device(&self) -> B::Device {
        self.a.device()
    }
}

/// Where a block's queries sit and which keys each may see.
#[derive(Debug, Clone)]
struct Attention<B: Backend> {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// `cos`, `sin` at the query positions, `[rows, 1, queries, head_dim / 2]` (rows: 1 or batch).
    q_rope: (Tensor<B, 4>, Tensor<B, 4>),
    /// The same at the new key positions, `[1, 1, seq, head_dim / 2]`.
    k_rope: (Tensor<B, 4>, Tensor<B, 4>),
    /// True where a query may not see a key, `[batch, kv_heads, rep · queries, past + seq]`.
    mask: Tensor<B, 4, Bool>,
    /// Queries at one position per row (`[batch, 1, d_model]`, the row's position repeated), or
    /// at every position.
    rows: Option<Tensor<B, 3, Int>>,
}

impl<B: Backend> Attention<B> {
    /// Every new position a query, seeing the `past` cached positions and itself and the new
    /// ones before it.
    fn causal(c: &LlamaConfig, batch: usize, past: usize, seq: usize, device: &B::Device) -> Self {
        let positions: Vec<usize> = (past..past + seq).collect();
        let rope = rope_tables::<B>(c.rope_base, c.head_dim(), 1, &positions, device);
        let mask =
            Tensor::<B, 2, Bool>::tril_mask([seq, past + seq], past as i64, device).reshape([1, seq, past + seq]);
        Self::new(c, batch, rope.clone(), rope, mask, None)
    }

    /// One query per fresh sequence, at its last position `lengths[i] − 1` (each in `1..=seq`),
    /// seeing the positions up to it: the answer position of right-padded prompts.
    fn last(c: &LlamaConfig, lengths: &[usize], seq: usize, device: &B::Device) -> Self {
        let batch = lengths.len();
        let ends: Vec<usize> = lengths.iter().map(|&l| l.clamp(1, seq) - 1).collect();
        let all: Vec<usize> = (0..seq).collect();
        let q_rope = rope_tables::<B>(c.rope_base, c.head_dim(), batch, &ends, device);
        let k_rope = rope_tables::<B>(c.rope_base, c.head_dim(), 1, &all, device);
        let hidden: Vec<bool> = ends.iter().flat_map(|&e| (0..seq).map(move |j| j > e)).collect();
        let mask = Tensor::<B, 3, Bool>::from_data(TensorData::new(hidden, [batch, 1, seq]), device);
        let rows: Vec<i64> = ends.iter().flat_map(|&e| std::iter::repeat_n(e as i64, c.d_model)).collect();
        let rows = Tensor::from_data(TensorData::new(rows, [batch, 1, c.d_model]), device);
        Self::new(c, batch, q_rope, k_rope, mask, Some(rows))
    }

    /// `mask`: `[1 or batch, queries, keys]`, tiled over the query heads of each key/value head.
    fn new(
        c: &LlamaConfig,
        batch: usize,
        q_rope: (Tensor<B, 4>, Tensor<B, 4>),
        k_rope: (Tensor<B, 4>, Tensor<B, 4>),
        mask: Tensor<B, 3, Bool>,
        rows: Option<Tensor<B, 3, Int>>,
    ) -> Self {
        let (kv, rep) = (c.n_kv_heads, c.n_heads / c.n_kv_heads);
        let [r, queries, keys] = mask.dims();
        let mask = mask.reshape([r, 1, 1, queries, keys]).expand([batch, kv, rep, queries, keys]).reshape([
            batch,
            kv,
            rep * queries,
            keys,
        ]);
        Self { heads: c.n_heads, kv_heads: kv, head_dim: c.head_dim(), q_rope, k_rope, mask, rows }
    }
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
    Ok(Tensor::from_data(TensorData::new(values, [dims[1], dims[0]]).convert::<B::FloatElem>(), device))
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
    let weight = Tensor::from_data(TensorData::new(transposed, [n_in, n_out]).convert::<B::FloatElem>(), device);
    Ok(Linear { weight: Param::from_tensor(weight), bias: None })
}

fn norm<B: Backend>(gguf: &Gguf, name: &str, eps: f64, device: &B::Device) -> Result<RmsNorm<B>, GgufError> {
    let values = gguf.dequantize(name)?;
    let n = values.len();
    Ok(RmsNorm {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(values, [n]).convert::<B::FloatElem>(), device)),
        eps,
    })
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
        let x = self.run(ids, cache, 0..self.blocks.len());
        self.norm.forward(x)
    }

    /// The residual stream entering block `block` (`0..=n_layers`; `n_layers`: leaving the last
    /// block, before the final norm) of fresh sequences `ids`, padded on the right as in
    /// [`Llama::forward`]: what a [`LlamaTail`] of the blocks from `block` on reads.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]`; output: `[batch, seq, d_model]`
    pub fn residual(&self, ids: Tensor<B, 2, Int>, block: usize) -> Tensor<B, 3> {
        self.residual_after(ids, &mut self.cache(), block)
    }

    /// [`Llama::residual`] of `ids` following the positions in `cache` (appended to it; it holds
    /// the blocks before `block` only): a shared prefix runs once, then each continuation
    /// ([`KvCache::repeat`]) reads it.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]`; `cache`: `[batch, …]` (or empty); output: `[batch, seq, d_model]`
    pub fn residual_after(&self, ids: Tensor<B, 2, Int>, cache: &mut KvCache<B>, block: usize) -> Tensor<B, 3> {
        self.run(ids, cache, 0..block.min(self.blocks.len()))
    }

    /// The embedding of `ids`, then `blocks` in turn, with `cache` holding what came before.
    fn run(&self, ids: Tensor<B, 2, Int>, cache: &mut KvCache<B>, blocks: std::ops::Range<usize>) -> Tensor<B, 3> {
        let [batch, seq] = ids.dims();
        let device = ids.device();
        let past = cache.len;
        let at = Attention::causal(&self.config, batch, past, seq, &device);
        let mut x = self.embed.forward(ids);
        for i in blocks {
            let (out, kv) = self.blocks[i].forward(x, &at, cache.layers.get(i).cloned(), None, None, None);
            x = out;
            match cache.layers.get_mut(i) {
                Some(slot) => *slot = kv,
                None => cache.layers.push(kv),
            }
        }
        cache.len = past + seq;
        x
    }

    /// The last `blocks` blocks (at least one, at most all), the final norm and the output head's
    /// columns of `letter_ids` (per letter A, B, …, the tokens read as it), on this model's
    /// backend: what [`super::lora`] adapts.
    pub fn tail(&self, blocks: usize, letter_ids: &[Vec<u32>]) -> Result<LlamaTail<B>, String> {
        let n = self.blocks.len();
        if !(1..=n).contains(&blocks) {
            return Err(format!("{blocks} adapted blocks: the model has {n}, 1–{n} can be adapted"));
        }
        let vocab = self.config.vocab as u32;
        if letter_ids.is_empty() || letter_ids.len() > 26 || letter_ids.iter().any(|ids| ids.is_empty()) {
            return Err("every option letter needs at least one token".into());
        }
        if let Some(id) = letter_ids.iter().flatten().find(|&&id| id >= vocab) {
            return Err(format!("letter token {id} is outside the vocabulary of {vocab}"));
        }
        // Letter l's tokens are columns l·m … l·m + m − 1 of `letters`, the last repeated where
        // a letter has fewer than m: the maximum over them is the same.
        let m = letter_ids.iter().map(Vec::len).max().unwrap_or(1);
        let columns: Vec<i64> =
            letter_ids.iter().flat_map(|ids| (0..m).map(move |j| i64::from(ids[j.min(ids.len() - 1)]))).collect();
        let device = self.output.device();
        let n_columns = columns.len();
        let letters = self.output.clone().select(1, Tensor::from_data(TensorData::new(columns, [n_columns]), &device));
        Ok(LlamaTail {
            config: self.config.clone(),
            first: n - blocks,
            blocks: self.blocks[n - blocks..].to_vec(),
            norm: self.norm.clone(),
            letters,
            per_letter: m,
        })
    }

    /// Next-token logits of hidden states.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, d_model]`; output: `[batch, seq, vocab]`
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        hidden.matmul(self.output.clone().unsqueeze::<3>())
    }
}

/// The last blocks of a [`Llama`], its final norm and the output head's columns of the option
/// letters' tokens ([`Llama::tail`]): the part that LoRA adapters ([`super::lora`]) change, run on
/// the residual streams entering it ([`Llama::residual`], computed once per prompt).
#[derive(Debug, Clone)]
pub struct LlamaTail<B: Backend> {
    config: LlamaConfig,
    first: usize,
    blocks: Vec<LlamaBlock<B>>,
    norm: RmsNorm<B>,
    /// `[d_model, letters · per_letter]`: letter `l`'s tokens' output columns at `l · per_letter ..`.
    letters: Tensor<B, 2>,
    per_letter: usize,
}

impl<B: Backend> LlamaTail<B> {
    /// The model's configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The first block of the tail: [`Llama::residual`] of this block is its input.
    pub fn first_block(&self) -> usize {
        self.first
    }

    /// How many blocks it holds.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether it holds none (never: [`Llama::tail`] takes at least one).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// How many option letters it reads.
    pub fn letters(&self) -> usize {
        self.letters.dims()[1] / self.per_letter
    }

    /// The same tail on an autodiff backend, its weights frozen: gradients reach only adapters.
    pub fn autodiff<A: AutodiffBackend<InnerBackend = B>>(&self) -> LlamaTail<A> {
        LlamaTail {
            config: self.config.clone(),
            first: self.first,
            blocks: self.blocks.iter().map(|b| LlamaBlock::<A>::from_inner(b.clone().no_grad())).collect(),
            norm: RmsNorm::<A>::from_inner(self.norm.clone().no_grad()),
            letters: Tensor::from_inner(self.letters.clone()),
            per_letter: self.per_letter,
        }
    }

    /// The final normalised hidden state at each row's last position `lengths[i] − 1`, from the
    /// residual streams `x` entering the tail, through its blocks adapted by `lora` (dropout drawn
    /// from `rng` where given; none without), with what [`LlamaTail::freeze`] computed from `x`
    /// where given (the same result, sooner). Earlier blocks run every position; the last one
    /// only the answer position (its keys and values over every position).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`, rows padded on the right; `lengths`: `batch` values in
    ///   `1..=seq`
    /// - output: `[batch, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        lengths: &[usize],
        frozen: Option<&Frozen<B>>,
        lora: Option<&LoraAdapter<B>>,
        mut rng: Option<&mut SplitMix64>,
    ) -> Tensor<B, 2> {
        let [batch, seq, d] = x.dims();
        let device = x.device();
        // Every position's attention only for blocks before the last (none in a one-block tail,
        // the training hot path).
        let every = (self.blocks.len() > 1).then(|| Attention::causal(&self.config, batch, 0, seq, &device));
        let last = Attention::last(&self.config, lengths, seq, &device);
        let mut x = x;
        for (i, block) in self.blocks.iter().enumerate() {
            let at = match &every {
                Some(every) if i + 1 < self.blocks.len() => every,
                _ => &last,
            };
            let frozen = frozen.filter(|_| i == 0);
            x = block.forward(x, at, None, frozen, lora.and_then(|l| l.block(i)), rng.as_deref_mut()).0;
        }
        self.norm.forward(x).reshape([batch, d])
    }

    /// [`Frozen`] of the residual streams `x` entering the tail, for [`LlamaTail::forward`].
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`
    pub fn freeze(&self, x: Tensor<B, 3>) -> Frozen<B> {
        let block = &self.blocks[0];
        let a = block.attn_norm.forward(x);
        Frozen { k: block.k.forward(a.clone()), v: block.v.forward(a.clone()), a }
    }

    /// Log-probabilities of the first `options[i]` letters for each row's hidden state, read as
    /// [`super::ChoiceScorer`] reads an answer: per letter the largest logit among its tokens,
    /// normalised over the letters (the vocabulary's normaliser cancels). Letters past a row's
    /// options get −10⁹ (probability 0).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, d_model]`; `options`: `batch` values in `1..=`[`LlamaTail::letters`]
    /// - output: `[batch, max options]`
    pub fn letter_log_probs(&self, hidden: Tensor<B, 2>, options: &[usize]) -> Tensor<B, 2> {
        let batch = hidden.dims()[0];
        let n = options.iter().copied().max().unwrap_or(1).clamp(1, self.letters());
        let m = self.per_letter;
        let logits = hidden.matmul(self.letters.clone().narrow(1, 0, n * m));
        let best = logits.reshape([batch, n, m]).max_dim(2).reshape([batch, n]);
        let beyond: Vec<bool> = options.iter().flat_map(|&o| (0..n).map(move |l| l >= o)).collect();
        let beyond = Tensor::<B, 2, Bool>::from_data(TensorData::new(beyond, [batch, n]), &best.device());
        log_softmax(best.mask_fill(beyond, -1e9), 1)
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

/// `cos` and `sin` of `position · θᵢ`, `θᵢ = base^(−2i/head_dim)`, computed in f32 as Hugging
/// Face's Llama does, `[rows, 1, positions.len() / rows, head_dim / 2]`.
fn rope_tables<B: Backend>(
    base: f32,
    head_dim: usize,
    rows: usize,
    positions: &[usize],
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32)).collect();
    let angles: Vec<f32> = positions.iter().flat_map(|&p| inv_freq.iter().map(move |&f| p as f32 * f)).collect();
    let table = |f: fn(f32) -> f32| {
        let values: Vec<f32> = angles.iter().map(|&a| f(a)).collect();
        Tensor::<B, 4>::from_data(
            TensorData::new(values, [rows, 1, positions.len() / rows, half]).convert::<B::FloatElem>(),
            device,
        )
    };
    (table(f32::cos), table(f32::sin))
}

/// Rotates adjacent pairs: `(x₂ᵢ, x₂ᵢ₊₁) ↦ (x₂ᵢ cos − x₂ᵢ₊₁ sin, x₂ᵢ sin + x₂ᵢ₊₁ cos)`.
///
/// # Shapes
/// - `x`: `[batch, heads, seq, head_dim]`; `cos`, `sin`: `[1 or batch, 1, seq, head_dim / 2]`
fn rotate<B: Backend>(x: Tensor<B, 4>, (cos, sin): &(Tensor<B, 4>, Tensor<B, 4>)) -> Tensor<B, 4> {
    let [b, h, s, d] = x.dims();
    let pairs = x.reshape([b, h, s, d / 2, 2]);
    let even = pairs.clone().narrow(4, 0, 1).reshape([b, h, s, d / 2]);
    let odd = pairs.narrow(4, 1, 1).reshape([b, h, s, d / 2]);
    let rotated_even = even.clone() * cos.clone() - odd.clone() * sin.clone();
    let rotated_odd = even * sin.clone() + odd * cos.clone();
    Tensor::stack::<5>(vec![rotated_even, rotated_odd], 4).reshape([b, h, s, d])
}

#[cfg(test)]
impl<B: Backend> Llama<B> {
    /// A model of shape `config` with weights drawn from `seed`: uniform in ±1/√fan-in, norm
    /// weights in 0.5–1.5, the output head tied to the embedding.
    pub(crate) fn random(config: LlamaConfig, seed: u64, device: &B::Device) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut draw = |n: usize, low: f64, high: f64| -> Vec<f32> {
            (0..n).map(|_| (low + (high - low) * rng.next_f64()) as f32).collect()
        };
        let mut linear = |n_in: usize, n_out: usize| {
            let bound = 1.0 / (n_in as f64).sqrt();
            let w = Tensor::from_data(
                TensorData::new(draw(n_in * n_out, -bound, bound), [n_in, n_out]).convert::<B::FloatElem>(),
                device,
            );
            Linear { weight: Param::from_tensor(w), bias: None }
        };
        let (d, kv, ff) = (config.d_model, config.n_kv_heads * config.head_dim(), config.d_ff);
        let mut blocks = Vec::new();
        for _ in 0..config.n_layers {
            let (q, k, v, o) = (linear(d, d), linear(d, kv), linear(d, kv), linear(d, d));
            let (gate, up, down) = (linear(d, ff), linear(d, ff), linear(ff, d));
            blocks.push(LlamaBlock {
                attn_norm: RmsNorm::ones(d, config.rms_eps, device),
                q,
                k,
                v,
                o,
                ffn_norm: RmsNorm::ones(d, config.rms_eps, device),
                gate,
                up,
                down,
            });
        }
        let embedding = linear(config.vocab, d).weight.val();
        let mut norms = SplitMix64::new(seed ^ 0x5eed);
        let mut jitter = |norm: &mut RmsNorm<B>| {
            let values: Vec<f32> = (0..d).map(|_| (0.5 + norms.next_f64()) as f32).collect();
            norm.weight =
                Param::from_tensor(Tensor::from_data(TensorData::new(values, [d]).convert::<B::FloatElem>(), device));
        };
        for block in &mut blocks {
            jitter(&mut block.attn_norm);
            jitter(&mut block.ffn_norm);
        }
        let mut norm = RmsNorm::ones(d, config.rms_eps, device);
        jitter(&mut norm);
        Self {
            output: embedding.clone().transpose(),
            embed: Embedding { weight: Param::from_tensor(embedding) },
            blocks,
            norm,
            config,
        }
    }
}

#[cfg(test)]
impl<B: Backend> RmsNorm<B> {
    fn ones(d: usize, eps: f64, device: &B::Device) -> Self {
        let ones = TensorData::new(vec![1.0f32; d], [d]).convert::<B::FloatElem>();
        Self { weight: Param::from_tensor(Tensor::from_data(ones, device)), eps }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use burn_ndarray::NdArray;

    use super::*;

    type Cpu = NdArray<f32>;

    /// Three blocks, grouped-query attention (4 heads, 2 key/value heads), 20 tokens.
    pub(crate) fn tiny_config() -> LlamaConfig {
        LlamaConfig {
            vocab: 20,
            d_model: 16,
            d_ff: 24,
            n_layers: 3,
            n_heads: 4,
            n_kv_heads: 2,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            context: Some(64),
        }
    }

    /// Letters A–D, two of them read from two tokens.
    pub(crate) fn tiny_letters() -> Vec<Vec<u32>> {
        vec![vec![1, 5], vec![2], vec![3, 17], vec![4]]
    }

    /// Three prompts of 5, 3 and 7 tokens.
    pub(crate) fn tiny_prompts() -> Vec<Vec<u32>> {
        vec![vec![7, 3, 9, 11, 2], vec![4, 4, 19], vec![0, 1, 2, 3, 4, 5, 6]]
    }

    fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
        t.into_data().into_vec::<f32>().unwrap()
    }

    #[test]
    fn the_tail_on_residual_streams_is_the_full_forward_at_the_answer_position() {
        let device = Default::default();
        let model = Llama::<Cpu>::random(tiny_config(), 3, &device);
        let prompts = tiny_prompts();
        let rows: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
        let hidden = model.forward(token_ids(&rows, &device), &mut model.cache());
        let letters = tiny_letters();
        for blocks in 1..=3 {
            let tail = model.tail(blocks, &letters).unwrap();
            assert_eq!((tail.first_block(), tail.len(), tail.letters()), (3 - blocks, blocks, 4));
            let x = model.residual(token_ids(&rows, &device), tail.first_block());
            let last = values(tail.forward(x.clone(), &lengths, None, None, None));
            let frozen = tail.freeze(x.clone());
            let sooner = values(tail.forward(x, &lengths, Some(&frozen), None, None));
            assert_eq!(last, sooner, "what freeze computed is what the first block computes");
            for (row, &len) in lengths.iter().enumerate() {
                let want = values(hidden.clone().slice([row..row + 1, len - 1..len]).reshape([16]));
                for (a, b) in last[row * 16..(row + 1) * 16].iter().zip(&want) {
                    // f32 sums in another order (the answer position alone): ~1e-6 apart.
                    assert!((a - b).abs() < 1e-5, "{blocks} blocks, row {row}: {a} vs {b}");
                }
                // The letter reader: max over each letter's token logits, normalised over letters.
                let logits = values(model.logits(hidden.clone().slice([row..row + 1, len - 1..len])));
                let best: Vec<f64> = letters
                    .iter()
                    .map(|ids| ids.iter().map(|&i| logits[i as usize] as f64).fold(f64::MIN, f64::max))
                    .collect();
                let options = [2, 4, 3][row];
                let lse = best[..options].iter().map(|b| b.exp()).sum::<f64>().ln();
                let h = tail.forward(
                    model.residual(token_ids(&rows, &device), tail.first_block()),
                    &lengths,
                    None,
                    None,
                    None,
                );
                let read = values(tail.letter_log_probs(h, &[2, 4, 3]));
                for l in 0..4 {
                    let got = read[row * 4 + l] as f64;
                    match l < options {
                        true => assert!((got - (best[l] - lse)).abs() < 1e-5, "letter {l}: {got} vs {}", best[l] - lse),
                        false => assert!(got < -1e8),
                    }
                }
            }
        }
        assert!(model.tail(0, &letters).is_err() && model.tail(4, &letters).is_err());
        assert!(model.tail(1, &[vec![20]]).unwrap_err().contains("outside the vocabulary"));
        assert!(model.tail(1, &[vec![1], vec![]]).is_err());
    }

    #[test]
    fn the_full_forward_is_unchanged_by_a_cache() {
        // The cached path (a prefix, then the rest) and one pass agree: the mask and rotary tables
        // built for `past > 0`.
        let device = Default::default();
        let model = Llama::<Cpu>::random(tiny_config(), 5, &device);
        let ids: Vec<u32> = vec![3, 1, 4, 1, 5, 9, 2, 6];
        let whole = values(model.forward(token_ids(&[&ids], &device), &mut model.cache()));
        let mut cache = model.cache();
        model.forward(token_ids(&[&ids[..5]], &device), &mut cache);
        let rest = values(model.forward(token_ids(&[&ids[5..]], &device), &mut cache));
        for (a, b) in rest.iter().zip(&whole[5 * 16..]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn residual_streams_after_a_shared_prefix_are_those_of_the_whole_prompts() {
        let device = Default::default();
        let model = Llama::<Cpu>::random(tiny_config(), 9, &device);
        let prefix: Vec<u32> = vec![3, 1, 4, 1, 5, 9];
        let suffixes: [&[u32]; 2] = [&[2, 6, 5], &[7]];
        for block in 0..=3 {
            let mut cache = model.cache();
            let head = values(model.residual_after(token_ids(&[&prefix], &device), &mut cache, block));
            let rest = values(model.residual_after(token_ids(&suffixes, &device), &mut cache.repeat(2), block));
            for (row, suffix) in suffixes.iter().enumerate() {
                let whole: Vec<u32> = prefix.iter().chain(suffix.iter()).copied().collect();
                let want = values(model.residual(token_ids(&[&whole], &device), block));
                let got: Vec<f32> =
                    head.iter().chain(&rest[row * 3 * 16..(row * 3 + suffix.len()) * 16]).copied().collect();
                assert_eq!(got.len(), want.len());
                // f32 sums in another order (the cached keys): ~1e-6 apart.
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "block {block}, row {row}: {a} vs {b}");
                }
            }
        }
    }
}
