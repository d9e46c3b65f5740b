//! Shared helpers for gpo-core's integration tests.
#![allow(dead_code)]

use burn_ndarray::NdArray;
use gpo_core::{Episode, Gpo, GpoConfig, Question as Q};

pub type B = NdArray<f32>;
pub const DIM_X: usize = 6;

/// A small random model (seeded).
pub fn model(seed: u64) -> (GpoConfig, Gpo<B>) {
    let config = GpoConfig::new(DIM_X).with_d_model(16).with_d_ff(24).with_n_layers(2);
    let model = config.init_seeded::<B>(&Default::default(), seed).unwrap();
    (config, model)
}

/// Deterministic pseudo-random numbers (SplitMix64), so tests need no RNG crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| (self.next_f32() + self.next_f32() + self.next_f32() - 1.5) * 2.0).collect()
    }

    pub fn distribution(&mut self, k: usize) -> Vec<f32> {
        let raw: Vec<f32> = (0..k).map(|_| self.next_f32() + 0.01).collect();
        let sum: f32 = raw.iter().sum();
        raw.iter().map(|v| v / sum).collect()
    }
}

/// A question: option embeddings (`options × DIM_X`) and a distribution.
#[derive(Clone)]
pub struct Question {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

pub fn questions(rng: &mut Rng, options: &[usize]) -> Vec<Question> {
    options.iter().map(|&k| Question { x: rng.normal_vec(k * DIM_X), y: rng.distribution(k) }).collect()
}

pub fn episode(context: &[Question], targets: &[Question]) -> Episode {
    let mut e = Episode::new(DIM_X).unwrap();
    for q in context {
        e.push_context(Q::new(&q.x).answer(&q.y)).unwrap();
    }
    for q in targets {
        e.push_target(Q::new(&q.x).answer(&q.y)).unwrap();
    }
    e
}

/// The predicted distribution of every target question of every episode of `batch`.
pub fn predict_batch(model: &Gpo<B>, batch: &gpo_core::GpoBatch<B>) -> Vec<Vec<Vec<f32>>> {
    let mean = model.forward(batch).unwrap().mean;
    let n_target = mean.dims()[1];
    let values: Vec<f32> = mean.into_data().to_vec().unwrap();
    batch
        .target_options()
        .iter()
        .enumerate()
        .map(|(e, options)| {
            let mut slot = e * n_target;
            options
                .iter()
                .map(|&k| {
                    slot += k;
                    values[slot - k..slot].to_vec()
                })
                .collect()
        })
        .collect()
}

/// The largest absolute difference between two equally long sequences of numbers (f32 or f64,
/// widened to f64): every closeness check of these tests, with its own stated tolerance.
pub fn max_abs_diff<X: Copy + Into<f64>, Y: Copy + Into<f64>>(a: &[X], b: &[Y]) -> f64 {
    assert_eq!(a.len(), b.len(), "sequences of different lengths");
    a.iter().zip(b).map(|(&x, &y)| (x.into() - y.into()).abs()).fold(0.0, f64::max)
}

/// [`max_abs_diff`] over per-question rows (the rows must have the same lengths).
pub fn max_abs_diff_rows<X: Copy + Into<f64>, Y: Copy + Into<f64>>(a: &[Vec<X>], b: &[Vec<Y>]) -> f64 {
    assert_eq!(a.len(), b.len(), "different numbers of rows");
    a.iter().zip(b).map(|(x, y)| max_abs_diff(x, y)).fold(0.0, f64::max)
}
