//! `gpo inspect`, `gpo export` and `gpo predict`: working with `.gpo` model files.

use std::io::Read;
use std::path::Path;

use burn_ndarray::NdArray;
use gpo_core::{Episode, GpoBatch, ModelFile};
use gpo_train::config::{DataConfig, RunConfig, parse_dtype};
use gpo_train::embed::{EmbeddingCache, SentenceEncoder, Template, TextEmbedder};
use gpo_train::fsutil::write_atomic;
use gpo_train::run::load_task;
use serde::Deserialize;

type Cpu = NdArray<f32>;

fn load(path: &Path) -> Result<ModelFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ModelFile::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn inspect(path: &Path, json: bool) -> Result<(), String> {
    let file = load(path)?;
    let params: usize = file.tensors.iter().map(|t| t.values.len()).sum();
    let m = &file.metadata;
    if json {
        let value = serde_json::json!({
            "file": path.display().to_string(),
            "dtype": file.dtype.name(),
            "tensors": file.tensors.len(),
            "parameters": params,
            "config": &file.config,
            "metadata": m,
        });
        println!("{value}");
        return Ok(());
    }
    println!("file            {}", path.display());
    println!("weights         {} ({} tensors, {params} parameters)", file.dtype.name(), file.tensors.len());
    println!("config          {:?}", file.config);
    println!("method          {}", if m.method.is_empty() { "–" } else { m.method.as_str() });
    if file.config.prior {
        println!("prior           {} over {} groups: {}", m.prior, m.prior_groups.len(), m.prior_groups.join(", "));
    }
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

/// One question of a predict request, given by its options' embeddings, by its text and options
/// (embedded with the config's template, from its cache or on the fly), or by the key of a
/// question of the config's survey; context questions also carry the group's distribution.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestQuestion {
    /// Question key (echoed in the output; looked up in the survey when nothing else is given).
    #[serde(default)]
    key: Option<String>,
    /// Question text (with `options`).
    #[serde(default)]
    text: Option<String>,
    /// Option texts (with `text`).
    #[serde(default)]
    options: Option<Vec<String>>,
    /// One embedding per option.
    #[serde(default)]
    embeddings: Option<Vec<Vec<f32>>>,
    /// The group's answer distribution (context questions only).
    #[serde(default)]
    distribution: Option<Vec<f32>>,
    /// The population prior over the options (required by prior models, ignored otherwise).
    #[serde(default)]
    prior: Option<Vec<f32>>,
}

/// Embeddings for questions given by key or text, from a run config's data.
struct Embedder {
    task: gpo_train::task::EmbeddedSurvey,
    cache: EmbeddingCache,
    template: Template,
    model: Option<std::path::PathBuf>,
    encoder: Option<SentenceEncoder<Cpu>>,
}

impl Embedder {
    fn open(config_path: &Path) -> Result<Self, String> {
        let config = RunConfig::load(config_path).map_err(|e| e.to_string())?;
        let DataConfig::Survey { cache, embedding_model, template, .. } = &config.data else {
            return Err(format!("{}: predicting by key or text needs survey data", config_path.display()));
        };
        let (task, _) = load_task(&config.data).map_err(|e| e.to_string())?;
        let cache = EmbeddingCache::load(cache).map_err(|e| e.to_string())?;
        let template = template.parse().map_err(|e: gpo_train::embed::EmbedError| e.to_string())?;
        Ok(Self { task, cache, template, model: embedding_model.clone(), encoder: None })
    }

    fn by_key(&self, key: &str) -> Option<Vec<f32>> {
        let index = self.task.survey.questions.iter().position(|q| q.key == key)?;
        Some(self.task.embeddings[index].clone())
    }

    fn by_text(&mut self, text: &str, options: &[String]) -> Result<Vec<f32>, String> {
        let question = gpo_train::data::Question {
            key: String::new(),
            text: text.to_string(),
            options: options.to_vec(),
            ordinal: (1..=options.len()).map(|i| i as f64).collect(),
        };
        let mut flat = Vec::new();
        for option_text in self.template.texts(&question).map_err(|e| e.to_string())? {
            if let Some(v) = self.cache.get(&option_text) {
                flat.extend_from_slice(v);
                continue;
            }
            if self.encoder.is_none() {
                let model =
                    self.model.as_ref().ok_or("a text is not in the cache and the config names no embedding_model")?;
                self.encoder = Some(SentenceEncoder::open(model, &Default::default()).map_err(|e| e.to_string())?);
            }
            let encoder = self.encoder.as_mut().ok_or("no encoder")?;
            flat.extend(encoder.embed_batch(&[option_text.as_str()]).map_err(|e| e.to_string())?);
        }
        Ok(flat)
    }
}

/// `{"context": [...], "targets": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    context: Vec<RequestQuestion>,
    targets: Vec<RequestQuestion>,
}

pub fn predict(model_path: &Path, input: &Path, config: Option<&Path>) -> Result<(), String> {
    let file = load(model_path)?;
    let text = if input == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?
    };
    let request: Request = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    let dim = file.config.dim_x;
    let mut embedder = config.map(Embedder::open).transpose()?;
    let mut embed = |q: &RequestQuestion, side: &str, i: usize| -> Result<Vec<f32>, String> {
        let at = || format!("{}: {side}[{i}]", input.display());
        if let Some(rows) = &q.embeddings {
            if let Some(row) = rows.iter().position(|r| r.len() != dim) {
                return Err(format!(
                    "{}.embeddings[{row}] has {} values; the model expects {dim}",
                    at(),
                    rows[row].len()
                ));
            }
            return Ok(rows.iter().flatten().copied().collect());
        }
        let embedder = embedder
            .as_mut()
            .ok_or_else(|| format!("{}: no `embeddings`; pass --config to embed by key or text", at()))?;
        if embedder.cache.dim() != dim {
            return Err(format!(
                "{}: the config's embeddings are {}-d, the model expects {dim}",
                at(),
                embedder.cache.dim()
            ));
        }
        match (&q.text, &q.options, &q.key) {
            (Some(text), Some(options), _) => embedder.by_text(text, options),
            (_, _, Some(key)) => embedder.by_key(key).ok_or_else(|| format!("{}: unknown question key `{key}`", at())),
            _ => Err(format!("{}: give `embeddings`, `text` with `options`, or a known `key`", at())),
        }
    };
    // Prior models read a population prior per question; the request must give it.
    let uses_prior = file.config.prior;
    let prior_of = |q: &RequestQuestion, side: &str, i: usize| -> Result<Option<Vec<f32>>, String> {
        match (&q.prior, uses_prior) {
            (Some(p), true) => Ok(Some(p.clone())),
            (None, true) => Err(format!(
                "{}: {side}[{i}].prior is missing: this model ({}) reads a population prior for every question{}",
                input.display(),
                if file.metadata.method.is_empty() { "a prior model" } else { file.metadata.method.as_str() },
                if file.metadata.prior.is_empty() { String::new() } else { format!(", {}", file.metadata.prior) },
            )),
            (_, false) => Ok(None),
        }
    };
    let mut episode = Episode::new(dim).map_err(|e| e.to_string())?;
    for (i, q) in request.context.iter().enumerate() {
        let distribution = q
            .distribution
            .as_ref()
            .ok_or_else(|| format!("{}: context[{i}] has no `distribution`", input.display()))?;
        let prior = prior_of(q, "context", i)?;
        episode
            .push_context_with_prior(&embed(q, "context", i)?, distribution, prior.as_deref())
            .map_err(|e| format!("{}: {e}", input.display()))?;
    }
    for (i, q) in request.targets.iter().enumerate() {
        let prior = prior_of(q, "targets", i)?;
        episode
            .push_target_with_prior(&embed(q, "targets", i)?, None, prior.as_deref())
            .map_err(|e| format!("{}: {e}", input.display()))?;
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
