//! The GPO network: the context-restricted encoder and the model built on it.

mod attention;
#[cfg(feature = "train")]
mod cpu;
mod encoder;
mod gpo;
mod linear;
mod norm;
mod softmax;

pub use encoder::{ContextAttention, ContextEncoderLayer, ContextEncoderLayerConfig};
pub use gpo::{ConfigError, Gpo, GpoConfig, GpoOutput, MAX_DIM_X};
pub use norm::{LayerNorm, LayerNormConfig};
