//! LoRA adapters (Hu et al. 2021, as `peft` builds them for the paper's trained LLM baselines,
//! docs/original.md §7) on the last blocks of a [`super::Llama`]: each adapted projection `W` becomes
//! `W x + (α / r) · B A dropout(x)`, `A` (`r × in`) drawn like peft's (Kaiming-uniform,
//! `|a| ≤ 1 / √in`), `B` (`out × r`) zero, so a new adapter changes nothing.
//!
//! Only the last blocks are adapted ([`LoraConfig::blocks`]): the residual stream entering them
//! depends on the prompt alone, so it is computed once per prompt ([`super::Llama::residual`]) and
//! training runs the adapted [`super::LlamaTail`] only, its last block at the answer position only.
//!
//! ```
//! use gpo_train::llm::lora::{LoraConfig, Projection};
//!
//! let config = LoraConfig { projections: vec![Projection::Q, Projection::V], ..LoraConfig::default() };
//! config.validate(30)?;
//! assert_eq!((config.rank, config.alpha, config.blocks), (12, 32.0, 1));
//! # Ok::<(), String>(())
//! ```

use burn::module::{AutodiffModule, Module, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use gpo_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use burn::tensor::activation::log_softmax;

use super::llama::{Frozen, LlamaConfig, LlamaTail};

/// A projection of a Llama block that an adapter can change (peft's `target_modules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Projection {
    /// Attention query (`q_proj`).
    Q,
    /// Attention key (`k_proj`).
    K,
    /// Attention value (`v_proj`).
    V,
    /// Attention output (`o_proj`).
    O,
    /// Feed-forward gate (`gate_proj`).
    Gate,
    /// Feed-forward up (`up_proj`).
    Up,
    /// Feed-forward down (`down_proj`).
    Down,
}

impl Projection {
    /// All of them, in a block's order.
    pub const ALL: [Projection; 7] = [Self::Q, Self::K, Self::V, Self::O, Self::Gate, Self::Up, Self::Down];

    /// Input and output widths in a model of configuration `c`.
    pub fn shape(self, c: &LlamaConfig) -> (usize, usize) {
        let kv = c.n_kv_heads * c.head_dim();
        match self {
            Self::Q | Self::O => (c.d_model, c.d_model),
            Self::K | Self::V => (c.d_model, kv),
            Self::Gate | Self::Up => (c.d_model, c.d_ff),
            Self::Down => (c.d_ff, c.d_model),
        }
    }
}

/// The adapters' shape: the original's (`r = 12`, `α = 32`, dropout 0.05; peft's default
/// projections for Llama, query and value) on the last block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r`.
    pub rank: usize,
    /// Scale numerator `α` (the correction is multiplied by `α / r`).
    pub alpha: f64,
    /// Dropout on the adapter's input while training, in `[0, 1)`.
    pub dropout: f64,
    /// The adapted projections of each adapted block.
    pub projections: Vec<Projection>,
    /// How many final blocks are adapted.
    pub blocks: usize,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { rank: 12, alpha: 32.0, dropout: 0.05, projections: vec![Projection::Q, Projection::V], blocks: 1 }
    }
}

/// Largest rank accepted.
pub const MAX_RANK: usize = 1024;

impl LoraConfig {
    /// Checks the values against a model of `layers` blocks; the message names the field.
    pub fn validate(&self, layers: usize) -> Result<(), String> {
        if !(1..=MAX_RANK).contains(&self.rank) {
            return Err(format!("rank: {} is not in 1–{MAX_RANK}", self.rank));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(format!("alpha: {} is not a positive number", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout: {} is not in [0, 1)", self.dropout));
        }
        if self.projections.is_empty() {
            return Err("projections: name at least one of q, k, v, o, gate, up, down".into());
        }
        let mut seen = self.projections.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.projections.len() {
            return Err("projections: a projection is named twice".into());
        }
        if !(1..=layers).contains(&self.blocks) {
            return Err(format!("blocks: {} is not in 1–{layers} (the model's blocks)", self.blocks));
        }
        Ok(())
    }

    /// A new adapter for a model of configuration `c` (the last [`LoraConfig::blocks`] blocks),
    /// its `A` matrices drawn from `seed`, its `B` matrices zero.
    pub fn init<B: Backend>(&self, c: &LlamaConfig, seed: u64, device: &B::Device) -> LoraAdapter<B> {
        let mut rng = SplitMix64::new(seed);
        let blocks = (0..self.blocks)
            .map(|_| {
                let mut block = BlockLora::empty();
                for p in Projection::ALL {
                    if self.projections.contains(&p) {
                        let (n_in, n_out) = p.shape(c);
                        block.set(p, Some(LoraLinear::new(n_in, n_out, self, &mut rng, device)));
                    }
                }
                block
            })
            .collect();
        LoraAdapter { blocks }
    }
}

/// One adapted projection: the correction `(α / r) · dropout(x) A B` (`A`: `[in, r]`, `B`:
/// `[r, out]`, the transposes of peft's `lora_A`/`lora_B` weights).
#[derive(Module, Debug)]
pub struct LoraLinear<B: Backend> {
    a: Param<Tensor<B, 2>>,
    b: Param<Tensor<B, 2>>,
    scale: f64,
    dropout: f64,
}

impl<B: Backend> LoraLinear<B> {
    fn new(n_in: usize, n_out: usize, config: &LoraConfig, rng: &mut SplitMix64, device: &B::Device) -> Self {
        // peft: `kaiming_uniform_(lora_A, a = √5)` on the `[r, in]` weight, bound √(6 / ((1 + 5) in)).
        let bound = 1.0 / (n_in as f64).sqrt();
        let a: Vec<f32> = (0..n_in * config.rank).map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32).collect();
        Self {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(a, [n_in, config.rank]).convert::<B::FloatElem>(),
                device,
            )),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::zeros::<B::FloatElem, _>([config.rank, n_out]),
                device,
            )),
            scale: config.alpha / config.rank as f64,
            dropout: config.dropout,
        }
    }

    /// The correction to the projection of `x`; dropout only where `rng` is given.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, in]`; output: `[batch, seq, out]`
    pub fn forward(&self, x: Tensor<B, 3>, rng: Option<&mut SplitMix64>) -> Tensor<B, 3> {
        let x = match rng {
            Some(rng) if self.dropout > 0.0 => {
                let dims = x.dims();
                let keep = 1.0 - self.dropout;
                let mask: Vec<f32> = (0..dims.iter().product::<usize>())
                    .map(|_| if rng.next_f64() < keep { (1.0 / keep) as f32 } else { 0.0 })
                    .collect();
                let device = x.device();
                x * Tensor::<B, 3>::from_data(TensorData::new(mask, dims).convert::<B::FloatElem>(), &device)
            }
            _ => x,
        };
        x.matmul(self.a.val().unsqueeze::<3>()).matmul(self.b.val().unsqueeze::<3>()).mul_scalar(self.scale)
    }
}

/// The adapters of one block, one optional per [`Projection`].
#[derive(Module, Debug)]
pub struct BlockLora<B: Backend> {
    q: Option<LoraLinear<B>>,
    k: Option<LoraLinear<B>>,
    v: Option<LoraLinear<B>>,
    o: Option<LoraLinear<B>>,
    gate: Option<LoraLinear<B>>,
    up: Option<LoraLinear<B>>,
    down: Option<LoraLinear<B>>,
}

impl<B: Backend> BlockLora<B> {
    fn empty() -> Self {
        Self { q: None, k: None, v: None, o: None, gate: None, up: None, down: None }
    }

    fn slot(&mut self, p: Projection) -> &mut Option<LoraLinear<B>> {
        match p {
            Projection::Q => &mut self.q,
            Projection::K => &mut self.k,
            Projection::V => &mut self.v,
            Projection::O => &mut self.o,
            Projection::Gate => &mut self.gate,
            Projection::Up => &mut self.up,
            Projection::Down => &mut self.down,
        }
    }

    fn set(&mut self, p: Projection, lora: Option<LoraLinear<B>>) {
        *self.slot(p) = lora;
    }

    /// The adapter of projection `p`, if adapted.
    pub fn get(&self, p: Projection) -> Option<&LoraLinear<B>> {
        match p {
            Projection::Q => self.q.as_ref(),
            Projection::K => self.k.as_ref(),
            Projection::V => self.v.as_ref(),
            Projection::O => self.o.as_ref(),
            Projection::Gate => self.gate.as_ref(),
            Projection::Up => self.up.as_ref(),
            Projection::Down => self.down.as_ref(),
        }
    }
}

impl<A: AutodiffBackend> LoraAdapter<A> {
    /// The gradients of [`LoraAdapter::weights`] in `grads` (from a loss's `backward`), same
    /// layout; `None` where not adapted or not reached.
    pub fn gradients(&self, grads: &A::Gradients, block: usize, p: Projection) -> Option<(Vec<f32>, Vec<f32>)> {
        let lora = self.blocks.get(block)?.get(p)?;
        let read = |t: Tensor<A::InnerBackend, 2>| t.into_data().convert::<f32>().into_vec::<f32>().ok();
        Some((read(lora.a.grad(grads)?)?, read(lora.b.grad(grads)?)?))
    }
}

/// The adapters of a model's last blocks ([`LoraConfig::init`]), in block order.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    blocks: Vec<BlockLora<B>>,
}

impl<B: Backend> LoraAdapter<B> {
    /// The adapters of the tail's `i`-th block.
    pub fn block(&self, i: usize) -> Option<&BlockLora<B>> {
        self.blocks.get(i)
    }

    /// Projection `p` of the tail's block `block`: `A` (`[in, r]`, row-major) and `B` (`[r, out]`),
    /// the transposes of peft's `lora_A` and `lora_B` weights (a query's or key's outputs in
    /// the GGUF file's order). `None` where not adapted.
    pub fn weights(&self, block: usize, p: Projection) -> Option<(Vec<f32>, Vec<f32>)> {
        let lora = self.blocks.get(block)?.get(p)?;
        let read = |t: Tensor<B, 2>| t.into_data().convert::<f32>().into_vec::<f32>().ok();
        Some((read(lora.a.val())?, read(lora.b.val())?))
    }

    /// Replaces [`LoraAdapter::weights`] of an adapted projection (same layout and sizes).
    pub fn set_weights(&mut self, block: usize, p: Projection, a: &[f32], b: &[f32]) -> Result<(), String> {
        let lora = self.blocks.get_mut(block).and_then(|bl| bl.slot(p).as_mut());
        let lora = lora.ok_or_else(|| format!("block {block} has no adapter on {p:?}"))?;
        let (a_dims, b_dims) = (lora.a.val().dims(), lora.b.val().dims());
        if a.len() != a_dims[0] * a_dims[1] || b.len() != b_dims[0] * b_dims[1] {
            return Err(format!(
                "{p:?}: A needs {}×{} values and B {}×{}, got {} and {}",
                a_dims[0],
                a_dims[1],
                b_dims[0],
                b_dims[1],
                a.len(),
                b.len()
            ));
        }
        let device = lora.a.val().device();
        let make = |v: &[f32], dims: [usize; 2]| {
            Param::from_tensor(Tensor::from_data(TensorData::new(v.to_vec(), dims).convert::<B::FloatElem>(), &device))
        };
        lora.a = make(a, a_dims);
        lora.b = make(b, b_dims);
        Ok(())
    }

    /// How many blocks it adapts.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether it adapts none.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

/// Prompts as an adapted tail reads them: the residual streams entering it
/// ([`super::Llama::residual`]), padded on the right, with each prompt's options.
#[derive(Debug, Clone)]
pub struct TailBatch<B: Backend> {
    /// `[prompts, longest, d_model]`.
    pub x: Tensor<B, 3>,
    /// Each prompt's tokens.
    pub lengths: Vec<usize>,
    /// Each prompt's options (letters A, B, …).
    pub options: Vec<usize>,
}

impl<B: Backend> TailBatch<B> {
    /// Stacks one `[tokens, d_model]` stream per prompt (each at least one token), padding with
    /// zeros on the right (causal attention never lets a real token see them).
    pub fn new(streams: &[Tensor<B, 2>], options: Vec<usize>) -> Self {
        let lengths: Vec<usize> = streams.iter().map(|s| s.dims()[0]).collect();
        let longest = lengths.iter().copied().max().unwrap_or(1);
        let rows: Vec<Tensor<B, 3>> = streams
            .iter()
            .map(|s| {
                let [len, d] = s.dims();
                let row = match len < longest {
                    true => Tensor::cat(
                        vec![s.clone(), s.clone().slice([0..1, 0..d]).zeros_like().repeat_dim(0, longest - len)],
                        0,
                    ),
                    false => s.clone(),
                };
                row.unsqueeze::<3>()
            })
            .collect();
        Self { x: Tensor::cat(rows, 0), lengths, options }
    }

    /// The prompts at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Self {
        let device = self.x.device();
        let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [rows.len()]), &device);
        let longest = rows.iter().map(|&r| self.lengths[r]).max().unwrap_or(1);
        let x = self.x.clone().select(0, index);
        let [n, _, d] = x.dims();
        Self {
            x: x.slice([0..n, 0..longest, 0..d]),
            lengths: rows.iter().map(|&r| self.lengths[r]).collect(),
            options: rows.iter().map(|&r| self.options[r]).collect(),
        }
    }

    /// How many prompts.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

/// The residual streams of prompts, a prefix shared by several of them kept once
/// ([`super::ChoiceScorer::shared_residuals`]): the few-shot prompts of one group share its
/// ~2,000-token context, and only their questions differ.
#[derive(Debug, Clone)]
pub struct SharedStreams<B: Backend> {
    /// `[tokens, d_model]` per shared prefix.
    prefixes: Vec<Tensor<B, 2>>,
    /// Per prompt: its prefix (an index of `prefixes`), the stream of its own tokens after it
    /// (`[tokens, d_model]`, at least one) and its options.
    prompts: Vec<(Option<usize>, Tensor<B, 2>, usize)>,
}

impl<B: Backend> SharedStreams<B> {
    /// Streams of `prefixes`, and per prompt its prefix (an index of `prefixes`), the stream
    /// of its own tokens and its options; `Err` names a prompt whose prefix is missing.
    pub fn new(
        prefixes: Vec<Tensor<B, 2>>,
        prompts: Vec<(Option<usize>, Tensor<B, 2>, usize)>,
    ) -> Result<Self, String> {
        match prompts.iter().position(|(p, _, _)| p.is_some_and(|p| p >= prefixes.len())) {
            Some(i) => Err(format!("prompt {i}: no prefix {:?} among {}", prompts[i].0, prefixes.len())),
            None => Ok(Self { prefixes, prompts }),
        }
    }

    /// Prompt `i`'s whole stream, `[tokens, d_model]`.
    pub fn stream(&self, i: usize) -> Tensor<B, 2> {
        let (prefix, own, _) = &self.prompts[i];
        match prefix {
            Some(p) => Tensor::cat(vec![self.prefixes[*p].clone(), own.clone()], 0),
            None => own.clone(),
        }
    }

    /// Prompt `i`'s tokens.
    pub fn tokens(&self, i: usize) -> usize {
        let (prefix, own, _) = &self.prompts[i];
        own.dims()[0] + prefix.map_or(0, |p| self.prefixes[p].dims()[0])
    }

    /// The prompts `rows`, in that order, as a batch for a [`LlamaTail`].
    pub fn batch(&self, rows: &[usize]) -> TailBatch<B> {
        let streams: Vec<Tensor<B, 2>> = rows.iter().map(|&r| self.stream(r)).collect();
        TailBatch::new(&streams, rows.iter().map(|&r| self.prompts[r].2).collect())
    }

    /// How many prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// The device the streams are on (the default when there are none).
    pub fn device(&self) -> B::Device {
        self.prompts.first().map(|(_, s, _)| s.device()).unwrap_or_default()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

/// How an adapter is trained: AdamW (β = (0.9, 0.999), ε = 10⁻⁸, decoupled weight decay, as
/// PyTorch's and the original's Hugging Face trainer) at a constant learning rate on the
/// cross-entropy between each prompt's target distribution and the model's letter distribution
/// at its answer position ([`letter_cross_entropy`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraTraining {
    /// Updates.
    pub steps: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Prompts per update (all of them when `None` or larger than the set), drawn without
    /// replacement, a new permutation when one is used up.
    pub batch: Option<usize>,
    /// Validation every this many updates (and before the first), the adapter with the lowest
    /// validation loss kept: `lm_incontext_ft` only, which has validation groups (the per-group
    /// methods train to the end).
    pub eval_every: Option<usize>,
}

impl Default for LoraTraining {
    /// `lm_sft`'s, cut down for 2 CPU cores: 100 AdamW updates over every context question at
    /// lr 1e-3, weight decay 0.01 (the original: 2,000 epochs of 15 questions, 8 per update, at
    /// lr 3e-4, ~3,750 updates).
    fn default() -> Self {
        Self { steps: 100, learning_rate: 1e-3, weight_decay: 0.01, batch: None, eval_every: None }
    }
}

impl LoraTraining {
    /// `lm_incontext_ft`'s, cut down for 2 CPU cores: 100 AdamW updates of 8 few-shot prompts at
    /// lr 1e-3, weight decay 0.01, validated every 20 updates (the original: 1 prompt × 8
    /// accumulated per update at lr 1e-4, 10,000 epochs, evaluated every 200 steps).
    pub fn incontext() -> Self {
        Self { batch: Some(8), eval_every: Some(20), ..Self::default() }
    }
}

/// The mean over prompts of `−Σ p log q`: `targets[i]` (the first `options[i]` letters) against
/// the log-probabilities `log_q` of [`super::LlamaTail::letter_log_probs`]. Equal to the KL
/// divergence up to the targets' entropy, which no adapter changes.
///
/// # Shapes
/// - `log_q`: `[prompts, letters]`; output: `[1]`
pub fn letter_cross_entropy<B: Backend>(log_q: Tensor<B, 2>, targets: &[Vec<f64>]) -> Tensor<B, 1> {
    let [n, letters] = log_q.dims();
    let p: Vec<f64> =
        targets.iter().flat_map(|t| (0..letters).map(move |l| t.get(l).copied().unwrap_or(0.0))).collect();
    let p = Tensor::<B, 2>::from_data(TensorData::new(p, [n, letters]).convert::<B::FloatElem>(), &log_q.device());
    (p * log_q).sum().neg().div_scalar(n.max(1) as f64)
}

/// The rows of consecutive items of `sizes` rows each, laid end to end.
pub fn end_to_end(sizes: impl IntoIterator<Item = usize>) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    sizes
        .into_iter()
        .map(|n| {
            start += n;
            start - n..start
        })
        .collect()
}

/// Which items an update reads: `size` of `n` drawn without replacement, a new permutation when
/// one is used up; every item, in order, when `size` is `None` or at least `n`.
struct Minibatches {
    order: Vec<usize>,
    next: usize,
    size: usize,
}

impl Minibatches {
    fn new(n: usize, size: Option<usize>) -> Self {
        Self { order: (0..n).collect(), next: n, size: size.unwrap_or(n).clamp(1, n.max(1)) }
    }

    /// The items of the next update; `None`: all of them.
    fn draw(&mut self, rng: &mut SplitMix64) -> Option<Vec<usize>> {
        let n = self.order.len();
        if self.size >= n {
            return None;
        }
        let mut rows = Vec::with_capacity(self.size);
        while rows.len() < self.size {
            if self.next == n {
                rng.shuffle(&mut self.order);
                self.next = 0;
            }
            rows.push(self.order[self.next]);
            self.next += 1;
        }
        Some(rows)
    }
}

/// `training.steps` AdamW updates of `model` on `loss` (told the model and the generator that
/// draws dropout and minibatches, seeded with `seed`); `on_step` is told each update's loss
/// (before the update) and the model after it.
fn train<A: AutodiffBackend, M: AutodiffModule<A>>(
    model: M,
    training: &LoraTraining,
    seed: u64,
    mut loss: impl FnMut(&M, &mut SplitMix64) -> Tensor<A, 1>,
    on_step: &mut dyn FnMut(usize, f64, &M),
) -> M {
    let mut optimizer =
        AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(training.weight_decay as f32).init::<A, M>();
    let mut rng = SplitMix64::new(seed);
    let mut model = model;
    for step in 0..training.steps {
        let loss = loss(&model, &mut rng);
        let value: f64 = loss.clone().into_scalar().elem();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(training.learning_rate, model, grads);
        on_step(step, value, &model);
    }
    model
}

/// The prompts `rows` of `batch` and of its `frozen` products.
fn pick<A: AutodiffBackend>(
    batch: &TailBatch<A::InnerBackend>,
    frozen: &Frozen<A>,
    rows: &[usize],
) -> (TailBatch<A::InnerBackend>, Frozen<A>) {
    let part = batch.select(rows);
    let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    let index = Tensor::<A, 1, Int>::from_data(TensorData::new(ids, [rows.len()]), &frozen.device());
    let frozen = frozen.select(index, part.x.dims()[1]);
    (part, frozen)
}

/// Trains `adapter` on `batch` towards `targets` (one distribution per prompt), dropout and
/// minibatches drawn from `seed`; `on_step` is told each update's loss (before the update).
pub fn fit<A: AutodiffBackend>(
    tail: &LlamaTail<A>,
    adapter: LoraAdapter<A>,
    batch: &TailBatch<A::InnerBackend>,
    targets: &[Vec<f64>],
    training: &LoraTraining,
    seed: u64,
    on_step: &mut dyn FnMut(usize, f64),
) -> LoraAdapter<A> {
    // What the tail's first block computes from the prompts alone, once.
    let frozen = tail.freeze(Tensor::from_inner(batch.x.clone()));
    let mut batches = Minibatches::new(batch.len(), training.batch);
    let loss = |adapter: &LoraAdapter<A>, rng: &mut SplitMix64| {
        let (part, frozen, picked) = match batches.draw(rng) {
            Some(rows) => {
                let (part, frozen) = pick(batch, &frozen, &rows);
                (part, frozen, rows.iter().map(|&r| targets[r].clone()).collect())
            }
            None => (batch.clone(), frozen.clone(), targets.to_vec()),
        };
        let h = tail.forward(Tensor::from_inner(part.x), &part.lengths, Some(&frozen), Some(adapter), Some(rng));
        letter_cross_entropy(tail.letter_log_probs(h, &part.options), &picked)
    };
    train(adapter, training, seed, loss, &mut |step, loss, _| on_step(step, loss))
}

/// Prompts of a [`SharedStreams`] and the distribution each is trained towards (or scored
/// against).
pub type Labelled<'a> = (&'a [usize], &'a [Vec<f64>]);

/// What [`fit_selected`] kept: the adapter after `step` updates (0: the new adapter, the model
/// itself), the one with the lowest validation loss, and the validation loss at every check.
#[derive(Debug)]
pub struct Selected<B: Backend> {
    /// The kept adapter.
    pub adapter: LoraAdapter<B>,
    /// Its updates.
    pub step: usize,
    /// `(updates, validation loss)` at every check, the first before any update.
    pub validation: Vec<(usize, f64)>,
}

/// The mean [`letter_cross_entropy`] of `prompts` of `streams` against their distributions
/// through `tail` adapted by `adapter`, without dropout, `chunk` prompts at a time.
pub fn streams_loss<B: Backend>(
    tail: &LlamaTail<B>,
    adapter: Option<&LoraAdapter<B>>,
    streams: &SharedStreams<B>,
    (rows, targets): Labelled,
    chunk: usize,
) -> f64 {
    let mut total = 0.0;
    for (rows, targets) in rows.chunks(chunk.max(1)).zip(targets.chunks(chunk.max(1))) {
        let batch = streams.batch(rows);
        let h = tail.forward(batch.x, &batch.lengths, None, adapter, None);
        let loss: f64 = letter_cross_entropy(tail.letter_log_probs(h, &batch.options), targets).into_scalar().elem();
        total += loss * rows.len() as f64;
    }
    total / rows.len().max(1) as f64
}

/// Trains `adapter` on the prompts `train` of `streams` towards their distributions, in
/// minibatches of `training.batch` (8 when unset) drawn with dropout from `seed`, and keeps the
/// adapter with the lowest loss on `validation` (checked before the first update and every
/// `training.eval_every` updates, 20 when unset; ties keep the earlier); `on_step` is told each
/// update's loss (before the update). `inner` is `tail` on the inner backend (validation runs
/// there, without autodiff).
#[allow(clippy::too_many_arguments)]
pub fn fit_selected<A: AutodiffBackend>(
    tail: &LlamaTail<A>,
    inner: &LlamaTail<A::InnerBackend>,
    adapter: LoraAdapter<A>,
    streams: &SharedStreams<A::InnerBackend>,
    train_set: Labelled,
    validation: Labelled,
    training: &LoraTraining,
    seed: u64,
    on_step: &mut dyn FnMut(usize, f64),
) -> Selected<A::InnerBackend> {
    const CHUNK: usize = 16;
    let (rows, targets) = train_set;
    let every = training.eval_every.unwrap_or(20).max(1);
    let mut batches = Minibatches::new(rows.len(), Some(training.batch.unwrap_or(8)));
    let first = adapter.valid();
    let mut kept = Selected {
        validation: vec![(0, streams_loss(inner, Some(&first), streams, validation, CHUNK))],
        adapter: first,
        step: 0,
    };
    let loss = |adapter: &LoraAdapter<A>, rng: &mut SplitMix64| {
        let chosen = batches.draw(rng).unwrap_or_else(|| (0..rows.len()).collect());
        let picked: Vec<usize> = chosen.iter().map(|&i| rows[i]).collect();
        let part = streams.batch(&picked);
        let h = tail.forward(Tensor::from_inner(part.x), &part.lengths, None, Some(adapter), Some(rng));
        let wanted: Vec<Vec<f64>> = chosen.iter().map(|&i| targets[i].clone()).collect();
        letter_cross_entropy(tail.letter_log_probs(h, &part.options), &wanted)
    };
    let mut check = |step: usize, value: f64, adapter: &LoraAdapter<A>| {
        on_step(step, value);
        let updates = step + 1;
        if updates.is_multiple_of(every) || updates == training.steps {
            let valid = adapter.valid();
            let loss = streams_loss(inner, Some(&valid), streams, validation, CHUNK);
            kept.validation.push((updates, loss));
            if loss < kept.validation[..kept.validation.len() - 1].iter().map(|v| v.1).fold(f64::INFINITY, f64::min) {
                kept.adapter = valid;
                kept.step = updates;
            }
        }
    };
    train(adapter, training, seed, loss, &mut check);
    kept
}

/// The LM as a reward model (`lm_reward_model`): the final hidden state of a question's prompt
/// followed by an option's letter, through the adapted tail, times a scalar head, scores the
/// option; a question's options' scores, softmax-normalised, are the predicted distribution.
#[derive(Module, Debug)]
pub struct RewardModel<B: Backend> {
    adapter: LoraAdapter<B>,
    /// `[d_model, 1]`, zero when new: every option scores the same (the uniform distribution).
    head: Param<Tensor<B, 2>>,
}

impl<B: Backend> RewardModel<B> {
    /// A new head (zero) on `adapter`, for hidden states of width `d_model`.
    pub fn new(adapter: LoraAdapter<B>, d_model: usize, device: &B::Device) -> Self {
        let zeros = TensorData::zeros::<B::FloatElem, _>([d_model, 1]);
        Self { adapter, head: Param::from_tensor(Tensor::from_data(zeros, device)) }
    }

    /// The adapter.
    pub fn adapter(&self) -> &LoraAdapter<B> {
        &self.adapter
    }

    /// Log-probabilities over each question's options: `questions[i]` are the rows of `batch`
    /// holding question `i`'s options in order (consecutive rows).
    ///
    /// # Shapes
    /// - output: `[questions, most options]`, −10⁹ past a question's options
    fn log_probs(
        &self,
        tail: &LlamaTail<B>,
        batch: &TailBatch<B>,
        frozen: Option<&Frozen<B>>,
        questions: &[std::ops::Range<usize>],
        rng: Option<&mut SplitMix64>,
    ) -> Tensor<B, 2> {
        let h = tail.forward(batch.x.clone(), &batch.lengths, frozen, Some(&self.adapter), rng);
        let scores = h.matmul(self.head.val());
        let width = questions.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
        let ids: Vec<i64> = questions
            .iter()
            .flat_map(|r| (0..width).map(move |o| (r.start + o.min(r.len().max(1) - 1)) as i64))
            .collect();
        let device = scores.device();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [questions.len() * width]), &device);
        let grid = scores.select(0, index).reshape([questions.len(), width]);
        let beyond: Vec<bool> = questions.iter().flat_map(|r| (0..width).map(move |o| o >= r.len())).collect();
        let beyond = Tensor::<B, 2, Bool>::from_data(TensorData::new(beyond, [questions.len(), width]), &device);
        log_softmax(grid.mask_fill(beyond, -1e9), 1)
    }
}

/// Trains `model` on the option prompts of `batch` (question `i`'s at rows `questions[i]`)
/// towards `targets` (question `i`'s answer distribution): cross-entropy of the options'
/// softmax-normalised scores. Minibatches (`training.batch`) count questions.
#[allow(clippy::too_many_arguments)]
pub fn fit_reward<A: AutodiffBackend>(
    tail: &LlamaTail<A>,
    model: RewardModel<A>,
    batch: &TailBatch<A::InnerBackend>,
    questions: &[std::ops::Range<usize>],
    targets: &[Vec<f64>],
    training: &LoraTraining,
    seed: u64,
    on_step: &mut dyn FnMut(usize, f64),
) -> RewardModel<A> {
    let frozen = tail.freeze(Tensor::from_inner(batch.x.clone()));
    let mut batches = Minibatches::new(questions.len(), training.batch);
    let loss = |model: &RewardModel<A>, rng: &mut SplitMix64| {
        let (part, frozen, ranges, picked) = match batches.draw(rng) {
            Some(chosen) => {
                let rows: Vec<usize> = chosen.iter().flat_map(|&q| questions[q].clone()).collect();
                let (part, frozen) = pick(batch, &frozen, &rows);
                let ranges = end_to_end(chosen.iter().map(|&q| questions[q].len()));
                (part, frozen, ranges, chosen.iter().map(|&q| targets[q].clone()).collect())
            }
            None => (batch.clone(), frozen.clone(), questions.to_vec(), targets.to_vec()),
        };
        let part = TailBatch { x: Tensor::from_inner(part.x), lengths: part.lengths, options: part.options };
        letter_cross_entropy(model.log_probs(tail, &part, Some(&frozen), &ranges, Some(rng)), &picked)
    };
    train(model, training, seed, loss, &mut |step, loss, _| on_step(step, loss))
}

/// The option distributions `model` gives the questions of `batch` (question `i`'s options at
/// rows `questions[i]`), without dropout.
pub fn reward_distributions<B: Backend>(
    tail: &LlamaTail<B>,
    model: &RewardModel<B>,
    batch: &TailBatch<B>,
    questions: &[std::ops::Range<usize>],
) -> Result<Vec<Vec<f64>>, String> {
    let log_q = model.log_probs(tail, batch, None, questions, None);
    rows_to_distributions(log_q, questions.iter().map(|r| r.len()))
}

/// The letter distributions of `batch`'s prompts through `tail` adapted by `adapter` (`None`: the
/// model itself), without dropout: per prompt its first `options` letters, summing to 1.
pub fn letter_distributions<B: Backend>(
    tail: &LlamaTail<B>,
    adapter: Option<&LoraAdapter<B>>,
    batch: &TailBatch<B>,
) -> Result<Vec<Vec<f64>>, String> {
    let h = tail.forward(batch.x.clone(), &batch.lengths, None, adapter, None);
    rows_to_distributions(tail.letter_log_probs(h, &batch.options), batch.options.iter().copied())
}

/// Each row's first `n` log-probabilities, exponentiated and normalised, in f64.
fn rows_to_distributions<B: Backend>(
    log_q: Tensor<B, 2>,
    sizes: impl Iterator<Item = usize>,
) -> Result<Vec<Vec<f64>>, String> {
    let width = log_q.dims()[1];
    let values = log_q.into_data().convert::<f64>().into_vec::<f64>().map_err(|e| format!("reading scores: {e:?}"))?;
    values
        .chunks_exact(width)
        .zip(sizes)
        .map(|(row, n)| {
            let p: Vec<f64> = row[..n].iter().map(|l| l.exp()).collect();
            let sum: f64 = p.iter().sum();
            match sum > 0.0 && sum.is_finite() {
                true => Ok(p.iter().map(|x| x / sum).collect()),
                false => Err(format!("the options' probabilities sum to {sum}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use burn::module::AutodiffModule;
    use burn_autodiff::Autodiff;
    use burn_ndarray::NdArray;

    use super::*;
    use crate::llm::Llama;
    use crate::llm::llama::tests::{tiny_config, tiny_letters, tiny_prompts};
    use crate::llm::llama::token_ids;

    type F64 = NdArray<f64>;
    type Train = Autodiff<F64>;

    fn all_projections(blocks: usize, dropout: f64) -> LoraConfig {
        LoraConfig { rank: 3, alpha: 6.0, dropout, projections: Projection::ALL.to_vec(), blocks }
    }

    /// The adapter with every `B` drawn from `seed` (a new adapter's are zero: its `A` would get
    /// no gradient).
    fn with_random_b<B: Backend>(adapter: LoraAdapter<B>, seed: u64) -> LoraAdapter<B> {
        let mut rng = SplitMix64::new(seed);
        let mut adapter = adapter;
        for block in &mut adapter.blocks {
            for p in Projection::ALL {
                if let Some(lora) = block.slot(p) {
                    let dims = lora.b.val().dims();
                    let device = lora.b.val().device();
                    let values: Vec<f64> = (0..dims[0] * dims[1]).map(|_| rng.next_f64() - 0.5).collect();
                    lora.b = Param::from_tensor(Tensor::from_data(
                        TensorData::new(values, dims).convert::<B::FloatElem>(),
                        &device,
                    ));
                }
            }
        }
        adapter
    }

    /// `A` or `B` of projection `p` of block `block`, entry `i` moved by `delta`.
    fn nudged<B: Backend>(
        adapter: &LoraAdapter<B>,
        block: usize,
        p: Projection,
        b: bool,
        i: usize,
        delta: f64,
    ) -> LoraAdapter<B> {
        let mut adapter = adapter.clone();
        let lora = adapter.blocks[block].slot(p).as_mut().unwrap();
        let param = if b { &mut lora.b } else { &mut lora.a };
        let value = param.val();
        let (dims, device) = (value.dims(), value.device());
        let mut values = value.into_data().into_vec::<f64>().unwrap();
        values[i] += delta;
        *param =
            Param::from_tensor(Tensor::from_data(TensorData::new(values, dims).convert::<B::FloatElem>(), &device));
        adapter
    }

    /// Cross-entropy of the letter distributions against fixed targets, mean over the prompts.
    fn loss<B: Backend>(
        tail: &crate::llm::LlamaTail<B>,
        x: Tensor<B, 3>,
        adapter: &LoraAdapter<B>,
        dropout_seed: Option<u64>,
    ) -> Tensor<B, 1> {
        let lengths: Vec<usize> = tiny_prompts().iter().map(Vec::len).collect();
        let options = [2, 4, 3];
        let targets = [0.3, 0.7, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.25, 0.25, 0.0];
        let device = x.device();
        let mut rng = dropout_seed.map(SplitMix64::new);
        let h = tail.forward(x, &lengths, None, Some(adapter), rng.as_mut());
        let log_q = tail.letter_log_probs(h, &options);
        let p = Tensor::<B, 2>::from_data(TensorData::new(targets.to_vec(), [3, 4]).convert::<B::FloatElem>(), &device);
        (p * log_q).sum().neg().div_scalar(3.0)
    }

    #[test]
    fn fitting_lowers_the_loss_deterministically_in_full_and_minibatches() {
        type Cpu = NdArray<f32>;
        type Ad = Autodiff<Cpu>;
        let device = Default::default();
        let model = Llama::<Cpu>::random(tiny_config(), 8, &device);
        let prompts = tiny_prompts();
        let streams: Vec<Tensor<Cpu, 2>> = prompts
            .iter()
            .map(|p| {
                let x = model.residual(token_ids(&[p.as_slice()], &device), 2);
                let [_, len, d] = x.dims();
                x.reshape([len, d])
            })
            .collect();
        let batch = TailBatch::new(&streams, vec![2, 4, 3]);
        assert_eq!((batch.len(), batch.x.dims()), (3, [3, 7, 16]));
        let targets = vec![vec![0.9, 0.1], vec![0.1, 0.1, 0.1, 0.7], vec![0.2, 0.6, 0.2]];
        let tail = model.tail(1, &tiny_letters()).unwrap();
        let config = LoraConfig {
            rank: 4,
            projections: vec![Projection::Q, Projection::V, Projection::Down],
            ..LoraConfig::default()
        };
        let before = letter_distributions(&tail, None, &batch).unwrap();
        for batch_size in [None, Some(2)] {
            let training = LoraTraining {
                steps: 60,
                learning_rate: 0.02,
                weight_decay: 0.01,
                batch: batch_size,
                eval_every: None,
            };
            let run = || {
                let mut losses = Vec::new();
                let adapter = fit(
                    &tail.autodiff::<Ad>(),
                    config.init::<Ad>(model.config(), 1, &device),
                    &batch,
                    &targets,
                    &training,
                    5,
                    &mut |_, loss| losses.push(loss),
                );
                (adapter.valid(), losses)
            };
            let (adapter, losses) = run();
            let (_, again) = run();
            assert_eq!(losses, again, "the same seed gives the same losses");
            let after = letter_distributions(&tail, Some(&adapter), &batch).unwrap();
            let ce = |q: &[Vec<f64>]| -> f64 {
                targets.iter().zip(q).map(|(t, q)| -t.iter().zip(q).map(|(p, q)| p * q.ln()).sum::<f64>()).sum::<f64>()
                    / 3.0
            };
            // The full-batch loss of the first step is the untrained model's (B = 0), dropout aside.
            assert!(ce(&after) < ce(&before) - 0.2, "{batch_size:?}: {} → {}", ce(&before), ce(&after));
            for (q, &n) in after.iter().zip(&batch.options) {
                assert_eq!(q.len(), n);
                assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            }
        }
        let picked = batch.select(&[2, 0]);
        assert_eq!(
            (picked.lengths.clone(), picked.options.clone(), picked.x.dims()),
            (vec![7, 5], vec![3, 2], [2, 7, 16])
        );
    }

    #[test]
    fn selection_keeps_the_adapter_with_the_lowest_validation_loss_over_shared_prefixes() {
        type Cpu = NdArray<f32>;
        type Ad = Autodiff<Cpu>;
        let device = Default::default();
        let model = Llama::<Cpu>::random(tiny_config(), 21, &device);
        // Two "groups", each a shared prefix (its context) and three questions after it.
        let prefixes: [&[u32]; 2] = [&[3, 1, 4, 1, 5, 9, 2, 6], &[2, 7, 1, 8, 2, 8, 1, 8]];
        let questions: [&[u32]; 3] = [&[11, 12], &[13, 14, 15], &[16]];
        let (mut heads, mut parts) = (Vec::new(), Vec::new());
        for prefix in prefixes {
            let mut cache = model.cache();
            let head = model.residual_after(token_ids(&[prefix], &device), &mut cache, 2);
            heads.push(head.reshape([prefix.len(), 16]));
            for q in questions {
                let own = model.residual_after(token_ids(&[q], &device), &mut cache.repeat(1), 2);
                parts.push((Some(heads.len() - 1), own.reshape([q.len(), 16]), 3));
            }
        }
        let streams = SharedStreams::new(heads, parts).unwrap();
        assert!(SharedStreams::<Cpu>::new(Vec::new(), vec![(Some(0), Tensor::zeros([1, 16], &device), 2)]).is_err());
        assert_eq!((streams.len(), streams.tokens(1)), (6, 11));
        // A prompt's stream is the whole prompt's, prefix and question.
        let whole: Vec<u32> = prefixes[1].iter().chain(questions[1]).copied().collect();
        let want = model.residual(token_ids(&[whole.as_slice()], &device), 2).into_data().into_vec::<f32>().unwrap();
        let got = streams.stream(4).into_data().into_vec::<f32>().unwrap();
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5) && got.len() == want.len());

        let tail = model.tail(1, &tiny_letters()).unwrap();
        let config = LoraConfig { rank: 4, dropout: 0.0, ..LoraConfig::default() };
        // Group 0's prompts teach answer A. Validation on group 1's prompts wanting A too: the
        // loss falls, a later adapter is kept; on group 0's own prompts wanting B: the loss only
        // rises, the new adapter is kept.
        let wanting = |l: usize| vec![(0..3).map(|i| if i == l { 1.0 } else { 0.0 }).collect::<Vec<f64>>(); 3];
        let training =
            LoraTraining { steps: 30, learning_rate: 0.05, weight_decay: 0.0, batch: Some(2), eval_every: Some(5) };
        let run = |validation: (&[usize], &[Vec<f64>])| {
            let mut steps = 0;
            let kept = fit_selected(
                &tail.autodiff::<Ad>(),
                &tail,
                config.init::<Ad>(model.config(), 4, &device),
                &streams,
                (&[0, 1, 2], &wanting(0)),
                validation,
                &training,
                6,
                &mut |_, _| steps += 1,
            );
            assert_eq!(steps, 30);
            kept
        };
        let agrees = run((&[3, 4, 5], &wanting(0)));
        let checks: Vec<usize> = agrees.validation.iter().map(|v| v.0).collect();
        assert_eq!(checks, vec![0, 5, 10, 15, 20, 25, 30]);
        let best = agrees.validation.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
        assert_eq!(agrees.validation.iter().find(|v| v.1 == best).map(|v| v.0), Some(agrees.step));
        assert!(agrees.step > 0 && best < agrees.validation[0].1 - 0.05, "{:?}", agrees.validation);
        // The kept adapter is the one whose loss was recorded.
        let again = streams_loss(&tail, Some(&agrees.adapter), &streams, (&[3, 4, 5], &wanting(0)), 2);
        assert!((again - best).abs() < 1e-5, "{again} vs {best}");
        let opposite = run((&[0, 1, 2], &wanting(1)));
        assert_eq!(opposite.step, 0, "{:?}", opposite.validation);
        let untrained = streams_loss(&tail, None, &streams, (&[0, 1, 2], &wanting(1)), 4);
        assert!((opposite.validation[0].1 - untrained).abs() < 1e-6);
        assert!(opposite.validation.last().is_some_and(|v| v.1 > untrained + 0.5), "{:?}", opposite.validation);
        // The same seed, the same losses.
        assert_eq!(run((&[3, 4, 5], &wanting(0))).validation, agrees.validation);
    }

    #[test]
    fn a_reward_model_starts_uniform_and_learns_the_options_distributions() {
        type Cpu = NdArray<f32>;
        type Ad = Autodiff<Cpu>;
        let device = Default::default();
        let model = Llama::<Cpu>::random(tiny_config(), 12, &device);
        // Two questions: the first with 2 options (prompt + letter token each), the second 3.
        let rows: Vec<Vec<u32>> =
            vec![vec![7, 3, 9, 1], vec![7, 3, 9, 2], vec![4, 4, 19, 1], vec![4, 4, 19, 2], vec![4, 4, 19, 3]];
        let streams: Vec<Tensor<Cpu, 2>> = rows
            .iter()
            .map(|p| {
                let x = model.residual(token_ids(&[p.as_slice()], &device), 1);
                let [_, len, d] = x.dims();
                x.reshape([len, d])
            })
            .collect();
        let batch = TailBatch::new(&streams, vec![2, 2, 3, 3, 3]);
        let questions = [0..2, 2..5];
        let targets = vec![vec![0.8, 0.2], vec![0.1, 0.3, 0.6]];
        let tail = model.tail(2, &tiny_letters()).unwrap();
        let config = LoraConfig { rank: 2, ..LoraConfig::default() };
        let new = RewardModel::new(config.init::<Cpu>(model.config(), 3, &device), 16, &device);
        let uniform = reward_distributions(&tail, &new, &batch, &questions).unwrap();
        let want = [vec![0.5, 0.5], vec![1.0 / 3.0; 3]];
        for (got, want) in uniform.iter().zip(&want) {
            // exp(0) normalised: exact up to the division's rounding.
            assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-15), "a zero head scores alike: {got:?}");
        }
        let ce = |q: &[Vec<f64>]| -> f64 {
            targets.iter().zip(q).map(|(t, q)| -t.iter().zip(q).map(|(p, q)| p * q.ln()).sum::<f64>()).sum::<f64>()
                / 2.0
        };
        for batch_size in [None, Some(1)] {
            let training =
                LoraTraining { steps: 80, learning_rate: 0.02, weight_decay: 0.0, batch: batch_size, eval_every: None };
            let run = || {
                let mut losses = Vec::new();
                let start = RewardModel::new(config.init::<Ad>(model.config(), 3, &device), 16, &device);
                let trained = fit_reward(
                    &tail.autodiff::<Ad>(),
                    start,
                    &batch,
                    &questions,
                    &targets,
                    &training,
                    4,
                    &mut |_, l| losses.push(l),
                );
                (trained.valid(), losses)
            };
            let (trained, losses) = run();
            assert_eq!(losses, run().1, "the same seed gives the same losses");
            let after = reward_distributions(&tail, &trained, &batch, &questions).unwrap();
            assert!(ce(&after) < ce(&uniform) - 0.1, "{batch_size:?}: {} → {}", ce(&uniform), ce(&after));
            assert!(after[0][0] > 0.6 && after[1][2] > after[1][0], "{after:?}");
        }
    }

    #[test]
    fn a_new_adapter_changes_nothing_and_the_config_is_checked() {
        let device = Default::default();
        let model = Llama::<NdArray<f32>>::random(tiny_config(), 1, &device);
        let prompts = tiny_prompts();
        let rows: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
        let tail = model.tail(2, &tiny_letters()).unwrap();
        let x = model.residual(token_ids(&rows, &device), tail.first_block());
        let adapter = all_projections(2, 0.0).init::<NdArray<f32>>(model.config(), 9, &device);
        let plain = tail.forward(x.clone(), &lengths, None, None, None).into_data();
        let adapted = tail.forward(x.clone(), &lengths, None, Some(&adapter), None).into_data();
        let frozen = tail.freeze(x.clone());
        let adapted_frozen = tail.forward(x, &lengths, Some(&frozen), Some(&adapter), None).into_data();
        assert_eq!(adapted, adapted_frozen);
        assert_eq!(plain, adapted, "B = 0: the correction is exactly zero");
        // A is peft's Kaiming-uniform: |a| ≤ 1/√in, not all zero.
        let a = adapter.blocks[0].q.as_ref().unwrap().a.val().into_data().into_vec::<f32>().unwrap();
        assert!(a.iter().all(|v| v.abs() <= 0.25) && a.iter().any(|v| v.abs() > 0.1));
        assert_eq!(adapter.len(), 2);

        let ok = LoraConfig::default();
        assert!(ok.validate(30).is_ok());
        let bad = |f: fn(&mut LoraConfig)| {
            let mut c = LoraConfig::default();
            f(&mut c);
            c.validate(30).unwrap_err()
        };
        assert!(bad(|c| c.rank = 0).starts_with("rank"));
        assert!(bad(|c| c.alpha = f64::NAN).starts_with("alpha"));
        assert!(bad(|c| c.dropout = 1.0).starts_with("dropout"));
        assert!(bad(|c| c.projections.clear()).starts_with("projections"));
        assert!(bad(|c| c.projections = vec![Projection::Q, Projection::Q]).contains("twice"));
        assert!(bad(|c| c.blocks = 31).starts_with("blocks"));
    }

    /// Burn locks a device's default float type at its first tensor (a process-wide registry
    /// keyed by the device type, the same for `NdArray<f32>` and `NdArray<f64>`): after an f32
    /// test, an f64 backward pass builds some gradients in f32. The f64 check therefore runs in a
    /// process of its own, this test binary started again on [`f64_gradients_match_finite_differences`].
    #[test]
    fn gradients_match_finite_differences() {
        let name = "llm::lora::tests::f64_gradients_match_finite_differences";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--ignored", "--test-threads", "1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    #[ignore = "run in a process of its own by gradients_match_finite_differences"]
    fn f64_gradients_match_finite_differences() {
        // An f64 backend, but Burn computes the sigmoid (SiLU) in f32 on every backend
        // (burn-backend's default `sigmoid` casts to f32), so the loss carries f32 rounding
        // (~1e-8 here): central differences take h = 1e-3, where that noise contributes ~5e-6 and
        // the truncation error (h² times third derivatives of order 1) ~1e-6; measured agreement
        // ~1e-6 on gradients of order 1e-2 (with h = 1e-5 the f32 noise reaches 2e-4).
        let device = Default::default();
        let model = Llama::<F64>::random(tiny_config(), 2, &device);
        let prompts = tiny_prompts();
        let rows: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        for (blocks, dropout) in [(2, 0.0), (1, 0.3)] {
            let tail = model.tail(blocks, &tiny_letters()).unwrap();
            let x = model.residual(token_ids(&rows, &device), tail.first_block());
            // Built on the autodiff backend (its parameters then require gradients), read back
            // on the plain one for the finite differences.
            let train_adapter =
                with_random_b(all_projections(blocks, dropout).init::<Train>(model.config(), 4, &device), 6);
            let adapter = train_adapter.valid();
            // Dropout draws the same masks in every evaluation (one seed), so the loss is a smooth
            // function of the adapter.
            let seed = (dropout > 0.0).then_some(11);
            let train_tail = tail.autodiff::<Train>();
            let grads = loss(&train_tail, Tensor::from_inner(x.clone()), &train_adapter, seed).backward();
            let mut checked = 0;
            for block in 0..blocks {
                for p in Projection::ALL {
                    let lora = train_adapter.blocks[block].get(p).unwrap();
                    for (is_b, param) in [(false, &lora.a), (true, &lora.b)] {
                        let grad = param.grad(&grads).unwrap().into_data().into_vec::<f64>().unwrap();
                        let n = grad.len();
                        for i in [0, n / 3, n / 2, n - 1] {
                            let h = 1e-3;
                            let f = |delta| {
                                loss(&tail, x.clone(), &nudged(&adapter, block, p, is_b, i, delta), seed).into_scalar()
                            };
                            let numeric = (f(h) - f(-h)) / (2.0 * h);
                            let tolerance = 5e-6 + 1e-3 * numeric.abs();
                            assert!(
                                (grad[i] - numeric).abs() < tolerance,
                                "block {block} {p:?} {} [{i}]: autodiff {} vs finite differences {numeric}",
                                if is_b { "B" } else { "A" },
                                grad[i]
                            );
                            checked += 1;
                        }
                    }
                }
            }
            assert_eq!(checked, blocks * 7 * 2 * 4);
        }
    }
}
