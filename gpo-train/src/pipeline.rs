//! From survey files and an embedding cache to an [`EmbeddedSurvey`]: load, select groups,
//! attach embeddings.

use std::path::Path;

use crate::config::DataConfig;
use crate::data::select::{SelectReport, select_loaded};
use crate::data::{DataError, Loaded, Survey, globalopinionqa, notebook, opinionqa, tidy};
use crate::embed::{
    EmbedError, EmbedProgress, EmbeddingCache, Precision, SurveyTemplate, Template, TextEmbedder, open_encoder,
};
use crate::synthetic::{SyntheticSpec, synthetic_survey};
use crate::task::EmbeddedSurvey;
use burn_ndarray::NdArray;

pub use crate::data::Loader;

/// Loads a survey with `loader`. `questions` is the OpinionQA release folder the notebook format
/// takes its question texts from.
pub fn load_survey(loader: Loader, source: &Path, questions: Option<&Path>) -> Result<Loaded, DataError> {
    match loader {
        Loader::Tidy => Ok(Loaded { survey: tidy::load(source)?, skipped: Vec::new() }),
        Loader::Opinionqa => opinionqa::load_with_report(source),
        Loader::Notebook => {
            let release = questions.ok_or_else(|| {
                DataError::new(
                    source,
                    "the notebook format needs the OpinionQA release for question texts (`questions`)",
                )
            })?;
            let (questions, skipped) = opinionqa::load_questions(release)?;
            Ok(Loaded { survey: notebook::load(source, &questions)?, skipped })
        }
        Loader::GlobalopinionqaCsv => globalopinionqa::load_csv_with_report(source),
        Loader::GlobalopinionqaJsonl => globalopinionqa::load_jsonl_with_report(source),
    }
}

/// Keeps the named groups, or GPO's default groups for the survey's metric
/// ([`select_loaded`]). Named groups of which none is in the survey are an error naming the
/// survey's groups (a name or two missing among found ones are listed in the report).
pub fn select_groups(loaded: &Loaded, groups: Option<&[String]>) -> Result<(Survey, SelectReport), NoGroupFound> {
    let names: Option<Vec<&str>> = groups.map(|names| names.iter().map(String::as_str).collect());
    let (survey, report) = select_loaded(loaded, names.as_deref());
    if let Some(requested) = groups
        && report.kept_groups.is_empty()
    {
        let mut available: Vec<String> = Vec::new();
        for g in &loaded.survey.groups {
            if !available.contains(&g.name) {
                available.push(g.name.clone());
            }
        }
        return Err(NoGroupFound { requested: requested.to_vec(), available });
    }
    Ok((survey, report))
}

/// None of the requested groups is in the survey.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "none of the requested groups ({}) is a group of the survey; its groups: {}",
    requested.join(", "),
    if available.len() > 30 { format!("{}, … ({} in all)", available[..30].join(", "), available.len()) } else { available.join(", ") }
)]
pub struct NoGroupFound {
    /// The names asked for.
    pub requested: Vec<String>,
    /// The survey's group names, in order.
    pub available: Vec<String>,
}

/// Identification of the embeddings, recorded in exported models.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingInfo {
    /// Embedding model id.
    pub model: String,
    /// Text template (`None`: not made from text).
    pub template: Option<Template>,
}

/// Texts embedded per batch when the cache has to be filled.
const EMBED_BATCH: usize = 32;
/// Texts per forward pass of a causal LM (the options of a few questions: one prefix each).
const LLM_EMBED_BATCH: usize = 16;

/// The embedding model at `path`: a causal LM when it is a GGUF file (or a wheel holding one,
/// embedded as the paper did: the mean final hidden state), else a sentence-transformers BERT
/// model (folder or wheel). Returns the model and its batch size.
pub fn open_embedder(path: &Path) -> Result<(Box<dyn TextEmbedder>, usize), EmbedError> {
    let device = Default::default();
    if crate::llm::is_gguf(path) {
        let model = crate::llm::LlmEmbedder::<NdArray<f32>>::open(path, &device)
            .map_err(|e| EmbedError::Model { path: path.to_path_buf(), message: e.to_string() })?;
        return Ok((Box::new(model), LLM_EMBED_BATCH));
    }
    Ok((Box::new(open_encoder::<NdArray<f32>>(path, &device)?), EMBED_BATCH))
}

/// Opens the cache at `cache_path` and fills in the survey's texts it lacks with the model at
/// `model` (folder or wheel), reporting to `progress`; without a model, missing texts are an error.
pub fn ensure_cache(
    survey: &Survey,
    template: Template,
    cache_path: &Path,
    model: Option<&Path>,
    progress: &dyn EmbedProgress,
) -> Result<EmbeddingCache, EmbedError> {
    let texts = template.survey_texts(survey)?;
    let existing = cache_path.exists().then(|| EmbeddingCache::load(cache_path)).transpose()?;
    if let Some(cache) = &existing
        && cache.template_id() == template.id()
        && texts.iter().all(|t| cache.contains(t))
    {
        return Ok(cache.clone());
    }
    let Some(model) = model else {
        // Let the lookup name the first missing question.
        let cache = existing.unwrap_or_else(|| EmbeddingCache::new("none", template.id(), 1, Precision::F16));
        cache.survey_embeddings(survey, template)?;
        return Ok(cache);
    };
    let (mut encoder, batch_size) = open_embedder(model)?;
    let mut cache = match existing {
        Some(cache) => cache,
        None => EmbeddingCache::new(encoder.model_id(), template.id(), encoder.dim(), Precision::F16),
    };
    if cache.template_id() != template.id() || cache.model_id() != encoder.model_id() {
        return Err(EmbedError::Cache {
            path: cache_path.to_path_buf(),
            message: format!(
                "holds model {:?} / template {:?}, not {:?} / {:?}",
                cache.model_id(),
                cache.template_id(),
                encoder.model_id(),
                template.id()
            ),
        });
    }
    if cache.embed_missing(encoder.as_mut(), &texts, batch_size, progress)? > 0 {
        cache.save(cache_path)?;
    }
    Ok(cache)
}

/// Why a run's data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The survey files.
    #[error(transparent)]
    Data(#[from] DataError),
    /// None of the configured groups is in the survey.
    #[error("[data] groups: {0}")]
    Groups(NoGroupFound),
    /// The text template.
    #[error("[data] template: {0}")]
    Template(gpo_core::template::TemplateError),
    /// The embedding cache or model.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The embeddings do not fit the survey.
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
}

gpo_core::cause_in_message!(LoadError { Groups(NoGroupFound), Template(gpo_core::template::TemplateError) });

/// Loads the survey and its embeddings as `data` says: a survey's files, groups and cached
/// embeddings, or a generated survey. Texts missing from the cache are
/// embedded silently ([`load_task_with_progress`] reports them).
pub fn load_task(data: &DataConfig) -> Result<(EmbeddedSurvey, EmbeddingInfo), LoadError> {
    load_task_with_progress(data, &())
}

/// [`load_task`], reporting the embedding of texts missing from the cache to `progress`.
pub fn load_task_with_progress(
    data: &DataConfig,
    progress: &dyn EmbedProgress,
) -> Result<(EmbeddedSurvey, EmbeddingInfo), LoadError> {
    match data {
        &DataConfig::Synthetic { groups, questions, dim, clusters, sharpness, seed } => {
            let spec = SyntheticSpec { groups, questions, dim, clusters, sharpness, seed };
            let info = EmbeddingInfo { model: "synthetic".into(), template: None };
            Ok((synthetic_survey(spec), info))
        }
        DataConfig::Survey { loader, source, questions, groups, cache, embedding_model, template } => {
            let loaded = load_survey(*loader, source, questions.as_deref())?;
            for (reason, n) in loaded.skipped_counts() {
                tracing::info!(count = n, %reason, "skipped while loading");
            }
            let (survey, report) = select_groups(&loaded, groups.as_deref()).map_err(LoadError::Groups)?;
            tracing::info!(groups = survey.groups.len(), questions = survey.questions.len(), "selected\n{report}");
            let template: Template = template.parse().map_err(LoadError::Template)?;
            let cache = ensure_cache(&survey, template, cache, embedding_model.as_deref(), progress)?;
            let embeddings = cache.survey_embeddings(&survey, template)?;
            let info = EmbeddingInfo { model: cache.model_id().to_string(), template: Some(template) };
            let task = EmbeddedSurvey::new(survey, embeddings, cache.dim())?;
            Ok((task, info))
        }
    }
}
