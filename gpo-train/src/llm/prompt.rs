//! The prompts of the LLM baselines (docs/original.md §7): a question with its lettered options, alone
//! (`lm_base`), with a persona in the instruction (`lm_steered`) or after the group's answer
//! distributions on its context questions (`lm_fewshot`), in the model's prompt format. The
//! model's next token after the prompt is read as its answer letter ([`super::ChoiceScorer`]).
//!
//! The texts follow the official scripts (`eval_basemodel.py`, `eval_basemodel_fewshot.py`), with
//! these changes, each listed in docs/llm.md, "LLM baselines":
//! - percentages in the few-shot context always carry two decimals (`12.30%`, not Python's
//!   `round(·, 2)` repr `12.3%`), so that one rule formats them;
//! - the letter order of a context answer distribution is shuffled by a seeded generator (the
//!   original used Python's unseeded `random`), so prompts are reproducible;
//! - OpinionQA's steering texts (`model_input/steer-portray.csv`) are not in `../shared/data`: the
//!   steered instruction is the GlobalOpinionQA form, "… as if you are {persona}.", with the
//!   persona written from the group's attribute ([`persona`]).

use gpo_core::template::{TemplateError, alpaca_prompt, lettered_question, letters};
use serde::{Deserialize, Serialize};

/// The instruction of the zero-shot evaluations (docs/original.md §7).
pub const EVAL_INSTRUCTION: &str = "Answer the following question by selecting ONE of the listed options";

/// The instruction of the few-shot prompt (`eval_basemodel_fewshot.py`).
pub const FEWSHOT_INSTRUCTION: &str = "Given the answer distributions from a specific demographic group for certain \
     questions in a public opinion survey, answer the subsequent new question by selecting ONE of the options, as if \
     you are a member of this identified demographic group:";

/// How an instruction and its input become one prompt: the template the model was tuned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// The Alpaca "with input" template (the paper's Alpaca-7B runs).
    Alpaca,
    /// ChatML (`<|im_start|>system … <|im_end|>`), the chat template of SmolLM2-Instruct and
    /// Qwen: the instruction as the system message, the input as the user's, the answer opening
    /// the assistant's turn (as the paper's Llama-2-chat runs put the instruction in the system
    /// prompt).
    Chatml,
}

impl PromptFormat {
    /// The prompt whose continuation is the answer.
    pub fn wrap(self, instruction: &str, input: &str) -> String {
        match self {
            Self::Alpaca => alpaca_prompt(instruction, input),
            Self::Chatml => format!(
                "<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
            ),
        }
    }
}

/// A survey question as the model sees it.
#[derive(Debug, Clone, Copy)]
pub struct QuestionText<'a> {
    /// The question.
    pub text: &'a str,
    /// Its options, in order (lettered A, B, …).
    pub options: &'a [String],
}

/// A context question of the few-shot prompt: the question, the group's answer distribution and
/// the order in which its letters are listed (a permutation of the option indices).
#[derive(Debug, Clone)]
pub struct AnsweredQuestion<'a> {
    /// The question.
    pub question: QuestionText<'a>,
    /// The group's probability per option.
    pub distribution: &'a [f64],
    /// Option indices in the order they are listed.
    pub order: Vec<usize>,
}

/// The zero-shot prompt: the question alone (`lm_base`), or with a persona (`lm_steered`).
pub fn zero_shot(format: PromptFormat, question: QuestionText, persona: Option<&str>) -> Result<String, TemplateError> {
    let instruction = match persona {
        None => format!("{EVAL_INSTRUCTION}."),
        Some(persona) => format!("{EVAL_INSTRUCTION} as if you are {persona}."),
    };
    Ok(format.wrap(&instruction, &lettered_question(question.text, question.options)?))
}

/// The few-shot prompt (`lm_fewshot`): the group's answer distributions on its context
/// questions, then the new question.
pub fn few_shot(
    format: PromptFormat,
    context: &[AnsweredQuestion],
    target: QuestionText,
) -> Result<String, TemplateError> {
    let mut input = String::from("Context: Public Opinion Survey Answers from a Specific Demographic Group\n\n");
    for (i, answered) in context.iter().enumerate() {
        let question = lettered_question(answered.question.text, answered.question.options)?;
        input.push_str(&format!("Question {}:\n{question}\nAnswer Distribution of this group:\n", i + 1));
        let letter: Vec<char> = letters().take(answered.question.options.len()).collect();
        let shares: Vec<String> = answered
            .order
            .iter()
            .filter_map(|&o| Some(format!("{}: {:.2}%", letter.get(o)?, answered.distribution.get(o)? * 100.0)))
            .collect();
        input.push_str(&shares.join(", "));
        input.push_str("\n\n");
    }
    input.push_str(
        "\nBased on the above list of answered questions from a demographic group, answer the NEW question by \
         selecting only ONE of the options, as if you are a member of this demographic group: \nNew question: \n\n",
    );
    input.push_str(&lettered_question(target.text, target.options)?);
    Ok(format.wrap(FEWSHOT_INSTRUCTION, &input))
}

/// How the steered instruction names a group: "as if you are {persona}". OpinionQA's attributes
/// (Pew's demographic variables) get a phrase each; GlobalOpinionQA's countries "from {country}"
/// as in the original; any other attribute "a member of the group {group} ({attribute})".
pub fn persona(attribute: &str, group: &str) -> String {
    let lower = group.to_lowercase();
    match attribute {
        "CREGION" => format!("living in the {group} of the United States"),
        "POLPARTY" => format!("a {group}"),
        "POLIDEOLOGY" => format!("politically {lower}"),
        "SEX" => lower,
        "RACE" | "RELIG" => group.to_owned(),
        "EDUCATION" => format!("someone whose education is: {group}"),
        "INCOME" => format!("someone whose family income is {lower}"),
        "COUNTRY" => format!("from {group}"),
        _ => format!("a member of the group {group} ({attribute})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_read_as_the_originals() {
        let options = vec!["Yes".to_owned(), "No".to_owned()];
        let q = QuestionText { text: "Q?", options: &options };
        let base = zero_shot(PromptFormat::Chatml, q, None).unwrap();
        assert_eq!(
            base,
            "<|im_start|>system\nAnswer the following question by selecting ONE of the listed options.<|im_end|>\n\
             <|im_start|>user\nQ?\n\nOptions:\nA. Yes\nB. No<|im_end|>\n<|im_start|>assistant\n"
        );
        let steered = zero_shot(PromptFormat::Alpaca, q, Some(&persona("POLPARTY", "Democrat"))).unwrap();
        assert!(steered.contains("### Instruction:\nAnswer the following question by selecting ONE of the listed options as if you are a Democrat.\n\n### Input:\nQ?"));
        let context = [AnsweredQuestion { question: q, distribution: &[0.25, 0.75], order: vec![1, 0] }];
        let few = few_shot(PromptFormat::Chatml, &context, q).unwrap();
        assert!(few.contains("Question 1:\nQ?\n\nOptions:\nA. Yes\nB. No\nAnswer Distribution of this group:\nB: 75.00%, A: 25.00%\n\n\nBased on"));
        assert!(few.ends_with("New question: \n\nQ?\n\nOptions:\nA. Yes\nB. No<|im_end|>\n<|im_start|>assistant\n"));
        assert_eq!(persona("CREGION", "South"), "living in the South of the United States");
        assert_eq!(persona("COUNTRY", "Nigeria"), "from Nigeria");
        assert!(zero_shot(PromptFormat::Chatml, QuestionText { text: "Q", options: &[] }, None).is_err());
    }
}
