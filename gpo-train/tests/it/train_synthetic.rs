//! Meta-training end to end on synthetic surveys with planted group structure: GPO must learn to
//! read a group's context, training must be deterministic, and resuming must be exact.

use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use gpo_core::GpoConfig;
use gpo_core::weights::named_tensors;
use gpo_train::config::RunConfig;
use gpo_train::method::Method;
use gpo_train::prior::PriorKind;
use gpo_train::protocol::Protocol;
use gpo_train::run::run_experiment;
use gpo_train::synthetic::{SyntheticSpec, synthetic_survey};
use gpo_train::train::{GpoMethod, NoProgress, Session, Split, SplitOptions, TrainOptions, ValidationMode, train};

type B = Autodiff<NdArray<f32>>;

fn config_text(steps: usize) -> String {
    format!(
        r#"
name = "synthetic"

[data]
format = "synthetic"
groups = 14
questions = 80
dim = 12
clusters = 2
sharpness = 6.0
seed = 3

[model]
d_model = 32
d_ff = 32
n_layers = 2

[training]
steps = {steps}
learning_rate = 2e-3
eval_every = 50

[split]
validation = "questions"

[training.sampling]
kind = "code"
min_context = 5
max_context = 30
min_target = 5
max_target = 30

[evaluation]
splits = [0.6]
seeds = [0]
context_questions = 20
sweep = [0, 20]

[export]
dtype = "f16"
"#
    )
}

/// Both protocols in one run (trained side by side, one per core). On held-out groups GPO must
/// read the context; on new questions (answers are a function of the option embeddings, which the
/// population statistics cannot use) it must beat every baseline that exists for a new question.
#[test]
fn gpo_learns_planted_group_structure() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("synthetic.toml");
    let text = config_text(400).replace("sweep = [0, 20]", "sweep = [0, 20]\nprotocols = [\"groups\", \"questions\"]");
    std::fs::write(&config_path, text).unwrap();
    let config = RunConfig::load(&config_path).unwrap();
    let out = dir.path().join("runs/synthetic");
    let results = run_experiment::<B>(&config, &out, false, 2, &Default::default(), &NoProgress).unwrap();
    let score = |protocol: Protocol, method: &str, k: usize| {
        let entry = results.sweep.iter().find(|e| e.protocol == protocol && e.method.name() == method && e.k == k);
        entry.unwrap_or_else(|| panic!("no {method} at k = {k} under {protocol:?}")).mean
    };
    let groups = |method: &str, k: usize| score(Protocol::Groups, method, k);
    let (gpo, uniform, mean) = (groups("gpo", 20), groups("uniform", 20), groups("train_mean", 20));
    println!("groups: gpo {gpo:.4} (k=0 {:.4}) uniform {uniform:.4} train mean {mean:.4}", groups("gpo", 0));
    assert!(gpo > uniform + 0.02, "GPO {gpo} vs uniform {uniform}");
    assert!(gpo > mean + 0.02, "GPO {gpo} vs train-group mean {mean}");
    assert!(gpo > groups("gpo", 0) + 0.01, "context must help");

    let questions = |method: &str| score(Protocol::Questions, method, 20);
    let new_gpo = questions("gpo");
    for baseline in ["uniform", "nearest_question", "ridge_population", "knn_groups", "ridge_rm"] {
        println!("questions: gpo {new_gpo:.4} {baseline} {:.4}", questions(baseline));
        assert!(new_gpo > questions(baseline) + 0.01, "new questions: GPO {new_gpo} vs {baseline}");
    }
    // The new-questions runs hold out 20% of the 80 questions and score only them.
    let run = results.runs.iter().find(|r| r.protocol == Protocol::Questions).unwrap();
    assert_eq!(run.new_questions.len(), 16);
    assert!(results.runs.iter().filter(|r| r.protocol == Protocol::Groups).all(|r| r.new_questions.is_empty()));
    assert!(run.scores.iter().all(|s| s.method != Method::TrainMean));
    // Each run selected its rule for new questions among the default candidates, the best
    // leave-one-out score, and the report shows it.
    for r in &results.runs {
        let selection = r.neighbour_rule.as_ref().expect("a selected rule");
        let candidates = config.nearest_questions.candidates();
        assert_eq!(selection.candidates.iter().map(|c| c.rule).collect::<Vec<_>>(), candidates);
        let best = selection.candidates.iter().map(|c| c.score).fold(f64::NEG_INFINITY, f64::max);
        assert!(
            best.is_finite() && selection.candidates.iter().any(|c| c.rule == selection.selected && c.score == best)
        );
        assert!(selection.pairs > 0);
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("### The rule for new questions"), "{report}");

    for file in [
        "results.json",
        "report.md",
        "model.gpo",
        "training_loss.svg",
        "alignment_vs_context_60.svg",
        "alignment_vs_context_questions_60.svg",
        "validation_vs_cpu_seconds.svg",
        "checkpoints/split60-seed0-gpo.ckpt",
        "checkpoints/questions-split60-seed0-gpo.ckpt",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let summary = json["summary"].as_array().unwrap();
    let rows = |p: &str| summary.iter().filter(|e| e["protocol"] == p).count();
    // GPO, its selection on validation and the baselines (4 on held-out groups, 5 on new questions).
    assert_eq!((rows("groups"), rows("questions")), (6, 7), "one entry per method at k = 20 and protocol");
    assert!(summary.iter().all(|e| e["k"] == 20 && e["seeds"] == 1 && e["train_fraction"] == 0.6));
    // Every point of the training curve carries the CPU seconds spent so far, increasing.
    let curve = &results.runs[0].models[0].curve;
    assert!(curve.windows(2).all(|w| w[1].cpu_seconds >= w[0].cpu_seconds) && curve.last().unwrap().cpu_seconds > 0.0);
}

fn small_run(session: Session, steps: usize) -> Vec<gpo_core::weights::NamedTensor> {
    let task =
        synthetic_survey(SyntheticSpec { groups: 8, questions: 40, dim: 8, clusters: 2, sharpness: 4.0, seed: 1 });
    let split =
        Split::new(&task, Protocol::Groups, 0.75, 5, &SplitOptions::validation(ValidationMode::Groups, 0.2)).unwrap();
    let method = GpoMethod {
        method: Method::Variant("prior".into()),
        config: GpoConfig::new(8).with_d_model(16).with_d_ff(16).with_n_layers(1).with_prior(true),
        prior: Some(PriorKind::KnnGroups { temperature: 0.05 }),
        training: TrainOptions { steps, eval_every: 4, ..TrainOptions::default() },
    };
    let trained = train::<B>(&task, &split, &method, 9, session, &Default::default(), &NoProgress).unwrap();
    named_tensors(&trained.model)
}

#[test]
fn training_is_deterministic() {
    assert_eq!(small_run(Session::default(), 12), small_run(Session::default(), 12));
}

#[test]
fn resuming_gives_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("run.ckpt");
    let uninterrupted = small_run(Session::default(), 12);
    let stopped = Session { checkpoint: Some(&checkpoint), resume: false, stop_after: Some(7) };
    small_run(stopped, 12);
    assert!(checkpoint.exists());
    let resumed = small_run(Session { checkpoint: Some(&checkpoint), resume: true, stop_after: None }, 12);
    assert_eq!(resumed, uninterrupted);
}

#[test]
fn bad_configs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let check = |text: String, needle: &str| {
        std::fs::write(&path, text).unwrap();
        let err = match RunConfig::load(&path) {
            Ok(config) => {
                run_experiment::<B>(&config, &dir.path().join("out"), false, 1, &Default::default(), &NoProgress)
                    .map(|_| ())
                    .unwrap_err()
                    .to_string()
            }
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    };
    check(config_text(5).replace("[model]", "[model]\nwidth = 3"), "unknown field `width`");
    check(config_text(5).replace("splits = [0.6]", "splits = [0.05]"), "meta-training");
    check(config_text(5).replace("splits = [0.6]", "splits = [1.5]"), "fraction");
    check(
        config_text(5).replace("sweep = [0, 20]", "sweep = [0, 80]"),
        "[evaluation] context_questions and sweep: k = 80 context questions is not smaller than",
    );
    check(config_text(5).replace("dtype = \"f16\"", "dtype = \"f8\""), "dtype");
    check(config_text(5).replace("n_layers = 2", "n_layers = 2\nn_heads = 5"), "n_heads");
    check(config_text(5).replace("n_layers = 2", "n_layers = 2\nprior = { kind = \"train_mean\" }"), "faithful");
    check(format!("{}\n[variants.Big.model]\nd_model = 8\n", config_text(5)), "variants.Big");
    let knn = "[variants.knn.model]\nprior = { kind = \"knn_groups\", temperature = -1.0 }\n";
    check(format!("{}\n{knn}", config_text(5)), "[variants.knn.model] prior temperature");
    let knn = "[variants.knn.model]\nprior = { kind = \"knn_groups\", temperature = 1e-300 }\n";
    check(format!("{}\n{knn}", config_text(5)), "[variants.knn.model] prior temperature must be between 1e-6 and 1e6");
    check(config_text(5).replace("eval_every = 50", "eval_every = 0"), "[training] eval_every must be at least 1");
    let cold = config_text(5).replace("[evaluation]", "[evaluation]\nknn_temperature = 1e-300");
    check(cold, "[evaluation] knn_temperature must be between 1e-6 and 1e6, got 1e-300");
    // The candidates for the rule for new questions.
    let rules = |table: &str| format!("{}\n[nearest_questions]\n{table}\n", config_text(5));
    check(rules("neighbours = []"), "[nearest_questions] neighbours must not be empty");
    check(rules("neighbours = [5, 0]"), "[nearest_questions] neighbours entries must be at least 1, got 0");
    check(rules("neighbours = [2000]"), "[nearest_questions] neighbours entries must be at most 1024, got 2000");
    check(rules("temperatures = [0.1, 0.0]"), "[nearest_questions] temperatures entries must be between 1e-6 and 1e6");
    check(
        rules("option_weights = [0.3, -1.0]"),
        "[nearest_questions] option_weights entries must be between 0e0 and 1e2",
    );
    check(rules("neighbours = [5]\nmean = true"), "unknown field `mean`");
    // Split settings are the run's, in `[split]`; the old per-method keys say where they went.
    let split = "[variants.v.training]\nvalidation = \"groups\"\n";
    check(format!("{}\n{split}", config_text(5)), "[variants.v.training] validation: moved to [split]");
    check(
        config_text(5).replace("sweep = [0, 20]", "sweep = [0, 20]\nnew_questions = 0.3"),
        "[evaluation] new_questions: moved to [split]",
    );
    check(
        config_text(5).replace("validation = \"questions\"", "validation_fraction = 1.5"),
        "[split] validation_fraction must be a fraction in (0, 1), got 1.5",
    );
}

/// A prior variant beside the faithful model: reported as `gpo_<name>`, starting from its prior,
/// and the results do not depend on how many runs train at once.
#[test]
fn variants_are_reported_and_jobs_do_not_change_results() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("synthetic.toml");
    let variant = "[variants.mean.model]\nd_model = 16\nd_ff = 16\nn_layers = 1\nprior = { kind = \"train_mean\" }\n\
                   [variants.mean.training]\nsteps = 6\neval_every = 3\n";
    let text = format!("{}\n{variant}", config_text(6).replace("splits = [0.6]", "splits = [0.4, 0.6]"));
    std::fs::write(&config_path, text).unwrap();
    let config = RunConfig::load(&config_path).unwrap();
    let one =
        run_experiment::<B>(&config, &dir.path().join("one"), false, 1, &Default::default(), &NoProgress).unwrap();
    let two =
        run_experiment::<B>(&config, &dir.path().join("two"), false, 2, &Default::default(), &NoProgress).unwrap();
    assert_eq!(one.summary, two.summary);
    assert_eq!(one.sweep, two.sweep);
    let methods: Vec<String> =
        one.summary.iter().filter(|e| e.train_fraction == 0.6).map(|e| e.method.name()).collect();
    assert!(one.summary.iter().all(|e| e.protocol == Protocol::Groups), "the default protocol is `groups`");
    assert_eq!(methods, ["gpo", "gpo_mean", "uniform", "train_mean", "knn_groups", "ridge_rm", "selected_gpo"]);
    assert!(one.runs.iter().all(|r| r.models.len() == 2 && r.models[1].method.name() == "gpo_mean"));
    let report = std::fs::read_to_string(dir.path().join("one/report.md")).unwrap();
    assert!(report.contains("GPO (mean)"), "{report}");
    // Whether the context is read: every method of every run is measured; what reads no group's
    // answer moves by nothing when another group's answers are shown, and predicts alike for all.
    assert!(report.contains("Does the context matter?"), "{report}");
    for run in &one.runs {
        let measured: Vec<String> = run.context_use.iter().map(|c| c.method.name()).collect();
        assert_eq!(measured, ["gpo", "gpo_mean", "uniform", "train_mean", "knn_groups", "ridge_rm"]);
        for c in &run.context_use {
            assert!(c.random.is_some() && c.related.is_some() && c.contrast.is_some(), "{c:?}");
            if [Method::Uniform, Method::TrainMean].contains(&c.method) {
                let zeros = (Some(0.0), Some(0.0), Some(0.0), Some(0.0));
                assert_eq!((c.swap_tv, c.swap_drop, c.contrast, c.related_contrast), zeros, "{c:?}");
            }
            if [Method::KnnGroups, Method::RidgeRm].contains(&c.method) {
                assert!(c.swap_tv.is_some_and(|tv| tv > 0.0) && c.contrast.is_some_and(|x| x > 0.0), "{c:?}");
                assert!(c.related_contrast.is_some_and(|x| x > 0.0), "{c:?}");
            }
        }
    }
    assert_eq!(
        one.runs.iter().map(|r| &r.context_use).collect::<Vec<_>>(),
        two.runs.iter().map(|r| &r.context_use).collect::<Vec<_>>()
    );
}
