//! `gpo export-bank`: the question bank of gpo-wasm's demo page (`bank.json` and
//! `embeddings.f16`), from a run config's survey and embeddings, the `results.json` of the
//! `gpo run` that trained the demo model, and that model's `.gpo` file.
//!
//! * `bank.json`: the survey's questions (key, text, options, ordinals and `row`, the index of the
//!   question's first option in `embeddings.f16`), the model's method and prior kind (for the
//!   record: the page reads them from the model), and the held-out groups (the run's
//!   `test_groups`) with their answer distributions (4 decimals). The prior groups' answers are
//!   not in the bank: a prior model's `.gpo` file carries them, and the page gets the priors and
//!   the train-mean / kNN-groups baselines from the model (`GpoModel.priors`).
//! * `embeddings.f16`: every (question, option) embedding, in question order, one row of `dim`
//!   little-endian f16 values per option: the vectors `gpo run` trained on (the config's cache,
//!   looked up by gpo-train's template), so the page embeds nothing.
//!
//! Checks, each failing with a message naming the file: one run in the results, of this config
//! (same name and embedding dimension); the model's embedding model, template and dimension are
//! the config's; every held-out group is in the survey and is not a meta-training group; a prior
//! model's prior groups are meta-training groups of the run and none is held out, its metric is
//! the survey's, and the questions it knows have the survey's option counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gpo_train::config::RunConfig;
use gpo_train::fsutil::write_atomic;
use gpo_train::method::Method;
use gpo_train::pipeline::load_task;
use gpo_train::report::Results;
use serde::Serialize;

/// Decimals of the held-out groups' answers in the bank.
const ANSWER_DECIMALS: i32 = 4;

#[derive(Serialize)]
struct BankQuestion<'a> {
    key: &'a str,
    text: &'a str,
    options: &'a [String],
    ordinal: &'a [f64],
    /// Index of the question's first option row in `embeddings.f16`.
    row: usize,
}

#[derive(Serialize)]
struct BankGroup<'a> {
    name: &'a str,
    attribute: &'a str,
    /// Question key → answer distribution.
    answers: BTreeMap<&'a str, Vec<f64>>,
}

#[derive(Serialize)]
struct Bank<'a> {
    dataset: &'a str,
    metric: gpo_train::data::Metric,
    embedding_model: &'a str,
    template: Option<&'static str>,
    dim: usize,
    rows: usize,
    run: &'a str,
    train_fraction: f64,
    seed: u64,
    method: &'a str,
    prior: Option<gpo_core::prior::PriorKind>,
    questions: Vec<BankQuestion<'a>>,
    groups: Vec<BankGroup<'a>>,
}

fn rounded(p: &[f64]) -> Vec<f64> {
    let scale = 10f64.powi(ANSWER_DECIMALS);
    p.iter().map(|v| (v * scale).round() / scale).collect()
}

/// `names` that are in `set`.
fn among<'a>(names: impl IntoIterator<Item = &'a String>, set: &BTreeSet<&str>) -> Vec<&'a str> {
    names.into_iter().map(String::as_str).filter(|n| set.contains(n)).collect()
}

pub fn export_bank(
    config_path: &Path,
    results_path: &Path,
    model_path: Option<&Path>,
    out: &Path,
) -> anyhow::Result<()> {
    let model_path: PathBuf = match model_path {
        Some(p) => p.to_path_buf(),
        None => results_path.with_file_name("model.gpo"),
    };
    let (config_name, results_name, model_name) =
        (config_path.display().to_string(), results_path.display().to_string(), model_path.display().to_string());

    let config = RunConfig::load(config_path)?;
    let text = std::fs::read(results_path).map_err(|e| anyhow::anyhow!("{results_name}: {e}"))?;
    let results: Results = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{results_name}: not the results.json of a `gpo run` of this version: {e}"))?;
    let [run] = results.runs.as_slice() else {
        return Err(anyhow::anyhow!(
            "{results_name}: {} runs; the demo model's config must have one split and one seed",
            results.runs.len()
        ));
    };
    if results.name != config.name {
        return Err(anyhow::anyhow!(
            "{results_name} is of run `{}`, but {config_name} is run `{}`: wrong results.json?",
            results.name,
            config.name
        ));
    }
    // (`to_string`: the message, whatever error type `load` returns.)
    let model = super::model::load(&model_path)?;
    let (task, info) = load_task(&config.data).map_err(|e| anyhow::anyhow!("{config_name}: {e}"))?;

    // The model, the results and the config must describe the same embeddings.
    if results.embedding_dim != task.dim {
        return Err(anyhow::anyhow!(
            "{results_name}: trained on {}-d embeddings, but {config_name}'s are {}-d",
            results.embedding_dim,
            task.dim
        ));
    }
    if model.config().dim_x != task.dim {
        return Err(anyhow::anyhow!(
            "{model_name} expects {}-d embeddings, but {config_name}'s are {}-d",
            model.config().dim_x,
            task.dim
        ));
    }
    let meta = model.metadata();
    super::model::check_same_embeddings(model.metadata(), &model_name, &config_name, &info.model, info.template)?;

    // Held-out groups: in the survey, never meta-training groups, never prior groups.
    let survey = &task.survey;
    let by_name: BTreeMap<&str, usize> = survey.groups.iter().enumerate().map(|(i, g)| (g.name.as_str(), i)).collect();
    if by_name.len() != survey.groups.len() {
        return Err(anyhow::anyhow!("{config_name}: two groups share a name; the bank keys groups by name"));
    }
    let held_out = &run.test_groups;
    let unknown: Vec<&str> = held_out.iter().map(String::as_str).filter(|n| !by_name.contains_key(n)).collect();
    if !unknown.is_empty() {
        return Err(anyhow::anyhow!(
            "{results_name}: held-out groups {unknown:?} are not groups of {config_name}'s survey"
        ));
    }
    let held: BTreeSet<&str> = held_out.iter().map(String::as_str).collect();
    let meta_train: BTreeSet<&str> =
        run.train_groups.iter().chain(&run.validation_groups).map(String::as_str).collect();
    let both = among(held_out, &meta_train);
    if !both.is_empty() {
        return Err(anyhow::anyhow!("{results_name}: groups {both:?} are both held out and meta-training groups"));
    }
    if let Some(prior) = model.prior() {
        let names: Vec<String> = prior.groups().iter().map(|g| g.name.clone()).collect();
        let shown = among(&names, &held);
        if !shown.is_empty() {
            return Err(anyhow::anyhow!(
                "{model_name}'s prior groups {shown:?} are held-out groups of {results_name}: the page would show \
                 groups the model reads as prior (wrong results.json?)"
            ));
        }
        let outside: Vec<&str> = names.iter().map(String::as_str).filter(|n| !meta_train.contains(n)).collect();
        if !outside.is_empty() {
            return Err(anyhow::anyhow!(
                "{model_name}'s prior groups {outside:?} are not meta-training groups of {results_name}: wrong run?"
            ));
        }
        if prior.metric() != survey.metric {
            return Err(anyhow::anyhow!(
                "{model_name}'s prior compares groups with {:?}, but {config_name}'s survey is scored with {:?}",
                prior.metric(),
                survey.metric
            ));
        }
        let mut known = 0;
        for q in &survey.questions {
            if let Some(i) = prior.question_index(&q.key) {
                let expected = prior.questions()[i].n_options();
                if expected != q.options.len() {
                    return Err(anyhow::anyhow!(
                        "question `{}` has {} options in {config_name}'s survey but {expected} in {model_name}'s prior",
                        q.key,
                        q.options.len()
                    ));
                }
                known += 1;
            }
        }
        if known == 0 {
            return Err(anyhow::anyhow!(
                "{model_name}'s prior knows none of the questions of {config_name}'s survey: wrong model?"
            ));
        }
    }

    // Questions and their embeddings, in survey order.
    let mut questions = Vec::with_capacity(survey.questions.len());
    let mut f16 = Vec::new();
    let mut row = 0;
    for (q, block) in survey.questions.iter().zip(&task.embeddings) {
        questions.push(BankQuestion { key: &q.key, text: &q.text, options: &q.options, ordinal: &q.ordinal, row });
        row += q.options.len();
        f16.extend(block.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()));
    }
    let groups = held_out
        .iter()
        .map(|name| {
            let g = &survey.groups[by_name[name.as_str()]];
            let answers = g.answers.iter().map(|(&q, p)| (survey.questions[q].key.as_str(), rounded(p))).collect();
            BankGroup { name: &g.name, attribute: &g.attribute, answers }
        })
        .collect();
    // Models exported before the method was recorded are the faithful GPO's.
    let method = if meta.method.is_empty() { Method::Gpo.name() } else { meta.method.clone() };
    let bank = Bank {
        dataset: &survey.name,
        metric: survey.metric,
        embedding_model: &info.model,
        template: info.template.map(|t| t.id()),
        dim: task.dim,
        rows: row,
        run: &results.name,
        train_fraction: run.train_fraction,
        seed: run.seed,
        method: &method,
        prior: model.prior().as_ref().map(|p| p.kind()),
        questions,
        groups,
    };
    let json = serde_json::to_vec(&bank).map_err(|e| anyhow::anyhow!("bank.json: {e}"))?;
    for (name, bytes) in [("bank.json", &json), ("embeddings.f16", &f16)] {
        let path = out.join(name);
        write_atomic(&path, bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        println!("wrote {} ({} bytes)", path.display(), bytes.len());
    }
    let prior = match model.prior() {
        Some(p) => {
            format!("prior {} over {} groups", serde_json::to_string(&p.kind()).unwrap_or_default(), p.groups().len())
        }
        None => "no prior".into(),
    };
    println!(
        "{} questions, {row} options ({}), model {} ({prior}), {} held-out groups (from {results_name})",
        survey.questions.len(),
        info.model,
        bank.method,
        held_out.len()
    );
    Ok(())
}
