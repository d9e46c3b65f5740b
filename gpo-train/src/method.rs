//! The methods a run reports: GPO, its variants and the baselines, with their result names
//! (`gpo`, `gpo_<variant>`, `uniform`, `train_mean`, `knn_groups`, `ridge_rm`) in one place.

use std::fmt;

use crate::prior::PriorKind;

/// A method of the results.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// The faithful GPO.
    Gpo,
    /// A GPO variant of the config (`[variants.<name>]`).
    Variant(String),
    /// Every option equally likely.
    Uniform,
    /// The meta-training groups' average answer.
    TrainMean,
    /// The meta-training groups weighted by agreement with the context answers.
    KnnGroups,
    /// Per-group ridge regression from option embedding to probability.
    RidgeRm,
}

impl Method {
    /// The baselines, in report order.
    pub const BASELINES: [Method; 4] = [Method::Uniform, Method::TrainMean, Method::KnnGroups, Method::RidgeRm];

    /// The name in results (`gpo_knn`, `train_mean`, …).
    pub fn name(&self) -> String {
        match self {
            Self::Gpo => "gpo".into(),
            Self::Variant(v) => format!("gpo_{v}"),
            Self::Uniform => "uniform".into(),
            Self::TrainMean => "train_mean".into(),
            Self::KnnGroups => "knn_groups".into(),
            Self::RidgeRm => "ridge_rm".into(),
        }
    }

    /// The method a result name stands for (`None` for a name no method has).
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(variant) = name.strip_prefix("gpo_").filter(|v| !v.is_empty()) {
            return Some(Self::Variant(variant.into()));
        }
        [Self::Gpo, Self::Uniform, Self::TrainMean, Self::KnnGroups, Self::RidgeRm]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// Whether it is GPO or one of its variants.
    pub fn is_gpo(&self) -> bool {
        matches!(self, Self::Gpo | Self::Variant(_))
    }

    /// The name in reports (`GPO (knn)`, `Train-group mean`, …).
    pub fn display_name(&self) -> String {
        match self {
            Self::Gpo => "GPO".into(),
            Self::Variant(v) => format!("GPO ({v})"),
            Self::Uniform => "Uniform".into(),
            Self::TrainMean => "Train-group mean".into(),
            Self::KnnGroups => "kNN groups".into(),
            Self::RidgeRm => "Ridge reward model".into(),
        }
    }

    /// The baseline that predicts exactly what a prior of `kind` gives (a prior variant's network
    /// with its residual head off).
    pub fn prior_baseline(kind: &PriorKind) -> Self {
        match kind {
            PriorKind::TrainMean => Self::TrainMean,
            PriorKind::KnnGroups { .. } => Self::KnnGroups,
        }
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
        for m in [Method::Gpo, Method::Variant("knn".into())].into_iter().chain(Method::BASELINES) {
            assert_eq!(Method::parse(&m.name()), Some(m.clone()));
        }
        assert_eq!(Method::parse("gpo_"), None);
        assert_eq!(Method::parse("other"), None);
    }
}
