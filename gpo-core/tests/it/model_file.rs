//! The `.gpo` model file: round trips, precision of f16/bf16 storage, and typed errors (never a
//! panic) on truncated, corrupted, foreign, wrong-version, wrong-shape and wrong-dtype files.

use crate::common;

use common::{B, DIM_X, Rng, episode, model, questions};
use gpo_core::container::ContainerError;
use gpo_core::metrics::Metric;
use gpo_core::model_file::{FORMAT_VERSION, MAGIC};
use gpo_core::prior::{PopulationPrior, PriorGroup, PriorKind, PriorQuestion};
use gpo_core::template::Template;
use gpo_core::weights::WeightError;
use gpo_core::{GpoBatch, GpoConfig, ModelFile, ModelFileError, ModelMetadata, WeightDType};
use proptest::prelude::*;
use serde::Serialize;

fn metadata() -> ModelMetadata {
    let mut m = ModelMetadata::new("sentence-transformers/all-MiniLM-L6-v2", DIM_X, Some(Template::Gpo));
    m.dataset = "opinionqa".into();
    m.seed = 7;
    m.training_steps = 1000;
    m.validation_score = Some(0.93);
    m
}

fn file(dtype: WeightDType) -> (GpoConfig, gpo_core::Gpo<B>, ModelFile) {
    let (config, m) = model(21);
    let f = ModelFile::from_model(&m, &config, metadata(), dtype, None).unwrap();
    (config, m, f)
}

fn bytes() -> Vec<u8> {
    file(WeightDType::F32).2.to_bytes().unwrap()
}

/// Largest total-variation distance between the two models' predicted distributions.
fn max_total_variation(a: &gpo_core::Gpo<B>, b: &gpo_core::Gpo<B>) -> f32 {
    let mut rng = Rng(3);
    let e = episode(&questions(&mut rng, &[3, 4, 2, 5, 3, 2, 4, 3]), &questions(&mut rng, &[2, 3, 4, 5, 6, 7, 3, 2]));
    let batch = GpoBatch::<B>::new(&[e], &Default::default()).unwrap();
    let (pa, pb) = (common::predict_batch(a, &batch), common::predict_batch(b, &batch));
    pa[0]
        .iter()
        .zip(&pb[0])
        .map(|(p, q)| p.iter().zip(q).map(|(x, y)| (x - y).abs()).sum::<f32>() / 2.0)
        .fold(0.0, f32::max)
}

#[test]
fn f32_round_trip_is_exact() {
    let (_, original, f) = file(WeightDType::F32);
    let decoded = ModelFile::from_bytes(&f.to_bytes().unwrap()).unwrap();
    assert_eq!(decoded, f);
    let loaded = decoded.to_model::<B>(&Default::default()).unwrap();
    assert_eq!(max_total_variation(&original, &loaded), 0.0);
}

#[test]
fn half_precision_round_trips_stay_close() {
    let (config, original) = model(21);
    for (dtype, bound) in [(WeightDType::F16, 1e-3), (WeightDType::BF16, 1e-2)] {
        let f = ModelFile::from_model(&original, &config, metadata(), dtype, None).unwrap();
        let encoded = f.to_bytes().unwrap();
        let decoded = ModelFile::from_bytes(&encoded).unwrap();
        assert_eq!(decoded.dtype(), dtype);
        assert_eq!(decoded.metadata(), &metadata());
        // Decoding is idempotent: re-encoding the decoded values gives the same bytes.
        assert_eq!(decoded.to_bytes().unwrap(), encoded);
        let loaded = decoded.to_model::<B>(&Default::default()).unwrap();
        let tv = max_total_variation(&original, &loaded);
        println!("{}: {} bytes, max total variation vs f32 {tv:.2e}", dtype.name(), encoded.len());
        assert!(tv < bound, "{} changed predictions by {tv}", dtype.name());
    }
    assert!(file(WeightDType::F16).2.to_bytes().unwrap().len() < bytes().len() * 6 / 10);
}

#[test]
fn seeded_models_are_identical() {
    assert_eq!(file(WeightDType::F32).2, file(WeightDType::F32).2);
}

#[test]
fn header_errors() {
    let good = bytes();
    let container = |e: ContainerError| Err(ModelFileError::Container(e));
    assert_eq!(ModelFile::from_bytes(&[]), container(ContainerError::TooShort(0)));
    let mut foreign = good.clone();
    foreign[..8].copy_from_slice(b"PK\x03\x04abcd");
    assert!(matches!(ModelFile::from_bytes(&foreign), Err(ModelFileError::Container(ContainerError::BadMagic { .. }))));
    let mut version = good.clone();
    version[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        ModelFile::from_bytes(&version),
        container(ContainerError::UnsupportedVersion { found: FORMAT_VERSION + 1 })
    );
    let mut extra = good.clone();
    extra.push(0);
    assert!(matches!(ModelFile::from_bytes(&extra), Err(ModelFileError::Container(ContainerError::Length { .. }))));
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    assert!(matches!(ModelFile::from_bytes(&flipped), Err(ModelFileError::Container(ContainerError::Checksum { .. }))));
}

#[test]
fn every_truncation_is_an_error() {
    let good = bytes();
    for len in 0..good.len() {
        assert!(ModelFile::from_bytes(&good[..len]).is_err(), "truncated to {len} bytes was accepted");
    }
}

/// The payload, written independently of gpo-core from the documented layout, so that tests can
/// make files that pass the header and checksum but lie inside.
#[derive(Serialize)]
struct RawPayload {
    config: GpoConfig,
    metadata: ModelMetadata,
    dtype: WeightDType,
    tensors: Vec<RawTensor>,
    /// `None` here: these tests' model reads no prior.
    prior: Option<()>,
}

#[derive(Serialize)]
struct RawTensor {
    name: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

fn with_header(payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn raw(f: &ModelFile, dtype: WeightDType, edit: impl Fn(&mut Vec<RawTensor>)) -> Vec<u8> {
    raw_with(f, f.config(), f.metadata(), dtype, edit)
}

/// [`raw`] with another configuration and metadata than the file's.
fn raw_with(
    f: &ModelFile,
    config: &GpoConfig,
    metadata: &ModelMetadata,
    dtype: WeightDType,
    edit: impl Fn(&mut Vec<RawTensor>),
) -> Vec<u8> {
    let mut tensors: Vec<RawTensor> = f
        .tensors()
        .iter()
        .map(|t| RawTensor {
            name: t.name.clone(),
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            data: t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        })
        .collect();
    edit(&mut tensors);
    let payload = RawPayload { config: config.clone(), metadata: metadata.clone(), dtype, tensors, prior: None };
    with_header(&postcard::to_allocvec(&payload).unwrap())
}

#[test]
fn the_documented_layout_is_what_gpo_core_reads() {
    let (_, _, f) = file(WeightDType::F32);
    assert_eq!(raw(&f, WeightDType::F32, |_| {}), f.to_bytes().unwrap());
}

#[test]
fn inner_errors_are_typed() {
    let (_, _, f) = file(WeightDType::F32);
    // f32 bytes declared as f16: the byte count does not fit the shape.
    assert!(matches!(
        ModelFile::from_bytes(&raw(&f, WeightDType::F16, |_| {})),
        Err(ModelFileError::TensorBytes { dtype: "f16", .. })
    ));
    // A shape whose element count overflows.
    let overflow = raw(&f, WeightDType::F32, |t| t[0].shape = vec![u64::MAX, u64::MAX]);
    assert!(matches!(ModelFile::from_bytes(&overflow), Err(ModelFileError::TensorBytes { .. })));
    // A consistent tensor of the wrong shape for the architecture.
    let reshaped = raw(&f, WeightDType::F32, |t| {
        let s = &mut t[0].shape;
        *s = vec![s[1], s[0]];
    });
    // The tensors are checked against the configuration's parameter list on decoding, and the
    // first that does not fit is named.
    let name = |i: usize| f.tensors()[i].name.clone();
    assert_eq!(
        ModelFile::from_bytes(&reshaped),
        Err(ModelFileError::Weights(WeightError::Shape {
            name: name(0),
            expected: f.tensors()[0].shape.clone(),
            found: vec![f.tensors()[0].shape[1], f.tensors()[0].shape[0]],
        }))
    );
    let missing = ModelFile::from_bytes(&raw(&f, WeightDType::F32, |t| {
        t.pop();
    }));
    assert_eq!(missing, Err(ModelFileError::Weights(WeightError::Missing(name(f.tensors().len() - 1)))));
    let moved = ModelFile::from_bytes(&raw(&f, WeightDType::F32, |t| {
        let last = t.pop().unwrap();
        t[0].data.extend(last.data);
        t[0].shape = vec![t[0].data.len() as u64 / 4];
    }));
    assert!(matches!(moved, Err(ModelFileError::Weights(WeightError::Shape { .. }))), "{moved:?}");
    let renamed = ModelFile::from_bytes(&raw(&f, WeightDType::F32, |t| t[3].name = "decoder.weight".into()));
    assert_eq!(renamed, Err(ModelFileError::Weights(WeightError::Missing(name(3)))));
    let twice = ModelFile::from_bytes(&raw(&f, WeightDType::F32, |t| t[3].name = t[2].name.clone()));
    assert_eq!(twice, Err(ModelFileError::Weights(WeightError::Duplicate(name(2)))));
    // Metadata that contradicts the configuration.
    let lying = ModelMetadata { embedding_dim: 4096, ..metadata() };
    assert!(matches!(f.clone().with_metadata(lying.clone()), Err(ModelFileError::Dimension { .. })));
    assert!(matches!(
        ModelFile::from_bytes(&raw_with(&f, f.config(), &lying, WeightDType::F32, |_| {})),
        Err(ModelFileError::Dimension { .. })
    ));
    // An impossible configuration.
    let heads = GpoConfig { n_heads: 5, ..f.config().clone() };
    let (_, m) = model(21);
    assert!(matches!(
        ModelFile::from_model(&m, &heads, metadata(), WeightDType::F32, None),
        Err(ModelFileError::Config(_))
    ));
    let decoded = ModelFile::from_bytes(&raw_with(&f, &heads, f.metadata(), WeightDType::F32, |_| {}));
    assert!(matches!(decoded, Err(ModelFileError::Config(_))));
}

/// A file with a valid checksum whose configuration asks for absurd sizes is refused before any
/// model is built (these aborted on allocation or overflowed in earlier versions).
#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let (_, _, f) = file(WeightDType::F32);
    let edits: [fn(&mut GpoConfig); 6] = [
        |c| c.n_layers = 1 << 31,
        |c| c.n_layers = 1 << 40,
        |c| c.emb_depth = 1 << 63,
        |c| c.d_model = 1 << 62,
        |c| c.d_ff = usize::MAX,
        |c| {
            c.d_model = 4096;
            c.n_heads = 4;
            c.n_layers = 200;
        },
    ];
    for edit in edits {
        let mut bad = f.config().clone();
        edit(&mut bad);
        let decoded = ModelFile::from_bytes(&raw_with(&f, &bad, f.metadata(), WeightDType::F32, |_| {}));
        assert!(matches!(decoded, Err(ModelFileError::Config(_))), "{bad:?}: {decoded:?}");
    }
}

#[test]
fn weights_beyond_the_storage_range_are_refused() {
    let (config, m, f) = file(WeightDType::F32);
    // The model with one weight set to `value`, as an f32 file.
    let with_weight = |value: f32| {
        let mut tensors = f.tensors().to_vec();
        tensors[1].values[0] = value;
        let changed = gpo_core::weights::load_named_tensors(m.clone(), &tensors).unwrap();
        ModelFile::from_model(&changed, &config, metadata(), WeightDType::F32, None).unwrap()
    };
    let f = with_weight(1e6);
    assert!(f.to_bytes().is_ok(), "f32 holds 1e6");
    let error = f.clone().with_dtype(WeightDType::F16).to_bytes().unwrap_err();
    assert!(matches!(error, ModelFileError::OutOfRange { dtype: "f16", .. }), "{error}");
    assert!(error.to_string().contains(&f.tensors()[1].name), "{error}");
    assert!(f.with_dtype(WeightDType::BF16).to_bytes().is_ok(), "bf16 holds 1e6");
    // A NaN weight cannot be loaded into a model (`load_named_tensors` refuses it); the unit
    // test `a_nan_weight_is_refused_when_encoding` shows that encoding refuses it too.
}

#[test]
fn version_2_files_get_a_clear_error() {
    let mut old = bytes();
    old[8..12].copy_from_slice(&2u32.to_le_bytes());
    let error = ModelFile::from_bytes(&old).unwrap_err();
    assert_eq!(error, ModelFileError::Container(ContainerError::UnsupportedVersion { found: 2 }));
    assert!(error.to_string().contains("version 2 files lack the prior data"), "{error}");
}

/// A prior model's file with its prior (2 groups × 3 questions, one unanswered).
fn prior_file(dtype: WeightDType) -> ModelFile {
    let config = GpoConfig::new(DIM_X).with_d_model(16).with_d_ff(24).with_n_layers(1).with_prior(true);
    let model = config.init_seeded::<B>(&Default::default(), 4).unwrap();
    let mut rng = Rng(9);
    let questions = (0..3)
        .map(|q| PriorQuestion::new(&format!("q{q}"), vec![1.0, 2.0, 3.0], &rng.normal_vec(3 * DIM_X), DIM_X))
        .collect();
    let groups = (0..2)
        .map(|g| PriorGroup {
            name: format!("group {g}"),
            answers: (0..3)
                .map(|q| (q != 2 || g == 0).then(|| rng.distribution(3).into_iter().map(f64::from).collect()))
                .collect(),
        })
        .collect();
    let prior = PopulationPrior::new(
        PriorKind::KnnGroups { temperature: 0.05 },
        Metric::Wasserstein,
        2,
        DIM_X,
        questions,
        groups,
    )
    .unwrap();
    ModelFile::from_model(&model, &config, metadata(), dtype, Some(prior)).unwrap()
}

#[test]
fn prior_models_carry_their_prior() {
    let f32_file = prior_file(WeightDType::F32);
    let decoded = ModelFile::from_bytes(&f32_file.to_bytes().unwrap()).unwrap();
    assert_eq!(decoded, f32_file, "f32 stores f32-representable answers and vectors exactly");
    // f16 rounds the answers (renormalised) and vectors: within f16's half-ulp (2^-11 relative).
    let f16_file = prior_file(WeightDType::F16);
    let decoded = ModelFile::from_bytes(&f16_file.to_bytes().unwrap()).unwrap();
    let (a, b) = (f16_file.prior().unwrap(), decoded.prior().unwrap());
    assert_eq!(a.kind(), b.kind());
    assert_eq!(
        a.questions().iter().map(|q| &q.key).collect::<Vec<_>>(),
        b.questions().iter().map(|q| &q.key).collect::<Vec<_>>()
    );
    for (ga, gb) in a.groups().iter().zip(b.groups()) {
        for (pa, pb) in ga.answers.iter().zip(&gb.answers) {
            assert_eq!(pa.is_some(), pb.is_some());
            for (x, y) in pa.iter().flatten().zip(pb.iter().flatten()) {
                assert!((x - y).abs() < 1e-3, "{x} vs {y}");
            }
        }
    }
    // A prior model without its prior data is refused with a typed error.
    let stripped = ModelFile::from_bytes(&raw(&f32_file, WeightDType::F32, |_| {}));
    assert!(matches!(stripped, Err(ModelFileError::PriorPresence { config_reads_prior: true })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prior_file_edits_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let good = prior_file(WeightDType::F16).to_bytes().unwrap();
        let mut payload = good[24..].to_vec();
        for (index, value) in &edits {
            let i = index.index(payload.len());
            payload[i] = *value;
        }
        if let Ok(f) = ModelFile::from_bytes(&with_header(&payload)) {
            let _ = f.to_model::<B>(&Default::default());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn byte_flips_are_errors(flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8)) {
        let mut b = bytes();
        for (index, mask) in &flips {
            let i = index.index(b.len());
            b[i] ^= mask;
        }
        prop_assert!(ModelFile::from_bytes(&b).is_err());
    }

    #[test]
    fn garbage_payloads_with_valid_checksums_never_panic(payload in prop::collection::vec(any::<u8>(), 0..512)) {
        // The checksum passes, so this exercises the decoder on arbitrary (including huge
        // declared-length) input; it must fail cleanly.
        prop_assert!(ModelFile::from_bytes(&with_header(&payload)).is_err());
    }

    #[test]
    fn random_payload_edits_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let good = bytes();
        let mut payload = good[24..].to_vec();
        for (index, value) in &edits {
            let i = index.index(payload.len());
            payload[i] = *value;
        }
        // Any outcome but a panic is fine: an edit inside a weight can still decode.
        if let Ok(f) = ModelFile::from_bytes(&with_header(&payload)) {
            let _ = f.to_model::<B>(&Default::default());
        }
    }
}
