//! Prompt templates: one text per (question, option), the string that gets embedded.

use std::fmt;
use std::str::FromStr;

use super::EmbedError;
use crate::data::{Question, Survey};

/// The instruction GPO puts before every question (GPO-SPEC §2.1).
const GPO_INSTRUCTION: &str = "Answer the following question by picking ONE of the given options";

/// A named way to turn a question and one of its options into text. The id is recorded in every
/// cache so that vectors made with one template are never used with another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Template {
    /// The original GPO prompt: the Alpaca template around the question and its lettered options,
    /// followed by the chosen option (`prompt_answer` in the official `get_embeds.py`).
    #[default]
    Gpo,
    /// The question, a newline, the option.
    Plain,
}

impl Template {
    /// All templates, for help texts.
    pub const ALL: [Template; 2] = [Template::Gpo, Template::Plain];

    /// The id recorded in caches.
    pub fn id(self) -> &'static str {
        match self {
            Template::Gpo => "gpo",
            Template::Plain => "plain",
        }
    }

    /// One text per option of `question`, in option order.
    pub fn texts(self, question: &Question) -> Result<Vec<String>, EmbedError> {
        match self {
            Template::Gpo => {
                let letters = option_letters(question)?;
                let mut input = format!("{}\n\nOptions:", question.text);
                for (letter, option) in letters.iter().zip(&question.options) {
                    input.push_str(&format!("\n{letter}. {option}"));
                }
                let prompt = alpaca_prompt(GPO_INSTRUCTION, &input);
                Ok(letters.iter().zip(&question.options).map(|(l, o)| format!("{prompt}{l}. {o}")).collect())
            }
            Template::Plain => Ok(question.options.iter().map(|o| format!("{}\n{o}", question.text)).collect()),
        }
    }

    /// Every text of `survey`: all options of all questions, in order (what a cache must hold).
    pub fn survey_texts(self, survey: &Survey) -> Result<Vec<String>, EmbedError> {
        let mut texts = Vec::new();
        for question in &survey.questions {
            texts.extend(self.texts(question)?);
        }
        Ok(texts)
    }
}

/// The Alpaca "with input" prompt. The preamble, the `### …:` headers and the blank lines match
/// `PROMPT_DICT["prompt_input"]` in tatsu-lab/stanford_alpaca `train.py` character for character.
/// That string ends at `### Response:`; GPO's own copy (data/constants.py, GPO-SPEC §2.1) adds a
/// newline after it, and we follow GPO since the aim is to reproduce its embeddings.
fn alpaca_prompt(instruction: &str, input: &str) -> String {
    format!(
        "Below is an instruction that describes a task, paired with an input that provides further context. \
         Write a response that appropriately completes the request.\n\n\
         ### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
    )
}

/// `A`, `B`, … for each option (GPO's `ALPHABET`); more than 26 options cannot be lettered.
fn option_letters(question: &Question) -> Result<Vec<char>, EmbedError> {
    if question.options.len() > 26 {
        return Err(EmbedError::Template(format!(
            "question {:?} has {} options; the gpo template letters at most 26 (A–Z)",
            question.key,
            question.options.len()
        )));
    }
    Ok((b'A'..).take(question.options.len()).map(char::from).collect())
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Template {
    type Err = EmbedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::ALL.into_iter().find(|t| t.id() == s).ok_or_else(|| {
            let known: Vec<&str> = Template::ALL.iter().map(|t| t.id()).collect();
            EmbedError::Template(format!("unknown template {s:?} (known: {})", known.join(", ")))
        })
    }
}
