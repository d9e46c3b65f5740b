//! The OpinionQA release layout (github.com/tatsu-lab/opinions_qa, `data/human_resp/`):
//! one folder per survey wave holding `info.csv` (questions) and `<ATTR>_data.json` (raw
//! respondent counts per group).
//!
//! * Questions come from `info.csv`: `key`, `question`, `references` (Python list of option
//!   texts) and `option_ordinal` (Python list, one value per non-refusal option). The broken
//!   `MC_options` of the count files is ignored: it splits options that contain commas.
//! * Refusal options (text `Refused`, any case) are dropped from `references`.
//! * A question whose `option_ordinal` length differs from the number of non-refusal options
//!   is skipped ([`SkipReason::OrdinalLength`]); so is a key repeated with different contents
//!   ([`SkipReason::AmbiguousKey`]; identical repeats are merged).
//! * Counts are matched to `references` by option text, exactly or else ignoring case (the count
//!   files spell one option of `POLICY3_W42` "noR"). Options without a count have 0 responses.
//!   Counts become a distribution over the non-refusal options; an answer whose non-refusal
//!   counts sum to 0 is skipped ([`SkipReason::ZeroSum`]).
//! * Skipped files: intersection files (`POLPARTY_RACE_data.json`, any attribute with `_`) and
//!   `NONE_data.json` (a copy of POLPARTY). Skipped groups: `Refused` and `nan`.
//! * Only questions with at least one answer are kept, in `info.csv` order (waves sorted by
//!   folder name). Groups are ordered by attribute, then name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::pyliteral;
use super::{
    CsvFile, DataError, Group, Loaded, Metric, Norm, Question, SkipReason, Skipped, Survey, check_question,
    literal_error, normalise,
};

const INFO_COLUMNS: [&str; 4] = ["key", "question", "references", "option_ordinal"];
const SKIPPED_GROUPS: [&str; 2] = ["Refused", "nan"];
const META_KEYS: [&str; 2] = ["MC_options", "question_text"];

/// Whether an option text is a refusal, dropped from every question.
pub fn is_refusal(option: &str) -> bool {
    option.trim().eq_ignore_ascii_case("refused")
}

/// Loads counts and questions from `dir`: either one wave folder (holding `info.csv`) or the
/// `human_resp` folder whose sub-folders are waves. See the module docs for what is skipped.
pub fn load(dir: &Path) -> Result<Survey, DataError> {
    load_with_report(dir).map(|l| l.survey)
}

/// [`load`], also returning what was skipped and why.
pub fn load_with_report(dir: &Path) -> Result<Loaded, DataError> {
    let mut questions: Vec<Question> = Vec::new();
    let mut skipped = BTreeSet::new();
    // (attribute, group) → question key → distribution.
    let mut answers: BTreeMap<(String, String), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for wave in wave_dirs(dir)? {
        let count_files = count_files(&wave)?;
        if count_files.is_empty() {
            // E.g. the disagreement_500 folder: questions only.
            continue;
        }
        let info = read_info(&wave.join("info.csv"))?;
        for (attribute, path) in count_files {
            read_counts(&path, &attribute, &info, &mut answers, &mut skipped)?;
        }
        let answered: BTreeSet<&str> = answers.values().flat_map(|a| a.keys().map(String::as_str)).collect();
        for entry in info.entries {
            if let Entry::Ok(q) = entry
                && answered.contains(q.key.as_str())
            {
                questions.push(q);
            }
        }
    }
    let index: BTreeMap<String, usize> = questions.iter().enumerate().map(|(i, q)| (q.key.clone(), i)).collect();
    let groups = answers
        .into_iter()
        .map(|((attribute, name), by_key)| Group {
            name,
            attribute,
            answers: by_key.into_iter().filter_map(|(k, p)| index.get(&k).map(|&i| (i, p))).collect(),
        })
        .collect();
    let survey = Survey { name: "opinionqa".into(), metric: Metric::Wasserstein, questions, groups };
    survey.validate()?;
    Ok(Loaded { survey, skipped: skipped.into_iter().collect() })
}

/// All questions of every `info.csv` under `dir` (one wave or the `human_resp` folder, including
/// `Pew_American_Trends_Panel_disagreement_500`), with the questions skipped and why. Repeats of
/// a key with identical contents across folders are merged.
pub fn load_questions(dir: &Path) -> Result<(Vec<Question>, Vec<Skipped>), DataError> {
    let mut questions: Vec<Question> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut skipped = BTreeSet::new();
    for wave in wave_dirs(dir)? {
        for entry in read_info(&wave.join("info.csv"))?.entries {
            match entry {
                Entry::Ok(q) => match seen.get(&q.key) {
                    Some(&i) if questions[i] == q => {}
                    Some(_) => {
                        skipped.insert(Skipped { key: q.key, group: None, reason: SkipReason::AmbiguousKey });
                    }
                    None => {
                        seen.insert(q.key.clone(), questions.len());
                        questions.push(q);
                    }
                },
                Entry::Skip(key, reason) => {
                    skipped.insert(Skipped { key, group: None, reason });
                }
            }
        }
    }
    let ambiguous: BTreeSet<&str> =
        skipped.iter().filter(|s| s.reason == SkipReason::AmbiguousKey).map(|s| s.key.as_str()).collect();
    questions.retain(|q| !ambiguous.contains(q.key.as_str()));
    Ok((questions, skipped.into_iter().collect()))
}

/// `dir` itself when it holds `info.csv`, otherwise its sub-folders holding one, sorted.
fn wave_dirs(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    if dir.join("info.csv").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut waves: Vec<PathBuf> = list_dir(dir)?.into_iter().filter(|p| p.join("info.csv").is_file()).collect();
    waves.sort();
    if waves.is_empty() {
        return Err(DataError::new(
            dir,
            "no info.csv here or in any sub-folder; expected an OpinionQA human_resp folder",
        ));
    }
    Ok(waves)
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::new(dir, "No such file or directory"),
        _ => DataError::new(dir, format!("cannot list folder: {e}")),
    };
    let entries = fs::read_dir(dir).map_err(error)?;
    entries.map(|e| e.map(|e| e.path()).map_err(error)).collect()
}

/// The single-attribute count files of a wave: (attribute, path), sorted by attribute.
fn count_files(wave: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut files: Vec<(String, PathBuf)> = list_dir(wave)?
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let attribute = name.strip_suffix("_data.json")?;
            (!attribute.contains('_') && attribute != "NONE").then(|| (attribute.to_string(), p.clone()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// One `info.csv` row: a question, or why it cannot be used.
enum Entry {
    Ok(Question),
    Skip(String, SkipReason),
}

/// A parsed `info.csv`.
struct Info {
    entries: Vec<Entry>,
    /// Key → (all references including refusals, index into `entries`), for count matching.
    references: BTreeMap<String, (Vec<String>, usize)>,
}

fn read_info(path: &Path) -> Result<Info, DataError> {
    let csv = CsvFile::read(path)?;
    let [key_col, text_col, refs_col, ord_col] = csv.columns(INFO_COLUMNS)?;
    let mut entries = Vec::new();
    let mut references: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    let mut first: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    let mut ambiguous = BTreeSet::new();
    for row in &csv.rows {
        let cell = |i: usize| row.get(i).unwrap_or("");
        let key = cell(key_col).to_string();
        let contents = (cell(text_col).to_string(), cell(refs_col).to_string(), cell(ord_col).to_string());
        // IDIMPORT_W43 and others repeat a key for different questions; identical repeats are harmless.
        match first.get(&key) {
            Some(c) if *c == contents => continue,
            Some(_) => {
                ambiguous.insert(key);
                continue;
            }
            None => first.insert(key.clone(), contents),
        };
        let refs = pyliteral::parse_str_list(cell(refs_col)).map_err(|e| literal_error(&csv, row, "references", e))?;
        let ordinal =
            pyliteral::parse_num_list(cell(ord_col)).map_err(|e| literal_error(&csv, row, "option_ordinal", e))?;
        let options: Vec<String> = refs.iter().filter(|o| !is_refusal(o)).cloned().collect();
        references.insert(key.clone(), (refs, entries.len()));
        if ordinal.len() != options.len() {
            entries.push(Entry::Skip(key, SkipReason::OrdinalLength));
            continue;
        }
        if options.len() == 1 {
            entries.push(Entry::Skip(key, SkipReason::OneOption));
            continue;
        }
        let q = Question { key, text: cell(text_col).to_string(), options, ordinal };
        check_question(&q).map_err(|issue| issue.at(&csv.path, CsvFile::line(row)))?;
        entries.push(Entry::Ok(q));
    }
    for key in ambiguous {
        if let Some((_, i)) = references.get(&key) {
            entries[*i] = Entry::Skip(key, SkipReason::AmbiguousKey);
        }
    }
    Ok(Info { entries, references })
}

/// Reads one `<ATTR>_data.json` into `answers`.
fn read_counts(
    path: &Path,
    attribute: &str,
    info: &Info,
    answers: &mut BTreeMap<(String, String), BTreeMap<String, Vec<f64>>>,
    skipped: &mut BTreeSet<Skipped>,
) -> Result<(), DataError> {
    let text = super::read_text(path)?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| DataError::new(path, format!("malformed JSON: {e}")).at_line(e.line()))?;
    let err = |field: String, msg: String| DataError::new(path, msg).in_field(field);
    let serde_json::Value::Object(by_key) = json else {
        return Err(err("$".into(), "expected a JSON object {question key: {group: {option: count}}}".into()));
    };
    for (qkey, by_group) in &by_key {
        let Some((refs, entry)) = info.references.get(qkey) else {
            return Err(err(
                qkey.clone(),
                format!("answers to question {qkey:?}, which is not in the wave's info.csv"),
            ));
        };
        let q = match &info.entries[*entry] {
            Entry::Ok(q) => q,
            Entry::Skip(key, reason) => {
                // Reported only for answered questions: unanswered ones are never loaded anyway.
                skipped.insert(Skipped { key: key.clone(), group: None, reason: *reason });
                continue;
            }
        };
        let serde_json::Value::Object(by_group) = by_group else {
            return Err(err(qkey.clone(), "expected an object {group: {option: count}}".into()));
        };
        for (group, counts) in by_group {
            if META_KEYS.contains(&group.as_str()) || SKIPPED_GROUPS.contains(&group.as_str()) {
                continue;
            }
            let field = format!("{qkey}.{group}");
            let counts = option_counts(refs, counts).map_err(|e| err(field.clone(), e.to_string()))?;
            let non_refusal: Vec<f64> =
                refs.iter().zip(&counts).filter(|(o, _)| !is_refusal(o)).map(|(_, &c)| c).collect();
            match normalise(&field, &non_refusal, q.options.len(), Norm::Renormalise)
                .map_err(|issue| issue.at(path, None))?
            {
                Some(dist) => {
                    answers.entry((attribute.to_string(), group.clone())).or_default().insert(qkey.clone(), dist);
                }
                None => {
                    skipped.insert(Skipped {
                        key: qkey.clone(),
                        group: Some(group.clone()),
                        reason: SkipReason::ZeroSum,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Why a group's `{option text: count}` object cannot be read.
#[derive(Debug, thiserror::Error)]
enum CountsError {
    #[error("expected an object {{option text: count}}")]
    NotObject,
    #[error("option {option:?} is not one of info.csv references {references:?}")]
    UnknownOption { option: String, references: Vec<String> },
    #[error("count for {option:?} is {count}; expected a number ≥ 0")]
    BadCount { option: String, count: serde_json::Value },
}

/// One count per reference (all options, refusals included), from `{option text: count}`.
fn option_counts(refs: &[String], counts: &serde_json::Value) -> Result<Vec<f64>, CountsError> {
    let serde_json::Value::Object(counts) = counts else {
        return Err(CountsError::NotObject);
    };
    let mut out = vec![0.0; refs.len()];
    for (option, count) in counts {
        let i = refs
            .iter()
            .position(|r| r == option)
            .or_else(|| refs.iter().position(|r| r.to_lowercase() == option.to_lowercase()))
            .ok_or_else(|| CountsError::UnknownOption { option: option.clone(), references: refs.to_vec() })?;
        match count.as_f64() {
            Some(c) if c >= 0.0 => out[i] += c,
            _ => return Err(CountsError::BadCount { option: option.clone(), count: count.clone() }),
        }
    }
    Ok(out)
}
