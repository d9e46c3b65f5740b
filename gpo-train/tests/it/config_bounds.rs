//! Run configurations with absurd sizes are clear errors naming the table and field, not
//! allocation failures; config files are read with a size cap.

use gpo_train::config::RunConfig;
use gpo_train::fsutil::MAX_CONFIG_BYTES;

fn base() -> String {
    r#"
name = "bounds"

[data]
format = "synthetic"
groups = 8
questions = 20
dim = 4
clusters = 2
sharpness = 4.0
seed = 1

[model]
d_model = 16
d_ff = 16
n_layers = 1

[training]
steps = 5

[evaluation]
splits = [0.5]
seeds = [0]
"#
    .to_string()
}

fn load(text: &str) -> Result<RunConfig, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    RunConfig::load(&path).map_err(|e| e.to_string())
}

/// `base()` with `line` added under `[table]` (the table is created when missing).
fn with(table: &str, line: &str) -> String {
    let header = format!("[{table}]\n");
    let text = base();
    match text.find(&header) {
        Some(at) => format!("{}{header}{line}\n{}", &text[..at], &text[at + header.len()..]),
        None => format!("{text}\n{header}{line}\n"),
    }
}

fn assert_refused(text: &str, needles: &[&str]) {
    let e = load(text).expect_err("config must be refused");
    for needle in needles {
        assert!(e.contains(needle), "expected {needle:?} in: {e}");
    }
}

#[test]
fn the_base_config_loads() {
    load(&base()).unwrap();
}

#[test]
fn model_sizes_are_bounded() {
    let cases = [
        ("d_model = 1073741824", "[model] d_model must be at most 4096, got 1073741824"),
        ("d_ff = 16385", "[model] d_ff must be at most 16384"),
        ("n_layers = 100000000", "[model] n_layers must be at most 64, got 100000000"),
        ("emb_depth = 65", "[model] emb_depth must be at most 64"),
        ("n_heads = 128", "[model] n_heads must be at most 64"),
    ];
    for (line, needle) in cases {
        // Later keys would be duplicates in TOML: replace the base's value where it has one.
        let key = line.split(' ').next().unwrap();
        let text = match base().lines().find(|l| l.starts_with(&format!("{key} = "))) {
            Some(old) => base().replacen(old, line, 1),
            None => with("model", line),
        };
        assert_refused(&text, &[needle]);
    }
    // Each size within its bound, but together far too many weights.
    let big = base()
        .replace("d_model = 16", "d_model = 4096")
        .replace("d_ff = 16", "d_ff = 16384")
        .replace("n_layers = 1", "n_layers = 64");
    assert_refused(&big, &["[model]", "weights; at most 268435456"]);
}

#[test]
fn training_sizes_are_bounded() {
    assert_refused(
        &base().replace("steps = 5", "steps = 1000000001"),
        &["[training] steps must be at most 1000000000"],
    );
    assert_refused(&with("training", "eval_every = 10000000000"), &["[training] eval_every"]);
    assert_refused(&with("training", "checkpoint_every = 10000000000"), &["[training] checkpoint_every"]);
    assert_refused(
        &with("training", "validation_context = 100001"),
        &["[training] validation_context must be at most 100000"],
    );
    assert_refused(&with("training", "threads = 257"), &["[training] threads must be at most 256, got 257"]);
    assert_refused(&with("training", "threads = 0"), &["[training] threads must be at least 1, got 0"]);
    assert!(load(&with("training", "threads = 2")).is_ok_and(|c| c.training.threads == 2));
    for field in ["min_context", "max_context", "min_target", "max_target"] {
        let mut values = vec![("min_context", 1), ("max_context", 5), ("min_target", 1), ("max_target", 5)];
        for (name, v) in &mut values {
            if *name == field {
                *v = 1_000_000;
            }
        }
        let table: String = values.iter().map(|(n, v)| format!("{n} = {v}\n")).collect();
        let text = format!("{}\n[training.sampling]\nkind = \"code\"\n{table}", base());
        assert_refused(&text, &[&format!("[training.sampling] {field} must be at most 100000")]);
    }
}

#[test]
fn variant_sizes_are_bounded() {
    let text = format!("{}\n[variants.big.model]\nd_model = 1073741824\n", base());
    assert_refused(&text, &["[variants.big.model] d_model must be at most 4096"]);
    let text = format!("{}\n[variants.long.training]\nsteps = 1000000001\n", base());
    assert_refused(&text, &["[variants.long.training] steps"]);
    let text = format!(
        "{}\n[variants.s.training.sampling]\nkind = \"code\"\nmin_context = 1\nmax_context = 200000\nmin_target = 1\nmax_target = 5\n",
        base()
    );
    assert_refused(&text, &["[variants.s.training.sampling] max_context"]);
}

#[test]
fn evaluation_and_data_sizes_are_bounded() {
    assert_refused(
        &with("evaluation", "context_questions = 100001"),
        &["[evaluation] context_questions must be at most 100000"],
    );
    assert_refused(&with("evaluation", "sweep = [0, 1000000]"), &["[evaluation] sweep entries must be at most 100000"]);
    let seeds: Vec<String> = (0..1025).map(|i| i.to_string()).collect();
    let text = base().replace("seeds = [0]", &format!("seeds = [{}]", seeds.join(",")));
    assert_refused(&text, &["[evaluation] seeds may hold at most 1024 entries"]);
    assert_refused(&base().replace("groups = 8", "groups = 1000000000"), &["[data] groups must be at most 100000"]);
    assert_refused(&base().replace("dim = 4", "dim = 100000000"), &["[data] dim must be at most 65536"]);
    for field in ["groups = 8", "questions = 20", "dim = 4", "clusters = 2"] {
        let key = field.split(' ').next().unwrap_or_default();
        assert_refused(
            &base().replace(field, &format!("{key} = 0")),
            &[&format!("[data] {key} must be at least 1, got 0")],
        );
    }
    assert_refused(
        &base().replace("groups = 8", "groups = 100000").replace("questions = 20", "questions = 100000"),
        &["[data] groups × questions must be at most 100000000"],
    );
}

#[test]
fn config_files_are_read_with_a_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let mut text = base();
    text.push_str(&format!("# {}\n", "x".repeat(MAX_CONFIG_BYTES as usize)));
    std::fs::write(&path, text).unwrap();
    let e = RunConfig::load(&path).unwrap_err().to_string();
    assert_eq!(e, format!("{}: larger than 1048576 bytes", path.display()));
    if std::path::Path::new("/dev/zero").exists() {
        let e = RunConfig::load(std::path::Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(e, "/dev/zero: larger than 1048576 bytes");
    }
    let missing = dir.path().join("missing.toml");
    let e = RunConfig::load(&missing).unwrap_err().to_string();
    assert_eq!(e, format!("{}: No such file or directory", missing.display()));
}

#[test]
fn every_shipped_config_loads_and_names_existing_files() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs"));
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for path in names {
        let config = RunConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let gpo_train::config::DataConfig::Survey { source, cache, .. } = &config.data {
            assert!(source.exists(), "{}: {}", path.display(), source.display());
            assert!(cache.exists(), "{}: {}", path.display(), cache.display());
        }
    }
}
