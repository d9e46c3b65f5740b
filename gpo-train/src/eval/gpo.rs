//! GPO as a [`Predictor`]: episodes are batched through the model, a few groups at a time.

use burn::tensor::backend::Backend;
use gpo_core::{Gpo, GpoBatch};

use super::{EvalEpisode, EvalError, Predictions, Predictor};
use crate::prior::PopulationPrior;
use crate::task::EmbeddedSurvey;
use crate::train::sampler::episode;

/// A trained GPO model used for prediction.
pub struct GpoPredictor<'m, B: Backend> {
    model: &'m Gpo<B>,
    device: B::Device,
    name: String,
    prior: Option<PopulationPrior>,
    groups_per_batch: usize,
}

impl<'m, B: Backend> GpoPredictor<'m, B> {
    /// Wraps `model`, which reads `prior` if it is a prior variant; results are reported under
    /// `name`.
    pub fn new(model: &'m Gpo<B>, device: &B::Device, name: &str, prior: Option<PopulationPrior>) -> Self {
        Self { model, device: device.clone(), name: name.to_string(), prior, groups_per_batch: 4 }
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
                .map(|e| episode(task, e.group, &e.context, &e.targets, false, self.prior.as_ref()))
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
