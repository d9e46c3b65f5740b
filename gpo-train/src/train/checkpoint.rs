//! Training checkpoints: everything needed to continue a run bit-identically (model and optimizer
//! state with their parameter ids, RNG state, step, best model so far, curve), written atomically.
//!
//! File format, version 3 (3: curve points carry CPU seconds): a [`gpo_core::container`] of magic
//! `GPOCKPT\0` (magic, version, payload length, CRC-32) whose payload is the postcard encoding of
//! [`Checkpoint`].
//!
//! A file that is truncated, padded, corrupted (the CRC) or of another version is refused before
//! anything is decoded; the model and optimizer records inside are checked against the resumed
//! model's layout before Burn sees them (see [`super::record`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::curve::CurvePoint;
use crate::fsutil::{MAX_CHECKPOINT_BYTES, read_capped, without_path, write_atomic};

/// First bytes of every checkpoint file.
pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"GPOCKPT\0";
/// Bumped whenever the layout changes; older checkpoints are refused, never misread (version 1
/// had no header and stored Burn's own record encoding).
pub(crate) const CHECKPOINT_VERSION: u32 = 3;
#[cfg(test)]
use gpo_core::container::HEADER_LEN;

/// A serialised training state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Identifies the run the checkpoint belongs to: a hash of its settings (method, training
    /// options, split and seed).
    pub fingerprint: String,
    /// Updates done.
    pub step: usize,
    pub rng_state: u64,
    /// Record of the training model (see [`super::record::model_bytes`]).
    pub model: Vec<u8>,
    /// Record of the optimizer state (see [`super::record::optimizer_bytes`]).
    pub optimizer: Vec<u8>,
    /// Best model so far as a `.gpo` file (f32), with its step and validation score.
    pub best: Option<(usize, f64, Vec<u8>)>,
    pub curve: Vec<CurvePoint>,
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("checkpoint {path}: {error}")]
    Io {
        /// File.
        path: String,
        /// Cause (in the message, not a `source`: a chain would print it twice).
        error: std::io::Error,
    },
    /// Not a checkpoint of this version.
    #[error("checkpoint {path} is corrupt or from another gpo version: {problem}")]
    Format {
        /// File.
        path: String,
        /// What is wrong.
        problem: CheckpointFormat,
    },
    /// From another run.
    #[error("checkpoint {path} belongs to another run (config, split or seed differ); delete it or drop --resume")]
    OtherRun {
        /// File.
        path: String,
    },
    /// Well formed, of this run, but its contents do not fit the run (a step beyond the
    /// configured steps, a record of another layout, …).
    #[error("checkpoint {path} cannot be resumed: {message}; delete it or drop --resume")]
    Invalid {
        /// File.
        path: String,
        /// What does not fit.
        message: String,
    },
}

/// Why bytes are not a checkpoint this build reads (or cannot become one).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFormat {
    /// Shorter than the header.
    #[error("truncated: {0} bytes is shorter than the {HEADER_LEN}-byte header", HEADER_LEN = gpo_core::container::HEADER_LEN)]
    TooShort(usize),
    /// Another kind of file.
    #[error("not a gpo checkpoint (bad magic bytes)")]
    NotCheckpoint,
    /// Another layout version.
    #[error("format version {0} (this build reads version {CHECKPOINT_VERSION})")]
    Version(u32),
    /// The header's payload length disagrees with the file.
    #[error("size mismatch: the header declares a {declared}-byte payload, the file holds {actual} bytes (truncated?)")]
    Length {
        /// Declared payload bytes.
        declared: u64,
        /// Bytes after the header.
        actual: usize,
    },
    /// The payload's checksum is wrong.
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupted")]
    Checksum {
        /// CRC in the header.
        stored: u32,
        /// CRC of the payload.
        computed: u32,
    },
    /// The payload does not decode (or could not be encoded).
    #[error("{0}")]
    Postcard(postcard::Error),
    /// Bytes after the checkpoint.
    #[error("{0} bytes after the checkpoint")]
    Trailing(usize),
    /// A training curve value that is no number.
    #[error(
        "curve point {index} (update {step}): {field} is {value}, not a finite number (the run diverged or the file is \
         corrupt)"
    )]
    NonFiniteCurve {
        /// Point index.
        index: usize,
        /// Its update.
        step: usize,
        /// `loss`, `validation` or `cpu_seconds`.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// The best model's score is no number.
    #[error("the best model's validation score (update {step}) is {score}, not a finite number")]
    NonFiniteBest {
        /// Its update.
        step: usize,
        /// Its score.
        score: f64,
    },
}

impl CheckpointError {
    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.display().to_string(), message: message.into() }
    }
}

impl Checkpoint {
    /// The file's bytes: header, then payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        let payload = postcard::to_allocvec(self)?;
        Ok(gpo_core::container::seal(&CHECKPOINT_MAGIC, CHECKPOINT_VERSION, &payload))
    }

    /// Decodes and checks a file's bytes; the error message says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointFormat> {
        use gpo_core::container::{ContainerError, open};
        let (_, payload) = open(bytes, &CHECKPOINT_MAGIC, &[CHECKPOINT_VERSION]).map_err(|e| match e {
            ContainerError::TooShort(n) => CheckpointFormat::TooShort(n),
            ContainerError::BadMagic { .. } => CheckpointFormat::NotCheckpoint,
            ContainerError::UnsupportedVersion { found } => CheckpointFormat::Version(found),
            ContainerError::Length { declared, actual } => CheckpointFormat::Length { declared, actual },
            ContainerError::Checksum { stored, computed } => CheckpointFormat::Checksum { stored, computed },
        })?;
        let (checkpoint, rest): (Checkpoint, _) =
            postcard::take_from_bytes(payload).map_err(CheckpointFormat::Postcard)?;
        if !rest.is_empty() {
            return Err(CheckpointFormat::Trailing(rest.len()));
        }
        for (i, point) in checkpoint.curve.iter().enumerate() {
            let values =
                [("loss", point.loss), ("validation", point.validation), ("cpu_seconds", Some(point.cpu_seconds))];
            if let Some((field, Some(value))) = values.into_iter().find(|(_, v)| v.is_some_and(|v| !v.is_finite())) {
                return Err(CheckpointFormat::NonFiniteCurve { index: i, step: point.step, field, value });
            }
        }
        if let Some((step, score, _)) = &checkpoint.best
            && !score.is_finite()
        {
            return Err(CheckpointFormat::NonFiniteBest { step: *step, score: *score });
        }
        Ok(checkpoint)
    }

    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_bytes().map_err(|e| CheckpointError::Format {
            path: path.display().to_string(),
            problem: CheckpointFormat::Postcard(e),
        })?;
        write_atomic(path, &bytes).map_err(|error| CheckpointError::Io { path: path.display().to_string(), error })
    }

    /// Loads a checkpoint (at most [`MAX_CHECKPOINT_BYTES`]) of the run identified by
    /// `fingerprint`.
    pub fn load(path: &Path, fingerprint: &str) -> Result<Self, CheckpointError> {
        let display = path.display().to_string();
        let bytes = read_capped(path, MAX_CHECKPOINT_BYTES)
            .map_err(|e| CheckpointError::Io { path: display.clone(), error: without_path(e) })?;
        let checkpoint =
            Self::from_bytes(&bytes).map_err(|problem| CheckpointError::Format { path: display.clone(), problem })?;
        if checkpoint.fingerprint != fingerprint {
            return Err(CheckpointError::OtherRun { path: display });
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            fingerprint: "abc".into(),
            step: 3,
            rng_state: 42,
            model: vec![1, 2, 3],
            optimizer: vec![4, 5],
            best: Some((2, 0.5, vec![6])),
            curve: vec![CurvePoint { step: 0, loss: None, validation: Some(0.5), cpu_seconds: 0.0 }],
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        let bytes = c.to_bytes().unwrap();
        assert_eq!(&bytes[..8], b"GPOCKPT\0");
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), c);
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let bytes = sample().to_bytes().unwrap();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(Checkpoint::from_bytes(&bad).is_err(), "bit {i}");
        }
        for cut in 0..bytes.len() {
            assert!(Checkpoint::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Checkpoint::from_bytes(&padded).unwrap_err().to_string().contains("size mismatch"));
        assert!(Checkpoint::from_bytes(&vec![0; bytes.len()]).unwrap_err().to_string().contains("magic"));
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.ckpt");
        sample().save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path, "abc").unwrap(), sample());
        let e = Checkpoint::load(&path, "other").unwrap_err().to_string();
        assert!(e.contains("another run") && e.contains("run.ckpt"), "{e}");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let e = Checkpoint::load(&path, "abc").unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("checksum"), "{e}");
        let e = Checkpoint::load(&dir.path().join("absent.ckpt"), "abc").unwrap_err().to_string();
        assert!(e.contains("absent.ckpt: No such file or directory"), "{e}");
    }

    mod resume {
        use std::path::Path;

        use burn_autodiff::Autodiff;
        use burn_ndarray::NdArray;
        use gpo_core::GpoConfig;
        use gpo_core::weights::{NamedTensor, named_tensors};

        use super::super::{Checkpoint, HEADER_LEN};
        use crate::prior::PriorKind;
        use crate::synthetic::{SyntheticSpec, synthetic_survey};
        use crate::train::{
            GpoMethod, Protocol, Session, Split, SplitOptions, TrainError, TrainOptions, ValidationMode, train,
        };

        type B = Autodiff<NdArray<f32>>;
        const STEPS: usize = 6;

        /// Trains a small prior variant for `STEPS` updates (stopping early with `stop_after`).
        fn run(checkpoint: &Path, resume: bool, stop_after: Option<usize>) -> Result<Vec<NamedTensor>, TrainError> {
            let task = synthetic_survey(SyntheticSpec {
                groups: 8,
                questions: 30,
                dim: 6,
                clusters: 2,
                sharpness: 4.0,
                seed: 1,
            });
            let split =
                Split::new(&task, Protocol::Groups, 0.75, 5, &SplitOptions::validation(ValidationMode::Groups, 0.2))
                    .unwrap();
            let method = GpoMethod {
                method: crate::method::Method::Variant("prior".into()),
                config: GpoConfig::new(6).with_d_model(8).with_d_ff(8).with_n_layers(1).with_prior(true),
                prior: Some(PriorKind::KnnGroups { temperature: 0.05 }),
                training: TrainOptions { steps: STEPS, eval_every: 2, ..TrainOptions::default() },
            };
            let session = Session { checkpoint: Some(checkpoint), resume, stop_after };
            let trained =
                train::<B>(&task, &split, &method, 9, session, &Default::default(), &crate::train::NoProgress)?;
            Ok(named_tensors(&trained.model))
        }

        /// A checkpoint after 3 of the `STEPS` updates, in a fresh folder.
        fn stopped() -> (tempfile::TempDir, std::path::PathBuf) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("run.ckpt");
            run(&path, false, Some(3)).unwrap();
            (dir, path)
        }

        /// Rewrites the checkpoint at `path` with `change` applied (with a valid header and CRC).
        fn rewrite(path: &Path, change: impl FnOnce(&mut Checkpoint)) {
            let mut c = Checkpoint::from_bytes(&std::fs::read(path).unwrap()).unwrap();
            change(&mut c);
            c.save(path).unwrap();
        }

        type Change = Box<dyn Fn(&mut Checkpoint)>;

        fn resume_error(path: &Path) -> String {
            let Err(e) = run(path, true, None) else { panic!("resuming must fail") };
            let e = e.to_string();
            assert!(e.contains(&path.display().to_string()), "the error must name the file: {e}");
            println!("{e}");
            e
        }

        #[test]
        fn resumed_run_matches_the_uninterrupted_one() {
            let (dir, path) = stopped();
            let uninterrupted = run(&dir.path().join("other.ckpt"), false, None).unwrap();
            assert_eq!(run(&path, true, None).unwrap(), uninterrupted);
            // Resuming a finished run gives its result again.
            assert_eq!(run(&path, true, None).unwrap(), uninterrupted);
        }

        #[test]
        fn flipped_bits_and_truncation_are_refused_naming_the_file() {
            let (_dir, path) = stopped();
            let good = std::fs::read(&path).unwrap();
            for at in [0, 9, 14, 21, 30, good.len() / 2, good.len() - 1] {
                let mut bad = good.clone();
                bad[at] ^= 0x04;
                std::fs::write(&path, &bad).unwrap();
                let e = resume_error(&path);
                assert!(e.contains("corrupt"), "{e}");
            }
            for len in [0, 10, 24, good.len() / 3, good.len() - 1] {
                std::fs::write(&path, &good[..len]).unwrap();
                let e = resume_error(&path);
                assert!(e.contains("truncated"), "{e}");
            }
            std::fs::write(&path, vec![0u8; good.len()]).unwrap();
            resume_error(&path);
        }

        #[test]
        fn zeroed_or_cut_records_are_errors_not_panics() {
            let (_dir, path) = stopped();
            let good = std::fs::read(&path).unwrap();
            let cases: [(&str, Change); 6] = [
                ("model record", Box::new(|c| c.model = vec![0; c.model.len()])),
                ("model record", Box::new(|c| c.model.truncate(c.model.len() / 2))),
                ("model record", Box::new(|c| c.model.clear())),
                ("optimizer record", Box::new(|c| c.optimizer = vec![0xff; c.optimizer.len()])),
                ("optimizer record", Box::new(|c| c.optimizer.truncate(c.optimizer.len() - 1))),
                ("best model", Box::new(|c| c.best.as_mut().unwrap().2 = vec![0; 64])),
            ];
            for (needle, change) in cases {
                std::fs::write(&path, &good).unwrap();
                rewrite(&path, change);
                let e = resume_error(&path);
                assert!(e.contains(needle), "expected {needle:?} in: {e}");
            }
        }

        #[test]
        fn a_step_the_run_cannot_reach_is_an_error() {
            let (_dir, path) = stopped();
            let good = std::fs::read(&path).unwrap();
            rewrite(&path, |c| c.step = STEPS + 5);
            let e = resume_error(&path);
            assert!(e.contains(&format!("update {}", STEPS + 5)) && e.contains(&format!("1 to {STEPS}")), "{e}");
            std::fs::write(&path, &good).unwrap();
            rewrite(&path, |c| c.step = 0);
            resume_error(&path);
            std::fs::write(&path, &good).unwrap();
            rewrite(&path, |c| {
                c.curve.pop();
            });
            assert!(resume_error(&path).contains("curve"));
        }

        /// Byte edits: (operation, position, byte); 0 inserts, 1 removes, 2 overwrites.
        fn apply(bytes: &mut Vec<u8>, edits: &[(u8, usize, u8)]) {
            for &(op, pos, byte) in edits {
                match op {
                    0 => bytes.insert(pos % (bytes.len() + 1), byte),
                    1 if !bytes.is_empty() => {
                        bytes.remove(pos % bytes.len());
                    }
                    _ if !bytes.is_empty() => {
                        let at = pos % bytes.len();
                        bytes[at] = byte;
                    }
                    _ => {}
                }
            }
        }

        /// The bytes of a checkpoint after 3 updates, made once.
        fn stopped_bytes() -> &'static [u8] {
            static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            BYTES.get_or_init(|| {
                let (_dir, path) = stopped();
                std::fs::read(path).unwrap()
            })
        }

        proptest::proptest! {
            // `GPO_FUZZ_CASES` fuzzes longer, as the integration tests' fuzz_inputs.
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
                std::env::var("GPO_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
            ))]

            /// Mutations behind a valid checksum (of the model record, the optimizer record, the
            /// best model, or anywhere in the payload) reach the decoders and the checks against
            /// the resumed run: resuming gives a result or an error naming the file, never a panic.
            #[test]
            fn mutated_checkpoints_with_valid_checksums_never_panic(
                part in 0u8..4,
                edits in proptest::collection::vec((0u8..3, proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..8),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("run.ckpt");
                let good = stopped_bytes();
                if part == 3 {
                    let mut payload = good[HEADER_LEN..].to_vec();
                    apply(&mut payload, &edits);
                    let mut bytes = good[..12].to_vec();
                    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
                    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
                    bytes.extend_from_slice(&payload);
                    std::fs::write(&path, bytes).unwrap();
                } else {
                    std::fs::write(&path, good).unwrap();
                    rewrite(&path, |c| match part {
                        0 => apply(&mut c.model, &edits),
                        1 => apply(&mut c.optimizer, &edits),
                        _ => {
                            if let Some(best) = c.best.as_mut() {
                                apply(&mut best.2, &edits);
                            }
                        }
                    });
                }
                // Weights that decode but are absurd (a NaN) may also make training diverge: that
                // error is the run's own, at the update where it happens.
                if let Err(e) = run(&path, true, None) {
                    let e = e.to_string();
                    proptest::prop_assert!(
                        e.contains(&path.display().to_string()) || e.contains("training diverged"),
                        "the error must name the file: {}",
                        e
                    );
                }
            }
        }

        #[test]
        fn another_runs_checkpoint_is_refused() {
            let (_dir, path) = stopped();
            rewrite(&path, |c| c.fingerprint = "0".repeat(64));
            assert!(resume_error(&path).contains("another run"));
        }

        #[test]
        fn resuming_removes_stale_temporary_files() {
            let (dir, path) = stopped();
            let other_pid = std::process::id().wrapping_add(1);
            let stale = dir.path().join(format!(".run.ckpt.{other_pid}-7.tmp"));
            let unrelated = dir.path().join(format!(".notes.txt.{other_pid}-7.tmp"));
            std::fs::write(&stale, b"half a checkpoint").unwrap();
            std::fs::write(&unrelated, b"x").unwrap();
            run(&path, true, None).unwrap();
            assert!(!stale.exists(), "stale temporary file left behind");
            assert!(unrelated.exists());
            // Also when the interrupted write was the first one (no checkpoint yet).
            let fresh = dir.path().join("fresh.ckpt");
            let stale = dir.path().join(format!(".fresh.ckpt.{other_pid}-0.tmp"));
            std::fs::write(&stale, b"half").unwrap();
            run(&fresh, true, Some(1)).unwrap();
            assert!(!stale.exists() && fresh.exists());
        }
    }

    #[test]
    fn non_finite_curves_are_refused() {
        for (loss, validation) in
            [(Some(f64::NAN), None), (None, Some(f64::INFINITY)), (Some(f64::NAN), Some(f64::NAN))]
        {
            let mut c = sample();
            c.curve.push(CurvePoint { step: 1, loss, validation, cpu_seconds: 0.1 });
            let message = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap_err().to_string();
            assert!(
                message.contains("curve point 1 (update 1)") && message.contains("not a finite number"),
                "{message}"
            );
        }
        let mut c = sample();
        c.best = Some((2, f64::NAN, vec![6]));
        assert!(Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap_err().to_string().contains("best model"));
    }
}
