//! What a hostile tester tried, each refused cleanly: nothing the user had
//! is lost or replaced by something unreadable, nothing hangs, garbage is
//! not accepted silently.

mod common;

use backprop_nn::{Checkpoint, Loss, Mlp};
use backprop_tensor::Rng;
use backprop_tests::Synthetic;
use common::{assert_fails_cleanly, assert_ok, backprop, path, stderr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn synthetic_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    dir
}

/// A one-epoch model of the synthetic data saved at `dir/name`.
fn trained(dir: &Path, name: &str) -> PathBuf {
    let ckpt = dir.join(name);
    let out = backprop(&[
        "train",
        "--data",
        path(dir),
        "--layers",
        "64,16,10",
        "--epochs",
        "1",
        "--lr",
        "0.1",
        "--save",
        path(&ckpt),
    ]);
    assert_ok(&out);
    ckpt
}

#[test]
fn a_diverging_run_fails_and_keeps_the_previous_checkpoint_byte_identical() {
    let dir = synthetic_dir();
    let ckpt = trained(dir.path(), "m.ckpt");
    let before = std::fs::read(&ckpt).unwrap();
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,16,10",
        "--epochs",
        "2",
        "--lr",
        "1e30",
        "--save",
        path(&ckpt),
    ]);
    assert_fails_cleanly(&out, &["diverged", "epoch 1", "lower the learning rate", "m.ckpt"]);
    assert_eq!(std::fs::read(&ckpt).unwrap(), before);
    // A negative learning rate reaches the validator (not taken for a flag).
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--lr",
        "-1",
        "--layers",
        "64,16,10",
    ]);
    assert_fails_cleanly(&out, &["learning rate", "-1"]);
}

#[test]
fn outputs_that_are_inputs_or_special_files_are_refused() {
    let dir = synthetic_dir();
    let ckpt = trained(dir.path(), "m.ckpt");
    let before = std::fs::read(&ckpt).unwrap();
    assert_fails_cleanly(
        &backprop(&["export", path(&ckpt), "--format", "npz", path(&ckpt)]),
        &["is the input", "m.ckpt"],
    );
    assert_fails_cleanly(
        &backprop(&[
            "eval",
            path(&ckpt),
            "--data",
            path(dir.path()),
            "--predictions",
            path(&ckpt),
        ]),
        &["--predictions", "is the input"],
    );
    let images = dir.path().join("train-images-idx3-ubyte.gz");
    let data_before = std::fs::read(&images).unwrap();
    assert_fails_cleanly(
        &backprop(&[
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,10",
            "--save",
            path(&images),
        ]),
        &["--save", "is the input", "train-images-idx3-ubyte.gz"],
    );
    assert_eq!(std::fs::read(&images).unwrap(), data_before);
    assert_eq!(std::fs::read(&ckpt).unwrap(), before);
    // A device is never replaced by a checkpoint...
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,10",
        "--epochs",
        "1",
        "--save",
        "/dev/null",
    ]);
    assert_fails_cleanly(&out, &["/dev/null", "not a regular file"]);
    assert!(!std::fs::metadata("/dev/null").unwrap().file_type().is_file());
    // ... but an export may be written to one, as a user means by /dev/stdout.
    assert_ok(&backprop(&["export", path(&ckpt), "--format", "npz", "/dev/null"]));
    // A symbolic link to a checkpoint is followed: the target is updated.
    let link = dir.path().join("link.ckpt");
    std::os::unix::fs::symlink("m.ckpt", &link).unwrap();
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--resume",
        path(&link),
        "--epochs",
        "2",
    ]);
    assert_ok(&out);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(Checkpoint::load(&ckpt).unwrap().epoch(), 2);
}

#[test]
fn a_fifo_given_as_a_checkpoint_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("f");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    assert_fails_cleanly(&backprop(&["inspect", path(&fifo)]), &["not a regular file"]);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_second_run_saving_to_the_same_file_is_refused() {
    let dir = synthetic_dir();
    let ckpt = dir.path().join("m.ckpt");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args([
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,16,10",
            "--epochs",
            "100000",
            "--save",
            path(&ckpt),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run has saved once, so it certainly holds the lock.
    let start = Instant::now();
    while !ckpt.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,16,10",
        "--epochs",
        "1",
        "--save",
        path(&ckpt),
    ]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_fails_cleanly(&out, &["another training run is saving to", "m.ckpt"]);
    // Once the first run is gone, the path is free again.
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,16,10",
        "--epochs",
        "1",
        "--save",
        path(&ckpt),
    ]));
}

#[test]
fn empty_sets_and_other_data_are_not_accepted_silently() {
    let empty_train = tempfile::tempdir().unwrap();
    Synthetic {
        n_train: 0,
        ..Synthetic::default()
    }
    .write_dir(empty_train.path(), true);
    assert_fails_cleanly(
        &backprop(&["train", "--data", path(empty_train.path()), "--layers", "64,10"]),
        &["no training examples"],
    );
    let empty_test = tempfile::tempdir().unwrap();
    Synthetic {
        n_test: 0,
        ..Synthetic::default()
    }
    .write_dir(empty_test.path(), true);
    assert_fails_cleanly(
        &backprop(&[
            "train",
            "--data",
            path(empty_test.path()),
            "--layers",
            "64,10",
            "--epochs",
            "1",
        ]),
        &["no examples to evaluate"],
    );
    // A model evaluated on other data of the same shape is refused, unless asked.
    let dir = synthetic_dir();
    let ckpt = trained(dir.path(), "m.ckpt");
    let other = tempfile::tempdir().unwrap();
    Synthetic {
        seed: 99,
        ..Synthetic::default()
    }
    .write_dir(other.path(), true);
    assert_fails_cleanly(
        &backprop(&["eval", path(&ckpt), "--data", path(other.path())]),
        &["other data", "--allow-other-data"],
    );
    let out = backprop(&["eval", path(&ckpt), "--data", path(other.path()), "--allow-other-data"]);
    assert_ok(&out);
}

#[test]
fn weights_that_overflow_give_an_error_not_nan() {
    let dir = synthetic_dir();
    let mut model = Mlp::new(&[64, 16, 10], &mut Rng::seed_from_u64(1)).unwrap();
    for layer in model.layers_mut() {
        layer.w.fill(f32::MAX);
    }
    let ckpt = dir.path().join("huge.ckpt");
    model.save(&ckpt, Loss::CrossEntropy).unwrap();
    let out = backprop(&["eval", path(&ckpt), "--data", path(dir.path())]);
    assert_fails_cleanly(&out, &["not finite", "too large"]);
    let out = backprop(&["predict", path(&ckpt), "--data", path(dir.path()), "--index", "0"]);
    assert_fails_cleanly(&out, &["not finite"]);
    assert!(!stderr(&out).contains("NaN"));
}

#[test]
fn predict_help_states_the_image_limit() {
    let out = backprop(&["predict", "--help"]);
    assert_ok(&out);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("50 megapixels") && help.contains("400 MB"), "{help}");
    // The constants the text quotes.
    assert_eq!(backprop_data::MAX_IMAGE_PIXELS, 50_000_000);
    assert_eq!(backprop_data::MAX_IMAGE_FILE_BYTES, 400_000_000);
}
