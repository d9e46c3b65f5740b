#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! * [`batch`]: episodes built from plain slices, padded into tensors.
//! * [`container`]: the sealed container (magic, version, length, CRC) of every file gpo stores.
//! * [`model`]: [`GpoConfig`] → `init(device)` → [`Gpo`], with `forward`, `loss` and `cross_entropy`.
//! * [`metrics`]: the OpinionQA (Wasserstein) and GlobalOpinionQA (Jensen–Shannon) alignment scores.
//! * [`weights`]: named access to a model's parameters, and seeded initialisation.
//! * [`request`]: the serde request and response of a prediction (questions by embeddings, text or key).
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
//! # Using a model
//!
//! Load a `.gpo` file and predict a group's answers from a few of its answers, the questions
//! given by their options' embeddings (the demo model and request bundled in `fixtures/demo/`:
//! all-MiniLM-L6-v2 embeddings of OpinionQA questions, with keys that find each question's prior
//! in the model file):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let fixture = |name: &str| format!("{}/../fixtures/demo/{name}", env!("CARGO_MANIFEST_DIR"));
//! use burn_ndarray::NdArray;
//! use gpo_core::{Predictor, Request};
//!
//! let predictor = Predictor::<NdArray>::from_bytes(&std::fs::read(fixture("model.gpo"))?, &Default::default())?;
//! let file: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("request.json"))?)?;
//! let request: Request =
//!     serde_json::from_value(serde_json::json!({ "context": file["context"], "targets": file["targets"] }))?;
//! let response = predictor.answer(&request)?;
//! for prediction in &response.predictions {
//!     println!("{:?}: {:?}", prediction.key, prediction.distribution);
//! }
//! # let expected: Vec<Vec<f32>> = serde_json::from_value(file["expected"].clone())?;
//! # for (prediction, expected) in response.predictions.iter().zip(&expected) {
//! #     for (p, e) in prediction.distribution.iter().zip(expected) {
//! #         assert!((p - e).abs() <= 1e-6, "{p} vs {e}");
//! #     }
//! # }
//! # assert_eq!(response.predictions.len(), expected.len());
//! # Ok(())
//! # }
//! ```
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
// `burn::…` paths (ours and those Burn's derive macros write) name burn-core, as in burn-nn.
extern crate burn_core as burn;
#[cfg(feature = "std")]
extern crate std;

/// `From` conversions into error variants whose message already prints their cause
/// (`#[error("what failed: {0}")]`). thiserror's `#[from]` would also make the cause the error's
/// `source`, and a chain printer (anyhow's `{:#}`) would then print it twice.
#[doc(hidden)]
#[macro_export]
macro_rules! cause_in_message {
    ($error:ty { $($variant:ident($cause:ty)),* $(,)? }) => {
        $(impl From<$cause> for $error {
            fn from(cause: $cause) -> Self {
                Self::$variant(cause)
            }
        })*
    };
}

pub mod batch;
pub mod container;
pub mod metrics;
pub mod model;
pub mod model_file;
#[cfg(feature = "std")]
pub mod parallel;
pub mod predictor;
pub mod prior;
pub mod request;
pub mod rng;
pub mod template;
#[cfg(feature = "text")]
pub mod text;
pub mod weights;

pub use batch::{BatchError, Episode, GpoBatch, Question, Side};
pub use container::{FieldError, FieldSpan};
pub use model::{Gpo, GpoConfig, GpoOutput};
pub use model_file::{ModelFile, ModelFileError, ModelMetadata, WeightDType};
pub use predictor::{PredictError, Prediction, Predictor};
pub use prior::{PopulationPrior, PriorError, PriorKind, PriorSource, PriorValue};
pub use request::{Request, RequestError, RequestQuestion, Response};
