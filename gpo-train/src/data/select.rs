//! Choosing the groups to train on and the questions that go with them (docs/original.md §1–§2).
//!
//! OpinionQA keeps only the questions answered by every selected group, so all groups share
//! one question set ([`Coverage::AllGroups`]). GlobalOpinionQA keeps each country's own
//! questions and drops only those no selected country answers ([`Coverage::PerGroup`]), and,
//! as GPO's `get_embeds.py` does, every question that one of the selected countries answered
//! with an empty or all-zero row ([`select_loaded`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Group, Loaded, Metric, SkipReason, Survey};

/// GPO's 22 OpinionQA groups (`data/constants.py` GROUP_NAMES).
pub const GPO_OPINIONQA_GROUPS: [&str; 22] = [
    "Northeast",
    "South",
    "Female",
    "Male",
    "College graduate/some postgrad",
    "Less than high school",
    "Atheist",
    "Hindu",
    "Jewish",
    "Muslim",
    "Protestant",
    "Democrat",
    "Republican",
    "$100,000 or more",
    "Less than $30,000",
    "Conservative",
    "Liberal",
    "Moderate",
    "Asian",
    "Black",
    "Hispanic",
    "White",
];

/// GPO's 14 GlobalOpinionQA countries (`COUNTRIES`).
pub const GPO_COUNTRIES: [&str; 14] = [
    "Nigeria",
    "Egypt",
    "India (Current national sample)",
    "China",
    "Japan",
    "Germany",
    "France",
    "Spain",
    "United States",
    "Canada",
    "Brazil",
    "Argentina",
    "Australia",
    "New Zealand",
];

/// Which questions a selection keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Questions answered by every selected group (OpinionQA).
    AllGroups,
    /// Each group keeps its own questions; questions no selected group answers are dropped
    /// (GlobalOpinionQA).
    PerGroup,
}

/// Why a question was dropped by a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Some but not all selected groups answered it ([`Coverage::AllGroups`]).
    NotAnsweredByAll,
    /// No selected group answered it.
    AnsweredByNone,
    /// A selected group's answer to it was empty or all zeros, so the loader skipped that answer;
    /// GPO drops the whole question (docs/original.md §2.2, GlobalOpinionQA).
    ZeroAnswer,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAnsweredByAll => "not answered by every selected group",
            Self::AnsweredByNone => "answered by no selected group",
            Self::ZeroAnswer => "a selected group's answer is empty or all zeros",
        })
    }
}

/// What a selection kept and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectReport {
    /// The requested group names found, in request order.
    pub kept_groups: Vec<String>,
    /// The requested group names absent from the survey.
    pub missing_groups: Vec<String>,
    /// Questions before selection.
    pub questions_before: usize,
    /// Questions after selection.
    pub questions_after: usize,
    /// Number of dropped questions per reason.
    pub dropped: BTreeMap<DropReason, usize>,
}

impl fmt::Display for SelectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let requested = self.kept_groups.len() + self.missing_groups.len();
        writeln!(f, "groups: {} of {requested} requested found", self.kept_groups.len())?;
        if !self.missing_groups.is_empty() {
            writeln!(f, "  missing: {}", self.missing_groups.join(", "))?;
        }
        writeln!(f, "questions: {} kept of {}", self.questions_after, self.questions_before)?;
        for (reason, n) in &self.dropped {
            writeln!(f, "  dropped {n}: {reason}")?;
        }
        Ok(())
    }
}

/// Keeps the groups named in `names` (every group with that name, whatever its attribute; in
/// the order of `names`) and the questions `coverage` allows, renumbering question indices.
pub fn select(survey: &Survey, names: &[&str], coverage: Coverage) -> (Survey, SelectReport) {
    select_dropping(survey, names, coverage, &BTreeSet::new())
}

/// [`select`] on a loaded survey, with GPO's default groups for its metric when `names` is
/// `None`. With [`Coverage::PerGroup`] (GlobalOpinionQA) a question is also dropped when the loader
/// skipped a selected group's answer to it as empty or all zeros ([`DropReason::ZeroAnswer`]),
/// as GPO's `get_embeds.py` drops it.
pub fn select_loaded(loaded: &Loaded, names: Option<&[&str]>) -> (Survey, SelectReport) {
    let survey = &loaded.survey;
    let (names, coverage) = match (names, survey.metric) {
        (Some(names), Metric::Wasserstein) => (names, Coverage::AllGroups),
        (Some(names), Metric::JensenShannon) => (names, Coverage::PerGroup),
        (None, Metric::Wasserstein) => (&GPO_OPINIONQA_GROUPS[..], Coverage::AllGroups),
        (None, Metric::JensenShannon) => (&GPO_COUNTRIES[..], Coverage::PerGroup),
    };
    let mut zero = BTreeSet::new();
    if coverage == Coverage::PerGroup {
        let index: BTreeMap<&str, usize> =
            survey.questions.iter().enumerate().map(|(i, q)| (q.key.as_str(), i)).collect();
        for s in &loaded.skipped {
            if s.reason == SkipReason::ZeroSum
                && s.group.as_deref().is_some_and(|g| names.contains(&g))
                && let Some(&qi) = index.get(s.key.as_str())
            {
                zero.insert(qi);
            }
        }
    }
    select_dropping(survey, names, coverage, &zero)
}

/// [`select`], also dropping the questions in `zero` ([`DropReason::ZeroAnswer`]).
fn select_dropping(
    survey: &Survey,
    names: &[&str],
    coverage: Coverage,
    zero: &BTreeSet<usize>,
) -> (Survey, SelectReport) {
    let mut kept_groups = Vec::new();
    let mut missing_groups = Vec::new();
    let mut groups: Vec<&Group> = Vec::new();
    for &name in names {
        let matching: Vec<&Group> = survey.groups.iter().filter(|g| g.name == name).collect();
        if matching.is_empty() {
            missing_groups.push(name.to_string());
        } else {
            kept_groups.push(name.to_string());
            groups.extend(matching);
        }
    }
    let mut answered_by = vec![0usize; survey.questions.len()];
    for g in &groups {
        for &qi in g.answers.keys() {
            if let Some(n) = answered_by.get_mut(qi) {
                *n += 1;
            }
        }
    }
    let mut dropped = BTreeMap::new();
    let mut new_index = vec![None; survey.questions.len()];
    let mut questions = Vec::new();
    for (qi, &n) in answered_by.iter().enumerate() {
        let reason = match (n, coverage) {
            _ if zero.contains(&qi) => Some(DropReason::ZeroAnswer),
            (0, _) => Some(DropReason::AnsweredByNone),
            (n, Coverage::AllGroups) if n < groups.len() => Some(DropReason::NotAnsweredByAll),
            _ => None,
        };
        match reason {
            Some(r) => *dropped.entry(r).or_insert(0) += 1,
            None => {
                new_index[qi] = Some(questions.len());
                questions.push(survey.questions[qi].clone());
            }
        }
    }
    let groups = groups
        .into_iter()
        .map(|g| Group {
            name: g.name.clone(),
            attribute: g.attribute.clone(),
            answers: g
                .answers
                .iter()
                .filter_map(|(&qi, p)| new_index.get(qi).copied().flatten().map(|ni| (ni, p.clone())))
                .collect(),
        })
        .collect();
    let report = SelectReport {
        kept_groups,
        missing_groups,
        questions_before: survey.questions.len(),
        questions_after: questions.len(),
        dropped,
    };
    (Survey { name: survey.name.clone(), metric: survey.metric, questions, groups }, report)
}

/// GPO's default selection for the survey's metric: the 22 OpinionQA groups with
/// [`Coverage::AllGroups`] (Wasserstein) or the 14 countries with [`Coverage::PerGroup`]
/// (Jensen–Shannon).
pub fn select_gpo(survey: &Survey) -> (Survey, SelectReport) {
    match survey.metric {
        Metric::Wasserstein => select(survey, &GPO_OPINIONQA_GROUPS, Coverage::AllGroups),
        Metric::JensenShannon => select(survey, &GPO_COUNTRIES, Coverage::PerGroup),
    }
}
