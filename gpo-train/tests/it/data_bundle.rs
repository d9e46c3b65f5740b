//! The bundled datasets (tidy format): `fixtures/opinionqa/`, GPO's OpinionQA groups found in
//! the OpinionQA release on the questions all of them answered, and `fixtures/globalopinionqa/`,
//! GPO's 14 countries in `../shared`'s GlobalOpinionQA pairs, each on its own questions.
//!
//! Regenerate with `cargo test -p gpo-train --test it data_bundle:: -- --ignored` (then embed
//! the GlobalOpinionQA texts again: fixtures/DATA.md).

use std::path::PathBuf;

use gpo_train::data::select::{self, SelectReport};
use gpo_train::data::select::{DropReason, GPO_COUNTRIES};
use gpo_train::data::{Loaded, Metric, SkipReason, Survey, globalopinionqa, opinionqa, tidy};

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

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn bundled_opinionqa_is_up_to_date() {
    let (_, built, report) = build();
    assert_eq!(report.kept_groups.len(), 17);
    assert_eq!(report.missing_groups, ["Atheist", "Hindu", "Jewish", "Muslim", "Protestant"]);
    assert_eq!(built.questions.len(), 672);
    assert_same_survey(&tidy::load(&bundle_dir()).unwrap(), &built);
}

fn pairs_union() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/globalopinionqa/derived/pairs_union.jsonl"))
}

fn global_bundle_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/globalopinionqa"))
}

/// The GlobalOpinionQA pairs, loaded and reduced to GPO's countries and questions.
fn build_global() -> (Loaded, Survey, SelectReport) {
    let loaded = globalopinionqa::load_jsonl_with_report(&pairs_union()).unwrap();
    let (survey, report) = select::select_loaded(&loaded, None);
    (loaded, survey, report)
}

#[test]
#[ignore = "writes fixtures/globalopinionqa; run by hand after a loader change"]
fn regenerate_bundled_globalopinionqa() {
    let (loaded, survey, report) = build_global();
    tidy::write_tidy(&survey, &global_bundle_dir()).unwrap();
    println!("skipped while loading: {:?}\n{report}\n{}", loaded.skipped_counts(), survey.summary());
}

fn assert_same_survey(bundled: &Survey, built: &Survey) {
    assert_eq!((&bundled.name, bundled.metric), (&built.name, built.metric));
    assert_eq!(bundled.questions, built.questions);
    assert_eq!(bundled.groups.len(), built.groups.len());
    for (a, b) in bundled.groups.iter().zip(&built.groups) {
        assert_eq!((&a.name, &a.attribute), (&b.name, &b.attribute));
        assert_eq!(a.answers.keys().collect::<Vec<_>>(), b.answers.keys().collect::<Vec<_>>());
        // The bundle stores 6 decimals, then renormalises: 14 options × 5e-7 at most.
        for (p, q) in a.answers.values().flatten().zip(b.answers.values().flatten()) {
            assert!((p - q).abs() < 1e-5, "{}: {p} vs {q}", a.name);
        }
    }
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn bundled_globalopinionqa_is_up_to_date() {
    let (loaded, built, report) = build_global();
    assert!(report.missing_groups.is_empty(), "{report}");
    assert_eq!(report.kept_groups, GPO_COUNTRIES);
    // The selection counts of fixtures/DATA.md: 1,823 questions in the pairs; 435 answered by none of
    // the 14 countries; 1 dropped because China and France answer it with all-zero rows.
    assert_eq!(loaded.skipped_counts()[&SkipReason::ZeroSum], 10);
    assert_eq!(report.questions_before, 1823);
    assert_eq!(report.dropped[&DropReason::AnsweredByNone], 435);
    assert_eq!(report.dropped[&DropReason::ZeroAnswer], 1);
    assert_eq!(built.questions.len(), 1387);
    assert_eq!(built.metric, Metric::JensenShannon);
    let counts: Vec<usize> = built.groups.iter().map(|g| g.answers.len()).collect();
    assert_eq!(counts, [297, 314, 128, 188, 321, 412, 303, 278, 466, 230, 268, 240, 203, 43]);
    assert_same_survey(&tidy::load(&global_bundle_dir()).unwrap(), &built);
}
