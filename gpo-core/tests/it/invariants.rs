//! Properties the GPO model must have whatever its weights (docs/original.md §3): no positional encoding,
//! targets attend only to the context, per-question softmax, padding that changes nothing.
//! Tolerance: 1e-5 absolute on probabilities (f32 sums in a different order).

use crate::common;

use burn::tensor::backend::Backend;
use burn_autodiff::Autodiff;
use common::{B, DIM_X, Question, Rng, episode, model, questions};
use gpo_core::{BatchError, Episode, GpoBatch, Question as Q};

const TOLERANCE: f32 = 1e-5;

fn predict_one(model: &gpo_core::Gpo<B>, e: &Episode) -> Vec<Vec<f32>> {
    let batch = GpoBatch::<B>::new(std::slice::from_ref(e), &Default::default()).unwrap();
    common::predict_batch(model, &batch).remove(0)
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>]) {
    assert!(common::max_abs_diff_rows(a, b) <= f64::from(TOLERANCE), "{a:?} vs {b:?}");
}

fn setup() -> (gpo_core::Gpo<B>, Vec<Question>, Vec<Question>) {
    let (_, m) = model(11);
    let mut rng = Rng(5);
    let context = questions(&mut rng, &[3, 2, 5, 4, 2]);
    let targets = questions(&mut rng, &[4, 2, 3, 5, 2, 6]);
    (m, context, targets)
}

#[test]
fn distributions_sum_to_one_and_are_positive() {
    let (m, context, targets) = setup();
    let predicted = predict_one(&m, &episode(&context, &targets));
    assert_eq!(predicted.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 2, 3, 5, 2, 6]);
    for q in &predicted {
        assert!((q.iter().sum::<f32>() - 1.0).abs() <= TOLERANCE, "{q:?}");
        assert!(q.iter().all(|p| *p > 0.0 && p.is_finite()));
    }
}

#[test]
fn context_order_does_not_matter() {
    let (m, context, targets) = setup();
    let reversed: Vec<Question> = context.iter().rev().cloned().collect();
    assert_close(&predict_one(&m, &episode(&context, &targets)), &predict_one(&m, &episode(&reversed, &targets)));
}

#[test]
fn target_order_permutes_predictions() {
    let (m, context, targets) = setup();
    let order = [3, 0, 5, 1, 4, 2];
    let permuted: Vec<Question> = order.iter().map(|&i| targets[i].clone()).collect();
    let base = predict_one(&m, &episode(&context, &targets));
    let got = predict_one(&m, &episode(&context, &permuted));
    let expected: Vec<Vec<f32>> = order.iter().map(|&i| base[i].clone()).collect();
    assert_close(&got, &expected);
}

#[test]
fn a_target_ignores_the_other_targets() {
    let (m, context, targets) = setup();
    let all = predict_one(&m, &episode(&context, &targets));
    for (i, target) in targets.iter().enumerate() {
        let alone = predict_one(&m, &episode(&context, std::slice::from_ref(target)));
        assert_close(&alone, &all[i..=i]);
    }
}

#[test]
fn perturbing_one_target_changes_only_that_target() {
    let (m, context, mut targets) = setup();
    let before = predict_one(&m, &episode(&context, &targets));
    for v in targets[2].x.iter_mut() {
        *v += 0.5;
    }
    let after = predict_one(&m, &episode(&context, &targets));
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let diff: f32 = b.iter().zip(a).map(|(x, y)| (x - y).abs()).sum();
        if i == 2 {
            assert!(diff > 1e-4, "the perturbed target must change");
        } else {
            assert!(diff <= TOLERANCE, "target {i} changed by {diff}");
        }
    }
}

#[test]
fn the_context_matters() {
    let (m, context, targets) = setup();
    let mut rng = Rng(99);
    let other: Vec<Question> =
        context.iter().map(|q| Question { x: q.x.clone(), y: rng.distribution(q.y.len()) }).collect();
    let a = predict_one(&m, &episode(&context, &targets));
    let b = predict_one(&m, &episode(&other, &targets));
    let diff: f32 = a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).sum();
    assert!(diff > 1e-4, "other answers in the context must change the prediction");
}

#[test]
fn padding_in_a_ragged_batch_changes_nothing() {
    let (m, context, targets) = setup();
    let mut rng = Rng(7);
    let small = episode(&questions(&mut rng, &[2]), &questions(&mut rng, &[3]));
    let big = episode(&context, &targets);
    let empty_context = episode(&[], &targets[..2]);
    let batch = GpoBatch::<B>::new(&[small.clone(), big.clone(), empty_context.clone()], &Default::default()).unwrap();
    let together = common::predict_batch(&m, &batch);
    assert_close(&together[0], &predict_one(&m, &small));
    assert_close(&together[1], &predict_one(&m, &big));
    assert_close(&together[2], &predict_one(&m, &empty_context));
}

/// Episodes with the same questions (embeddings) and different answers, as the groups of an
/// OpinionQA training batch: the model multiplies the shared embeddings by its first layer once
/// (`GpoBatch::shared_x`), with each episode's own predictions to float rounding.
#[test]
fn episodes_sharing_their_questions_get_their_own_predictions() {
    let (m, context, targets) = setup();
    let mut rng = Rng(9);
    let answered = |rng: &mut Rng, qs: &[Question]| -> Vec<Question> {
        qs.iter().map(|q| Question { x: q.x.clone(), y: rng.distribution(q.y.len()) }).collect()
    };
    let episodes: Vec<Episode> =
        (0..3).map(|_| episode(&answered(&mut rng, &context), &answered(&mut rng, &targets))).collect();
    let batch = GpoBatch::<B>::new(&episodes, &Default::default()).unwrap();
    let together = common::predict_batch(&m, &batch);
    for (got, e) in together.iter().zip(&episodes) {
        assert_close(got, &predict_one(&m, e));
    }
    assert_ne!(together[0], together[1], "the answers differ, so do the predictions");
}

#[test]
fn without_context_predictions_are_still_distributions() {
    let (m, _, targets) = setup();
    for q in predict_one(&m, &episode(&[], &targets)) {
        assert!((q.iter().sum::<f32>() - 1.0).abs() <= TOLERANCE && q.iter().all(|p| p.is_finite()));
    }
}

#[test]
fn loss_and_gradients_are_finite_with_padding() {
    type AB = Autodiff<B>;
    let device = Default::default();
    AB::seed(&device, 3);
    let config = gpo_core::GpoConfig::new(DIM_X).with_d_model(16).with_d_ff(24).with_n_layers(2);
    let m = config.init::<AB>(&device).unwrap();
    let mut rng = Rng(1);
    let episodes = [
        episode(&questions(&mut rng, &[2, 3]), &questions(&mut rng, &[4])),
        episode(&[], &questions(&mut rng, &[2, 2, 3])),
        episode(&questions(&mut rng, &[5]), &questions(&mut rng, &[2])),
    ];
    let batch = GpoBatch::<AB>::new(&episodes, &device).unwrap();
    let loss = m.loss(&batch).unwrap();
    let value: f32 = loss.clone().into_scalar();
    assert!(value.is_finite());
    let grads = loss.backward();
    let grad = m.embedder[0].weight.grad(&grads).unwrap();
    let values: Vec<f32> = grad.into_data().to_vec().unwrap();
    assert!(values.iter().all(|g| g.is_finite()) && values.iter().any(|g| *g != 0.0));
}

#[test]
fn bad_episodes_are_errors() {
    let mut e = Episode::new(DIM_X).unwrap();
    assert!(matches!(e.push_context(Q::new(&[0.0; 5]).answer(&[1.0])), Err(BatchError::EmbeddingLength { .. })));
    assert!(matches!(e.push_context(Q::new(&[0.0; 12]).answer(&[1.0])), Err(BatchError::ProbabilityCount { .. })));
    assert!(matches!(e.push_context(Q::new(&[]).answer(&[])), Err(BatchError::NoOptions { .. })));
    assert!(matches!(e.push_context(Q::new(&[0.0; 6]).answer(&[-0.5])), Err(BatchError::NegativeProbability { .. })));
    assert!(matches!(e.push_target(Q::new(&[f32::NAN; 6])), Err(BatchError::NonFinite { .. })));
    assert!(matches!(Episode::new(0), Err(BatchError::ZeroDimension)));
    assert!(matches!(GpoBatch::<B>::new(&[], &Default::default()), Err(BatchError::EmptyBatch)));
    assert!(matches!(GpoBatch::<B>::new(&[e.clone()], &Default::default()), Err(BatchError::NoTargets { episode: 0 })));
    e.push_target(Q::new(&[0.0; 6])).unwrap();
    let other = {
        let mut o = Episode::new(DIM_X + 1).unwrap();
        o.push_target(Q::new(&[0.0; 7])).unwrap();
        o
    };
    assert!(matches!(GpoBatch::<B>::new(&[e, other], &Default::default()), Err(BatchError::DimensionMismatch { .. })));
}

/// The fused softmax and LayerNorm of CPU training (`Autodiff<NdArray<f32>>`) against Burn's
/// composed operations (the same backend with another checkpointing strategy, which the fused
/// path does not take) on a whole model: loss and every parameter's gradient, with padding.
/// Tolerance 1e-4 relative to the largest gradient of each parameter (at least 1e-3: the keys'
/// biases get a gradient of exactly 0 in exact arithmetic, the softmax being shift-invariant,
/// and rounding noise of 1e-10 in f32): f32 sums in another order through three layers.
#[test]
fn fused_training_operations_give_the_composed_gradients() {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    type Fused = Autodiff<B>;
    type Composed = Autodiff<B, burn_autodiff::checkpoint::strategy::BalancedCheckpointing>;
    struct Grads<'a, A: burn::tensor::backend::AutodiffBackend>(&'a A::Gradients, Vec<Vec<f32>>);
    impl<A: burn::tensor::backend::AutodiffBackend> ModuleVisitor<A> for Grads<'_, A> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            let grad = param.val().grad(self.0).map(|g| g.into_data().to_vec::<f32>().unwrap());
            self.1.push(grad.unwrap_or_default());
        }
    }
    fn run<A: burn::tensor::backend::AutodiffBackend>(episodes: &[Episode]) -> (f32, Vec<Vec<f32>>) {
        let device = Default::default();
        let config = gpo_core::GpoConfig::new(DIM_X).with_d_model(16).with_d_ff(24).with_n_layers(3);
        let m = config.init_seeded::<A>(&device, 7).unwrap();
        let batch = GpoBatch::<A>::new(episodes, &device).unwrap();
        let loss = m.loss(&batch).unwrap();
        let value: f32 = loss.clone().into_scalar().elem();
        let grads = loss.backward();
        let mut visitor = Grads::<A>(&grads, Vec::new());
        m.visit(&mut visitor);
        (value, visitor.1)
    }
    use burn::tensor::ElementConversion;
    let mut rng = Rng(1);
    let episodes = [
        episode(&questions(&mut rng, &[2, 3, 4]), &questions(&mut rng, &[4, 2])),
        episode(&questions(&mut rng, &[5]), &questions(&mut rng, &[2, 2, 3])),
        episode(&[], &questions(&mut rng, &[3])),
    ];
    // And a batch whose episodes share their questions (the first layer's product taken once).
    let (context, targets) = (questions(&mut rng, &[3, 2]), questions(&mut rng, &[4, 2, 3]));
    let shared: Vec<Episode> = (0..3)
        .map(|_| {
            let answered = |qs: &[Question], rng: &mut Rng| -> Vec<Question> {
                qs.iter().map(|q| Question { x: q.x.clone(), y: rng.distribution(q.y.len()) }).collect()
            };
            episode(&answered(&context, &mut rng), &answered(&targets, &mut rng))
        })
        .collect();
    for episodes in [&episodes[..], &shared[..]] {
        let (fused_loss, fused) = run::<Fused>(episodes);
        let (composed_loss, composed) = run::<Composed>(episodes);
        assert!(
            (fused_loss - composed_loss).abs() <= 1e-5 * composed_loss.abs().max(1.0),
            "{fused_loss} vs {composed_loss}"
        );
        assert_eq!(fused.len(), composed.len());
        for (i, (f, c)) in fused.iter().zip(&composed).enumerate() {
            assert_eq!(f.len(), c.len(), "parameter {i}");
            let scale = c.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
            let worst = f.iter().zip(c).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst <= 1e-4 * scale, "parameter {i}: {worst} (largest gradient {scale})");
        }
    }
}
