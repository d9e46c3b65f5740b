//! LayerNorm over the last dimension, as `torch.nn.LayerNorm` and burn-nn's `LayerNorm` (whose
//! parameters, names and record it keeps): `y = (x − μ) / √(σ² + ε) · γ + β` for each row `x`.
//!
//! On every backend it is Burn's `layer_norm`. Training on the CPU (`Autodiff<NdArray<f32>>`,
//! feature `train`) runs it as one operation instead: one pass forward (each row's mean, variance,
//! normalised values and output while it sits in L1; the normalised values and `σ` kept) and one
//! pass backward (`dx = (γ∘g − mean(γ∘g) − x̂ · mean(γ∘g∘x̂)) / σ`, `dγ = Σ g∘x̂`, `dβ = Σ g`), where
//! Burn composes nine tensor operations forward and about fifteen backward, each a pass over
//! memory. The two agree to float rounding (tests).

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::{Tensor, TensorPrimitive, backend::Backend};

/// Configuration of a [`LayerNorm`].
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    /// Width of the normalised rows.
    pub d_model: usize,
    /// Added to the variance (PyTorch's default).
    #[config(default = 1e-5)]
    pub epsilon: f64,
}

impl LayerNormConfig {
    /// Builds the norm on `device`: `γ = 1`, `β = 0`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> LayerNorm<B> {
        LayerNorm {
            gamma: Initializer::Ones.init([self.d_model], device),
            beta: Some(Initializer::Zeros.init([self.d_model], device)),
            epsilon: self.epsilon,
        }
    }
}

/// LayerNorm with a scale `γ` and a shift `β` (burn-nn's fields: the same record and names).
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale, `[d_model]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift, `[d_model]`.
    pub beta: Option<Param<Tensor<B, 1>>>,
    epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Normalises each row of `input` over its last dimension.
    ///
    /// # Shapes
    /// - input: `[..., d_model]`
    /// - output: the input's
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        let gamma = self.gamma.val();
        let beta = self.beta.as_ref().map(Param::val);
        #[cfg(feature = "train")]
        let (input, gamma, beta) = match fused::autodiff_ndarray(input, gamma, beta, self.epsilon) {
            Ok(output) => return output,
            Err(inputs) => inputs,
        };
        composed(input, gamma, beta, self.epsilon)
    }
}

/// Burn's `layer_norm`.
fn composed<B: Backend, const D: usize>(
    input: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    epsilon: f64,
) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
        input.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.map(|b| b.into_primitive().tensor()),
        epsilon,
    )))
}

/// The fused kernels on rows of contiguous f32 and the autodiff operation around them.
#[cfg(feature = "train")]
mod fused {
    use alloc::vec;
    use alloc::vec::Vec;

    use burn::tensor::ops::FloatTensorOps;
    use burn::tensor::{Tensor, TensorData, TensorPrimitive, backend::Backend};
    use burn_autodiff::checkpoint::base::Checkpointer;
    use burn_autodiff::checkpoint::strategy::NoCheckpointing;
    use burn_autodiff::grads::Gradients;
    use burn_autodiff::ops::{Backward, Ops, OpsKind};
    use burn_ndarray::{NdArray, NdArrayTensor};

    use super::super::cpu::{Train, cast, f32_tensor, lane_dot, map_f32, same, with_f32};

    /// Normalises the rows of `x` ([rows, d]): returns `x̂`, `y = x̂ · γ + β` and each row's `σ`.
    pub(super) fn norm_rows(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let d = gamma.len().max(1);
        let (mut normalized, mut output) = (Vec::with_capacity(x.len()), Vec::with_capacity(x.len()));
        let mut sigma = Vec::with_capacity(x.len() / d);
        let mut row_buffer = vec![0.0f32; d];
        for row in x.chunks_exact(d) {
            let mean = lane_dot(row, None) / d as f32;
            for (c, &v) in row_buffer.iter_mut().zip(row) {
                *c = v - mean;
            }
            let centered: &[f32] = &row_buffer;
            let s = libm::sqrtf(lane_dot(centered, Some(centered)) / d as f32 + epsilon);
            let start = normalized.len();
            normalized.extend(centered.iter().map(|&c| c / s));
            output.extend(normalized[start..].iter().zip(gamma).zip(beta).map(|((&n, &g), &b)| n * g + b));
            sigma.push(s);
        }
        (normalized, output, sigma)
    }

    /// The gradient of [`norm_rows`]' output: `g` ([rows, d]) becomes the input's gradient in
    /// place; returns `(dγ, dβ)`.
    pub(super) fn norm_rows_backward(
        normalized: &[f32],
        sigma: &[f32],
        gamma: &[f32],
        g: &mut [f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let d = gamma.len().max(1);
        let (mut d_gamma, mut d_beta) = (vec![0.0f32; d], vec![0.0f32; d]);
        let mut scaled = vec![0.0f32; d];
        for ((n, g), &s) in normalized.chunks_exact(d).zip(g.chunks_exact_mut(d)).zip(sigma) {
            for ((((dg, db), sc), (&n, &g)), &gamma) in
                d_gamma.iter_mut().zip(d_beta.iter_mut()).zip(scaled.iter_mut()).zip(n.iter().zip(g.iter())).zip(gamma)
            {
                *dg += g * n;
                *db += g;
                *sc = g * gamma;
            }
            let mean = lane_dot(&scaled, None) / d as f32;
            let mean_n = lane_dot(&scaled, Some(n)) / d as f32;
            for ((g, &sc), &n) in g.iter_mut().zip(&scaled).zip(n) {
                *g = (sc - mean - n * mean_n) / s;
            }
        }
        (d_gamma, d_beta)
    }

    type Inputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, 1>, Option<Tensor<B, 1>>);

    /// The fused LayerNorm when `B` is [`Train`]; the inputs back otherwise.
    pub(super) fn autodiff_ndarray<B: Backend, const D: usize>(
        input: Tensor<B, D>,
        gamma: Tensor<B, 1>,
        beta: Option<Tensor<B, 1>>,
        epsilon: f64,
    ) -> Result<Tensor<B, D>, Inputs<B, D>> {
        let (input, gamma, beta) = cast::<Inputs<B, D>, Inputs<Train, D>>((input, gamma, beta))?;
        Ok(same(forward(input, gamma, beta, epsilon)))
    }

    /// `f` on a tensor's f32 values, borrowed from its storage; `None` when they are not f32.
    fn with_values<const D: usize, R>(tensor: &Tensor<Train, D>, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
        with_f32(&tensor.clone().into_primitive().tensor().primitive, f)
    }

    fn values<const D: usize>(tensor: &Tensor<Train, D>) -> Option<Vec<f32>> {
        with_values(tensor, <[f32]>::to_vec)
    }

    /// The fused forward pass, recorded with [`NormBackward`]; inputs stored in another type than
    /// f32 (which burn-ndarray does not make here) or without `β` go through Burn's `layer_norm`.
    fn forward<const D: usize>(
        input: Tensor<Train, D>,
        gamma: Tensor<Train, 1>,
        beta: Option<Tensor<Train, 1>>,
        epsilon: f64,
    ) -> Tensor<Train, D> {
        let Some(beta) = beta else { return super::composed(input, gamma, None, epsilon) };
        let shape = input.dims();
        let (Some(gamma_values), Some(beta_values)) = (values(&gamma), values(&beta)) else {
            return super::composed(input, gamma, Some(beta), epsilon);
        };
        if gamma_values.len() != shape[D - 1] || beta_values.len() != gamma_values.len() {
            return super::composed(input, gamma, Some(beta), epsilon);
        }
        let Some((normalized, output, sigma)) =
            with_values(&input, |x| norm_rows(x, &gamma_values, &beta_values, epsilon as f32))
        else {
            return super::composed(input, gamma, Some(beta), epsilon);
        };
        let output = f32_tensor(output, shape.to_vec());
        let nodes = [
            input.into_primitive().tensor().node,
            gamma.into_primitive().tensor().node,
            beta.into_primitive().tensor().node,
        ];
        let output = match NormBackward.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((normalized, sigma, gamma_values), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        Tensor::from_primitive(TensorPrimitive::Float(output))
    }

    /// Backward step: the gradients of the input, `γ` and `β` from `x̂`, `σ` and `γ` kept by the
    /// forward pass.
    #[derive(Debug)]
    struct NormBackward;

    impl Backward<NdArray<f32>, 3> for NormBackward {
        type State = (Vec<f32>, Vec<f32>, Vec<f32>);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [input, gamma, beta] = ops.parents;
            let grad = grads.consume::<NdArray<f32>>(&ops.node);
            let (normalized, sigma, gamma_values) = ops.state;
            let mut sums = None;
            let (d_input, (d_gamma, d_beta)) =
                match map_f32(grad, |g| sums = Some(norm_rows_backward(&normalized, &sigma, &gamma_values, g))) {
                    Ok(d_input) => {
                        let (d_gamma, d_beta) = sums.unwrap_or_default();
                        let d = gamma_values.len();
                        (d_input, (f32_tensor(d_gamma, vec![d]), f32_tensor(d_beta, vec![d])))
                    }
                    Err(grad) => composed_backward(normalized, sigma, gamma_values, grad),
                };
            for (node, grad) in [(input, d_input), (gamma, d_gamma), (beta, d_beta)] {
                if let Some(node) = node {
                    grads.register::<NdArray<f32>>(node.id, grad);
                }
            }
        }
    }

    /// The same gradients with the inner backend's operations, for a gradient not stored as f32.
    fn composed_backward(
        normalized: Vec<f32>,
        sigma: Vec<f32>,
        gamma: Vec<f32>,
        grad: NdArrayTensor,
    ) -> (NdArrayTensor, (NdArrayTensor, NdArrayTensor)) {
        type I = NdArray<f32>;
        let device = Default::default();
        let (rows, d) = (sigma.len(), gamma.len());
        let shape = burn::tensor::TensorMetadata::shape(&grad);
        let g = Tensor::<I, 2>::from_primitive(TensorPrimitive::Float(I::float_reshape(grad, [rows, d].into())));
        let n = Tensor::<I, 2>::from_data(TensorData::new(normalized, [rows, d]), &device);
        let s = Tensor::<I, 2>::from_data(TensorData::new(sigma, [rows, 1]), &device);
        let scale = Tensor::<I, 2>::from_data(TensorData::new(gamma, [1, d]), &device);
        let d_gamma = (g.clone() * n.clone()).sum_dim(0).reshape([d]);
        let d_beta = g.clone().sum_dim(0).reshape([d]);
        let scaled = g * scale;
        let d_input = (scaled.clone() - scaled.clone().mean_dim(1) - n.clone() * (scaled * n).mean_dim(1)) / s;
        let d_input = I::float_reshape(d_input.into_primitive().tensor(), shape);
        (d_input, (d_gamma.into_primitive().tensor(), d_beta.into_primitive().tensor()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_burn_nns_layer_norm() {
        type B = burn_ndarray::NdArray<f32>;
        let device = Default::default();
        let ours = LayerNormConfig::new(6).with_epsilon(1e-3).init::<B>(&device);
        let theirs = burn_nn::LayerNormConfig::new(6).with_epsilon(1e-3).init::<B>(&device);
        let x = Tensor::<B, 3>::random([2, 3, 6], burn::tensor::Distribution::Normal(1.0, 2.0), &device);
        assert_eq!(ours.forward(x.clone()).into_data(), theirs.forward(x).into_data(), "bit for bit");
    }

    #[cfg(feature = "train")]
    mod fused_operation {
        use super::super::fused::autodiff_ndarray;
        use super::super::{LayerNormConfig, composed};
        use crate::model::cpu::Train;
        use alloc::vec::Vec;
        use burn::module::Param;
        use burn::tensor::{Distribution, Tensor};
        use burn_ndarray::NdArray;

        /// 20 wide: the sums' 8 lanes and a remainder.
        const SHAPE: [usize; 3] = [3, 5, 20];
        const EPSILON: f64 = 1e-5;

        fn values<const D: usize>(t: Tensor<Train, D>) -> Vec<f32> {
            t.into_data().to_vec::<f32>().unwrap_or_default()
        }

        struct Run {
            output: Vec<f32>,
            d_input: Vec<f32>,
            d_gamma: Vec<f32>,
            d_beta: Vec<f32>,
        }

        /// The output and the gradients of the loss `Σ output ∘ upstream`.
        fn run(
            fused: bool,
            x: &Tensor<Train, 3>,
            gamma: &Tensor<Train, 1>,
            beta: &Tensor<Train, 1>,
            upstream: &Tensor<Train, 3>,
        ) -> Run {
            let (x, gamma, beta) =
                (x.clone().require_grad(), gamma.clone().require_grad(), beta.clone().require_grad());
            let output = match fused {
                true => autodiff_ndarray(x.clone(), gamma.clone(), Some(beta.clone()), EPSILON)
                    .ok()
                    .unwrap_or_else(|| x.clone()),
                false => composed(x.clone(), gamma.clone(), Some(beta.clone()), EPSILON),
            };
            let grads = (output.clone() * upstream.clone()).sum().backward();
            let grad = |t: &Tensor<Train, 1>| {
                t.grad(&grads).map(|g| g.into_data().to_vec::<f32>().unwrap_or_default()).unwrap_or_default()
            };
            Run {
                output: values(output),
                d_input: x.grad(&grads).map(|g| g.into_data().to_vec::<f32>().unwrap_or_default()).unwrap_or_default(),
                d_gamma: grad(&gamma),
                d_beta: grad(&beta),
            }
        }

        #[test]
        fn only_the_cpu_training_backend_is_fused() {
            let device = Default::default();
            let x = Tensor::<NdArray<f32>, 3>::zeros(SHAPE, &device);
            let gamma = Tensor::<NdArray<f32>, 1>::ones([SHAPE[2]], &device);
            assert!(autodiff_ndarray(x, gamma, None, EPSILON).is_err());
            let x = Tensor::<Train, 3>::zeros(SHAPE, &device);
            let gamma = Tensor::<Train, 1>::ones([SHAPE[2]], &device);
            assert!(autodiff_ndarray(x, gamma.clone(), Some(gamma), EPSILON).is_ok());
            // Through the module, too: its parameters get the fused operation's gradients.
            let mut norm = LayerNormConfig::new(SHAPE[2]).init::<Train>(&device);
            norm.gamma = Param::from_tensor(Tensor::random([SHAPE[2]], Distribution::Normal(1.0, 0.5), &device));
            let x = Tensor::<Train, 3>::random(SHAPE, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let grads = (norm.forward(x.clone()) * x.clone()).sum().backward();
            assert!(norm.gamma.val().grad(&grads).is_some() && x.grad(&grads).is_some());
        }

        /// Against an f64 LayerNorm and its gradients computed here, and against Burn's composed
        /// `layer_norm` under autodiff. Tolerance 1e-5: inputs of a few units, rows of 20 and
        /// `dγ`, `dβ` summed over 15 rows, each within a few f32 ulp (1.2e-7 at 1) of the exact
        /// value.
        #[test]
        fn the_fused_layer_norm_is_the_composed_one() {
            let device = Default::default();
            let x = Tensor::<Train, 3>::random(SHAPE, Distribution::Normal(0.5, 2.0), &device);
            let gamma = Tensor::<Train, 1>::random([SHAPE[2]], Distribution::Normal(1.0, 0.5), &device);
            let beta = Tensor::<Train, 1>::random([SHAPE[2]], Distribution::Normal(0.0, 0.5), &device);
            let upstream = Tensor::<Train, 3>::random(SHAPE, Distribution::Normal(0.0, 1.0), &device);
            let fused = run(true, &x, &gamma, &beta, &upstream);
            let burn = run(false, &x, &gamma, &beta, &upstream);
            let to64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
            let (xs, g, b, u) = (to64(values(x)), to64(values(gamma)), to64(values(beta)), to64(values(upstream)));
            let d = SHAPE[2];
            let (mut output, mut d_input) = (Vec::new(), Vec::new());
            let (mut d_gamma, mut d_beta) = (alloc::vec![0.0f64; d], alloc::vec![0.0f64; d]);
            for (row, up) in xs.chunks(d).zip(u.chunks(d)) {
                let mean = row.iter().sum::<f64>() / d as f64;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
                let sigma = libm::sqrt(var + EPSILON);
                let n: Vec<f64> = row.iter().map(|v| (v - mean) / sigma).collect();
                output.extend(n.iter().zip(&g).zip(&b).map(|((n, g), b)| n * g + b));
                let scaled: Vec<f64> = up.iter().zip(&g).map(|(u, g)| u * g).collect();
                let m1 = scaled.iter().sum::<f64>() / d as f64;
                let m2 = scaled.iter().zip(&n).map(|(s, n)| s * n).sum::<f64>() / d as f64;
                d_input.extend(scaled.iter().zip(&n).map(|(s, n)| (s - m1 - n * m2) / sigma));
                for j in 0..d {
                    d_gamma[j] += up[j] * n[j];
                    d_beta[j] += up[j];
                }
            }
            for (what, got, reference, want) in [
                ("output", &fused.output, &burn.output, &output),
                ("input gradient", &fused.d_input, &burn.d_input, &d_input),
                ("γ gradient", &fused.d_gamma, &burn.d_gamma, &d_gamma),
                ("β gradient", &fused.d_beta, &burn.d_beta, &d_beta),
            ] {
                assert_eq!(got.len(), want.len(), "{what}");
                assert_eq!(reference.len(), want.len(), "{what}");
                for (i, ((&got, &composed), &want)) in got.iter().zip(reference).zip(want).enumerate() {
                    assert!((f64::from(got) - want).abs() <= 1e-5, "{what}[{i}]: {got} vs f64 {want}");
                    assert!((got - composed).abs() <= 1e-5, "{what}[{i}]: {got} vs composed {composed}");
                }
            }
        }
    }
}
