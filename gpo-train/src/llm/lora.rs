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
//! use burn_ndarray::NdArray;
//! use gpo_train::llm::lora::{LoraConfig, Projection};
//!
//! let config = LoraConfig { projections: vec![Projection::Q, Projection::V], ..LoraConfig::default() };
//! config.validate(30)?;
//! assert_eq!((config.rank, config.alpha, config.blocks), (12, 32.0, 1));
//! # Ok::<(), String>(())
//! ```

use burn::module::{Module, Param};
use burn::prelude::*;
use gpo_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::llama::LlamaConfig;

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

    /// How many blocks it adapts.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether it adapts none.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
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
        let h = tail.forward(x, &lengths, Some(adapter), rng.as_mut());
        let log_q = tail.letter_log_probs(h, &options);
        let p = Tensor::<B, 2>::from_data(TensorData::new(targets.to_vec(), [3, 4]).convert::<B::FloatElem>(), &device);
        (p * log_q).sum().neg().div_scalar(3.0)
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
        let plain = tail.forward(x.clone(), &lengths, None, None).into_data();
        let adapted = tail.forward(x, &lengths, Some(&adapter), None).into_data();
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
