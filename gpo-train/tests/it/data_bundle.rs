//! The bundled default dataset `fixtures/opinionqa/` (tidy format): GPO's OpinionQA groups
//! found in the OpinionQA release, on the questions all of them answered.
//!
//! Regenerate with `cargo test -p gpo-train --test it data_bundle:: -- --ignored`.

use std::path::PathBuf;

use gpo_train::data::select::{self, SelectReport};
use gpo_train::data::{Loaded, Survey, opinionqa, tidy};

fn human_resp() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/opinionqa/tatsu-lab_opinions_qa/human_resp"))
}

fn bundle_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/opinionqa"))
}

/// The release, loaded and reduced to GPO's groups.
fn build() -> (Loaded, Survey, SelectReport) {
    let loaded = opinionqa::load_with_report(&human_resp()).unwrap();
    let (survey, report) = select::select_gpo(&loaded.survey);
    (loaded, survey, report)
}

#[test]
#[ignore = "writes fixtures/opinionqa; run by hand after a loader change"]
fn regenerate_bundled_opinionqa() {
    let (loaded, survey, report) = build();
    tidy::write_tidy(&survey, &bundle_dir()).unwrap();
    println!("skipped while loading: {:?}\n{report}\n{}", loaded.skipped_counts(), survey.summary());
}

#[test]
fn bundled_opinionqa_is_up_to_date() {
    let (_, built, report) = build();
    assert_eq!(report.kept_groups.len(), 17);
    assert_eq!(report.missing_groups, ["Atheist", "Hindu", "Jewish", "Muslim", "Protestant"]);
    assert_eq!(built.questions.len(), 672);
    let bundled = tidy::load(&bundle_dir()).unwrap();
    assert_eq!(bundled.questions, built.questions);
    assert_eq!(bundled.groups.len(), built.groups.len());
    for (a, b) in bundled.groups.iter().zip(&built.groups) {
        assert_eq!((&a.name, &a.attribute), (&b.name, &b.attribute));
        assert_eq!(a.answers.keys().collect::<Vec<_>>(), b.answers.keys().collect::<Vec<_>>());
        for (p, q) in a.answers.values().flatten().zip(b.answers.values().flatten()) {
            assert!((p - q).abs() < 2e-6, "{}: {p} vs {q}", a.name);
        }
    }
}
