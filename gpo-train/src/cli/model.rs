//! `gpo inspect`, `gpo export` and `gpo predict`: working with `.gpo` model files.

use anyhow::Context;
use std::io::Read;
use std::path::Path;

use burn_ndarray::NdArray;
use gpo_core::container::{HEADER_LEN, Header};
use gpo_core::prior::PriorSource;
use gpo_core::{ModelFile, Prediction, Predictor, Question, WeightDType};
use gpo_train::config::{DataConfig, RunConfig};
use gpo_train::embed::{EmbeddingCache, SentenceEncoder, Template, open_encoder};
use gpo_train::fsutil::write_atomic;
use gpo_train::run::load_task;
use serde::Deserialize;

type Cpu = NdArray<f32>;

/// Largest model file read (a model's size is bounded by its configuration's limits anyway).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Largest predict request read.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;

/// Reads at most `max` bytes from `reader` (standard input, or a model file after its header),
/// failing (naming `what`) when there is more; files by path go through `fsutil::read_capped`.
fn read_capped(mut reader: impl Read, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.by_ref().take(max + 1).read_to_end(&mut bytes).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(anyhow::anyhow!("{what}: larger than the limit of {max} bytes"));
    }
    Ok(bytes)
}

fn open(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| path.display().to_string())
}

/// Reads a model file: its header first, so that a foreign or huge file (`/dev/zero`) is refused
/// after its header's 24 bytes, then exactly the payload it declares (at most [`MAX_MODEL_BYTES`]).
pub(crate) fn load(path: &Path) -> anyhow::Result<ModelFile> {
    let what = path.display().to_string();
    let mut file = open(path)?;
    let mut bytes = read_capped(file.by_ref().take(HEADER_LEN as u64), HEADER_LEN as u64, &what)?;
    if let Ok(header) = Header::read(&bytes)
        && header.magic == gpo_core::model_file::MAGIC
    {
        if header.length > MAX_MODEL_BYTES {
            return Err(anyhow::anyhow!(
                "{what}: declares a {}-byte payload, larger than the limit of {MAX_MODEL_BYTES}",
                header.length
            ));
        }
        bytes.extend(read_capped(file, header.length, &what)?);
    }
    ModelFile::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// Builds the model and runs one prediction on zeros: what `predict` needs, checked.
fn check_usable(file: &ModelFile) -> anyhow::Result<()> {
    let predictor = Predictor::<Cpu>::new(file, &Default::default())?;
    let dim = file.config.dim_x;
    let (key, options) = match &file.prior {
        Some(prior) => {
            let q = prior.questions().first().context("the prior holds no question")?;
            (Some(q.key.as_str()), q.n_options())
        }
        None => (None, 2),
    };
    let zeros = vec![0.0f32; options * dim];
    let mut target = Question::new(&zeros);
    if let Some(key) = key {
        target = target.key(key);
    }
    let out = predictor.predict(&[], &[target])?;
    if out[0].distribution.iter().any(|p| !p.is_finite()) {
        return Err(anyhow::anyhow!("a forward pass on zeros gives non-finite probabilities"));
    }
    Ok(())
}

pub fn inspect(path: &Path, json: bool) -> anyhow::Result<()> {
    let file = load(path)?;
    check_usable(&file).map_err(|e| anyhow::anyhow!("{}: not usable: {e}", path.display()))?;
    let params = file.n_parameters();
    let m = &file.metadata;
    let prior = file.prior.as_ref().map(|p| {
        serde_json::json!({
            "kind": p.kind(),
            "metric": p.metric(),
            "neighbours": p.neighbours(),
            "groups": p.groups().iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
            "questions": p.questions().len(),
        })
    });
    if json {
        let value = serde_json::json!({
            "file": path.display().to_string(),
            "dtype": file.dtype.name(),
            "tensors": file.tensors.len(),
            "parameters": params,
            "config": &file.config,
            "metadata": m,
            "prior": prior,
        });
        println!("{value}");
        return Ok(());
    }
    println!("file            {}", path.display());
    println!("weights         {} ({} tensors, {params} parameters)", file.dtype.name(), file.tensors.len());
    println!("config          {:?}", file.config);
    println!("method          {}", if m.method.is_empty() { "–" } else { m.method.as_str() });
    if let Some(p) = &file.prior {
        let names: Vec<&str> = p.groups().iter().map(|g| g.name.as_str()).collect();
        println!(
            "prior           {} over {} groups and {} questions ({} nearest questions for unknown ones): {}",
            serde_json::to_string(&p.kind()).unwrap_or_default(),
            names.len(),
            p.questions().len(),
            p.neighbours(),
            names.join(", ")
        );
    }
    let template = m.text_template.map(|t| t.id()).unwrap_or("none");
    println!("embedding model {} ({}-d), template `{template}`", m.embedding_model, m.embedding_dim);
    println!("trained on      {} (seed {}, {} updates)", m.dataset, m.seed, m.training_steps);
    println!("validation      {}", m.validation_score.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into()));
    println!("written by      gpo {}", m.crate_version);
    println!("check           built and ran a forward pass: ok");
    Ok(())
}

pub fn export(path: &Path, dtype: WeightDType, out: &Path) -> anyhow::Result<()> {
    let mut file = load(path)?;
    file.dtype = dtype;
    let bytes =
        file.to_bytes().map_err(|e| anyhow::anyhow!("{}: cannot store as {}: {e}", path.display(), dtype.name()))?;
    write_atomic(out, &bytes).with_context(|| out.display().to_string())?;
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
}

/// Fails unless the inputs `source` gives (embeddings of `model_id` through `template`) are those
/// the model in `model_name` was trained on.
pub(crate) fn check_same_embeddings(
    meta: &gpo_core::ModelMetadata,
    model_name: &str,
    source: &str,
    model_id: &str,
    template: Option<Template>,
) -> anyhow::Result<()> {
    if meta.embedding_model != model_id || meta.text_template != template {
        let name = |t: Option<Template>| t.map_or("none", |t| t.id());
        return Err(anyhow::anyhow!(
            "{model_name} was trained on embeddings of `{}` (template `{}`), but {source} gives `{model_id}` (template `{}`)",
            meta.embedding_model,
            name(meta.text_template),
            name(template),
        ));
    }
    Ok(())
}

/// Embeddings for questions given by key or text: from a run config's survey and cache, and from
/// a sentence encoder (the config's embedding model, or an encoder file given with `--encoder`).
struct Embedder {
    /// The config's survey (questions by key) and cache (texts already embedded).
    survey: Option<(gpo_train::task::EmbeddedSurvey, EmbeddingCache)>,
    /// The model's template.
    template: Template,
    /// The embedding model to open when a text is in no cache.
    model: Option<std::path::PathBuf>,
    encoder: Option<SentenceEncoder<Cpu>>,
}

impl Embedder {
    /// Checks that the config and the encoder give the embeddings `file` was trained on.
    fn open(
        config_path: Option<&Path>,
        encoder_path: Option<&Path>,
        file: &ModelFile,
        model_path: &Path,
    ) -> anyhow::Result<Self> {
        let model_name = model_path.display().to_string();
        let template = file.metadata.text_template.ok_or_else(|| {
            anyhow::anyhow!("{model_name} was trained on inputs not made from text: give questions by `embeddings`")
        })?;
        let mut embedder = Self { survey: None, template, model: None, encoder: None };
        if let Some(config_path) = config_path {
            let config_name = config_path.display().to_string();
            let config = RunConfig::load(config_path)?;
            let DataConfig::Survey { cache, embedding_model, .. } = &config.data else {
                return Err(anyhow::anyhow!("{config_name}: predicting by key or text needs survey data"));
            };
            let (task, info) = load_task(&config.data).map_err(|e| anyhow::anyhow!("{config_name}: {e}"))?;
            check_same_embeddings(&file.metadata, &model_name, &config_name, &info.model, info.template)?;
            if task.dim != file.config.dim_x {
                return Err(anyhow::anyhow!(
                    "{config_name}: the config's embeddings are {}-d, {model_name} expects {}",
                    task.dim,
                    file.config.dim_x
                ));
            }
            embedder.survey = Some((task, EmbeddingCache::load(cache)?));
            embedder.model = embedding_model.clone();
        }
        if let Some(encoder_path) = encoder_path {
            let encoder = open_encoder::<Cpu>(encoder_path, &Default::default())?;
            let encoder_name = format!("the encoder {}", encoder_path.display());
            check_same_embeddings(&file.metadata, &model_name, &encoder_name, encoder.id(), Some(template))?;
            if encoder.dim() != file.config.dim_x {
                return Err(anyhow::anyhow!(
                    "{encoder_name} gives {}-d vectors, {model_name} expects {}",
                    encoder.dim(),
                    file.config.dim_x
                ));
            }
            embedder.encoder = Some(encoder);
        }
        Ok(embedder)
    }

    fn by_key(&self, key: &str) -> Option<Vec<f32>> {
        let (task, _) = self.survey.as_ref()?;
        let index = task.survey.questions.iter().position(|q| q.key == key)?;
        Some(task.embeddings[index].clone())
    }

    fn by_text(&mut self, text: &str, options: &[String]) -> anyhow::Result<Vec<f32>> {
        let texts = self.template.texts(text, options)?;
        let mut flat = Vec::new();
        for option_text in texts {
            if let Some(v) = self.survey.as_ref().and_then(|(_, cache)| cache.get(&option_text)) {
                flat.extend_from_slice(v);
                continue;
            }
            if self.encoder.is_none() {
                let model = self.model.as_ref().context(
                    "a text is not in the config's cache and there is no encoder: pass --encoder (or a config naming an embedding_model)",
                )?;
                self.encoder = Some(open_encoder(model, &Default::default())?);
            }
            let encoder = self.encoder.as_ref().context("no encoder")?;
            flat.extend(encoder.embed(&[option_text.as_str()])?);
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

/// A request question as a predictor question (its key, where given, finds its prior).
fn question<'a>(q: &'a RequestQuestion, embeddings: &'a [f32]) -> Question<'a> {
    let question = Question::new(embeddings);
    match &q.key {
        Some(key) => question.key(key),
        None => question,
    }
}

/// The JSON of one prediction: the distribution and, for a prior model, the prior used.
fn prediction_json(key: &Option<String>, p: &Prediction, file: &ModelFile) -> serde_json::Value {
    let mut out = serde_json::json!({ "key": key, "distribution": p.distribution });
    if let (Some(prior), Some(table)) = (&p.prior, &file.prior) {
        let (source, nearest) = match &prior.source {
            PriorSource::Answered => ("answered", Vec::new()),
            PriorSource::Nearest(qs) => ("nearest", qs.iter().map(|&q| table.questions()[q].key.clone()).collect()),
        };
        out["prior"] = serde_json::json!({ "distribution": prior.distribution, "source": source, "nearest": nearest });
    }
    out
}

pub fn predict(model_path: &Path, input: &Path, config: Option<&Path>, encoder: Option<&Path>) -> anyhow::Result<()> {
    let file = load(model_path)?;
    let bytes = if input == Path::new("-") {
        read_capped(std::io::stdin(), MAX_REQUEST_BYTES, "standard input")?
    } else {
        gpo_train::fsutil::read_capped(input, MAX_REQUEST_BYTES)?
    };
    let request: Request = serde_json::from_slice(&bytes).with_context(|| input.display().to_string())?;
    let dim = file.config.dim_x;
    let mut embedder = (config.is_some() || encoder.is_some())
        .then(|| Embedder::open(config, encoder, &file, model_path))
        .transpose()?;
    let mut embed = |q: &RequestQuestion, side: &str, i: usize| -> anyhow::Result<Vec<f32>> {
        let at = || format!("{}: {side}[{i}]", input.display());
        if let Some(rows) = &q.embeddings {
            if let Some(row) = rows.iter().position(|r| r.len() != dim) {
                return Err(anyhow::anyhow!(
                    "{}.embeddings[{row}] has {} values; the model expects {dim}",
                    at(),
                    rows[row].len()
                ));
            }
            return Ok(rows.iter().flatten().copied().collect());
        }
        let embedder = embedder.as_mut().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no `embeddings`; pass --encoder to embed text, or --config to embed by key or text",
                at()
            )
        })?;
        match (&q.text, &q.options, &q.key) {
            (Some(text), Some(options), _) => embedder.by_text(text, options),
            (_, _, Some(key)) => embedder.by_key(key).ok_or_else(|| match embedder.survey {
                Some(_) => anyhow::anyhow!("{}: unknown question key `{key}`", at()),
                None => anyhow::anyhow!("{}: a question by `key` alone needs --config (its survey)", at()),
            }),
            _ => Err(anyhow::anyhow!("{}: give `embeddings`, `text` with `options`, or a known `key`", at())),
        }
    };
    let mut context_embeddings = Vec::with_capacity(request.context.len());
    for (i, q) in request.context.iter().enumerate() {
        if q.distribution.is_none() {
            return Err(anyhow::anyhow!("{}: context[{i}] has no `distribution`", input.display()));
        }
        context_embeddings.push(embed(q, "context", i)?);
    }
    let mut target_embeddings = Vec::with_capacity(request.targets.len());
    for (i, q) in request.targets.iter().enumerate() {
        if q.distribution.is_some() {
            return Err(anyhow::anyhow!(
                "{}: targets[{i}] has a `distribution`; only context questions take one",
                input.display()
            ));
        }
        target_embeddings.push(embed(q, "targets", i)?);
    }
    let context: Vec<Question<'_>> = request
        .context
        .iter()
        .zip(&context_embeddings)
        .map(|(q, e)| question(q, e).answer(q.distribution.as_deref().unwrap_or_default()))
        .collect();
    let targets: Vec<Question<'_>> =
        request.targets.iter().zip(&target_embeddings).map(|(q, e)| question(q, e)).collect();
    let predictor =
        Predictor::<Cpu>::new(&file, &Default::default()).with_context(|| model_path.display().to_string())?;
    let predictions = predictor.predict(&context, &targets).with_context(|| input.display().to_string())?;
    let out: Vec<serde_json::Value> =
        request.targets.iter().zip(&predictions).map(|(q, p)| prediction_json(&q.key, p, &file)).collect();
    println!("{}", serde_json::json!({ "predictions": out }));
    Ok(())
}
