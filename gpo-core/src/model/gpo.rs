//! The GPO model (docs/original.md §3): a TNP-D transformer that reads a group's answered context
//! questions and predicts its answer distribution on target questions.
//!
//! Tokens are options: a context token is `[x, y]`, a target token `[x, 0]`. An MLP embeds them,
//! encoder layers let context attend to context and targets attend to context only, and a head
//! gives `(μ_raw, log σ)` per target option. `μ_raw` is softmaxed over the options of each target
//! question separately; `σ = exp(log σ)`.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, activation::relu, backend::Backend};
use burn_nn::{Initializer, Linear, LinearConfig};

use super::encoder::{ContextEncoderLayer, ContextEncoderLayerConfig};
use super::linear::{Activation, affine, linear};
use crate::batch::{BatchError, GpoBatch};

/// Smallest prior probability whose logarithm a prior model reads: keeps options that no
/// meta-training group chose within reach of the residual.
const PRIOR_FLOOR: f32 = 1e-4;

/// Largest accepted embedding dimension.
pub const MAX_DIM_X: usize = 65_536;
/// Largest accepted `d_model`.
pub const MAX_D_MODEL: usize = 8_192;
/// Largest accepted `d_ff`.
pub const MAX_D_FF: usize = 65_536;
/// Largest accepted `n_layers` and `emb_depth`.
pub const MAX_DEPTH: usize = 256;
/// Largest accepted number of parameters (2^31): bounds what a model file or a run config can
/// make a model allocate.
pub const MAX_PARAMETERS: usize = 1 << 31;

/// `ln(2π) / 2`, the constant of the Gaussian log-density.
#[cfg(feature = "train")]
const HALF_LN_TWO_PI: f32 = 0.918_938_5;

/// Hyperparameters of [`Gpo`]. The defaults are the original's (`configs/gpo.yaml`).
#[derive(Config, Debug, PartialEq)]
pub struct GpoConfig {
    /// Dimension of the (question, option) embeddings.
    pub dim_x: usize,
    /// Width of the token representations.
    #[config(default = 128)]
    pub d_model: usize,
    /// Number of linear layers of the token embedder.
    #[config(default = 4)]
    pub emb_depth: usize,
    /// Hidden width of the encoder feed-forward blocks and of the head.
    #[config(default = 128)]
    pub d_ff: usize,
    /// Attention heads; must divide `d_model`.
    #[config(default = 4)]
    pub n_heads: usize,
    /// Number of encoder layers.
    #[config(default = 6)]
    pub n_layers: usize,
    /// Dropout inside the encoder.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// LayerNorm epsilon.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Read each option's population prior and predict a residual over it (not in the
    /// original). Tokens get the prior as one more feature, context tokens carry the group's
    /// deviation from it instead of its raw answer, and the mean logits are `ln prior + residual`.
    /// The residual head starts at zero, so an untrained model predicts the prior.
    #[config(default = false)]
    pub prior: bool,
}

/// Why a [`GpoConfig`] cannot build a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A size is zero.
    #[error("{field} must be positive")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
    /// `emb_depth` below 2 (the embedder needs an input and an output layer).
    #[error("emb_depth must be at least 2, got {0}")]
    EmbedderTooShallow(usize),
    /// `n_heads` does not divide `d_model`.
    #[error("n_heads ({n_heads}) must divide d_model ({d_model})")]
    HeadsDoNotDivide {
        /// Width.
        d_model: usize,
        /// Heads.
        n_heads: usize,
    },
    /// A size above its bound (`MAX_*` in this module).
    #[error("{field} = {value} is larger than the supported maximum {max}")]
    TooLarge {
        /// The field's name.
        field: &'static str,
        /// The value.
        value: usize,
        /// The bound.
        max: usize,
    },
    /// `dropout` outside `[0, 1)` or `layer_norm_eps` not positive.
    #[error("{field} is out of range: {value}")]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The value.
        value: f64,
    },
}

impl GpoConfig {
    /// Checks that the configuration describes a buildable model.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("dim_x", self.dim_x),
            ("d_model", self.d_model),
            ("d_ff", self.d_ff),
            ("n_heads", self.n_heads),
            ("n_layers", self.n_layers),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        for (field, value, max) in [
            ("dim_x", self.dim_x, MAX_DIM_X),
            ("d_model", self.d_model, MAX_D_MODEL),
            ("d_ff", self.d_ff, MAX_D_FF),
            ("n_heads", self.n_heads, MAX_D_MODEL),
            ("n_layers", self.n_layers, MAX_DEPTH),
            ("emb_depth", self.emb_depth, MAX_DEPTH),
        ] {
            if value > max {
                return Err(ConfigError::TooLarge { field, value, max });
            }
        }
        if self.emb_depth < 2 {
            return Err(ConfigError::EmbedderTooShallow(self.emb_depth));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(ConfigError::HeadsDoNotDivide { d_model: self.d_model, n_heads: self.n_heads });
        }
        let parameters = self.n_parameters();
        if parameters > MAX_PARAMETERS {
            return Err(ConfigError::TooLarge { field: "parameters", value: parameters, max: MAX_PARAMETERS });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError::OutOfRange { field: "dropout", value: self.dropout });
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(ConfigError::OutOfRange { field: "layer_norm_eps", value: self.layer_norm_eps });
        }
        Ok(())
    }

    /// Number of scalar parameters of the model this configuration builds (saturating at
    /// `usize::MAX`, so that absurd sizes cannot overflow).
    pub fn n_parameters(&self) -> usize {
        let (d, ff) = (self.d_model, self.d_ff);
        let features = self.dim_x.saturating_add(if self.prior { 2 } else { 1 });
        let linear = |i: usize, o: usize| i.saturating_mul(o).saturating_add(o);
        let embedder =
            linear(features, d).saturating_add(self.emb_depth.saturating_sub(1).saturating_mul(linear(d, d)));
        // Attention (4 linears), feed-forward (2), two LayerNorms (γ and β each).
        let layer = linear(d, d)
            .saturating_mul(4)
            .saturating_add(linear(d, ff))
            .saturating_add(linear(ff, d))
            .saturating_add(d.saturating_mul(4));
        embedder
            .saturating_add(self.n_layers.saturating_mul(layer))
            .saturating_add(linear(d, ff))
            .saturating_add(linear(ff, 2))
    }

    /// The name and shape of every parameter of the model this configuration builds, in the
    /// order [`crate::weights::named_tensors`] lists them: what a model file must store. Fails on an
    /// invalid configuration (so that the list is bounded by the documented limits).
    pub fn parameter_shapes(&self) -> Result<Vec<(String, Vec<usize>)>, ConfigError> {
        self.validate()?;
        let (d, ff) = (self.d_model, self.d_ff);
        let mut shapes = Vec::new();
        let linear = |shapes: &mut Vec<_>, name: &str, i: usize, o: usize| {
            shapes.push((format!("{name}.weight"), vec![i, o]));
            shapes.push((format!("{name}.bias"), vec![o]));
        };
        let norm = |shapes: &mut Vec<_>, name: &str| {
            shapes.push((format!("{name}.gamma"), vec![d]));
            shapes.push((format!("{name}.beta"), vec![d]));
        };
        linear(&mut shapes, "embedder.0", self.dim_x + if self.prior { 2 } else { 1 }, d);
        for i in 1..self.emb_depth {
            linear(&mut shapes, &format!("embedder.{i}"), d, d);
        }
        for l in 0..self.n_layers {
            for part in ["query", "key", "value", "output"] {
                linear(&mut shapes, &format!("layers.{l}.attention.{part}"), d, d);
            }
            norm(&mut shapes, &format!("layers.{l}.norm_1"));
            linear(&mut shapes, &format!("layers.{l}.feed_forward.linear_inner"), d, ff);
            linear(&mut shapes, &format!("layers.{l}.feed_forward.linear_outer"), ff, d);
            norm(&mut shapes, &format!("layers.{l}.norm_2"));
        }
        linear(&mut shapes, "head_hidden", d, ff);
        linear(&mut shapes, "head_out", ff, 2);
        Ok(shapes)
    }

    /// Builds the model on `device` with weights drawn from `seed`: the same seed gives the same
    /// weights on every backend (see [`crate::weights::reinitialize`]). Feature `train`.
    #[cfg(feature = "train")]
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> Result<Gpo<B>, ConfigError> {
        let mut model = crate::weights::reinitialize(self.init(device)?, seed);
        if self.prior {
            model.head_out = self.residual_head(device);
        }
        Ok(model)
    }

    /// The output layer of a prior model: all zeros, so that training starts from the prior.
    fn residual_head<B: Backend>(&self, device: &B::Device) -> Linear<B> {
        LinearConfig::new(self.d_ff, 2).with_initializer(Initializer::Zeros).init(device)
    }

    /// Builds a model on `device` with Burn's default (backend-RNG) initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Gpo<B>, ConfigError> {
        self.validate()?;
        let mut embedder = Vec::with_capacity(self.emb_depth);
        let token_features = self.dim_x + if self.prior { 2 } else { 1 };
        embedder.push(LinearConfig::new(token_features, self.d_model).init(device));
        for _ in 1..self.emb_depth {
            embedder.push(LinearConfig::new(self.d_model, self.d_model).init(device));
        }
        let layer = ContextEncoderLayerConfig::new(self.d_model, self.d_ff, self.n_heads)
            .with_dropout(self.dropout)
            .with_layer_norm_eps(self.layer_norm_eps);
        Ok(Gpo {
            embedder,
            layers: (0..self.n_layers).map(|_| layer.init(device)).collect(),
            head_hidden: LinearConfig::new(self.d_model, self.d_ff).init(device),
            head_out: if self.prior {
                self.residual_head(device)
            } else {
                LinearConfig::new(self.d_ff, 2).init(device)
            },
            prior: self.prior,
        })
    }
}

/// The GPO transformer.
#[derive(Module, Debug)]
pub struct Gpo<B: Backend> {
    /// Token embedder: Linear layers with ReLU between them, none after the last.
    pub embedder: Vec<Linear<B>>,
    /// Encoder layers.
    pub layers: Vec<ContextEncoderLayer<B>>,
    /// Head hidden layer (followed by ReLU).
    pub head_hidden: Linear<B>,
    /// Head output layer: `(μ_raw, log σ)`.
    pub head_out: Linear<B>,
    /// Whether the model reads population priors ([`GpoConfig::prior`]).
    pub prior: bool,
}

/// The model's outputs for the target slots of a batch.
#[derive(Debug, Clone)]
pub struct GpoOutput<B: Backend> {
    /// Predicted probability of each target option (softmax within its question), [batch, n_target].
    pub mean: Tensor<B, 2>,
    /// Raw mean logits before the per-question softmax, [batch, n_target].
    pub mean_logits: Tensor<B, 2>,
    /// Logarithm of `mean` (0 at padding), [batch, n_target].
    pub log_mean: Tensor<B, 2>,
    /// `log σ` of each target option, [batch, n_target].
    pub log_std: Tensor<B, 2>,
}

impl<B: Backend> Gpo<B> {
    /// Checks that `batch` fits the model: its embedding dimension, and priors exactly when the
    /// model reads them.
    pub fn check(&self, batch: &GpoBatch<B>) -> Result<(), BatchError> {
        if batch.has_prior != self.prior {
            return Err(BatchError::PriorMismatch { model_reads_prior: self.prior });
        }
        let features = self.embedder.first().map(|l| l.weight.dims()[0]).unwrap_or(0);
        let expected = features.saturating_sub(if self.prior { 2 } else { 1 });
        if batch.dim_x != expected {
            return Err(BatchError::DimensionMismatch { expected, found: batch.dim_x });
        }
        Ok(())
    }

    /// The input dimension the model expects.
    pub fn dim_x(&self) -> usize {
        let features = self.embedder.first().map(|l| l.weight.dims()[0]).unwrap_or(0);
        features.saturating_sub(if self.prior { 2 } else { 1 })
    }

    /// Runs the model on a batch.
    ///
    /// # Shapes
    /// - batch: `n_batch` episodes padded to `n_context` context and `n_target` target option slots
    /// - output: every tensor of [`GpoOutput`] is `[n_batch, n_target]`
    ///
    /// # Errors
    /// [`BatchError::PriorMismatch`] or [`BatchError::DimensionMismatch`] when the batch does not
    /// fit the model ([`Self::check`]).
    pub fn forward(&self, batch: &GpoBatch<B>) -> Result<GpoOutput<B>, BatchError> {
        self.check(batch)?;
        let [n_batch, n_context, _] = batch.context_x.dims();
        let n_target = batch.target_x.dims()[1];
        let device = batch.context_x.device();

        // Each token's features beside its option embedding: its answer probability (0 for
        // targets) or, with priors, the answer's residual from the prior and the prior.
        let target_y_slot = Tensor::zeros([n_batch, n_target, 1], &device);
        let (context, target) = if self.prior {
            let context_residual = batch.context_y.clone() - batch.context_prior.clone();
            (
                Tensor::cat(
                    alloc::vec!(context_residual.unsqueeze_dim(2), batch.context_prior.clone().unsqueeze_dim(2)),
                    2,
                ),
                Tensor::cat(alloc::vec!(target_y_slot, batch.target_prior.clone().unsqueeze_dim(2)), 2),
            )
        } else {
            (batch.context_y.clone().unsqueeze_dim(2), target_y_slot)
        };
        let answers = Tensor::cat(alloc::vec!(context, target), 1);
        // Episodes sharing their embeddings pass them once (Self::embed).
        let once = batch.shared_x && n_batch > 1 && !self.embedder.is_empty();
        let x = |x: &Tensor<B, 3>, n: usize| match once {
            true => x.clone().slice([0..1, 0..n, 0..batch.dim_x]),
            false => x.clone(),
        };
        let x = Tensor::cat(alloc::vec!(x(&batch.context_x, n_context), x(&batch.target_x, n_target)), 1);
        let mut hidden = self.embed(x, answers);
        // The last layer computes the target tokens alone: the head reads nothing else.
        let (last, layers) = match self.layers.split_last() {
            Some((last, layers)) => (Some(last), layers),
            None => (None, &[][..]),
        };
        for layer in layers {
            hidden = layer.forward(hidden, n_context, batch.context_pad.clone());
        }
        let targets = match last {
            Some(last) => last.forward_targets(hidden, n_context, batch.context_pad.clone()),
            None => {
                let d_model = hidden.dims()[2];
                hidden.slice([0..n_batch, n_context..n_context + n_target, 0..d_model])
            }
        };
        let hidden = linear(targets, &self.head_hidden, Activation::Relu);
        let raw = linear(hidden, &self.head_out, Activation::Identity);
        let mut mean_logits = raw.clone().slice([0..n_batch, 0..n_target, 0..1]).squeeze_dim::<2>(2);
        if self.prior {
            mean_logits = mean_logits + batch.target_prior.clone().clamp_min(PRIOR_FLOOR).log();
        }
        let log_std = raw.slice([0..n_batch, 0..n_target, 1..2]).squeeze_dim::<2>(2);
        let log_mean = question_log_softmax(mean_logits.clone(), batch);
        Ok(GpoOutput { mean: log_mean.clone().exp(), log_mean, mean_logits, log_std })
    }

    /// The embedder on tokens whose features are their option embedding `x` and `answers` (the
    /// rest of the features, in that order). When `x` has one episode and `answers` several (the
    /// episodes share their tokens' embeddings), the first layer multiplies `x` once for all of
    /// them: `x W_x` broadcast, plus `answers W_a + b`, `W_x` and `W_a` its weight rows for the
    /// two (the same sum as the layer on the concatenated features, to float rounding).
    ///
    /// # Shapes
    /// - x: `[batch or 1, n_tokens, dim_x]`
    /// - answers: `[batch, n_tokens, 1 or 2]`
    /// - output: `[batch, n_tokens, d_model]`
    fn embed(&self, x: Tensor<B, 3>, answers: Tensor<B, 3>) -> Tensor<B, 3> {
        let Some((first, others)) = self.embedder.split_first() else {
            return Tensor::cat(alloc::vec!(x, answers), 2);
        };
        let activation = |last: bool| if last { Activation::Identity } else { Activation::Relu };
        let hidden = if x.dims()[0] == answers.dims()[0] {
            linear(Tensor::cat(alloc::vec!(x, answers), 2), first, activation(others.is_empty()))
        } else {
            let [features, d_model] = first.weight.dims();
            let dim_x = x.dims()[2];
            let weight = first.weight.val();
            let shared = affine(x, weight.clone().slice([0..dim_x, 0..d_model]), None, Activation::Identity);
            let own = affine(
                answers,
                weight.slice([dim_x..features, 0..d_model]),
                first.bias.as_ref().map(|b| b.val()),
                Activation::Identity,
            );
            let sum = own + shared;
            if others.is_empty() { sum } else { relu(sum) }
        };
        let last = others.len().saturating_sub(1);
        others.iter().enumerate().fold(hidden, |h, (i, layer)| linear(h, layer, activation(i == last)))
    }

    /// Gaussian negative log-likelihood of the true target probabilities, averaged over the real
    /// target options of the batch.
    ///
    /// The original averages over all target slots, padding included (docs/original.md §9.4), which
    /// down-weights batches with padding; here padding never counts. Feature `train`.
    #[cfg(feature = "train")]
    pub fn loss(&self, batch: &GpoBatch<B>) -> Result<Tensor<B, 1>, BatchError> {
        let output = self.forward(batch)?;
        let pad = batch.target_pad.clone();
        // Masking before the arithmetic keeps padded slots finite, so no NaN reaches the gradient.
        let log_std = output.log_std.mask_fill(pad.clone(), 0.0);
        let error = (batch.target_y.clone() - output.mean).mask_fill(pad.clone(), 0.0);
        let z = error * log_std.clone().neg().exp();
        let nll = (z.powi_scalar(2).mul_scalar(0.5) + log_std).add_scalar(HALF_LN_TWO_PI);
        let n_real = batch.n_real_targets().max(1) as f32;
        Ok(nll.mask_fill(pad, 0.0).sum().div_scalar(n_real))
    }

    /// Cross-entropy of the predicted distributions against the true target distributions,
    /// averaged over the real target questions of the batch (not in the original, which trains
    /// with [`Self::loss`]; it equals the KL divergence up to a constant). Feature `train`.
    #[cfg(feature = "train")]
    pub fn cross_entropy(&self, batch: &GpoBatch<B>) -> Result<Tensor<B, 1>, BatchError> {
        let output = self.forward(batch)?;
        let n_questions = batch.target_options.iter().map(Vec::len).sum::<usize>().max(1) as f32;
        Ok((batch.target_y.clone() * output.log_mean)
            .mask_fill(batch.target_pad.clone(), 0.0)
            .sum()
            .neg()
            .div_scalar(n_questions))
    }

    /// The device the model's weights live on.
    pub fn device(&self) -> B::Device {
        self.head_out.weight.device()
    }
}

/// Log-softmax of `logits` ([batch, n_target]) over the options of each target question
/// separately, vectorised with the batch's question tables (no per-question loop); 0 at padding.
fn question_log_softmax<B: Backend>(logits: Tensor<B, 2>, batch: &GpoBatch<B>) -> Tensor<B, 2> {
    let [n_batch, n_questions, max_options] = batch.question_slots.dims();
    let per_question = logits
        .clone()
        .gather(1, batch.question_slots.clone().reshape([n_batch, n_questions * max_options]))
        .reshape([n_batch, n_questions, max_options])
        .mask_fill(batch.question_slot_pad.clone(), f32::MIN);
    // The max only stabilises the exponentials; the log-sum-exp does not depend on it.
    let max = per_question.clone().max_dim(2).detach();
    let sum = (per_question - max.clone()).exp().mask_fill(batch.question_slot_pad.clone(), 0.0).sum_dim(2);
    // Fully padded question rows sum to 0; clamping keeps their (unused) log finite.
    let log_sum_exp = (sum.clamp_min(f32::MIN_POSITIVE).log() + max).reshape([n_batch, n_questions]);
    let slot_log_sum_exp = log_sum_exp.gather(1, batch.target_question.clone());
    (logits - slot_log_sum_exp).mask_fill(batch.target_pad.clone(), 0.0)
}
