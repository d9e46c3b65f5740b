//! GPO as a [`Predictor`]: episodes are batched through the model, a few groups at a time.

use burn::tensor::backend::Backend;
use gpo_core::{Gpo, GpoBatch};

use super::{EvalEpisode, EvalError, Predictions, Predictor};
use crate::task::EmbeddedSurvey;
use crate::train::sampler::episode;

/// A trained GPO model used for prediction.
pub struct GpoPredictor<'m, B: Backend> {
    model: &'m Gpo<B>,
    device: B::Device,
    name: String,
    groups_per_batch: usize,
}

impl<'m, B: Backend> GpoPredictor<'m, B> {
    /// Wraps `model`; results are reported under `name`.
    pub fn new(model: &'m Gpo<B>, device: &B::Device, name: &str) -> Self {
        Self { model, device: device.clone(), name: name.to_string(), groups_per_batch: 4 }
    }
}

impl<B: Backend> Predictor for GpoPredictor<'_, B> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        let mut out = Vec::with_capacity(episodes.len());
        for chunk in episodes.chunks(self.groups_per_batch) {
            let model_episodes = chunk
                .iter()
                .map(|e| episode(task, e.group, &e.context, &e.targets, false))
                .collect::<Result<Vec<_>, _>>()?;
            let batch = GpoBatch::<B>::new(&model_episodes, &self.device)?;
            out.extend(
                self.model
                    .predict(&batch)
                    .into_iter()
                    .map(|questions| questions.into_iter().map(|p| p.into_iter().map(f64::from).collect()).collect()),
            );
        }
        Ok(out)
    }
}
