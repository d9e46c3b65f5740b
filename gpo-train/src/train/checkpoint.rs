//! Training checkpoints: everything needed to continue a run bit-identically (model and optimizer
//! state with their parameter ids, RNG state, step, best model so far, curve), written atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::trainer::CurvePoint;
use crate::fsutil::write_atomic;

/// Bumped whenever the layout changes; older checkpoints are refused, never misread.
pub(crate) const CHECKPOINT_VERSION: u32 = 1;

/// A serialised training state.
#[derive(Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub version: u32,
    /// Identifies the run the checkpoint belongs to (config, split and seed).
    pub fingerprint: String,
    pub step: usize,
    pub rng_state: u64,
    /// Burn record of the training model (binary, full precision).
    pub model: Vec<u8>,
    /// Burn record of the optimizer state.
    pub optimizer: Vec<u8>,
    /// Best model so far as a `.gpo` file (f32), with its step and validation score.
    pub best: Option<(usize, f64, Vec<u8>)>,
    pub curve: Vec<CurvePoint>,
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a checkpoint of this version.
    #[error("checkpoint {path} is corrupt or from another gpo version: {message}")]
    Format {
        /// File.
        path: String,
        /// Cause.
        message: String,
    },
    /// From another run.
    #[error("checkpoint {path} belongs to another run (config, split or seed differ); delete it or drop --resume")]
    OtherRun {
        /// File.
        path: String,
    },
}

impl Checkpoint {
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = postcard::to_allocvec(self)
            .map_err(|e| CheckpointError::Format { path: path.display().to_string(), message: e.to_string() })?;
        write_atomic(path, &bytes).map_err(|source| CheckpointError::Io { path: path.display().to_string(), source })
    }

    /// Loads a checkpoint of the run identified by `fingerprint`.
    pub fn load(path: &Path, fingerprint: &str) -> Result<Self, CheckpointError> {
        let display = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: display.clone(), source })?;
        let checkpoint: Checkpoint = postcard::from_bytes(&bytes)
            .map_err(|e| CheckpointError::Format { path: display.clone(), message: e.to_string() })?;
        if checkpoint.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::Format {
                path: display,
                message: format!("version {} (expected {CHECKPOINT_VERSION})", checkpoint.version),
            });
        }
        if checkpoint.fingerprint != fingerprint {
            return Err(CheckpointError::OtherRun { path: display });
        }
        Ok(checkpoint)
    }
}
