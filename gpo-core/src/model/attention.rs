//! Scaled dot-product attention over context keys, heads split and merged: `softmax(q kᵀ / √d_h)
//! v` per (episode, head), padding keys given zero weight and a query whose keys are all padding
//! attending to nothing.
//!
//! On every backend it is Burn's tensor operations: heads split, two batched matrix products
//! around [`attention_softmax`], heads merged. Training on the CPU (`Autodiff<NdArray<f32>>`,
//! feature `train`) runs it as one operation instead ([`fused`]): per (episode, head), the
//! products read the head's columns of the projected queries, keys and values in place (strided
//! matrix views, no head copies), stop at the episode's last real key (padding keys are never
//! multiplied), and write the head's columns of the output; the softmax runs on each row of the
//! scores while it is in cache. Backward computes the three input gradients the same way from the
//! weights kept by the forward pass. Composed, the same attention copies every head split, merge
//! and transpose into a new tensor and multiplies the padding keys. The fused operation is picked
//! by the backend's type at run time (model/cpu.rs); the two agree to float rounding (tests).

use burn::tensor::{Bool, Tensor, backend::Backend};
use burn_nn::Dropout;

use super::softmax::attention_softmax;

/// Multi-head attention of `queries` over `keys` and `values`, the projections already applied;
/// the weights pass through `dropout`.
///
/// # Shapes
/// - queries: `[batch, n_queries, d_model]`
/// - keys, values: `[batch, n_keys, d_model]`
/// - pad: `[batch, n_keys]`, `true` for padding keys (`None`: no key is padding)
/// - output: `[batch, n_queries, d_model]`, the heads merged
pub(crate) fn attention<B: Backend>(
    queries: Tensor<B, 3>,
    keys: Tensor<B, 3>,
    values: Tensor<B, 3>,
    pad: Option<Tensor<B, 2, Bool>>,
    heads: usize,
    dropout: &Dropout,
) -> Tensor<B, 3> {
    #[cfg(feature = "train")]
    let (queries, keys, values, pad) = if dropout.prob == 0.0 {
        match fused::autodiff_ndarray(queries, keys, values, pad, heads) {
            Ok(attended) => return attended,
            Err(inputs) => inputs,
        }
    } else {
        (queries, keys, values, pad)
    };
    composed(queries, keys, values, pad, heads, dropout)
}

/// Burn's operations: heads split, scaled scores, [`attention_softmax`], weighted values, heads
/// merged.
fn composed<B: Backend>(
    queries: Tensor<B, 3>,
    keys: Tensor<B, 3>,
    values: Tensor<B, 3>,
    pad: Option<Tensor<B, 2, Bool>>,
    heads: usize,
    dropout: &Dropout,
) -> Tensor<B, 3> {
    let [batch, n_queries, d_model] = queries.dims();
    let n_keys = keys.dims()[1];
    let head_dim = d_model / heads.max(1);
    let split_heads = |x: Tensor<B, 3>, n: usize| x.reshape([batch, n, heads, head_dim]).swap_dims(1, 2);
    let q = split_heads(queries, n_queries).mul_scalar(scale(head_dim));
    let k = split_heads(keys, n_keys);
    let v = split_heads(values, n_keys);
    let weights = dropout.forward(attention_softmax(q.matmul(k.swap_dims(2, 3)), pad));
    weights.matmul(v).swap_dims(1, 2).reshape([batch, n_queries, d_model])
}

/// `1 / √head_dim`, the scores' scale.
fn scale(head_dim: usize) -> f32 {
    1.0 / libm::sqrtf(head_dim as f32)
}

/// The fused kernels on contiguous f32 buffers (no backend in sight) and the autodiff operation
/// around them.
#[cfg(feature = "train")]
mod fused {
    use alloc::vec;
    use alloc::vec::Vec;

    use burn::tensor::backend::Backend;
    use burn::tensor::{Bool, DType, Tensor, TensorPrimitive};
    use burn_autodiff::checkpoint::base::Checkpointer;
    use burn_autodiff::checkpoint::strategy::NoCheckpointing;
    use burn_autodiff::grads::Gradients;
    use burn_autodiff::ops::{Backward, Ops, OpsKind};
    use burn_ndarray::{NdArray, NdArrayTensor};
    use ndarray::linalg::general_mat_mul;
    use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, s};

    use super::super::cpu::{Train, cast, f32_tensor, same, with_f32};
    use super::super::softmax::fused::{softmax_row, softmax_row_backward};

    /// The sizes of one attention call.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Dims {
        /// Episodes.
        pub batch: usize,
        /// Queries per episode.
        pub queries: usize,
        /// Keys (and values) per episode, padding included.
        pub keys: usize,
        /// Width of the queries, keys, values and output.
        pub d_model: usize,
        /// Heads; divides `d_model`.
        pub heads: usize,
    }

    impl Dims {
        fn head_dim(&self) -> usize {
            self.d_model / self.heads.max(1)
        }
    }

    /// The episodes' key counts up to and including their last real key (`keys` without
    /// padding; 0 for an episode of padding only): the keys the products read.
    pub(super) fn real_keys(pad: Option<&[bool]>, dims: Dims) -> Vec<usize> {
        (0..dims.batch)
            .map(|b| match pad.and_then(|pad| pad.get(b * dims.keys..(b + 1) * dims.keys)) {
                Some(pad) => pad.iter().rposition(|&p| !p).map_or(0, |last| last + 1),
                None => dims.keys,
            })
            .collect()
    }

    /// What the forward pass gives: the output, [batch, queries, d_model], and the attention
    /// weights kept for the backward pass, per episode `b` and head a [queries × `real[b]`] block
    /// (episodes in order, heads in order within each).
    #[derive(Debug, Clone)]
    pub(super) struct Forward {
        pub output: Vec<f32>,
        pub weights: Vec<f32>,
        pub real: Vec<usize>,
    }

    /// The three input gradients, each in its input's layout.
    #[derive(Debug, Clone)]
    pub(super) struct Gradients3 {
        pub queries: Vec<f32>,
        pub keys: Vec<f32>,
        pub values: Vec<f32>,
    }

    /// `[n, d_model]` episode views of the three inputs; `None` when a buffer does not have its
    /// shape.
    fn views<'a>(
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
        dims: Dims,
    ) -> Option<(ArrayView3<'a, f32>, ArrayView3<'a, f32>, ArrayView3<'a, f32>)> {
        let Dims { batch, queries, keys, d_model, .. } = dims;
        Some((
            ArrayView3::from_shape((batch, queries, d_model), q).ok()?,
            ArrayView3::from_shape((batch, keys, d_model), k).ok()?,
            ArrayView3::from_shape((batch, keys, d_model), v).ok()?,
        ))
    }

    /// The attention's forward pass; `pad`: [batch, keys]. `None` when a buffer does not have
    /// the size `dims` gives.
    pub(super) fn forward(q: &[f32], k: &[f32], v: &[f32], pad: Option<&[bool]>, dims: Dims) -> Option<Forward> {
        let (q, k, v) = views(q, k, v, dims)?;
        let Dims { batch, queries, keys, d_model, heads } = dims;
        let head_dim = dims.head_dim();
        let scale = super::scale(head_dim);
        let real = real_keys(pad, dims);
        let mut output = vec![0.0f32; batch * queries * d_model];
        let mut out = ArrayViewMut3::from_shape((batch, queries, d_model), &mut output[..]).ok()?;
        // Each block's scores are computed, normalised and used in a scratch block that stays in
        // cache, then appended to the kept weights (written once, never zero-filled first).
        let mut weights = Vec::with_capacity(queries * heads * real.iter().sum::<usize>());
        let mut scratch = vec![0.0f32; queries * real.iter().copied().max().unwrap_or(0)];
        for (b, &n) in real.iter().enumerate().filter(|&(_, &n)| n > 0) {
            let pad = pad.and_then(|pad| pad.get(b * keys..b * keys + n));
            for h in 0..heads {
                let columns = h * head_dim..(h + 1) * head_dim;
                let block = scratch.get_mut(..queries * n)?;
                let mut p = ArrayViewMut2::from_shape((queries, n), &mut block[..]).ok()?;
                let k_h = k.slice(s![b, 0..n, columns.clone()]);
                general_mat_mul(scale, &q.slice(s![b, .., columns.clone()]), &k_h.t(), 0.0, &mut p);
                for row in block.chunks_exact_mut(n) {
                    softmax_row(row, pad);
                }
                let p = ArrayView2::from_shape((queries, n), &block[..]).ok()?;
                let mut out_h = out.slice_mut(s![b, .., columns.clone()]);
                general_mat_mul(1.0, &p, &v.slice(s![b, 0..n, columns]), 0.0, &mut out_h);
                weights.extend_from_slice(block);
            }
        }
        Some(Forward { output, weights, real })
    }

    /// The attention's backward pass: the inputs' gradients from the output's, `grad`
    /// ([batch, queries, d_model]), and what [`forward`] kept. Per (episode, head), with `P` the
    /// weights and `G` the output gradient: `dV = Pᵀ G`, `dS = P ∘ (G Vᵀ − rowsum(P ∘ G Vᵀ))`,
    /// `dQ = dS K / √d_h`, `dK = dSᵀ Q / √d_h`; padding keys past the last real one get 0.
    pub(super) fn backward(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        kept: (&[f32], &[usize]),
        grad: &[f32],
        dims: Dims,
    ) -> Option<Gradients3> {
        let (q, k, v) = views(q, k, v, dims)?;
        let (weights, real) = kept;
        let Dims { batch, queries, keys, d_model, heads } = dims;
        let head_dim = dims.head_dim();
        let scale = super::scale(head_dim);
        let g = ArrayView3::from_shape((batch, queries, d_model), grad).ok()?;
        let mut grads = Gradients3 {
            queries: vec![0.0; batch * queries * d_model],
            keys: vec![0.0; batch * keys * d_model],
            values: vec![0.0; batch * keys * d_model],
        };
        let mut dq = ArrayViewMut3::from_shape((batch, queries, d_model), &mut grads.queries[..]).ok()?;
        let mut dk = ArrayViewMut3::from_shape((batch, keys, d_model), &mut grads.keys[..]).ok()?;
        let mut dv = ArrayViewMut3::from_shape((batch, keys, d_model), &mut grads.values[..]).ok()?;
        let mut scratch = vec![0.0f32; queries * real.iter().copied().max().unwrap_or(0)];
        let mut blocks = weights;
        for (b, &n) in real.iter().enumerate().filter(|&(_, &n)| n > 0) {
            for h in 0..heads {
                let columns = h * head_dim..(h + 1) * head_dim;
                let (block, remainder) = blocks.split_at_checked(queries * n)?;
                blocks = remainder;
                let p = ArrayView2::from_shape((queries, n), block).ok()?;
                let g_h = g.slice(s![b, .., columns.clone()]);
                let mut dv_h = dv.slice_mut(s![b, 0..n, columns.clone()]);
                general_mat_mul(1.0, &p.t(), &g_h, 0.0, &mut dv_h);
                let ds_buffer = scratch.get_mut(..queries * n)?;
                let mut ds = ArrayViewMut2::from_shape((queries, n), &mut ds_buffer[..]).ok()?;
                general_mat_mul(1.0, &g_h, &v.slice(s![b, 0..n, columns.clone()]).t(), 0.0, &mut ds);
                for (p, ds) in block.chunks_exact(n).zip(ds_buffer.chunks_exact_mut(n)) {
                    softmax_row_backward(p, ds);
                }
                let ds = ArrayView2::from_shape((queries, n), &ds_buffer[..]).ok()?;
                let mut dq_h = dq.slice_mut(s![b, .., columns.clone()]);
                general_mat_mul(scale, &ds, &k.slice(s![b, 0..n, columns.clone()]), 0.0, &mut dq_h);
                let mut dk_h = dk.slice_mut(s![b, 0..n, columns.clone()]);
                general_mat_mul(scale, &ds.t(), &q.slice(s![b, .., columns]), 0.0, &mut dk_h);
            }
        }
        Some(grads)
    }

    /// What the backward step keeps: the inputs (shared, not copied), the weights and sizes.
    #[derive(Debug, Clone)]
    struct State {
        inputs: [NdArrayTensor; 3],
        weights: Vec<f32>,
        real: Vec<usize>,
        dims: Dims,
    }

    /// Backward step: the three inputs' gradients.
    #[derive(Debug)]
    struct AttentionBackward;

    impl Backward<NdArray<f32>, 3> for AttentionBackward {
        type State = State;

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let State { inputs: [q, k, v], weights, real, dims } = ops.state;
            let grad = grads.consume::<NdArray<f32>>(&ops.node);
            let computed = with_f32(&q, |q| {
                with_f32(&k, |k| with_f32(&v, |v| with_f32(&grad, |g| backward(q, k, v, (&weights, &real), g, dims))))
            });
            let Gradients3 { queries, keys, values } =
                computed.flatten().flatten().flatten().flatten().unwrap_or_else(|| {
                    unreachable!("the forward pass checked that the inputs are f32 buffers of their shapes")
                });
            let shapes = [
                (queries, [dims.batch, dims.queries, dims.d_model]),
                (keys, [dims.batch, dims.keys, dims.d_model]),
                (values, [dims.batch, dims.keys, dims.d_model]),
            ];
            for (parent, (grad, shape)) in ops.parents.into_iter().zip(shapes) {
                if let Some(node) = parent {
                    grads.register::<NdArray<f32>>(node.id, f32_tensor(grad, shape.to_vec()));
                }
            }
        }
    }

    type Pad<B> = Option<Tensor<B, 2, Bool>>;
    type Inputs<B> = (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 3>, Pad<B>);

    /// The fused attention when `B` is [`Train`] and the inputs are f32; the inputs back
    /// otherwise.
    pub(super) fn autodiff_ndarray<B: Backend>(
        queries: Tensor<B, 3>,
        keys: Tensor<B, 3>,
        values: Tensor<B, 3>,
        pad: Pad<B>,
        heads: usize,
    ) -> Result<Tensor<B, 3>, Inputs<B>> {
        let (q, k, v, pad) = cast::<_, Inputs<Train>>((queries, keys, values, pad))?;
        let f32_inputs = [&q, &k, &v].iter().all(|t| t.dtype() == DType::F32);
        let pad_values = match &pad {
            None => Some(None),
            Some(p) => match p.clone().into_primitive() {
                NdArrayTensor::Bool(storage) => Some(Some(storage.view().iter().copied().collect::<Vec<bool>>())),
                _ => None,
            },
        };
        let [batch, queries, d_model] = q.dims();
        let dims = Dims { batch, queries, keys: k.dims()[1], d_model, heads };
        let usable = heads > 0
            && d_model.is_multiple_of(heads)
            && k.dims() == v.dims()
            && k.dims()[0] == batch
            && k.dims()[2] == d_model;
        match pad_values {
            Some(pad_values) if f32_inputs && usable => {
                match run(q.clone(), k.clone(), v.clone(), pad_values.as_deref(), dims) {
                    Some(attended) => Ok(same(attended)),
                    None => Err(same((q, k, v, pad))),
                }
            }
            _ => Err(same((q, k, v, pad))),
        }
    }

    /// The fused forward pass, recorded with [`AttentionBackward`]; `None` when a buffer does not
    /// have its shape (which burn-ndarray's tensors always have).
    fn run(
        q: Tensor<Train, 3>,
        k: Tensor<Train, 3>,
        v: Tensor<Train, 3>,
        pad: Option<&[bool]>,
        dims: Dims,
    ) -> Option<Tensor<Train, 3>> {
        let (q, k, v) = (q.into_primitive().tensor(), k.into_primitive().tensor(), v.into_primitive().tensor());
        let computed = with_f32(&q.primitive, |qv| {
            with_f32(&k.primitive, |kv| with_f32(&v.primitive, |vv| forward(qv, kv, vv, pad, dims)))
        });
        let Forward { output, weights, real } = computed.flatten().flatten().flatten()?;
        let output = f32_tensor(output, alloc::vec![dims.batch, dims.queries, dims.d_model]);
        let prep = AttentionBackward.prepare::<NoCheckpointing>([q.node, k.node, v.node]).compute_bound().stateful();
        let output = match prep {
            OpsKind::Tracked(prep) => {
                let inputs = [q.primitive, k.primitive, v.primitive];
                prep.finish(State { inputs, weights, real, dims }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        Some(Tensor::from_primitive(TensorPrimitive::Float(output)))
    }
}

#[cfg(all(test, feature = "train"))]
mod tests {
    mod fused_operation {
        use super::super::fused::{Dims, autodiff_ndarray, real_keys};
        use super::super::{attention, composed};
        use crate::model::cpu::Train;
        use alloc::vec::Vec;
        use burn::tensor::{Bool, Distribution, Tensor, TensorData};
        use burn_ndarray::NdArray;
        use burn_nn::{Dropout, DropoutConfig};

        const BATCH: usize = 4;
        const QUERIES: usize = 5;
        const KEYS: usize = 7;
        const D_MODEL: usize = 6;
        const HEADS: usize = 2;

        type Pad = Option<Tensor<Train, 2, Bool>>;
        type Inputs = (Tensor<Train, 3>, Tensor<Train, 3>, Tensor<Train, 3>, Pad, Tensor<Train, 3>);

        /// Padding: episode 0 none, episode 1 a key inside and two at the end, episode 2 every
        /// key, episode 3 the last one.
        fn padding() -> Vec<bool> {
            (0..BATCH * KEYS).map(|i| matches!((i / KEYS, i % KEYS), (1, 2 | 5 | 6) | (2, _) | (3, 6))).collect()
        }

        fn inputs(padded: bool) -> Inputs {
            let device = Default::default();
            let random = |n: usize| {
                Tensor::<Train, 3>::random([BATCH, n, D_MODEL], Distribution::Normal(0.0, 1.5), &device).require_grad()
            };
            let pad = padded.then(|| Tensor::from_data(TensorData::new(padding(), [BATCH, KEYS]), &device));
            let upstream =
                Tensor::<Train, 3>::random([BATCH, QUERIES, D_MODEL], Distribution::Normal(0.0, 1.0), &device);
            (random(QUERIES), random(KEYS), random(KEYS), pad, upstream)
        }

        fn values<const D: usize>(t: Tensor<Train, D>) -> Vec<f32> {
            t.into_data().to_vec::<f32>().unwrap_or_default()
        }

        /// The output and the gradients of the queries, keys and values for the loss
        /// `Σ output ∘ upstream`.
        fn run(
            attend: impl Fn(Tensor<Train, 3>, Tensor<Train, 3>, Tensor<Train, 3>, Pad) -> Tensor<Train, 3>,
            (q, k, v, pad, upstream): Inputs,
        ) -> [Vec<f32>; 4] {
            let output = attend(q.clone(), k.clone(), v.clone(), pad);
            let grads = (output.clone() * upstream).sum().backward();
            let grad = |t: &Tensor<Train, 3>| t.grad(&grads).map(|g| g.to_data().to_vec::<f32>().unwrap_or_default());
            [values(output), grad(&q).unwrap_or_default(), grad(&k).unwrap_or_default(), grad(&v).unwrap_or_default()]
        }

        /// The attention and its input gradients in f64, from the definitions: per episode and
        /// head, `S = q kᵀ / √d_h` over the real keys, `P = softmax(S)`, `O = P v`; for the loss
        /// `Σ O ∘ U`: `dV = Pᵀ U`, `dP = U vᵀ`, `dS = P ∘ (dP − Σ_j P dP)`, `dQ = dS k / √d_h`,
        /// `dK = dSᵀ q / √d_h`.
        fn reference(q: &[f32], k: &[f32], v: &[f32], pad: Option<&[bool]>, u: &[f32]) -> [Vec<f64>; 4] {
            let dh = D_MODEL / HEADS;
            let scale = 1.0 / (dh as f64).sqrt();
            let at = |x: &[f32], b: usize, n: usize, i: usize, c: usize| f64::from(x[(b * n + i) * D_MODEL + c]);
            let mut out = alloc::vec![0.0; BATCH * QUERIES * D_MODEL];
            let mut dq = out.clone();
            let mut dk = alloc::vec![0.0; BATCH * KEYS * D_MODEL];
            let mut dv = dk.clone();
            for b in 0..BATCH {
                let real: Vec<usize> = (0..KEYS).filter(|&j| !pad.is_some_and(|p| p[b * KEYS + j])).collect();
                for h in 0..HEADS {
                    let cols = h * dh..(h + 1) * dh;
                    for i in 0..QUERIES {
                        let s: Vec<f64> = real
                            .iter()
                            .map(|&j| {
                                cols.clone().map(|c| at(q, b, QUERIES, i, c) * at(k, b, KEYS, j, c)).sum::<f64>()
                                    * scale
                            })
                            .collect();
                        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let e: Vec<f64> = s.iter().map(|&s| (s - max).exp()).collect();
                        let sum: f64 = e.iter().sum();
                        let p: Vec<f64> = e.iter().map(|&e| e / sum).collect();
                        let dp: Vec<f64> = real
                            .iter()
                            .map(|&j| cols.clone().map(|c| at(u, b, QUERIES, i, c) * at(v, b, KEYS, j, c)).sum())
                            .collect();
                        let dot: f64 = p.iter().zip(&dp).map(|(p, d)| p * d).sum();
                        for (r, &j) in real.iter().enumerate() {
                            let ds = p[r] * (dp[r] - dot) * scale;
                            for c in cols.clone() {
                                out[(b * QUERIES + i) * D_MODEL + c] += p[r] * at(v, b, KEYS, j, c);
                                dv[(b * KEYS + j) * D_MODEL + c] += p[r] * at(u, b, QUERIES, i, c);
                                dq[(b * QUERIES + i) * D_MODEL + c] += ds * at(k, b, KEYS, j, c);
                                dk[(b * KEYS + j) * D_MODEL + c] += ds * at(q, b, QUERIES, i, c);
                            }
                        }
                    }
                }
            }
            [out, dq, dk, dv]
        }

        fn no_dropout() -> Dropout {
            DropoutConfig::new(0.0).init()
        }

        #[test]
        fn only_the_cpu_training_backend_is_fused() {
            let (q, k, v, pad, _) = inputs(true);
            assert!(autodiff_ndarray(q, k, v, pad, HEADS).is_ok());
            let inner = || Tensor::<NdArray<f32>, 3>::zeros([BATCH, KEYS, D_MODEL], &Default::default());
            assert!(autodiff_ndarray(inner(), inner(), inner(), None, HEADS).is_err());
            let double = || {
                Tensor::<burn_autodiff::Autodiff<NdArray<f64>>, 3>::zeros([BATCH, KEYS, D_MODEL], &Default::default())
            };
            assert!(autodiff_ndarray(double(), double(), double(), None, HEADS).is_err());
        }

        #[test]
        fn the_products_stop_at_each_episodes_last_real_key() {
            let dims = Dims { batch: BATCH, queries: QUERIES, keys: KEYS, d_model: D_MODEL, heads: HEADS };
            assert_eq!(real_keys(Some(&padding()), dims), [7, 5, 0, 6]);
            assert_eq!(real_keys(None, dims), [7; BATCH]);
        }

        /// Against the f64 definitions and against Burn's composed attention under autodiff.
        /// Tolerance 1e-5: outputs and gradients are a few units here; the f32 products sum at
        /// most 7 terms of a few units (a few ulp, 1e-6 at 4), the softmax adds 2 ulp.
        #[test]
        fn the_fused_attention_is_the_composed_one() {
            for padded in [false, true] {
                let inputs = inputs(padded);
                let (q, k, v, pad, u) = inputs.clone();
                let dropout = no_dropout();
                let fused = run(|q, k, v, pad| attention(q, k, v, pad, HEADS, &dropout), inputs.clone());
                let burn = run(|q, k, v, pad| composed(q, k, v, pad, HEADS, &dropout), inputs);
                let pad = pad.map(|p| p.into_data().to_vec::<bool>().unwrap_or_default());
                let want = reference(&values(q), &values(k), &values(v), pad.as_deref(), &values(u));
                for (what, ((got, composed), want)) in
                    ["output", "queries' gradient", "keys' gradient", "values' gradient"]
                        .iter()
                        .zip(fused.iter().zip(&burn).zip(&want))
                {
                    assert_eq!(got.len(), want.len(), "{what}");
                    for (i, ((&g, &c), &w)) in got.iter().zip(composed).zip(want).enumerate() {
                        assert!((f64::from(g) - w).abs() <= 1e-5, "{what}[{i}] (padded {padded}): {g} vs f64 {w}");
                        assert!((g - c).abs() <= 1e-5, "{what}[{i}] (padded {padded}): {g} vs composed {c}");
                    }
                }
                if padded {
                    // Episode 2 is all padding: its queries attend to nothing and pass no gradient.
                    let episode = |x: &Vec<f32>, n: usize| x[2 * n * D_MODEL..3 * n * D_MODEL].to_vec();
                    assert!(episode(&fused[0], QUERIES).iter().all(|&x| x == 0.0));
                    assert!(episode(&fused[2], KEYS).iter().chain(&episode(&fused[3], KEYS)).all(|&x| x == 0.0));
                }
            }
        }

        /// With dropout on the weights the composed path runs (dropout sits between the softmax
        /// and the values' product, which the fused operation does not split): the weights are
        /// dropped, so the output is not the fused one's.
        #[test]
        fn dropout_takes_the_composed_path() {
            let (q, k, v, pad, _) = inputs(true);
            let dropped =
                attention(q.clone(), k.clone(), v.clone(), pad.clone(), HEADS, &DropoutConfig::new(0.5).init());
            let kept = attention(q, k, v, pad, HEADS, &no_dropout());
            assert_eq!(dropped.dims(), [BATCH, QUERIES, D_MODEL]);
            assert_ne!(values(dropped), values(kept));
        }
    }
}
