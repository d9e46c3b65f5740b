//! Population priors, the extra input of GPO's prior variants ([`gpo_core::GpoConfig::prior`]):
//! for each question of an episode, what the meta-training groups answer, either on average
//! (`train_mean`) or weighted by how well they match the episode's context answers
//! (`knn_groups`). They are the baselines of the same names, computed with the episode's own group
//! left out, so that a meta-training group never sees its own answers through the prior.

use serde::{Deserialize, Serialize};

use crate::eval::{EvalEpisode, KnnGroups, TrainGroupMean};
use crate::task::EmbeddedSurvey;

/// Which population prior a GPO variant reads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PriorKind {
    /// The meta-training groups' average answer.
    TrainMean,
    /// The meta-training groups weighted by `softmax(−misalignment / temperature)` over the
    /// context questions (the kNN-groups baseline).
    KnnGroups {
        /// Softmax temperature.
        temperature: f64,
    },
}

/// A prior over a fixed set of meta-training groups.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationPrior {
    kind: PriorKind,
    groups: Vec<usize>,
}

impl PopulationPrior {
    /// The prior of `kind` drawn from `groups`.
    pub fn new(kind: PriorKind, groups: &[usize]) -> Self {
        Self { kind, groups: groups.to_vec() }
    }

    /// The prior distribution of each of `questions` for `group`, whose answers to `context` are
    /// shown, from the other groups (uniform where none of them answered).
    pub fn distributions(
        &self,
        task: &EmbeddedSurvey,
        group: usize,
        context: &[usize],
        questions: &[usize],
    ) -> Vec<Vec<f64>> {
        let others: Vec<usize> = self.groups.iter().copied().filter(|&g| g != group).collect();
        match self.kind {
            PriorKind::TrainMean => {
                let mean = TrainGroupMean::new(&others);
                questions.iter().map(|&q| mean.prior(task, q)).collect()
            }
            PriorKind::KnnGroups { temperature } => {
                let episode = EvalEpisode { group, context: context.to_vec(), targets: questions.to_vec() };
                KnnGroups::new(&others, temperature).predict_episode(task, &episode)
            }
        }
    }
}
