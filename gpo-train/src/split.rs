//! How a run divides its data: meta-training, validation (carved out of meta-training) and test
//! groups, and in the `questions` protocol the new questions.

use gpo_core::prior::NeighbourRule;
use gpo_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

pub use crate::protocol::Protocol;
use crate::task::EmbeddedSurvey;

/// What the validation set used for model selection is made of. Never the test groups (the
/// original selects its checkpoint on them: docs/original.md §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationMode {
    /// Hold out some meta-training groups; they are scored like test groups.
    Groups,
    /// Hold out some questions; the meta-training groups are scored on them, with context from
    /// the remaining questions. Training never sees the held-out questions.
    Questions,
}

/// How every run of an experiment divides its data (the `[split]` table of a run config): the
/// validation set carved out of meta-training, and the new questions of the `questions` protocol.
/// Every method of a run shares the run's split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitOptions {
    /// What the validation set is made of.
    pub validation: ValidationMode,
    /// Fraction of the meta-training groups (or questions) held out for validation.
    pub validation_fraction: f64,
    /// Fraction of the questions held out as new in the `questions` protocol.
    pub new_questions: f64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        Self { validation: ValidationMode::Questions, validation_fraction: 0.2, new_questions: 0.2 }
    }
}

impl SplitOptions {
    /// Validation held out as `validation` (`validation_fraction` of it), the default new
    /// questions.
    pub fn validation(validation: ValidationMode, validation_fraction: f64) -> Self {
        Self { validation, validation_fraction, ..Self::default() }
    }
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
    #[error("cannot hold out {fraction} of {questions} questions")]
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
    /// What the test measures.
    pub protocol: Protocol,
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
    /// Questions validation targets come from (all questions in `Groups` mode of the `Groups`
    /// protocol).
    pub validation_questions: Vec<usize>,
    /// Questions whose answers exist outside the test groups: everything the meta-training groups,
    /// the population priors and the baselines may read at test time (every question in the
    /// `Groups` protocol), and the pool of the test groups' context questions.
    pub seen_questions: Vec<usize>,
    /// The held-out questions of the `Questions` protocol, the test targets (empty in `Groups`).
    pub new_questions: Vec<usize>,
    /// The rule that gives a question no prior group answered its prior (every population prior
    /// of the run, in training and at test time): gpo-core's default until a run selects one on
    /// its meta-training data ([`crate::prior::select_rule`]).
    #[serde(default)]
    pub neighbour_rule: NeighbourRule,
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

    /// The questions a test group's context is drawn from, and the test targets: `None` for every
    /// other question of the group (the `Groups` protocol), the new questions otherwise.
    pub fn test_pools(&self) -> (&[usize], Option<&[usize]>) {
        match self.protocol {
            Protocol::Groups => (&self.seen_questions, None),
            Protocol::Questions => (&self.seen_questions, Some(&self.new_questions)),
        }
    }

    /// The questions a validation group's context is drawn from, and its targets (`None`: every
    /// other question of the pool).
    pub fn validation_pools(&self) -> (&[usize], Option<&[usize]>) {
        match (self.protocol, self.validation) {
            (Protocol::Groups, ValidationMode::Groups) => (&self.validation_questions, None),
            _ => (&self.train_questions, Some(&self.validation_questions)),
        }
    }

    /// The questions whose answers the population prior of training may hold: every question in
    /// the `Groups` protocol (as the test-time prior), the training questions in `Questions`
    /// (validation questions are new to the prior, as the test questions are at test time).
    pub fn training_prior_questions(&self) -> &[usize] {
        match self.protocol {
            Protocol::Groups => &self.seen_questions,
            Protocol::Questions => &self.train_questions,
        }
    }

    /// Splits the task's groups: `n_train = floor(n_groups × fraction)` meta-training groups
    /// (as the original), the rest test; then carves the validation set out of meta-training.
    ///
    /// With the `Questions` protocol, `round(n_questions × options.new_questions)` questions are first held
    /// out as new (the test targets); meta-training and validation see only the others, and
    /// validation holds out the same fraction of those as its own new questions (targets, never
    /// trained on), so that selection measures what the test measures. The groups are the same
    /// as the `Groups` protocol's for the same seed.
    pub fn new(
        task: &EmbeddedSurvey,
        protocol: Protocol,
        train_fraction: f64,
        seed: u64,
        options: &SplitOptions,
    ) -> Result<Self, SplitError> {
        let SplitOptions { validation: mode, validation_fraction, new_questions: new_fraction } = *options;
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

        // Holds out `round(n × fraction)` of `questions` (at least 1, leaving at least 2), drawn
        // with `rng`: (kept, held out), both sorted. A question whose option count no kept question
        // would have is never held out: a held-out question must have answered questions of its
        // own shape (the nearest-question rule of the priors and baselines needs one), so such
        // questions are skipped in the draw and stay kept.
        let options = |q: usize| task.survey.questions[q].options.len();
        let hold_out = |mut questions: Vec<usize>, fraction: f64, rng: &mut SplitMix64| {
            let n = questions.len();
            if n < 3 {
                return Err(SplitError::TooFewQuestions { fraction, questions: n });
            }
            rng.shuffle(&mut questions);
            let wanted = ((n as f64 * fraction).round() as usize).clamp(1, n - 2);
            let mut kept_by_options: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
            questions.iter().for_each(|&q| *kept_by_options.entry(options(q)).or_default() += 1);
            let (mut kept, mut held) = (Vec::with_capacity(n), Vec::with_capacity(wanted));
            // From the end of the shuffled order, as a plain split would take them.
            for &q in questions.iter().rev() {
                let left = kept_by_options.entry(options(q)).or_default();
                if held.len() < wanted && *left > 1 {
                    *left -= 1;
                    held.push(q);
                } else {
                    kept.push(q);
                }
            }
            if held.is_empty() {
                return Err(SplitError::TooFewQuestions { fraction, questions: n });
            }
            kept.sort_unstable();
            held.sort_unstable();
            Ok((kept, held))
        };
        let (seen_questions, new_questions) = match protocol {
            Protocol::Groups => (all_questions, Vec::new()),
            // Its own stream: the groups stay those of the `Groups` protocol.
            Protocol::Questions => {
                hold_out(all_questions, new_fraction, &mut SplitMix64::new(seed ^ 0x006E_6577_7175))?
            }
        };
        let held_out = |n: usize| ((n as f64 * validation_fraction).round() as usize).clamp(1, n - 1);
        let (train_groups, validation_groups, train_questions, validation_questions) = match mode {
            ValidationMode::Groups => {
                let n_val = held_out(meta_train.len());
                let mut validation = meta_train.split_off(meta_train.len() - n_val);
                meta_train.sort_unstable();
                validation.sort_unstable();
                let (train, validation_questions) = match protocol {
                    Protocol::Groups => (seen_questions.clone(), seen_questions.clone()),
                    Protocol::Questions => hold_out(seen_questions.clone(), new_fraction, &mut rng)?,
                };
                (meta_train, validation, train, validation_questions)
            }
            ValidationMode::Questions => {
                let (questions, validation) = hold_out(seen_questions.clone(), validation_fraction, &mut rng)?;
                meta_train.sort_unstable();
                (meta_train.clone(), meta_train, questions, validation)
            }
        };
        Ok(Self {
            train_fraction,
            seed,
            protocol,
            validation: mode,
            train_groups,
            validation_groups,
            test_groups,
            train_questions,
            validation_questions,
            seen_questions,
            new_questions,
            neighbour_rule: NeighbourRule::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{SyntheticSpec, synthetic_survey};

    fn task() -> EmbeddedSurvey {
        synthetic_survey(SyntheticSpec { groups: 12, questions: 50, dim: 4, clusters: 2, sharpness: 3.0, seed: 9 })
    }

    fn union(a: &[usize], b: &[usize]) -> Vec<usize> {
        let mut all: Vec<usize> = a.iter().chain(b).copied().collect();
        all.sort_unstable();
        all
    }

    #[test]
    fn the_groups_protocol_trains_and_tests_on_every_question() {
        let task = task();
        let split = Split::new(&task, Protocol::Groups, 0.5, 4, &SplitOptions::validation(ValidationMode::Groups, 0.2))
            .unwrap();
        let all: Vec<usize> = (0..50).collect();
        assert_eq!(split.protocol, Protocol::Groups);
        assert_eq!((split.train_questions.as_slice(), split.seen_questions.as_slice()), (&all[..], &all[..]));
        assert!(split.new_questions.is_empty());
        assert_eq!(split.test_pools(), (&all[..], None));
        assert_eq!(split.validation_pools(), (&all[..], None));
        assert_eq!(split.training_prior_questions(), &all[..]);
    }

    #[test]
    fn the_questions_protocol_holds_new_questions_out_of_everything_but_the_test() {
        let task = task();
        for mode in [ValidationMode::Groups, ValidationMode::Questions] {
            let settings = SplitOptions::validation(mode, 0.2);
            let groups = Split::new(&task, Protocol::Groups, 0.5, 4, &settings).unwrap();
            let split = Split::new(&task, Protocol::Questions, 0.5, 4, &settings).unwrap();
            // Same groups as the groups protocol of the same seed.
            assert_eq!(
                (&split.train_groups, &split.validation_groups, &split.test_groups),
                (&groups.train_groups, &groups.validation_groups, &groups.test_groups)
            );
            // 10 of 50 new questions; seen ∪ new is everything, disjoint.
            assert_eq!(split.new_questions.len(), 10);
            assert_eq!(union(&split.seen_questions, &split.new_questions), (0..50).collect::<Vec<_>>());
            // Training and validation see only seen questions, and validation targets are never
            // trained on: 8 of the 40 seen questions.
            assert_eq!(split.validation_questions.len(), 8);
            assert_eq!(union(&split.train_questions, &split.validation_questions), split.seen_questions);
            assert_eq!(split.test_pools(), (&split.seen_questions[..], Some(&split.new_questions[..])));
            assert_eq!(split.validation_pools(), (&split.train_questions[..], Some(&split.validation_questions[..])));
            assert_eq!(split.training_prior_questions(), &split.train_questions[..]);
            // Every new (and validation) question has a kept question with as many options.
            let options = |q: &usize| task.survey.questions[*q].options.len();
            assert!(split.new_questions.iter().all(|q| split.seen_questions.iter().any(|s| options(s) == options(q))));
            assert!(
                split
                    .validation_questions
                    .iter()
                    .all(|q| split.train_questions.iter().any(|s| options(s) == options(q)))
            );
            // Deterministic in the seed; another seed holds out other questions.
            assert_eq!(Split::new(&task, Protocol::Questions, 0.5, 4, &settings).unwrap(), split);
            let other = Split::new(&task, Protocol::Questions, 0.5, 5, &settings).unwrap();
            assert_ne!(other.new_questions, split.new_questions);
        }
        let tiny =
            synthetic_survey(SyntheticSpec { groups: 6, questions: 2, dim: 4, clusters: 2, sharpness: 3.0, seed: 9 });
        let error =
            Split::new(&tiny, Protocol::Questions, 0.5, 0, &SplitOptions::validation(ValidationMode::Groups, 0.2));
        assert_eq!(error, Err(SplitError::TooFewQuestions { fraction: 0.2, questions: 2 }));
    }
}
