//! Synthetic surveys with planted group structure, for tests and benchmarks: each group has a
//! hidden preference vector, and its answer to a question is `softmax(β · u_g · x_option)` over the
//! question's option embeddings. Groups come in a few clusters, so a group's context answers
//! reveal which preferences it has.

use std::collections::BTreeMap;

use gpo_core::rng::SplitMix64;

use crate::data::{Group, Metric, Question, Survey};
use crate::task::EmbeddedSurvey;

/// Shape of a synthetic survey.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticSpec {
    /// Number of groups.
    pub groups: usize,
    /// Number of questions.
    pub questions: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Number of group clusters.
    pub clusters: usize,
    /// Sharpness of the answer distributions.
    pub sharpness: f64,
    /// Seed.
    pub seed: u64,
}

fn gaussian(rng: &mut SplitMix64) -> f64 {
    // Box–Muller; 1 − u keeps the log finite.
    let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn unit_vector(rng: &mut SplitMix64, dim: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..dim).map(|_| gaussian(rng)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / norm).collect()
}

/// Builds the survey: 2–5 options per question, ordinals 1..K, Wasserstein metric.
pub fn synthetic_survey(spec: SyntheticSpec) -> EmbeddedSurvey {
    let mut rng = SplitMix64::new(spec.seed);
    // Clusters come in opposed pairs (u, −u), so that the population mean is uninformative and
    // only a group's own context tells which way it leans.
    let mut centres: Vec<Vec<f64>> = Vec::new();
    for c in 0..spec.clusters.max(1) {
        let centre = if c % 2 == 1 {
            centres[c - 1].iter().map(|v: &f64| -v).collect()
        } else {
            unit_vector(&mut rng, spec.dim)
        };
        centres.push(centre);
    }
    let mut questions = Vec::new();
    let mut embeddings = Vec::new();
    for q in 0..spec.questions {
        let k = rng.range_inclusive(2, 5);
        let block: Vec<Vec<f64>> = (0..k).map(|_| unit_vector(&mut rng, spec.dim)).collect();
        embeddings.push(block.iter().flatten().map(|&v| v as f32).collect::<Vec<f32>>());
        questions.push((
            Question {
                key: format!("Q{q:04}"),
                text: format!("Synthetic question {q}"),
                options: (0..k).map(|i| format!("option {i}")).collect(),
                ordinal: (1..=k).map(|i| i as f64).collect(),
            },
            block,
        ));
    }
    let groups = (0..spec.groups)
        .map(|g| {
            let centre = &centres[g % centres.len()];
            let noise = unit_vector(&mut rng, spec.dim);
            let preference: Vec<f64> = centre.iter().zip(&noise).map(|(c, n)| c + 0.3 * n).collect();
            let answers: BTreeMap<usize, Vec<f64>> = questions
                .iter()
                .enumerate()
                .map(|(qi, (_, block))| {
                    let logits: Vec<f64> = block
                        .iter()
                        .map(|x| spec.sharpness * x.iter().zip(&preference).map(|(a, b)| a * b).sum::<f64>())
                        .collect();
                    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                    let sum: f64 = exp.iter().sum();
                    (qi, exp.into_iter().map(|e| e / sum).collect())
                })
                .collect();
            Group { name: format!("group {g}"), attribute: format!("cluster {}", g % centres.len()), answers }
        })
        .collect();
    let survey = Survey {
        name: "synthetic".into(),
        metric: Metric::Wasserstein,
        questions: questions.into_iter().map(|(q, _)| q).collect(),
        groups,
    };
    // Every block is built with `k × dim` values, so this cannot fail.
    EmbeddedSurvey { survey, embeddings, dim: spec.dim }
}
