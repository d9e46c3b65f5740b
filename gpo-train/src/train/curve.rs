//! The training curve: what a run records at each update, stored in checkpoints and plotted in
//! reports (its own module, so that the trainer and the checkpoint both use it without a circle).

use serde::{Deserialize, Serialize};

/// One point of the training curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Updates done.
    pub step: usize,
    /// Training loss of this update's batch (none at update 0, the untrained model).
    pub loss: Option<f64>,
    /// Validation alignment, where measured.
    pub validation: Option<f64>,
    /// CPU seconds this run's updates took up to this point (the thread's CPU clock, summed over
    /// resumed sessions; validation and checkpoint writes not counted).
    #[serde(default)]
    pub cpu_seconds: f64,
}
