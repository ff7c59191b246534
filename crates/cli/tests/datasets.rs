//! `--dataset mnist|fashion-mnist`: resolved under a data directory,
//! downloaded and verified on first use, from outside the workspace.

mod common;

use common::{assert_fails_cleanly, assert_ok, path, stderr};
use std::path::Path;
use std::process::{Command, Output};

/// A local copy of the real MNIST files, used as the mirror (the download
/// verifies the known SHA-256s, so synthetic files cannot stand in).
const MNIST_COPY: &str = "/work/shared/datasets/mnist";

/// `backprop args` run in `cwd`, with `env` set and the data variables of
/// the caller's environment removed.
fn backprop_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backprop"));
    cmd.current_dir(cwd)
        .env_remove("BACKPROP_DATA_DIR")
        .env_remove("BACKPROP_DATA_MIRROR")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run backprop")
}

#[test]
fn dataset_by_name_downloads_once_then_trains_evaluates_and_predicts() {
    if !Path::new(MNIST_COPY).join("t10k-labels-idx1-ubyte.gz").exists() {
        eprintln!("skipping: no MNIST copy in {MNIST_COPY} to serve as the mirror");
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let data_dir = store.path().join("data");
    let mirror = [("BACKPROP_DATA_MIRROR", MNIST_COPY)];
    let model = cwd.path().join("m.ckpt");
    let train = [
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        path(&data_dir),
        "--layers",
        "784,10",
        "--batch-size",
        "500",
        "--lr",
        "0.1",
        "--epochs",
        "1",
        "--save",
        path(&model),
        "--json",
    ];
    let out = backprop_in(cwd.path(), &mirror, &train);
    assert_ok(&out);
    let err = stderr(&out);
    assert_eq!(err.matches("verified").count(), 4, "{err}");
    assert!(err.contains(MNIST_COPY), "{err}");
    let dir = data_dir.join("mnist");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz"
        ]
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(line["test_accuracy"].as_f64().unwrap() > 0.8, "{line}");
    // MNIST's class names came with the data.
    let c = backprop_nn::Checkpoint::load(&model).unwrap();
    assert_eq!(c.classes[3], "3");

    // A second run downloads nothing, even with no mirror at all.
    let modified = std::fs::metadata(dir.join("t10k-images-idx3-ubyte.gz"))
        .unwrap()
        .modified()
        .unwrap();
    // (--epochs 0 --save: the data is resolved and loaded, nothing trained.)
    let untrained = cwd.path().join("untrained.ckpt");
    let out = backprop_in(
        cwd.path(),
        &[],
        &[
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            path(&data_dir),
            "--epochs",
            "0",
            "--save",
            path(&untrained),
        ],
    );
    assert_ok(&out);
    assert!(!stderr(&out).contains("fetching"), "{}", stderr(&out));
    assert_eq!(backprop_nn::Checkpoint::load(&untrained).unwrap().epoch(), 0);
    let again = std::fs::metadata(dir.join("t10k-images-idx3-ubyte.gz"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(modified, again);

    // BACKPROP_DATA_DIR stands in for --data-dir; eval and predict take the
    // name too.
    let env = [("BACKPROP_DATA_DIR", path(&data_dir))];
    let out = backprop_in(
        cwd.path(),
        &env,
        &["eval", path(&model), "--dataset", "mnist", "--json"],
    );
    assert_ok(&out);
    assert!(!stderr(&out).contains("fetching"));
    let out = backprop_in(
        cwd.path(),
        &env,
        &["predict", path(&model), "--dataset", "mnist", "--index", "0", "--quiet"],
    );
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("test image 0 (label 7)"));
}

#[test]
fn dataset_flags_are_checked_and_missing_data_says_how_to_fetch_it() {
    let cwd = tempfile::tempdir().unwrap();
    let out = backprop_in(cwd.path(), &[], &["train", "--dataset", "emnist"]);
    assert_fails_cleanly(&out, &["emnist", "fashion-mnist"]);
    let out = backprop_in(cwd.path(), &[], &["train", "--dataset", "mnist", "--data", "x"]);
    assert_fails_cleanly(&out, &["--dataset", "--data"]);
    let out = backprop_in(cwd.path(), &[], &["train", "--data-dir", "x"]);
    assert_fails_cleanly(&out, &["--dataset"]);
    // Outside the workspace, the default --data is missing: the message
    // names the way to fetch it.
    let out = backprop_in(cwd.path(), &[], &["train", "--epochs", "1"]);
    assert_fails_cleanly(&out, &["datasets/mnist", "--dataset mnist", "cargo xtask download"]);
}
