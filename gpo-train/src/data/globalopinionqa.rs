//! GlobalOpinionQA (Durmus et al. 2023; Hugging Face `Anthropic/llm_global_opinions`,
//! CC-BY-NC-SA-4.0) in two layouts:
//!
//! * [`load_csv`]: Anthropic's `global_opinions.csv`, columns `question`, `selections`
//!   (`defaultdict(<class 'list'>, {'Country': [probs…], …})`), `options` (Python list) and
//!   `source`. The question key is the 0-based data row index, as in GPO's `get_embeds.py`.
//! * [`load_jsonl`]: one `{"question", "country", "options", "distribution", …}` object per line
//!   (the project's `derived/pairs_union.jsonl`). Pairs with the same text and options form one
//!   question, keyed by [`question_key`].
//!
//! Every country is a group of attribute [`COUNTRY`]; the metric is Jensen–Shannon and the
//! ordinals are 1..K. The stored rows are not normalised (and keep non-substantive options
//! such as "DK/Refused", as upstream): a row with a positive sum is renormalised, a row summing
//! to 0 or empty is skipped ([`SkipReason::ZeroSum`]), and a question with empty text or no
//! options is skipped ([`SkipReason::Empty`]). Groups are sorted by country name.

use std::collections::BTreeMap;
use std::path::Path;

use super::pyliteral::{self, PyValue};
use super::{
    CsvFile, DataError, Group, Issue, Loaded, Metric, Norm, Question, SkipReason, Skipped, Survey, check_question,
    literal_error, normalise,
};

/// The attribute of every GlobalOpinionQA group.
pub const COUNTRY: &str = "COUNTRY";

const CSV_COLUMNS: [&str; 3] = ["question", "selections", "options"];

/// Loads Anthropic's `global_opinions.csv` (see the module docs).
pub fn load_csv(path: &Path) -> Result<Survey, DataError> {
    load_csv_with_report(path).map(|l| l.survey)
}

/// [`load_csv`], also returning what was skipped and why.
pub fn load_csv_with_report(path: &Path) -> Result<Loaded, DataError> {
    let csv = CsvFile::read(path)?;
    let [q_col, sel_col, opt_col] = csv.columns(CSV_COLUMNS)?;
    let mut b = Builder::default();
    for (row_index, row) in csv.rows.iter().enumerate() {
        let cell = |i: usize| row.get(i).unwrap_or("");
        let key = row_index.to_string();
        let options = match pyliteral::parse(cell(opt_col)).map_err(|e| literal_error(&csv, row, "options", e))? {
            // upstream converts each option with str(); numbers print as Python would.
            PyValue::List(items) => items.into_iter().map(py_str).collect::<Vec<_>>(),
            _ => return Err(csv.error(row, "options", "expected a Python list of options")),
        };
        let selections = parse_selections(cell(sel_col)).map_err(|e| literal_error(&csv, row, "selections", e))?;
        let at = |issue: Issue| issue.at(&csv.path, CsvFile::line(row));
        let Some(qi) = b.question(key, cell(q_col), options).map_err(at)? else { continue };
        for (country, values) in selections {
            b.answer(qi, &country, &values, &format!("selections[{country:?}]")).map_err(at)?;
        }
    }
    b.finish()
}

/// Loads the one-pair-per-line JSONL (see the module docs).
pub fn load_jsonl(path: &Path) -> Result<Survey, DataError> {
    load_jsonl_with_report(path).map(|l| l.survey)
}

#[derive(serde::Deserialize)]
struct Pair {
    question: String,
    country: String,
    options: Vec<String>,
    distribution: Vec<f64>,
}

/// [`load_jsonl`], also returning what was skipped and why.
pub fn load_jsonl_with_report(path: &Path) -> Result<Loaded, DataError> {
    let text = super::read_text(path)?;
    let mut b = Builder::default();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |issue: Issue| issue.at(path, Some(i + 1));
        let pair: Pair = serde_json::from_str(line).map_err(|e| {
            at(Issue::new(
                "$",
                format!("expected {{\"question\", \"country\", \"options\": [str], \"distribution\": [number]}}: {e}"),
            ))
        })?;
        let key = question_key(&pair.question, &pair.options);
        let Some(qi) = b.question(key, &pair.question, pair.options).map_err(at)? else { continue };
        b.answer(qi, &pair.country, &pair.distribution, "distribution").map_err(at)?;
    }
    b.finish()
}

/// The stable key of a JSONL question: `g` + 16 hex digits of the 64-bit FNV-1a hash of the
/// UTF-8 text, then each option, each preceded by a 0x1F byte. Text alone is not unique: a few
/// questions recur with different options.
pub fn question_key(text: &str, options: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(text.as_bytes());
    for o in options {
        eat(&[0x1f]);
        eat(o.as_bytes());
    }
    format!("g{h:016x}")
}

/// `selections`: the `{...}` inside `defaultdict(<class 'list'>, {...})` (or a bare dict) as
/// (country, values) in source order.
fn parse_selections(text: &str) -> Result<Vec<(String, Vec<f64>)>, pyliteral::LiteralError> {
    let trimmed = text.trim();
    let inner = match trimmed.strip_prefix("defaultdict(") {
        Some(rest) => {
            let start = rest.find('{').ok_or(lit_err("a dict after defaultdict(<class 'list'>, "))?;
            rest[start..].strip_suffix(')').ok_or(lit_err("')' closing defaultdict("))?
        }
        None => trimmed,
    };
    match pyliteral::parse(inner)? {
        PyValue::Dict(items) => items
            .into_iter()
            .map(|(k, v)| match k {
                PyValue::Str(country) => Ok((country, pyliteral::num_list(v)?)),
                _ => Err(lit_err("country names as dict keys")),
            })
            .collect(),
        _ => Err(lit_err("a dict {country: [probabilities]}")),
    }
}

fn lit_err(expected: &str) -> pyliteral::LiteralError {
    pyliteral::LiteralError { offset: 0, message: format!("expected {expected}") }
}

/// Python's `str()` of a literal option.
fn py_str(v: PyValue) -> String {
    match v {
        PyValue::Str(s) => s,
        PyValue::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.1}"),
        PyValue::Num(x) => x.to_string(),
        PyValue::Bool(b) => if b { "True" } else { "False" }.into(),
        PyValue::None => "None".into(),
        other => format!("{other:?}"),
    }
}

#[derive(Default)]
struct Builder {
    questions: Vec<Question>,
    index: BTreeMap<String, usize>,
    groups: BTreeMap<String, Group>,
    skipped: Vec<Skipped>,
}

impl Builder {
    /// The index of question `key`, adding it if new; `None` if it is skipped as empty.
    fn question(&mut self, key: String, text: &str, options: Vec<String>) -> Result<Option<usize>, Issue> {
        if let Some(&i) = self.index.get(&key) {
            return Ok(Some(i));
        }
        if text.trim().is_empty() || options.is_empty() {
            self.skipped.push(Skipped { key, group: None, reason: SkipReason::Empty });
            return Ok(None);
        }
        if options.len() == 1 {
            self.skipped.push(Skipped { key, group: None, reason: SkipReason::OneOption });
            return Ok(None);
        }
        let ordinal = (1..=options.len()).map(|k| k as f64).collect();
        let q = Question { key: key.clone(), text: text.to_string(), options, ordinal };
        check_question(&q)?;
        self.index.insert(key, self.questions.len());
        self.questions.push(q);
        Ok(Some(self.questions.len() - 1))
    }

    fn answer(&mut self, qi: usize, country: &str, values: &[f64], field: &str) -> Result<(), Issue> {
        let q = &self.questions[qi];
        let skip = |reason| Skipped { key: q.key.clone(), group: Some(country.to_string()), reason };
        if values.is_empty() {
            self.skipped.push(skip(SkipReason::ZeroSum));
            return Ok(());
        }
        match normalise(field, values, q.options.len(), Norm::Renormalise)? {
            None => self.skipped.push(skip(SkipReason::ZeroSum)),
            Some(dist) => {
                let group = self.groups.entry(country.to_string()).or_insert_with(|| Group {
                    name: country.to_string(),
                    attribute: COUNTRY.into(),
                    answers: BTreeMap::new(),
                });
                if group.answers.insert(qi, dist).is_some() {
                    return Err(Issue::new(field, format!("{country} answers question {} twice", q.key)));
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Loaded, DataError> {
        let survey = Survey {
            name: "globalopinionqa".into(),
            metric: Metric::JensenShannon,
            questions: self.questions,
            groups: self.groups.into_values().collect(),
        };
        survey.validate()?;
        Ok(Loaded { survey, skipped: self.skipped })
    }
}
