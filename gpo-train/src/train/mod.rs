//! Meta-training: episodes over the training groups, Adam with cosine decay, model selection on a
//! validation split carved out of the meta-training data, atomic checkpoints and exact resume.

mod checkpoint;
mod curve;
pub mod progress;
mod record;

pub use checkpoint::{CheckpointError, CheckpointFormat};
pub use record::{LayoutError, RecordError};
pub mod sampler;
mod trainer;

pub use crate::prior::TargetPriors;
pub use crate::split::{Protocol, Split, SplitError, SplitOptions, ValidationMode};
pub use curve::CurvePoint;
pub use progress::{ExperimentProgress, NoProgress, TrainProgress};
pub use sampler::{EpisodeSampler, Sampling};
pub use trainer::{
    GpoMethod, Objective, Session, TrainError, TrainOptions, Trained, cosine_learning_rate, thread_cpu_seconds, train,
    validation_episodes,
};
pub(crate) use {record::new_optimizer, trainer::parts, trainer::update};
