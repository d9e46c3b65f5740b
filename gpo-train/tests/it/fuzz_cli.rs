//! Mutation fuzzing of `gpo inspect` and `gpo predict` through the real binary: valid model files
//! (a faithful and a prior model) and requests are mutated (bit flips, byte overwrites with
//! boundary values, truncation, insertion, removal), half of the time with the checksum repaired
//! so that the decoder behind it is reached. Every run must exit 0 or 1 with one `error:` line:
//! a panic (exit 101), an abort or a signal is a failure.
//!
//! `cargo test -p gpo-train --test it fuzz_cli::` runs a short pass (CI); the long run is
//! `GPO_FUZZ_SECONDS=1200 cargo test --release -p gpo-train --test it fuzz_cli:: -- --nocapture`
//! (`GPO_BIN=<path>` fuzzes another build of `gpo`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use burn_ndarray::NdArray;
use gpo_core::metrics::Metric;
use gpo_core::prior::{PopulationPrior, PriorGroup, PriorKind, PriorQuestion};
use gpo_core::rng::SplitMix64;
use gpo_core::{GpoConfig, ModelFile, ModelMetadata, WeightDType};

const DIM: usize = 4;
const HEADER: usize = 24;

fn models() -> Vec<Vec<u8>> {
    let device = Default::default();
    let faithful = GpoConfig::new(DIM).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1);
    let prior_config = faithful.clone().with_prior(true);
    let q = |key: &str, options: usize, v: f32| {
        PriorQuestion::new(key, (1..=options).map(|i| i as f64).collect(), &vec![v; options * DIM], DIM)
    };
    let prior = PopulationPrior::new(
        PriorKind::KnnGroups { temperature: 0.05 },
        Metric::Wasserstein,
        2,
        DIM,
        vec![q("A", 2, 0.1), q("B", 3, 0.2)],
        vec![
            PriorGroup { name: "g1".into(), answers: vec![Some(vec![0.3, 0.7]), Some(vec![0.2, 0.3, 0.5])] },
            PriorGroup { name: "g2".into(), answers: vec![Some(vec![0.6, 0.4]), None] },
        ],
    )
    .unwrap();
    let file = |config: &GpoConfig, prior: Option<PopulationPrior>, dtype| {
        let model = config.init_seeded::<NdArray<f32>>(&device, 1).unwrap();
        ModelFile::from_model(&model, config, ModelMetadata::new("fuzz", DIM, None), dtype, prior).to_bytes().unwrap()
    };
    vec![
        file(&faithful, None, WeightDType::F32),
        file(&faithful, None, WeightDType::F16),
        file(&prior_config, Some(prior.clone()), WeightDType::F16),
        file(&prior_config, Some(prior), WeightDType::F32),
    ]
}

fn request() -> Vec<u8> {
    serde_json::json!({
        "context": [{"key": "A", "embeddings": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], "distribution": [0.3, 0.7]}],
        "targets": [
            {"key": "B", "embeddings": [[0.0, 0.1, 0.0, 0.1], [1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]]},
            {"embeddings": [[0.0, 0.1, 0.0, 0.1], [1.0, 0.0, 1.0, 0.0]]}
        ]
    })
    .to_string()
    .into_bytes()
}

const BOUNDARY: [u8; 8] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x40, 0x20];

fn mutate(rng: &mut SplitMix64, input: &[u8], protect: usize) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..rng.range_inclusive(1, 4) {
        if b.len() <= protect {
            b.push(0);
        }
        let i = rng.range_inclusive(protect, b.len() - 1);
        match rng.range_inclusive(0, 5) {
            0 => b[i] ^= 1 << rng.range_inclusive(0, 7),
            1 => b[i] = BOUNDARY[rng.range_inclusive(0, BOUNDARY.len() - 1)],
            2 => b[i] = (rng.next_u64() & 0xFF) as u8,
            3 => b.truncate(i),
            4 => b.insert(i, BOUNDARY[rng.range_inclusive(0, BOUNDARY.len() - 1)]),
            _ => {
                b.remove(i);
            }
        }
    }
    b
}

/// Rewrites the header's length and CRC so that the payload reaches the decoder.
fn repair(b: &mut [u8]) {
    if b.len() < HEADER {
        return;
    }
    let payload_len = (b.len() - HEADER) as u64;
    b[12..20].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32fast::hash(&b[HEADER..]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// The binary under test: `GPO_BIN` when set (a copy that a concurrent build cannot replace
/// during a long run), else the one cargo built.
fn gpo_bin() -> String {
    std::env::var("GPO_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gpo").to_string())
}

fn check(args: &[&str], what: &str) -> Result<(), String> {
    let out = Command::new(gpo_bin()).args(args).output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) if stderr.lines().filter(|l| l.starts_with("error: ")).count() == 1 => Ok(()),
        code => Err(format!("{what}: exit {code:?} (a crash), stderr: {stderr}")),
    }
}

#[test]
fn mutated_models_and_requests_never_crash_the_cli() {
    let seconds: u64 = std::env::var("GPO_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let (budget, min_runs) = if seconds > 0 { (Duration::from_secs(seconds), 0) } else { (Duration::ZERO, 60) };
    let dir = tempfile::tempdir().unwrap();
    let (model_path, request_path) = (dir.path().join("m.gpo"), dir.path().join("r.json"));
    let (model_arg, request_arg) = (model_path.to_str().unwrap(), request_path.to_str().unwrap());
    let (models, request) = (models(), request());
    let mut rng = SplitMix64::new(0x00F0_2223);
    let started = Instant::now();
    let mut runs = 0u64;
    let mut failures = Vec::new();
    while runs < min_runs || started.elapsed() < budget {
        let base = &models[rng.range_inclusive(0, models.len() - 1)];
        let (mut model, req) = match rng.range_inclusive(0, 3) {
            // The request mutated, the model valid.
            0 => (base.clone(), mutate(&mut rng, &request, 0)),
            _ => (mutate(&mut rng, base, 0), request.clone()),
        };
        if rng.range_inclusive(0, 1) == 1 {
            repair(&mut model);
        }
        std::fs::write(&model_path, &model).unwrap();
        std::fs::write(&request_path, &req).unwrap();
        for (args, what) in [
            (vec!["--quiet", "inspect", model_arg], "inspect"),
            (vec!["--quiet", "predict", "--model", model_arg, "--input", request_arg], "predict"),
        ] {
            if let Err(e) = check(&args, what) {
                let keep = dir.path().join(format!("crash-{runs}.gpo"));
                std::fs::copy(&model_path, &keep).ok();
                failures.push(e);
            }
            runs += 1;
        }
        assert!(failures.len() < 5, "crashes: {failures:#?}");
    }
    println!("fuzz: {runs} executions in {:.0} s, {} crashes", started.elapsed().as_secs_f64(), failures.len());
    assert!(failures.is_empty(), "crashes: {failures:#?}");
}

#[test]
fn dev_zero_and_oversized_inputs_are_refused() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_gpo")).args(["inspect", "/dev/zero"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/dev/zero") && stderr.contains("not a .gpo model file"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_gpo"))
        .args(["predict", "--model", "/dev/zero", "--input", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
