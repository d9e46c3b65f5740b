//! `gpo inspect`, `gpo export` and `gpo predict`: working with `.gpo` model files.

use std::io::Read;
use std::path::Path;

use burn_ndarray::NdArray;
use gpo_core::{Episode, GpoBatch, ModelFile};
use gpo_train::config::parse_dtype;
use gpo_train::fsutil::write_atomic;
use serde::Deserialize;

type Cpu = NdArray<f32>;

fn load(path: &Path) -> Result<ModelFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ModelFile::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn inspect(path: &Path) -> Result<(), String> {
    let file = load(path)?;
    let params: usize = file.tensors.iter().map(|t| t.values.len()).sum();
    let m = &file.metadata;
    println!("file            {}", path.display());
    println!("weights         {} ({} tensors, {params} parameters)", file.dtype.name(), file.tensors.len());
    println!("config          {:?}", file.config);
    println!("embedding model {} ({}-d), template `{}`", m.embedding_model, m.embedding_dim, m.text_template);
    println!("trained on      {} (seed {}, {} updates)", m.dataset, m.seed, m.training_steps);
    println!("validation      {}", m.validation_score.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into()));
    println!("written by      gpo {}", m.crate_version);
    Ok(())
}

pub fn export(path: &Path, dtype: &str, out: &Path) -> Result<(), String> {
    let mut file = load(path)?;
    file.dtype = parse_dtype(dtype).ok_or_else(|| format!("--dtype `{dtype}`: expected f32, f16 or bf16"))?;
    let bytes = file.to_bytes();
    write_atomic(out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("wrote {} ({} bytes, {})", out.display(), bytes.len(), file.dtype.name());
    Ok(())
}

/// One question of a predict request: its options' embeddings and, for context questions, the
/// group's answer distribution.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestQuestion {
    /// Optional label echoed in the output.
    #[serde(default)]
    key: Option<String>,
    /// One embedding per option.
    embeddings: Vec<Vec<f32>>,
    /// The group's answer distribution (context questions only).
    #[serde(default)]
    distribution: Option<Vec<f32>>,
}

/// `{"context": [...], "targets": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    context: Vec<RequestQuestion>,
    targets: Vec<RequestQuestion>,
}

pub fn predict(model_path: &Path, input: &Path) -> Result<(), String> {
    let file = load(model_path)?;
    let text = if input == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?
    };
    let request: Request = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    let flat = |q: &RequestQuestion| -> Vec<f32> { q.embeddings.iter().flatten().copied().collect() };
    let mut episode = Episode::new(file.config.dim_x).map_err(|e| e.to_string())?;
    for (i, q) in request.context.iter().enumerate() {
        let distribution = q
            .distribution
            .as_ref()
            .ok_or_else(|| format!("{}: context[{i}] has no `distribution`", input.display()))?;
        check_rows(q, file.config.dim_x, input, "context", i)?;
        episode.push_context(&flat(q), distribution).map_err(|e| format!("{}: {e}", input.display()))?;
    }
    for (i, q) in request.targets.iter().enumerate() {
        check_rows(q, file.config.dim_x, input, "targets", i)?;
        episode.push_target(&flat(q), None).map_err(|e| format!("{}: {e}", input.display()))?;
    }
    let device = Default::default();
    let model = file.to_model::<Cpu>(&device).map_err(|e| format!("{}: {e}", model_path.display()))?;
    let batch = GpoBatch::<Cpu>::new(&[episode], &device).map_err(|e| format!("{}: {e}", input.display()))?;
    let predictions = model.predict(&batch).remove(0);
    let out: Vec<serde_json::Value> = request
        .targets
        .iter()
        .zip(predictions)
        .map(|(q, p)| serde_json::json!({ "key": q.key, "distribution": p }))
        .collect();
    println!("{}", serde_json::json!({ "predictions": out }));
    Ok(())
}

fn check_rows(q: &RequestQuestion, dim: usize, input: &Path, side: &str, i: usize) -> Result<(), String> {
    match q.embeddings.iter().position(|row| row.len() != dim) {
        Some(row) => Err(format!(
            "{}: {side}[{i}].embeddings[{row}] has {} values; the model expects {dim}",
            input.display(),
            q.embeddings[row].len()
        )),
        None => Ok(()),
    }
}
