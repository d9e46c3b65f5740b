//! The methods a run reports: GPO, its variants, the baselines and the LLM baselines, with their
//! result names (`gpo`, `gpo_<variant>`, `uniform`, `train_mean`, `knn_groups`, `ridge_rm`,
//! `lm_base`, …) in one place.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::prior::PriorKind;
use crate::protocol::Protocol;

/// A method of the results.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// The faithful GPO.
    Gpo,
    /// A GPO variant of the config (`[variants.<name>]`).
    Variant(String),
    /// In each run, the GPO method with the best validation score (selection on validation only),
    /// scored on the test groups: what a user who trains every method and keeps the best gets.
    Selected,
    /// Every option equally likely.
    Uniform,
    /// The meta-training groups' average answer.
    TrainMean,
    /// The meta-training groups weighted by agreement with the context answers.
    KnnGroups,
    /// Per-group ridge regression from option embedding to probability.
    RidgeRm,
    /// New questions: the train-group mean of the nearest answered questions.
    NearestQuestion,
    /// New questions: ridge regression from option embedding to population probability.
    RidgePopulation,
    /// A language model prompted with the question ([`LmMethod`]).
    Lm(LmMethod),
}

/// The LLM baselines of the paper that prompt a language model (docs/original.md §7): its next-token
/// distribution over the option letters is the prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LmMethod {
    /// LM-base: the question alone; every group gets the same prediction.
    Base,
    /// LM-steered: the instruction asks the model to answer as a member of the group.
    Steered,
    /// Few-shot prompt: the group's answer distributions on its context questions, then the
    /// question.
    Fewshot,
    /// SFT per group: a LoRA adapter trained on the group's context questions (the zero-shot
    /// prompt, its answer distribution as the target), asked the question alone.
    Sft,
    /// Reward model: the LM with a scalar head (and an adapter) trained per group to score each
    /// option of its context questions (the prompt followed by the option's letter), the
    /// options' scores normalised by a softmax.
    RewardModel,
    /// In-context finetune: one adapter per split and seed meta-trained on the meta-training
    /// groups' few-shot prompts (their answer distributions on the context questions, then a
    /// question, its distribution the target), selected on the validation groups', asked the
    /// held-out groups' few-shot prompts.
    IncontextFt,
}

impl LmMethod {
    /// All of them, in report order.
    pub const ALL: [LmMethod; 6] = [
        LmMethod::Base,
        LmMethod::Steered,
        LmMethod::Fewshot,
        LmMethod::Sft,
        LmMethod::RewardModel,
        LmMethod::IncontextFt,
    ];

    /// Whether it trains adapters (per group on its context questions, or on the meta-training
    /// groups) rather than only prompting.
    pub fn is_trained(self) -> bool {
        matches!(self, Self::Sft | Self::RewardModel | Self::IncontextFt)
    }

    /// The name in configs (`base`, `steered`, `fewshot`, `sft`, `reward_model`, `incontext_ft`).
    pub fn id(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Steered => "steered",
            Self::Fewshot => "fewshot",
            Self::Sft => "sft",
            Self::RewardModel => "reward_model",
            Self::IncontextFt => "incontext_ft",
        }
    }
}

impl Method {
    /// The baselines, in report order.
    pub const BASELINES: [Method; 6] = [
        Method::Uniform,
        Method::TrainMean,
        Method::NearestQuestion,
        Method::RidgePopulation,
        Method::KnnGroups,
        Method::RidgeRm,
    ];

    /// The name in results (`gpo_knn`, `train_mean`, …).
    pub fn name(&self) -> String {
        match self {
            Self::Gpo => "gpo".into(),
            Self::Variant(v) => format!("gpo_{v}"),
            Self::Selected => "selected_gpo".into(),
            Self::Uniform => "uniform".into(),
            Self::TrainMean => "train_mean".into(),
            Self::KnnGroups => "knn_groups".into(),
            Self::RidgeRm => "ridge_rm".into(),
            Self::NearestQuestion => "nearest_question".into(),
            Self::RidgePopulation => "ridge_population".into(),
            Self::Lm(m) => format!("lm_{}", m.id()),
        }
    }

    /// The method a result name stands for (`None` for a name no method has).
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(variant) = name.strip_prefix("gpo_").filter(|v| !v.is_empty()) {
            return Some(Self::Variant(variant.into()));
        }
        [Self::Gpo, Self::Selected]
            .into_iter()
            .chain(Self::BASELINES)
            .chain(LmMethod::ALL.map(Self::Lm))
            .find(|m| m.name() == name)
    }

    /// Whether it is GPO, one of its variants, or the one of them selected on validation.
    pub fn is_gpo(&self) -> bool {
        matches!(self, Self::Gpo | Self::Variant(_) | Self::Selected)
    }

    /// The name in reports (`GPO (knn)`, `Train-group mean`, …).
    pub fn display_name(&self) -> String {
        match self {
            Self::Gpo => "GPO".into(),
            Self::Variant(v) => format!("GPO ({v})"),
            Self::Selected => "GPO (selected on validation)".into(),
            Self::Uniform => "Uniform".into(),
            Self::TrainMean => "Train-group mean".into(),
            Self::KnnGroups => "kNN groups".into(),
            Self::RidgeRm => "Ridge reward model".into(),
            Self::NearestQuestion => "Nearest questions' mean".into(),
            Self::RidgePopulation => "Ridge population model".into(),
            Self::Lm(LmMethod::Base) => "LM base".into(),
            Self::Lm(LmMethod::Steered) => "LM steered".into(),
            Self::Lm(LmMethod::Fewshot) => "Few-shot prompt".into(),
            Self::Lm(LmMethod::Sft) => "SFT per group".into(),
            Self::Lm(LmMethod::RewardModel) => "Reward model".into(),
            Self::Lm(LmMethod::IncontextFt) => "In-context finetune".into(),
        }
    }

    /// The baseline that predicts exactly what a prior of `kind` gives under `protocol` (a prior
    /// variant's network with its residual head off). On new questions the train-mean prior is
    /// the nearest questions' mean.
    pub fn prior_baseline(kind: &PriorKind, protocol: Protocol) -> Self {
        match (kind, protocol) {
            (PriorKind::TrainMean, Protocol::Groups) => Self::TrainMean,
            (PriorKind::TrainMean, Protocol::Questions) => Self::NearestQuestion,
            (PriorKind::KnnGroups { .. }, _) => Self::KnnGroups,
        }
    }

    /// The baselines evaluated under `protocol`: under `questions` only those that exist for a
    /// question no group answered.
    pub fn baselines(protocol: Protocol) -> Vec<Self> {
        let applies = |m: &Self| match protocol {
            Protocol::Groups => !matches!(m, Self::NearestQuestion | Self::RidgePopulation),
            Protocol::Questions => !matches!(m, Self::TrainMean),
        };
        Self::BASELINES.into_iter().filter(applies).collect()
    }
}

/// Results name methods by [`Method::name`] (`"gpo_knn"`).
impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

/// A name no method has is an error naming it.
impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Method::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("no method is named `{name}`")))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::{LmMethod, Method};

    #[test]
    fn names_round_trip() {
        let all = [Method::Gpo, Method::Variant("knn".into()), Method::Selected]
            .into_iter()
            .chain(Method::BASELINES)
            .chain(LmMethod::ALL.map(Method::Lm));
        for m in all {
            assert_eq!(Method::parse(&m.name()), Some(m.clone()));
        }
        assert_eq!(Method::parse("gpo_"), None);
        assert_eq!(Method::parse("other"), None);
    }

    #[test]
    fn results_name_methods_by_their_names() {
        let methods = vec![Method::Variant("knn".into()), Method::Lm(LmMethod::Fewshot), Method::Selected];
        let json = serde_json::to_string(&methods).unwrap();
        assert_eq!(json, r#"["gpo_knn","lm_fewshot","selected_gpo"]"#);
        assert_eq!(serde_json::from_str::<Vec<Method>>(&json).unwrap(), methods);
        let error = serde_json::from_str::<Method>(r#""gpo_""#).unwrap_err().to_string();
        assert!(error.contains("no method is named `gpo_`"), "{error}");
    }
}
