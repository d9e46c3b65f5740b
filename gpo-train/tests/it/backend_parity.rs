//! The same seeded GPO on the CPU backend (burn-ndarray) and on the GPU backend (burn-wgpu) must
//! compute the same thing: forward pass, loss, gradients and one Adam update, on a ragged batch
//! (different context and target sizes, padding, an episode without context).
//!
//! Tolerance: 1e-4 absolute. Both backends compute in f32 but sum in different orders, and GPU
//! math builtins (`exp`, `sqrt`, …) may be an ulp off, so agreement to the last bit is not
//! expected. Measured on lavapipe (the maxima are printed with `--nocapture`): 1.2e-7 on `mean`
//! and `log_std`, 0 on the loss, 6e-8 on gradients, 5e-7 on weights after the Adam step. 1e-4
//! catches real bugs (a wrong mask, a wrong kernel) and leaves two orders of magnitude for other
//! drivers and GPUs.
//!
//! Runs only with `--features wgpu`. On Linux without a Vulkan driver (no GPU driver and no
//! lavapipe: `apt-get install mesa-vulkan-drivers libvulkan1`) the tests are compiled ignored,
//! with that reason (gpo-train's build script: `cfg(gpo_no_vulkan)`); where a driver is installed
//! and still no adapter answers, they fail.
//! `cargo test -p gpo-train --features wgpu --test it backend_parity:: -- --nocapture`
#![cfg(feature = "wgpu")]

use std::io::Write;
use std::sync::OnceLock;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use gpo_core::weights::named_tensors;
use gpo_core::{Episode, Gpo, GpoBatch, GpoConfig, Question};
use gpo_train::gpu::{Wgpu, wgpu_adapter};

type Cpu = NdArray<f32>;
const TOLERANCE: f32 = 1e-4;
const DIM_X: usize = 12;
const SEED: u64 = 7;
/// The trainer's learning rate, for the Adam update.
const LEARNING_RATE: f64 = 3e-4;

/// The wgpu adapter (asked once), said on stderr; a test without one fails (where no Vulkan
/// driver is installed it is ignored instead: the module documentation).
///
/// Written to the process's stderr directly, not through `eprintln!`: the test harness captures
/// only the print macros, and CI reads this line from a plain `cargo test` run.
fn require_gpu(test: &str) {
    static ADAPTER: OnceLock<Result<String, String>> = OnceLock::new();
    match ADAPTER.get_or_init(|| wgpu_adapter().map_err(|e| e.to_string())) {
        Ok(adapter) => {
            // A failed write to stderr changes nothing about the test's outcome.
            let _ = writeln!(std::io::stderr().lock(), "{test}: running on wgpu adapter {adapter}");
        }
        Err(reason) => panic!("{test}: a Vulkan driver is installed, but no wgpu adapter answers: {reason}"),
    }
}

fn config() -> GpoConfig {
    GpoConfig::new(DIM_X).with_d_model(32).with_d_ff(48).with_n_heads(4).with_n_layers(3)
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }

    fn embeddings(&mut self, options: usize) -> Vec<f32> {
        (0..options * DIM_X).map(|_| self.next_f32() * 2.0 - 1.0).collect()
    }

    fn distribution(&mut self, options: usize) -> Vec<f32> {
        let raw: Vec<f32> = (0..options).map(|_| self.next_f32() + 0.05).collect();
        let sum: f32 = raw.iter().sum();
        raw.iter().map(|v| v / sum).collect()
    }
}

/// Four episodes of different shapes: option counts per context question and per target question.
/// The third has no context; the batch pads contexts to 14 tokens and targets to 12.
fn episodes() -> Vec<Episode> {
    let shapes: [(&[usize], &[usize]); 4] =
        [(&[2, 3, 4, 5], &[3, 4]), (&[5], &[2, 2, 2, 3, 3]), (&[], &[4, 5]), (&[3, 3, 3, 2, 2], &[5])];
    let mut rng = Rng(11);
    shapes
        .iter()
        .map(|(context, targets)| {
            let mut episode = Episode::new(DIM_X).unwrap();
            for &k in *context {
                episode.push_context(Question::new(&rng.embeddings(k)).answer(&rng.distribution(k))).unwrap();
            }
            for &k in *targets {
                episode.push_target(Question::new(&rng.embeddings(k)).answer(&rng.distribution(k))).unwrap();
            }
            episode
        })
        .collect()
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().to_vec().unwrap()
}

/// Largest absolute difference; fails beyond [`TOLERANCE`] with the place it happened.
fn max_diff(what: &str, cpu: &[f32], gpu: &[f32]) -> f32 {
    assert_eq!(cpu.len(), gpu.len(), "{what}: length");
    let mut worst = (0.0f32, 0);
    for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        let diff = (c - g).abs();
        assert!(diff.is_finite(), "{what}[{i}]: ndarray {c}, wgpu {g}");
        if diff > worst.0 {
            worst = (diff, i);
        }
    }
    let (diff, i) = worst;
    assert!(diff <= TOLERANCE, "{what}[{i}]: ndarray {}, wgpu {}, |diff| {diff:e} > {TOLERANCE:e}", cpu[i], gpu[i]);
    diff
}

/// Forward `mean` and `log_std` (padding masked to 0) and the loss.
fn forward<B: Backend>(episodes: &[Episode]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = B::Device::default();
    let model: Gpo<B> = config().init_seeded(&device, SEED).unwrap();
    let batch = GpoBatch::<B>::new(episodes, &device).unwrap();
    let output = model.forward(&batch).unwrap();
    let pad = batch.target_pad();
    let mean = values(output.mean.mask_fill(pad.clone(), 0.0));
    let log_std = values(output.log_std.mask_fill(pad, 0.0));
    (mean, log_std, values(model.loss(&batch).unwrap()))
}

/// Every float parameter's gradient, in declaration order (zeros where a parameter has none).
struct GradientCollector<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    values: Vec<Vec<f32>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradientCollector<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let n = param.val().shape().num_elements();
        let grad = param.val().grad(self.grads).map(values).unwrap_or_else(|| vec![0.0; n]);
        self.values.push(grad);
    }
}

/// Parameter names, their gradients of the loss, and the weights after one Adam update (the
/// trainer's settings), all in declaration order.
fn update<B: AutodiffBackend>(episodes: &[Episode]) -> (Vec<String>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let device = B::Device::default();
    let model: Gpo<B> = config().init_seeded(&device, SEED).unwrap();
    let names = named_tensors(&model).into_iter().map(|t| t.name).collect();
    let batch = GpoBatch::<B>::new(episodes, &device).unwrap();
    let grads = model.loss(&batch).unwrap().backward();
    let mut collector = GradientCollector::<B> { grads: &grads, values: Vec::new() };
    model.visit(&mut collector);
    let gradients = collector.values;
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init::<B, Gpo<B>>();
    let grads = GradientsParams::from_grads(grads, &model);
    let model = optimizer.step(LEARNING_RATE, model, grads);
    let weights = named_tensors(&model).into_iter().map(|t| t.values).collect();
    (names, gradients, weights)
}

#[test]
#[cfg_attr(gpo_no_vulkan, ignore = "no Vulkan driver (apt-get install mesa-vulkan-drivers libvulkan1)")]
fn forward_and_loss_agree() {
    require_gpu("forward_and_loss_agree");
    let episodes = episodes();
    let (cpu_mean, cpu_log_std, cpu_loss) = forward::<Cpu>(&episodes);
    let (gpu_mean, gpu_log_std, gpu_loss) = forward::<Wgpu>(&episodes);
    let mean = max_diff("mean", &cpu_mean, &gpu_mean);
    let log_std = max_diff("log_std", &cpu_log_std, &gpu_log_std);
    let loss = max_diff("loss", &cpu_loss, &gpu_loss);
    eprintln!("max |ndarray - wgpu|: mean {mean:e}, log_std {log_std:e}, loss {loss:e} (loss {})", cpu_loss[0]);
}

#[test]
#[cfg_attr(gpo_no_vulkan, ignore = "no Vulkan driver (apt-get install mesa-vulkan-drivers libvulkan1)")]
fn gradients_and_adam_update_agree() {
    require_gpu("gradients_and_adam_update_agree");
    let episodes = episodes();
    let (names, cpu_grads, cpu_weights) = update::<Autodiff<Cpu>>(&episodes);
    let (_, gpu_grads, gpu_weights) = update::<Autodiff<Wgpu>>(&episodes);
    assert_eq!(names.len(), gpu_grads.len());

    let (mut grad, mut grad_at) = (0.0f32, "");
    for (name, (c, g)) in names.iter().zip(cpu_grads.iter().zip(&gpu_grads)) {
        let diff = max_diff(&format!("gradient of {name}"), c, g);
        if diff > grad {
            (grad, grad_at) = (diff, name);
        }
    }

    // Adam's first step moves each weight by lr·g/(|g| + ε): the gradient's sign, whatever its
    // size. Where the true gradient is zero, the computed one is rounding noise of either sign, and
    // Adam turns that noise into steps of up to lr that differ. Two places have such gradients: the
    // attention key biases (a softmax over keys ignores a shift shared by all keys; measured
    // ±3e-11) and the mean half of `head_out.bias` (the same for a question's logits; 5e-10 vs
    // -2e-10, weights 2e-5 apart).
    // For such weights (the two gradients differ by more than 1% of their size) the test only
    // checks that the two steps are at most 2·lr apart; every other weight must agree within the
    // tolerance.
    let (mut weight, mut weight_at) = (0.0f32, String::new());
    let (mut noisy, mut noisy_weight, mut noisy_at) = (0, 0.0f32, String::new());
    for (p, name) in names.iter().enumerate() {
        let grads = cpu_grads[p].iter().zip(&gpu_grads[p]);
        for (i, ((&c, &g), (&c_grad, &g_grad))) in cpu_weights[p].iter().zip(&gpu_weights[p]).zip(grads).enumerate() {
            let diff = (c - g).abs();
            if (c_grad - g_grad).abs() > 0.01 * c_grad.abs().max(g_grad.abs()) {
                assert!(diff <= 2.0 * LEARNING_RATE as f32 * 1.001, "updated {name}[{i}]: ndarray {c}, wgpu {g}");
                noisy += 1;
                if diff > noisy_weight {
                    (noisy_weight, noisy_at) = (diff, format!("{name}[{i}]: gradients {c_grad:e} vs {g_grad:e}"));
                }
            } else {
                assert!(diff <= TOLERANCE, "updated {name}[{i}]: ndarray {c}, wgpu {g}, |diff| {diff:e}");
                if diff > weight {
                    (weight, weight_at) = (diff, format!("{name}[{i}]"));
                }
            }
        }
    }
    eprintln!(
        "max |ndarray - wgpu| over {} parameters: gradients {grad:e} ({grad_at}), weights after one Adam step \
         {weight:e} ({weight_at}); {noisy} weights with noise-level gradients, up to {noisy_weight:e} apart ({noisy_at})",
        names.len(),
    );
}
