//! # gpo-core
//!
//! The core of [GPO](https://arxiv.org/abs/2310.11523) (Group Preference Optimization): the GPO
//! transformer generic over any Burn backend, the alignment metrics, and the `.gpo` model file.
//! `no_std` + `alloc`, no I/O: it runs in a server, a browser or on a microcontroller.
//!
//! * [`batch`]: episodes built from plain slices, padded into tensors.
//! * [`container`]: the sealed container (magic, version, length, CRC) of every file gpo stores.
//! * [`model`]: [`GpoConfig`] → `init(device)` → [`Gpo`], with `forward`, `loss` and `cross_entropy`.
//! * [`metrics`]: the OpinionQA (Wasserstein) and GlobalOpinionQA (Jensen–Shannon) alignment scores.
//! * [`weights`]: named access to a model's parameters, and seeded initialisation.
//! * [`rng`]: the portable seeded generator used wherever gpo draws random numbers.
//! * [`model_file`]: the versioned, checksummed postcard model file, in f32, f16 or bf16, with
//!   everything a model needs to be used (its prior's data included).
//! * [`prior`]: population priors (train-group mean, kNN groups) and their rule for unknown questions.
//! * [`predictor`]: [`Predictor`], the one inference path: a model file and a group's answers in,
//!   distributions out.
//! * [`template`]: the text embedded for each (question, option).
//! * `text` (feature `text`): the BERT sentence encoder that turns those texts into vectors.
//! * `parallel` (feature `std`): work split over scoped threads.
//!
//! # Features
//!
//! * default: `no_std` + `alloc`, no I/O.
//! * `std`: the standard library (threads).
//! * `text`: `std` and the pure-Rust `tokenizers`: `text::SentenceEncoder`, texts in, vectors out.
//!
//! # Using a model
//!
//! Load a `.gpo` file and predict a group's answers from a few of its answers (the demo model and
//! request bundled in `fixtures/demo/`: all-MiniLM-L6-v2 embeddings of OpinionQA questions):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let fixture = |name: &str| format!("{}/../fixtures/demo/{name}", env!("CARGO_MANIFEST_DIR"));
//! use burn_ndarray::NdArray;
//! use gpo_core::{ModelFile, Predictor, Question};
//!
//! let bytes = std::fs::read(fixture("model.gpo"))?;
//! let predictor = Predictor::<NdArray>::new(&ModelFile::from_bytes(&bytes)?, &Default::default())?;
//! // One embedding per option, the group's answers on the context questions, and keys that find
//! // each question's prior in the model file.
//! let request: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("request.json"))?)?;
//! let floats = |v: &serde_json::Value| -> Vec<f32> {
//!     v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
//! };
//! let rows = |q: &serde_json::Value| -> Vec<f32> { q["embeddings"].as_array().unwrap().iter().flat_map(floats).collect() };
//! let (context, targets) = (request["context"].as_array().unwrap(), request["targets"].as_array().unwrap());
//! let context_data: Vec<(Vec<f32>, Vec<f32>)> = context.iter().map(|q| (rows(q), floats(&q["distribution"]))).collect();
//! let target_rows: Vec<Vec<f32>> = targets.iter().map(rows).collect();
//! let context_questions: Vec<Question> = context
//!     .iter()
//!     .zip(&context_data)
//!     .map(|(q, (x, p))| Question::new(x).key(q["key"].as_str().unwrap()).answer(p))
//!     .collect();
//! let target_questions: Vec<Question> =
//!     targets.iter().zip(&target_rows).map(|(q, x)| Question::new(x).key(q["key"].as_str().unwrap())).collect();
//! let predictions = predictor.predict(&context_questions, &target_questions)?;
//! for (prediction, expected) in predictions.iter().zip(request["expected"].as_array().unwrap()) {
//!     println!("{:?} (prior from {:?})", prediction.distribution, prediction.prior.as_ref().map(|p| &p.source));
//! #   for (p, e) in prediction.distribution.iter().zip(floats(expected)) {
//! #       assert!((p - e).abs() <= 1e-6, "{p} vs {e}");
//! #   }
//! }
//! # Ok(())
//! # }
//! ```
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod batch;
pub mod container;
pub mod metrics;
pub mod model;
pub mod model_file;
#[cfg(feature = "std")]
pub mod parallel;
pub mod predictor;
pub mod prior;
pub mod rng;
pub mod template;
#[cfg(feature = "text")]
pub mod text;
pub mod weights;

pub use batch::{BatchError, Episode, GpoBatch, Question, Side};
pub use model::{Gpo, GpoConfig, GpoOutput};
pub use model_file::{ModelFile, ModelFileError, ModelMetadata, WeightDType};
pub use predictor::{PredictError, Prediction, Predictor};
pub use prior::{PopulationPrior, PriorError, PriorKind, PriorSource, PriorValue};
