//! Group selection: coverage rules, index remapping and the report.

use std::collections::BTreeMap;

use gpo_train::data::select::{Coverage, DropReason, select};
use gpo_train::data::{Group, Metric, Question, Survey};

fn survey() -> Survey {
    let q = |k: &str| Question {
        key: k.into(),
        text: k.into(),
        options: vec!["a".into(), "b".into()],
        ordinal: vec![1.0, 2.0],
    };
    let g = |name: &str, qs: &[usize]| Group {
        name: name.into(),
        attribute: "A".into(),
        answers: qs.iter().map(|&i| (i, vec![0.5, 0.5])).collect::<BTreeMap<_, _>>(),
    };
    Survey {
        name: "s".into(),
        metric: Metric::Wasserstein,
        questions: vec![q("q0"), q("q1"), q("q2"), q("q3")],
        groups: vec![g("x", &[0, 1, 3]), g("y", &[1, 3]), g("z", &[2])],
    }
}

#[test]
fn all_groups_keeps_shared_questions_and_remaps() {
    let (s, report) = select(&survey(), &["y", "x", "w"], Coverage::AllGroups);
    s.validate().unwrap();
    assert_eq!(s.questions.iter().map(|q| q.key.as_str()).collect::<Vec<_>>(), ["q1", "q3"]);
    assert_eq!(s.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["y", "x"]);
    assert_eq!(s.groups[1].answers.keys().copied().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(report.missing_groups, ["w"]);
    assert_eq!(report.dropped, BTreeMap::from([(DropReason::NotAnsweredByAll, 1), (DropReason::AnsweredByNone, 1)]));
    let text = report.to_string();
    assert!(text.contains("2 of 3 requested found") && text.contains("missing: w"), "{text}");
    assert!(
        text.contains("questions: 2 kept of 4") && text.contains("dropped 1: answered by no selected group"),
        "{text}"
    );
}

#[test]
fn per_group_keeps_each_groups_questions() {
    let (s, report) = select(&survey(), &["x", "z"], Coverage::PerGroup);
    s.validate().unwrap();
    assert_eq!(s.questions.len(), 4);
    assert!(report.dropped.is_empty());
    let (s, report) = select(&survey(), &["z"], Coverage::PerGroup);
    assert_eq!(s.questions[0].key, "q2");
    assert_eq!(s.groups[0].answers.keys().copied().collect::<Vec<_>>(), [0]);
    assert_eq!(report.dropped[&DropReason::AnsweredByNone], 3);
}
