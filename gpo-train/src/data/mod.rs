//! Surveys in memory: questions, groups and each group's answer distributions, loaded from the
//! OpinionQA and GlobalOpinionQA files or from a tidy CSV, and validated on the way in.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// How a survey's predictions are scored (GPO-SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// OpinionQA: `1 − WD / (max(ordinal) − min(ordinal))`.
    Wasserstein,
    /// GlobalOpinionQA: `1 − Jensen–Shannon distance`.
    JensenShannon,
}

/// A multiple-choice question with its (non-refusal) options.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// Unique key (OpinionQA `qkey`, GlobalOpinionQA row id, or the user's key).
    pub key: String,
    /// Question text as shown to respondents.
    pub text: String,
    /// Option texts, refusal options removed.
    pub options: Vec<String>,
    /// Ordinal position of each option (same length as `options`), used by the Wasserstein metric.
    pub ordinal: Vec<f64>,
}

/// A group of people and its answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Group name (`Democrat`, `Nigeria`, …).
    pub name: String,
    /// Attribute the group belongs to (`POLPARTY`, `COUNTRY`, …).
    pub attribute: String,
    /// Answer distribution per answered question: question index → one probability per option.
    pub answers: BTreeMap<usize, Vec<f64>>,
}

/// Questions, groups and answers of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// Dataset identifier (`opinionqa`, `globalopinionqa`, or the user's).
    pub name: String,
    /// How predictions are scored.
    pub metric: Metric,
    /// All questions; groups refer to them by index.
    pub questions: Vec<Question>,
    /// All groups.
    pub groups: Vec<Group>,
}

/// A problem in an input file, located as precisely as the format allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct DataError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (CSV/JSONL), when known.
    pub line: Option<usize>,
    /// Field, column or JSON path, when known.
    pub field: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl DataError {
    /// An error about `file`.
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), line: None, field: None, message: message.into() }
    }

    /// Adds the 1-based line.
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// Adds the field.
    pub fn in_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " [{field}]")?;
        }
        write!(f, ": {}", self.message)
    }
}
