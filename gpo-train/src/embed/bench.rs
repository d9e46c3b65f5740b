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
