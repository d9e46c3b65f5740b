//! `gpo-bank`: writes the demo page's question bank from a tidy survey.
//!
//! ```text
//! cargo run -p gpo-wasm --features bank --bin gpo-bank -- \
//!     --survey fixtures/opinionqa --out gpo-wasm/www/data \
//!     [--embeddings synthetic:384] [--train-fraction 0.6] [--seed 0] [--init-model model.gpo]
//! ```
//!
//! Output (in `--out`):
//! * `bank.json`: the questions (text, options, ordinals, row offset into the embeddings, and the
//!   training groups' mean distribution, the Train-group-mean baseline), the names of the training
//!   groups, and the held-out groups with their true answer distributions;
//! * `embeddings.f16`: every option's embedding, little-endian f16, row-major, questions in order.
//!
//! The group split repeats `gpo-train`'s (`train::split::Split`): groups `0..n` shuffled by
//! `SplitMix64(seed)`, the first `floor(n × fraction)` train, the rest are held out.
//!
//! `--embeddings synthetic:DIM` gives each (question, option) a deterministic pseudo-random unit
//! vector: enough to test the page and the bindings end to end, not to predict anything real.
//! `--init-model PATH` also writes a seeded, untrained GPO model over those embeddings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use burn::backend::Flex;
use burn::backend::flex::FlexDevice;
use gpo_core::rng::SplitMix64;
use gpo_core::{GpoConfig, ModelFile, ModelMetadata, WeightDType};
use gpo_train::data::{Survey, tidy};
use serde_json::{Value, json};

struct Args {
    survey: PathBuf,
    out: PathBuf,
    synthetic_dim: usize,
    train_fraction: f64,
    seed: u64,
    init_model: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        survey: PathBuf::from("fixtures/opinionqa"),
        out: PathBuf::from("gpo-wasm/www/data"),
        synthetic_dim: 384,
        train_fraction: 0.6,
        seed: 0,
        init_model: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--survey" => args.survey = value()?.into(),
            "--out" => args.out = value()?.into(),
            "--embeddings" => {
                let v = value()?;
                let dim = v.strip_prefix("synthetic:").ok_or_else(|| {
                    format!("--embeddings {v}: only synthetic:DIM is supported (the MiniLM cache is not wired in yet)")
                })?;
                args.synthetic_dim = dim.parse().map_err(|_| format!("--embeddings {v}: bad dimension"))?;
            }
            "--train-fraction" => args.train_fraction = value()?.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--init-model" => args.init_model = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}; see the doc comment of gpo_bank.rs")),
        }
    }
    if args.synthetic_dim == 0 {
        return Err("the embedding dimension must be positive".into());
    }
    Ok(args)
}

/// A deterministic pseudo-random unit vector for `text`.
fn synthetic_embedding(text: &str, dim: usize) -> Vec<f32> {
    // FNV-1a of the text seeds the generator.
    let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let mut rng = SplitMix64::new(seed);
    let v: Vec<f64> = (0..dim).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|x| (x / norm) as f32).collect()
}

fn round4(values: &[f64]) -> Vec<f64> {
    values.iter().map(|p| (p * 1e4).round() / 1e4).collect()
}

fn bank(survey: &Survey, args: &Args) -> Result<(Value, Vec<u8>), String> {
    let n_groups = survey.groups.len();
    let n_train = (n_groups as f64 * args.train_fraction).floor() as usize;
    if n_train == 0 || n_train >= n_groups {
        return Err(format!("--train-fraction {} leaves no train or no held-out group", args.train_fraction));
    }
    let mut order: Vec<usize> = (0..n_groups).collect();
    SplitMix64::new(args.seed).shuffle(&mut order);
    let (mut train, mut held_out) = (order[..n_train].to_vec(), order[n_train..].to_vec());
    train.sort_unstable();
    held_out.sort_unstable();

    let dim = args.synthetic_dim;
    let mut embeddings = Vec::new();
    let mut questions = Vec::new();
    let mut row = 0usize;
    for (index, question) in survey.questions.iter().enumerate() {
        for option in &question.options {
            let text = format!("{}\n{}", question.text, option);
            for v in synthetic_embedding(&text, dim) {
                embeddings.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
            }
        }
        let answered: Vec<&Vec<f64>> = train.iter().filter_map(|&g| survey.groups[g].answers.get(&index)).collect();
        let k = question.options.len();
        let train_mean: Option<Vec<f64>> = (!answered.is_empty())
            .then(|| (0..k).map(|o| answered.iter().map(|a| a[o]).sum::<f64>() / answered.len() as f64).collect());
        questions.push(json!({
            "key": question.key,
            "text": question.text,
            "options": question.options,
            "ordinal": question.ordinal,
            "row": row,
            "train_mean": train_mean.map(|m| round4(&m)),
        }));
        row += k;
    }
    let groups: Vec<Value> = held_out
        .iter()
        .map(|&g| {
            let group = &survey.groups[g];
            let answers: BTreeMap<&str, Vec<f64>> =
                group.answers.iter().map(|(&q, p)| (survey.questions[q].key.as_str(), round4(p))).collect();
            json!({ "name": group.name, "attribute": group.attribute, "answers": answers })
        })
        .collect();
    let bank = json!({
        "dataset": survey.name,
        "metric": match survey.metric {
            gpo_train::data::Metric::Wasserstein => "wasserstein",
            gpo_train::data::Metric::JensenShannon => "jensen_shannon",
        },
        "embedding_model": format!("synthetic:{dim}"),
        "dim": dim,
        "rows": row,
        "train_fraction": args.train_fraction,
        "seed": args.seed,
        "train_groups": train.iter().map(|&g| &survey.groups[g].name).collect::<Vec<_>>(),
        "questions": questions,
        "groups": groups,
    });
    Ok((bank, embeddings))
}

fn main_inner() -> Result<(), String> {
    let args = parse_args()?;
    let survey = tidy::load(&args.survey).map_err(|e| e.to_string())?;
    let (bank, embeddings) = bank(&survey, &args)?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = args.out.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {} ({} bytes)", path.display(), bytes.len());
        Ok::<(), String>(())
    };
    write("bank.json", bank.to_string().as_bytes())?;
    write("embeddings.f16", &embeddings)?;
    if let Some(path) = &args.init_model {
        let config = GpoConfig::new(args.synthetic_dim);
        let model = config.init_seeded::<Flex>(&FlexDevice, args.seed).map_err(|e| e.to_string())?;
        let mut metadata = ModelMetadata::new(&format!("synthetic:{}", args.synthetic_dim), args.synthetic_dim, "");
        metadata.dataset = survey.name.clone();
        metadata.seed = args.seed;
        let bytes = ModelFile::from_model(&model, &config, metadata, WeightDType::F16).to_bytes();
        std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {} ({} bytes, untrained)", path.display(), bytes.len());
    }
    Ok(())
}

fn main() -> ExitCode {
    match main_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gpo-bank: {message}");
            ExitCode::FAILURE
        }
    }
}
