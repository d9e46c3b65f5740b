//! Mutation fuzzing of `gpo inspect` and `gpo predict` through the real binary, under a 4 GiB
//! address-space limit (so that an allocation the limit refuses aborts the process and fails the
//! test). Valid model files (a faithful and a prior model) and requests are mutated two ways:
//! - bytes: bit flips, byte overwrites with boundary values, truncation, insertion, removal, half
//!   of the time with the checksum repaired so that the decoder behind it is reached;
//! - the prior section, structure-aware ([`ModelFile::layout`] says where each field lies): its
//!   counts (groups, questions, options, byte lengths) set to boundary values, the answered
//!   bitmap filled or scrambled, ordinals, vectors and answers set to NaN, infinities and
//!   extremes, the neighbour count, dimension, kind and temperature changed, names made
//!   invalid; the container is always resealed.
//!
//! Every run must exit 0 or 1 with one `error:` line: a panic (exit 101), an abort or a signal is
//! a failure.
//!
//! `cargo test -p gpo-train --test it fuzz_cli::` runs a short pass (CI); the long run, on the
//! prior models only, is
//! `GPO_FUZZ_SECONDS=1200 cargo test --release -p gpo-train --test it fuzz_cli::mutated -- --nocapture`
//! (`GPO_BIN=<path>` fuzzes another build of `gpo`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use burn_ndarray::NdArray;
use gpo_core::container::{self, FieldSpan};
use gpo_core::metrics::Metric;
use gpo_core::model_file::{FORMAT_VERSION, MAGIC};
use gpo_core::prior::{PopulationPrior, PriorGroup, PriorKind, PriorQuestion};
use gpo_core::rng::SplitMix64;
use gpo_core::{GpoConfig, ModelFile, ModelMetadata, WeightDType};

const DIM: usize = 4;
const HEADER: usize = container::HEADER_LEN;

/// Address-space limit of every fuzzed run.
const ADDRESS_SPACE: u64 = 4 << 30;

/// A prior model's configuration and prior: 6 groups × 5 questions of 2 to 4 options, some
/// unanswered, one question no group answered.
fn prior_model() -> (GpoConfig, PopulationPrior) {
    let config = faithful().with_prior(true);
    let q = |key: &str, options: usize, v: f32| {
        let vectors: Vec<f32> = (0..options * DIM).map(|i| v + i as f32 * 0.01).collect();
        PriorQuestion::new(key, (1..=options).map(|i| i as f64).collect(), &vectors, DIM)
    };
    let questions = vec![q("A", 2, 0.1), q("B", 3, 0.2), q("C", 4, -0.3), q("D", 2, 0.4), q("E", 3, 0.0)];
    let groups = (0..6)
        .map(|g| PriorGroup {
            name: format!("group {g}"),
            answers: questions
                .iter()
                .enumerate()
                .map(|(q, question)| {
                    let options = question.ordinal.len();
                    (q != 4 && (g + q) % 4 != 3).then(|| {
                        let raw: Vec<f64> = (0..options).map(|o| 1.0 + ((g * 7 + q * 3 + o) % 5) as f64).collect();
                        let sum: f64 = raw.iter().sum();
                        raw.iter().map(|v| v / sum).collect()
                    })
                })
                .collect(),
        })
        .collect();
    let prior = PopulationPrior::new(
        PriorKind::KnnGroups { temperature: 0.05 },
        Metric::Wasserstein,
        2,
        DIM,
        questions,
        groups,
    )
    .unwrap();
    (config, prior)
}

fn faithful() -> GpoConfig {
    GpoConfig::new(DIM).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1)
}

fn file(config: &GpoConfig, prior: Option<PopulationPrior>, dtype: WeightDType) -> Vec<u8> {
    let model = config.init_seeded::<NdArray<f32>>(&Default::default(), 1).unwrap();
    ModelFile::from_model(&model, config, ModelMetadata::new("fuzz", DIM, None), dtype, prior)
        .and_then(|f| f.to_bytes())
        .unwrap()
}

/// The faithful model in f32 and f16, then the prior model in f16 and f32.
fn models() -> Vec<Vec<u8>> {
    let (prior_config, prior) = prior_model();
    vec![
        file(&faithful(), None, WeightDType::F32),
        file(&faithful(), None, WeightDType::F16),
        file(&prior_config, Some(prior.clone()), WeightDType::F16),
        file(&prior_config, Some(prior), WeightDType::F32),
    ]
}

fn request() -> Vec<u8> {
    serde_json::json!({
        "context": [{"key": "A", "embeddings": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], "distribution": [0.3, 0.7]}],
        "targets": [
            {"key": "B", "embeddings": [[0.0, 0.1, 0.0, 0.1], [1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]]},
            {"key": "E", "embeddings": [[0.0, 0.1, 0.0, 0.1], [1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]]},
            {"embeddings": [[0.0, 0.1, 0.0, 0.1], [1.0, 0.0, 1.0, 0.0]]}
        ]
    })
    .to_string()
    .into_bytes()
}

const BOUNDARY: [u8; 8] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x40, 0x20];

fn pick<T: Copy>(rng: &mut SplitMix64, from: &[T]) -> T {
    from[rng.range_inclusive(0, from.len() - 1)]
}

fn mutate(rng: &mut SplitMix64, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..rng.range_inclusive(1, 4) {
        if b.is_empty() {
            b.push(0);
        }
        let i = rng.range_inclusive(0, b.len() - 1);
        match rng.range_inclusive(0, 5) {
            0 => b[i] ^= 1 << rng.range_inclusive(0, 7),
            1 => b[i] = pick(rng, &BOUNDARY),
            2 => b[i] = (rng.next_u64() & 0xFF) as u8,
            3 => b.truncate(i),
            4 => b.insert(i, pick(rng, &BOUNDARY)),
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

fn varint(value: u64) -> Vec<u8> {
    postcard::to_allocvec(&value).unwrap()
}

/// A value for the prior field `span` of `file`, chosen for what the field holds.
fn prior_value(rng: &mut SplitMix64, file: &[u8], span: &FieldSpan) -> Vec<u8> {
    let old = &file[span.range.clone()];
    let field = span.field.as_str();
    let count = |rng: &mut SplitMix64| {
        let old = postcard::from_bytes::<u64>(old).unwrap_or(0);
        let choices = [
            0,
            1,
            2,
            old.wrapping_sub(1),
            old + 1,
            old * 2,
            64,
            65,
            1_024,
            1_025,
            4_096,
            4_097,
            16_384,
            1 << 20,
            (1 << 20) + 1,
            1 << 22,
            u32::MAX as u64,
            1 << 32,
            1 << 60,
            u64::MAX,
        ];
        varint(pick(rng, &choices))
    };
    let float = |rng: &mut SplitMix64| {
        let choices =
            [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e308, -1e308, 1e9, 1.000_001e9, 0.0, -0.0, 5e-324, 1e-300];
        pick(rng, &choices)
    };
    if field.ends_with(".len") || field == "prior.neighbours" || field == "prior.dim" {
        return count(rng);
    }
    if field.contains(".ordinal[") {
        return float(rng).to_le_bytes().to_vec();
    }
    match field {
        "prior.kind" => match rng.range_inclusive(0, 3) {
            0 => vec![0],
            1 => vec![2],
            _ => {
                let mut b = vec![1];
                b.extend(pick(rng, &[0.0, -1.0, 1e-300, 1e-7, 1e6, 1.1e6, f64::NAN, f64::INFINITY]).to_le_bytes());
                b
            }
        },
        "prior.metric" | "prior.dtype" => varint(pick(rng, &[0, 1, 2, 3, 255])),
        // The rule's weights and pairing: a variant (0, 1 or beyond) and its parameter.
        "prior.neighbour_weights" | "prior.option_match" => match rng.range_inclusive(0, 2) {
            0 => vec![0],
            1 => vec![3],
            _ => {
                let mut b = vec![1];
                b.extend(pick(rng, &[0.0, -1.0, 0.3, 1e-300, 100.5, f64::NAN, f64::INFINITY]).to_le_bytes());
                b
            }
        },
        "prior" => vec![pick(rng, &[0, 1, 2, 0xFF])],
        // The byte strings, same length: every bit set, none set, scrambled, or NaN and
        // infinite values (f32 and f16 patterns) at a random place.
        "prior.answered" | "prior.vectors" | "prior.signatures" | "prior.answers" => {
            let mut b = old.to_vec();
            match rng.range_inclusive(0, 3) {
                0 => b.fill(0xFF),
                1 => b.fill(0),
                2 => b.iter_mut().for_each(|x| *x = (rng.next_u64() & 0xFF) as u8),
                _ if b.len() >= 4 => {
                    let at = rng.range_inclusive(0, b.len() / 2 - 1) * 2;
                    let pattern: [u8; 4] =
                        pick(rng, &[[0x00, 0x00, 0xC0, 0x7F], [0x00, 0x00, 0x80, 0x7F], [0x00, 0x7E, 0x00, 0x7C]]);
                    let end = (at + 4).min(b.len());
                    b[at..end].copy_from_slice(&pattern[..end - at]);
                }
                _ => {}
            }
            b
        }
        // Names and keys: empty, another's, invalid UTF-8, very long.
        _ => match rng.range_inclusive(0, 3) {
            0 => varint(0),
            1 => [varint(1), vec![0xFF]].concat(),
            2 => postcard::to_allocvec("A").unwrap(),
            _ => postcard::to_allocvec(&"x".repeat(70_000)).unwrap(),
        },
    }
}

/// 1 to 3 fields of a prior model's prior section replaced (from the last, so that the earlier
/// spans stay where they are); the container resealed.
fn mutate_prior(rng: &mut SplitMix64, file: &[u8], spans: &[FieldSpan]) -> Vec<u8> {
    let prior: Vec<&FieldSpan> = spans.iter().filter(|s| s.field.starts_with("prior")).collect();
    let mut chosen: Vec<&FieldSpan> = (0..rng.range_inclusive(1, 3)).map(|_| pick(rng, &prior)).collect();
    chosen.sort_by_key(|s| std::cmp::Reverse(s.range.start));
    chosen.dedup_by_key(|s| s.range.start);
    let mut b = file.to_vec();
    for span in chosen {
        let value = prior_value(rng, file, span);
        b.splice(span.range.clone(), value);
    }
    let mut sealed = container::seal(&MAGIC, FORMAT_VERSION, &b[HEADER..]);
    if rng.range_inclusive(0, 7) == 0 {
        sealed = mutate(rng, &sealed); // and some bytes besides
    }
    sealed
}

/// The binary under test: `GPO_BIN` when set (a copy that a concurrent build cannot replace
/// during a long run), else the one cargo built.
fn gpo_bin() -> String {
    std::env::var("GPO_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gpo").to_string())
}

/// A memory limit of a run: an allocation past it fails, and `gpo` aborts (a crash).
#[derive(Clone, Copy)]
enum Limit {
    /// Address space (`RLIMIT_AS`): every mapping, the binary's included.
    AddressSpace(u64),
    /// Data (`RLIMIT_DATA`): the heap and private writable mappings, what `gpo` allocates.
    Data(u64),
}

/// Runs `gpo args` under `limit`.
fn run_limited(args: &[&str], limit: Limit) -> std::io::Result<Output> {
    let mut command = Command::new(gpo_bin());
    command.args(args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let (resource, bytes) = match limit {
            Limit::AddressSpace(bytes) => (libc::RLIMIT_AS, bytes),
            Limit::Data(bytes) => (libc::RLIMIT_DATA, bytes),
        };
        let rlimit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
        // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
        unsafe {
            command.pre_exec(move || match libc::setrlimit(resource, &rlimit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = limit;
    command.output()
}

/// Runs `gpo args`: `Ok(None)` when it succeeds, `Ok(Some(error line))` when it refuses the input
/// in one line, `Err` for anything else (a crash).
fn check(args: &[&str], what: &str) -> Result<Option<String>, String> {
    let out = run_limited(args, Limit::AddressSpace(ADDRESS_SPACE)).map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    match (out.status.code(), errors.as_slice()) {
        (Some(0), _) => Ok(None),
        (Some(1), [line]) => Ok(Some(line.to_string())),
        (code, _) => Err(format!("{what}: exit {code:?} (a crash), stderr: {stderr}")),
    }
}

/// What an error line says, without the file and the numbers: `payload does not decode: `prior.#``.
fn error_kind(line: &str, model: &str) -> String {
    let line = line.trim_start_matches("error: ").replace(model, "M");
    let mut kind = String::new();
    for c in line.chars().take(64) {
        let c = if c.is_ascii_digit() { '#' } else { c };
        if !(c == '#' && kind.ends_with('#')) {
            kind.push(c);
        }
    }
    kind
}

#[test]
fn mutated_models_and_requests_never_crash_the_cli() {
    let seconds: u64 = std::env::var("GPO_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let (budget, min_runs) = if seconds > 0 { (Duration::from_secs(seconds), 0) } else { (Duration::ZERO, 400) };
    let dir = tempfile::tempdir().unwrap();
    let (model_path, request_path) = (dir.path().join("m.gpo"), dir.path().join("r.json"));
    let (model_arg, request_arg) = (model_path.to_str().unwrap(), request_path.to_str().unwrap());
    let (models, request) = (models(), request());
    let layouts: Vec<Vec<FieldSpan>> = models.iter().map(|m| ModelFile::layout(m).unwrap()).collect();
    let mut rng = SplitMix64::new(0x00F0_2223);
    let started = Instant::now();
    let (mut runs, mut structured, mut accepted) = (0u64, 0u64, 0u64);
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    let mut failures = Vec::new();
    while runs < min_runs || started.elapsed() < budget {
        // The long run fuzzes the prior models only (the faithful ones are the short pass's too).
        let which = rng.range_inclusive(if seconds > 0 { 2 } else { 0 }, models.len() - 1);
        let base = &models[which];
        let (model, req) = match rng.range_inclusive(0, 5) {
            // The request mutated, the model valid.
            0 => (base.clone(), mutate(&mut rng, &request)),
            // The prior section, structure-aware (prior models only).
            1..=3 if which >= 2 => {
                structured += 1;
                (mutate_prior(&mut rng, base, &layouts[which]), request.clone())
            }
            _ => {
                let mut model = mutate(&mut rng, base);
                if rng.range_inclusive(0, 1) == 1 {
                    repair(&mut model);
                }
                (model, request.clone())
            }
        };
        std::fs::write(&model_path, &model).unwrap();
        std::fs::write(&request_path, &req).unwrap();
        for (args, what) in [
            (vec!["--quiet", "inspect", model_arg], "inspect"),
            (vec!["--quiet", "predict", "--model", model_arg, "--input", request_arg], "predict"),
        ] {
            match check(&args, what) {
                Ok(None) => accepted += 1,
                Ok(Some(line)) => *kinds.entry(error_kind(&line, model_arg)).or_insert(0) += 1,
                Err(e) => {
                    let keep = dir.path().join(format!("crash-{runs}.gpo"));
                    std::fs::copy(&model_path, &keep).ok();
                    failures.push(e);
                }
            }
            runs += 1;
        }
        assert!(failures.len() < 5, "crashes: {failures:#?}");
    }
    println!(
        "fuzz: {runs} executions ({} on structure-aware prior mutations) in {:.0} s under a {} GiB address-space \
         limit, {} crashes",
        structured * 2,
        started.elapsed().as_secs_f64(),
        ADDRESS_SPACE >> 30,
        failures.len()
    );
    let mut kinds: Vec<(String, u64)> = kinds.into_iter().collect();
    kinds.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    println!("fuzz: {accepted} accepted; the most frequent refusals:");
    for (kind, n) in kinds.iter().take(if seconds > 0 { 25 } else { 5 }) {
        println!("fuzz: {n:>7}  {kind}");
    }
    assert!(failures.is_empty(), "crashes: {failures:#?}");
}

/// A prior model whose prior declares `groups × questions` (2 options each), none answered,
/// every count consistent with the bytes.
fn declared_prior(groups: usize, questions: usize) -> Vec<u8> {
    let (config, prior) = prior_model();
    let base = file(&config, Some(prior), WeightDType::F32);
    let spans = ModelFile::layout(&base).unwrap();
    let start = spans.iter().find(|s| s.field == "prior.groups.len").unwrap().range.start;
    let mut payload = base[HEADER..start].to_vec();
    let mut push = |bytes: Vec<u8>| payload.extend(bytes);
    push(varint(groups as u64));
    for g in 0..groups {
        push(postcard::to_allocvec(&format!("g{g}")).unwrap());
    }
    push(varint(questions as u64));
    for q in 0..questions {
        push(postcard::to_allocvec(&format!("q{q}")).unwrap());
        push(postcard::to_allocvec(&[1.0f64, 2.0][..]).unwrap());
    }
    push(postcard::to_allocvec(&vec![0u8; questions * DIM * 4]).unwrap());
    push(varint(0)); // no option signatures
    push(postcard::to_allocvec(&vec![0u8; (groups * questions).div_ceil(8)]).unwrap());
    push(varint(0));
    container::seal(&MAGIC, FORMAT_VERSION, &payload)
}

/// The reported file: 16,384 groups × 16,384 questions, none answered (a 32 MiB bitmap). It made
/// `gpo inspect` and `gpo predict` allocate 6.4 GB; each now says why in one line with 100 MiB
/// of data memory (the file itself is 34 MB of it). A 16 MiB limit makes `gpo` abort, so the
/// limit is felt.
#[cfg(unix)]
#[test]
fn a_huge_declared_prior_is_one_error_in_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.gpo");
    let bytes = declared_prior(16_384, 16_384);
    assert!(bytes.len() > 32 << 20, "{}", bytes.len());
    std::fs::write(&path, &bytes).unwrap();
    let request_path = dir.path().join("r.json");
    std::fs::write(&request_path, request()).unwrap();
    let model = path.to_str().unwrap();
    for args in [vec!["inspect", model], vec!["predict", "--model", model, "--input", request_path.to_str().unwrap()]] {
        let out = run_limited(&args, Limit::Data(100 << 20)).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let line = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
        assert!(line.contains("`prior.groups`") && line.contains("16384 groups, at most 4096"), "{stderr}");
    }
    let out = run_limited(&["inspect", model], Limit::Data(16 << 20)).unwrap();
    assert_ne!(out.status.code(), Some(1), "16 MiB must be too little for gpo, or the limit is not felt");
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
