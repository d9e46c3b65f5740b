//! `report.md` and its plots.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use super::svg::{LineChart, Series, XScale};
use super::{Results, SummaryEntry};
use crate::data::Metric;
use crate::fsutil::write_atomic;
use crate::train::CurvePoint;

/// Display names and order of the methods.
const METHODS: [(&str, &str); 5] = [
    ("uniform", "Uniform"),
    ("train_mean", "Train-group mean"),
    ("knn_groups", "kNN groups"),
    ("ridge_rm", "Ridge reward model"),
    ("gpo", "GPO"),
];

fn display_name(method: &str) -> String {
    if let Some(variant) = method.strip_prefix("gpo_") {
        return format!("GPO ({variant})");
    }
    METHODS.iter().find(|(id, _)| *id == method).map(|(_, name)| name.to_string()).unwrap_or_else(|| method.to_string())
}

/// Whether `method` is GPO or one of its variants.
fn is_gpo(method: &str) -> bool {
    method == "gpo" || method.starts_with("gpo_")
}

/// The paper's published values (GPO-SPEC §8.1, read off the main figure, ±0.005) at the
/// 40/60/80% splits, Alpaca-7b embeddings.
fn paper_value(metric: Metric, method: &str, split: f64) -> Option<f64> {
    let column = [0.4, 0.6, 0.8].iter().position(|s| (s - split).abs() < 1e-9)?;
    let row: [f64; 3] = match (metric, method) {
        (Metric::Wasserstein, "uniform") => [0.823, 0.823, 0.823],
        (Metric::Wasserstein, "gpo") => [0.919, 0.925, 0.945],
        (Metric::JensenShannon, "uniform") => [0.662, 0.662, 0.662],
        (Metric::JensenShannon, "gpo") => [0.798, 0.820, 0.798],
        _ => return None,
    };
    Some(row[column])
}

fn methods_in(entries: &[SummaryEntry]) -> Vec<String> {
    let mut methods: Vec<String> = Vec::new();
    for e in entries {
        if !methods.contains(&e.method) {
            methods.push(e.method.clone());
        }
    }
    // Baselines in their order, then GPO, then its variants by name.
    let rank = |m: &String| {
        let position = METHODS.iter().position(|(id, _)| id == m);
        (position.unwrap_or(if is_gpo(m) { METHODS.len() - 1 } else { METHODS.len() }), m.clone())
    };
    methods.sort_by_key(rank);
    methods
}

fn splits_in(entries: &[SummaryEntry]) -> Vec<f64> {
    let mut splits: Vec<f64> = entries.iter().map(|e| e.train_fraction).collect();
    splits.sort_by(f64::total_cmp);
    splits.dedup();
    splits
}

fn find<'a>(entries: &'a [SummaryEntry], split: f64, method: &str, k: usize) -> Option<&'a SummaryEntry> {
    entries.iter().find(|e| e.train_fraction == split && e.method == method && e.k == k)
}

/// Alignment vs number of context questions, one line per method, one chart per split.
fn sweep_chart(results: &Results, split: f64) -> LineChart {
    let mut ks: Vec<usize> = results.sweep.iter().map(|e| e.k).collect();
    ks.sort_unstable();
    ks.dedup();
    LineChart {
        title: format!("{}: alignment vs context questions ({:.0}% meta-train groups)", results.dataset, split * 100.0),
        x_label: "context questions per held-out group (log scale)".into(),
        y_label: "alignment (held-out groups)".into(),
        x_scale: XScale::Log1p,
        x_ticks: ks.iter().map(|&k| k as f64).collect(),
        series: methods_in(&results.sweep)
            .into_iter()
            .map(|m| Series {
                name: display_name(&m),
                points: results
                    .sweep
                    .iter()
                    .filter(|e| e.method == m && e.train_fraction == split)
                    .map(|e| (e.k as f64, e.mean))
                    .collect(),
            })
            .collect(),
    }
}

/// One line per (GPO method, split) over the updates: the mean over seeds of the points `pick`
/// takes from each run's curve.
fn curve_chart(
    results: &Results,
    title: &str,
    y_label: &str,
    pick: impl Fn(&[CurvePoint]) -> Vec<(f64, f64)>,
) -> LineChart {
    let mut lines: BTreeMap<(String, u64), BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for run in &results.runs {
        for model in &run.models {
            let line = lines.entry((model.method.clone(), run.train_fraction.to_bits())).or_default();
            for (x, y) in pick(&model.curve) {
                line.entry(x.to_bits()).or_default().push(y);
            }
        }
    }
    let series = lines
        .into_iter()
        .map(|((method, split), points)| Series {
            name: format!("{} {:.0}%", display_name(&method), f64::from_bits(split) * 100.0),
            points: points
                .into_iter()
                .filter_map(|(x, ys)| Some((f64::from_bits(x), gpo_core::metrics::mean(&ys)?)))
                .collect(),
        })
        .collect();
    LineChart {
        title: format!("{}: {title}", results.dataset),
        x_label: "update".into(),
        y_label: y_label.into(),
        x_scale: XScale::Linear,
        x_ticks: Vec::new(),
        series,
    }
}

/// Training loss and validation alignment over the updates, mean over seeds.
fn training_charts(results: &Results) -> (LineChart, LineChart) {
    let loss = curve_chart(results, "training loss, mean over seeds", "loss", |curve| {
        // A running mean over ~2% of the run keeps the curve readable.
        let losses: Vec<(usize, f64)> = curve.iter().filter_map(|p| Some((p.step, p.loss?))).collect();
        let window = (losses.len() / 50).max(1);
        losses
            .chunks(window)
            .map(|c| (c[c.len() - 1].0 as f64, c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64))
            .collect()
    });
    let validation = curve_chart(results, "validation alignment, mean over seeds", "alignment (validation)", |curve| {
        curve.iter().filter_map(|p| Some((p.step as f64, p.validation?))).collect()
    });
    (loss, validation)
}

/// Writes `report.md`, `alignment_vs_context_<split>.svg`, `training_loss.svg` and
/// `validation_curve.svg` into `dir`.
pub fn write_report(results: &Results, dir: &Path) -> std::io::Result<()> {
    let splits = splits_in(&results.summary);
    let methods = methods_in(&results.summary);
    let k = results.config.evaluation.context_questions;
    let metric_name = match results.metric {
        Metric::Wasserstein => "1 − Wasserstein / (max ordinal − min ordinal) (OpinionQA)",
        Metric::JensenShannon => "1 − Jensen–Shannon distance (GlobalOpinionQA)",
    };
    let mut md = String::new();
    let _ = writeln!(md, "# GPO report: {}\n", results.name);
    let _ = writeln!(
        md,
        "Dataset **{}**: {} groups, {} questions, {}-dimensional embeddings. Metric: {metric_name}, \
         micro-averaged over (held-out group, question) items, mean ± std over {} seed(s). \
         {} context questions per held-out group; every other question is a target. \
         Models are selected on a validation split of the meta-training data ({}), never on the test groups.\n",
        results.dataset,
        results.n_groups,
        results.n_questions,
        results.embedding_dim,
        results.config.evaluation.seeds.len(),
        k,
        match results.config.training.validation {
            crate::train::ValidationMode::Questions => "held-out questions of the meta-training groups",
            crate::train::ValidationMode::Groups => "held-out meta-training groups",
        },
    );

    let _ = writeln!(md, "## Alignment on held-out groups ({k} context questions)\n");
    let mut header = String::from("| Method |");
    let mut rule = String::from("|---|");
    for s in &splits {
        let _ = write!(header, " {:.0}% (ours) | {:.0}% (paper) |", s * 100.0, s * 100.0);
        rule.push_str("---|---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for m in &methods {
        let _ = write!(md, "| {} |", display_name(m));
        for &s in &splits {
            match find(&results.summary, s, m, k) {
                Some(e) => {
                    let _ = write!(md, " {:.4} ± {:.4} |", e.mean, e.std);
                }
                None => md.push_str(" – |"),
            }
            match paper_value(results.metric, m, s) {
                Some(v) => {
                    let _ = write!(md, " {v:.3} |");
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\nPaper values: Alpaca-7b embeddings, read off the published figure (±0.005); the paper reports no \
         train-group-mean, kNN or ridge baseline. Differences in data: the paper embeds prompts with Alpaca-7b \
         (4096-d) and uses Pew-weighted answer distributions of 22 groups on the 500 most contentious questions; \
         this run uses its own embeddings ({}-d) and data ({} groups, {} questions; the bundled OpinionQA data holds \
         unweighted respondent counts, which differ from the weighted distributions by a mean total variation of 0.038).\n",
        results.embedding_dim, results.n_groups, results.n_questions,
    );

    let _ = writeln!(md, "## Alignment vs number of context questions\n");
    for &s in &splits {
        let file = format!("alignment_vs_context_{:.0}.svg", s * 100.0);
        write_atomic(&dir.join(&file), sweep_chart(results, s).render().as_bytes())?;
        let _ = writeln!(md, "![alignment vs context questions, {:.0}% split]({file})\n", s * 100.0);
        let mut ks: Vec<usize> = results.sweep.iter().filter(|e| e.train_fraction == s).map(|e| e.k).collect();
        ks.sort_unstable();
        ks.dedup();
        let _ = writeln!(
            md,
            "| Method ({:.0}% split) | {} |",
            s * 100.0,
            ks.iter().map(|k| format!("k={k}")).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(md, "|---|{}", "---|".repeat(ks.len()));
        for m in methods_in(&results.sweep) {
            let cells: Vec<String> = ks
                .iter()
                .map(|&k| {
                    find(&results.sweep, s, &m, k).map(|e| format!("{:.4}", e.mean)).unwrap_or_else(|| "–".into())
                })
                .collect();
            let _ = writeln!(md, "| {} | {} |", display_name(&m), cells.join(" | "));
        }
        md.push('\n');
    }

    let _ = writeln!(
        md,
        "## Per held-out group ({k} context questions, mean over the runs where the group was held out)\n"
    );
    let mut per_group: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for run in &results.runs {
        for score in run.scores.iter().filter(|s| s.k == k) {
            for (group, value) in &score.per_group {
                per_group.entry(group.clone()).or_default().entry(score.method.clone()).or_default().push(*value);
            }
        }
    }
    let gpo_methods: Vec<&String> = methods.iter().filter(|m| is_gpo(m)).collect();
    let _ = writeln!(
        md,
        "| Group | {} | {} |",
        methods.iter().map(|m| display_name(m)).collect::<Vec<_>>().join(" | "),
        gpo_methods.iter().map(|m| format!("{} − train mean", display_name(m))).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(md, "|---|{}", "---|".repeat(methods.len() + gpo_methods.len()));
    // Rows sorted by the gain of the last GPO method (the variants come after the faithful one).
    // (group, score of every method, gain of every GPO method over the train-group mean)
    type Row = (String, Vec<Option<f64>>, Vec<Option<f64>>);
    let mut rows: Vec<Row> = per_group
        .iter()
        .map(|(group, by_method)| {
            let value = |m: &str| by_method.get(m).and_then(|v| gpo_core::metrics::mean(v));
            let gains = gpo_methods.iter().map(|m| value(m).zip(value("train_mean")).map(|(g, t)| g - t)).collect();
            (group.clone(), methods.iter().map(|m| value(m)).collect(), gains)
        })
        .collect();
    let last_gain = |gains: &[Option<f64>]| gains.last().copied().flatten().unwrap_or(f64::NEG_INFINITY);
    rows.sort_by(|a, b| last_gain(&b.2).total_cmp(&last_gain(&a.2)));
    let cell = |v: &Option<f64>, signed: bool| match v {
        Some(v) if signed => format!("{v:+.4}"),
        Some(v) => format!("{v:.4}"),
        None => "–".into(),
    };
    for (group, values, gains) in rows {
        let values: Vec<String> = values.iter().map(|v| cell(v, false)).collect();
        let gains: Vec<String> = gains.iter().map(|v| cell(v, true)).collect();
        let _ = writeln!(md, "| {group} | {} | {} |", values.join(" | "), gains.join(" | "));
    }

    let (loss, validation) = training_charts(results);
    write_atomic(&dir.join("training_loss.svg"), loss.render().as_bytes())?;
    write_atomic(&dir.join("validation_curve.svg"), validation.render().as_bytes())?;
    let _ = writeln!(
        md,
        "\n## Training\n\n![training loss](training_loss.svg)\n\n![validation alignment](validation_curve.svg)\n"
    );
    let _ = writeln!(
        md,
        "| Split | Seed | Method | Updates | Kept update | Validation | Seconds |\n|---|---|---|---|---|---|---|"
    );
    for r in &results.runs {
        for m in &r.models {
            let _ = writeln!(
                md,
                "| {:.0}% | {} | {} | {} | {} | {} | {:.1} |",
                r.train_fraction * 100.0,
                r.seed,
                display_name(&m.method),
                m.curve.last().map(|p| p.step).unwrap_or(0),
                m.best_step,
                m.validation_score.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into()),
                m.train_seconds
            );
        }
    }
    write_atomic(&dir.join("report.md"), md.as_bytes())
}
