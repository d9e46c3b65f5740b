//! The OpinionQA notebook output that GPO reads (docs/original.md §2.1):
//! `…_default_human.csv` with columns `qkey`, `attribute`, `group`, `D_H` and `R_H`.
//!
//! `D_H` is the group's survey-weighted distribution over the non-refusal options, printed by
//! numpy (`[0.23 0.38 0.39]`, possibly wrapped over several lines) or as a Python list. It must
//! sum to 1 within [`SUM_TOLERANCE`](super::SUM_TOLERANCE). `R_H` (the refusal share) is not
//! used. Question texts, options and ordinals come from `info.csv`, e.g. via
//! [`opinionqa::load_questions`](super::opinionqa::load_questions).
//!
//! Questions keep the order of their first row, groups the order of their first row.

use std::collections::BTreeMap;
use std::path::Path;

use super::{CsvFile, DataError, Group, Metric, Norm, Question, Survey, literal_error, normalise, pyliteral};

const COLUMNS: [&str; 4] = ["qkey", "attribute", "group", "D_H"];

/// Loads `path`, taking question details from `questions` (matched on key).
pub fn load(path: &Path, questions: &[Question]) -> Result<Survey, DataError> {
    let csv = CsvFile::read(path)?;
    let [qkey_col, attr_col, group_col, dh_col] = csv.columns(COLUMNS)?;
    let known: BTreeMap<&str, &Question> = questions.iter().map(|q| (q.key.as_str(), q)).collect();
    let mut used: Vec<Question> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut group_index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in &csv.rows {
        let cell = |i: usize| row.get(i).unwrap_or("");
        let key = cell(qkey_col);
        let Some(q) = known.get(key) else {
            return Err(csv.error(row, "qkey", format!("unknown question {key:?}; not among the info.csv questions")));
        };
        let qi = *index.entry(key.to_string()).or_insert_with(|| {
            used.push((*q).clone());
            used.len() - 1
        });
        let values = pyliteral::parse_num_list(cell(dh_col)).map_err(|e| literal_error(&csv, row, "D_H", e))?;
        let dist = normalise("D_H", &values, q.options.len(), Norm::Strict)
            .map_err(|i| i.at(&csv.path, CsvFile::line(row)))?
            .unwrap_or(values);
        let id = (cell(attr_col).to_string(), cell(group_col).to_string());
        let gi = *group_index.entry(id.clone()).or_insert_with(|| {
            groups.push(Group { name: id.1.clone(), attribute: id.0.clone(), answers: BTreeMap::new() });
            groups.len() - 1
        });
        if groups[gi].answers.insert(qi, dist).is_some() {
            return Err(csv.error(row, "qkey", format!("group {:?} answers {key:?} twice", id.1)));
        }
    }
    let survey = Survey { name: "opinionqa".into(), metric: Metric::Wasserstein, questions: used, groups };
    survey.validate()?;
    Ok(survey)
}
