//! Text templates: the string embedded for each (question, option) pair. One implementation,
//! shared by `gpo embed`, the model file (which records the template its inputs need) and the
//! browser bindings.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// The instruction GPO puts before every question (docs/original.md §2.1).
const GPO_INSTRUCTION: &str = "Answer the following question by picking ONE of the given options";

/// Most options the `gpo` template can letter (A–Z).
pub const MAX_LETTERED_OPTIONS: usize = 26;

/// Why a question cannot be turned into texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A question without options.
    #[error("a question needs at least one option")]
    NoOptions,
    /// More options than the template can letter.
    #[error("{0} options; the gpo template letters at most 26 (A–Z)")]
    TooManyOptions(usize),
    /// An unknown template id.
    #[error("unknown template {0:?} (known: gpo, plain)")]
    Unknown(String),
}

/// A named way to turn a question and one of its options into text. The id is recorded in every
/// embedding cache and model file so that vectors made with one template are never used with
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

    /// The id recorded in caches and model files.
    pub fn id(self) -> &'static str {
        match self {
            Template::Gpo => "gpo",
            Template::Plain => "plain",
        }
    }

    /// One text per option of the question `text` with `options`, in option order.
    ///
    /// ```
    /// use gpo_core::template::Template;
    /// let texts = Template::Plain.texts("Is it raining?", &["Yes", "No"]).unwrap();
    /// assert_eq!(texts, ["Is it raining?\nYes", "Is it raining?\nNo"]);
    /// ```
    pub fn texts<S: AsRef<str>>(self, text: &str, options: &[S]) -> Result<Vec<String>, TemplateError> {
        if options.is_empty() {
            return Err(TemplateError::NoOptions);
        }
        match self {
            Template::Gpo => {
                let prompt = alpaca_prompt(GPO_INSTRUCTION, &lettered_question(text, options)?);
                Ok(letters().zip(options).map(|(l, o)| format!("{prompt}{l}. {}", o.as_ref())).collect())
            }
            Template::Plain => Ok(options.iter().map(|o| format!("{text}\n{}", o.as_ref())).collect()),
        }
    }
}

/// The option letters, `A`, `B`, … (at most [`MAX_LETTERED_OPTIONS`] are used).
pub fn letters() -> impl Iterator<Item = char> {
    (b'A'..=b'Z').map(char::from)
}

/// A question with its lettered options, as GPO's prompts show it (docs/original.md §2.1):
/// `{question}\n\nOptions:\nA. {option}\nB. …`.
///
/// ```
/// use gpo_core::template::lettered_question;
/// assert_eq!(lettered_question("Q?", &["x", "y"]).unwrap(), "Q?\n\nOptions:\nA. x\nB. y");
/// ```
pub fn lettered_question<S: AsRef<str>>(text: &str, options: &[S]) -> Result<String, TemplateError> {
    if options.is_empty() {
        return Err(TemplateError::NoOptions);
    }
    if options.len() > MAX_LETTERED_OPTIONS {
        return Err(TemplateError::TooManyOptions(options.len()));
    }
    let mut input = format!("{text}\n\nOptions:");
    for (letter, option) in letters().zip(options) {
        input.push_str(&format!("\n{letter}. {}", option.as_ref()));
    }
    Ok(input)
}

/// The Alpaca "with input" prompt. The preamble, the `### …:` headers and the blank lines match
/// `PROMPT_DICT["prompt_input"]` in tatsu-lab/stanford_alpaca `train.py` character for character.
/// That string ends at `### Response:`; GPO's own copy (data/constants.py, docs/original.md §2.1) adds a
/// newline after it, and we follow GPO since the aim is to reproduce its embeddings.
pub fn alpaca_prompt(instruction: &str, input: &str) -> String {
    format!(
        "Below is an instruction that describes a task, paired with an input that provides further context. \
         Write a response that appropriately completes the request.\n\n\
         ### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
    )
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::ALL.into_iter().find(|t| t.id() == s).ok_or_else(|| TemplateError::Unknown(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpo_template_letters_the_options() {
        let texts = Template::Gpo.texts("Q?", &["x", "y"]).unwrap();
        let prompt = "Below is an instruction that describes a task, paired with an input that provides further \
                      context. Write a response that appropriately completes the request.\n\n### Instruction:\n\
                      Answer the following question by picking ONE of the given options\n\n### Input:\nQ?\n\n\
                      Options:\nA. x\nB. y\n\n### Response:\n";
        assert_eq!(texts, [format!("{prompt}A. x"), format!("{prompt}B. y")]);
        assert_eq!(Template::Gpo.texts("Q?", &["o"; 27]), Err(TemplateError::TooManyOptions(27)));
        assert_eq!(Template::Plain.texts::<&str>("Q?", &[]), Err(TemplateError::NoOptions));
        assert_eq!("plain".parse(), Ok(Template::Plain));
        assert!("other".parse::<Template>().is_err());
    }
}
