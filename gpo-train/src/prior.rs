//! Population priors of a survey: gpo-core's [`PopulationPrior`] (one implementation, shared
//! with the model file, the predictor and the browser) filled with the answers of a set of the
//! survey's groups. GPO's prior variants read them, and the `train_mean` / `knn_groups` baselines
//! are them. In training, an episode's own group is left out, so that a meta-training group never
//! sees its own answers through the prior.

use gpo_core::prior::{DEFAULT_NEIGHBOURS, PopulationPrior, PriorError, PriorGroup, PriorQuestion, QuestionRef};

pub use gpo_core::prior::PriorKind;
use serde::{Deserialize, Serialize};

use crate::task::EmbeddedSurvey;

/// Which prior a question gets: from the population's answers to it, or as a new question's (a
/// prior variant's training targets: `[training] target_priors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetPriors {
    /// The population's answers to the question itself (the episode's group left out): what a
    /// test target gets under the `groups` protocol.
    #[default]
    Answered,
    /// The prior of a new question: the mean prior of its nearest other questions with as many
    /// options, its own answers set aside (gpo-core's rule for unknown questions): what a test
    /// target gets under the `questions` protocol. Measured there on OpinionQA (docs/experiments.md, "GPO
    /// variants"): validation rises, the test falls; so it is not the default.
    AsNew,
}

impl TargetPriors {
    /// How the prior sees survey question `q` (its index in the prior).
    fn question_ref(self, q: usize) -> QuestionRef {
        match self {
            Self::Answered => QuestionRef::Known(q),
            Self::AsNew => QuestionRef::Hidden(q),
        }
    }
}

/// A prior over some of a survey's groups, addressed by the survey's group and question indices.
#[derive(Debug, Clone, PartialEq)]
pub struct SurveyPrior {
    prior: PopulationPrior,
    /// Survey index of each prior group.
    groups: Vec<usize>,
}

impl SurveyPrior {
    /// The prior of `kind` drawn from `groups` (survey indices) over every question of the survey.
    pub fn new(task: &EmbeddedSurvey, kind: PriorKind, groups: &[usize]) -> Result<Self, PriorError> {
        let all: Vec<usize> = (0..task.survey.questions.len()).collect();
        Self::over(task, kind, groups, &all)
    }

    /// The prior of `kind` drawn from `groups`' answers to `questions` only (survey indices): the
    /// other questions are in the prior as questions no group answered, so their prior comes from
    /// their nearest answered questions (gpo-core's rule for unknown questions), as a new
    /// question's would.
    pub fn over(
        task: &EmbeddedSurvey,
        kind: PriorKind,
        groups: &[usize],
        questions: &[usize],
    ) -> Result<Self, PriorError> {
        let n_questions = task.survey.questions.len();
        let mut known = vec![false; n_questions];
        questions.iter().filter(|&&q| q < n_questions).for_each(|&q| known[q] = true);
        let questions = task
            .survey
            .questions
            .iter()
            .zip(&task.embeddings)
            .map(|(q, embeddings)| PriorQuestion::new(&q.key, q.ordinal.clone(), embeddings, task.dim))
            .collect();
        let prior_groups = groups
            .iter()
            .map(|&g| PriorGroup {
                name: task.survey.groups[g].name.clone(),
                answers: (0..n_questions)
                    .map(|q| task.answer(g, q).filter(|_| known[q]).map(<[f64]>::to_vec))
                    .collect(),
            })
            .collect();
        let prior = PopulationPrior::new(kind, task.metric(), DEFAULT_NEIGHBOURS, task.dim, questions, prior_groups)?;
        Ok(Self { prior, groups: groups.to_vec() })
    }

    /// The same prior with every question's neighbours ranked once
    /// ([`PopulationPrior::with_ranked_neighbours`]): for a prior that computes many priors of
    /// questions as new ones ([`Self::episode_priors`] with [`TargetPriors::AsNew`]).
    pub fn with_ranked_neighbours(self) -> Self {
        Self { prior: self.prior.with_ranked_neighbours(), groups: self.groups }
    }

    /// The core prior (what a model file stores).
    pub fn prior(&self) -> &PopulationPrior {
        &self.prior
    }

    /// Whether any prior group's answer to survey question `question` is in the prior (false for
    /// the questions [`Self::over`] left out, and for indices beyond the survey).
    pub fn is_answered(&self, question: usize) -> bool {
        self.prior.groups().iter().any(|g| g.answers.get(question).is_some_and(Option::is_some))
    }

    /// Whether survey question `question` gets a prior for survey group `group`, which is left
    /// out when it is one of the prior groups (gpo-core's [`PopulationPrior::has_prior`]), as a
    /// known question or, with [`TargetPriors::AsNew`], as a new one. On GlobalOpinionQA a
    /// question only a held-out country answered, with an option count no answered question has,
    /// has none.
    pub fn is_defined(&self, question: usize, group: Option<usize>, how: TargetPriors) -> bool {
        let exclude = group.and_then(|g| self.groups.iter().position(|&p| p == g));
        question < self.prior.questions().len() && self.prior.has_prior(&how.question_ref(question), exclude)
    }

    /// The questions of `pool` that get a prior for every group outside the prior ([`Self::is_defined`]).
    pub fn defined_in(&self, pool: &[usize]) -> Vec<usize> {
        pool.iter().copied().filter(|&q| self.is_defined(q, None, TargetPriors::Answered)).collect()
    }

    /// The survey indices of the prior groups.
    pub fn groups(&self) -> &[usize] {
        &self.groups
    }

    /// The prior distribution of each of `questions` for `group`, whose answers to `context` are
    /// shown; `group` itself is left out when it is one of the prior groups.
    pub fn distributions(
        &self,
        task: &EmbeddedSurvey,
        group: usize,
        context: &[usize],
        questions: &[usize],
    ) -> Result<Vec<Vec<f64>>, PriorError> {
        self.distributions_of(task, group, context, questions.iter().map(|&q| QuestionRef::Known(q)).collect())
    }

    /// The priors of a training episode, `context` then `targets`: as [`Self::distributions`],
    /// the targets' as `how` says (with [`TargetPriors::AsNew`], each from its nearest other
    /// questions, its own answers set aside), in one pass (the group weights computed once).
    pub fn episode_priors(
        &self,
        task: &EmbeddedSurvey,
        group: usize,
        context: &[usize],
        targets: &[usize],
        how: TargetPriors,
    ) -> Result<Vec<Vec<f64>>, PriorError> {
        let questions =
            context.iter().map(|&q| QuestionRef::Known(q)).chain(targets.iter().map(|&q| how.question_ref(q)));
        self.distributions_of(task, group, context, questions.collect())
    }

    fn distributions_of(
        &self,
        task: &EmbeddedSurvey,
        group: usize,
        context: &[usize],
        targets: Vec<QuestionRef>,
    ) -> Result<Vec<Vec<f64>>, PriorError> {
        let shown: Vec<(QuestionRef, &[f64])> =
            context.iter().filter_map(|&q| Some((QuestionRef::Known(q), task.answer(group, q)?))).collect();
        let exclude = self.groups.iter().position(|&g| g == group);
        Ok(self.prior.distributions(&shown, &targets, exclude)?.into_iter().map(|v| v.distribution).collect())
    }
}
