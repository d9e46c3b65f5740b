//! GlobalOpinionQA: the CSV fixture (Anthropic's format), the real JSONL, broken copies.

use std::fs;
use std::path::PathBuf;

use gpo_train::data::select::{self, GPO_COUNTRIES};
use gpo_train::data::{Metric, SkipReason, globalopinionqa};

fn fixture() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/data/global_opinions_sample.csv"))
}

fn pairs_union() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/globalopinionqa/derived/pairs_union.jsonl"))
}

#[test]
fn loads_csv_fixture() {
    let loaded = globalopinionqa::load_csv_with_report(&fixture()).unwrap();
    let s = &loaded.survey;
    assert_eq!(s.metric, Metric::JensenShannon);
    assert_eq!(s.questions.len(), 5);
    assert_eq!(s.questions[0].key, "0");
    // `"Don't Know"` is double-quoted in the Python list.
    assert_eq!(s.questions[0].options[6], "Don't Know");
    assert_eq!(s.questions[0].ordinal, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    // Question 0 is all zeros for its 10 countries.
    assert_eq!(loaded.skipped.iter().filter(|x| x.key == "0" && x.reason == SkipReason::ZeroSum).count(), 10);
    let argentina = s.groups.iter().find(|g| g.name == "Argentina").unwrap();
    assert_eq!(argentina.attribute, "COUNTRY");
    // Argentina's row on question 1 sums to 1.0 already.
    let want = [0.166, 0.28, 0.35, 0.187, 0.0, 0.017, 0.0];
    assert!(argentina.answers[&1].iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9));

    let (sel, report) = select::select_gpo(s);
    assert_eq!(sel.groups.len() + report.missing_groups.len(), 14);
    // The all-zero question is dropped: nobody answers it.
    assert_eq!(report.questions_after, 4);
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn loads_real_jsonl() {
    let loaded = globalopinionqa::load_jsonl_with_report(&pairs_union()).unwrap();
    let s = &loaded.survey;
    assert_eq!(s.groups.len(), 130);
    // 1,820 distinct texts; 3 recur with different options.
    assert_eq!(s.questions.len(), 1823);
    let zero = loaded.skipped_counts()[&SkipReason::ZeroSum];
    assert_eq!(zero, 10);
    assert_eq!(s.groups.iter().map(|g| g.answers.len()).sum::<usize>() + zero, 13_233);
    for g in &s.groups {
        for p in g.answers.values() {
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
    // Keys are stable.
    assert_eq!(s.questions[0].key, globalopinionqa::question_key(&s.questions[0].text, &s.questions[0].options));

    let (sel, report) = select::select_gpo(s);
    assert!(report.missing_groups.is_empty(), "{report}");
    let counts: Vec<usize> = sel.groups.iter().map(|g| g.answers.len()).collect();
    // fixtures/DATA.md figures (Nigeria 297 … New Zealand 43), less the all-zero pairs of China and France.
    assert_eq!(counts, [297, 314, 128, 188, 321, 412, 303, 278, 466, 230, 268, 240, 203, 43]);
    assert_eq!(sel.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), GPO_COUNTRIES);
    sel.validate().unwrap();
}

fn csv_error(edit: impl Fn(String) -> String) -> gpo_train::data::DataError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global_opinions.csv");
    fs::write(&path, edit(fs::read_to_string(fixture()).unwrap())).unwrap();
    let e = globalopinionqa::load_csv(&path).unwrap_err();
    eprintln!("{e}");
    e
}

#[test]
fn malformed_selections() {
    let e = csv_error(|s| s.replacen("{'Argentina': [0.166,", "{'Argentina': [0.166 0.1,", 1));
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("selections")));
    assert!(e.message.contains("malformed Python literal"), "{e}");
}

#[test]
fn nan_probability() {
    let e = csv_error(|s| s.replacen("{'Argentina': [0.166,", "{'Argentina': [nan,", 1));
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("selections[\"Argentina\"]")));
    assert!(e.message.contains("value 0 is NaN"), "{e}");
}

#[test]
fn wrong_option_count() {
    let e = csv_error(|s| s.replacen("{'Argentina': [0.166, 0.28,", "{'Argentina': [0.28,", 1));
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("selections[\"Argentina\"]")));
    assert!(e.message.contains("expected 7 values (one per option), found 6"), "{e}");
}

#[test]
fn missing_column() {
    let e = csv_error(|s| s.replacen("question,selections,options", "question,selection,options", 1));
    assert_eq!((e.line, e.field.as_deref()), (Some(1), Some("selections")));
}

#[test]
fn broken_jsonl_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.jsonl");
    let good = r#"{"question": "Q?", "country": "Chile", "options": ["a", "b"], "distribution": [0.5, 0.5]}"#;
    fs::write(&path, format!("{good}\n{}\n", &good[..40])).unwrap();
    let e = globalopinionqa::load_jsonl(&path).unwrap_err();
    assert_eq!(e.line, Some(2));
    let negative = good.replace("[0.5, 0.5]", "[-0.5, 1.5]");
    fs::write(&path, format!("{good}\n{negative}\n")).unwrap();
    let e = globalopinionqa::load_jsonl(&path).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("distribution")));
}
