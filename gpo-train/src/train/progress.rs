//! How training reports its progress: callbacks that the CLI turns into progress bars (the library
//! draws nothing itself); [`NoProgress`] ignores them.

use crate::embed::EmbedProgress;
use crate::eval::LlmProgress;
use crate::method::Method;

/// Progress of one training run.
pub trait TrainProgress {
    /// A run of `method` starts: `steps` updates in all, `done` of them already done (resumed).
    fn start(&self, _method: &Method, _steps: usize, _done: usize) {}
    /// One more update is done, with its loss and, where measured, the validation score.
    fn update(&self, _done: usize, _loss: f64, _validation: Option<f64>) {}
}

/// Progress of a whole experiment: embedding the texts missing from the cache, the language model
/// of the LLM baselines, how many (split, seed) runs, one [`TrainProgress`] per worker thread,
/// and each finished run.
pub trait ExperimentProgress: EmbedProgress + LlmProgress + Sync {
    /// The experiment has `total` runs.
    fn runs(&self, _total: usize) {}
    /// The progress of one worker thread's training runs.
    fn worker(&self) -> Box<dyn TrainProgress + '_>;
    /// One run is finished.
    fn run_done(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl TrainProgress for NoProgress {}

impl EmbedProgress for NoProgress {}

impl LlmProgress for NoProgress {}

impl ExperimentProgress for NoProgress {
    fn worker(&self) -> Box<dyn TrainProgress + '_> {
        Box::new(NoProgress)
    }
}
