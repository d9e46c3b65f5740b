//! OpinionQA notebook output (`*_default_human.csv`) with questions from the real info.csv.

use std::fs;
use std::path::PathBuf;

use gpo_train::data::{DataError, Question, notebook, opinionqa};

fn fixture() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/data/opinionqa_notebook_default_human.csv"))
}

fn questions() -> Vec<Question> {
    let d500 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/opinionqa/tatsu-lab_opinions_qa/human_resp/Pew_American_Trends_Panel_disagreement_500"
    );
    opinionqa::load_questions(&PathBuf::from(d500)).unwrap().0
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn loads_fixture() {
    let s = notebook::load(&fixture(), &questions()).unwrap();
    assert_eq!(s.questions.len(), 6);
    let names: Vec<&str> = s.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["Overall", "Democrat", "Republican", "$100,000 or more", "Less than $30,000"]);
    let democrat = &s.groups[1];
    let want = [0.23112687, 0.38129237, 0.38758075];
    assert!(democrat.answers[&0].iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-7));
    // S12_W29: 6 options, D_H printed over two lines.
    let q = s.question_index()["S12_W29"];
    assert_eq!(s.questions[q].options.len(), 6);
    assert!((democrat.answers[&q][5] - 0.0653757).abs() < 1e-7);
    // Options with commas come from info.csv.
    assert!(s.questions[s.question_index()["GUNTYPEOWNC_W26"]].options.iter().any(|o| o.contains(',')));
}

fn error_of(edit: impl Fn(String) -> String) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x_default_human.csv");
    fs::write(&path, edit(fs::read_to_string(fixture()).unwrap())).unwrap();
    let e = notebook::load(&path, &questions()).unwrap_err();
    eprintln!("{e}");
    e
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn wrong_option_count() {
    let e = error_of(|s| s.replace("[0.23112687 0.38129237 0.38758075]", "[0.23112687 0.76887313]"));
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("D_H")));
    assert!(e.message.contains("expected 3 values"), "{e}");
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn nan_probability() {
    let e = error_of(|s| s.replace("[0.23112687 0.38129237 0.38758075]", "[nan 0.38129237 0.38758075]"));
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("D_H")));
    assert!(e.message.contains("NaN"), "{e}");
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn unknown_question() {
    let e = error_of(|s| s.replacen("WORRYB_W26", "NOPE_W26", 1));
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("qkey")));
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn malformed_array() {
    let e = error_of(|s| s.replace("[0.23112687 0.38129237 0.38758075]", "[0.23112687 0.38129237 0.38758075"));
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("D_H")));
    assert!(e.message.contains("malformed"), "{e}");
}
