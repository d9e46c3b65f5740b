//! Throughput of an embedder (texts per second) at several batch sizes.

use std::fmt;
use std::time::Instant;

use super::{EmbedError, TextEmbedder, embed_texts};

/// One measured batch size.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Texts embedded.
    pub texts: usize,
    /// Wall-clock seconds for all of them.
    pub seconds: f64,
}

impl BenchRow {
    /// Throughput.
    pub fn texts_per_second(&self) -> f64 {
        self.texts as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// The result of [`bench_embed`]; prints as a table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchTable {
    /// Model measured.
    pub model_id: String,
    /// One row per batch size, in the order asked.
    pub rows: Vec<BenchRow>,
}

impl fmt::Display for BenchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model: {}", self.model_id)?;
        writeln!(f, "{:>10} {:>8} {:>10} {:>12}", "batch", "texts", "seconds", "texts/s")?;
        for r in &self.rows {
            writeln!(f, "{:>10} {:>8} {:>10.3} {:>12.1}", r.batch_size, r.texts, r.seconds, r.texts_per_second())?;
        }
        Ok(())
    }
}

/// Embeds all `texts` once per batch size (after one untimed warm-up batch) and reports the
/// throughput of each, batching as the cache does (texts grouped by length).
pub fn bench_embed<E: TextEmbedder + ?Sized>(
    embedder: &mut E,
    texts: &[&str],
    batch_sizes: &[usize],
) -> Result<BenchTable, EmbedError> {
    if let Some(first) = texts.first() {
        embedder.embed_batch(&[first])?;
    }
    let mut rows = Vec::with_capacity(batch_sizes.len());
    for &batch_size in batch_sizes {
        let started = Instant::now();
        embed_texts(embedder, texts, batch_size, |_| {})?;
        let row = BenchRow { batch_size, texts: texts.len(), seconds: started.elapsed().as_secs_f64() };
        tracing::info!(batch_size, texts_per_second = row.texts_per_second(), "embedding benchmark");
        rows.push(row);
    }
    Ok(BenchTable { model_id: embedder.model_id().to_owned(), rows })
}

/// sentence-transformers measured by `tools/bench_sentence_transformers.py` on the same texts.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceRun {
    /// torch's version string.
    pub torch: String,
    /// torch's intra-op threads.
    pub threads: usize,
    /// torch's own f32 matmul throughput (1024³, median of 10) at those threads, GFLOP/s.
    pub matmul_gflops: f64,
    /// `(batch size, texts per second)`, in the order asked.
    pub rows: Vec<(usize, f64)>,
}

/// Runs the sentence-transformers side of `gpo bench embed`: `script` embeds `texts` with the
/// model at `model` (folder or wheel) at each batch size on `threads` torch threads. The error
/// says why it could not run (no python3, torch or sentence-transformers, or a failed run).
pub fn bench_sentence_transformers(
    script: &std::path::Path,
    model: &std::path::Path,
    texts: &[&str],
    batch_sizes: &[usize],
    threads: usize,
) -> Result<ReferenceRun, String> {
    let dir = std::env::temp_dir().join(format!("gpo-bench-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let texts_path = dir.join("texts.jsonl");
    let mut lines = String::new();
    for text in texts {
        lines.push_str(&serde_json::to_string(text).map_err(|e| e.to_string())?);
        lines.push('\n');
    }
    let written = std::fs::write(&texts_path, lines).map_err(|e| format!("{}: {e}", texts_path.display()));
    let batches = batch_sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let output = written.and_then(|()| {
        std::process::Command::new("python3")
            .arg(script)
            .arg(model)
            .arg(&texts_path)
            .arg(&batches)
            .arg(threads.to_string())
            .output()
            .map_err(|e| format!("python3: {e}"))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let output = output?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{}: {}", script.display(), stderr.lines().last().unwrap_or("failed")));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("{}: output is not JSON: {e}", script.display()))?;
    let field = |v: &serde_json::Value, key: &str| {
        v[key].as_f64().ok_or_else(|| format!("{}: output lacks {key:?}", script.display()))
    };
    let rows = value["rows"]
        .as_array()
        .ok_or_else(|| format!("{}: output lacks \"rows\"", script.display()))?
        .iter()
        .map(|row| Ok((field(row, "batch")? as usize, field(row, "texts_per_second")?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ReferenceRun {
        torch: value["torch"].as_str().unwrap_or("?").to_owned(),
        threads: field(&value, "threads")? as usize,
        matmul_gflops: field(&value, "matmul_gflops")?,
        rows,
    })
}
