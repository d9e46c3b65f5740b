//! The GPO network: the context-restricted encoder and the model built on it.

mod encoder;
mod gpo;
mod softmax;

pub use encoder::{ContextAttention, ContextEncoderLayer, ContextEncoderLayerConfig};
pub use gpo::{ConfigError, Gpo, GpoConfig, GpoOutput, MAX_DIM_X};
