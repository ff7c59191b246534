//! Every way a checkpoint file can be damaged, made from the bytes of a real
//! checkpoint: each is refused with an error naming the problem, and no
//! input, random or mutated, panics the loader.

use backprop_nn::checkpoint::record::DataRecord;
use backprop_nn::{CHECKPOINT_HEADER_LEN, Checkpoint, NnError, TrainConfig, Trainer, evaluate};
use backprop_tests::{Synthetic, epoch_record};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The bytes of a checkpoint after one epoch of training on synthetic data.
fn real_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        Synthetic::default().write_dir(dir.path(), true);
        let data = backprop_data::load_dir(dir.path()).unwrap();
        let config = TrainConfig {
            sizes: vec![64, 12, 10],
            epochs: 2,
            batch_size: 50,
            learning_rate: 0.1,
            seed: 3,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(config, data.train.len()).unwrap();
        let stats = trainer.train_epoch(&data.train, |_, _, _| {}).unwrap();
        let eval = evaluate(trainer.model(), &data.test).unwrap();
        let history = vec![epoch_record(&stats, &eval)];
        let dataset = DataRecord::Idx {
            files: backprop_data::hash_dir(dir.path()).unwrap(),
        };
        let path = dir.path().join("real.ckpt");
        Checkpoint::from_trainer(&trainer, history, dataset)
            .save(&path)
            .unwrap();
        std::fs::read(&path).unwrap()
    })
}

/// Writes `bytes` to a file and loads it.
fn load(bytes: &[u8]) -> (tempfile::TempDir, PathBuf, Result<Checkpoint, NnError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.ckpt");
    std::fs::write(&path, bytes).unwrap();
    let result = Checkpoint::load(&path);
    (dir, path, result)
}

/// Loads `bytes` from a file, expects an error whose message names the file
/// and contains every needle, and returns the error.
#[track_caller]
fn rejected(bytes: &[u8], needles: &[&str]) -> NnError {
    let (_dir, path, result) = load(bytes);
    let err = result.expect_err("a damaged checkpoint must be refused");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "should name the file: {msg}");
    for needle in needles {
        assert!(msg.contains(needle), "should mention {needle:?}: {msg}");
    }
    // The in-memory reader agrees with the file reader.
    let mem = Checkpoint::from_bytes(bytes, Path::new("mem")).unwrap_err();
    assert_eq!(
        std::mem::discriminant(&mem),
        std::mem::discriminant(&err),
        "{mem} vs {err}"
    );
    err
}

fn with_crc_fixed(mut bytes: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&bytes[CHECKPOINT_HEADER_LEN..]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn the_real_checkpoint_loads() {
    let (_dir, _path, result) = load(real_bytes());
    let c = result.unwrap();
    assert_eq!((c.epoch(), c.sizes().as_slice()), (1, &[64, 12, 10][..]));
}

#[test]
fn a_flipped_payload_byte_fails_the_checksum() {
    let len = real_bytes().len();
    for at in [CHECKPOINT_HEADER_LEN, CHECKPOINT_HEADER_LEN + 1, len / 2, len - 1] {
        let mut bytes = real_bytes().to_vec();
        bytes[at] ^= 0x40;
        let err = rejected(&bytes, &["corrupt or truncated", "checksum"]);
        assert!(matches!(err, NnError::CorruptCheckpoint { .. }), "{err:?}");
    }
}

#[test]
fn a_flipped_checksum_byte_is_corrupt() {
    let mut bytes = real_bytes().to_vec();
    bytes[21] ^= 1;
    rejected(&bytes, &["corrupt or truncated", "checksum"]);
}

#[test]
fn truncation_anywhere_is_reported() {
    let len = real_bytes().len();
    for cut in [
        1,
        4,
        7,
        8,
        11,
        12,
        19,
        20,
        23,
        24,
        25,
        len / 3,
        len / 2,
        len - 4,
        len - 1,
    ] {
        let err = rejected(&real_bytes()[..cut], &["corrupt or truncated"]);
        assert!(
            matches!(err, NnError::CorruptCheckpoint { .. }),
            "cut at {cut}: {err:?}"
        );
        if cut >= CHECKPOINT_HEADER_LEN {
            assert!(
                err.to_string()
                    .contains(&format!("holds {}", cut - CHECKPOINT_HEADER_LEN)),
                "{err}"
            );
        }
    }
}

#[test]
fn trailing_bytes_and_a_wrong_length_are_corrupt() {
    let mut longer = real_bytes().to_vec();
    longer.extend_from_slice(b"extra");
    rejected(&longer, &["corrupt or truncated", "declares a payload of"]);
    // The length field itself changed: a huge claim is refused before
    // anything is allocated for it.
    let mut bytes = real_bytes().to_vec();
    bytes[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    rejected(&bytes, &["corrupt or truncated", &u64::MAX.to_string()]);
}

#[test]
fn another_format_version_names_both_versions() {
    for version in [0u32, 4, 7, u32::MAX] {
        let mut bytes = real_bytes().to_vec();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        let err = rejected(&bytes, &[&format!("version {version}"), "versions 1 to 3"]);
        assert!(
            matches!(err, NnError::CheckpointVersion { found, supported: 3, .. } if found == version),
            "{err:?}"
        );
    }
    // A format-3 payload behind a format-1 or format-2 header does not pass
    // for one.
    for older in [1u32, 2] {
        let mut bytes = real_bytes().to_vec();
        bytes[8..12].copy_from_slice(&older.to_le_bytes());
        assert!(Checkpoint::from_bytes(&bytes, Path::new("m")).is_err(), "{older}");
    }
}

#[test]
fn wrong_magic_random_and_empty_files_are_not_checkpoints() {
    let mut bytes = real_bytes().to_vec();
    bytes[0] = b'b';
    rejected(&bytes, &["not a backprop checkpoint"]);
    let mut rng = backprop_tensor::Rng::seed_from_u64(1);
    let random: Vec<u8> = (0..5000).map(|_| rng.next_u64() as u8).collect();
    rejected(&random, &["not a backprop checkpoint"]);
    rejected(b"", &["not a backprop checkpoint", "empty"]);
    rejected(b"{\"epoch\": 3}", &["not a backprop checkpoint"]);
    // An MNIST file given by mistake.
    rejected(
        &backprop_data::encode_labels(&[1, 2, 3]),
        &["not a backprop checkpoint"],
    );
}

#[test]
fn a_payload_that_does_not_decode_is_corrupt_even_with_a_valid_checksum() {
    // Cut the payload short but fix the length and CRC: the header is
    // consistent, the payload is not.
    let keep = real_bytes().len() - 10;
    let mut bytes = real_bytes()[..keep].to_vec();
    bytes[12..20].copy_from_slice(&((keep - CHECKPOINT_HEADER_LEN) as u64).to_le_bytes());
    rejected(&with_crc_fixed(bytes), &["corrupt or truncated", "does not decode"]);
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = Checkpoint::load(Path::new("/nonexistent/model.ckpt")).unwrap_err();
    assert!(matches!(err, NnError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/model.ckpt"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random bytes are refused, without a panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(Checkpoint::from_bytes(&bytes, Path::new("random")).is_err());
    }

    /// Random payloads behind a consistent header (right magic, version,
    /// length and CRC) reach the decoder, which refuses them without a panic.
    #[test]
    fn random_payloads_with_a_valid_header_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut bytes = real_bytes()[..CHECKPOINT_HEADER_LEN].to_vec();
        bytes[12..20].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let _ = Checkpoint::from_bytes(&with_crc_fixed(bytes), Path::new("random"));
    }

    /// Changing bytes of a real checkpoint at random positions is always
    /// detected; with the checksum recomputed (a hostile or buggy writer),
    /// the loader still never panics, and anything it accepts is valid.
    #[test]
    fn mutated_checkpoints_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
    ) {
        let mut bytes = real_bytes().to_vec();
        for (at, xor) in &edits {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        prop_assume!(bytes != real_bytes());
        prop_assert!(Checkpoint::from_bytes(&bytes, Path::new("mutated")).is_err());
        if let Ok(c) = Checkpoint::from_bytes(&with_crc_fixed(bytes), Path::new("mutated")) {
            prop_assert!(c.to_bytes().is_ok());
            prop_assert!(c.model().is_ok());
            prop_assert!(c.into_trainer(600).is_ok());
        }
    }
}
