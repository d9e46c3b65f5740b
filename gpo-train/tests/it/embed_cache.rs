//! The embedding cache (round trips, incremental embedding, corruption), vector import and the
//! prompt templates, with a stub embedder so that no model is needed.

use std::path::Path;

use gpo_train::data::{Metric, Question, Survey};
use gpo_train::embed::import::{import_embeddings, parse_npy};
use gpo_train::embed::{EmbedError, EmbeddingCache, Precision, SurveyTemplate, Template, TextEmbedder};

/// Deterministic vectors from the text bytes; counts what it embeds.
struct Stub {
    embedded: usize,
}

impl TextEmbedder for Stub {
    fn model_id(&self) -> &str {
        "stub"
    }
    fn dim(&self) -> usize {
        4
    }
    fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        self.embedded += texts.len();
        Ok(texts.iter().flat_map(|t| (0..4).map(move |i| (t.len() as f32 + i as f32) / 7.0 - 0.3)).collect())
    }
}

fn question() -> Question {
    Question {
        key: "SAFECRIME_W26".into(),
        text: "How safe, if at all, would you say your local community is from crime? Would you say it is".into(),
        options: vec!["Very safe".into(), "Somewhat safe".into(), "Not too safe".into(), "Not at all safe".into()],
        ordinal: vec![1.0, 2.0, 3.0, 4.0],
    }
}

fn survey() -> Survey {
    let mut other = question();
    other.key = "Q2".into();
    other.text = "Do you agree?".into();
    other.options = vec!["Yes".into(), "No".into()];
    other.ordinal = vec![1.0, 2.0];
    Survey { name: "test".into(), metric: Metric::Wasserstein, questions: vec![question(), other], groups: vec![] }
}

#[test]
fn gpo_template_is_the_original_prompt() {
    let texts = Template::Gpo.question_texts(&question()).unwrap();
    let expected = "Below is an instruction that describes a task, paired with an input that provides further context. \
Write a response that appropriately completes the request.\n\n### Instruction:\n\
Answer the following question by picking ONE of the given options\n\n### Input:\n\
How safe, if at all, would you say your local community is from crime? Would you say it is\n\nOptions:\n\
A. Very safe\nB. Somewhat safe\nC. Not too safe\nD. Not at all safe\n\n### Response:\nB. Somewhat safe";
    assert_eq!(texts.len(), 4);
    assert_eq!(texts[1], expected);
    // The same prompt, built independently in Python, is in the reference fixture.
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../../../fixtures/embed/minilm_reference.json")).unwrap();
    assert!(reference["cases"].as_array().unwrap().iter().any(|c| c["text"] == expected));

    assert_eq!(
        Template::Plain.question_texts(&question()).unwrap()[3],
        format!("{}\nNot at all safe", question().text)
    );
    assert_eq!("plain".parse::<Template>().unwrap(), Template::Plain);
    assert_eq!(Template::default().id(), "gpo");
    assert!("alpaca".parse::<Template>().is_err());
}

/// Saves and reloads a cache of two 3-d vectors; returns the file's size.
fn round_trip(precision: Precision, dir: &Path) -> u64 {
    let mut cache = EmbeddingCache::new("stub", "gpo", 3, precision);
    cache.insert("a", &[0.1, -0.2, 0.333_333]).unwrap();
    cache.insert("β", &[1.0, 0.0, -1.0]).unwrap();
    let path = EmbeddingCache::path_in(dir, "org/model", "gpo");
    cache.save(&path).unwrap();
    let back = EmbeddingCache::load(&path).unwrap();
    assert_eq!(back, cache);
    assert_eq!(back.precision(), precision);
    let a = back.get("a").unwrap();
    let tolerance = if precision == Precision::F32 { 0.0 } else { 2e-4 };
    for (x, y) in a.iter().zip([0.1, -0.2, 0.333_333]) {
        assert!((x - y).abs() <= tolerance, "{x} vs {y}");
    }
    assert!(back.get("c").is_none());
    std::fs::metadata(&path).unwrap().len()
}

#[test]
fn cache_round_trips_in_f16_and_f32() {
    let dir = tempfile::tempdir().unwrap();
    let f16_size = round_trip(Precision::F16, dir.path());
    let f32_size = round_trip(Precision::F32, dir.path());
    // The same file but for the vectors: 2 texts × 3 values × 2 bytes fewer in f16.
    assert_eq!(f32_size - f16_size, 2 * 3 * 2);
}

#[test]
fn embed_missing_is_incremental_and_survey_lookup_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.gpoemb");
    let survey = survey();
    let texts = Template::Gpo.survey_texts(&survey).unwrap();
    assert_eq!(texts.len(), 6);

    let mut stub = Stub { embedded: 0 };
    let mut cache = EmbeddingCache::open_or_new(&path, "stub", "gpo", 4, Precision::F16).unwrap();
    // The progress callbacks see every text (the library draws nothing itself).
    #[derive(Default)]
    struct Seen(std::cell::RefCell<Vec<String>>);
    impl gpo_train::embed::EmbedProgress for Seen {
        fn embed_start(&self, texts: usize) {
            self.0.borrow_mut().push(format!("start {texts}"));
        }
        fn embedded(&self, texts: usize) {
            self.0.borrow_mut().push(format!("{texts}"));
        }
        fn embed_done(&self) {
            self.0.borrow_mut().push("done".into());
        }
    }
    let seen = Seen::default();
    assert_eq!(cache.embed_missing(&mut stub, &texts[..4], 3, &seen).unwrap(), 4);
    assert_eq!(seen.0.borrow().as_slice(), ["start 4", "3", "1", "done"]);
    cache.save(&path).unwrap();

    // A missing text is reported with its question.
    match cache.survey_embeddings(&survey, Template::Gpo) {
        Err(EmbedError::MissingText { question, option, .. }) => assert_eq!((question.as_str(), option), ("Q2", 0)),
        other => panic!("expected MissingText, got {other:?}"),
    }

    let mut cache = EmbeddingCache::open_or_new(&path, "stub", "gpo", 4, Precision::F16).unwrap();
    assert_eq!(cache.embed_missing(&mut stub, &texts, 3, &()).unwrap(), 2);
    assert_eq!(cache.embed_missing(&mut stub, &texts, 3, &()).unwrap(), 0);
    assert_eq!(stub.embedded, 6);

    let per_question = cache.survey_embeddings(&survey, Template::Gpo).unwrap();
    assert_eq!(per_question.iter().map(Vec::len).collect::<Vec<_>>(), vec![4 * 4, 2 * 4]);
    assert_eq!(&per_question[1][4..], cache.get(&texts[5]).unwrap());
    assert!(cache.survey_embeddings(&survey, Template::Plain).is_err());

    // Another model or template must not reuse this file.
    assert!(matches!(
        EmbeddingCache::open_or_new(&path, "other", "gpo", 4, Precision::F16),
        Err(EmbedError::Cache { .. })
    ));
}

#[test]
fn corrupt_or_truncated_cache_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.gpoemb");
    let mut cache = EmbeddingCache::new("stub", "gpo", 4, Precision::F32);
    cache.insert("x", &[1.0, 2.0, 3.0, 4.0]).unwrap();
    cache.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("flipped byte", flipped),
        ("truncated", good[..good.len() - 5].to_vec()),
        ("header only", good[..12].to_vec()),
        ("empty", Vec::new()),
        ("not a cache", b"hello world, this is not a cache file at all........".to_vec()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, bytes).unwrap();
        let err = EmbeddingCache::load(&path).expect_err(what);
        assert!(matches!(err, EmbedError::Cache { .. }), "{what}: {err}");
        assert!(err.to_string().contains("c.gpoemb"), "{what}: {err}");
    }
    assert!(matches!(EmbeddingCache::load(&dir.path().join("absent")), Err(EmbedError::Io { .. })));
    // A template id that is none (it was printed with its NUL padding as if it were one).
    let padded = EmbeddingCache::new("stub", "gpo\0\0", 4, Precision::F32);
    padded.save(&path).unwrap();
    let err = EmbeddingCache::load(&path).unwrap_err().to_string();
    assert!(err.contains("c.gpoemb") && err.contains("template field: unknown template \"gpo\\0\\0\""), "{err}");
}

#[test]
fn non_finite_vectors_are_refused_naming_file_and_entry() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    for (precision, bad) in [(Precision::F32, f32::NAN), (Precision::F16, f32::INFINITY)] {
        let path = dir.path().join("nan.gpoemb");
        let mut cache = EmbeddingCache::new("stub", "gpo", 3, precision);
        cache.insert("fine", &[0.1, 0.2, 0.3]).unwrap();
        cache.insert("broken", &[0.1, bad, 0.3]).unwrap();
        cache.save(&path).unwrap();
        let err = EmbeddingCache::load(&path).unwrap_err().to_string();
        let key: String = sha2::Sha256::digest(b"broken").iter().map(|b| format!("{b:02x}")).collect();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(&format!("entry 1 of 2 (text sha256 {key})")) && err.contains("position 1"), "{err}");
    }
    let missing = dir.path().join("absent.gpoemb");
    let err = EmbeddingCache::load(&missing).unwrap_err().to_string();
    assert_eq!(err, format!("{}: No such file or directory", missing.display()));
}

fn npy(descr: &str, fortran: bool, shape: (usize, usize), data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({}, {}), }}",
        if fortran { "True" } else { "False" },
        shape.0,
        shape.1
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn import_npy_and_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 texts × 3
    let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let f16_bytes: Vec<u8> = values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
    let texts = dir.path().join("texts.jsonl");
    std::fs::write(&texts, "\"first text\"\n\"second \\\"text\\\" 🍕\"\n").unwrap();

    let check = |vectors: &Path| {
        let cache = import_embeddings(vectors, None, &texts, "alpaca-7b", "gpo", Precision::F32).unwrap();
        assert_eq!((cache.len(), cache.dim(), cache.model_id()), (2, 3, "alpaca-7b"));
        assert_eq!(cache.get("first text").unwrap(), &[1.0, 2.0, 3.0]);
        assert_eq!(cache.get("second \"text\" 🍕").unwrap(), &[4.0, 5.0, 6.0]);
    };
    for (name, bytes) in
        [("a.npy", npy("<f4", false, (2, 3), &f32_bytes)), ("b.npy", npy("<f2", false, (2, 3), &f16_bytes))]
    {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        check(&dir.path().join(name));
    }
    // Fortran order: the same matrix stored column by column.
    let columns: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let m = parse_npy(Path::new("f.npy"), &npy("<f4", true, (2, 3), &columns)).unwrap();
    assert_eq!(m.data, values);

    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3], &f32_bytes).unwrap();
    let st = safetensors::serialize([("embeddings", view)], None).unwrap();
    std::fs::write(dir.path().join("c.safetensors"), st).unwrap();
    check(&dir.path().join("c.safetensors"));

    // Malformed inputs are errors naming the file.
    let bad = dir.path().join("bad.npy");
    std::fs::write(&bad, npy("<f8", false, (2, 3), &[0; 48])).unwrap();
    assert!(
        import_embeddings(&bad, None, &texts, "m", "gpo", Precision::F16).unwrap_err().to_string().contains("bad.npy")
    );
    std::fs::write(&bad, &npy("<f4", false, (2, 3), &f32_bytes)[..100]).unwrap();
    assert!(import_embeddings(&bad, None, &texts, "m", "gpo", Precision::F16).is_err());
    let three = dir.path().join("three.jsonl");
    std::fs::write(&three, "\"a\"\n\"b\"\n\"c\"\n").unwrap();
    assert!(import_embeddings(&dir.path().join("a.npy"), None, &three, "m", "gpo", Precision::F16).is_err());
}
