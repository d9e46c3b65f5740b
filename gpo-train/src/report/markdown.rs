//! `report.md` and its plots.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use super::svg::{LineChart, LineStyle, Marker, Reference, Series, XScale, okabe_ito, render_stack};
use super::{LlmRun, Results, RunResult, SummaryEntry, margins, prior_variants};
use crate::data::Metric;
use crate::fsutil::write_atomic;
use crate::method::{LmMethod, Method};
use crate::prior::PriorKind;
use crate::protocol::Protocol;
use crate::train::CurvePoint;

/// A baseline's line style (colour, dash, marker): Okabe–Ito colours that no GPO method gets,
/// each its own dash and marker; `None` for GPO and its variants.
fn baseline_style(method: &Method) -> Option<(&'static str, &'static str, Marker)> {
    Some(match method {
        Method::Uniform => (okabe_ito::BLACK, "1.5 3", Marker::Square),
        Method::TrainMean => (okabe_ito::ORANGE, "7 3", Marker::TriangleUp),
        // The new-questions baselines (never in a chart with the train-group mean).
        Method::NearestQuestion => (okabe_ito::ORANGE, "3 3 9 3", Marker::Circle),
        Method::RidgePopulation => (BROWN, "9 2 2 2 2 2", Marker::Square),
        Method::KnnGroups => (okabe_ito::BLUISH_GREEN, "7 3 1.5 3", Marker::Diamond),
        Method::RidgeRm => (okabe_ito::REDDISH_PURPLE, "12 3 1.5 3 1.5 3", Marker::TriangleDown),
        // The LLM baselines: dark colours outside the Okabe–Ito set, short dashes.
        Method::Lm(LmMethod::Base) => ("#01665e", "2 2", Marker::Circle),
        Method::Lm(LmMethod::Steered) => ("#762a83", "6 2", Marker::Diamond),
        Method::Lm(LmMethod::Fewshot) => ("#b2182b", "10 2 2 2 2 2", Marker::Square),
        Method::Lm(LmMethod::Sft) => ("#2166ac", "4 2 1 2", Marker::TriangleUp),
        Method::Lm(LmMethod::RewardModel) => ("#8073ac", "1 2", Marker::TriangleDown),
        Method::Lm(LmMethod::IncontextFt) => ("#e08214", "8 3", Marker::Circle),
        Method::Gpo | Method::Variant(_) | Method::Selected => return None,
    })
}
/// A colour outside the Okabe–Ito set, for the sixth baseline (the eight Okabe–Ito colours are
/// taken by the other baselines, GPO and its variants).
const BROWN: &str = "#8c510a";
/// Colours of the GPO variants (the faithful `gpo` is vermillion), in turn.
const VARIANT_COLOURS: [&str; 3] = [okabe_ito::BLUE, okabe_ito::SKY_BLUE, okabe_ito::YELLOW];
/// Dash patterns of the first GPO variants (the faithful `gpo` is solid).
const VARIANT_DASHES: [&str; 4] = ["14 4", "4 2", "10 2 3 2", "2 2 8 2"];
const VARIANT_MARKERS: [Marker; 3] = [Marker::Cross, Marker::Plus, Marker::Asterisk];

/// Every method's line style: the baselines and the faithful GPO fixed, the variants by their rank
/// in name order among `methods`. GPO methods and baselines never share a colour, and no two
/// methods share a dash pattern.
fn method_styles<'a>(methods: impl IntoIterator<Item = &'a Method>) -> BTreeMap<Method, LineStyle> {
    let mut methods: Vec<&Method> = methods.into_iter().collect();
    methods.sort_unstable();
    methods.dedup();
    let style = |colour: &str, dash: String, marker: Marker| LineStyle { colour: colour.into(), dash, marker };
    let mut styles = BTreeMap::new();
    let mut variants = 0;
    for m in methods {
        let s = if let Some((colour, dash, marker)) = baseline_style(m) {
            style(colour, dash.to_string(), marker)
        } else if *m == Method::Gpo {
            style(okabe_ito::VERMILLION, String::new(), Marker::Circle)
        } else {
            // The variants, then `selected_gpo` (not plotted), by rank.
            let i = variants;
            variants += 1;
            let dash = VARIANT_DASHES
                .get(i)
                .map(|d| d.to_string())
                .unwrap_or_else(|| format!("{} 3 1.5 3 1.5 3 1.5 3", 6 + 2 * i));
            let marker =
                if i < VARIANT_MARKERS.len() { VARIANT_MARKERS[i] } else { Marker::ALL[i % Marker::ALL.len()] };
            style(VARIANT_COLOURS[i % VARIANT_COLOURS.len()], dash, marker)
        };
        styles.insert(m.clone(), s);
    }
    styles
}

/// The styles of every method `results` names anywhere.
fn results_styles(results: &Results) -> BTreeMap<Method, LineStyle> {
    let variants: Vec<Method> = results.config.variants.keys().map(|v| Method::Variant(v.clone())).collect();
    let methods = results
        .summary
        .iter()
        .chain(&results.sweep)
        .map(|e| &e.method)
        .chain(results.runs.iter().flat_map(|r| r.scores.iter().map(|s| &s.method)))
        .chain(results.runs.iter().flat_map(|r| r.models.iter().map(|m| &m.method)))
        .chain(std::iter::once(&Method::Gpo))
        .chain(&variants);
    method_styles(methods)
}

/// The paper's published values (docs/original.md §8.1, read off the main figure, ±0.005) at the
/// 40/60/80% splits, Alpaca-7b embeddings.
fn paper_value(metric: Metric, method: &Method, split: f64) -> Option<f64> {
    let column = [0.4, 0.6, 0.8].iter().position(|s| (s - split).abs() < 1e-9)?;
    let row: [f64; 3] = match (metric, method) {
        (Metric::Wasserstein, Method::Uniform) => [0.823, 0.823, 0.823],
        (Metric::Wasserstein, Method::Gpo) => [0.919, 0.925, 0.945],
        (Metric::JensenShannon, Method::Uniform) => [0.662, 0.662, 0.662],
        (Metric::JensenShannon, Method::Gpo) => [0.798, 0.820, 0.798],
        // The LLM baselines: Alpaca-7b itself prompted (docs/original.md §8.1).
        (Metric::Wasserstein, Method::Lm(LmMethod::Base)) => [0.821, 0.822, 0.827],
        (Metric::Wasserstein, Method::Lm(LmMethod::Steered)) => [0.823, 0.826, 0.831],
        (Metric::Wasserstein, Method::Lm(LmMethod::Fewshot)) => [0.755, 0.753, 0.749],
        (Metric::Wasserstein, Method::Lm(LmMethod::Sft)) => [0.838, 0.840, 0.843],
        (Metric::Wasserstein, Method::Lm(LmMethod::RewardModel)) => [0.822, 0.830, 0.837],
        (Metric::Wasserstein, Method::Lm(LmMethod::IncontextFt)) => [0.869, 0.861, 0.863],
        (Metric::JensenShannon, Method::Lm(LmMethod::Base)) => [0.672, 0.667, 0.674],
        (Metric::JensenShannon, Method::Lm(LmMethod::Steered)) => [0.670, 0.667, 0.673],
        (Metric::JensenShannon, Method::Lm(LmMethod::Fewshot)) => [0.521, 0.499, 0.496],
        (Metric::JensenShannon, Method::Lm(LmMethod::Sft)) => [0.736, 0.734, 0.738],
        (Metric::JensenShannon, Method::Lm(LmMethod::RewardModel)) => [0.688, 0.682, 0.687],
        (Metric::JensenShannon, Method::Lm(LmMethod::IncontextFt)) => [0.709, 0.704, 0.720],
        _ => return None,
    };
    Some(row[column])
}

fn methods_in(entries: &[SummaryEntry]) -> Vec<Method> {
    let mut methods: Vec<Method> = Vec::new();
    for e in entries {
        if !methods.contains(&e.method) {
            methods.push(e.method.clone());
        }
    }
    // Baselines in their order, the LLM baselines, then GPO, then its variants by name.
    let rank = |m: &Method| {
        let n = Method::BASELINES.len() + LmMethod::ALL.len();
        let position = match m {
            Method::Gpo => n,
            Method::Variant(_) => n + 1,
            Method::Selected => n + 2,
            Method::Lm(lm) => Method::BASELINES.len() + LmMethod::ALL.iter().position(|l| l == lm).unwrap_or(0),
            baseline => Method::BASELINES.iter().position(|b| b == baseline).unwrap_or(n + 3),
        };
        (position, m.name())
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

fn find<'a>(entries: &'a [SummaryEntry], split: f64, method: &Method, k: usize) -> Option<&'a SummaryEntry> {
    entries.iter().find(|e| e.train_fraction == split && &e.method == method && e.k == k)
}

/// Alignment vs number of context questions, one line per method, one chart per split, with the
/// uniform prediction's level at the headline k as a reference line.
fn sweep_chart(results: &Results, protocol: Protocol, split: f64, styles: &BTreeMap<Method, LineStyle>) -> LineChart {
    let mut ks: Vec<usize> = results.sweep.iter().map(|e| e.k).collect();
    ks.sort_unstable();
    ks.dedup();
    let k = results.config.evaluation.context_questions;
    let uniform =
        find(&results.summary, split, &Method::Uniform, k).or_else(|| find(&results.sweep, split, &Method::Uniform, k));
    LineChart {
        title: match protocol {
            Protocol::Groups => {
                format!("{}: alignment vs context questions ({:.0}% meta-train groups)", results.dataset, split * 100.0)
            }
            Protocol::Questions => format!(
                "{}: new questions, alignment vs context questions ({:.0}% meta-train groups)",
                results.dataset,
                split * 100.0
            ),
        },
        x_label: "context questions per held-out group (log scale)".into(),
        y_label: "alignment (held-out groups)".into(),
        x_scale: XScale::Log1p,
        x_ticks: ks.iter().map(|&k| k as f64).collect(),
        // `selected_gpo` repeats one GPO method's line in each run: left out of the plot.
        series: methods_in(&results.sweep)
            .into_iter()
            .filter(|m| *m != Method::Selected)
            .map(|m| Series {
                name: m.display_name(),
                points: results
                    .sweep
                    .iter()
                    .filter(|e| e.method == m && e.train_fraction == split)
                    .map(|e| (e.k as f64, e.mean))
                    .collect(),
                style: styles.get(&m).cloned().unwrap_or_default(),
            })
            .filter(|s| !s.points.is_empty())
            .collect(),
        references: uniform.map(|e| Reference { label: Method::Uniform.name(), y: e.mean }).into_iter().collect(),
    }
}

/// One chart per (protocol, split), one line per GPO method: the mean over seeds of the points
/// `pick` takes from each run's curve, `(update, x, y)`, averaged per update (x is the update or
/// the CPU seconds spent up to it).
fn curve_charts(
    results: &Results,
    title: &str,
    (x_label, y_label): (&str, &str),
    styles: &BTreeMap<Method, LineStyle>,
    pick: impl Fn(&[CurvePoint]) -> Vec<(usize, f64, f64)>,
) -> Vec<LineChart> {
    // (protocol, split) → method → update → the seeds' (x, y); splits keyed by the bits of
    // non-negative f64s, which order as the numbers do.
    type Lines = BTreeMap<(Protocol, u64), BTreeMap<Method, BTreeMap<usize, Vec<(f64, f64)>>>>;
    let mut lines: Lines = BTreeMap::new();
    for run in &results.runs {
        for model in &run.models {
            let line = lines
                .entry((run.protocol, run.train_fraction.to_bits()))
                .or_default()
                .entry(model.method.clone())
                .or_default();
            for (step, x, y) in pick(&model.curve) {
                line.entry(step).or_default().push((x, y));
            }
        }
    }
    lines
        .into_iter()
        .map(|((protocol, split), by_method)| {
            let split = f64::from_bits(split);
            let mut methods: Vec<Method> = by_method.keys().cloned().collect();
            methods.sort_by_key(|m| (*m != Method::Gpo, m.name()));
            let series = methods
                .into_iter()
                .map(|method| Series {
                    name: method.display_name(),
                    points: by_method[&method]
                        .values()
                        .filter_map(|xy| {
                            let xs: Vec<f64> = xy.iter().map(|p| p.0).collect();
                            let ys: Vec<f64> = xy.iter().map(|p| p.1).collect();
                            Some((gpo_core::metrics::mean(&xs)?, gpo_core::metrics::mean(&ys)?))
                        })
                        .collect(),
                    style: styles.get(&method).cloned().unwrap_or_default(),
                })
                .filter(|s| !s.points.is_empty())
                .collect();
            let protocol_note = match protocol {
                Protocol::Groups => "",
                Protocol::Questions => ", new-questions protocol",
            };
            LineChart {
                title: format!("{}: {title} ({:.0}% meta-train groups{protocol_note})", results.dataset, split * 100.0),
                x_label: x_label.into(),
                y_label: y_label.into(),
                x_scale: XScale::Linear,
                x_ticks: Vec::new(),
                series,
                // No uniform reference: the runs record no uniform score on the validation data.
                references: Vec::new(),
            }
        })
        .collect()
}

/// The training plots, one chart per (protocol, split), mean over seeds: training loss over the
/// updates, validation alignment over the updates, and validation alignment over the CPU seconds
/// spent in updates.
fn training_charts(results: &Results, styles: &BTreeMap<Method, LineStyle>) -> [Vec<LineChart>; 3] {
    let loss = curve_charts(results, "training loss, mean over seeds", ("update", "loss"), styles, |curve| {
        // A running mean over ~2% of the run keeps the curve readable.
        let losses: Vec<(usize, f64)> = curve.iter().filter_map(|p| Some((p.step, p.loss?))).collect();
        let window = (losses.len() / 50).max(1);
        losses
            .chunks(window)
            .map(|c| {
                let step = c[c.len() - 1].0;
                (step, step as f64, c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64)
            })
            .collect()
    });
    let validation_label = "alignment (validation)";
    let validation =
        curve_charts(results, "validation alignment, mean over seeds", ("update", validation_label), styles, |curve| {
            curve.iter().filter_map(|p| Some((p.step, p.step as f64, p.validation?))).collect()
        });
    let seconds = curve_charts(
        results,
        "validation alignment vs CPU seconds of training, mean over seeds",
        ("CPU seconds spent in updates (one core)", validation_label),
        styles,
        |curve| curve.iter().filter_map(|p| Some((p.step, p.cpu_seconds, p.validation?))).collect(),
    );
    [loss, validation, seconds]
}

/// The section on what each prior-reading variant adds over its prior alone (empty when no
/// variant reads a prior).
fn margins_section(results: &Results, protocol: Protocol) -> String {
    let k = results.config.evaluation.context_questions;
    let entries = margins(&results.config, &results.runs);
    let variants = prior_variants(&results.config, protocol);
    let mut md = String::new();
    if variants.is_empty() {
        return md;
    }
    let _ = writeln!(md, "### What the transformer adds over its prior ({k} context questions)\n");
    let _ = writeln!(
        md,
        "A GPO variant that reads a population prior predicts a residual over it, so its prior alone is a \
         baseline of this report: `{}` for the train-group-mean prior (`{}` on new questions, where that prior \
         comes from the nearest answered questions), `{}` for the kNN prior (the variant's network with its \
         residual head switched off). **Margin**: for each seed, the variant's \
         score minus its prior's in the same run (same split, seed, test groups and contexts), averaged over \
         the seeds; ± is the population standard deviation (ddof 0, as in the tables above) over the seeds of \
         that paired difference, with five decimals as margins are small. The other columns are each \
         method's mean ± std over seeds.\n",
        Method::TrainMean,
        Method::NearestQuestion,
        Method::KnnGroups,
    );
    for (name, variant) in &results.config.variants {
        if let Some(PriorKind::KnnGroups { temperature }) = variant.model.prior
            && temperature != results.config.evaluation.knn_temperature
        {
            let _ = writeln!(
                md,
                "Note: {}'s kNN prior has temperature {temperature}, the `{}` baseline {}: that baseline is not \
                 exactly its prior alone.\n",
                Method::Variant(name.clone()).display_name(),
                Method::KnnGroups,
                results.config.evaluation.knn_temperature
            );
        }
    }
    let cell =
        |e: Option<&SummaryEntry>| e.map(|e| format!("{:.4} ± {:.4}", e.mean, e.std)).unwrap_or_else(|| "–".into());
    for &s in &splits_in(&results.summary) {
        let _ = writeln!(md, "{:.0}% meta-train groups:\n", s * 100.0);
        let _ = writeln!(md, "| Variant | Prior alone | Variant score | Prior score | Margin (paired) | Seeds |");
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for (method, prior) in &variants {
            let margin = entries.iter().find(|e| e.train_fraction == s && &e.method == method);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                method.display_name(),
                prior.display_name(),
                cell(find(&results.summary, s, method, k)),
                cell(find(&results.summary, s, prior, k)),
                margin.map(|e| format!("{:+.5} ± {:.5}", e.mean, e.std)).unwrap_or_else(|| "–".into()),
                margin.map(|e| e.seeds.to_string()).unwrap_or_else(|| "0".into()),
            );
        }
        md.push('\n');
    }
    md
}

/// The section on whether each method reads the context (`eval::context`), over `results`, which
/// holds one protocol's runs; empty for results written before it was measured.
fn context_section(results: &Results) -> String {
    let mut md = String::new();
    let k = results.config.evaluation.context_questions;
    let entries: Vec<(f64, &crate::report::ContextUse)> = results
        .runs
        .iter()
        .flat_map(|r| r.context_use.iter().filter(|c| c.k == k).map(move |c| (r.train_fraction, c)))
        .collect();
    if entries.is_empty() {
        return md;
    }
    let _ = writeln!(md, "### Does the context matter? ({k} context questions)\n");
    let _ = writeln!(
        md,
        "Measured on the held-out groups' episodes, mean ± std over seeds. **Random** and **related**: \
         alignment on up to {} targets per group, the same targets with the random draw of {k} context \
         questions and with each target's own {k} nearest questions of the context pool (what an app asking \
         about one question gives). **Swap TV**: the mean total variation by which predictions move when a \
         group is shown another held-out group's answers to its context questions; **swap drop**: how much \
         its alignment falls then. **Contrast**: over pairs of held-out groups, the mean total variation \
         between their predictions over that between their true answers (1: as different as the groups; 0: \
         one prediction for all), with the random context and with the related one. A method that reads no \
         answer has swap TV 0 and contrast 0.\n",
        crate::eval::context::RELATED_TARGETS
    );
    let stat =
        |values: Vec<f64>, digits: usize| match (gpo_core::metrics::mean(&values), gpo_core::metrics::std_dev(&values))
        {
            (Some(m), Some(s)) => format!("{m:.digits$} ± {s:.digits$}"),
            _ => "–".into(),
        };
    for s in splits_in(&results.summary) {
        let _ = writeln!(md, "{:.0}% meta-train groups:\n", s * 100.0);
        let _ = writeln!(
            md,
            "| Method | Random context | Related context | Swap TV | Swap drop | Contrast | Contrast (related) |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        let mut methods: Vec<&Method> = Vec::new();
        for (_, c) in entries.iter().filter(|(f, _)| *f == s) {
            if !methods.contains(&&c.method) {
                methods.push(&c.method);
            }
        }
        for m in methods {
            let of = |field: fn(&crate::report::ContextUse) -> Option<f64>| -> Vec<f64> {
                entries.iter().filter(|(f, c)| *f == s && &c.method == m).filter_map(|(_, c)| field(c)).collect()
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                m.display_name(),
                stat(of(|c| c.random), 4),
                stat(of(|c| c.related), 4),
                stat(of(|c| c.swap_tv), 4),
                stat(of(|c| c.swap_drop), 5),
                stat(of(|c| c.contrast), 3),
                stat(of(|c| c.related_contrast), 3),
            );
        }
        md.push('\n');
    }
    md
}

/// The rule for new questions each run selected (`results` holds one protocol's runs), beside the
/// default rule's score and the best score with options paired by position in the same selection.
fn rule_section(results: &Results) -> String {
    let mut md = String::new();
    let runs: Vec<&RunResult> = results.runs.iter().filter(|r| r.neighbour_rule.is_some()).collect();
    let Some(candidates) = runs.first().and_then(|r| r.neighbour_rule.as_ref()).map(|s| s.candidates.len()) else {
        return md;
    };
    let default = gpo_core::prior::NeighbourRule::default();
    let _ = writeln!(md, "### The rule for new questions\n");
    let _ = writeln!(
        md,
        "A question no meta-training group answered gets as prior the meta-training groups' answers to its \
         nearest answered questions with as many options. Each run selects how many, how they are weighted and \
         whether their options pair with the question's by position or by meaning among {candidates} candidates (`[nearest_questions]`) on its meta-training data alone: each seen \
         question's prior as a new question, from the other groups' answers, scored against each meta-training \
         group's own answer (one group and one question left out at a time). Every population prior of the run \
         uses the selected rule: the prior variants', `{}`'s and `{}`'s.\n",
        Method::NearestQuestion,
        Method::KnnGroups
    );
    let _ = writeln!(md, "| Split | Seed | Selected rule | Its score | Score of {default} | Best by position |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for r in runs {
        let Some(selection) = &r.neighbour_rule else { continue };
        let score_of = |rule| selection.candidates.iter().find(|c| c.rule == rule).map(|c| c.score);
        let cell = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.4}"));
        let by_position = (selection.candidates.iter())
            .filter(|c| c.rule.options == gpo_core::prior::OptionMatch::Position)
            .map(|c| c.score)
            .reduce(f64::max);
        let _ = writeln!(
            md,
            "| {:.0}% | {} | {} | {} | {} | {} |",
            r.train_fraction * 100.0,
            r.seed,
            selection.selected,
            cell(score_of(selection.selected)),
            cell(score_of(default)),
            cell(by_position),
        );
    }
    md.push('\n');
    md
}

/// The protocols `results` holds, in order (`groups` first).
fn protocols_in(results: &Results) -> Vec<Protocol> {
    let mut protocols: Vec<Protocol> = results.runs.iter().map(|r| r.protocol).collect();
    protocols.extend(results.summary.iter().map(|e| e.protocol));
    protocols.sort_unstable();
    protocols.dedup();
    protocols
}

/// `results` restricted to one protocol's runs and summary rows.
fn protocol_view(results: &Results, protocol: Protocol) -> Results {
    Results {
        runs: results.runs.iter().filter(|r| r.protocol == protocol).cloned().collect(),
        summary: results.summary.iter().filter(|e| e.protocol == protocol).cloned().collect(),
        sweep: results.sweep.iter().filter(|e| e.protocol == protocol).cloned().collect(),
        ..results.clone()
    }
}

/// The sections of one protocol (tables, margins, sweep plots, per-group table) over `results`,
/// which holds that protocol's runs only; `named` puts the protocol in the headings.
fn protocol_sections(
    results: &Results,
    protocol: Protocol,
    named: bool,
    styles: &BTreeMap<Method, LineStyle>,
    dir: &Path,
) -> std::io::Result<String> {
    let splits = splits_in(&results.summary);
    let methods = methods_in(&results.summary);
    let k = results.config.evaluation.context_questions;
    let heading = match (protocol, named) {
        (Protocol::Groups, false) => "Held-out groups".to_string(),
        (Protocol::Groups, true) => "Protocol `groups` (held-out groups, every question)".to_string(),
        (Protocol::Questions, _) => "Protocol `questions` (held-out groups on new questions)".to_string(),
    };
    // What the per-group table measures GPO against: the population's answer as this protocol
    // has it.
    let population = Method::prior_baseline(&PriorKind::TrainMean, protocol);
    let mut md = String::new();
    let _ = writeln!(md, "## {heading}: alignment ({k} context questions)\n");
    if protocol == Protocol::Questions {
        let held = results.runs.first().map_or(0, |r| r.new_questions.len());
        let _ = writeln!(
            md,
            "{held} of the {} questions ({:.0}%) are held out of meta-training, validation and every population \
             statistic; each held-out group shows {k} answers to the other questions and is scored on the held-out \
             ones. Only baselines that exist for a question nobody answered are run: `{nearest}` (the \
             train-group mean of the nearest answered questions in embedding space with as many options, by the \
             run's rule for new questions, below), `{ridge}` (ridge from option embedding to population \
             probability), `{knn}` (the kNN group weights with the same rule), `{rm}` and `{uniform}`. Models are \
             selected on validation groups scored on their own held-out questions.\n",
            results.n_questions,
            results.config.split.new_questions * 100.0,
            nearest = Method::NearestQuestion,
            ridge = Method::RidgePopulation,
            knn = Method::KnnGroups,
            rm = Method::RidgeRm,
            uniform = Method::Uniform,
        );
    }
    let mut header = String::from("| Method |");
    let mut rule = String::from("|---|");
    for s in &splits {
        let _ = write!(header, " {:.0}% (ours) | {:.0}% (paper) |", s * 100.0, s * 100.0);
        rule.push_str("---|---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for m in &methods {
        let _ = write!(md, "| {} |", m.display_name());
        for &s in &splits {
            match find(&results.summary, s, m, k) {
                Some(e) => {
                    let _ = write!(md, " {:.4} ± {:.4} |", e.mean, e.std);
                }
                None => md.push_str(" – |"),
            }
            match paper_value(results.metric, m, s).filter(|_| protocol == Protocol::Groups) {
                Some(v) => {
                    let _ = write!(md, " {v:.3} |");
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    let paper_data = match results.metric {
        Metric::Wasserstein => {
            "uses Pew-weighted answer distributions of 22 groups on the 500 most contentious questions; this run \
             uses its own embeddings ({dim}-d) and data ({groups} groups, {questions} questions; the bundled OpinionQA \
             data holds unweighted respondent counts, which differ from the weighted distributions by a mean total \
             variation of 0.038)"
        }
        Metric::JensenShannon => {
            "uses all 2,554 GlobalOpinionQA questions of its 14 countries; this run uses its own embeddings \
             ({dim}-d) and data ({groups} groups, {questions} questions: the bundled subset is the public partial \
             copies of the dataset, fixtures/DATA.md)"
        }
    };
    let paper_data = paper_data
        .replace("{dim}", &results.embedding_dim.to_string())
        .replace("{groups}", &results.n_groups.to_string())
        .replace("{questions}", &results.n_questions.to_string());
    let _ = writeln!(
        md,
        "\nPaper values: Alpaca-7b embeddings, read off the published figure (±0.005); the paper reports no \
         train-group-mean, kNN or ridge baseline. Differences in data: the paper embeds prompts with Alpaca-7b \
         (4096-d) and {paper_data}.\n"
    );

    md.push_str(&margins_section(results, protocol));
    md.push_str(&context_section(results));
    if protocol == Protocol::Questions {
        md.push_str(&rule_section(results));
    }

    let _ = writeln!(md, "## {heading}: alignment vs number of context questions\n");
    let _ = writeln!(
        md,
        "Every method has its own colour, dash pattern and marker; lines are labelled at their ends and \
         the legend is ordered by the value at the largest k. The grey dashed line is the uniform \
         prediction at {k} context questions.\n"
    );
    for &s in &splits {
        let file = match protocol {
            Protocol::Groups => format!("alignment_vs_context_{:.0}.svg", s * 100.0),
            Protocol::Questions => format!("alignment_vs_context_questions_{:.0}.svg", s * 100.0),
        };
        write_atomic(&dir.join(&file), sweep_chart(results, protocol, s, styles).render().as_bytes())?;
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
            let _ = writeln!(md, "| {} | {} |", m.display_name(), cells.join(" | "));
        }
        md.push('\n');
    }

    let _ = writeln!(
        md,
        "## {heading}: per held-out group ({k} context questions, mean over the runs where the group was held out)\n"
    );
    let mut per_group: BTreeMap<String, BTreeMap<Method, Vec<f64>>> = BTreeMap::new();
    for run in &results.runs {
        for score in run.scores.iter().filter(|s| s.k == k) {
            for (group, value) in &score.per_group {
                per_group.entry(group.clone()).or_default().entry(score.method.clone()).or_default().push(*value);
            }
        }
    }
    let gpo_methods: Vec<&Method> = methods.iter().filter(|m| m.is_gpo()).collect();
    let _ = writeln!(
        md,
        "| Group | {} | {} |",
        methods.iter().map(Method::display_name).collect::<Vec<_>>().join(" | "),
        gpo_methods
            .iter()
            .map(|m| format!("{} − {}", m.display_name(), population.display_name()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(md, "|---|{}", "---|".repeat(methods.len() + gpo_methods.len()));
    // Rows sorted by the gain of the last GPO method (the variants come after the faithful one).
    // (group, score of every method, gain of every GPO method over the train-group mean)
    type Row = (String, Vec<Option<f64>>, Vec<Option<f64>>);
    let mut rows: Vec<Row> = per_group
        .iter()
        .map(|(group, by_method)| {
            let value = |m: &Method| by_method.get(m).and_then(|v| gpo_core::metrics::mean(v));
            let gains = gpo_methods.iter().map(|m| value(m).zip(value(&population)).map(|(g, t)| g - t)).collect();
            (group.clone(), methods.iter().map(value).collect(), gains)
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

    Ok(md)
}

/// The LLM baselines' model, prompts and cost.
fn llm_section(results: &Results, llm: &LlmRun) -> String {
    let mut md = String::new();
    let k = results.config.evaluation.context_questions;
    let _ = writeln!(
        md,
        "## LLM baselines\n\n`{}` ({:?} prompts) answers every held-out group's target questions at k = {k}: \
         its next-token distribution over the option letters, normalised, is the prediction (docs/llm.md, \
         \"LLM baselines\", lists the prompts and the fixes to the original scripts). `{}` asks the question \
         alone (every group gets the same answer), `{}` asks it \"as if you are\" a member of the group, `{}` \
         after the group's answer distributions on its {k} context questions. Distinct prompts run once; a shared \
         prefix (a group's few-shot context) runs once per group. The per-group trained methods learn from the same {k} \
         answers, one LoRA adapter on the model's last block per held-out group, seed and context \
         (docs/llm.md, \"The trained LLM baselines\"): `{}` on the letter distribution of each context question's \
         prompt, `{}` with a score head on each option after the prompt, its scores softmax-normalised; `{}` is \
         one adapter per split and seed meta-trained on the meta-training groups' few-shot prompts, selected on the \
         validation groups', asked the held-out groups' few-shot prompts (when it runs, `{}`'s answers are read \
         off its pass over the same prompts: its seconds are the last block's only). For the trained methods \
         \"Distinct prompts run\" counts the prompts through the frozen blocks (once each), and the seconds include \
         training.\n",
        llm.model,
        llm.prompt,
        Method::Lm(LmMethod::Base),
        Method::Lm(LmMethod::Steered),
        Method::Lm(LmMethod::Fewshot),
        Method::Lm(LmMethod::Sft),
        Method::Lm(LmMethod::RewardModel),
        Method::Lm(LmMethod::IncontextFt),
        Method::Lm(LmMethod::Fewshot),
    );
    let _ = writeln!(
        md,
        "| Method | Prompts scored | Distinct prompts run | Tokens run | Seconds | Tokens/s | Threads |\n\
         |---|---|---|---|---|---|---|"
    );
    for m in &llm.methods {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {:.0} | {} |",
            m.method.display_name(),
            m.prompts_scored,
            m.prompts_run,
            m.tokens,
            m.seconds,
            m.tokens as f64 / m.seconds.max(1e-9),
            m.threads
        );
    }
    md.push('\n');
    md
}

/// Writes `report.md`, `alignment_vs_context_<split>.svg` (and
/// `alignment_vs_context_questions_<split>.svg` for the new-questions protocol),
/// `training_loss.svg`, `validation_curve.svg` and `validation_vs_cpu_seconds.svg` into `dir`.
pub fn write_report(results: &Results, dir: &Path) -> std::io::Result<()> {
    let styles = results_styles(results);
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
        match results.config.split.validation {
            crate::train::ValidationMode::Questions => "held-out questions of the meta-training groups",
            crate::train::ValidationMode::Groups => "held-out meta-training groups",
        },
    );

    if let Some(max) = results.config.evaluation.max_targets {
        let _ = writeln!(
            md,
            "Every method is scored on at most {max} target questions per held-out group (`max_targets`: the \
             same questions for every method, the first of the group's targets in a fixed order of the survey's \
             questions).\n"
        );
    }
    if let Some(llm) = &results.llm {
        md.push_str(&llm_section(results, llm));
    }

    let protocols = protocols_in(results);
    for &protocol in &protocols {
        let view = protocol_view(results, protocol);
        md.push_str(&protocol_sections(&view, protocol, protocols.len() > 1, &styles, dir)?);
    }

    let [loss, validation, seconds] = training_charts(results, &styles);
    write_atomic(&dir.join("training_loss.svg"), render_stack(&loss).as_bytes())?;
    write_atomic(&dir.join("validation_curve.svg"), render_stack(&validation).as_bytes())?;
    write_atomic(&dir.join("validation_vs_cpu_seconds.svg"), render_stack(&seconds).as_bytes())?;
    let _ = writeln!(
        md,
        "\n## Training\n\n![training loss](training_loss.svg)\n\n![validation alignment](validation_curve.svg)\n\n\
         Validation alignment against the CPU seconds each run spent in its updates (the thread's CPU clock; \
         validation and checkpoints not counted), so that recipes are compared at equal cost:\n\n\
         ![validation alignment vs CPU seconds](validation_vs_cpu_seconds.svg)\n"
    );
    let _ = writeln!(
        md,
        "| Protocol | Split | Seed | Method | Updates | Kept update | Validation | CPU seconds | Wall seconds |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for r in &results.runs {
        for m in &r.models {
            let _ = writeln!(
                md,
                "| {} | {:.0}% | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
                r.protocol.name(),
                r.train_fraction * 100.0,
                r.seed,
                m.method.display_name(),
                m.curve.last().map(|p| p.step).unwrap_or(0),
                m.best_step,
                m.validation_score.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into()),
                m.curve.last().map_or(0.0, |p| p.cpu_seconds),
                m.train_seconds
            );
        }
    }
    write_atomic(&dir.join("report.md"), md.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::svg::testing::{attribute, check_well_formed, elements, texts};
    use super::super::{MarginEntry, MethodScore, RunResult, TrainedModel, summarise};
    use super::*;
    use crate::config::RunConfig;

    const CONFIG: &str = r#"
name = "tiny"

[data]
format = "synthetic"
groups = 10
questions = 40
dim = 8
clusters = 2
sharpness = 4.0
seed = 1

[evaluation]
splits = [0.4, 0.8]
seeds = [0, 1, 2, 3]
context_questions = 20
sweep = [0, 5, 20, 50]
knn_temperature = 0.02

[variants.knn.model]
prior = { kind = "knn_groups", temperature = 0.02 }

[variants.mean.model]
prior = { kind = "train_mean" }
"#;

    /// kNN groups at k = 20, per seed (dyadic, so that every difference below is exact).
    const KNN: [f64; 4] = [0.90625, 0.9375, 0.921875, 0.953125];
    /// gpo_knn − knn_groups per seed: mean 1/64, population std 1/128.
    const KNN_GAIN: [f64; 4] = [1.0 / 128.0, 3.0 / 128.0, 1.0 / 128.0, 3.0 / 128.0];

    /// Every method's micro score in one (split, seed) at k. As in the real runs, GPO is the
    /// uniform prediction and gpo_mean its train-mean prior: two pairs of identical lines.
    fn score(method: &str, split: f64, seed: usize, k: usize) -> f64 {
        let shift = if split > 0.5 { 1.0 / 64.0 } else { 0.0 };
        let train_mean = 0.875 + seed as f64 / 128.0 + shift;
        let knn = if k == 0 { train_mean } else { KNN[seed] + shift - (20 - k.min(20)) as f64 / 1024.0 };
        match method {
            "uniform" | "gpo" => 0.8125 + shift,
            "train_mean" | "gpo_mean" => train_mean,
            "knn_groups" => knn,
            "gpo_knn" if k == 0 => knn,
            "gpo_knn" => knn + KNN_GAIN[seed],
            "ridge_rm" => 0.8125 + shift + 1.0 / 256.0,
            _ => unreachable!(),
        }
    }

    const METHODS: [&str; 7] = ["uniform", "train_mean", "knn_groups", "ridge_rm", "gpo", "gpo_knn", "gpo_mean"];

    /// The method a result name stands for.
    fn method(name: &str) -> Method {
        Method::parse(name).unwrap_or_else(|| panic!("no method `{name}`"))
    }

    fn methods() -> Vec<Method> {
        METHODS.map(method).to_vec()
    }

    fn curve(steps: &[usize], validation: impl Fn(usize) -> f64) -> Vec<CurvePoint> {
        steps
            .iter()
            .map(|&step| CurvePoint {
                step,
                loss: (step > 0).then(|| 2.0 / (1.0 + step as f64)),
                validation: Some(validation(step)),
                cpu_seconds: step as f64 * 0.5,
            })
            .collect()
    }

    fn results() -> Results {
        let config: RunConfig = toml::from_str(CONFIG).unwrap();
        config.validate().unwrap();
        let mut runs = Vec::new();
        for &split in &config.evaluation.splits {
            for (seed, &seed_id) in config.evaluation.seeds.iter().enumerate() {
                let scores = config
                    .evaluation
                    .context_sizes()
                    .into_iter()
                    .flat_map(|k| {
                        METHODS.iter().map(move |m| {
                            let v = score(m, split, seed, k);
                            MethodScore {
                                method: method(m),
                                k,
                                micro: Some(v),
                                macro_average: Some(v),
                                per_group: BTreeMap::from([("g1".to_string(), v)]),
                            }
                        })
                    })
                    .collect();
                let model = |name: &str, curve: Vec<CurvePoint>| TrainedModel {
                    method: method(name),
                    best_step: curve
                        .iter()
                        .max_by(|a, b| a.validation.unwrap().total_cmp(&b.validation.unwrap()))
                        .unwrap()
                        .step,
                    validation_score: curve.iter().filter_map(|p| p.validation).reduce(f64::max),
                    train_seconds: 1.0,
                    curve,
                };
                let s = seed as f64 / 1000.0;
                runs.push(RunResult {
                    protocol: Protocol::Groups,
                    train_fraction: split,
                    seed: seed_id,
                    train_groups: vec!["g2".into(), "g3".into()],
                    new_questions: Vec::new(),
                    no_prior_questions: Vec::new(),
                    validation_groups: vec!["g4".into()],
                    test_groups: vec!["g1".into()],
                    models: vec![
                        model("gpo", curve(&[0, 15, 30], |t| 0.81 + s + t as f64 / 3000.0)),
                        model("gpo_knn", curve(&[0, 25, 50, 75, 100], |t| 0.95 + s + t as f64 / 20000.0)),
                        model("gpo_mean", curve(&[0, 25, 50], |_| 0.94 + s)),
                    ],
                    selected: None,
                    scores,
                    context_use: Vec::new(),
                    neighbour_rule: None,
                });
            }
        }
        let sweep = summarise(&runs);
        let summary = sweep.iter().filter(|e| e.k == config.evaluation.context_questions).cloned().collect();
        Results {
            name: "tiny".into(),
            dataset: "synthetic".into(),
            metric: Metric::Wasserstein,
            n_groups: 10,
            n_questions: 40,
            embedding_dim: 8,
            config,
            runs,
            summary,
            sweep,
            llm: None,
        }
    }

    #[test]
    fn every_method_has_its_own_style() {
        let mut names = methods();
        names.extend((0..12).map(|i| Method::Variant(format!("v{i:02}"))));
        // Not plotted, but styled like any method.
        names.push(Method::Selected);
        names.extend(LmMethod::ALL.map(Method::Lm));
        let styles = method_styles(&names);
        assert_eq!(styles.len(), names.len());
        let pairs: BTreeSet<(&str, &str)> = styles.values().map(|s| (s.colour.as_str(), s.dash.as_str())).collect();
        assert_eq!(pairs.len(), names.len(), "a (colour, dash) pair per method");
        let dashes: BTreeSet<&str> = styles.values().map(|s| s.dash.as_str()).collect();
        assert_eq!(dashes.len(), names.len(), "a dash pattern per method");
        let colours = |gpo: bool| -> BTreeSet<&str> {
            styles.iter().filter(|(m, _)| m.is_gpo() == gpo).map(|(_, s)| s.colour.as_str()).collect()
        };
        assert!(colours(true).is_disjoint(&colours(false)), "GPO methods and baselines share no colour");
        // The seven methods of a run: seven colours and seven markers, none of them grey.
        let seven = method_styles(&methods());
        assert_eq!(seven.values().map(|s| &s.colour).collect::<BTreeSet<_>>().len(), 7);
        assert_eq!(seven.values().map(|s| s.marker).collect::<BTreeSet<_>>().len(), 7);
        assert!(seven.values().all(|s| s.colour != crate::report::svg::REFERENCE_COLOUR));
        // Fixed by name, whatever order the names come in.
        assert_eq!(method_styles(methods().iter().rev()), seven);
        assert_eq!(
            seven[&Method::Gpo],
            LineStyle { colour: okabe_ito::VERMILLION.into(), dash: String::new(), marker: Marker::Circle }
        );
    }

    #[test]
    fn sweep_plot_tells_every_line_apart() {
        let results = results();
        let styles = results_styles(&results);
        for split in [0.4, 0.8] {
            let chart = sweep_chart(&results, Protocol::Groups, split, &styles);
            let svg = chart.render();
            check_well_formed(&svg);
            let lines = elements(&svg, "polyline", "line");
            assert_eq!(lines.len(), METHODS.len());
            let pairs: BTreeSet<(&str, Option<&str>)> =
                lines.iter().map(|l| (attribute(l, "stroke").unwrap(), attribute(l, "stroke-dasharray"))).collect();
            assert_eq!(pairs.len(), METHODS.len(), "distinct (colour, dash) per line");
            // The uniform level at k = 20, grey and dashed, labelled.
            let references = elements(&svg, "line", "reference");
            assert_eq!(references.len(), 1);
            assert_eq!(attribute(references[0], "stroke"), Some(crate::report::svg::REFERENCE_COLOUR));
            assert!(attribute(references[0], "stroke-dasharray").is_some());
            let labels = texts(&svg, "end-label");
            assert!(labels.iter().any(|l| l == "uniform"));
            for m in methods() {
                assert!(labels.contains(&m.display_name()), "{m} has no end label: {labels:?}");
            }
            // End labels (one column here: every line ends at k = 50) never overlap.
            let mut ys: Vec<f64> = elements(&svg, "text", "end-label")
                .iter()
                .map(|t| attribute(t, "y").unwrap().parse().unwrap())
                .collect();
            ys.sort_by(f64::total_cmp);
            assert!(ys.windows(2).all(|w| w[1] - w[0] >= 13.8), "{ys:?}");
            // Legend: by the value at the largest k, highest first.
            let final_value = |m: &Method| find(&results.sweep, split, m, 50).unwrap().mean;
            let mut expected = methods_in(&results.sweep);
            expected.sort_by(|a, b| final_value(b).total_cmp(&final_value(a)));
            let legend = texts(&svg, "legend-label");
            assert_eq!(legend, expected.iter().map(Method::display_name).collect::<Vec<_>>());
            let values: Vec<f64> = texts(&svg, "legend-value").iter().map(|v| v.parse().unwrap()).collect();
            assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
        }
    }

    #[test]
    fn validation_plot_has_a_panel_per_split_with_distinct_lines() {
        let results = results();
        let [loss, validation, seconds] = training_charts(&results, &results_styles(&results));
        assert_eq!((loss.len(), validation.len(), seconds.len()), (2, 2, 2));
        // CPU seconds on the x axis: the last point of GPO (knn) is at 100 updates × 0.5 s.
        let svg = seconds[0].render();
        assert!(svg.contains("CPU seconds"), "{svg}");
        let svg = render_stack(&validation);
        check_well_formed(&svg);
        assert_eq!(elements(&svg, "g", "chart").len(), 2);
        for chart in &validation {
            let svg = chart.render();
            let lines = elements(&svg, "polyline", "line");
            assert_eq!(lines.len(), 3);
            let colours: BTreeSet<&str> = lines.iter().map(|l| attribute(l, "stroke").unwrap()).collect();
            assert_eq!(colours.len(), 3);
            assert_eq!(texts(&svg, "legend-label"), ["GPO (knn)", "GPO (mean)", "GPO"]);
            assert_eq!(texts(&svg, "end-label").len(), 3);
            // No uniform validation score is recorded: no reference line.
            assert!(elements(&svg, "line", "reference").is_empty());
        }
    }

    #[test]
    fn margins_are_paired_per_seed_differences() {
        let results = results();
        let margins = margins(&results.config, &results.runs);
        let entry = |split: f64, variant: &str, prior: &str, mean: f64, std: f64| MarginEntry {
            protocol: Protocol::Groups,
            train_fraction: split,
            method: method(variant),
            prior_method: method(prior),
            k: 20,
            mean,
            std,
            seeds: 4,
        };
        // gpo_knn − knn_groups per seed: 1/128, 3/128, 1/128, 3/128 → mean 1/64, std 1/128.
        assert_eq!(
            margins,
            [
                entry(0.4, "gpo_knn", "knn_groups", 0.015625, 0.0078125),
                entry(0.4, "gpo_mean", "train_mean", 0.0, 0.0),
                entry(0.8, "gpo_knn", "knn_groups", 0.015625, 0.0078125),
                entry(0.8, "gpo_mean", "train_mean", 0.0, 0.0),
            ]
        );
        // The unpaired spread would be larger: the seeds differ far more than the differences.
        let knn = find(&results.summary, 0.4, &Method::KnnGroups, 20).unwrap();
        assert!(knn.std > 0.0078125);

        let md = margins_section(&results, Protocol::Groups);
        assert!(md.contains("population standard deviation"));
        assert!(
            md.contains("| GPO (knn) | kNN groups | 0.9453 ± 0.0247 | 0.9297 ± 0.0175 | +0.01562 ± 0.00781 | 4 |"),
            "{md}"
        );
        assert!(md.contains("| GPO (mean) | Train-group mean |"));
        assert!(md.contains("| +0.00000 ± 0.00000 | 4 |"));
        assert!(!md.contains("Note:"));

        // A variant without a prior has no margin; a mismatched kNN temperature is pointed out.
        let mut results = results;
        results.config.variants.get_mut("mean").unwrap().model.prior = None;
        results.config.variants.get_mut("knn").unwrap().model.prior = Some(PriorKind::KnnGroups { temperature: 0.05 });
        let margins = super::margins(&results.config, &results.runs);
        assert_eq!(margins.iter().map(|m| m.method.name()).collect::<Vec<_>>(), ["gpo_knn", "gpo_knn"]);
        assert!(
            margins_section(&results, Protocol::Groups).contains("Note: GPO (knn)'s kNN prior has temperature 0.05")
        );
        results.config.variants.clear();
        assert_eq!(margins_section(&results, Protocol::Groups), "");
    }

    #[test]
    fn results_json_gains_margins_and_keeps_its_keys() {
        let results = results();
        let json = serde_json::to_value(&results).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = [
            "name",
            "dataset",
            "metric",
            "n_groups",
            "n_questions",
            "embedding_dim",
            "config",
            "runs",
            "summary",
            "sweep",
            "margins",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["summary"], serde_json::to_value(&results.summary).unwrap());
        assert_eq!(json["runs"], serde_json::to_value(&results.runs).unwrap());
        assert_eq!(json["margins"], serde_json::to_value(margins(&results.config, &results.runs)).unwrap());
        assert_eq!(
            json["margins"][0],
            serde_json::json!({"protocol": "groups", "train_fraction": 0.4, "method": "gpo_knn", "prior_method": "knn_groups",
                "k": 20, "mean": 0.015625, "std": 0.0078125, "seeds": 4})
        );
        let back: Results = serde_json::from_value(json).unwrap();
        assert_eq!(back, results);
    }

    #[test]
    fn a_protocol_field_on_scores_and_summary_rows_does_not_break_the_report() {
        let mut json = serde_json::to_value(results()).unwrap();
        for key in ["summary", "sweep"] {
            for row in json[key].as_array_mut().unwrap() {
                row["protocol"] = "groups".into();
            }
        }
        for run in json["runs"].as_array_mut().unwrap() {
            for score in run["scores"].as_array_mut().unwrap() {
                score["protocol"] = "questions".into();
            }
        }
        let results: Results = serde_json::from_value(json).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_report(&results, dir.path()).unwrap();
        assert!(std::fs::read_to_string(dir.path().join("report.md")).unwrap().contains("+0.01562 ± 0.00781"));
    }

    /// Writes the whole report; `GPO_REPORT_EXAMPLE=<dir>` keeps it there to look at.
    #[test]
    fn writes_the_report_and_its_plots() {
        let results = results();
        let temp = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("GPO_REPORT_EXAMPLE").map(std::path::PathBuf::from);
        let dir = dir.as_deref().unwrap_or(temp.path());
        std::fs::create_dir_all(dir).unwrap();
        write_report(&results, dir).unwrap();
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(md.contains("### What the transformer adds over its prior (20 context questions)"));
        assert!(!md.contains("Protocol `"), "one protocol: no protocol headings");
        for file in [
            "alignment_vs_context_40.svg",
            "alignment_vs_context_80.svg",
            "training_loss.svg",
            "validation_curve.svg",
            "validation_vs_cpu_seconds.svg",
        ] {
            assert!(md.contains(file), "{file} not in report.md");
            check_well_formed(&std::fs::read_to_string(dir.join(file)).unwrap());
        }
    }

    /// The runs of `results()` again under the new-questions protocol, where `nearest_question`
    /// and `ridge_population` replace `train_mean` (gpo_mean's prior alone is then
    /// `nearest_question`), scored 1/32 lower.
    fn results_with_questions() -> Results {
        let mut results = results();
        let rename = |m: &Method| match m {
            Method::TrainMean => Method::NearestQuestion,
            other => other.clone(),
        };
        let mut questions: Vec<RunResult> = results.runs.clone();
        for run in &mut questions {
            run.protocol = Protocol::Questions;
            run.new_questions = vec!["q7".into(), "q9".into()];
            for score in &mut run.scores {
                score.method = rename(&score.method);
                score.micro = score.micro.map(|v| v - 1.0 / 32.0);
            }
            let extra: Vec<MethodScore> = run
                .scores
                .iter()
                .filter(|s| s.method == Method::RidgeRm)
                .map(|s| MethodScore { method: Method::RidgePopulation, ..s.clone() })
                .collect();
            run.scores.extend(extra);
        }
        results.runs.extend(questions);
        results.sweep = summarise(&results.runs);
        results.summary = results.sweep.iter().filter(|e| e.k == 20).cloned().collect();
        results
    }

    #[test]
    fn both_protocols_are_summarised_reported_and_plotted_apart() {
        let results = results_with_questions();
        // Summary rows carry their protocol; the same (split, method, k) exists under both.
        let row = |p: Protocol, m: &str| {
            results.summary.iter().find(|e| e.protocol == p && e.train_fraction == 0.4 && e.method.name() == m).unwrap()
        };
        assert!((row(Protocol::Groups, "gpo").mean - row(Protocol::Questions, "gpo").mean - 1.0 / 32.0).abs() < 1e-12);
        assert!(results.summary.iter().all(|e| e.seeds == 4));
        let json = serde_json::to_value(&results).unwrap();
        assert_eq!(json["summary"].as_array().unwrap().iter().filter(|r| r["protocol"] == "questions").count(), 2 * 8);
        // Margins per protocol: on new questions gpo_mean's prior alone is nearest_question.
        let margins = margins(&results.config, &results.runs);
        assert_eq!(margins.len(), 8);
        let mean_margin =
            margins.iter().find(|m| m.protocol == Protocol::Questions && m.method.name() == "gpo_mean").unwrap();
        assert_eq!(mean_margin.prior_method, Method::NearestQuestion);
        assert_eq!((mean_margin.mean, mean_margin.seeds), (0.0, 4));

        let dir = tempfile::tempdir().unwrap();
        write_report(&results, dir.path()).unwrap();
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        let groups = md.find("## Protocol `groups`").expect("a groups section");
        let questions = md.find("## Protocol `questions`").expect("a questions section");
        assert!(groups < questions);
        let (groups_part, questions_part) = md[..md.find("## Training").unwrap()].split_at(questions);
        assert!(groups_part.contains("| Train-group mean |") && !groups_part.contains("Nearest questions' mean"));
        assert!(
            questions_part.contains("| Nearest questions' mean |") && !questions_part.contains("| Train-group mean |")
        );
        assert!(questions_part.contains("| Ridge population model |"));
        assert!(questions_part.contains("2 of the 40 questions"), "{questions_part}");
        for file in ["alignment_vs_context_questions_40.svg", "alignment_vs_context_questions_80.svg"] {
            assert!(questions_part.contains(file), "{file}");
            let svg = std::fs::read_to_string(dir.path().join(file)).unwrap();
            check_well_formed(&svg);
            assert_eq!(elements(&svg, "polyline", "line").len(), 8);
            assert!(svg.contains("new questions"));
        }
        // Training plots: a panel per (protocol, split).
        let validation = std::fs::read_to_string(dir.path().join("validation_curve.svg")).unwrap();
        assert_eq!(elements(&validation, "g", "chart").len(), 4);
        assert!(md.contains("| questions | 80% | 3 | GPO (knn) | 100 | 100 |"), "{md}");
    }
}
