//! Tabular data from the command line: a CSV with string class labels
//! trains, evaluates and predicts; a regression target reports MSE and R²;
//! bad CSV is refused with the line and column.

mod common;

use backprop_tensor::Rng;
use common::{assert_fails_cleanly, assert_ok, backprop, path};
use std::fmt::Write;
use std::path::Path;

/// Three well-separated blobs in 4-D with class names, and a numeric target
/// `y = x0 - 2 x1 + x3`.
fn write_table(file: &Path, n: usize, seed: u64) {
    let mut rng = Rng::seed_from_u64(seed);
    let names = ["setosa", "versicolor", "virginica"];
    let mut text = String::from("a,b,c,d,species,y\n");
    for i in 0..n {
        let class = i % 3;
        let x: Vec<f64> = (0..4)
            .map(|j| (class * (j + 1)) as f64 * 1.5 + rng.normal() * 0.3)
            .collect();
        let y = x[0] - 2.0 * x[1] + x[3];
        let _ = writeln!(
            text,
            "{:.4},{:.4},{:.4},{:.4},{},{y:.4}",
            x[0], x[1], x[2], x[3], names[class]
        );
    }
    std::fs::write(file, text).unwrap();
}

#[test]
fn a_csv_classifier_trains_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("flowers.csv");
    write_table(&table, 300, 1);
    let model = dir.path().join("flowers.ckpt");
    let out = backprop(&[
        "train",
        "--data",
        path(&table),
        "--target",
        "species",
        "--standardize",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "15",
        "--batch-size",
        "16",
        "--save",
        path(&model),
        "--json",
    ]);
    assert_ok(&out);
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap();
    assert!(last["test_accuracy"].as_f64().unwrap() > 0.95, "{last}");

    let out = backprop(&["inspect", path(&model), "--json"]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["classes"],
        serde_json::json!(["setosa", "versicolor", "virginica"])
    );
    assert_eq!(json["sizes"], serde_json::json!([5, 64, 3]), "inputs: a, b, c, d and y");
    assert_eq!(json["standardized"], true);

    let out = backprop(&["eval", path(&model), "--data", path(&table), "--json"]);
    assert_ok(&out);
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(eval["accuracy"].as_f64().unwrap() > 0.95, "{eval}");

    let out = backprop(&["predict", path(&model), "--csv", path(&table), "--json"]);
    assert_ok(&out);
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 300);
    assert_eq!(rows[0]["line"], 2);
    let right = rows.iter().enumerate().filter(|(i, r)| r["predicted"] == i % 3).count();
    assert!(right > 285, "{right} of 300");
    assert_eq!(rows[1]["class"], "versicolor");
}

#[test]
fn a_csv_regression_reports_mse_and_r2() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (dir.path().join("train.csv"), dir.path().join("test.csv"));
    write_table(&train, 400, 2);
    write_table(&test, 100, 3);
    // The class column is text: a regression on `y` must not take it as a feature.
    let text = std::fs::read_to_string(&train)
        .unwrap()
        .replace(",setosa", ",0")
        .replace(",versicolor", ",1")
        .replace(",virginica", ",2");
    std::fs::write(&train, text).unwrap();
    let text = std::fs::read_to_string(&test)
        .unwrap()
        .replace(",setosa", ",0")
        .replace(",versicolor", ",1")
        .replace(",virginica", ",2");
    std::fs::write(&test, text).unwrap();
    let model = dir.path().join("y.ckpt");
    let out = backprop(&[
        "train",
        "--data",
        path(&train),
        "--test",
        path(&test),
        "--target",
        "y",
        "--loss",
        "mse",
        "--standardize",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "40",
        "--batch-size",
        "16",
        "--save",
        path(&model),
        "--json",
    ]);
    assert_ok(&out);
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap();
    assert!(last["test_r2"].as_f64().unwrap() > 0.95, "{last}");
    assert!(last.get("test_accuracy").is_none());
    let out = backprop(&["eval", path(&model), "--data", path(&test), "--json"]);
    assert_ok(&out);
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        (eval["mse"].as_f64().unwrap() - last["test_mse"].as_f64().unwrap()).abs() < 1e-9,
        "{eval} {last}"
    );
}

#[test]
fn bad_csv_and_flags_are_refused_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("bad.csv");
    std::fs::write(&table, "a,b,label\n1,2,x\n3,oops,y\n").unwrap();
    assert_fails_cleanly(
        &backprop(&["train", "--data", path(&table), "--target", "label"]),
        &["bad.csv", "line 3", "b", "oops"],
    );
    std::fs::write(&table, "a,b,label\n1,2,x\n3,4\n").unwrap();
    assert_fails_cleanly(
        &backprop(&["train", "--data", path(&table), "--target", "label"]),
        &["bad.csv", "line 3", "expected 3"],
    );
    std::fs::write(&table, "a,b,label\n1,2,x\n3,4,x\n").unwrap();
    assert_fails_cleanly(
        &backprop(&["train", "--data", path(&table), "--target", "label"]),
        &["bad.csv", "x"],
    );
    assert_fails_cleanly(
        &backprop(&["train", "--data", path(&table), "--target", "nope"]),
        &["bad.csv", "nope"],
    );
    assert_fails_cleanly(&backprop(&["train", "--data", path(&table)]), &["--target"]);
    assert_fails_cleanly(
        &backprop(&[
            "train",
            "--data",
            path(&table),
            "--target",
            "label",
            "--optimizer",
            "sgd",
            "--beta1",
            "0.9",
        ]),
        &["--beta1", "sgd"],
    );
    assert_fails_cleanly(&backprop(&["train", "--lr", "-1"]), &["learning rate", "-1"]);
    assert_fails_cleanly(&backprop(&["train", "--activation", "softplus"]), &["softplus"]);
}

/// A CSV run resumes exactly (same hold-out split, the stored
/// standardisation), and a resume that changes the target or the test file
/// is refused.
#[test]
fn a_csv_run_resumes_exactly_and_refuses_other_columns() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t.csv");
    write_table(&table, 200, 4);
    let (straight, split) = (dir.path().join("a.ckpt"), dir.path().join("b.ckpt"));
    let run = |epochs: &str, save: &Path| {
        let out = backprop(&[
            "train",
            "--data",
            path(&table),
            "--target",
            "species",
            "--standardize",
            "--optimizer",
            "momentum",
            "--lr",
            "0.05",
            "--epochs",
            epochs,
            "--batch-size",
            "16",
            "--save",
            path(save),
        ]);
        assert_ok(&out);
    };
    run("4", &straight);
    run("2", &split);
    let resume = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            path(&table),
            "--resume",
            path(&split),
            "--epochs",
            "4",
        ];
        args.extend_from_slice(extra);
        backprop(&args)
    };
    assert_fails_cleanly(&resume(&["--target", "y"]), &["--target", "species"]);
    assert_fails_cleanly(&resume(&["--standardize"]), &["--standardize", "--resume"]);
    assert_fails_cleanly(&resume(&["--test", path(&table)]), &["differs"]);
    assert_ok(&resume(&[]));
    let inspect = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&backprop(&["inspect", path(p), "--json"]).stdout).unwrap()
    };
    assert_eq!(
        inspect(&straight)["parameters_sha256"],
        inspect(&split)["parameters_sha256"]
    );
}
