//! The tidy survey format: bring your own survey as two CSV files in one folder.
//!
//! ## `questions.csv`
//!
//! Header `key,text,options,ordinal`; one row per question.
//!
//! | column    | content                                                                       |
//! |-----------|-------------------------------------------------------------------------------|
//! | `key`     | unique question key                                                           |
//! | `text`    | the question as asked                                                         |
//! | `options` | JSON list of option texts, e.g. `["Yes","No","Not sure"]` (no refusal option) |
//! | `ordinal` | JSON list of numbers, one per option, e.g. `[1,2,1.5]`: each option's position |
//! |           | on the answer scale, used by the Wasserstein metric                           |
//!
//! ## `answers.csv`
//!
//! Header `group,attribute,question_key,option_index,probability`; one row per
//! (group, question, option): the share of the group choosing that option.
//!
//! * `group` and `attribute` name the group (`Democrat`, `POLPARTY`); the pair must be unique.
//! * `question_key` refers to `questions.csv`; `option_index` is 0-based into its `options`.
//! * A group that answers a question gives every option exactly once; the probabilities are
//!   finite, ≥ 0 and sum to 1 within [`SUM_TOLERANCE`](super::SUM_TOLERANCE) (then renormalised).
//!   A group may skip questions.
//!
//! ## `survey.json` (optional)
//!
//! `{"name": "opinionqa", "metric": "wasserstein"}`; `metric` is `wasserstein` (ordinal
//! answers, OpinionQA) or `jensen_shannon` (GlobalOpinionQA). Without it the name is the folder
//! name and the metric `wasserstein`.
//!
//! Groups keep the order of their first row in `answers.csv`, questions the order of
//! `questions.csv`. [`write_tidy`] writes probabilities with 6 decimals.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::{CsvFile, DataError, Group, Issue, Metric, Norm, Question, Survey, check_question, normalise};

const QUESTION_COLUMNS: [&str; 4] = ["key", "text", "options", "ordinal"];
const ANSWER_COLUMNS: [&str; 5] = ["group", "attribute", "question_key", "option_index", "probability"];

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    name: String,
    metric: Metric,
}

/// Loads a survey in the tidy format from `dir` (see the module docs).
pub fn load(dir: &Path) -> Result<Survey, DataError> {
    let meta_path = dir.join("survey.json");
    let meta = if meta_path.is_file() {
        let text = super::read_text(&meta_path)?;
        serde_json::from_str(&text).map_err(|e| {
            DataError::new(
                &meta_path,
                format!("expected {{\"name\": …, \"metric\": \"wasserstein\"|\"jensen_shannon\"}}: {e}"),
            )
            .at_line(e.line())
        })?
    } else {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("survey").to_string();
        Meta { name, metric: Metric::Wasserstein }
    };
    let questions = read_questions(&dir.join("questions.csv"))?;
    let groups = read_answers(&dir.join("answers.csv"), &questions)?;
    let survey = Survey { name: meta.name, metric: meta.metric, questions, groups };
    survey.validate()?;
    Ok(survey)
}

fn read_questions(path: &Path) -> Result<Vec<Question>, DataError> {
    let csv = CsvFile::read(path)?;
    let [key, text, options, ordinal] = csv.columns(QUESTION_COLUMNS)?;
    let mut questions = Vec::new();
    let mut lines: BTreeMap<String, Option<usize>> = BTreeMap::new();
    for row in &csv.rows {
        let cell = |i: usize| row.get(i).unwrap_or("");
        let q = Question {
            key: cell(key).to_string(),
            text: cell(text).to_string(),
            options: serde_json::from_str(cell(options))
                .map_err(|e| csv.error(row, "options", format!("expected a JSON list of strings: {e}")))?,
            ordinal: serde_json::from_str(cell(ordinal))
                .map_err(|e| csv.error(row, "ordinal", format!("expected a JSON list of numbers: {e}")))?,
        };
        check_question(&q).map_err(|issue| issue.at(path, CsvFile::line(row)))?;
        if let Some(first) = lines.insert(q.key.clone(), CsvFile::line(row)) {
            let first = first.map_or(String::new(), |l| format!(" (first on line {l})"));
            return Err(csv.error(
                row,
                "key",
                format!("duplicate question key {:?}{first}; keys must be unique", q.key),
            ));
        }
        questions.push(q);
    }
    Ok(questions)
}

/// One group's answer being assembled: a slot per option and the line of its first row.
struct Partial {
    probs: Vec<Option<f64>>,
    line: Option<usize>,
}

fn read_answers(path: &Path, questions: &[Question]) -> Result<Vec<Group>, DataError> {
    let csv = CsvFile::read(path)?;
    let [group, attribute, qkey, option, prob] = csv.columns(ANSWER_COLUMNS)?;
    if csv.rows.is_empty() {
        return Err(DataError::new(
            path,
            "no answer rows after the header; expected one row per (group, question, option)",
        ));
    }
    let index: BTreeMap<&str, usize> = questions.iter().enumerate().map(|(i, q)| (q.key.as_str(), i)).collect();
    let mut order: Vec<(String, String)> = Vec::new();
    let mut partial: BTreeMap<(String, String), BTreeMap<usize, Partial>> = BTreeMap::new();
    for row in &csv.rows {
        let cell = |i: usize| row.get(i).unwrap_or("");
        let id = (cell(attribute).to_string(), cell(group).to_string());
        if id.1.is_empty() {
            return Err(csv.error(row, "group", "empty group name"));
        }
        let Some(&qi) = index.get(cell(qkey)) else {
            return Err(csv.error(
                row,
                "question_key",
                format!("unknown question {:?}; not in questions.csv", cell(qkey)),
            ));
        };
        let n = questions[qi].options.len();
        let oi: usize = cell(option).parse().ok().filter(|&i| i < n).ok_or_else(|| {
            csv.error(row, "option_index", format!("{:?} is not an option index; expected 0..{n}", cell(option)))
        })?;
        let p: f64 = cell(prob).trim().parse().ok().filter(|p: &f64| p.is_finite() && *p >= 0.0).ok_or_else(|| {
            csv.error(
                row,
                "probability",
                format!("{:?} is not a probability; expected a finite number ≥ 0", cell(prob)),
            )
        })?;
        if !partial.contains_key(&id) {
            order.push(id.clone());
        }
        let slot = partial
            .entry(id)
            .or_default()
            .entry(qi)
            .or_insert_with(|| Partial { probs: vec![None; n], line: CsvFile::line(row) });
        if slot.probs[oi].replace(p).is_some() {
            return Err(csv.error(
                row,
                "option_index",
                format!("option {oi} of {:?} given twice for this group", cell(qkey)),
            ));
        }
    }
    order
        .into_iter()
        .map(|id| {
            let mut answers = BTreeMap::new();
            for (qi, part) in partial.remove(&id).unwrap_or_default() {
                let q = &questions[qi];
                let given: Option<Vec<f64>> = part.probs.iter().copied().collect();
                let Some(values) = given else {
                    let missing: Vec<usize> = (0..part.probs.len()).filter(|&i| part.probs[i].is_none()).collect();
                    return Err(Issue::new(
                        "option_index",
                        format!(
                            "group {:?} answers {:?} without option(s) {missing:?}; expected one row for each of its {} options",
                            id.1,
                            q.key,
                            q.options.len()
                        ),
                    )
                    .at(path, part.line));
                };
                let field = "probability";
                let dist = normalise(field, &values, values.len(), Norm::Strict)
                    .map_err(|i| Issue::new(field, format!("group {:?}, question {:?}: {}", id.1, q.key, i.message)))
                    .map_err(|i| i.at(path, part.line))?
                    .unwrap_or(values);
                answers.insert(qi, dist);
            }
            Ok(Group { name: id.1, attribute: id.0, answers })
        })
        .collect()
}

/// Writes `survey` to `dir` as `survey.json`, `questions.csv` and `answers.csv` (creating
/// `dir`). Each file is written to a temporary file in `dir` and renamed over the target, so a
/// reader never sees a half-written file.
pub fn write_tidy(survey: &Survey, dir: &Path) -> Result<(), DataError> {
    fs::create_dir_all(dir).map_err(|e| DataError::new(dir, format!("cannot create folder: {e}")))?;
    let meta = serde_json::to_string_pretty(&Meta { name: survey.name.clone(), metric: survey.metric })
        .map_err(|e| DataError::new(dir, e.to_string()))?;
    write_atomic(&dir.join("survey.json"), (meta + "\n").as_bytes())?;

    let mut q = csv::Writer::from_writer(Vec::new());
    let mut rows: Vec<Vec<String>> = vec![QUESTION_COLUMNS.map(String::from).to_vec()];
    for question in &survey.questions {
        rows.push(vec![
            question.key.clone(),
            question.text.clone(),
            to_json(&question.options),
            to_json(&question.ordinal),
        ]);
    }
    let path = dir.join("questions.csv");
    for row in rows {
        q.write_record(row).map_err(|e| DataError::new(&path, e.to_string()))?;
    }
    write_atomic(&path, &q.into_inner().map_err(|e| DataError::new(&path, e.to_string()))?)?;

    let path = dir.join("answers.csv");
    let mut a = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| DataError::new(&path, e.to_string());
    a.write_record(ANSWER_COLUMNS).map_err(csv_err)?;
    for g in &survey.groups {
        for (&qi, probs) in &g.answers {
            let key = survey.questions.get(qi).map(|q| q.key.as_str()).ok_or_else(|| {
                DataError::new(&path, format!("group {:?} answers question index {qi}, which does not exist", g.name))
            })?;
            for (oi, p) in probs.iter().enumerate() {
                a.write_record([g.name.as_str(), &g.attribute, key, &oi.to_string(), &format_prob(*p)])
                    .map_err(csv_err)?;
            }
        }
    }
    let bytes = a.into_inner().map_err(|e| DataError::new(&path, e.to_string()))?;
    write_atomic(&path, &bytes)
}

/// `0.318584`, `1`, `0`: 6 decimals (far below survey noise), trailing zeros trimmed.
fn format_prob(p: f64) -> String {
    let s = format!("{p:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// JSON for the list columns (serialising strings and numbers cannot fail).
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    crate::fsutil::write_atomic(path, bytes).map_err(|e| DataError::new(path, format!("cannot write: {e}")))
}
