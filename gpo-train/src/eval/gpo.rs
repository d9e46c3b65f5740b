//! GPO as a [`Predictor`]: gpo-core's [`gpo_core::Predictor`] (the inference path every consumer
//! uses) on the survey's episodes, a few groups per forward pass.

use burn::tensor::backend::Backend;
use gpo_core::{Gpo, ModelFile, PopulationPrior, Question};

use super::{EvalEpisode, EvalError, Predictions, Predictor};
use crate::method::Method;
use crate::task::EmbeddedSurvey;

/// Groups per forward pass.
const GROUPS_PER_BATCH: usize = 4;

/// A trained GPO model used for prediction.
pub struct GpoPredictor<B: Backend> {
    predictor: gpo_core::Predictor<B>,
    method: Method,
}

impl<B: Backend> GpoPredictor<B> {
    /// Wraps `model`, which reads `prior` if it is a prior model, as `method`.
    pub fn new(model: Gpo<B>, method: Method, prior: Option<PopulationPrior>) -> Result<Self, EvalError> {
        Ok(Self { predictor: gpo_core::Predictor::from_model(model, prior)?, method })
    }

    /// An exported model file, exactly as an app would use it.
    pub fn from_file(file: &ModelFile, device: &B::Device, method: Method) -> Result<Self, EvalError> {
        Ok(Self { predictor: gpo_core::Predictor::new(file, device)?, method })
    }

    /// The core predictor.
    pub fn inner(&self) -> &gpo_core::Predictor<B> {
        &self.predictor
    }
}

/// An episode's context and target questions as predictor questions (keyed by the survey's
/// question keys; context answers as f32).
pub fn episode_questions<'a>(
    task: &'a EmbeddedSurvey,
    episode: &EvalEpisode,
    answers: &'a [Vec<f32>],
) -> (Vec<Question<'a>>, Vec<Question<'a>>) {
    let question = |q: usize| Question::new(&task.embeddings[q]).key(&task.survey.questions[q].key);
    let context = episode.context.iter().zip(answers).map(|(&q, a)| question(q).answer(a)).collect();
    let targets = episode.targets.iter().map(|&q| question(q)).collect();
    (context, targets)
}

/// The context group's answers to the episode's context questions, as f32.
pub fn context_answers(task: &EmbeddedSurvey, episode: &EvalEpisode) -> Vec<Vec<f32>> {
    episode
        .context
        .iter()
        .map(|&q| task.answer(episode.context_group, q).unwrap_or_default().iter().map(|&v| v as f32).collect())
        .collect()
}

impl<B: Backend> Predictor for GpoPredictor<B> {
    fn name(&self) -> Method {
        self.method.clone()
    }

    fn predict(&self, task: &EmbeddedSurvey, episodes: &[EvalEpisode]) -> Result<Predictions, EvalError> {
        let answers: Vec<Vec<Vec<f32>>> = episodes.iter().map(|e| context_answers(task, e)).collect();
        let questions: Vec<(Vec<Question<'_>>, Vec<Question<'_>>)> =
            episodes.iter().zip(&answers).map(|(e, a)| episode_questions(task, e, a)).collect();
        let requests: Vec<(&[Question<'_>], &[Question<'_>])> =
            questions.iter().map(|(c, t)| (c.as_slice(), t.as_slice())).collect();
        let predictions = self.predictor.predict_groups(&requests, GROUPS_PER_BATCH)?;
        Ok(predictions
            .into_iter()
            .map(|group| group.into_iter().map(|p| p.distribution.into_iter().map(f64::from).collect()).collect())
            .collect())
    }
}
