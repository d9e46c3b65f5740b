//! Logs written to a file or pipe are plain text: no ANSI colour codes and no progress bars.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `gpo` with stdout and stderr piped (so neither is a terminal).
fn gpo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpo"))
        .args(args)
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn assert_plain(what: &str, text: &str) {
    assert!(!text.contains("\x1b["), "{what} holds ANSI escape codes:\n{text:?}");
    assert!(!text.contains('\r'), "{what} holds progress-bar redraws:\n{text:?}");
}

#[test]
fn data_summary_output_is_plain() {
    let (ok, stdout, stderr) = gpo(&["data", "summary", "fixtures/opinionqa"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("questions"), "{stdout}");
    assert_plain("stdout", &stdout);
    assert_plain("stderr", &stderr);
}

#[test]
fn training_logs_are_plain() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(
        &config,
        r#"
name = "tiny"

[data]
format = "synthetic"
groups = 8
questions = 60
dim = 4
clusters = 2
sharpness = 4.0
seed = 1

[model]
d_model = 8
d_ff = 8
n_layers = 1

[training]
steps = 2
eval_every = 1
validation_context = 5

[training.sampling]
kind = "code"
min_context = 2
max_context = 5
min_target = 2
max_target = 5

[evaluation]
splits = [0.5]
seeds = [0]
context_questions = 2
sweep = [0, 2]

[export]
dtype = "f32"
"#,
    )
    .unwrap();
    let out = dir.path().join("runs");
    let (ok, _, stderr) = gpo(&["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "1"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("INFO") && stderr.contains("validated"), "info logs expected:\n{stderr}");
    assert_plain("stderr", &stderr);
}

#[test]
fn errors_name_the_missing_file() {
    let (ok, _, stderr) = gpo(&["data", "summary", "fixtures/no-such-survey.csv"]);
    assert!(!ok);
    assert_eq!(stderr.trim(), "error: fixtures/no-such-survey.csv: No such file or directory");
    let (ok, _, stderr) = gpo(&["data", "summary", "fixtures/no-such-folder"]);
    assert!(!ok);
    assert_eq!(stderr.trim(), "error: fixtures/no-such-folder: No such file or directory");
}

/// Config errors name the file and the key as the user wrote them, and print each cause once.
#[test]
fn config_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = "name = \"k\"\n[data]\nformat = \"synthetic\"\ngroups = 8\nquestions = 12\ndim = 4\nclusters = 2\n\
                sharpness = 4.0\nseed = 1\n[model]\nd_model = 8\nd_ff = 8\nn_layers = 1\n[training]\nsteps = 2\n\
                [evaluation]\nsplits = [0.5]\nseeds = [0]\nsweep = [0]\n";
    let config = dir.path().join("k.toml");
    let name = config.to_str().unwrap();
    let out = dir.path().join("runs");
    let run = |text: String| {
        std::fs::write(&config, text).unwrap();
        let (ok, _, stderr) = gpo(&["--quiet", "run", name, "--out", out.to_str().unwrap(), "--jobs", "1"]);
        assert!(!ok);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        errors[0].to_string()
    };
    // Known only once the data is loaded: a k as large as a group's questions.
    let line = run(format!("{base}context_questions = 12\n"));
    assert_eq!(
        line,
        format!(
            "error: {name}: [evaluation] context_questions: k = 12 context questions is not smaller than the 12 \
             questions of the smallest group, `group 0`"
        )
    );
    // A synthetic dimension of 0 said `dim_x must be positive` three times, naming neither.
    let line = run(base.replace("dim = 4", "dim = 0"));
    assert_eq!(line, format!("error: {name}: [data] dim must be at least 1, got 0"));
}

#[test]
fn groups_that_match_nothing_are_an_error_naming_the_surveys_groups() {
    let (ok, stdout, stderr) = gpo(&["data", "summary", "fixtures/opinionqa", "--groups", "Nobody,Martians"]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("--groups: none of the requested groups (Nobody, Martians) is a group of the survey")
            && stderr.contains("its groups: Northeast, South"),
        "{stderr}"
    );
    // One found is a selection; the missing one is listed in the report.
    let (ok, stdout, stderr) = gpo(&["data", "summary", "fixtures/opinionqa", "--groups", "Democrat,Martians"]);
    assert!(ok && stdout.contains("Martians"), "{stdout}{stderr}");
}

#[test]
fn data_tidy_writes_the_selection_in_the_tidy_format() {
    use gpo_train::data::{globalopinionqa, select, tidy};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("global");
    let (ok, stdout, stderr) =
        gpo(&["data", "tidy", "fixtures/data/global_opinions_sample.csv", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("(tidy)"), "{stdout}");
    assert_plain("stderr", &stderr);
    let loaded =
        globalopinionqa::load_csv_with_report(&repo().join("fixtures/data/global_opinions_sample.csv")).unwrap();
    let (want, _) = select::select_loaded(&loaded, None);
    let got = tidy::load(&out).unwrap();
    assert_eq!((&got.name, got.metric, &got.questions), (&want.name, want.metric, &want.questions));
    assert_eq!(got.groups.len(), want.groups.len());
    for (a, b) in got.groups.iter().zip(&want.groups) {
        assert_eq!((&a.name, a.answers.len()), (&b.name, b.answers.len()));
    }
    let (ok, _, stderr) = gpo(&["data", "tidy", "fixtures/no-such.csv", "--out", out.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(stderr.trim(), "error: fixtures/no-such.csv: No such file or directory");
}

/// The reported `dim must be positive` three times: an error that prints its cause must not also
/// return it as `source`, or the binary's `{:#}` chain (anyhow's, as `gpo` prints errors) prints
/// it again.
#[test]
fn the_command_line_prints_each_cause_once() {
    use gpo_core::model::ConfigError;
    use gpo_train::eval::EvalError;
    use gpo_train::llm::{GgufError, LlmError};
    use gpo_train::run::RunError;
    use gpo_train::train::TrainError;

    let zero = || ConfigError::Zero { field: "d_model" };
    let errors: Vec<anyhow::Error> = vec![
        RunError::from(TrainError::from(zero())).into(),
        RunError::from(TrainError::from(EvalError::from(gpo_core::PredictError::from(
            gpo_core::ModelFileError::from(zero()),
        ))))
        .into(),
        RunError::from(EvalError::from(gpo_core::PriorError::Neighbours(0))).into(),
        LlmError::gguf(Path::new("m.gguf"))(GgufError::Header("bad magic".into())).into(),
    ];
    for (error, cause) in errors.iter().zip(["must be positive", "must be positive", "neighbour", "bad magic"]) {
        let printed = format!("{error:#}");
        assert_eq!(printed.matches(cause).count(), 1, "{printed}");
    }
}
