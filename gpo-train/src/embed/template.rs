//! Prompt templates on gpo-train's survey types. The template itself (the text embedded for each
//! (question, option)) has one implementation, in gpo-core ([`Template`]), which the model file
//! records and the browser bindings use.

pub use gpo_core::template::Template;

use super::EmbedError;
use crate::data::{Question, Survey};

/// [`Template`] applied to a survey's questions.
pub trait SurveyTemplate {
    /// One text per option of `question`, in option order.
    fn question_texts(self, question: &Question) -> Result<Vec<String>, EmbedError>;

    /// Every text of `survey`: all options of all questions, in order (what a cache must hold).
    fn survey_texts(self, survey: &Survey) -> Result<Vec<String>, EmbedError>;
}

impl SurveyTemplate for Template {
    fn question_texts(self, question: &Question) -> Result<Vec<String>, EmbedError> {
        self.texts(&question.text, &question.options)
            .map_err(|e| EmbedError::Template(format!("question {:?}: {e}", question.key)))
    }

    fn survey_texts(self, survey: &Survey) -> Result<Vec<String>, EmbedError> {
        let mut texts = Vec::new();
        for question in &survey.questions {
            texts.extend(self.question_texts(question)?);
        }
        Ok(texts)
    }
}
