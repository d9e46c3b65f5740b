//! A [`Linear`] layer, `x W + b`, optionally followed by ReLU: every layer of the GPO network
//! (embedder, attention projections, feed-forward, head).
//!
//! On every backend it is burn-nn's `Linear::forward` (and Burn's `relu`). Training on the CPU
//! (`Autodiff<NdArray<f32>>`, feature `train`) runs it as one operation instead ([`fused`]): the
//! input's leading dimensions flattened into rows, one matrix product for the whole batch into
//! an output already holding the bias, ReLU applied in place; backward, one product each for the
//! input's and the weight's gradients (the transposes read as strided views) and one pass for the
//! bias's. Burn multiplies episode by episode against a broadcast weight, adds the bias in
//! another pass, and backward copies the transposed input, sums per-episode weight gradients and
//! reduces the bias gradient dimension by dimension. The fused operation is picked by the
//! backend's type at run time (model/cpu.rs); the two agree to float rounding (tests).

use burn::tensor::{Tensor, activation::relu, backend::Backend};
use burn_nn::Linear;

/// What follows the affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// Nothing.
    Identity,
    /// `max(0, ·)`.
    Relu,
}

/// `layer` applied to `x`, then `activation`.
///
/// # Shapes
/// - x: `[..., d_input]`
/// - output: `[..., d_output]`
pub(crate) fn linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    layer: &Linear<B>,
    activation: Activation,
) -> Tensor<B, D> {
    affine(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()), activation)
}

/// `x weight + bias`, then `activation`: [`linear`] with the weight and bias given as tensors
/// (e.g. a block of a layer's weight rows).
///
/// # Shapes
/// - x: `[..., d_input]`
/// - weight: `[d_input, d_output]`
/// - bias: `[d_output]`
/// - output: `[..., d_output]`
pub(crate) fn affine<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    activation: Activation,
) -> Tensor<B, D> {
    #[cfg(feature = "train")]
    let (x, weight, bias) = match fused::autodiff_ndarray(x, weight, bias, activation) {
        Ok(y) => return y,
        Err(inputs) => inputs,
    };
    composed(x, weight, bias, activation)
}

/// Burn's `linear` (what burn-nn's `Linear::forward` runs), then Burn's `relu`.
fn composed<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    activation: Activation,
) -> Tensor<B, D> {
    let y = burn::tensor::module::linear(x, weight, bias);
    match activation {
        Activation::Identity => y,
        Activation::Relu => relu(y),
    }
}

/// The fused kernels on contiguous f32 buffers (no backend in sight) and the autodiff operation
/// around them.
#[cfg(feature = "train")]
mod fused {
    use alloc::vec::Vec;

    use burn::tensor::backend::Backend;
    use burn::tensor::{DType, Tensor, TensorPrimitive};
    use burn_autodiff::checkpoint::base::Checkpointer;
    use burn_autodiff::checkpoint::strategy::NoCheckpointing;
    use burn_autodiff::grads::Gradients;
    use burn_autodiff::ops::{Backward, Ops, OpsKind};
    use burn_ndarray::{NdArray, NdArrayTensor};
    use ndarray::linalg::general_mat_mul;
    use ndarray::{ArrayView2, ArrayViewMut2};

    use super::super::cpu::{Train, cast, f32_tensor, map_f32, same, with_f32};
    use super::Activation;

    /// The sizes of one call: `rows` inputs of `d_input` features to `d_output`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Dims {
        pub rows: usize,
        pub d_input: usize,
        pub d_output: usize,
    }

    /// `max(0, y)` in place (NaN stays NaN, as Burn's).
    fn relu_in_place(y: &mut [f32]) {
        for v in y {
            if *v < 0.0 {
                *v = 0.0;
            }
        }
    }

    /// `x W + b` ([rows, d_output]), then `activation`; `None` when a buffer does not have the
    /// size `dims` gives.
    pub(super) fn forward(x: &[f32], w: &[f32], b: &[f32], dims: Dims, activation: Activation) -> Option<Vec<f32>> {
        let Dims { rows, d_input, d_output } = dims;
        let x = ArrayView2::from_shape((rows, d_input), x).ok()?;
        let w = ArrayView2::from_shape((d_input, d_output), w).ok()?;
        if b.len() != d_output {
            return None;
        }
        let mut y = Vec::with_capacity(rows * d_output);
        for _ in 0..rows {
            y.extend_from_slice(b);
        }
        general_mat_mul(1.0, &x, &w, 1.0, &mut ArrayViewMut2::from_shape((rows, d_output), &mut y[..]).ok()?);
        if activation == Activation::Relu {
            relu_in_place(&mut y);
        }
        Some(y)
    }

    /// The gradients of the input (`G Wᵀ`), the weight (`xᵀ G`) and the bias (`G`'s column
    /// sums) from the output's, `g` ([rows, d_output], ReLU's mask already applied), each only
    /// when `wanted`.
    pub(super) fn backward(
        x: &[f32],
        w: &[f32],
        g: &[f32],
        dims: Dims,
        wanted: [bool; 3],
    ) -> Option<[Option<Vec<f32>>; 3]> {
        let Dims { rows, d_input, d_output } = dims;
        let xv = ArrayView2::from_shape((rows, d_input), x).ok()?;
        let wv = ArrayView2::from_shape((d_input, d_output), w).ok()?;
        let gv = ArrayView2::from_shape((rows, d_output), g).ok()?;
        let dx = match wanted[0] {
            true => {
                let mut dx = alloc::vec![0.0f32; rows * d_input];
                general_mat_mul(
                    1.0,
                    &gv,
                    &wv.t(),
                    0.0,
                    &mut ArrayViewMut2::from_shape((rows, d_input), &mut dx[..]).ok()?,
                );
                Some(dx)
            }
            false => None,
        };
        let dw = match wanted[1] {
            true => {
                let mut dw = alloc::vec![0.0f32; d_input * d_output];
                general_mat_mul(
                    1.0,
                    &xv.t(),
                    &gv,
                    0.0,
                    &mut ArrayViewMut2::from_shape((d_input, d_output), &mut dw[..]).ok()?,
                );
                Some(dw)
            }
            false => None,
        };
        let db = wanted[2].then(|| {
            let mut db = alloc::vec![0.0f32; d_output];
            for row in g.chunks_exact(d_output.max(1)) {
                for (s, &v) in db.iter_mut().zip(row) {
                    *s += v;
                }
            }
            db
        });
        Some([dx, dw, db])
    }

    /// What the backward step keeps: the input and the weight (shared, not copied), the output
    /// when ReLU's mask needs it.
    #[derive(Debug, Clone)]
    struct State {
        x: NdArrayTensor,
        w: NdArrayTensor,
        y: Option<NdArrayTensor>,
        dims: Dims,
        x_shape: Vec<usize>,
    }

    /// Backward step: the input's, weight's and bias's gradients.
    #[derive(Debug)]
    struct LinearBackward;

    impl Backward<NdArray<f32>, 3> for LinearBackward {
        type State = State;

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let State { x, w, y, dims, x_shape } = ops.state;
            let mut grad = grads.consume::<NdArray<f32>>(&ops.node);
            if let Some(y) = &y {
                // ReLU's mask, in place in the incoming gradient.
                grad = map_f32(grad, |g| {
                    let _ = with_f32(y, |y| {
                        for (g, &y) in g.iter_mut().zip(y) {
                            if y <= 0.0 {
                                *g = 0.0;
                            }
                        }
                    });
                })
                .unwrap_or_else(|grad| grad);
            }
            let wanted = ops.parents.each_ref().map(Option::is_some);
            let computed = with_f32(&x, |x| with_f32(&w, |w| with_f32(&grad, |g| backward(x, w, g, dims, wanted))));
            let [dx, dw, db] = computed.flatten().flatten().flatten().unwrap_or_else(|| {
                unreachable!("the forward pass checked that the input and weight are f32 buffers of their shapes")
            });
            let shapes = [x_shape, alloc::vec![dims.d_input, dims.d_output], alloc::vec![dims.d_output]];
            for ((parent, grad), shape) in ops.parents.into_iter().zip([dx, dw, db]).zip(shapes) {
                if let (Some(node), Some(grad)) = (parent, grad) {
                    grads.register::<NdArray<f32>>(node.id, f32_tensor(grad, shape));
                }
            }
        }
    }

    type Inputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, 2>, Option<Tensor<B, 1>>);

    /// The fused layer when `B` is [`Train`] and the tensors are f32 (no bias: a zero bias that
    /// takes no gradient); the inputs back otherwise.
    pub(super) fn autodiff_ndarray<B: Backend, const D: usize>(
        x: Tensor<B, D>,
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
        activation: Activation,
    ) -> Result<Tensor<B, D>, Inputs<B, D>> {
        let (x, w, bias) = cast::<_, Inputs<Train, D>>((x, weight, bias))?;
        let [d_input, d_output] = w.dims();
        let x_shape = x.dims().to_vec();
        let b = bias.clone().unwrap_or_else(|| Tensor::zeros([d_output], &w.device()));
        let f32_inputs = [x.dtype(), w.dtype(), b.dtype()].iter().all(|&d| d == DType::F32);
        if D == 0 || x_shape[D - 1] != d_input || b.dims() != [d_output] || !f32_inputs {
            return Err(same((x, w, bias)));
        }
        let dims = Dims { rows: x_shape[..D - 1].iter().product(), d_input, d_output };
        match run(x.clone(), w.clone(), b, dims, x_shape, activation) {
            Some(y) => Ok(same(y)),
            None => Err(same((x, w, bias))),
        }
    }

    /// The fused forward pass, recorded with [`LinearBackward`]; `None` when a buffer does not
    /// have its shape (which burn-ndarray's tensors always have).
    fn run<const D: usize>(
        x: Tensor<Train, D>,
        w: Tensor<Train, 2>,
        b: Tensor<Train, 1>,
        dims: Dims,
        x_shape: Vec<usize>,
        activation: Activation,
    ) -> Option<Tensor<Train, D>> {
        let (x, w, b) = (x.into_primitive().tensor(), w.into_primitive().tensor(), b.into_primitive().tensor());
        let computed = with_f32(&x.primitive, |xv| {
            with_f32(&w.primitive, |wv| with_f32(&b.primitive, |bv| forward(xv, wv, bv, dims, activation)))
        });
        let mut y_shape = x_shape.clone();
        if let Some(last) = y_shape.last_mut() {
            *last = dims.d_output;
        }
        let y = f32_tensor(computed.flatten().flatten().flatten()?, y_shape);
        let prep = LinearBackward.prepare::<NoCheckpointing>([x.node, w.node, b.node]).compute_bound().stateful();
        let y = match prep {
            OpsKind::Tracked(prep) => {
                let kept = (activation == Activation::Relu).then(|| y.clone());
                prep.finish(State { x: x.primitive, w: w.primitive, y: kept, dims, x_shape }, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Some(Tensor::from_primitive(TensorPrimitive::Float(y)))
    }
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::fused::autodiff_ndarray;
    use super::{Activation, affine, composed, linear};
    use crate::model::cpu::Train;
    use alloc::vec::Vec;
    use burn::tensor::{Distribution, Tensor};
    use burn_ndarray::NdArray;
    use burn_nn::{Linear, LinearConfig};

    const SHAPE: [usize; 3] = [3, 4, 5];
    const D_OUTPUT: usize = 6;

    fn values<const D: usize>(t: Tensor<Train, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap_or_default()
    }

    /// A layer whose bias is large enough that ReLU cuts some outputs and not others.
    fn layer() -> Linear<Train> {
        LinearConfig::new(SHAPE[2], D_OUTPUT).init(&Default::default())
    }

    /// The output and the gradients of the input, weight and bias for the loss
    /// `Σ output ∘ upstream`.
    fn run(
        apply: impl Fn(Tensor<Train, 3>, &Linear<Train>, Activation) -> Tensor<Train, 3>,
        layer: &Linear<Train>,
        x: Tensor<Train, 3>,
        upstream: Tensor<Train, 3>,
        activation: Activation,
    ) -> [Vec<f32>; 4] {
        let y = apply(x.clone(), layer, activation);
        let grads = (y.clone() * upstream).sum().backward();
        let grad = |g: Option<Vec<f32>>| g.unwrap_or_default();
        let bias = layer.bias.as_ref().map(|b| b.val());
        [
            values(y),
            grad(x.grad(&grads).map(|g| g.to_data().to_vec::<f32>().unwrap_or_default())),
            grad(layer.weight.val().grad(&grads).map(|g| g.to_data().to_vec::<f32>().unwrap_or_default())),
            grad(bias.and_then(|b| b.grad(&grads)).map(|g| g.to_data().to_vec::<f32>().unwrap_or_default())),
        ]
    }

    #[test]
    fn only_the_cpu_training_backend_is_fused() {
        let device = Default::default();
        let x = Tensor::<Train, 3>::random(SHAPE, Distribution::Normal(0.0, 1.0), &device);
        let parts = |layer: &Linear<Train>| (layer.weight.val(), layer.bias.as_ref().map(|b| b.val()));
        let (w, b) = parts(&layer());
        assert!(autodiff_ndarray(x.clone(), w, b, Activation::Relu).is_ok());
        let (w, _) = parts(&layer());
        assert!(autodiff_ndarray(x, w, None, Activation::Relu).is_ok(), "no bias");
        let inner = Tensor::<NdArray<f32>, 3>::zeros(SHAPE, &device);
        let inner_layer = LinearConfig::new(SHAPE[2], D_OUTPUT).init::<NdArray<f32>>(&device);
        let (w, b) = (inner_layer.weight.val(), inner_layer.bias.map(|b| b.val()));
        assert!(autodiff_ndarray(inner, w, b, Activation::Identity).is_err());
    }

    /// Against an f64 computation of the definitions (`y = max(0, x W + b)`; for the loss
    /// `Σ y ∘ u`, with `m = u ∘ [y > 0]`: `dx = m Wᵀ`, `dW = xᵀ m`, `db = Σ_rows m`) and against
    /// burn-nn's layer and Burn's relu under autodiff. Tolerance 1e-5: values are a few units and
    /// the f32 sums run over at most 12 terms (a few ulp, 1e-6 at 4).
    #[test]
    fn the_fused_layer_is_the_composed_one() {
        let device = Default::default();
        let layer = layer();
        for activation in [Activation::Identity, Activation::Relu] {
            let x = Tensor::<Train, 3>::random(SHAPE, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let upstream =
                Tensor::<Train, 3>::random([SHAPE[0], SHAPE[1], D_OUTPUT], Distribution::Normal(0.0, 1.0), &device);
            let fused = run(linear, &layer, x.clone(), upstream.clone(), activation);
            let burn = run(
                |x, layer, activation| {
                    composed(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()), activation)
                },
                &layer,
                x.clone(),
                upstream.clone(),
                activation,
            );
            let (xs, us) = (values(x), values(upstream));
            let w = values(layer.weight.val());
            let b = layer.bias.as_ref().map(|b| values(b.val())).unwrap_or_default();
            let rows = SHAPE[0] * SHAPE[1];
            let (d_in, d_out) = (SHAPE[2], D_OUTPUT);
            let mut want = [
                alloc::vec![0.0f64; rows * d_out],
                alloc::vec![0.0; rows * d_in],
                alloc::vec![0.0; d_in * d_out],
                alloc::vec![0.0; d_out],
            ];
            for r in 0..rows {
                for o in 0..d_out {
                    let z = f64::from(b[o])
                        + (0..d_in).map(|i| f64::from(xs[r * d_in + i]) * f64::from(w[i * d_out + o])).sum::<f64>();
                    let y = if activation == Activation::Relu { z.max(0.0) } else { z };
                    let m = if activation == Activation::Relu && z <= 0.0 { 0.0 } else { f64::from(us[r * d_out + o]) };
                    want[0][r * d_out + o] = y;
                    for i in 0..d_in {
                        want[1][r * d_in + i] += m * f64::from(w[i * d_out + o]);
                        want[2][i * d_out + o] += m * f64::from(xs[r * d_in + i]);
                    }
                    want[3][o] += m;
                }
            }
            if activation == Activation::Relu {
                assert!(want[0].contains(&0.0) && want[0].iter().any(|&y| y > 0.0), "ReLU cuts some, not all");
            }
            for (what, ((got, composed), want)) in
                ["output", "input's gradient", "weight's gradient", "bias's gradient"]
                    .iter()
                    .zip(fused.iter().zip(&burn).zip(&want))
            {
                assert_eq!(got.len(), want.len(), "{what} ({activation:?})");
                for (i, ((&g, &c), &w)) in got.iter().zip(composed).zip(want).enumerate() {
                    assert!((f64::from(g) - w).abs() <= 1e-5, "{what}[{i}] ({activation:?}): {g} vs f64 {w}");
                    assert!((g - c).abs() <= 1e-5, "{what}[{i}] ({activation:?}): {g} vs composed {c}");
                }
            }
        }
    }

    /// Without a bias (the embedder's shared product, a block of a weight's rows): the output and
    /// the gradient of the whole weight, fused against composed (1e-5, as above).
    #[test]
    fn a_block_of_rows_without_bias_is_the_composed_one() {
        let device = Default::default();
        let layer = layer();
        let x = Tensor::<Train, 3>::random([SHAPE[0], SHAPE[1], 3], Distribution::Normal(0.0, 1.0), &device);
        let upstream =
            Tensor::<Train, 3>::random([SHAPE[0], SHAPE[1], D_OUTPUT], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let rows = layer.weight.val().slice([1..4, 0..D_OUTPUT]);
            let y = match fused {
                true => affine(x.clone(), rows, None, Activation::Relu),
                false => composed(x.clone(), rows, None, Activation::Relu),
            };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let grad = layer.weight.val().grad(&grads).map(|g| g.to_data().to_vec::<f32>().unwrap_or_default());
            (values(y), grad.unwrap_or_default())
        };
        let (fused, composed) = (run(true), run(false));
        assert_eq!(fused.1.len(), SHAPE[2] * D_OUTPUT);
        assert!(
            fused.1[..D_OUTPUT].iter().chain(&fused.1[4 * D_OUTPUT..]).all(|&g| g == 0.0),
            "rows outside the block"
        );
        for (got, want) in [(&fused.0, &composed.0), (&fused.1, &composed.1)] {
            assert_eq!(got.len(), want.len());
            assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-5), "{got:?} vs {want:?}");
        }
    }
}
