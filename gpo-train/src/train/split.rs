//! Group splits: meta-training, validation (carved out of meta-training) and test groups.

use gpo_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::task::EmbeddedSurvey;

/// What the validation set used for model selection is made of. Never the test groups (the
/// original selects its checkpoint on them: GPO-SPEC §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationMode {
    /// Hold out some meta-training groups; they are scored like test groups.
    Groups,
    /// Hold out some questions; the meta-training groups are scored on them, with context from
    /// the remaining questions. Training never sees the held-out questions.
    Questions,
}

/// Why a split cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// Too few groups for the requested fractions.
    #[error(
        "train fraction {fraction} of {groups} groups leaves {train} meta-training and {test} test groups; both need at least {min_train} and 1"
    )]
    Impossible {
        /// Requested fraction.
        fraction: f64,
        /// Groups available.
        groups: usize,
        /// Resulting training groups.
        train: usize,
        /// Resulting test groups.
        test: usize,
        /// Minimum training groups (2 when validation holds out groups).
        min_train: usize,
    },
    /// Too few questions to hold some out.
    #[error("cannot hold out {fraction} of {questions} questions for validation")]
    TooFewQuestions {
        /// Requested fraction.
        fraction: f64,
        /// Questions available.
        questions: usize,
    },
}

/// The groups and questions each stage may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Fraction of groups used for meta-training (validation included), as the paper's 40/60/80%.
    pub train_fraction: f64,
    /// Seed of the split.
    pub seed: u64,
    /// What the validation set is made of.
    pub validation: ValidationMode,
    /// Groups whose episodes train the model.
    pub train_groups: Vec<usize>,
    /// Groups scored for model selection (the training groups in `Questions` mode).
    pub validation_groups: Vec<usize>,
    /// Held-out test groups.
    pub test_groups: Vec<usize>,
    /// Questions training episodes may use.
    pub train_questions: Vec<usize>,
    /// Questions validation targets come from (all questions in `Groups` mode).
    pub validation_questions: Vec<usize>,
}

impl Split {
    /// Every meta-training group: the training groups and, in `Groups` mode, the validation
    /// groups. Baselines and population priors at test time draw on all of them.
    pub fn meta_train_groups(&self) -> Vec<usize> {
        let mut groups: Vec<usize> = self.train_groups.iter().chain(&self.validation_groups).copied().collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// Splits the task's groups: `n_train = floor(n_groups × fraction)` meta-training groups
    /// (as the original), the rest test; then carves the validation set out of meta-training.
    pub fn new(
        task: &EmbeddedSurvey,
        train_fraction: f64,
        seed: u64,
        mode: ValidationMode,
        validation_fraction: f64,
    ) -> Result<Self, SplitError> {
        let n_groups = task.n_groups();
        let n_train = (n_groups as f64 * train_fraction).floor() as usize;
        let min_train = if mode == ValidationMode::Groups { 2 } else { 1 };
        if n_train < min_train || n_train >= n_groups {
            return Err(SplitError::Impossible {
                fraction: train_fraction,
                groups: n_groups,
                train: n_train,
                test: n_groups.saturating_sub(n_train),
                min_train,
            });
        }
        let mut rng = SplitMix64::new(seed);
        let mut groups: Vec<usize> = (0..n_groups).collect();
        rng.shuffle(&mut groups);
        let mut meta_train = groups[..n_train].to_vec();
        let mut test_groups = groups[n_train..].to_vec();
        test_groups.sort_unstable();
        let all_questions: Vec<usize> = (0..task.survey.questions.len()).collect();

        let held_out = |n: usize| ((n as f64 * validation_fraction).round() as usize).clamp(1, n - 1);
        let (train_groups, validation_groups, train_questions, validation_questions) = match mode {
            ValidationMode::Groups => {
                let n_val = held_out(meta_train.len());
                let mut validation = meta_train.split_off(meta_train.len() - n_val);
                meta_train.sort_unstable();
                validation.sort_unstable();
                (meta_train, validation, all_questions.clone(), all_questions)
            }
            ValidationMode::Questions => {
                if all_questions.len() < 3 {
                    return Err(SplitError::TooFewQuestions {
                        fraction: validation_fraction,
                        questions: all_questions.len(),
                    });
                }
                let mut questions = all_questions;
                rng.shuffle(&mut questions);
                let mut validation = questions.split_off(questions.len() - held_out(questions.len()));
                questions.sort_unstable();
                validation.sort_unstable();
                meta_train.sort_unstable();
                (meta_train.clone(), meta_train, questions, validation)
            }
        };
        Ok(Self {
            train_fraction,
            seed,
            validation: mode,
            train_groups,
            validation_groups,
            test_groups,
            train_questions,
            validation_questions,
        })
    }
}
