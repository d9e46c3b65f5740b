//! Surveys in memory: questions, groups and each group's answer distributions, loaded from the
//! OpinionQA and GlobalOpinionQA files or from a tidy CSV, and validated on the way in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

pub mod globalopinionqa;
pub mod notebook;
pub mod opinionqa;
pub mod pyliteral;
pub mod select;
pub mod tidy;

/// Largest accepted `|sum − 1|` of a distribution read from a file that should already be
/// normalised (tidy, notebook `D_H`). Rounded published figures stay well inside it; a missing
/// or duplicated option does not. Accepted rows are then renormalised to sum to exactly 1.
pub const SUM_TOLERANCE: f64 = 0.02;

/// How a survey's predictions are scored (docs/original.md §6): one definition, in gpo-core.
pub use gpo_core::metrics::Metric;

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

/// Something a loader left out on purpose, with the reason (a loader's report).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    /// The question key (and group, for one group's answer) concerned.
    pub key: String,
    /// The group, when only one group's answer was skipped.
    pub group: Option<String>,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Why a loader left a question or an answer out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// OpinionQA `option_ordinal` has a different length from the non-refusal options.
    OrdinalLength,
    /// The same key appears in `info.csv` with different contents.
    AmbiguousKey,
    /// The answer's probabilities or counts (refusals excluded) sum to 0, or are missing.
    ZeroSum,
    /// The question has no text or no options (GlobalOpinionQA).
    Empty,
    /// The question has a single (non-refusal) option: its answer is certain, nothing to predict.
    OneOption,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OrdinalLength => "option_ordinal length differs from the number of non-refusal options",
            Self::AmbiguousKey => "key repeated in info.csv with different contents",
            Self::ZeroSum => "answer sums to 0 (no non-refusal responses)",
            Self::Empty => "question text or options empty",
            Self::OneOption => "a single (non-refusal) option: nothing to predict",
        })
    }
}

/// A survey and what its loader skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The validated survey.
    pub survey: Survey,
    /// Questions and answers left out, with the reason.
    pub skipped: Vec<Skipped>,
}

impl Loaded {
    /// How many items were skipped for each reason.
    pub fn skipped_counts(&self) -> BTreeMap<SkipReason, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.reason).or_insert(0) += 1;
        }
        counts
    }
}

/// A problem found before its location is known; the caller adds file and line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub field: String,
    pub message: String,
}

impl Issue {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// Locates the problem in `file` (at `line` when known).
    pub(crate) fn at(self, file: &Path, line: Option<usize>) -> DataError {
        DataError { file: file.to_path_buf(), line, field: Some(self.field), message: self.message }
    }
}

/// How a distribution read from a file is checked before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Norm {
    /// Must already sum to 1 within [`SUM_TOLERANCE`].
    Strict,
    /// Counts or unnormalised rows: any positive sum is accepted (a zero sum is reported by the
    /// caller as [`SkipReason::ZeroSum`]).
    Renormalise,
}

/// Checks one answer row (`values` for `n_options` options) and returns it normalised to sum to
/// 1, or `None` when the sum is 0 under [`Norm::Renormalise`].
pub(crate) fn normalise(field: &str, values: &[f64], n_options: usize, norm: Norm) -> Result<Option<Vec<f64>>, Issue> {
    if values.len() != n_options {
        return Err(Issue::new(field, format!("expected {n_options} values (one per option), found {}", values.len())));
    }
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite() || **v < 0.0) {
        return Err(Issue::new(field, format!("value {i} is {v}; expected a finite number ≥ 0")));
    }
    let sum: f64 = values.iter().sum();
    match norm {
        Norm::Strict if (sum - 1.0).abs() > SUM_TOLERANCE => {
            Err(Issue::new(field, format!("probabilities sum to {sum}; expected 1 (tolerance {SUM_TOLERANCE})")))
        }
        Norm::Renormalise if sum == 0.0 => Ok(None),
        _ => Ok(Some(values.iter().map(|v| v / sum).collect())),
    }
}

/// Checks a question on its own: options present and distinct, one finite ordinal per option.
pub(crate) fn check_question(q: &Question) -> Result<(), Issue> {
    if q.key.trim().is_empty() {
        return Err(Issue::new("key", "empty question key"));
    }
    if q.options.len() < 2 {
        return Err(Issue::new(
            "options",
            format!(
                "question {} has {} option(s); expected at least 2 (a single option is certain: nothing to predict)",
                q.key,
                q.options.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = q.options.iter().find(|o| !seen.insert(o.as_str())) {
        return Err(Issue::new("options", format!("question {}: option {dup:?} appears twice", q.key)));
    }
    if q.ordinal.len() != q.options.len() {
        return Err(Issue::new(
            "ordinal",
            format!(
                "question {}: {} ordinal values for {} options; expected one per option",
                q.key,
                q.ordinal.len(),
                q.options.len()
            ),
        ));
    }
    if q.ordinal.iter().any(|o| !o.is_finite()) {
        return Err(Issue::new("ordinal", format!("question {}: ordinal values must be finite", q.key)));
    }
    Ok(())
}

impl Survey {
    /// Checks the whole survey: questions (see loaders), unique question keys, unique
    /// `(attribute, group)` pairs, answers only to existing questions, one probability per option,
    /// probabilities finite, ≥ 0 and summing to 1 within [`SUM_TOLERANCE`].
    ///
    /// The error's file is `<survey name>` and its field a path such as
    /// `groups[Democrat].answers[SAFECRIME_W26]`, since an in-memory survey has no lines.
    pub fn validate(&self) -> Result<(), DataError> {
        let file = PathBuf::from(format!("<{}>", self.name));
        let mut keys = BTreeSet::new();
        for (i, q) in self.questions.iter().enumerate() {
            let at =
                |issue: Issue| DataError::new(&file, issue.message).in_field(format!("questions[{i}].{}", issue.field));
            check_question(q).map_err(at)?;
            if !keys.insert(q.key.as_str()) {
                return Err(at(Issue::new("key", format!("duplicate question key {:?}; keys must be unique", q.key))));
            }
        }
        let mut groups = BTreeSet::new();
        for g in &self.groups {
            if !groups.insert((g.attribute.as_str(), g.name.as_str())) {
                return Err(DataError::new(&file, format!("group {:?} of {:?} appears twice", g.name, g.attribute))
                    .in_field(format!("groups[{}]", g.name)));
            }
            for (&qi, probs) in &g.answers {
                let field = match self.questions.get(qi) {
                    Some(q) => format!("groups[{}].answers[{}]", g.name, q.key),
                    None => {
                        return Err(DataError::new(
                            &file,
                            format!("answer to question index {qi}, but there are {} questions", self.questions.len()),
                        )
                        .in_field(format!("groups[{}].answers", g.name)));
                    }
                };
                normalise(&field, probs, self.questions[qi].options.len(), Norm::Strict)
                    .map_err(|issue| issue.at(&file, None))?;
            }
        }
        Ok(())
    }

    /// Index of each question key.
    pub fn question_index(&self) -> BTreeMap<&str, usize> {
        self.questions.iter().enumerate().map(|(i, q)| (q.key.as_str(), i)).collect()
    }

    /// Counts for `gpo data summary`.
    pub fn summary(&self) -> Summary {
        let mut options_histogram = BTreeMap::new();
        for q in &self.questions {
            *options_histogram.entry(q.options.len()).or_insert(0) += 1;
        }
        Summary {
            name: self.name.clone(),
            metric: self.metric,
            questions: self.questions.len(),
            groups: self.groups.len(),
            options_histogram,
            answers_per_group: self
                .groups
                .iter()
                .map(|g| (format!("{} ({})", g.name, g.attribute), g.answers.len()))
                .collect(),
        }
    }
}

/// Counts describing a survey (`Survey::summary`); its Display is the `gpo data summary` text.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Dataset name.
    pub name: String,
    /// Scoring metric.
    pub metric: Metric,
    /// Number of questions.
    pub questions: usize,
    /// Number of groups.
    pub groups: usize,
    /// Number of options → number of questions with that many options.
    pub options_histogram: BTreeMap<usize, usize>,
    /// `name (attribute)` → number of questions the group answered, in survey order.
    pub answers_per_group: Vec<(String, usize)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let metric = match self.metric {
            Metric::Wasserstein => "wasserstein (1 − WD / ordinal range)",
            Metric::JensenShannon => "jensen_shannon (1 − JS distance)",
        };
        writeln!(f, "dataset   {}", self.name)?;
        writeln!(f, "metric    {metric}")?;
        writeln!(f, "questions {}", self.questions)?;
        writeln!(f, "groups    {}", self.groups)?;
        writeln!(f, "options per question:")?;
        for (k, n) in &self.options_histogram {
            writeln!(f, "  {k:>3} options: {n} questions")?;
        }
        writeln!(f, "answered questions per group:")?;
        let width = self.answers_per_group.iter().map(|(g, _)| g.chars().count()).max().unwrap_or(0);
        for (g, n) in &self.answers_per_group {
            writeln!(f, "  {g:<width$}  {n}")?;
        }
        Ok(())
    }
}

/// A CSV file read in full, with its header, for the loaders' column lookups and line numbers.
pub(crate) struct CsvFile {
    pub path: PathBuf,
    headers: csv::StringRecord,
    pub rows: Vec<csv::StringRecord>,
}

impl CsvFile {
    /// Reads `path` (header row required; quoted fields may span lines), at most
    /// [`MAX_SURVEY_BYTES`](crate::fsutil::MAX_SURVEY_BYTES).
    pub(crate) fn read(path: &Path) -> Result<Self, DataError> {
        let bytes = read_file(path)?;
        let csv_err = |e: csv::Error| {
            let line = e.position().map(|p| p.line() as usize);
            DataError { file: path.to_path_buf(), line, field: None, message: format!("malformed CSV: {e}") }
        };
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes.as_slice());
        let headers = reader.headers().map_err(csv_err)?.clone();
        let rows = reader.records().collect::<Result<Vec<_>, _>>().map_err(csv_err)?;
        Ok(Self { path: path.to_path_buf(), headers, rows })
    }

    /// Indices of the `names` columns, or an error naming the first missing one.
    pub(crate) fn columns<const N: usize>(&self, names: [&str; N]) -> Result<[usize; N], DataError> {
        let mut out = [0; N];
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = self.headers.iter().position(|h| h == name).ok_or_else(|| {
                DataError::new(&self.path, format!("missing column {name:?}; expected columns {}", names.join(",")))
                    .at_line(1)
                    .in_field(name)
            })?;
        }
        Ok(out)
    }

    /// The 1-based line where `row` starts.
    pub(crate) fn line(row: &csv::StringRecord) -> Option<usize> {
        row.position().map(|p| p.line() as usize)
    }

    /// An error about `row`'s `field`.
    pub(crate) fn error(&self, row: &csv::StringRecord, field: &str, message: impl Into<String>) -> DataError {
        Issue::new(field, message).at(&self.path, Self::line(row))
    }
}

/// Reads a whole survey file, at most [`MAX_SURVEY_BYTES`](crate::fsutil::MAX_SURVEY_BYTES);
/// errors name the file (`<path>: No such file or directory`, `<path>: larger than … bytes`).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    crate::fsutil::read_capped(path, crate::fsutil::MAX_SURVEY_BYTES)
        .map_err(|e| DataError::new(path, crate::fsutil::reason(&e)))
}

/// [`read_file`] for UTF-8 text (JSON, JSONL).
pub(crate) fn read_text(path: &Path) -> Result<String, DataError> {
    crate::fsutil::read_capped_to_string(path, crate::fsutil::MAX_SURVEY_BYTES)
        .map_err(|e| DataError::new(path, crate::fsutil::reason(&e)))
}

/// The error for a malformed Python literal in a CSV cell.
pub(crate) fn literal_error(
    csv: &CsvFile,
    row: &csv::StringRecord,
    field: &str,
    e: pyliteral::LiteralError,
) -> DataError {
    csv.error(row, field, e.to_string())
}

/// The survey file formats gpo reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Loader {
    /// gpo's own tidy format: a folder with `questions.csv` and `answers.csv`.
    Tidy,
    /// The OpinionQA release: `human_resp/` (or one wave folder) with `info.csv` and count files.
    Opinionqa,
    /// OpinionQA's notebook output `*_default_human.csv` (needs the release for question texts).
    Notebook,
    /// Anthropic's `global_opinions.csv`.
    GlobalopinionqaCsv,
    /// GlobalOpinionQA (question, country) pairs as JSON lines.
    GlobalopinionqaJsonl,
}

impl Loader {
    /// Guesses the format from the path.
    pub fn detect(path: &std::path::Path) -> Option<Self> {
        let name = path.file_name()?.to_string_lossy().to_lowercase();
        if path.is_dir() {
            if path.join("questions.csv").exists() {
                return Some(Self::Tidy);
            }
            return Some(Self::Opinionqa);
        }
        if name.ends_with(".jsonl") {
            Some(Self::GlobalopinionqaJsonl)
        } else if name.ends_with("_default_human.csv") {
            Some(Self::Notebook)
        } else if name.ends_with(".csv") {
            Some(Self::GlobalopinionqaCsv)
        } else {
            None
        }
    }
}
