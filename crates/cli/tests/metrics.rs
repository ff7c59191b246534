//! `backprop train --save / --log` metrics files: one line per epoch in
//! `PATH.metrics.jsonl` and `PATH.metrics.csv`, continued on `--resume`.

mod common;

use backprop_nn::Checkpoint;
use backprop_tests::Synthetic;
use common::{assert_ok, backprop, path};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

fn train(data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--data",
        path(data),
        "--layers",
        "64,16,10",
        "--batch-size",
        "32",
        "--lr",
        "0.1",
        "--seed",
        "3",
        "--json",
    ];
    args.extend_from_slice(extra);
    backprop(&args)
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", base.display()))
}

fn jsonl(base: &Path) -> Vec<Value> {
    std::fs::read_to_string(with_suffix(base, ".metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn csv(base: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(with_suffix(base, ".metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn stdout_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The fields that are the same bits however the run was split.
fn measures(line: &Value) -> Vec<String> {
    ["epoch", "train_loss", "test_loss", "test_accuracy", "learning_rate"]
        .iter()
        .map(|k| line[k].to_string())
        .collect()
}

#[test]
fn save_writes_every_epoch_as_printed_by_json() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let ckpt = dir.path().join("m.ckpt");
    let out = train(dir.path(), &["--epochs", "3", "--save", path(&ckpt)]);
    assert_ok(&out);
    let printed = stdout_lines(&out);
    let written = jsonl(&ckpt);
    assert_eq!(written.len(), 3);
    for (mut p, w) in printed.into_iter().zip(&written) {
        p.as_object_mut().unwrap().remove("epochs");
        assert_eq!(&p, w);
    }
    let rows = csv(&ckpt);
    assert_eq!(
        rows[0],
        [
            "epoch",
            "train_loss",
            "validation_loss",
            "validation_accuracy",
            "test_loss",
            "test_accuracy",
            "learning_rate",
            "seconds",
            "eval_seconds"
        ]
    );
    assert_eq!(rows.len(), 4);
    for (row, w) in rows[1..].iter().zip(&written) {
        for (cell, key) in row.iter().zip(&rows[0]) {
            if cell.is_empty() {
                // No validation split: no validation fields either.
                assert!(w.get(key).is_none(), "{key}");
                continue;
            }
            let a: f64 = cell.parse().unwrap();
            assert_eq!(a, w[key].as_f64().unwrap(), "{key}");
        }
    }
    // A fresh run replaces the files.
    assert_ok(&train(dir.path(), &["--epochs", "1", "--save", path(&ckpt)]));
    assert_eq!(jsonl(&ckpt).len(), 1);
    assert_eq!(csv(&ckpt).len(), 2);
}

#[test]
fn log_without_save_writes_only_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let base = dir.path().join("run");
    assert_ok(&train(dir.path(), &["--epochs", "2", "--log", path(&base)]));
    assert_eq!(jsonl(&base).len(), 2);
    assert_eq!(csv(&base).len(), 3);
    assert!(!base.exists());
}

#[test]
fn a_resumed_run_drops_lines_past_its_checkpoint_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let straight = dir.path().join("straight.ckpt");
    let split = dir.path().join("split.ckpt");
    assert_ok(&train(dir.path(), &["--epochs", "4", "--save", path(&straight)]));
    assert_ok(&train(dir.path(), &["--epochs", "2", "--save", path(&split)]));
    // A run killed after epoch 3's metrics lines but before its checkpoint.
    for (suffix, line) in [
        (".metrics.jsonl", "{\"epoch\":3,\"train_loss\":9.0}\n"),
        (".metrics.csv", "3,9,9,0,0.1,1,1\n"),
    ] {
        let mut f = std::fs::File::options()
            .append(true)
            .open(with_suffix(&split, suffix))
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }
    assert_eq!(jsonl(&split).len(), 3);
    let before = jsonl(&split);
    let out = train(dir.path(), &["--epochs", "4", "--resume", path(&split)]);
    assert_ok(&out);
    let (a, b) = (jsonl(&straight), jsonl(&split));
    assert_eq!(
        b.iter().map(|l| l["epoch"].as_u64().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(&b[..2], &before[..2], "kept lines are unchanged");
    assert_eq!(
        a.iter().map(measures).collect::<Vec<_>>(),
        b.iter().map(measures).collect::<Vec<_>>()
    );
    let rows = csv(&split);
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows.iter().skip(1).map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["1", "2", "3", "4"]
    );
    assert_eq!(
        rows[1..],
        csv(&straight)[1..]
            .iter()
            .zip(&rows[1..])
            .map(|(s, r)| {
                // seconds and eval_seconds differ from run to run.
                let mut s = s.clone();
                s[7].clone_from(&r[7]);
                s[8].clone_from(&r[8]);
                s
            })
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(Checkpoint::load(&split).unwrap().history.len(), 4);
}

#[test]
fn missing_metrics_are_restored_from_the_checkpoint_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let ckpt = dir.path().join("m.ckpt");
    assert_ok(&train(dir.path(), &["--epochs", "2", "--save", path(&ckpt)]));
    let before = jsonl(&ckpt);
    std::fs::remove_file(with_suffix(&ckpt, ".metrics.jsonl")).unwrap();
    std::fs::remove_file(with_suffix(&ckpt, ".metrics.csv")).unwrap();
    assert_ok(&train(dir.path(), &["--epochs", "3", "--resume", path(&ckpt)]));
    let after = jsonl(&ckpt);
    assert_eq!(after.len(), 3);
    assert_eq!(
        after[..2].iter().map(measures).collect::<Vec<_>>(),
        before.iter().map(measures).collect::<Vec<_>>()
    );
    assert!(after[0].get("eval_seconds").is_none() && after[2].get("eval_seconds").is_some());
    let rows = csv(&ckpt);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1][8], "");
}

#[test]
fn resuming_into_another_file_continues_the_resumed_runs_metrics() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let first = dir.path().join("first.ckpt");
    let second = dir.path().join("second.ckpt");
    assert_ok(&train(dir.path(), &["--epochs", "2", "--save", path(&first)]));
    // An unrelated run left metrics where the resumed run now saves.
    assert_ok(&train(
        dir.path(),
        &["--epochs", "3", "--optimizer", "momentum", "--save", path(&second)],
    ));
    let before = jsonl(&first);
    let out = train(
        dir.path(),
        &["--epochs", "3", "--resume", path(&first), "--save", path(&second)],
    );
    assert_ok(&out);
    let after = jsonl(&second);
    assert_eq!(after.len(), 3);
    assert_eq!(&after[..2], &before[..]);
    assert_eq!(jsonl(&first), before, "the resumed run's files are left alone");
}
