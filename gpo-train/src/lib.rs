//! # gpo-train
//!
//! Everything around the GPO model that touches files, text or time: dataset loaders, sentence
//! embeddings and their cache, meta-training, evaluation against baselines, reports, export.

pub mod data;
pub mod embed;
