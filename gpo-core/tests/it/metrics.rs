//! Metrics against scipy (fixtures/core/metric_cases.json, made by tools/make_metric_fixtures.py)
//! and against the definitions. Tolerance: 1e-12 absolute (both sides compute in f64).

use gpo_core::metrics::{
    ScoreTable, js_alignment, js_distance, mean, std_dev, top1_match, wasserstein_alignment, wasserstein_distance,
};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-12;

#[derive(Deserialize)]
struct Case {
    ordinal: Vec<f64>,
    p: Vec<f64>,
    q: Vec<f64>,
    wasserstein_distance: f64,
    wasserstein_alignment: Option<f64>,
    js_distance: Option<f64>,
    js_alignment: Option<f64>,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= TOLERANCE,
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn metrics_match_scipy() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/core/metric_cases.json")).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    assert!(fixture.cases.len() >= 200);
    for (i, c) in fixture.cases.iter().enumerate() {
        let wd = wasserstein_distance(&c.ordinal, &c.p, &c.q);
        assert!(close(wd, Some(c.wasserstein_distance)), "case {i}: WD {wd:?} vs scipy {}", c.wasserstein_distance);
        let wa = wasserstein_alignment(&c.ordinal, &c.p, &c.q);
        assert!(close(wa, c.wasserstein_alignment), "case {i}: WD alignment {wa:?} vs {:?}", c.wasserstein_alignment);
        let js = js_distance(&c.p, &c.q);
        assert!(close(js, c.js_distance), "case {i}: JS {js:?} vs scipy {:?}", c.js_distance);
        assert!(close(js_alignment(&c.p, &c.q), c.js_alignment), "case {i}: JS alignment");
    }
}

#[test]
fn wasserstein_alignment_by_hand() {
    let o = [1.0, 2.0, 3.0, 4.0];
    // Point masses at the two ends are as far apart as possible.
    assert_eq!(wasserstein_alignment(&o, &[1.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 1.0]), Some(0.0));
    assert_eq!(wasserstein_alignment(&o, &[0.25; 4], &[0.25; 4]), Some(1.0));
    // One step of one unit of mass: WD = 1, span = 3.
    let a = wasserstein_alignment(&o, &[0.0, 1.0, 0.0, 0.0], &[0.0, 0.0, 1.0, 0.0]).unwrap();
    assert!((a - 2.0 / 3.0).abs() < 1e-15);
    // Unnormalised weights are renormalised.
    assert_eq!(wasserstein_distance(&o, &[2.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 5.0]), Some(3.0));
    // Order of the options does not matter, only their ordinal positions.
    let shuffled = wasserstein_distance(&[3.0, 1.0, 4.0, 2.0], &[0.1, 0.2, 0.3, 0.4], &[0.4, 0.3, 0.2, 0.1]);
    let sorted = wasserstein_distance(&[1.0, 2.0, 3.0, 4.0], &[0.2, 0.4, 0.1, 0.3], &[0.3, 0.1, 0.4, 0.2]);
    assert!(close(shuffled, sorted));
}

#[test]
fn invalid_inputs_give_none() {
    let o = [1.0, 2.0, 3.0];
    let p = [0.2, 0.3, 0.5];
    assert_eq!(wasserstein_alignment(&[2.0, 2.0, 2.0], &p, &p), None, "max = min is unscorable");
    assert_eq!(wasserstein_alignment(&o, &p[..2], &p), None, "length mismatch");
    assert_eq!(wasserstein_alignment(&o, &[0.0; 3], &p), None, "zero mass");
    assert_eq!(wasserstein_alignment(&o, &[-0.1, 0.6, 0.5], &p), None, "negative weight");
    assert_eq!(wasserstein_alignment(&o, &[f64::NAN, 0.5, 0.5], &p), None, "NaN weight");
    assert_eq!(wasserstein_alignment(&[1.0, f64::INFINITY, 3.0], &p, &p), None, "infinite ordinal");
    assert_eq!(wasserstein_alignment(&[], &[], &[]), None, "empty");
    assert_eq!(js_alignment(&[0.0, 0.0], &[0.5, 0.5]), None, "all-zero p is not a perfect score");
    assert_eq!(js_alignment(&[0.5, f64::NAN], &[0.5, 0.5]), None);
    assert_eq!(js_alignment(&[1.0], &[0.5, 0.5]), None);
}

#[test]
fn js_alignment_by_hand() {
    assert_eq!(js_alignment(&[0.3, 0.7], &[0.3, 0.7]), Some(1.0));
    // Disjoint supports: JS divergence = ln 2, distance = sqrt(ln 2).
    let a = js_alignment(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
    assert!((a - (1.0 - std::f64::consts::LN_2.sqrt())).abs() < 1e-15);
    // Symmetric, and renormalises its inputs.
    assert!(close(
        js_distance(&[1.0, 3.0, 0.0], &[2.0, 2.0, 4.0]),
        js_distance(&[0.25, 0.25, 0.5], &[0.25, 0.75, 0.0])
    ));
}

#[test]
fn top1_and_averages() {
    assert_eq!(top1_match(&[0.1, 0.6, 0.3], &[0.2, 0.5, 0.3]), Some(true));
    assert_eq!(top1_match(&[0.6, 0.1, 0.3], &[0.2, 0.5, 0.3]), Some(false));
    assert_eq!(top1_match(&[0.5, 0.5], &[0.5, 0.5]), Some(true), "ties take the first, as numpy.argmax");
    assert_eq!(top1_match(&[], &[]), None);

    let mut table = ScoreTable::new(3);
    table.record(0, Some(1.0));
    table.record(0, Some(0.0));
    table.record(0, Some(0.5));
    table.record(1, Some(0.9));
    table.record(1, None);
    table.record(7, Some(0.1));
    assert_eq!(table.n_items(), 4);
    assert_eq!(table.group_means(), vec![Some(0.5), Some(0.9), None]);
    assert!(close(table.micro(), Some(2.4 / 4.0)));
    assert!(close(table.macro_average(), Some(0.7)));
    assert_eq!(ScoreTable::new(2).micro(), None);
    assert_eq!(mean(&[]), None);
    assert!(close(std_dev(&[1.0, 3.0]), Some(1.0)));
}
