//! From survey files and an embedding cache to an [`EmbeddedSurvey`]: load, select groups,
//! attach embeddings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::DataConfig;
use crate::data::select::{Coverage, SelectReport, select, select_gpo};
use crate::data::{DataError, Loaded, Metric, Survey, globalopinionqa, notebook, opinionqa, tidy};
use crate::task::EmbeddedSurvey;

/// The survey file formats gpo reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
    pub fn detect(path: &Path) -> Option<Self> {
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

/// Loads a survey with `loader`. `questions` is the OpinionQA release folder the notebook format
/// takes its question texts from.
pub fn load_survey(loader: Loader, source: &Path, questions: Option<&Path>) -> Result<Loaded, DataError> {
    match loader {
        Loader::Tidy => Ok(Loaded { survey: tidy::load(source)?, skipped: Vec::new() }),
        Loader::Opinionqa => opinionqa::load_with_report(source),
        Loader::Notebook => {
            let release = questions.ok_or_else(|| {
                DataError::new(
                    source,
                    "the notebook format needs the OpinionQA release for question texts (`questions`)",
                )
            })?;
            let (questions, skipped) = opinionqa::load_questions(release)?;
            Ok(Loaded { survey: notebook::load(source, &questions)?, skipped })
        }
        Loader::GlobalopinionqaCsv => globalopinionqa::load_csv_with_report(source),
        Loader::GlobalopinionqaJsonl => globalopinionqa::load_jsonl_with_report(source),
    }
}

/// Keeps the named groups, or GPO's default groups for the survey's metric.
pub fn select_groups(survey: &Survey, groups: Option<&[String]>) -> (Survey, SelectReport) {
    match groups {
        None => select_gpo(survey),
        Some(names) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let coverage = match survey.metric {
                Metric::Wasserstein => Coverage::AllGroups,
                Metric::JensenShannon => Coverage::PerGroup,
            };
            select(survey, &names, coverage)
        }
    }
}

/// Identification of the embeddings, recorded in exported models.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingInfo {
    /// Embedding model id.
    pub model: String,
    /// Text template id.
    pub template: String,
}

/// Loads the survey named by `data`, selects its groups and attaches the cached embeddings.
pub fn load_embedded_survey(data: &DataConfig) -> Result<(EmbeddedSurvey, EmbeddingInfo), String> {
    Err(format!("survey data is not wired yet: {data:?}"))
}
