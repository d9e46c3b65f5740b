//! `gpo inspect`, `gpo export` and `gpo predict`: working with `.gpo` model files.

use anyhow::Context;
use std::io::Read;
use std::path::Path;

use burn_ndarray::NdArray;
use gpo_core::container::{HEADER_LEN, Header};
use gpo_core::request::{Request, RequestQuestion, Response};
use gpo_core::{ModelFile, Predictor, Question, WeightDType};
use gpo_train::config::{DataConfig, RunConfig};
use gpo_train::embed::{EmbeddingCache, Template, open_encoder};
use gpo_train::fsutil::write_atomic;
use gpo_train::pipeline::load_task;

type Cpu = NdArray<f32>;

/// Largest model file read (a model's size is bounded by its configuration's limits anyway).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Largest predict request read.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;

/// Reads at most `max` bytes from `reader` (standard input, or a model file after its header),
/// failing (naming `what`) when there is more; files by path go through `fsutil::read_capped`.
fn read_capped(reader: impl Read, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    read_capped_into(reader, max, what, &mut bytes)?;
    Ok(bytes)
}

/// [`read_capped`] appending to `bytes`, whose spare capacity the caller has sized (so that a
/// file is held once, not in a doubled buffer and a copy).
fn read_capped_into(mut reader: impl Read, max: u64, what: &str, bytes: &mut Vec<u8>) -> anyhow::Result<()> {
    let start = bytes.len();
    reader.by_ref().take(max + 1).read_to_end(bytes).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    if (bytes.len() - start) as u64 > max {
        return Err(anyhow::anyhow!("{what}: larger than the limit of {max} bytes"));
    }
    Ok(())
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
        // Room for the payload the file holds (never more than it declares).
        let present = file.metadata().map_or(0, |m| m.len().saturating_sub(HEADER_LEN as u64));
        bytes.reserve_exact(usize::try_from(header.length.min(present)).unwrap_or(0));
        read_capped_into(file, header.length, &what, &mut bytes)?;
    }
    ModelFile::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// Builds the model and runs one prediction on zeros: what `predict` needs, checked.
fn check_usable(file: &ModelFile) -> anyhow::Result<()> {
    let predictor = Predictor::<Cpu>::new(file, &Default::default())?;
    let dim = file.config().dim_x;
    let (key, options) = match file.prior() {
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
    let m = file.metadata();
    let prior = file.prior().as_ref().map(|p| {
        serde_json::json!({
            "kind": p.kind(),
            "metric": p.metric(),
            "neighbours": p.neighbours(),
            "neighbour_weights": p.neighbour_rule().weights,
            "groups": p.groups().iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
            "questions": p.questions().len(),
        })
    });
    if json {
        let value = serde_json::json!({
            "file": path.display().to_string(),
            "dtype": file.dtype().name(),
            "tensors": file.tensors().len(),
            "parameters": params,
            "config": file.config(),
            "metadata": m,
            "prior": prior,
        });
        println!("{value}");
        return Ok(());
    }
    println!("file            {}", path.display());
    println!("weights         {} ({} tensors, {params} parameters)", file.dtype().name(), file.tensors().len());
    println!("config          {:?}", file.config());
    println!("method          {}", if m.method.is_empty() { "–" } else { m.method.as_str() });
    if let Some(p) = file.prior() {
        let names: Vec<&str> = p.groups().iter().map(|g| g.name.as_str()).collect();
        println!(
            "prior           {} over {} groups and {} questions (an unknown question's: {}): {}",
            serde_json::to_string(&p.kind()).unwrap_or_default(),
            names.len(),
            p.questions().len(),
            p.neighbour_rule(),
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
    let file = load(path)?.with_dtype(dtype);
    let bytes =
        file.to_bytes().map_err(|e| anyhow::anyhow!("{}: cannot store as {}: {e}", path.display(), dtype.name()))?;
    write_atomic(out, &bytes).with_context(|| out.display().to_string())?;
    println!("wrote {} ({} bytes, {})", out.display(), bytes.len(), file.dtype().name());
    Ok(())
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

/// Questions given by key, or by text the cache holds, turned into embeddings from a run
/// config's survey and cache; the config's embedding model for texts the cache lacks.
struct ConfigEmbeddings {
    task: gpo_train::task::EmbeddedSurvey,
    cache: EmbeddingCache,
    template: Template,
    embedding_model: Option<std::path::PathBuf>,
}

impl ConfigEmbeddings {
    /// Checks that the config gives the embeddings `file` was trained on.
    fn open(config_path: &Path, file: &ModelFile, model_name: &str) -> anyhow::Result<Self> {
        let config_name = config_path.display().to_string();
        let config = RunConfig::load(config_path)?;
        let DataConfig::Survey { cache, embedding_model, .. } = &config.data else {
            return Err(anyhow::anyhow!("{config_name}: predicting by key or text needs survey data"));
        };
        let (task, info) = load_task(&config.data).map_err(|e| anyhow::anyhow!("{config_name}: {e}"))?;
        check_same_embeddings(file.metadata(), model_name, &config_name, &info.model, info.template)?;
        let template = info.template.context("the survey's embeddings are made from text")?;
        if task.dim != file.config().dim_x {
            return Err(anyhow::anyhow!(
                "{config_name}: the config's embeddings are {}-d, {model_name} expects {}",
                task.dim,
                file.config().dim_x
            ));
        }
        Ok(Self { task, cache: EmbeddingCache::load(cache)?, template, embedding_model: embedding_model.clone() })
    }

    /// Gives `q` its embeddings when it is known by key alone, or by text the cache holds;
    /// leaves other questions as they are.
    fn resolve(&self, q: &mut RequestQuestion) -> anyhow::Result<()> {
        match (&q.embeddings, &q.text, &q.options, &q.key) {
            (None, Some(text), Some(options), _) => {
                let texts = self.template.texts(text, options)?;
                let rows: Option<Vec<Vec<f32>>> =
                    texts.iter().map(|t| self.cache.get(t).map(<[f32]>::to_vec)).collect();
                if let Some(rows) = rows {
                    (q.embeddings, q.text, q.options) = (Some(rows), None, None);
                }
            }
            (None, None, None, Some(key)) => {
                let index = self.task.survey.questions.iter().position(|question| &question.key == key);
                let index = index.ok_or_else(|| anyhow::anyhow!("unknown question key `{key}`"))?;
                let dim = self.task.dim;
                q.embeddings = Some(self.task.embeddings[index].chunks_exact(dim).map(<[f32]>::to_vec).collect());
            }
            _ => {}
        }
        Ok(())
    }
}

/// The JSON of a response (`{"predictions": [...]}`).
fn response_json(response: &Response) -> anyhow::Result<String> {
    Ok(serde_json::to_string(response)?)
}

pub fn predict(model_path: &Path, input: &Path, config: Option<&Path>, encoder: Option<&Path>) -> anyhow::Result<()> {
    let file = load(model_path)?;
    let model_name = model_path.display().to_string();
    let input_name = input.display().to_string();
    let bytes = if input == Path::new("-") {
        read_capped(std::io::stdin(), MAX_REQUEST_BYTES, "standard input")?
    } else {
        gpo_train::fsutil::read_capped(input, MAX_REQUEST_BYTES)?
    };
    let mut request: Request = serde_json::from_slice(&bytes).with_context(|| input_name.clone())?;
    let mut encoder = encoder.map(|path| open_encoder::<Cpu>(path, &Default::default())).transpose()?;
    if let Some(config) = config {
        let embeddings = ConfigEmbeddings::open(config, &file, &model_name)?;
        for (side, questions) in [("context", &mut request.context), ("targets", &mut request.targets)] {
            for (i, q) in questions.iter_mut().enumerate() {
                embeddings.resolve(q).map_err(|e| anyhow::anyhow!("{input_name}: {side}[{i}]: {e}"))?;
            }
        }
        let texts_left =
            request.context.iter().chain(&request.targets).any(|q| q.embeddings.is_none() && q.text.is_some());
        if encoder.is_none() && texts_left {
            let model = embeddings.embedding_model.as_ref().context(
                "a text is not in the config's cache and there is no encoder: pass --encoder (or a config naming an embedding_model)",
            )?;
            encoder = Some(open_encoder(model, &Default::default())?);
        }
    }
    let mut predictor = Predictor::<Cpu>::new(&file, &Default::default()).with_context(|| model_name.clone())?;
    if let Some(encoder) = encoder {
        predictor = predictor.with_encoder(encoder).with_context(|| model_name.clone())?;
    }
    let response = predictor.answer(&request).map_err(|e| anyhow::anyhow!("{input_name}: {e}"))?;
    println!("{}", response_json(&response)?);
    Ok(())
}
