//! `backprop train --save / --resume` and `backprop inspect`, run as a user
//! would, on synthetic IDX files.

mod common;

use backprop_nn::Checkpoint;
use backprop_tests::Synthetic;
use common::{assert_fails_cleanly, assert_ok, backprop, path, stderr};
use std::path::Path;
use std::process::Output;

/// `train` on `data` with the test's fixed settings and `extra` flags.
fn train(data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--data",
        path(data),
        "--layers",
        "64,24,10",
        "--batch-size",
        "32",
        "--lr",
        "0.1",
        "--seed",
        "5",
        "--json",
    ];
    args.extend_from_slice(extra);
    backprop(&args)
}

fn weight_bytes(c: &Checkpoint) -> Vec<u8> {
    c.layers
        .iter()
        .flat_map(|p| p.weight.iter().chain(&p.bias))
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

fn inspect_json(file: &Path) -> serde_json::Value {
    let out = backprop(&["inspect", path(file), "--json"]);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn two_epochs_resumed_to_four_equal_four_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let straight = dir.path().join("straight.ckpt");
    let split = dir.path().join("split.ckpt");
    assert_ok(&train(dir.path(), &["--epochs", "4", "--save", path(&straight)]));
    assert_ok(&train(dir.path(), &["--epochs", "2", "--save", path(&split)]));
    assert_eq!(Checkpoint::load(&split).unwrap().epoch(), 2);

    // --resume alone saves back to the same file; only --epochs is new.
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--resume",
        path(&split),
        "--epochs",
        "4",
        "--json",
    ]);
    assert_ok(&out);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.iter().map(|l| l["epoch"].as_u64().unwrap()).collect::<Vec<_>>(),
        [3, 4]
    );

    let (a, b) = (Checkpoint::load(&straight).unwrap(), Checkpoint::load(&split).unwrap());
    assert_eq!(weight_bytes(&a), weight_bytes(&b));
    assert_eq!(a.training, b.training);
    assert_eq!(b.history.len(), 4);
    for (x, y) in a.history.iter().zip(&b.history) {
        assert_eq!((x.epoch, x.train_loss, x.test), (y.epoch, y.train_loss, y.test));
    }
    // inspect shows the same parameter hash for both.
    let (ja, jb) = (inspect_json(&straight), inspect_json(&split));
    assert_eq!(ja["parameters_sha256"], jb["parameters_sha256"]);
    assert_eq!(ja["parameters_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(jb["training"]["epoch"], 4);

    // Resuming with the same values given explicitly, and --save elsewhere.
    let copy = dir.path().join("copy.ckpt");
    let out = train(
        dir.path(),
        &["--resume", path(&split), "--epochs", "5", "--save", path(&copy)],
    );
    assert_ok(&out);
    assert_eq!(Checkpoint::load(&copy).unwrap().epoch(), 5);
    assert_eq!(
        Checkpoint::load(&split).unwrap().epoch(),
        4,
        "--save redirects the writes"
    );
}

#[test]
fn resume_refuses_flags_that_change_the_run() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), false);
    let ckpt = dir.path().join("run.ckpt");
    assert_ok(&train(dir.path(), &["--epochs", "1", "--save", path(&ckpt)]));
    let before = std::fs::read(&ckpt).unwrap();
    let resume = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            path(dir.path()),
            "--resume",
            path(&ckpt),
            "--epochs",
            "3",
        ];
        args.extend_from_slice(extra);
        backprop(&args)
    };
    assert_fails_cleanly(
        &resume(&["--layers", "64,32,10"]),
        &["--layers 64,32,10", "64,24,10", "--resume"],
    );
    assert_fails_cleanly(&resume(&["--batch-size", "16"]), &["--batch-size 16", "32"]);
    assert_fails_cleanly(&resume(&["--lr", "0.2"]), &["--lr 0.2", "0.1"]);
    assert_fails_cleanly(&resume(&["--seed", "6"]), &["--seed 6", "5"]);
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "a refused resume writes nothing");

    // Fewer epochs than already done.
    assert_ok(&resume(&[]));
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--resume",
        path(&ckpt),
        "--epochs",
        "2",
    ]);
    assert_fails_cleanly(&out, &["--epochs 2", "already trained 3"]);
    // Nothing left to do is not an error, and changes nothing.
    let before = std::fs::read(&ckpt).unwrap();
    let out = backprop(&["train", "--data", path(dir.path()), "--resume", path(&ckpt)]);
    assert_ok(&out);
    assert!(stderr(&out).contains("nothing to train"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&ckpt).unwrap(), before);
}

#[test]
fn resume_refuses_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    Synthetic::default().write_dir(&a, true);
    Synthetic {
        seed: 2,
        ..Synthetic::default()
    }
    .write_dir(&b, true);
    let ckpt = dir.path().join("run.ckpt");
    assert_ok(&train(&a, &["--epochs", "1", "--save", path(&ckpt)]));
    let out = backprop(&["train", "--data", path(&b), "--resume", path(&ckpt), "--epochs", "2"]);
    assert_fails_cleanly(&out, &["differs from the data", "train-images-idx3-ubyte", "SHA-256"]);
    // The same data, recompressed differently (raw instead of gzip), is
    // the same data.
    let raw = dir.path().join("raw");
    Synthetic::default().write_dir(&raw, false);
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(&raw),
        "--resume",
        path(&ckpt),
        "--epochs",
        "2",
    ]));
}

#[test]
fn inspect_prints_what_the_checkpoint_holds() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let ckpt = dir.path().join("run.ckpt");
    assert_ok(&train(dir.path(), &["--epochs", "2", "--save", path(&ckpt)]));
    let out = backprop(&["inspect", path(&ckpt)]);
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "format version  3",
        "64-24-10 (relu, identity), loss cross-entropy",
        "parameters      1810 ",
        "0  64x24          relu",
        "SGD, weight decay 0",
        "batch size 32, learning rate 0.1, seed 5, init he",
        "epoch 2 of 2, step 38",
        "t10k-labels-idx1-ubyte",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in\n{text}");
    }
    let json = inspect_json(&ckpt);
    assert_eq!(json["format_version"], 3);
    assert_eq!(json["n_parameters"], 64 * 24 + 24 + 24 * 10 + 10);
    assert_eq!(json["sizes"], serde_json::json!([64, 24, 10]));
    assert_eq!(json["layers"][0]["activation"], "relu");
    assert_eq!(json["layers"][1]["activation"], "identity");
    assert_eq!(json["loss"], "cross-entropy");
    let t = &json["training"];
    assert_eq!(t["optimizer"], "sgd");
    assert_eq!(t["learning_rate"].as_f64().unwrap() as f32, 0.1);
    assert_eq!(t["batch_size"], 32);
    assert_eq!((t["epoch"].clone(), t["step"].clone()), (2.into(), 38.into()));
    let history = json["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    let acc = history[1]["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let files = json["data"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    assert!(files.iter().all(|f| f["sha256"].as_str().unwrap().len() == 64));
}

/// The format-1 fixture (written by backprop 0.1.0) is shown, evaluated and
/// resumed by the CLI.
#[test]
fn a_format_1_checkpoint_works_from_the_cli() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format1");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("v1.ckpt");
    std::fs::copy(fixture.join("model.ckpt"), &copy).unwrap();
    let data = fixture.join("data");
    let out = backprop(&["inspect", path(&copy)]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("76c6a9d387a4a7521c7d9e5b5c10022faf588619bec8467dced40bd310195362")
    );
    let out = backprop(&["eval", path(&copy), "--data", path(&data), "--json"]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["correct"].clone(), json["n"].clone()), (200.into(), 200.into()));
    let out = backprop(&[
        "train",
        "--data",
        path(&data),
        "--resume",
        path(&copy),
        "--epochs",
        "3",
        "--json",
    ]);
    assert_ok(&out);
    let resumed = inspect_json(&copy);
    assert_eq!(
        resumed["format_version"], 3,
        "a resumed run saves in the current format"
    );
    assert_eq!(
        resumed["parameters_sha256"],
        "84aa7768f585e24107adbd1d43270c183e60055427e8b9487abdadad04aec837"
    );
}

/// The format-2 fixture (every toolkit setting on) is shown, evaluated and
/// resumed by the CLI to the weights the build that wrote it reached.
#[test]
fn a_format_2_checkpoint_works_from_the_cli() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format2");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("v2.ckpt");
    std::fs::copy(fixture.join("model.ckpt"), &copy).unwrap();
    let data = fixture.join("data");
    let out = backprop(&["eval", path(&copy), "--data", path(&data), "--json"]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["correct"].clone(), json["n"].clone()), (139.into(), 200.into()));
    assert_eq!(json["loss"], 1.3520761728286743);
    let out = backprop(&["train", "--data", path(&data), "--resume", path(&copy), "--epochs", "3"]);
    assert_ok(&out);
    let resumed = inspect_json(&copy);
    assert_eq!(resumed["format_version"], 3);
    assert_eq!(
        resumed["parameters_sha256"],
        "83513f9b2d9baa19ebe78336b88a8ce76070617d768fedd50978363405e07931"
    );
}

/// `--batch-norm`: the checkpoint and `inspect` show each hidden layer's
/// normalisation; a resumed run keeps it and refuses the flag; `export`
/// folds it into plain layers that predict what the model predicts.
#[test]
fn batch_norm_trains_shows_resumes_and_exports_folded() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let model = dir.path().join("bn.ckpt");
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,24,16,10",
        "--batch-norm",
        "--epochs",
        "2",
        "--lr",
        "0.1",
        "--save",
        path(&model),
    ]);
    assert_ok(&out);
    let banner = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(banner.contains("batch norm"), "{banner}");
    let info = inspect_json(&model);
    let layers = info["layers"].as_array().unwrap();
    assert!(layers[0]["batch_norm"].is_object() && layers[1]["batch_norm"].is_object());
    assert!(layers[2]["batch_norm"].is_null(), "the output layer is not normalised");
    assert_eq!(info["training"]["batch_norm"], true);
    assert_eq!(
        info["n_parameters"],
        64 * 24 + 24 + 24 * 16 + 16 + 16 * 10 + 10 + 2 * (24 + 16)
    );
    let text = backprop(&["inspect", path(&model)]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("batch norm (momentum 0.1, eps 0.00001)"));
    assert_fails_cleanly(
        &backprop(&[
            "train",
            "--data",
            path(dir.path()),
            "--resume",
            path(&model),
            "--epochs",
            "3",
            "--batch-norm",
        ]),
        &["--batch-norm cannot be given with --resume"],
    );
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--resume",
        path(&model),
        "--epochs",
        "3",
    ]));
    assert_eq!(inspect_json(&model)["training"]["epoch"], 3);
    let npz = dir.path().join("bn.npz");
    let out = backprop(&["export", path(&model), path(&npz)]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch normalisation folded"));
}

#[test]
fn inspect_and_resume_refuse_what_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("notes.txt");
    std::fs::write(&bogus, "hello, this is not a model").unwrap();
    assert_fails_cleanly(
        &backprop(&["inspect", path(&bogus)]),
        &["not a backprop checkpoint", "notes.txt"],
    );
    Synthetic::default().write_dir(dir.path(), true);
    let out = backprop(&["train", "--data", path(dir.path()), "--resume", path(&bogus)]);
    assert_fails_cleanly(&out, &["cannot resume", "not a backprop checkpoint"]);
    assert_eq!(std::fs::read(&bogus).unwrap(), b"hello, this is not a model");
    assert_fails_cleanly(&backprop(&["inspect", "/nonexistent/x.ckpt"]), &["/nonexistent/x.ckpt"]);
}

/// From the command line too, a run with Adam, GELU and weight decay resumed
/// from epoch 2 to 4 equals 4 epochs in one go, byte for byte; changing the
/// optimiser on resume is refused.
#[test]
fn adam_runs_resume_exactly_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let flags = [
        "--optimizer",
        "adamw",
        "--activation",
        "gelu",
        "--weight-decay",
        "0.05",
        "--lr",
        "0.01",
    ];
    let (straight, split) = (dir.path().join("a.ckpt"), dir.path().join("b.ckpt"));
    let run = |epochs: &str, save: &Path| {
        let mut args = vec![
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,24,10",
            "--epochs",
            epochs,
        ];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["--save", path(save), "--json"]);
        assert_ok(&backprop(&args));
    };
    run("4", &straight);
    run("2", &split);
    let resume = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            path(dir.path()),
            "--resume",
            path(&split),
            "--epochs",
            "4",
        ];
        args.extend_from_slice(extra);
        backprop(&args)
    };
    assert_fails_cleanly(&resume(&["--optimizer", "adam"]), &["--optimizer", "adamw"]);
    assert_fails_cleanly(&resume(&["--beta1", "0.5"]), &["--beta1", "--resume"]);
    assert_ok(&resume(&[]));
    let (a, b) = (Checkpoint::load(&straight).unwrap(), Checkpoint::load(&split).unwrap());
    assert_eq!(weight_bytes(&a), weight_bytes(&b));
    assert_eq!(a.training, b.training);
    assert!(!b.training.as_ref().unwrap().optimizer_slots.is_empty());
    assert_eq!(inspect_json(&split)["training"]["optimizer"], "adamw");
}

/// The toolkit's flags reach the run, show in inspect, resume exactly, and
/// cannot change on resume.
#[test]
fn toolkit_flags_train_resume_exactly_and_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let flags = [
        "--dropout",
        "0.3",
        "--schedule",
        "cosine:0.1",
        "--warmup",
        "5",
        "--label-smoothing",
        "0.1",
        "--clip-norm",
        "2",
        "--max-norm",
        "3",
        "--optimizer",
        "momentum",
        "--lr",
        "0.05",
    ];
    let (straight, split) = (dir.path().join("a.ckpt"), dir.path().join("b.ckpt"));
    let run = |epochs: &str, save: &Path| {
        let mut args = vec![
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,32,10",
            "--epochs",
            epochs,
        ];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["--save", path(save), "--json"]);
        let out = backprop(&args);
        assert_ok(&out);
        out
    };
    let out = run("4", &straight);
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap();
    assert!(last["test_accuracy"].as_f64().unwrap() > 0.9, "{last}");
    let rate = last["learning_rate"].as_f64().unwrap();
    assert!(rate < 0.05 * 0.2, "the cosine schedule ends near its floor: {rate}");
    // Two epochs, then resumed to four (a constant schedule: a cosine's
    // length follows the planned epochs, which --epochs would change).
    let constant: Vec<&str> = flags.iter().copied().filter(|f| !f.starts_with("cos")).collect();
    let constant: Vec<&str> = constant.into_iter().filter(|&f| f != "--schedule").collect();
    let train_to = |epochs: &str, save: &Path| {
        let mut args = vec![
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,32,10",
            "--epochs",
            epochs,
        ];
        args.extend_from_slice(&constant);
        args.extend_from_slice(&["--save", path(save)]);
        assert_ok(&backprop(&args));
    };
    train_to("4", &split);
    let (whole, part) = (dir.path().join("whole.ckpt"), dir.path().join("part.ckpt"));
    train_to("4", &whole);
    train_to("2", &part);
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--resume",
        path(&part),
        "--epochs",
        "4",
    ]));
    assert_eq!(
        inspect_json(&whole)["parameters_sha256"],
        inspect_json(&part)["parameters_sha256"]
    );
    let json = inspect_json(&straight);
    assert_eq!(json["training"]["dropout"], serde_json::json!([0.30000001192092896]));
    assert_eq!(json["training"]["schedule"], "cosine:0.1");
    assert_eq!(json["training"]["warmup_steps"], 5);
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--resume",
        path(&split),
        "--epochs",
        "5",
        "--dropout",
        "0.1",
    ]);
    assert_fails_cleanly(&out, &["--dropout", "--resume"]);
    let text = String::from_utf8(backprop(&["inspect", path(&straight)]).stdout).unwrap();
    assert!(
        text.contains("cosine:0.1 schedule") && text.contains("dropout [0.3]"),
        "{text}"
    );
}

/// A validation split measured every epoch, the test set once at the end
/// (on the best model), early stopping, and --save-best holding the best
/// epoch's weights; an early-stopped run does not train on when resumed.
#[test]
fn validation_early_stopping_and_save_best() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let (last, best) = (dir.path().join("last.ckpt"), dir.path().join("best.ckpt"));
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,16,10",
        "--epochs",
        "40",
        "--lr",
        "0.05",
        "--validation",
        "0.25",
        "--early-stopping",
        "accuracy",
        "--patience",
        "3",
        "--save",
        path(&last),
        "--save-best",
        path(&best),
        "--json",
    ]);
    assert_ok(&out);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let epochs: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("epoch").is_some()).collect();
    assert!(
        epochs.len() < 40,
        "early stopping ended the run after {} epochs",
        epochs.len()
    );
    assert!(
        epochs
            .iter()
            .all(|l| l.get("validation_accuracy").is_some() && l.get("test_accuracy").is_none())
    );
    let final_line = lines.last().unwrap();
    assert!(
        final_line["final_test"].as_str().unwrap().starts_with("best model"),
        "{final_line}"
    );
    assert!(stderr(&out).contains("early stopping after epoch"), "{}", stderr(&out));
    // The best checkpoint holds the first epoch with the best validation accuracy.
    let accuracies: Vec<f64> = epochs
        .iter()
        .map(|l| l["validation_accuracy"].as_f64().unwrap())
        .collect();
    let top = accuracies.iter().copied().fold(f64::MIN, f64::max);
    let best_epoch = accuracies.iter().position(|&a| a == top).unwrap() + 1;
    let b = Checkpoint::load(&best).unwrap();
    assert_eq!(b.epoch(), best_epoch);
    assert_eq!(b.training.as_ref().unwrap().validation, 150);
    let l = Checkpoint::load(&last).unwrap();
    assert_eq!(l.epoch(), epochs.len());
    assert!(l.history.iter().all(|h| h.validation.is_some() && h.test.is_none()));
    assert_eq!(
        l.training.as_ref().unwrap().early_stopping.unwrap().best_epoch as usize,
        best_epoch
    );
    // Resumed, the stopped run has nothing left to train.
    let out = backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--resume",
        path(&last),
        "--epochs",
        "50",
    ]);
    assert_ok(&out);
    assert!(stderr(&out).contains("nothing to train"), "{}", stderr(&out));
    // The flags that need a validation split say so.
    for flags in [&["--save-best", "x.ckpt"][..], &["--early-stopping", "loss"][..]] {
        let mut args = vec![
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,10",
            "--epochs",
            "1",
        ];
        args.extend_from_slice(flags);
        assert_fails_cleanly(&backprop(&args), &["--validation"]);
    }
    assert_fails_cleanly(
        &backprop(&[
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,10",
            "--validation",
            "600",
        ]),
        &["--validation 600"],
    );
    let base = [
        "train",
        "--data",
        path(dir.path()),
        "--layers",
        "64,10",
        "--epochs",
        "1",
        "--validation",
        "0.2",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        backprop(&args)
    };
    assert_fails_cleanly(&with(&["--early-stopping", "loss", "--patience", "0"]), &["--patience"]);
    assert_fails_cleanly(
        &with(&["--early-stopping", "loss", "--min-delta", "-1"]),
        &["--min-delta"],
    );
    assert_fails_cleanly(
        &backprop(&[
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,10",
            "--validation",
            "1.5",
        ]),
        &["--validation 1.5", "a fraction"],
    );
    let same = dir.path().join("same.ckpt");
    assert_fails_cleanly(
        &with(&["--save", path(&same), "--save-best", path(&same)]),
        &["--save-best", "the file the run saves to"],
    );
    assert!(!same.exists());
}

/// `--augment` trains on distorted images, is recorded, resumes exactly,
/// and is refused for a table.
#[test]
fn augmentation_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let (whole, part) = (dir.path().join("w.ckpt"), dir.path().join("p.ckpt"));
    let run = |epochs: &str, save: &Path| {
        let out = backprop(&[
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,16,10",
            "--epochs",
            epochs,
            "--lr",
            "0.1",
            "--augment",
            "shift=1,rotate=5",
            "--save",
            path(save),
        ]);
        assert_ok(&out);
        out
    };
    let out = run("3", &whole);
    assert!(
        stderr(&out).contains("augmenting the training images"),
        "{}",
        stderr(&out)
    );
    run("2", &part);
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(dir.path()),
        "--resume",
        path(&part),
        "--epochs",
        "3",
    ]));
    let (w, p) = (inspect_json(&whole), inspect_json(&part));
    assert_eq!(w["parameters_sha256"], p["parameters_sha256"]);
    assert!(w["training"]["augment"].as_str().unwrap().contains("shift=1"), "{w}");
    let table = dir.path().join("t.csv");
    std::fs::write(&table, "a,b,y\n1,2,x\n3,4,z\n5,6,x\n7,8,z\n").unwrap();
    assert_fails_cleanly(
        &backprop(&["train", "--data", path(&table), "--target", "y", "--augment", "digits"]),
        &["--augment", "CSV"],
    );
    assert_fails_cleanly(
        &backprop(&[
            "train",
            "--data",
            path(dir.path()),
            "--layers",
            "64,10",
            "--augment",
            "shift=99999",
        ]),
        &["shift"],
    );
}
