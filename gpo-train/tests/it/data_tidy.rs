//! Tidy format: round trip, and one clear error per broken file.

use std::collections::BTreeMap;
use std::fs;

use gpo_train::data::{DataError, Group, Metric, Question, Survey, tidy};

fn survey() -> Survey {
    Survey {
        name: "mine".into(),
        metric: Metric::JensenShannon,
        questions: vec![
            Question {
                key: "q1".into(),
                text: "Safe, \"really\"?".into(),
                options: vec!["Yes, a lot".into(), "No".into()],
                ordinal: vec![1.0, 2.0],
            },
            Question {
                key: "q2".into(),
                text: "Scale".into(),
                options: vec!["a".into(), "b".into(), "c".into()],
                ordinal: vec![1.0, 2.0, 1.5],
            },
        ],
        groups: vec![
            Group {
                name: "Zeta".into(),
                attribute: "X".into(),
                answers: BTreeMap::from([(0, vec![0.25, 0.75]), (1, vec![0.2, 0.3, 0.5])]),
            },
            Group {
                name: "Alpha".into(),
                attribute: "X".into(),
                answers: BTreeMap::from([(1, vec![1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0])]),
            },
        ],
    }
}

const QUESTIONS: &str = "key,text,options,ordinal\nq1,Safe?,\"[\"\"Yes\"\",\"\"No\"\"]\",\"[1,2]\"\nq2,Scale,\"[\"\"a\"\",\"\"b\"\",\"\"c\"\"]\",\"[1,2,1.5]\"\n";
const ANSWERS: &str = "group,attribute,question_key,option_index,probability\nG,A,q1,0,0.25\nG,A,q1,1,0.75\nG,A,q2,0,0.2\nG,A,q2,1,0.3\nG,A,q2,2,0.5\n";

fn error_with(questions: &str, answers: &str) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("questions.csv"), questions).unwrap();
    fs::write(dir.path().join("answers.csv"), answers).unwrap();
    let e = tidy::load(dir.path()).unwrap_err();
    eprintln!("{e}");
    e
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = survey();
    tidy::write_tidy(&s, dir.path()).unwrap();
    let back = tidy::load(dir.path()).unwrap();
    assert_eq!((back.name.as_str(), back.metric), ("mine", Metric::JensenShannon));
    assert_eq!(back.questions, s.questions);
    assert_eq!(back.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["Zeta", "Alpha"]);
    for (a, b) in back.groups.iter().zip(&s.groups) {
        assert_eq!(a.answers.keys().collect::<Vec<_>>(), b.answers.keys().collect::<Vec<_>>());
        for (p, q) in a.answers.values().flatten().zip(b.answers.values().flatten()) {
            assert!((p - q).abs() < 2e-6);
        }
    }
    // No temporary files are left behind.
    let names: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn plain_files_load_without_survey_json() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("questions.csv"), QUESTIONS).unwrap();
    fs::write(dir.path().join("answers.csv"), ANSWERS).unwrap();
    let s = tidy::load(dir.path()).unwrap();
    assert_eq!(s.metric, Metric::Wasserstein);
    assert_eq!(s.groups[0].answers[&1], [0.2, 0.3, 0.5]);
}

#[test]
fn nan_probability() {
    let e = error_with(QUESTIONS, &ANSWERS.replace("q2,1,0.3", "q2,1,NaN"));
    assert!(e.file.ends_with("answers.csv"));
    assert_eq!((e.line, e.field.as_deref()), (Some(5), Some("probability")));
    assert!(e.message.contains("finite number ≥ 0"), "{e}");
}

#[test]
fn negative_probability() {
    let e = error_with(QUESTIONS, &ANSWERS.replace("q1,0,0.25", "q1,0,-0.25"));
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("probability")));
}

#[test]
fn sum_far_from_one() {
    let e = error_with(QUESTIONS, &ANSWERS.replace("q2,2,0.5", "q2,2,0.4"));
    assert_eq!((e.line, e.field.as_deref()), (Some(4), Some("probability")));
    assert!(e.message.contains("sum to 0.9") && e.message.contains("q2"), "{e}");
}

#[test]
fn wrong_option_count() {
    let e = error_with(QUESTIONS, &ANSWERS.replace("G,A,q2,2,0.5\n", ""));
    assert_eq!((e.line, e.field.as_deref()), (Some(4), Some("option_index")));
    assert!(e.message.contains("without option(s) [2]"), "{e}");
    let e = error_with(QUESTIONS, &ANSWERS.replace("q2,2,0.5", "q2,3,0.5"));
    assert_eq!((e.line, e.field.as_deref()), (Some(6), Some("option_index")));
}

#[test]
fn duplicate_key() {
    let e = error_with(&(QUESTIONS.to_string() + "q1,Again,\"[\"\"x\"\",\"\"y\"\"]\",\"[1,2]\"\n"), ANSWERS);
    assert!(e.file.ends_with("questions.csv"));
    assert_eq!((e.line, e.field.as_deref()), (Some(4), Some("key")));
    assert!(e.message.contains("duplicate question key \"q1\" (first on line 2)"), "{e}");
}

#[test]
fn duplicate_answer_row() {
    let e = error_with(QUESTIONS, &(ANSWERS.to_string() + "G,A,q1,0,0.25\n"));
    assert_eq!((e.line, e.field.as_deref()), (Some(7), Some("option_index")));
    assert!(e.message.contains("twice"), "{e}");
}

#[test]
fn unknown_question() {
    let e = error_with(QUESTIONS, &ANSWERS.replace("G,A,q2,0", "G,A,q3,0"));
    assert_eq!((e.line, e.field.as_deref()), (Some(4), Some("question_key")));
    assert!(e.message.contains("unknown question \"q3\""), "{e}");
}

#[test]
fn bad_ordinal_length() {
    let e = error_with(&QUESTIONS.replace("[1,2,1.5]", "[1,2]"), ANSWERS);
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("ordinal")));
    assert!(e.message.contains("2 ordinal values for 3 options"), "{e}");
}

#[test]
fn one_option_questions_and_empty_answers_are_refused() {
    // A question with a single option: nothing to predict.
    let one = QUESTIONS.replace("\"[\"\"Yes\"\",\"\"No\"\"]\",\"[1,2]\"", "\"[\"\"Yes\"\"]\",\"[1]\"");
    let e = error_with(&one, ANSWERS);
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("options")));
    assert!(e.message.contains("question q1 has 1 option(s); expected at least 2"), "{e}");
    // answers.csv with its header and no row: no group at all.
    let e = error_with(QUESTIONS, "group,attribute,question_key,option_index,probability\n");
    assert!(e.file.ends_with("answers.csv") && e.message.contains("no answer rows"), "{e}");
}

#[test]
fn malformed_options() {
    let e = error_with(&QUESTIONS.replace("\"[\"\"Yes\"\",\"\"No\"\"]\"", "\"[\"\"Yes\"\",\"\"No\"\"\""), ANSWERS);
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("options")));
    assert!(e.message.contains("JSON list of strings"), "{e}");
}

#[test]
fn missing_column() {
    let e = error_with(QUESTIONS, &ANSWERS.replace("probability", "prob"));
    assert_eq!((e.line, e.field.as_deref()), (Some(1), Some("probability")));
    assert!(e.message.contains("expected columns group,attribute,question_key,option_index,probability"), "{e}");
}

#[test]
fn validate_catches_in_memory_problems() {
    let mut s = survey();
    s.validate().unwrap();
    s.groups[1].name = "Zeta".into();
    let e = s.validate().unwrap_err();
    assert_eq!(e.to_string(), "<mine> [groups[Zeta]]: group \"Zeta\" of \"X\" appears twice");
    let mut s = survey();
    s.groups[0].answers.insert(7, vec![1.0]);
    assert!(s.validate().unwrap_err().message.contains("question index 7"));
    let mut s = survey();
    s.groups[0].answers.insert(0, vec![f64::NAN, 1.0]);
    assert_eq!(s.validate().unwrap_err().field.as_deref(), Some("groups[Zeta].answers[q1]"));
    let mut s = survey();
    s.questions[1].key = "q1".into();
    assert!(s.validate().unwrap_err().message.contains("duplicate question key"));
}

#[test]
fn summary_counts() {
    let text = survey().summary().to_string();
    assert!(text.contains("questions 2") && text.contains("groups    2"), "{text}");
    assert!(text.contains("2 options: 1 questions") && text.contains("Alpha (X)  1"), "{text}");
}
