//! `kill -9` at any moment of `gpo run`, then `gpo run --resume`, gives the model.gpo of an
//! uninterrupted run, byte for byte (issue 13): checkpoints, the exported model and results.json
//! are written atomically, and a resumed run redoes nothing it finished and skips nothing it did
//! not.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
name = "kill"

[data]
format = "synthetic"
groups = 8
questions = 60
dim = 4
clusters = 2
sharpness = 4.0
seed = 3

[model]
d_model = 8
d_ff = 8
n_layers = 1

[training]
steps = 24
eval_every = 4
checkpoint_every = 3
validation_context = 5

[training.sampling]
kind = "code"
min_context = 2
max_context = 5
min_target = 2
max_target = 5

[evaluation]
splits = [0.5]
seeds = [0, 1]
context_questions = 2
sweep = [0, 2]

[export]
dtype = "f32"

[variants.knn.model]
d_model = 8
d_ff = 8
n_layers = 1
prior = { kind = "knn_groups", temperature = 0.05 }

[variants.knn.training]
steps = 12
eval_every = 4
checkpoint_every = 3
objective = "cross_entropy"
"#;

fn gpo(config: &Path, out: &Path, resume: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gpo"));
    command.args(["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "1"]);
    if resume {
        command.arg("--resume");
    }
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

fn run_to_end(config: &Path, out: &Path, resume: bool) {
    let output = gpo(config, out, resume).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Starts a run and kills it (SIGKILL) after `after`; returns whether it was still running.
fn kill_after(config: &Path, out: &Path, resume: bool, after: Duration) -> bool {
    let mut child = gpo(config, out, resume).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

fn run_dir(out: &Path) -> PathBuf {
    out.join("kill")
}

fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(temporary_files(&path));
        } else if path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".tmp")) {
            found.push(path);
        }
    }
    found
}

#[test]
fn kill_at_any_moment_then_resume_gives_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kill.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let reference = dir.path().join("reference");
    let start = Instant::now();
    run_to_end(&config, &reference, false);
    // The kill moments are fractions of an uninterrupted run's time: the faster of two, since the
    // first start of a freshly built binary pages it in from disk and can take twice as long
    // (then most late kills would find the process already gone).
    let first = start.elapsed();
    let again = dir.path().join("again");
    let start = Instant::now();
    run_to_end(&config, &again, false);
    let duration = first.min(start.elapsed());
    let want = std::fs::read(run_dir(&reference).join("model.gpo")).unwrap();
    assert!(std::fs::read(run_dir(&again).join("model.gpo")).unwrap() == want, "two clean runs differ");

    // Kill moments spread over the whole run (process start, loading, every method's training and
    // checkpoints, evaluation, the writes at the end), and one run killed twice.
    let mut killed = 0;
    for (i, fractions) in
        [&[0.02][..], &[0.1], &[0.2], &[0.3], &[0.4], &[0.5], &[0.6], &[0.7], &[0.8], &[0.9], &[0.97], &[0.3, 0.5]]
            .iter()
            .enumerate()
    {
        let out = dir.path().join(format!("killed-{i}"));
        for (j, f) in fractions.iter().enumerate() {
            killed += usize::from(kill_after(&config, &out, j > 0, duration.mul_f64(*f)));
        }
        let run = run_dir(&out);
        // What a kill leaves is never a run that looks finished without its model.
        if run.join("results.json").exists() {
            assert!(run.join("model.gpo").exists(), "killed at {fractions:?}: results.json without model.gpo");
        }
        run_to_end(&config, &out, true);
        let got = std::fs::read(run.join("model.gpo")).unwrap();
        assert!(got == want, "killed at {fractions:?} of {duration:?}: the resumed model.gpo differs");
        assert_eq!(temporary_files(&run), Vec::<PathBuf>::new(), "killed at {fractions:?}");
    }
    // Most kills must land while the process runs, or the test shows nothing.
    assert!(killed >= 8, "only {killed} of 13 kills hit a running process ({duration:?} per run)");
}
