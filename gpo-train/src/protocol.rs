//! The two evaluation protocols of a run: held-out groups (the paper's) and new questions.

use serde::{Deserialize, Serialize};

/// What the test measures: how GPO generalises to new groups, or to new groups on new questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// The paper's protocol: held-out groups, every question. A held-out group shows `k` of its
    /// answers and is scored on all its other questions, which the meta-training groups answered.
    #[default]
    Groups,
    /// New questions: a fraction of the questions is held out of meta-training, validation and
    /// every population statistic; held-out groups show `k` answers to seen questions and are
    /// scored on the held-out questions only, which no group answered before.
    Questions,
}

impl Protocol {
    /// The name in results (`groups`, `questions`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Groups => "groups",
            Self::Questions => "questions",
        }
    }
}

impl Protocol {
    /// What a held-out group is scored on, for reports.
    pub fn description(self) -> &'static str {
        match self {
            Self::Groups => "held-out groups, every question",
            Self::Questions => "held-out groups on new questions (held out of meta-training)",
        }
    }
}
