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
//! * [`model_file`]: the versioned, checksummed postcard model file, in f32, f16 or bf16, with
//!   everything a model needs to be used (its prior's data included).
//! * [`prior`]: population priors (train-group mean, kNN groups) and their rule for unknown questions.
//! * [`predictor`]: [`Predictor`], the one inference path: a model file and a group's answers in,
//!   distributions out.
//! * [`template`]: the text embedded for each (question, option).
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod batch;
pub mod metrics;
pub mod model;
pub mod model_file;
pub mod predictor;
pub mod prior;
pub mod rng;
pub mod template;
pub mod weights;

pub use batch::{BatchError, Episode, GpoBatch, Question, Side};
pub use model::{Gpo, GpoConfig, GpoOutput};
pub use model_file::{ModelFile, ModelFileError, ModelMetadata, WeightDType};
pub use predictor::{PredictError, Prediction, Predictor};
pub use prior::{PopulationPrior, PriorError, PriorKind, PriorSource, PriorValue};
