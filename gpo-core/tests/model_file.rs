//! The `.gpo` model file: round trips, precision of f16/bf16 storage, and typed errors (never a
//! panic) on truncated, corrupted, foreign, wrong-version, wrong-shape and wrong-dtype files.

mod common;

use common::{B, DIM_X, Rng, episode, model, questions};
use gpo_core::model_file::{FORMAT_VERSION, MAGIC};
use gpo_core::weights::WeightError;
use gpo_core::{GpoBatch, GpoConfig, ModelFile, ModelFileError, ModelMetadata, WeightDType};
use proptest::prelude::*;
use serde::Serialize;

fn metadata() -> ModelMetadata {
    let mut m = ModelMetadata::new("sentence-transformers/all-MiniLM-L6-v2", DIM_X, "gpo");
    m.dataset = "opinionqa".into();
    m.seed = 7;
    m.training_steps = 1000;
    m.validation_score = Some(0.93);
    m
}

fn file(dtype: WeightDType) -> (GpoConfig, gpo_core::Gpo<B>, ModelFile) {
    let (config, m) = model(21);
    let f = ModelFile::from_model(&m, &config, metadata(), dtype);
    (config, m, f)
}

fn bytes() -> Vec<u8> {
    file(WeightDType::F32).2.to_bytes()
}

/// Largest total-variation distance between the two models' predicted distributions.
fn max_total_variation(a: &gpo_core::Gpo<B>, b: &gpo_core::Gpo<B>) -> f32 {
    let mut rng = Rng(3);
    let e = episode(&questions(&mut rng, &[3, 4, 2, 5, 3, 2, 4, 3]), &questions(&mut rng, &[2, 3, 4, 5, 6, 7, 3, 2]));
    let batch = GpoBatch::<B>::new(&[e], &Default::default()).unwrap();
    let (pa, pb) = (a.predict(&batch), b.predict(&batch));
    pa[0]
        .iter()
        .zip(&pb[0])
        .map(|(p, q)| p.iter().zip(q).map(|(x, y)| (x - y).abs()).sum::<f32>() / 2.0)
        .fold(0.0, f32::max)
}

#[test]
fn f32_round_trip_is_exact() {
    let (_, original, f) = file(WeightDType::F32);
    let decoded = ModelFile::from_bytes(&f.to_bytes()).unwrap();
    assert_eq!(decoded, f);
    let loaded = decoded.to_model::<B>(&Default::default()).unwrap();
    assert_eq!(max_total_variation(&original, &loaded), 0.0);
}

#[test]
fn half_precision_round_trips_stay_close() {
    let (config, original) = model(21);
    for (dtype, bound) in [(WeightDType::F16, 1e-3), (WeightDType::BF16, 1e-2)] {
        let f = ModelFile::from_model(&original, &config, metadata(), dtype);
        let encoded = f.to_bytes();
        let decoded = ModelFile::from_bytes(&encoded).unwrap();
        assert_eq!(decoded.dtype, dtype);
        assert_eq!(decoded.metadata, metadata());
        // Decoding is idempotent: re-encoding the decoded values gives the same bytes.
        assert_eq!(decoded.to_bytes(), encoded);
        let loaded = decoded.to_model::<B>(&Default::default()).unwrap();
        let tv = max_total_variation(&original, &loaded);
        println!("{}: {} bytes, max total variation vs f32 {tv:.2e}", dtype.name(), encoded.len());
        assert!(tv < bound, "{} changed predictions by {tv}", dtype.name());
    }
    assert!(file(WeightDType::F16).2.to_bytes().len() < bytes().len() * 6 / 10);
}

#[test]
fn seeded_models_are_identical() {
    assert_eq!(file(WeightDType::F32).2, file(WeightDType::F32).2);
}

#[test]
fn header_errors() {
    let good = bytes();
    assert!(matches!(ModelFile::from_bytes(&[]), Err(ModelFileError::TooShort(0))));
    let mut foreign = good.clone();
    foreign[..8].copy_from_slice(b"PK\x03\x04abcd");
    assert_eq!(ModelFile::from_bytes(&foreign), Err(ModelFileError::BadMagic));
    let mut version = good.clone();
    version[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(ModelFile::from_bytes(&version), Err(ModelFileError::UnsupportedVersion { found: FORMAT_VERSION + 1 }));
    let mut extra = good.clone();
    extra.push(0);
    assert!(matches!(ModelFile::from_bytes(&extra), Err(ModelFileError::Length { .. })));
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    assert!(matches!(ModelFile::from_bytes(&flipped), Err(ModelFileError::Checksum { .. })));
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
    let mut tensors: Vec<RawTensor> = f
        .tensors
        .iter()
        .map(|t| RawTensor {
            name: t.name.clone(),
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            data: t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        })
        .collect();
    edit(&mut tensors);
    let payload = RawPayload { config: f.config.clone(), metadata: f.metadata.clone(), dtype, tensors };
    with_header(&postcard::to_allocvec(&payload).unwrap())
}

#[test]
fn the_documented_layout_is_what_gpo_core_reads() {
    let (_, _, f) = file(WeightDType::F32);
    assert_eq!(raw(&f, WeightDType::F32, |_| {}), f.to_bytes());
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
    let decoded = ModelFile::from_bytes(&reshaped).unwrap();
    assert!(matches!(
        decoded.to_model::<B>(&Default::default()),
        Err(ModelFileError::Weights(WeightError::Shape { .. }))
    ));
    let missing = ModelFile::from_bytes(&raw(&f, WeightDType::F32, |t| {
        t.pop();
    }))
    .unwrap();
    assert!(matches!(
        missing.to_model::<B>(&Default::default()),
        Err(ModelFileError::Weights(WeightError::Missing(_)))
    ));
    let renamed = ModelFile::from_bytes(&raw(&f, WeightDType::F32, |t| t[3].name = "decoder.weight".into())).unwrap();
    assert!(renamed.to_model::<B>(&Default::default()).is_err());
    // Metadata that contradicts the configuration.
    let mut lying = f.clone();
    lying.metadata.embedding_dim = 4096;
    assert!(matches!(ModelFile::from_bytes(&lying.to_bytes()), Err(ModelFileError::Dimension { .. })));
    // An impossible configuration.
    let mut heads = f.clone();
    heads.config.n_heads = 5;
    assert!(matches!(ModelFile::from_bytes(&heads.to_bytes()), Err(ModelFileError::Config(_))));
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
