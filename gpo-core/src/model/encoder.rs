//! The GPO encoder: post-LayerNorm transformer layers in which context tokens attend to context
//! tokens and target tokens attend **only** to context tokens (docs/original.md §3).
//!
//! The original builds a full (Nc+Nt)² attention with an additive mask. Here keys and values come
//! from the context alone, so the cost is O(Nc·(Nc+Nt)) and grows linearly with the number of
//! targets; the result is the same.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Bool, Tensor, backend::Backend};
use burn_nn::transformer::{PositionWiseFeedForward, PositionWiseFeedForwardConfig};
use burn_nn::{Dropout, DropoutConfig, Linear, LinearConfig, activation::ActivationConfig};

use super::linear::{Activation, linear};
use super::norm::{LayerNorm, LayerNormConfig};

/// Configuration of one [`ContextEncoderLayer`].
#[derive(Config, Debug)]
pub struct ContextEncoderLayerConfig {
    /// Width of the token representations.
    pub d_model: usize,
    /// Hidden width of the feed-forward block.
    pub d_ff: usize,
    /// Number of attention heads; must divide `d_model`.
    pub n_heads: usize,
    /// Dropout on attention weights, residual branches and the feed-forward hidden layer.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// LayerNorm epsilon (PyTorch's default).
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
}

impl ContextEncoderLayerConfig {
    /// Builds the layer on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ContextEncoderLayer<B> {
        let linear = || LinearConfig::new(self.d_model, self.d_model).init(device);
        let norm = || LayerNormConfig::new(self.d_model).with_epsilon(self.layer_norm_eps).init(device);
        ContextEncoderLayer {
            attention: ContextAttention {
                query: linear(),
                key: linear(),
                value: linear(),
                output: linear(),
                dropout: DropoutConfig::new(self.dropout).init(),
                n_heads: self.n_heads,
            },
            norm_1: norm(),
            feed_forward: PositionWiseFeedForwardConfig::new(self.d_model, self.d_ff)
                .with_dropout(self.dropout)
                .with_activation(ActivationConfig::Relu)
                .init(device),
            norm_2: norm(),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// Multi-head attention whose keys and values are the context tokens only.
#[derive(Module, Debug)]
pub struct ContextAttention<B: Backend> {
    /// Query projection.
    pub query: Linear<B>,
    /// Key projection.
    pub key: Linear<B>,
    /// Value projection.
    pub value: Linear<B>,
    /// Output projection.
    pub output: Linear<B>,
    /// Dropout on the attention weights.
    pub dropout: Dropout,
    /// Number of heads.
    pub n_heads: usize,
}

impl<B: Backend> ContextAttention<B> {
    /// `queries`: [batch, n_queries, d_model]; `context`: [batch, n_context, d_model];
    /// `context_pad`: [batch, n_context], `true` for padding keys (`None`: no key is padding). A
    /// query whose keys are all padding attends to nothing (its attention output is the output
    /// projection's bias).
    pub fn forward(
        &self,
        queries: Tensor<B, 3>,
        context: Tensor<B, 3>,
        context_pad: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 3> {
        let q = linear(queries, &self.query, Activation::Identity);
        let k = linear(context.clone(), &self.key, Activation::Identity);
        let v = linear(context, &self.value, Activation::Identity);
        let attended = super::attention::attention(q, k, v, context_pad, self.n_heads, &self.dropout);
        linear(attended, &self.output, Activation::Identity)
    }
}

/// One post-LayerNorm encoder layer, as `torch.nn.TransformerEncoderLayer(norm_first=False)`:
/// `h = LN1(h + MHA(h)); h = LN2(h + FFN(h))`, with the context-only attention.
#[derive(Module, Debug)]
pub struct ContextEncoderLayer<B: Backend> {
    /// Self-attention over the context.
    pub attention: ContextAttention<B>,
    /// LayerNorm after the attention residual.
    pub norm_1: LayerNorm<B>,
    /// Linear → ReLU → Linear.
    pub feed_forward: PositionWiseFeedForward<B>,
    /// LayerNorm after the feed-forward residual.
    pub norm_2: LayerNorm<B>,
    /// Dropout on both residual branches.
    pub dropout: Dropout,
}

impl<B: Backend> ContextEncoderLayer<B> {
    /// `tokens`: [batch, n_context + n_targets, d_model], the context tokens first; `context_pad`
    /// as [`ContextAttention::forward`]'s.
    pub fn forward(
        &self,
        tokens: Tensor<B, 3>,
        n_context: usize,
        context_pad: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 3> {
        let [batch, _, d_model] = tokens.dims();
        let context = tokens.clone().slice([0..batch, 0..n_context, 0..d_model]);
        self.block(tokens, context, context_pad)
    }

    /// [`Self::forward`]'s output for the target tokens alone, [batch, n_targets, d_model]: what
    /// the last layer has to compute, since the head reads the targets only. The context tokens'
    /// queries, attention rows, feed-forward and norms are left out; each target's output is the
    /// same computation as in [`Self::forward`].
    pub fn forward_targets(
        &self,
        tokens: Tensor<B, 3>,
        n_context: usize,
        context_pad: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 3> {
        let [batch, n_tokens, d_model] = tokens.dims();
        let context = tokens.clone().slice([0..batch, 0..n_context, 0..d_model]);
        let targets = tokens.slice([0..batch, n_context..n_tokens, 0..d_model]);
        self.block(targets, context, context_pad)
    }

    /// The layer for `queries` attending to `context`.
    fn block(
        &self,
        queries: Tensor<B, 3>,
        context: Tensor<B, 3>,
        context_pad: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 3> {
        let attended = self.attention.forward(queries.clone(), context, context_pad);
        let hidden = self.norm_1.forward(queries + self.dropout.forward(attended));
        let fed = feed_forward(&self.feed_forward, hidden.clone());
        self.norm_2.forward(hidden + self.dropout.forward(fed))
    }
}

/// `ff.forward(x)` (Linear → activation → dropout → Linear), its layers through [`linear`]
/// with the ReLU the GPO network uses applied inside the first.
fn feed_forward<B: Backend>(ff: &PositionWiseFeedForward<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    match ff.activation {
        burn_nn::activation::Activation::Relu(_) => {
            let hidden = linear(x, &ff.linear_inner, Activation::Relu);
            linear(ff.dropout.forward(hidden), &ff.linear_outer, Activation::Identity)
        }
        _ => ff.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};
    use burn_ndarray::NdArray;

    type B = NdArray<f32>;

    #[test]
    fn a_batch_without_padding_skips_the_mask_with_the_same_result() {
        let device = Default::default();
        let layer = ContextEncoderLayerConfig::new(8, 16, 2).init::<B>(&device);
        let tokens = Tensor::<B, 3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let none = Tensor::<B, 2, Bool>::from_data(TensorData::new(alloc::vec![false; 2 * 4], [2, 4]), &device);
        let masked = layer.forward(tokens.clone(), 4, Some(none)).into_data();
        let unmasked = layer.forward(tokens.clone(), 4, None).into_data();
        assert_eq!(masked, unmasked, "an all-false mask changes nothing, bit for bit");
        // A padded key does change the result.
        let one = TensorData::new(alloc::vec![false, false, false, true, false, false, false, false], [2, 4]);
        let padded = layer.forward(tokens, 4, Some(Tensor::from_data(one, &device))).into_data();
        assert_ne!(padded, unmasked);
    }

    #[test]
    fn the_targets_alone_are_the_targets_of_the_whole_layer() {
        let device = Default::default();
        let layer = ContextEncoderLayerConfig::new(8, 16, 2).init::<B>(&device);
        let tokens = Tensor::<B, 3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let pad = TensorData::new(alloc::vec![false, false, true, false, true, true, true, true], [2, 4]);
        for pad in [None, Some(Tensor::<B, 2, Bool>::from_data(pad, &device))] {
            let whole = layer.forward(tokens.clone(), 4, pad.clone()).slice([0..2, 4..7, 0..8]);
            let targets = layer.forward_targets(tokens.clone(), 4, pad);
            assert_eq!(whole.into_data(), targets.into_data(), "bit for bit");
        }
    }
}
