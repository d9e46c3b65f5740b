//! Forward pass and loss against the original PyTorch network (fixtures/core/parity.safetensors,
//! made by tools/make_parity_fixture.py in float64). Tolerance: 1e-5 absolute.

use crate::common;
use burn_ndarray::NdArray;
use gpo_core::weights::{NamedTensor, load_named_tensors};
use gpo_core::{Episode, GpoBatch, GpoConfig, Question};
use safetensors::SafeTensors;
use serde::Deserialize;

type B = NdArray<f32>;
const TOLERANCE: f32 = 1e-5;

#[derive(Deserialize)]
struct Layout {
    context_options: Vec<usize>,
    target_options: Vec<usize>,
}

fn floats(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (view.shape().to_vec(), values)
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    let d = common::max_abs_diff(got, want);
    assert!(d <= f64::from(TOLERANCE), "{what}: differs from PyTorch by {d}: got {got:?}, PyTorch {want:?}");
}

#[test]
fn forward_and_loss_match_pytorch() {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/core/parity.safetensors")).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let config: GpoConfig = serde_json::from_str(&meta["config"]).unwrap();
    let layouts: Vec<Vec<Layout>> = serde_json::from_str(&meta["layout"]).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();

    let weights: Vec<NamedTensor> = st
        .names()
        .into_iter()
        .filter(|n| !n.starts_with("case"))
        .map(|name| {
            let (shape, values) = floats(&st, name);
            NamedTensor { name: name.to_string(), shape, values }
        })
        .collect();
    let device = Default::default();
    let model = load_named_tensors(config.init::<B>(&device).unwrap(), &weights).unwrap();

    for (case, layout) in layouts.iter().enumerate() {
        let mut episodes = Vec::new();
        for (e, l) in layout.iter().enumerate() {
            let prefix = format!("case{case}.ep{e}");
            let (_, cx) = floats(&st, &format!("{prefix}.context_x"));
            let (_, cy) = floats(&st, &format!("{prefix}.context_y"));
            let (_, tx) = floats(&st, &format!("{prefix}.target_x"));
            let (_, ty) = floats(&st, &format!("{prefix}.target_y"));
            let mut episode = Episode::new(config.dim_x).unwrap();
            let (mut row, mut x) = (0, 0);
            for &k in &l.context_options {
                episode.push_context(Question::new(&cx[x..x + k * config.dim_x]).answer(&cy[row..row + k])).unwrap();
                row += k;
                x += k * config.dim_x;
            }
            let (mut row, mut x) = (0, 0);
            for &k in &l.target_options {
                episode.push_target(Question::new(&tx[x..x + k * config.dim_x]).answer(&ty[row..row + k])).unwrap();
                row += k;
                x += k * config.dim_x;
            }
            episodes.push(episode);
        }
        let batch = GpoBatch::<B>::new(&episodes, &device).unwrap();
        let output = model.forward(&batch).unwrap();
        let pad = batch.target_pad();
        let mean: Vec<f32> = output.mean.mask_fill(pad.clone(), 0.0).into_data().to_vec().unwrap();
        let log_std: Vec<f32> = output.log_std.mask_fill(pad, 0.0).into_data().to_vec().unwrap();
        assert_close(&format!("case {case} mean"), &mean, &floats(&st, &format!("case{case}.mean")).1);
        assert_close(&format!("case {case} log_std"), &log_std, &floats(&st, &format!("case{case}.log_std")).1);
        let loss: Vec<f32> = model.loss(&batch).unwrap().into_data().to_vec().unwrap();
        assert_close(&format!("case {case} loss"), &loss, &floats(&st, &format!("case{case}.loss")).1);
    }
}
