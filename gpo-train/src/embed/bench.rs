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

/// Why the sentence-transformers side of `gpo bench embed` did not run.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// A file of the run could not be written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// python3 could not be started.
    #[error("python3: {0}")]
    Python(std::io::Error),
    /// The script failed (its last line of stderr).
    #[error("{script}: {last_line}")]
    Failed {
        /// The script.
        script: std::path::PathBuf,
        /// The last line it wrote to stderr.
        last_line: String,
    },
    /// Its output is not the JSON it should write.
    #[error("{script}: output is not JSON: {error}")]
    NotJson {
        /// The script.
        script: std::path::PathBuf,
        /// Why.
        error: serde_json::Error,
    },
    /// Its output lacks a field.
    #[error("{script}: output lacks {key:?}")]
    Missing {
        /// The script.
        script: std::path::PathBuf,
        /// The field.
        key: &'static str,
    },
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
) -> Result<ReferenceRun, ReferenceError> {
    let dir = std::env::temp_dir().join(format!("gpo-bench-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|error| ReferenceError::Io { path: dir.clone(), error })?;
    let texts_path = dir.join("texts.jsonl");
    let mut lines = String::new();
    for text in texts {
        // A JSON string of a text: escaping cannot fail.
        lines.push_str(&serde_json::Value::from(*text).to_string());
        lines.push('\n');
    }
    let written =
        std::fs::write(&texts_path, lines).map_err(|error| ReferenceError::Io { path: texts_path.clone(), error });
    let batches = batch_sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let output = written.and_then(|()| {
        std::process::Command::new("python3")
            .arg(script)
            .arg(model)
            .arg(&texts_path)
            .arg(&batches)
            .arg(threads.to_string())
            .output()
            .map_err(ReferenceError::Python)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let output = output?;
    let script = script.to_path_buf();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last_line = stderr.lines().last().unwrap_or("failed").to_owned();
        return Err(ReferenceError::Failed { script, last_line });
    }
    let value: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| ReferenceError::NotJson { script: script.clone(), error })?;
    let missing = |key| ReferenceError::Missing { script: script.clone(), key };
    let field = |v: &serde_json::Value, key: &'static str| v[key].as_f64().ok_or_else(|| missing(key));
    let rows = value["rows"]
        .as_array()
        .ok_or_else(|| missing("rows"))?
        .iter()
        .map(|row| Ok((field(row, "batch")? as usize, field(row, "texts_per_second")?)))
        .collect::<Result<Vec<_>, ReferenceError>>()?;
    Ok(ReferenceRun {
        torch: value["torch"].as_str().unwrap_or("?").to_owned(),
        threads: field(&value, "threads")? as usize,
        matmul_gflops: field(&value, "matmul_gflops")?,
        rows,
    })
}
