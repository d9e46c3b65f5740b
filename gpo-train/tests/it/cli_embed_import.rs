//! `gpo embed import`: vectors made elsewhere (the paper's LLM-embedding path) become a cache that
//! `gpo run` reads; bad inputs are one clear error.

use std::process::Command;

use gpo_train::embed::EmbeddingCache;
use gpo_train::embed::import::encode_npy;

fn gpo(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpo")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn imported_vectors_become_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    let texts = ["first text", "second text", "third text"];
    let values: Vec<f32> = (0..texts.len() * 5).map(|i| i as f32 * 0.25 - 1.0).collect();
    let (npy, jsonl, out) = (dir.path().join("v.npy"), dir.path().join("t.jsonl"), dir.path().join("c.gpoemb"));
    std::fs::write(&npy, encode_npy(texts.len(), 5, &values)).unwrap();
    let lines: Vec<String> = texts.iter().map(|t| serde_json::to_string(t).unwrap()).collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let args = |out: &std::path::Path| {
        vec![
            "embed".to_string(),
            "import".into(),
            "--vectors".into(),
            npy.display().to_string(),
            "--texts".into(),
            jsonl.display().to_string(),
            "--model-id".into(),
            "my-llm".into(),
            "--f32".into(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    let a = args(&out);
    let (ok, err) = gpo(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let cache = EmbeddingCache::load(&out).unwrap();
    assert_eq!((cache.len(), cache.dim(), cache.model_id(), cache.template_id()), (3, 5, "my-llm", "gpo"));
    assert_eq!(cache.get("second text").unwrap(), &values[5..10]);
    // Fewer texts than rows: one error naming the texts file.
    std::fs::write(&jsonl, lines[..2].join("\n")).unwrap();
    let (ok, err) = gpo(&args(&dir.path().join("d.gpoemb")).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("t.jsonl") && err.contains("2 texts"), "{err}");
}
