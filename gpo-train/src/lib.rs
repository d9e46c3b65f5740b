//! # gpo-train
//!
//! Everything around the GPO model that touches files, text or time: dataset loaders, sentence
//! embeddings and their cache, meta-training, evaluation against baselines, reports, export.

pub mod allocator;
pub mod bench;
pub mod config;
pub mod data;
pub mod embed;
pub mod eval;
pub mod fsutil;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod llm;
pub mod method;
pub mod pipeline;
pub mod prior;
pub mod protocol;
pub mod report;
pub mod run;
pub mod split;
pub mod synthetic;
pub mod task;
pub mod train;
pub mod workers;

/// Whether this build has the wgpu backend (feature `wgpu`): tests that build the `gpo` binary
/// themselves build it with the same features.
pub const WGPU_FEATURE: bool = cfg!(feature = "wgpu");
