//! Class names: stored in the checkpoint for Fashion-MNIST (garments) and
//! MNIST (digits), printed by `eval` and `predict`.

mod common;

use backprop_nn::Checkpoint;
use backprop_tests::Synthetic;
use common::{assert_ok, backprop, path};
use std::path::Path;

const GARMENTS: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

#[test]
fn eval_and_predict_print_the_checkpoints_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    Synthetic::default().write_dir(&data, true);
    let model = dir.path().join("m.ckpt");
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(&data),
        "--layers",
        "64,8,10",
        "--epochs",
        "1",
        "--save",
        path(&model),
    ]));
    // Synthetic data is no known data set: no names.
    let mut c = Checkpoint::load(&model).unwrap();
    assert!(c.classes.is_empty());
    c.classes = GARMENTS.iter().map(|&n| n.to_owned()).collect();
    c.save(&model).unwrap();

    let out = backprop(&[
        "predict",
        path(&model),
        "--index",
        "0",
        "--data",
        path(&data),
        "--quiet",
    ]);
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let (_, test) = Synthetic::default().generate();
    let label = GARMENTS[usize::from(test.labels[0])];
    assert!(text.contains(&format!("(label {label})")), "{text}");
    assert!(GARMENTS.iter().any(|g| text.contains(&format!(": {g}  ("))), "{text}");

    let out = backprop(&["predict", path(&model), "--index", "0", "--data", path(&data), "--json"]);
    assert_ok(&out);
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["label_name"], label);
    let predicted = p["predicted"].as_u64().unwrap() as usize;
    assert_eq!(p["predicted_name"], GARMENTS[predicted]);
    assert_eq!(p["top"][0]["name"], GARMENTS[predicted]);

    let out = backprop(&["eval", path(&model), "--data", path(&data)]);
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("0 T-shirt/top") && text.contains("Ankle boot"), "{text}");
}

/// The untrained model (`--epochs 0 --save`) of the real data set in
/// `dir`, if present.
fn untrained_on(dir: &Path) -> Option<Checkpoint> {
    if !dir.join("t10k-labels-idx1-ubyte.gz").exists() {
        eprintln!("skipping: no copy of the data set in {}", dir.display());
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.ckpt");
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(dir),
        "--layers",
        "784,10",
        "--epochs",
        "0",
        "--save",
        path(&model),
    ]));
    Some(Checkpoint::load(&model).unwrap())
}

#[test]
fn fashion_mnist_is_recognised_by_its_test_files() {
    if let Some(c) = untrained_on(Path::new("/work/shared/datasets/fashion-mnist")) {
        assert_eq!(c.classes, GARMENTS);
    }
    if let Some(c) = untrained_on(Path::new("/work/shared/datasets/mnist")) {
        assert_eq!(c.classes, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    }
}
