//! The methods a run reports: GPO, its variants and the baselines, with their result names
//! (`gpo`, `gpo_<variant>`, `uniform`, `train_mean`, `knn_groups`, `ridge_rm`) in one place.

use std::fmt;

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
        }
    }

    /// The method a result name stands for (`None` for a name no method has).
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(variant) = name.strip_prefix("gpo_").filter(|v| !v.is_empty()) {
            return Some(Self::Variant(variant.into()));
        }
        [Self::Gpo, Self::Selected].into_iter().chain(Self::BASELINES).find(|m| m.name() == name)
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

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Method;

    #[test]
    fn names_round_trip() {
        for m in [Method::Gpo, Method::Variant("knn".into()), Method::Selected].into_iter().chain(Method::BASELINES) {
            assert_eq!(Method::parse(&m.name()), Some(m.clone()));
        }
        assert_eq!(Method::parse("gpo_"), None);
        assert_eq!(Method::parse("other"), None);
    }
}
