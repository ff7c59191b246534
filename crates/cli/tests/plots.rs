//! Pictures, as a user makes them: `backprop plot` from a checkpoint or a
//! metrics JSONL file, and `backprop eval --confusion/--gallery`, as PNG
//! (decoded and checked for size and content) and SVG (parsed as XML and
//! checked for its labels); and the errors for bad inputs.
//!
//! Set `BACKPROP_KEEP_PLOTS=DIR` to keep a copy of every picture drawn here,
//! to look at them.

mod common;

use backprop_tests::Synthetic;
use common::{assert_fails_cleanly, assert_ok, backprop, path};
use std::collections::HashSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Synthetic 8x8 IDX data and a tiny classifier trained on it for
/// `epochs` epochs (saved as `model.ckpt`), with the `--json` lines the
/// training printed saved as `model.metrics.jsonl`.
struct Trained {
    dir: tempfile::TempDir,
    model: PathBuf,
    metrics: PathBuf,
}

fn train(epochs: &str, lr: &str) -> Trained {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Synthetic::default().write_dir(&data, true);
    let model = dir.path().join("model.ckpt");
    let out = backprop(&[
        "train",
        "--data",
        path(&data),
        "--layers",
        "64,16,10",
        "--epochs",
        epochs,
        "--lr",
        lr,
        "--json",
        "--save",
        path(&model),
    ]);
    assert_ok(&out);
    let metrics = dir.path().join("model.metrics.jsonl");
    std::fs::write(&metrics, &out.stdout).unwrap();
    Trained { dir, model, metrics }
}

impl Trained {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Keeps a copy of `file` in `$BACKPROP_KEEP_PLOTS`, when it is set.
fn keep(file: &Path, name: &str) {
    if let Some(dir) = std::env::var_os("BACKPROP_KEEP_PLOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(file, Path::new(&dir).join(name)).unwrap();
    }
}

/// Decodes the PNG at `file`, checks its size, and that it is a picture:
/// many distinct colours, a good share of non-white pixels, and some
/// strongly coloured (not grey) pixels when `coloured`.
#[track_caller]
fn check_png(file: &Path, size: Option<(u32, u32)>, coloured: bool) -> image::RgbImage {
    let bytes = std::fs::read(file).unwrap();
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .expect("a valid PNG")
        .to_rgb8();
    if let Some(size) = size {
        assert_eq!(img.dimensions(), size);
    }
    let colours: HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() >= 8, "only {} colours", colours.len());
    let total = img.pixels().len() as f64;
    let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count() as f64;
    assert!(ink / total > 0.02 && ink / total < 0.98, "ink share {}", ink / total);
    if coloured {
        let vivid = img
            .pixels()
            .filter(|p| {
                let (mx, mn) = (p.0.iter().max().unwrap(), p.0.iter().min().unwrap());
                mx - mn > 80
            })
            .count();
        assert!(vivid > 50, "only {vivid} coloured pixels");
    }
    img
}

/// Parses the SVG at `file` and returns its width, height and all its text.
#[track_caller]
fn svg_text(file: &Path) -> (String, String, Vec<String>) {
    let text = std::fs::read_to_string(file).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect();
    let attr = |a| root.attribute(a).unwrap_or_default().to_owned();
    (attr("width"), attr("height"), texts)
}

#[track_caller]
fn assert_has(texts: &[String], wanted: &[&str]) {
    for w in wanted {
        assert!(texts.iter().any(|t| t == w), "no text {w:?} in {texts:?}");
    }
}

#[test]
fn curves_from_a_checkpoint_as_png_and_svg() {
    let t = train("3", "0.1");
    let png = t.out("curves.png");
    let out = backprop(&[
        "plot",
        path(&t.model),
        "-o",
        path(&png),
        "--width",
        "800",
        "--height",
        "360",
    ]);
    assert_ok(&out);
    keep(&png, "curves.png");
    let img = check_png(&png, Some((800, 360)), true);
    // The train curve (blue) and the test curve (red) are both drawn.
    let near = |c: [u8; 3]| {
        img.pixels()
            .filter(|p| p.0.iter().zip(c).all(|(&a, b)| a.abs_diff(b) < 12))
            .count()
    };
    assert!(near([31, 119, 180]) > 30, "no train curve");
    assert!(near([214, 39, 40]) > 30, "no test curve");

    let svg = t.out("curves.svg");
    assert_ok(&backprop(&["plot", path(&t.model), "--out", path(&svg)]));
    keep(&svg, "curves.svg");
    let (w, h, texts) = svg_text(&svg);
    assert_eq!((w.as_str(), h.as_str()), ("1000", "420"), "the default size");
    assert_has(
        &texts,
        &[
            "model.ckpt (64-16-10)",
            "Loss",
            "Accuracy",
            "epoch",
            "loss (cross-entropy)",
            "accuracy (%)",
            "train loss",
            "test loss",
            "test accuracy",
            "1",
            "3",
        ],
    );
    assert!(
        !texts.iter().any(|t| t.contains("validation")),
        "no validation split here"
    );
}

#[test]
fn curves_from_a_metrics_jsonl_file() {
    let t = train("2", "0.1");
    let svg = t.out("jsonl.svg");
    assert_ok(&backprop(&["plot", path(&t.metrics), "-o", path(&svg)]));
    let (_, _, texts) = svg_text(&svg);
    assert_has(
        &texts,
        &[
            "model.metrics.jsonl",
            "train loss",
            "test loss",
            "test accuracy",
            "epoch",
        ],
    );

    // Any subset of the keys: validation metrics, no test, no epoch numbers.
    let subset = t.out("subset.jsonl");
    std::fs::write(
        &subset,
        "{\"train_loss\":1.2,\"validation_loss\":1.3,\"validation_accuracy\":0.6}\n\
         {\"train_loss\":0.8,\"validation_loss\":0.9,\"validation_accuracy\":0.7,\"future_key\":[1]}\n\
         {\"train_loss\":0.5,\"validation_loss\":0.7,\"validation_accuracy\":0.8}\n",
    )
    .unwrap();
    let png = t.out("subset.png");
    assert_ok(&backprop(&["plot", path(&subset), "-o", path(&png)]));
    keep(&png, "subset.png");
    check_png(&png, Some((1000, 420)), true);
    let svg = t.out("subset.svg");
    assert_ok(&backprop(&["plot", path(&subset), "-o", path(&svg)]));
    let (_, _, texts) = svg_text(&svg);
    assert_has(&texts, &["train loss", "validation loss", "validation accuracy"]);

    // Only a loss: one panel.
    std::fs::write(
        &subset,
        "{\"epoch\":1,\"train_loss\":1}\n{\"epoch\":2,\"train_loss\":0.5}\n",
    )
    .unwrap();
    assert_ok(&backprop(&["plot", path(&subset), "-o", path(&svg)]));
    let (_, _, texts) = svg_text(&svg);
    assert_has(&texts, &["Loss", "train loss"]);
    assert!(!texts.iter().any(|t| t == "Accuracy"), "{texts:?}");
}

/// A small CSV table: four features and a target, the class name
/// (`species`) or a number (`y`).
fn write_table(file: &Path, target: &str) {
    let names = ["setosa", "versicolor", "virginica"];
    let mut text = format!("a,b,c,d,{target}\n");
    for i in 0..240 {
        let class = i % 3;
        let x: Vec<f64> = (0..4)
            .map(|j| (class * (j + 1)) as f64 * 1.5 + ((i * 7 + j * 3) % 10) as f64 * 0.06)
            .collect();
        let y = if target == "y" {
            (x[0] - 2.0 * x[1] + x[3]).to_string()
        } else {
            names[class].to_owned()
        };
        let _ = writeln!(text, "{},{},{},{},{y}", x[0], x[1], x[2], x[3]);
    }
    std::fs::write(file, text).unwrap();
}

#[test]
fn regression_curves_show_r2_and_csv_models_have_no_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("values.csv");
    write_table(&table, "y");
    let reg = dir.path().join("reg.ckpt");
    let common = ["--standardize", "--optimizer", "adam", "--lr", "0.01", "--epochs", "3"];
    let out = backprop(
        &[
            &[
                "train",
                "--data",
                path(&table),
                "--target",
                "y",
                "--loss",
                "mse",
                "--save",
                path(&reg),
            ],
            &common[..],
        ]
        .concat(),
    );
    assert_ok(&out);
    let svg = dir.path().join("reg.svg");
    assert_ok(&backprop(&["plot", path(&reg), "-o", path(&svg)]));
    let (_, _, texts) = svg_text(&svg);
    assert_has(&texts, &["loss (MSE)", "R²", "test R²", "test loss", "train loss"]);
    let out = backprop(&[
        "eval",
        path(&reg),
        "--data",
        path(&table),
        "--confusion",
        path(&dir.path().join("c.png")),
    ]);
    assert_fails_cleanly(&out, &["--confusion", "classifier"]);

    // A CSV classifier: class names on the confusion matrix; no gallery.
    let table = dir.path().join("classes.csv");
    write_table(&table, "species");
    let cls = dir.path().join("cls.ckpt");
    let out = backprop(
        &[
            &[
                "train",
                "--data",
                path(&table),
                "--target",
                "species",
                "--save",
                path(&cls),
            ],
            &common[..],
        ]
        .concat(),
    );
    assert_ok(&out);
    let svg = dir.path().join("confusion.svg");
    assert_ok(&backprop(&[
        "eval",
        path(&cls),
        "--data",
        path(&table),
        "--confusion",
        path(&svg),
    ]));
    keep(&svg, "confusion-csv.svg");
    let (_, _, texts) = svg_text(&svg);
    assert_has(
        &texts,
        &["setosa", "versicolor", "virginica", "predicted class", "true class"],
    );
    let gallery = dir.path().join("g.png");
    let out = backprop(&["eval", path(&cls), "--data", path(&table), "--gallery", path(&gallery)]);
    assert_fails_cleanly(&out, &["--gallery", "CSV", "IDX image data"]);
    assert!(!gallery.exists());
}

#[test]
fn eval_draws_the_confusion_matrix_and_the_gallery() {
    // One epoch at a small learning rate leaves mistakes to show.
    let t = train("1", "0.02");
    let (confusion, gallery) = (t.out("confusion.png"), t.out("mistakes.png"));
    let out = backprop(&[
        "eval",
        path(&t.model),
        "--data",
        path(&t.data()),
        "--json",
        "--confusion",
        path(&confusion),
        "--gallery",
        path(&gallery),
        "--gallery-size",
        "6",
    ]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["accuracy"].as_f64().unwrap() < 1.0,
        "no mistakes to show: {report}"
    );
    keep(&confusion, "confusion.png");
    keep(&gallery, "mistakes.png");
    check_png(&confusion, None, true);
    // Six images of 8x8 pixels at 14x, three to a row: two rows.
    let img = check_png(&gallery, None, true);
    assert_eq!(img.dimensions(), (14 + 3 * (160 + 14), 54 + 2 * (112 + 46 + 14)));

    let (confusion, gallery) = (t.out("confusion.svg"), t.out("mistakes.svg"));
    let out = backprop(&[
        "eval",
        path(&t.model),
        "--data",
        path(&t.data()),
        "--confusion",
        path(&confusion),
        "--gallery",
        path(&gallery),
        "--gallery-size",
        "3",
    ]);
    assert_ok(&out);
    keep(&confusion, "confusion.svg");
    let (_, _, texts) = svg_text(&confusion);
    assert_has(&texts, &["predicted class", "true class", "0", "9"]);
    // The cells hold the counts: they add up to the test set.
    let confusion_json = &report["confusion"];
    let cells: usize = confusion_json
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize))
        .sum();
    assert_eq!(cells, 200);
    let diagonal = confusion_json[3][3].to_string();
    assert!(texts.contains(&diagonal), "no cell {diagonal}");
    let (_, _, texts) = svg_text(&gallery);
    let captions = texts
        .iter()
        .filter(|t| t.starts_with("true ") && t.contains(" → predicted "))
        .count();
    assert_eq!(captions, 3, "{texts:?}");
    assert!(
        texts.iter().any(|t| t.starts_with("p = ") && t.contains("%")),
        "{texts:?}"
    );
}

#[test]
fn bad_inputs_are_refused_with_a_message() {
    let t = train("1", "0.1");
    let png = t.out("x.png");
    let same = t.out("model.svg");
    std::fs::copy(&t.model, &same).unwrap();
    // An unknown extension, before anything is read or evaluated.
    for (args, needles) in [
        (
            vec!["plot", path(&t.model), "-o", "curves.jpg"],
            vec!["curves.jpg", ".svg or .png"],
        ),
        (vec!["plot", path(&t.model), "-o", "curves"], vec![".svg or .png"]),
        (
            vec![
                "eval",
                path(&t.model),
                "--data",
                path(&t.data()),
                "--confusion",
                "c.gif",
            ],
            vec!["--confusion", "c.gif", ".svg or .png"],
        ),
        (
            vec!["eval", path(&t.model), "--data", path(&t.data()), "--gallery", "g.txt"],
            vec!["--gallery", ".svg or .png"],
        ),
        (
            vec!["plot", "/nonexistent/m.ckpt", "-o", path(&png)],
            vec!["/nonexistent/m.ckpt"],
        ),
        (
            vec!["plot", path(t.dir.path()), "-o", path(&png)],
            vec!["is a directory"],
        ),
        (
            vec!["plot", "/dev/null", "-o", path(&png)],
            vec!["/dev/null", "not a regular file"],
        ),
        (vec!["plot", path(&same), "-o", path(&same)], vec!["-o", "destroy"]),
        (
            vec!["plot", path(&t.model), "-o", path(&png), "--width", "50"],
            vec!["--width"],
        ),
        (
            vec!["plot", path(&t.model), "-o", path(&png), "--width", "300"],
            vec!["too small"],
        ),
    ] {
        let out = backprop(&args);
        assert_fails_cleanly(&out, &needles);
    }
    assert!(!png.exists());

    // An empty history: a checkpoint saved before training, and empty or
    // malformed metrics files.
    let mut checkpoint = backprop_nn::Checkpoint::load(&t.model).unwrap();
    checkpoint.history.clear();
    let empty = t.out("empty.ckpt");
    checkpoint.save(&empty).unwrap();
    assert_fails_cleanly(
        &backprop(&["plot", path(&empty), "-o", path(&png)]),
        &["empty.ckpt", "no per-epoch history"],
    );
    let jsonl = t.out("m.jsonl");
    for (text, needles) in [
        ("", vec!["m.jsonl", "no epochs"]),
        (
            "{\"epoch\":1,\"train_loss\":0.5}\nnot json\n",
            vec!["m.jsonl line 2", "not JSON"],
        ),
        ("{\"epoch\":1,\"train_loss\":true}\n", vec!["line 1", "train_loss"]),
        ("{\"epoch\":1,\"learning_rate\":0.5}\n", vec!["nothing to plot"]),
        ("\u{0}\u{1}\u{2}\u{3}\u{ff}", vec!["m.jsonl"]),
    ] {
        std::fs::write(&jsonl, text).unwrap();
        assert_fails_cleanly(&backprop(&["plot", path(&jsonl), "-o", path(&png)]), &needles);
    }
    assert!(!png.exists());
}
