//! OpinionQA release layout: figures from the real files, and one clear error per broken copy.

use std::fs;
use std::path::{Path, PathBuf};

use gpo_train::data::{DataError, SkipReason, opinionqa};

fn human_resp() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/opinionqa/tatsu-lab_opinions_qa/human_resp"))
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && crate::common::max_abs_diff(a, b) < 1e-12
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn loads_real_release() {
    let loaded = opinionqa::load_with_report(&human_resp()).unwrap();
    let s = &loaded.survey;
    // 684 answered questions, 12 of them with a bad option_ordinal length.
    assert_eq!(s.questions.len(), 672);
    assert_eq!(loaded.skipped_counts()[&SkipReason::OrdinalLength], 12);
    // 8 attributes, 41 groups less Refused ×4 and nan.
    assert_eq!(s.groups.len(), 36);
    let idx = s.question_index();
    let female = s.groups.iter().find(|g| g.name == "Female").unwrap();
    assert_eq!(female.attribute, "SEX");

    // Counts → distribution, Refused (6) dropped.
    let q = idx["SAFECRIME_W26"];
    assert_eq!(s.questions[q].options, ["Very safe", "Somewhat safe", "Not too safe", "Not at all safe"]);
    assert_eq!(s.questions[q].ordinal, [1.0, 2.0, 3.0, 4.0]);
    let n = 510.0 + 1243.0 + 289.0 + 62.0;
    assert!(close(&female.answers[&q], &[510.0 / n, 1243.0 / n, 289.0 / n, 62.0 / n]));

    // Options with commas come from references, not from the broken MC_options.
    let q = idx["GUN_W26"];
    assert_eq!(s.questions[q].options, ["Yes, I own a gun", "No, I don't own any guns"]);
    assert!(close(&female.answers[&q], &[437.0 / 2082.0, 1645.0 / 2082.0]));

    // A non-monotone ordinal is kept as is.
    assert_eq!(s.questions[idx["WORLDDANGER_W26"]].ordinal, [1.0, 2.0, 1.5]);
    // The count files spell one option "noR": matched ignoring case.
    let q = idx["POLICY3_W42"];
    assert!(female.answers[&q][2] > 0.3);
    // Question with an ordinal/option mismatch is reported, not loaded.
    assert!(!idx.contains_key("WANTMOVE_W32"));
    assert!(loaded.skipped.iter().any(|s| s.key == "WANTMOVE_W32" && s.reason == SkipReason::OrdinalLength));
    // Mixed Race has empty counts in W43: skipped per answer.
    let mixed = s.groups.iter().find(|g| g.name == "Mixed Race").unwrap();
    assert_eq!(mixed.answers.len(), 618);
    assert_eq!(loaded.skipped_counts()[&SkipReason::ZeroSum], 54);
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn loads_questions_of_all_info_files() {
    let (questions, skipped) = opinionqa::load_questions(&human_resp()).unwrap();
    // 1,494 keys; 3 repeated with different texts (IDIMPORT_W43, RACESURV36/37_W43); 36 with a
    // bad ordinal length.
    let ambiguous: Vec<&str> =
        skipped.iter().filter(|s| s.reason == SkipReason::AmbiguousKey).map(|s| s.key.as_str()).collect();
    assert_eq!(ambiguous, ["IDIMPORT_W43", "RACESURV36_W43", "RACESURV37_W43"]);
    assert_eq!(skipped.iter().filter(|s| s.reason == SkipReason::OrdinalLength).count(), 36);
    assert_eq!(questions.len(), 1494 - 3 - 36);
}

/// A one-wave copy of the SAFECRIME_W26 and GUN_W26 rows, edited by `edit_info`/`edit_counts`.
fn broken_wave(edit_info: impl Fn(String) -> String, edit_counts: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let info = "\
,Unnamed: 0.1,Unnamed: 0,key,option_mapping,question,references,option_ordinal
0,0,0,SAFECRIME_W26,\"{1.0: 'Very safe', 2.0: 'Somewhat safe', 3.0: 'Not too safe', 4.0: 'Not at all safe', 99.0: 'Refused'}\",\"How safe, if at all, would you say your local community is from crime? Would you say it is\",\"['Very safe', 'Somewhat safe', 'Not too safe', 'Not at all safe', 'Refused']\",\"[1.0, 2.0, 3.0, 4.0]\"
5,5,5,GUN_W26,\"{1.0: 'Yes, I own a gun', 2.0: \"\"No, I don't own any guns\"\", 99.0: 'Refused'}\",Do you personally own any guns?,\"['Yes, I own a gun', \"\"No, I don't own any guns\"\", 'Refused']\",\"[1.0, 2.0]\"
";
    let counts = r#"{"SAFECRIME_W26": {"MC_options": ["Very safe", "Somewhat safe", "Not too safe", "Not at all safe", "Refused"], "question_text": "How safe", "Female": {"Not at all safe": 62.0, "Not too safe": 289.0, "Refused": 6.0, "Somewhat safe": 1243.0, "Very safe": 510.0}, "Male": {"Not at all safe": 47.0, "Not too safe": 205.0, "Refused": 4.0, "Somewhat safe": 1143.0, "Very safe": 659.0}},
"GUN_W26": {"Female": {"No, I don't own any guns": 1645.0, "Refused": 28.0, "Yes, I own a gun": 437.0}}}"#;
    fs::write(dir.path().join("info.csv"), edit_info(info.to_string())).unwrap();
    fs::write(dir.path().join("SEX_data.json"), edit_counts(counts.to_string())).unwrap();
    dir
}

fn error_of(dir: &Path) -> DataError {
    let e = opinionqa::load(dir).unwrap_err();
    eprintln!("{e}");
    e
}

#[test]
fn unbroken_copy_loads() {
    let dir = broken_wave(|s| s, |s| s);
    let s = opinionqa::load(dir.path()).unwrap();
    assert_eq!(s.questions.len(), 2);
    assert_eq!(s.groups.len(), 2);
}

#[test]
fn negative_count() {
    let dir = broken_wave(|s| s, |s| s.replace("\"Not too safe\": 289.0", "\"Not too safe\": -289.0"));
    let e = error_of(dir.path());
    assert!(e.file.ends_with("SEX_data.json"));
    assert_eq!(e.field.as_deref(), Some("SAFECRIME_W26.Female"));
    assert!(e.message.contains("-289") && e.message.contains("≥ 0"), "{e}");
}

#[test]
fn truncated_json() {
    let dir = broken_wave(|s| s, |s| s[..s.len() - 40].to_string());
    let e = error_of(dir.path());
    assert!(e.file.ends_with("SEX_data.json"));
    assert_eq!(e.line, Some(2));
    assert!(e.message.starts_with("malformed JSON"), "{e}");
}

#[test]
fn missing_column() {
    let dir = broken_wave(|s| s.replace(",option_ordinal", ",ordinal"), |s| s);
    let e = error_of(dir.path());
    assert!(e.file.ends_with("info.csv"));
    assert_eq!((e.line, e.field.as_deref()), (Some(1), Some("option_ordinal")));
    assert!(e.message.contains("missing column"), "{e}");
}

#[test]
fn malformed_literal() {
    let dir = broken_wave(|s| s.replace("'Not at all safe', 'Refused']", "'Not at all safe', 'Refused'"), |s| s);
    let e = error_of(dir.path());
    assert!(e.file.ends_with("info.csv"));
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("references")));
    assert!(e.message.contains("malformed Python literal"), "{e}");
}

#[test]
fn unknown_question() {
    let dir = broken_wave(|s| s, |s| s.replace("\"GUN_W26\"", "\"GUNX_W26\""));
    let e = error_of(dir.path());
    assert_eq!(e.field.as_deref(), Some("GUNX_W26"));
    assert!(e.message.contains("not in the wave's info.csv"), "{e}");
}

#[test]
fn unknown_option() {
    let dir = broken_wave(|s| s, |s| s.replace("\"Yes, I own a gun\": 437.0", "\"Yes\": 437.0"));
    let e = error_of(dir.path());
    assert_eq!(e.field.as_deref(), Some("GUN_W26.Female"));
    assert!(e.message.contains("\"Yes\" is not one of info.csv references"), "{e}");
}

#[test]
fn duplicate_option() {
    let dir = broken_wave(
        |s| s.replace("'Not too safe', 'Not at all safe', 'Refused']", "'Not too safe', 'Not too safe', 'Refused']"),
        |s| s,
    );
    let e = error_of(dir.path());
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("options")));
}

#[test]
fn bad_ordinal_length_is_skipped_and_reported() {
    let dir = broken_wave(|s| s.replace("\"[1.0, 2.0]\"", "\"[1.0, 2.0, 3.0]\""), |s| s);
    let loaded = opinionqa::load_with_report(dir.path()).unwrap();
    assert_eq!(loaded.survey.questions.len(), 1);
    assert_eq!(loaded.skipped[0].key, "GUN_W26");
    assert_eq!(loaded.skipped[0].reason, SkipReason::OrdinalLength);
}

#[test]
fn intersection_and_none_files_are_ignored() {
    let dir = broken_wave(|s| s, |s| s);
    fs::write(dir.path().join("POLPARTY_SEX_data.json"), "not json").unwrap();
    fs::write(dir.path().join("NONE_data.json"), "not json").unwrap();
    opinionqa::load(dir.path()).unwrap();
}
