//! The `backprop` binary, run as a user would, on synthetic IDX files.

mod common;

use backprop_tests::Synthetic;
use common::{assert_fails_cleanly, backprop, path, stderr};

fn synthetic_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    dir
}

#[test]
fn train_prints_one_json_object_per_epoch() {
    let dir = synthetic_dir();
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,32,10",
        "--epochs",
        "3",
        "--lr",
        "0.1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], i + 1);
        for field in ["train_loss", "test_loss", "test_accuracy", "seconds"] {
            assert!(
                line[field].as_f64().is_some_and(f64::is_finite),
                "{field} missing in {line}"
            );
        }
        let acc = line["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "accuracy {acc} is not a fraction");
    }
    assert!(lines[2]["test_accuracy"].as_f64().unwrap() > 0.9, "{stdout}");
}

#[test]
fn train_prints_plain_lines_when_piped() {
    let dir = synthetic_dir();
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,10",
        "--epochs",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().filter(|l| l.starts_with("epoch")).count(), 2, "{stdout}");
    assert!(stdout.contains("test accuracy"));
    assert!(!stderr(&out).contains('\u{1b}'), "no terminal escapes when piped");
}

#[test]
fn batch_size_zero_is_refused() {
    let dir = synthetic_dir();
    let out = backprop(&["train", "--data", path(dir.path()), "--batch-size", "0"]);
    assert_fails_cleanly(&out, &["--batch-size"]);
}

#[test]
fn layers_that_do_not_fit_the_data_are_refused() {
    let dir = synthetic_dir();
    let out = backprop(&["train", "--data", path(dir.path()), "--layers", "784,128,10"]);
    assert_fails_cleanly(&out, &["--layers", "784", "64"]);
    let out = backprop(&["train", "--data", path(dir.path()), "--layers", "64,128,7"]);
    assert_fails_cleanly(&out, &["classes", "7", "10"]);
    let out = backprop(&["train", "--data", path(dir.path()), "--layers", "64"]);
    assert_fails_cleanly(&out, &["layer sizes"]);
}

#[test]
fn missing_data_directory_is_named() {
    let out = backprop(&["train", "--data", "/nonexistent/mnist"]);
    assert_fails_cleanly(&out, &["/nonexistent/mnist"]);
}

#[test]
fn bad_learning_rate_is_refused() {
    let dir = synthetic_dir();
    let out = backprop(&["train", "--data", path(dir.path()), "--lr=-1"]);
    assert_fails_cleanly(&out, &["learning rate"]);
}

#[test]
fn absurd_threads_and_layer_sizes_are_refused_before_any_allocation() {
    let dir = synthetic_dir();
    let out = backprop(&["train", "--data", path(dir.path()), "--threads", "99999"]);
    assert_fails_cleanly(&out, &["--threads", "0..=256"]);
    let out = backprop(&["train", "--data", path(dir.path()), "--layers", "64,100000000000,10"]);
    assert_fails_cleanly(&out, &["layer sizes", "parameters"]);
}

#[test]
fn save_into_a_missing_directory_is_refused_before_training() {
    let dir = synthetic_dir();
    let target = dir.path().join("no-such-dir").join("model.ckpt");
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,10",
        "--save",
        path(&target),
    ]);
    assert_fails_cleanly(&out, &["cannot save", "no-such-dir", "not a directory"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("epoch"),
        "no epoch should have run"
    );
}

#[test]
fn batch_size_zero_says_at_least_one() {
    let out = backprop(&["train", "--batch-size", "0"]);
    common::assert_fails_cleanly(&out, &["--batch-size", "must be at least 1"]);
    assert!(!common::stderr(&out).contains("18446744073709551615"));
}

#[test]
fn zero_epochs_need_save_and_then_write_the_untrained_model() {
    let dir = tempfile::tempdir().unwrap();
    backprop_tests::Synthetic::default().write_dir(dir.path(), true);
    let data = common::path(dir.path());
    let out = backprop(&["train", "--data", data, "--layers", "64,8,10", "--epochs", "0"]);
    common::assert_fails_cleanly(&out, &["--epochs 0", "--save"]);
    let ckpt = dir.path().join("zero.ckpt");
    let save = common::path(&ckpt);
    let out = backprop(&[
        "train", "--data", data, "--layers", "64,8,10", "--epochs", "0", "--save", save,
    ]);
    common::assert_ok(&out);
    let c = backprop_nn::Checkpoint::load(&ckpt).unwrap();
    assert_eq!(c.epoch(), 0);
    assert!(c.history.is_empty());
    // It loads for eval and resumes.
    common::assert_ok(&backprop(&["eval", save, "--data", data]));
    let out = backprop(&["train", "--data", data, "--resume", save, "--epochs", "1", "--json"]);
    common::assert_ok(&out);
    assert_eq!(backprop_nn::Checkpoint::load(&ckpt).unwrap().epoch(), 1);
}
