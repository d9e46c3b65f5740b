//! The population-prior variant (`GpoConfig::prior`): an untrained model predicts its prior, the
//! prior reaches the model (and round-trips through the model file), the faithful model ignores
//! it, and bad priors are errors. Tolerance: 1e-6 absolute on probabilities (f32 softmax of
//! logarithms).

use crate::common;

use common::{B, DIM_X, Question, Rng, questions};
use gpo_core::metrics::Metric;
use gpo_core::prior::{PopulationPrior, PriorGroup, PriorKind, PriorQuestion};
use gpo_core::weights::reinitialize;
use gpo_core::{
    BatchError, Episode, Gpo, GpoBatch, GpoConfig, ModelFile, ModelMetadata, Question as Q, Side, WeightDType,
};

const TOLERANCE: f32 = 1e-6;

fn prior_config() -> GpoConfig {
    GpoConfig::new(DIM_X).with_d_model(16).with_d_ff(24).with_n_layers(2).with_prior(true)
}

/// An episode whose every question carries the prior `priors[i]` (context first, then targets).
fn episode_with_priors(context: &[Question], targets: &[Question], priors: &[Vec<f32>]) -> Episode {
    let mut e = Episode::new(DIM_X).unwrap();
    for (q, p) in context.iter().zip(priors) {
        e.push_context(Q::new(&q.x).answer(&q.y).prior(p)).unwrap();
    }
    for (q, p) in targets.iter().zip(&priors[context.len()..]) {
        e.push_target(Q::new(&q.x).prior(p)).unwrap();
    }
    e
}

fn predict(model: &Gpo<B>, e: &Episode) -> Vec<Vec<f32>> {
    common::predict_batch(model, &GpoBatch::<B>::new(std::slice::from_ref(e), &Default::default()).unwrap()).remove(0)
}

fn setup(seed: u64) -> (Vec<Question>, Vec<Question>, Vec<Vec<f32>>) {
    let mut rng = Rng(seed);
    let context = questions(&mut rng, &[3, 2, 5]);
    let targets = questions(&mut rng, &[4, 2, 6]);
    let priors = context.iter().chain(&targets).map(|q| rng.distribution(q.y.len())).collect();
    (context, targets, priors)
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    common::max_abs_diff_rows(a, b) as f32
}

#[test]
fn an_untrained_prior_model_predicts_its_prior() {
    let model = prior_config().init_seeded::<B>(&Default::default(), 3).unwrap();
    let (context, targets, priors) = setup(1);
    let predicted = predict(&model, &episode_with_priors(&context, &targets, &priors));
    let expected = &priors[context.len()..];
    assert!(max_difference(&predicted, expected) <= TOLERANCE, "{predicted:?} vs {expected:?}");
}

#[test]
fn a_trained_prior_model_reads_the_prior_and_the_context() {
    // Random weights everywhere, the head included, stand in for a trained model.
    let model = reinitialize(prior_config().init::<B>(&Default::default()).unwrap(), 4);
    let (context, targets, priors) = setup(2);
    let base = predict(&model, &episode_with_priors(&context, &targets, &priors));

    let mut other_priors = priors.clone();
    other_priors[context.len()] = vec![0.7, 0.1, 0.1, 0.1];
    let changed = predict(&model, &episode_with_priors(&context, &targets, &other_priors));
    assert!(max_difference(&base[..1], &changed[..1]) > 1e-3, "the target's prior must matter");

    // Every context answer moved to its first option: far above float noise (~1e-7).
    let other_context: Vec<Question> = context
        .iter()
        .map(|q| Question { x: q.x.clone(), y: (0..q.y.len()).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect() })
        .collect();
    let changed = predict(&model, &episode_with_priors(&other_context, &targets, &priors));
    let d = max_difference(&base, &changed);
    assert!(d > 1e-5, "the context answers must matter: {d}");

    let prior = PopulationPrior::new(
        PriorKind::TrainMean,
        Metric::Wasserstein,
        1,
        DIM_X,
        vec![PriorQuestion::new("q", vec![1.0, 2.0], &[0.5; 2 * DIM_X], DIM_X)],
        vec![PriorGroup { name: "g".into(), answers: vec![Some(vec![0.5, 0.5])] }],
    )
    .unwrap();
    let metadata = ModelMetadata::new("test", DIM_X, None);
    // A prior model is not stored without its prior.
    let no_prior = ModelFile::from_model(&model, &prior_config(), metadata.clone(), WeightDType::F32, None);
    assert!(matches!(no_prior, Err(gpo_core::ModelFileError::PriorPresence { config_reads_prior: true })));
    let file = ModelFile::from_model(&model, &prior_config(), metadata, WeightDType::F32, Some(prior.clone())).unwrap();
    let bytes = file.to_bytes().unwrap();
    let decoded = ModelFile::from_bytes(&bytes).unwrap();
    // An f32 file stores the prior exactly; its option signatures only where its rule reads them
    // (by position here: none).
    assert_eq!(decoded.prior(), file.prior(), "an f32 file stores the prior exactly");
    let unsigned: Vec<PriorQuestion> =
        prior.questions().iter().map(|q| PriorQuestion { signatures: Vec::new(), ..q.clone() }).collect();
    assert_eq!(decoded.prior().map(|p| p.questions()), Some(unsigned.as_slice()));
    let loaded = decoded.to_model::<B>(&Default::default()).unwrap();
    assert!(loaded.prior);
    let reloaded = predict(&loaded, &episode_with_priors(&context, &targets, &priors));
    assert!(max_difference(&base, &reloaded) <= TOLERANCE);
}

#[test]
fn models_refuse_episodes_that_do_not_fit_them() {
    let (_, faithful) = common::model(5);
    let prior_model = prior_config().init_seeded::<B>(&Default::default(), 5).unwrap();
    let (context, targets, priors) = setup(3);
    let device = Default::default();
    let with = GpoBatch::<B>::new(&[episode_with_priors(&context, &targets, &priors)], &device).unwrap();
    let without = GpoBatch::<B>::new(&[common::episode(&context, &targets)], &device).unwrap();
    assert!(matches!(faithful.forward(&with), Err(BatchError::PriorMismatch { model_reads_prior: false })));
    assert!(matches!(prior_model.forward(&without), Err(BatchError::PriorMismatch { model_reads_prior: true })));
    assert!(faithful.forward(&without).is_ok() && prior_model.forward(&with).is_ok());
    // Questions of one episode either all carry a prior or none does.
    let mut e = Episode::new(DIM_X).unwrap();
    e.push_context(Q::new(&context[0].x).answer(&context[0].y).prior(&priors[0])).unwrap();
    assert!(matches!(e.push_target(Q::new(&targets[0].x)), Err(BatchError::MixedPriors { side: Side::Target, .. })));
}

#[test]
fn bad_priors_are_errors() {
    let mut e = Episode::new(DIM_X).unwrap();
    let x = [0.0; 2 * DIM_X];
    let y = [0.5, 0.5];
    assert!(matches!(
        e.push_context(Q::new(&x).answer(&y).prior(&[1.0])),
        Err(BatchError::PriorCount { side: Side::Context, prior: 1, options: 2, .. })
    ));
    assert!(matches!(
        e.push_target(Q::new(&x).prior(&[f32::NAN, 0.5])),
        Err(BatchError::NonFinite { what: "prior", .. })
    ));
    assert!(matches!(e.push_target(Q::new(&x).prior(&[-0.1, 1.1])), Err(BatchError::NegativeProbability { .. })));
    // A rejected question leaves the episode as it was.
    assert_eq!(e.n_context_tokens() + e.n_target_tokens(), 0);
}
