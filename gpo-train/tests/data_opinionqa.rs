//! OpinionQA release layout: real files and broken copies.

use std::path::{Path, PathBuf};

use gpo_train::data::{SkipReason, opinionqa};

fn human_resp() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/opinionqa/tatsu-lab_opinions_qa/human_resp"))
}

#[test]
fn loads_real_release() {
    let loaded = opinionqa::load_with_report(&human_resp()).unwrap();
    let s = &loaded.survey;
    eprintln!("{}", s.summary());
    eprintln!("{:?}", loaded.skipped_counts());
    let _ = (Path::new(""), SkipReason::ZeroSum);
}
