//! The attention softmax: over the keys of each (episode, head, query) row, with padding keys
//! given zero weight and a row whose keys are all padding attending to nothing.
//!
//! On every backend it is Burn's softmax between two masks. Training on the CPU
//! (`Autodiff<NdArray<f32>>`, feature `train`) runs it as one operation instead: one pass over
//! the scores forward (maximum, exponentials and sum of each row while it sits in the L1 cache;
//! the exponentials vectorised, [`exp`]) and one pass backward (`dS = P ∘ (dP − Σ dP ∘ P)`, from
//! the weights kept by the forward pass). Composed, the same softmax is five tensor passes
//! forward and about eight backward, each one a full pass over memory: about 30% of a training
//! update at 13 groups (measured by leaving it out; docs/development.md). The two agree to float
//! rounding (tests).
//! The fused operation is picked by the backend's type at run time (model/cpu.rs).

use burn::tensor::{Bool, Tensor, activation::softmax, backend::Backend};

/// Score given to masked keys before the composed softmax. Finite, so that a row whose keys are
/// all masked gives no NaN; such rows are zeroed after the softmax.
const MASKED_SCORE: f32 = -1.0e30;

/// Softmax of `scores` ([batch, heads, queries, keys]) over the keys, with the keys where
/// `pad` ([batch, keys]) is `true` left out: their weight is 0, and a row whose keys are all
/// padding is all zeros.
pub(crate) fn attention_softmax<B: Backend>(scores: Tensor<B, 4>, pad: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 4> {
    #[cfg(feature = "train")]
    let (scores, pad) = match fused::autodiff_ndarray(scores, pad) {
        Ok(weights) => return weights,
        Err(inputs) => inputs,
    };
    composed(scores, pad)
}

/// Burn's softmax between two masks.
fn composed<B: Backend>(scores: Tensor<B, 4>, pad: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 4> {
    match pad {
        Some(pad) => {
            let [batch, heads, queries, keys] = scores.dims();
            let mask = pad.reshape([batch, 1, 1, keys]).expand([batch, heads, queries, keys]);
            softmax(scores.mask_fill(mask.clone(), MASKED_SCORE), 3).mask_fill(mask, 0.0)
        }
        None => softmax(scores, 3),
    }
}

/// `e^x` for `x ≤ 88` within 2 ulp (tests: every 1/64 over [−87, 88] and random points against
/// f64), 0 below −87.3 (where `e^x` is below the smallest normal f32), NaN for NaN. Branch-free,
/// so that loops over slices vectorise. Cody–Waite reduction `x = n ln 2 + r`, `|r| ≤ ln 2 / 2`,
/// and Cephes' degree-7 polynomial for `e^r` (its `expf`); `2^n` is written into the exponent
/// bits.
#[cfg_attr(not(feature = "train"), allow(dead_code))]
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = core::f32::consts::LOG2_E;
    // ln 2 split so that `n · LN2_HI` is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds a float of magnitude below 2^22 to an integer (to nearest),
    // which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let underflow = x < -87.336_55;
    let x = x.clamp(-87.336_55, 88.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let k = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits((k.wrapping_add(127) as u32) << 23);
    if underflow { 0.0 } else { e_r * two_n }
}

/// The fused kernels on rows of contiguous f32 (no backend in sight) and the autodiff operation
/// around them.
#[cfg(feature = "train")]
pub(super) mod fused {
    use alloc::vec::Vec;

    use burn::tensor::backend::Backend;
    use burn::tensor::{Bool, Tensor, TensorPrimitive};
    use burn_autodiff::checkpoint::base::Checkpointer;
    use burn_autodiff::checkpoint::strategy::NoCheckpointing;
    use burn_autodiff::grads::Gradients;
    use burn_autodiff::ops::{Backward, Ops, OpsKind, unary};
    use burn_ndarray::{NdArray, NdArrayTensor};

    use super::super::cpu::{LANES, Train, cast, lane_dot, map_f32, same};
    use super::exp;

    /// Softmax of one row in place, the keys where `pad` is `true` left out (weight 0; a row of
    /// padding only is all zeros).
    pub(in crate::model) fn softmax_row(row: &mut [f32], pad: Option<&[bool]>) {
        let max = match pad {
            None => row_max(row),
            Some(pad) => (row.iter().zip(pad)).fold(f32::NEG_INFINITY, |m, (&s, &p)| if !p && s > m { s } else { m }),
        };
        if max == f32::NEG_INFINITY && pad.is_some() {
            row.fill(0.0);
            return;
        }
        for v in row.iter_mut() {
            *v = exp(*v - max);
        }
        if let Some(pad) = pad {
            for (v, &p) in row.iter_mut().zip(pad) {
                if p {
                    *v = 0.0;
                }
            }
        }
        let sum = lane_dot(row, None);
        for v in row.iter_mut() {
            *v /= sum;
        }
    }

    /// The largest value of `row` (NaN ignored; −∞ for an empty row), in [`LANES`] partial
    /// maxima that vectorise (exact: the maximum does not depend on the order).
    fn row_max(row: &[f32]) -> f32 {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let chunks = row.chunks_exact(LANES);
        let rest = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m });
        for chunk in chunks {
            for (l, &v) in lanes.iter_mut().zip(chunk) {
                if v > *l {
                    *l = v;
                }
            }
        }
        lanes.iter().fold(rest, |m, &s| if s > m { s } else { m })
    }

    /// The softmax's gradient for one row in place: `g ← p ∘ (g − Σ g ∘ p)`.
    pub(in crate::model) fn softmax_row_backward(p: &[f32], g: &mut [f32]) {
        let dot = lane_dot(p, Some(g));
        for (g, &p) in g.iter_mut().zip(p) {
            *g = p * (*g - dot);
        }
    }

    /// [`softmax_row`] on every row of `scores` ([rows, keys], the rows of episode `b` being
    /// `b · rows_per_episode ..`); `pad`: [episodes, keys].
    pub(super) fn softmax_rows(scores: &mut [f32], keys: usize, rows_per_episode: usize, pad: Option<&[bool]>) {
        for (r, row) in scores.chunks_exact_mut(keys.max(1)).enumerate() {
            let b = r / rows_per_episode.max(1);
            softmax_row(row, pad.and_then(|pad| pad.get(b * keys..(b + 1) * keys)));
        }
    }

    /// [`softmax_row_backward`] on every row.
    pub(super) fn softmax_rows_backward(p: &[f32], g: &mut [f32], keys: usize) {
        for (p, g) in p.chunks_exact(keys.max(1)).zip(g.chunks_exact_mut(keys.max(1))) {
            softmax_row_backward(p, g);
        }
    }

    /// Backward step: the gradient of the scores from the weights kept by the forward pass.
    #[derive(Debug)]
    struct SoftmaxBackward;

    impl Backward<NdArray<f32>, 1> for SoftmaxBackward {
        type State = NdArrayTensor;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let weights = ops.state;
            unary::<NdArray<f32>, _>(ops.parents, ops.node, grads, |grad| scores_grad(weights, grad));
        }
    }

    /// `p ∘ (g − Σ g ∘ p)` per row, in place in `g` when both are f32 and `p` contiguous (as the
    /// forward pass makes them), else with the inner backend's operations.
    fn scores_grad(weights: NdArrayTensor, grad: NdArrayTensor) -> NdArrayTensor {
        let keys = burn::tensor::TensorMetadata::shape(&weights).last().copied().unwrap_or(0);
        let grad = match &weights {
            NdArrayTensor::F32(storage) => match storage.view().as_slice() {
                Some(p) => match map_f32(grad, |g| softmax_rows_backward(p, g, keys)) {
                    Ok(scores_grad) => return scores_grad,
                    Err(grad) => grad,
                },
                None => grad,
            },
            _ => grad,
        };
        let p = Tensor::<NdArray<f32>, 4>::from_primitive(TensorPrimitive::Float(weights));
        let g = Tensor::<NdArray<f32>, 4>::from_primitive(TensorPrimitive::Float(grad));
        let dot = (g.clone() * p.clone()).sum_dim(3);
        (p * (g - dot)).into_primitive().tensor()
    }

    type Pad<B> = Option<Tensor<B, 2, Bool>>;

    /// The fused softmax when `B` is [`Train`]; the inputs back otherwise.
    pub(super) fn autodiff_ndarray<B: Backend>(
        scores: Tensor<B, 4>,
        pad: Pad<B>,
    ) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Pad<B>)> {
        let (scores, pad) = cast::<_, (Tensor<Train, 4>, Pad<Train>)>((scores, pad))?;
        let weights = forward(scores, pad);
        Ok(same(weights))
    }

    /// The fused forward pass, recorded with [`SoftmaxBackward`]. Scores or padding stored in
    /// another type than f32 and bool (which burn-ndarray does not make here) go through Burn's
    /// composed softmax on the inner backend; the backward pass is the same.
    fn forward(scores: Tensor<Train, 4>, pad: Pad<Train>) -> Tensor<Train, 4> {
        let [_, heads, queries, keys] = scores.dims();
        let pad: Pad<NdArray<f32>> = pad.map(|p| Tensor::from_primitive(p.into_primitive()));
        let pad_values = pad.as_ref().map(|p| match p.clone().into_primitive() {
            NdArrayTensor::Bool(storage) => Some(storage.view().iter().copied().collect::<Vec<bool>>()),
            _ => None,
        });
        let composed = |primitive: NdArrayTensor| {
            let scores = Tensor::<NdArray<f32>, 4>::from_primitive(TensorPrimitive::Float(primitive));
            super::composed(scores, pad.clone()).into_primitive().tensor()
        };
        let scores = scores.into_primitive().tensor();
        let rows = heads * queries;
        let weights = match pad_values {
            Some(None) => composed(scores.primitive),
            pad => {
                let pad = pad.flatten();
                map_f32(scores.primitive, |s| softmax_rows(s, keys, rows, pad.as_deref())).unwrap_or_else(composed)
            }
        };
        let output = match SoftmaxBackward.prepare::<NoCheckpointing>([scores.node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(weights.clone(), weights),
            OpsKind::UnTracked(prep) => prep.finish(weights),
        };
        Tensor::from_primitive(TensorPrimitive::Float(output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let ulp = |v: f64| f64::from(f32::EPSILON) * v.abs().max(f64::from(f32::MIN_POSITIVE));
        let mut worst: f64 = 0.0;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, want) = (f64::from(exp(x)), libm::exp(f64::from(x)));
            worst = worst.max((got - want).abs() / ulp(want));
            x += 1.0 / 64.0;
        }
        // Arbitrary points between the grid's.
        let mut state = 0x9e37_79b9u32;
        for _ in 0..100_000 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = -87.0 + 175.0 * (state >> 8) as f32 / (1u32 << 24) as f32;
            let (got, want) = (f64::from(exp(x)), libm::exp(f64::from(x)));
            worst = worst.max((got - want).abs() / ulp(want));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp(-88.0), 0.0);
        assert_eq!(exp(-1.0e30), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[cfg(feature = "train")]
    mod fused_operation {
        use super::super::fused::autodiff_ndarray;
        use super::super::{attention_softmax, composed};
        use crate::model::cpu::Train;
        use alloc::vec::Vec;
        use burn::tensor::{Bool, Distribution, Tensor, TensorData};
        use burn_ndarray::NdArray;

        const SHAPE: [usize; 4] = [3, 2, 5, 11];

        type Pad = Option<Tensor<Train, 2, Bool>>;

        /// Padding: episode 0 none, episode 1 three keys, episode 2 every key.
        fn padding() -> Vec<bool> {
            let keys = SHAPE[3];
            (0..SHAPE[0] * keys).map(|i| matches!((i / keys, i % keys), (1, 2 | 7 | 10) | (2, _))).collect()
        }

        fn inputs(padded: bool) -> (Tensor<Train, 4>, Pad, Tensor<Train, 4>) {
            let device = Default::default();
            let scores = Tensor::<Train, 4>::random(SHAPE, Distribution::Normal(0.0, 3.0), &device).require_grad();
            let pad = padded.then(|| Tensor::from_data(TensorData::new(padding(), [SHAPE[0], SHAPE[3]]), &device));
            let upstream = Tensor::<Train, 4>::random(SHAPE, Distribution::Normal(0.0, 1.0), &device);
            (scores, pad, upstream)
        }

        fn values<const D: usize>(t: Tensor<Train, D>) -> Vec<f32> {
            t.into_data().to_vec::<f32>().unwrap_or_default()
        }

        /// The weights and the scores' gradient for the loss `Σ weights ∘ upstream`.
        fn run(
            softmax: fn(Tensor<Train, 4>, Pad) -> Tensor<Train, 4>,
            (scores, pad, upstream): (Tensor<Train, 4>, Pad, Tensor<Train, 4>),
        ) -> (Vec<f32>, Vec<f32>) {
            let weights = softmax(scores.clone(), pad);
            let grads = (weights.clone() * upstream).sum().backward();
            let grad = scores.grad(&grads).map(|g| g.into_data().to_vec::<f32>().unwrap_or_default());
            (values(weights), grad.unwrap_or_default())
        }

        #[test]
        fn only_the_cpu_training_backend_is_fused() {
            let (scores, pad, _) = inputs(true);
            assert!(autodiff_ndarray(scores, pad).is_ok());
            let inner = Tensor::<NdArray<f32>, 4>::zeros(SHAPE, &Default::default());
            assert!(autodiff_ndarray(inner, None).is_err());
            let double = Tensor::<burn_autodiff::Autodiff<NdArray<f64>>, 4>::zeros(SHAPE, &Default::default());
            assert!(autodiff_ndarray(double, None).is_err());
        }

        /// Against an f64 softmax and its gradient `p ∘ (u − Σ p ∘ u)` computed here, and against
        /// Burn's composed softmax under autodiff. Tolerance 1e-6: weights and gradients are at
        /// most a few units here, [`exp`](super::super::exp) is within 2 ulp and the sums over
        /// 11 keys add a few ulp (2e-7 at 1) more.
        #[test]
        fn the_fused_softmax_is_the_composed_one() {
            for padded in [false, true] {
                let (scores, pad, upstream) = inputs(padded);
                let fused = run(attention_softmax::<Train>, (scores.clone(), pad.clone(), upstream.clone()));
                let burn = run(composed::<Train>, (scores.clone(), pad.clone(), upstream.clone()));
                let (s, u) = (values(scores), values(upstream));
                let keys = SHAPE[3];
                let rows_per_episode = SHAPE[1] * SHAPE[2];
                let (mut weights, mut grad) = (Vec::new(), Vec::new());
                for (r, (s, u)) in s.chunks(keys).zip(u.chunks(keys)).enumerate() {
                    let masked = |j: usize| padded && padding()[(r / rows_per_episode) * keys + j];
                    let max =
                        (0..keys).filter(|&j| !masked(j)).map(|j| f64::from(s[j])).fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> =
                        (0..keys).map(|j| if masked(j) { 0.0 } else { libm::exp(f64::from(s[j]) - max) }).collect();
                    let sum: f64 = e.iter().sum();
                    let p: Vec<f64> = e.iter().map(|&e| if sum > 0.0 { e / sum } else { 0.0 }).collect();
                    let dot: f64 = p.iter().zip(u).map(|(&p, &u)| p * f64::from(u)).sum();
                    weights.extend(p.iter().copied());
                    grad.extend(p.iter().zip(u).map(|(&p, &u)| p * (f64::from(u) - dot)));
                }
                for (what, got, reference, want) in
                    [("weights", &fused.0, &burn.0, &weights), ("gradient", &fused.1, &burn.1, &grad)]
                {
                    assert_eq!(got.len(), want.len(), "{what}");
                    for (i, ((&g, &b), &w)) in got.iter().zip(reference).zip(want).enumerate() {
                        assert!((f64::from(g) - w).abs() <= 1e-6, "{what}[{i}] (padded {padded}): {g} vs f64 {w}");
                        assert!((g - b).abs() <= 1e-6, "{what}[{i}] (padded {padded}): {g} vs composed {b}");
                    }
                }
                if padded {
                    // Episode 2 is all padding: its rows attend to nothing, and get no gradient.
                    let start = 2 * rows_per_episode * keys;
                    assert!(fused.0[start..].iter().chain(&fused.1[start..]).all(|&v| v == 0.0));
                }
            }
        }
    }
}
