//! # gpo-core
//!
//! The core of [GPO](https://arxiv.org/abs/2310.11523) (Group Preference Optimization): the GPO
//! transformer generic over any Burn backend, the alignment metrics, and the `.gpo` model file.
//! `no_std` + `alloc`, no I/O: it runs in a server, a browser or on a microcontroller.
//!
//! * [`batch`]: episodes built from plain slices, padded into tensors.
//! * [`model`]: [`GpoConfig`] → `init(device)` → [`Gpo`], with `forward`, `loss` and `predict`.
//! * [`metrics`]: the OpinionQA (Wasserstein) and GlobalOpinionQA (Jensen–Shannon) alignment scores.
//! * [`weights`]: named access to a model's parameters, and seeded initialisation.
//! * [`rng`]: the portable seeded generator used wherever gpo draws random numbers.
//! * [`model_file`]: the versioned, checksummed postcard model file, in f32, f16 or bf16.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod batch;
pub mod metrics;
pub mod model;
pub mod model_file;
pub mod rng;
pub mod weights;

pub use batch::{BatchError, Episode, GpoBatch};
pub use model::{Gpo, GpoConfig, GpoOutput};
pub use model_file::{ModelFile, ModelFileError, ModelMetadata, WeightDType};
