//! Subcommands of `gpo`. Each returns a one-line error message on failure.

mod bank;
mod bench;
mod data;
mod embed;
mod model;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// GPO: few-shot prediction of how a group answers survey questions.
#[derive(Debug, Parser)]
#[command(name = "gpo", version, about)]
pub struct Cli {
    /// Only warnings and errors in the log.
    #[arg(long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// `gpo embed` subcommands.
#[derive(Debug, Subcommand)]
enum EmbedAction {
    /// Build an embedding cache from vectors made elsewhere (the paper's LLM embeddings, say): a 2-D
    /// `.npy` or safetensors matrix, one row per text, and the texts as JSONL (one JSON string a
    /// line, in row order; the texts the template makes for the survey's (question, option) pairs).
    Import {
        /// The vectors: `.npy` (f32 or f16) or `.safetensors`.
        #[arg(long)]
        vectors: PathBuf,
        /// The tensor to read from a safetensors file with several.
        #[arg(long)]
        tensor: Option<String>,
        /// The texts, one JSON string a line.
        #[arg(long)]
        texts: PathBuf,
        /// Identifier of the model that made the vectors (recorded in the cache and in models).
        #[arg(long)]
        model_id: String,
        /// The template the texts were made with.
        #[arg(long, value_enum, default_value_t = TemplateArg::Gpo)]
        template: TemplateArg,
        /// The cache to write.
        #[arg(long)]
        out: PathBuf,
        /// Store f32 instead of f16.
        #[arg(long)]
        f32: bool,
    },
}

/// Text template of `gpo embed` (gpo-core's `Template`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TemplateArg {
    /// The original GPO prompt (Alpaca template, lettered options).
    Gpo,
    /// The question, a newline, the option.
    Plain,
}

impl From<TemplateArg> for gpo_core::template::Template {
    fn from(t: TemplateArg) -> Self {
        match t {
            TemplateArg::Gpo => Self::Gpo,
            TemplateArg::Plain => Self::Plain,
        }
    }
}

/// What `gpo bench` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    /// One training update (every meta-training group), against PyTorch where available.
    Train,
    /// One held-out group's prediction.
    Predict,
    /// Sentence embedding at batch 1 and 32, beside sentence-transformers.
    Embed,
    /// A GGUF causal LM (`--model`): prompt prefill and option scoring through the KV cache.
    Lm,
}

/// Weight storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<DType> for gpo_core::WeightDType {
    fn from(d: DType) -> Self {
        match d {
            DType::F32 => Self::F32,
            DType::F16 => Self::F16,
            DType::Bf16 => Self::BF16,
        }
    }
}

/// Weight storage of an encoder file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncoderDTypeArg {
    /// 32-bit float (the checkpoint's values).
    F32,
    /// 16-bit float.
    F16,
    /// 8-bit integers with one f32 scale per 128 values of a row of every matrix.
    Int8,
}

impl From<EncoderDTypeArg> for gpo_core::text::EncoderDType {
    fn from(d: EncoderDTypeArg) -> Self {
        match d {
            EncoderDTypeArg::F32 => Self::F32,
            EncoderDTypeArg::F16 => Self::F16,
            EncoderDTypeArg::Int8 => Self::Int8,
        }
    }
}

/// Compute backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// CPU (burn-ndarray).
    Ndarray,
    /// GPU through WebGPU/Vulkan/Metal (burn-wgpu; build with `--features wgpu`).
    Wgpu,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Load a survey, validate it and print what it holds and what GPO's group selection keeps.
    Summary {
        /// Survey file or folder.
        source: PathBuf,
        /// File format (guessed from the path when omitted).
        #[arg(long, value_enum)]
        loader: Option<gpo_train::pipeline::Loader>,
        /// OpinionQA release folder with question texts (for the notebook format).
        #[arg(long)]
        questions: Option<PathBuf>,
        /// Groups to select, comma-separated (default: GPO's groups).
        #[arg(long, value_delimiter = ',')]
        groups: Option<Vec<String>>,
    },
    /// Load a survey, select its groups (as `summary` does) and write the selection in gpo's tidy
    /// format (`questions.csv`, `answers.csv`, `survey.json`), e.g. to bundle it or edit it.
    Tidy {
        /// Survey file or folder.
        source: PathBuf,
        /// Folder to write (created if missing; its tidy files are replaced).
        #[arg(long)]
        out: PathBuf,
        /// File format (guessed from the path when omitted).
        #[arg(long, value_enum)]
        loader: Option<gpo_train::pipeline::Loader>,
        /// OpinionQA release folder with question texts (for the notebook format).
        #[arg(long)]
        questions: Option<PathBuf>,
        /// Groups to select, comma-separated (default: GPO's groups).
        #[arg(long, value_delimiter = ',')]
        groups: Option<Vec<String>>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect survey data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run a whole experiment: train every split and seed, evaluate against baselines, report, export.
    Run {
        /// Run configuration (TOML), e.g. configs/opinionqa.toml.
        config: PathBuf,
        /// Continue interrupted training runs from their checkpoints.
        #[arg(long)]
        resume: bool,
        /// Folder that receives `<name>/`.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Compute backend.
        #[arg(long, value_enum, default_value_t = BackendChoice::Ndarray)]
        backend: BackendChoice,
        /// (split, seed) runs trained at the same time (default: one per CPU core). Each run is
        /// single-threaded, so the results do not depend on this.
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Embed a survey's (question, option) texts into a cache, or a JSONL list of texts into `.npy`;
    /// `gpo embed import` builds a cache from vectors made elsewhere (e.g. LLM embeddings).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Embed {
        #[command(subcommand)]
        action: Option<EmbedAction>,
        /// Survey file or folder whose texts fill the cache `--out`.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Survey format (guessed when omitted).
        #[arg(long, value_enum)]
        loader: Option<gpo_train::pipeline::Loader>,
        /// JSONL file of strings to embed into the `.npy` file `--out` (one f32 row per line).
        #[arg(long)]
        texts: Option<PathBuf>,
        /// Embedding model: a sentence-transformers BERT folder or a wheel/zip containing one, or a
        /// causal LM as a GGUF file (or a wheel holding one; the mean final hidden state, as the paper).
        #[arg(long, required = true)]
        model: Option<PathBuf>,
        /// Output: the cache (with --data) or the `.npy` file (with --texts).
        #[arg(long, required = true)]
        out: Option<PathBuf>,
        /// Text template.
        #[arg(long, value_enum, default_value_t = TemplateArg::Gpo)]
        template: TemplateArg,
        /// Store a new cache in f32 instead of f16.
        #[arg(long)]
        f32: bool,
        /// Texts per forward pass (with --texts; a survey uses 32 for BERT, 16 for a GGUF model).
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Time training updates, one group's prediction, or text embedding, against PyTorch where available.
    Bench {
        /// What to time.
        #[arg(value_enum)]
        what: BenchTarget,
        /// Run configuration giving the data and model.
        #[arg(long, default_value = "configs/opinionqa.toml")]
        config: PathBuf,
        /// Timed repetitions (after 2 warm-ups); for `lm`, the survey's questions timed.
        #[arg(long, default_value_t = 10)]
        iterations: usize,
        /// Embedding model (for `embed`: a sentence-transformers folder or wheel) or GGUF model (for `lm`).
        #[arg(long)]
        model: Option<PathBuf>,
        /// For `embed`: encoder files (`gpo export-encoder`) to time beside `--model`, with the
        /// cosine of their vectors to its over all of the survey's texts.
        #[arg(long)]
        encoder: Vec<PathBuf>,
        /// For `train`: a checkout of the official code (github.com/jamqd/Group-Preference-Optimization)
        /// to time its training step against gpo's on the same updates, at 1 and 2 threads (torch's
        /// and gpo's), on the 40% and 80% splits.
        #[arg(long)]
        official: Option<PathBuf>,
        /// For `--official`: the Python interpreter with torch.
        #[arg(long, default_value = "python3")]
        python: PathBuf,
    },
    /// Write a sentence encoder (tokenizer, configuration, weights, model id) as one checked file,
    /// in f32, f16 or int8 (block-scaled), for apps and `gpo embed`/`predict --encoder`.
    ExportEncoder {
        /// A sentence-transformers BERT model (folder, wheel or zip) or an encoder file.
        #[arg(long)]
        model: PathBuf,
        /// Weight storage.
        #[arg(long, value_enum, default_value_t = EncoderDTypeArg::F32)]
        dtype: EncoderDTypeArg,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Show a model file's configuration, metadata and size.
    Inspect {
        /// A `.gpo` file.
        model: PathBuf,
        /// Print the configuration and metadata as one JSON object (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Re-store a model file's weights as f32, f16 or bf16.
    Export {
        /// Input `.gpo` file.
        model: PathBuf,
        /// Weight storage.
        #[arg(long, value_enum, default_value_t = DType::F16)]
        dtype: DType,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Predict a group's answer distributions from its context answers (JSON in, JSON out).
    ///
    /// Request: `{"context": [Q, …], "targets": [Q, …]}`; each question Q is given by
    /// `"embeddings"` (one row per option), by `"text"` with `"options"`, or by a survey `"key"`
    /// (text needs --encoder or --config, a key --config); context questions carry the group's
    /// `"distribution"`.
    /// Prior models (`gpo inspect` shows a prior, e.g. method gpo_knn) compute every question's
    /// population prior from the data the model file carries: by `"key"` for the questions the
    /// prior knows, from the nearest known questions for others (its `"source"` says which).
    /// Output: `{"predictions": [{"key": …, "distribution": […], "prior": {…}}, …]}`.
    Predict {
        /// A `.gpo` file.
        #[arg(long)]
        model: PathBuf,
        /// Request JSON (see docs/formats.md); `-` reads standard input.
        #[arg(long, default_value = "-")]
        input: PathBuf,
        /// Run config whose survey, cache and embedding model resolve questions given by key or text;
        /// its embedding model and template must be the model's.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Sentence encoder (an encoder file from `gpo export-encoder`, or a sentence-transformers
        /// model) that embeds questions given by text; its model id must be the model's.
        #[arg(long)]
        encoder: Option<PathBuf>,
    },
    /// Write gpo-wasm's demo question bank (`bank.json`, `embeddings.f16`) for a trained model.
    ///
    /// The questions and their embeddings come from the config's survey and embedding cache, the
    /// held-out groups (with their answers) from the run's `test_groups`; a prior model's priors
    /// and baselines come from the model file, so the bank holds no prior groups.
    ExportBank {
        /// The run config that trained the model (its survey and embedding cache).
        #[arg(long)]
        config: PathBuf,
        /// `results.json` of that run (one split, one seed).
        #[arg(long)]
        results: PathBuf,
        /// The model (default: `model.gpo` beside the results).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Folder that receives `bank.json` and `embeddings.f16`.
        #[arg(long, default_value = "gpo-wasm/www/data")]
        out: PathBuf,
    },
}

/// Runs the parsed command.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Data(DataCommand::Summary { source, loader, questions, groups }) => {
            data::summary(&source, loader, questions.as_deref(), groups.as_deref())
        }
        Command::Data(DataCommand::Tidy { source, out, loader, questions, groups }) => {
            data::tidy(&source, &out, loader, questions.as_deref(), groups.as_deref())
        }
        Command::Run { config, resume, out, backend, jobs } => run::run(&config, resume, &out, backend, jobs),
        Command::Embed {
            action: Some(EmbedAction::Import { vectors, tensor, texts, model_id, template, out, f32 }),
            ..
        } => embed::import(&vectors, tensor.as_deref(), &texts, &model_id, template.into(), &out, f32),
        Command::Embed { action: None, data, loader, texts, model, out, template, f32, batch_size } => {
            let (Some(model), Some(out)) = (model, out) else {
                anyhow::bail!("gpo embed needs --model and --out");
            };
            embed::embed(embed::EmbedArgs {
                data: data.as_deref(),
                loader,
                texts: texts.as_deref(),
                model: &model,
                out: &out,
                template: template.into(),
                f32,
                batch_size,
            })
        }
        Command::Bench { what, config, iterations, model, encoder, official, python } => {
            let official = official.as_deref().map(|checkout| (checkout, python.as_path()));
            bench::bench(what, &config, iterations, model.as_deref(), &encoder, official)
        }
        Command::ExportEncoder { model, dtype, out } => embed::export_encoder(&model, dtype.into(), &out),
        Command::Inspect { model, json } => model::inspect(&model, json),
        Command::Export { model, dtype, out } => model::export(&model, dtype.into(), &out),
        Command::Predict { model, input, config, encoder } => {
            model::predict(&model, &input, config.as_deref(), encoder.as_deref())
        }
        Command::ExportBank { config, results, model, out } => {
            bank::export_bank(&config, &results, model.as_deref(), &out)
        }
    }
}
