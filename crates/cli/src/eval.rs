//! `backprop eval MODEL`: a checkpoint measured on the test set: accuracy,
//! mean loss, confusion matrix, per-class precision and recall, and the
//! most confidently wrong test images.

use crate::args::EvalArgs;
use crate::data::{is_csv, load_csv_for};
use crate::export::write_atomic;
use crate::plot::{self, Format};
use anyhow::{Context, Result, bail};
use backprop_nn::{Checkpoint, Examples, Metrics, Mlp, Targets, evaluate_with};
use serde::Serialize;

/// `a-b-c` for layer sizes.
pub(crate) fn sizes_text(sizes: &[usize]) -> String {
    sizes.iter().map(usize::to_string).collect::<Vec<_>>().join("-")
}

/// Softmax of one row of logits, in f64.
pub(crate) fn softmax(logits: impl IntoIterator<Item = f32>) -> Vec<f64> {
    let z: Vec<f64> = logits.into_iter().map(f64::from).collect();
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let total: f64 = e.iter().sum();
    e.into_iter().map(|v| v / total).collect()
}

/// The index of the largest value, the first on ties (as `argmax_rows`).
pub(crate) fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[derive(Serialize)]
struct ClassStats {
    class: usize,
    /// Test images of this class.
    support: usize,
    /// Test images predicted as this class.
    predicted: usize,
    /// Of those predicted as this class, the fraction that are; `null` when
    /// none was predicted.
    precision: Option<f64>,
    /// Of this class's images, the fraction predicted as it; `null` when
    /// there are none.
    recall: Option<f64>,
}

#[derive(Serialize, Clone, Copy)]
struct Wrong {
    /// Position in the test set.
    index: usize,
    label: usize,
    predicted: usize,
    /// The probability the network gave its (wrong) prediction.
    probability: f64,
}

/// The `--json` object.
#[derive(Serialize)]
struct Report {
    model: String,
    data: String,
    sizes: Vec<usize>,
    n: usize,
    correct: usize,
    /// Fraction in [0, 1].
    accuracy: f64,
    /// Class names (from the checkpoint), when it has them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    classes: Vec<String>,
    /// Mean cross-entropy.
    loss: f64,
    /// `confusion[true][predicted]`.
    confusion: Vec<Vec<usize>>,
    per_class: Vec<ClassStats>,
    confidently_wrong: Vec<Wrong>,
}

/// The `--json` object of a regression model.
#[derive(Serialize)]
struct RegressionReport {
    model: String,
    data: String,
    sizes: Vec<usize>,
    n: usize,
    /// Mean squared error.
    mse: f64,
    /// Coefficient of determination.
    r2: f64,
}

pub(crate) fn run(mut args: EvalArgs) -> Result<()> {
    args.data = crate::datasets::resolve(&args.named, &args.data)?;
    let mut inputs = crate::paths::data_files(&args.data);
    inputs.push(args.model.clone());
    if let Some(out) = &args.predictions {
        crate::paths::refuse_overwriting_inputs("--predictions", out, &inputs)?;
    }
    for (flag, out) in [("--confusion", &args.confusion), ("--gallery", &args.gallery)] {
        if let Some(out) = out {
            Format::of(out, flag)?;
            crate::paths::refuse_overwriting_inputs(flag, out, &inputs)?;
        }
    }
    if args.gallery.is_some() && is_csv(&args.data) {
        bail!(
            "--gallery draws test images, and {} is a CSV table: it needs IDX image data",
            args.data.display()
        );
    }
    let checkpoint = Checkpoint::load(&args.model)?;
    if !checkpoint.loss().is_classification() && (args.confusion.is_some() || args.gallery.is_some()) {
        bail!(
            "--confusion and --gallery need a classifier; {} predicts values (--loss mse)",
            args.model.display()
        );
    }
    let model = checkpoint
        .model()
        .with_context(|| format!("{}: cannot build the network", args.model.display()))?;
    let idx;
    let csv;
    let mut images: Option<&backprop_data::Dataset> = None;
    let test: &dyn Examples = if is_csv(&args.data) {
        csv = load_csv_for(&checkpoint, &args.data)?.1;
        &csv
    } else {
        idx = crate::datasets::load_idx(&args.data)?;
        // Data of another shape gets the more precise "does not fit" below.
        if idx.test.n_features() == model.n_inputs() && idx.test.n_classes() == model.n_outputs() {
            check_same_data(&checkpoint, &args)?;
        }
        images = Some(&idx.test);
        &idx.test
    };
    if !checkpoint.loss().is_classification() {
        return regression(&args, &model, test);
    }
    let n_classes = model.n_outputs();
    let mut confusion = vec![vec![0usize; n_classes]; n_classes];
    let mut predictions = Vec::with_capacity(test.len());
    let mut wrong: Vec<Wrong> = Vec::new();
    let eval = evaluate_with(&model, test, |first, logits, targets| {
        let Targets::Classes(labels) = targets else { return };
        for (r, row) in logits.rows().into_iter().enumerate() {
            let z: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            let predicted = argmax(&z); // on the logits, exactly as `evaluate` counts
            let p = softmax(row.iter().copied());
            let label = labels[r];
            confusion[label][predicted] += 1;
            predictions.push(predicted);
            if predicted != label {
                wrong.push(Wrong {
                    index: first + r,
                    label,
                    predicted,
                    probability: p[predicted],
                });
            }
        }
    })
    .with_context(|| {
        format!(
            "{} (layers {}) does not fit the data in {}",
            args.model.display(),
            sizes_text(&model.sizes()),
            args.data.display()
        )
    })?;
    wrong.sort_by(|a, b| b.probability.total_cmp(&a.probability).then(a.index.cmp(&b.index)));
    let gallery: Vec<Wrong> = wrong.iter().take(usize::from(args.gallery_size)).copied().collect();
    wrong.truncate(args.wrong);
    let per_class = (0..n_classes)
        .map(|c| {
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let hits = confusion[c][c] as f64;
            ClassStats {
                class: c,
                support,
                predicted,
                precision: (predicted > 0).then(|| hits / predicted as f64),
                recall: (support > 0).then(|| hits / support as f64),
            }
        })
        .collect();
    if let Some(path) = &args.predictions {
        let text: String = predictions.iter().map(|p| format!("{p}\n")).collect();
        write_atomic(path, text.as_bytes())?;
    }
    let report = Report {
        model: args.model.display().to_string(),
        data: args.data.display().to_string(),
        sizes: model.sizes(),
        n: eval.n,
        correct: eval.correct().unwrap_or(0),
        accuracy: eval.accuracy().unwrap_or(0.0),
        classes: checkpoint.classes.clone(),
        loss: eval.loss,
        confusion,
        per_class,
        confidently_wrong: wrong,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", text(&report));
    }
    draw_pictures(&args, &report, images, &gallery)
}

/// `--confusion` and `--gallery`: the pictures of an evaluation.
fn draw_pictures(
    args: &EvalArgs,
    report: &Report,
    images: Option<&backprop_data::Dataset>,
    gallery: &[Wrong],
) -> Result<()> {
    let model = args
        .model
        .file_name()
        .map_or_else(|| report.model.clone(), |n| n.to_string_lossy().into_owned());
    if let Some(out) = &args.confusion {
        let title = format!(
            "{model}: accuracy {:.2}% on {} test examples",
            100.0 * report.accuracy,
            report.n
        );
        let picture = plot::Confusion::new(title, report.confusion.clone(), &report.classes)?;
        plot::save(&picture, out, Format::of(out, "--confusion")?)?;
    }
    if let (Some(out), Some(images)) = (&args.gallery, images) {
        let name = |c: usize| report.classes.get(c).cloned().unwrap_or_else(|| c.to_string());
        let tiles = gallery
            .iter()
            .map(|w| plot::Tile {
                index: w.index,
                pixels: images.image(w.index).to_vec(),
                label: name(w.label),
                predicted: name(w.predicted),
                probability: w.probability,
            })
            .collect();
        let title = format!("{model}: the {} most confidently wrong test images", gallery.len());
        let picture = plot::Gallery::new(title, tiles, images.image_shape())?;
        plot::save(&picture, out, Format::of(out, "--gallery")?)?;
    }
    Ok(())
}

/// Refuses to evaluate a model on other IDX data than it was trained on
/// (an MNIST model on Fashion-MNIST scores at chance and means nothing),
/// unless `--allow-other-data`.
fn check_same_data(checkpoint: &Checkpoint, args: &EvalArgs) -> Result<()> {
    use backprop_nn::checkpoint::record::DataRecord;
    let DataRecord::Idx { files: saved } = &checkpoint.data else {
        return Ok(());
    };
    if args.allow_other_data {
        return Ok(());
    }
    for name in [backprop_data::TEST_IMAGES, backprop_data::TEST_LABELS] {
        let (Some(a), Some(path)) = (
            saved.iter().find(|f| f.name == name),
            backprop_data::find_file(&args.data, name),
        ) else {
            continue;
        };
        let b = backprop_data::content_sha256(&path)?;
        if a.sha256 != b {
            anyhow::bail!(
                "{} was trained on other data than {}: its {name} has SHA-256 {}, this one {}; \
                 give --allow-other-data to evaluate it on this data anyway",
                args.model.display(),
                args.data.display(),
                a.sha256,
                b
            );
        }
    }
    Ok(())
}

fn regression(args: &EvalArgs, model: &Mlp, test: &dyn Examples) -> Result<()> {
    let eval = evaluate_with(model, test, |_, _, _| {}).with_context(|| {
        format!(
            "{} does not fit the data in {}",
            args.model.display(),
            args.data.display()
        )
    })?;
    let Metrics::Regression { mse, r2 } = eval.metrics else {
        anyhow::bail!(
            "{}: the data has class labels, but the model was trained for values",
            args.data.display()
        );
    };
    let report = RegressionReport {
        model: args.model.display().to_string(),
        data: args.data.display().to_string(),
        sizes: model.sizes(),
        n: eval.n,
        mse,
        r2,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} (layers {}) on the {} rows of {}\nmse {:.6}, R² {:.4}",
            report.model,
            sizes_text(&report.sizes),
            report.n,
            report.data,
            mse,
            r2
        );
    }
    Ok(())
}

fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (layers {}) on the {} test examples of {}",
        r.model,
        sizes_text(&r.sizes),
        r.n,
        r.data
    );
    let _ = writeln!(
        out,
        "accuracy {:.2}% ({} of {}), mean loss {:.4}\n",
        100.0 * r.accuracy,
        r.correct,
        r.n,
        r.loss
    );
    let width = r
        .confusion
        .iter()
        .flatten()
        .max()
        .map_or(1, |m| m.to_string().len())
        .max(3);
    if !r.classes.is_empty() {
        let names: Vec<String> = r.classes.iter().enumerate().map(|(i, n)| format!("{i} {n}")).collect();
        let _ = writeln!(out, "classes: {}\n", names.join(", "));
    }
    let _ = writeln!(out, "confusion matrix (rows: true class, columns: predicted)");
    let _ = write!(out, "{:>5} ", "");
    for c in 0..r.confusion.len() {
        let _ = write!(out, " {c:>width$}");
    }
    let _ = writeln!(out, "   precision  recall");
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.2}%", 100.0 * v));
    for (c, row) in r.confusion.iter().enumerate() {
        let _ = write!(out, "{c:>5} ");
        for v in row {
            let _ = write!(out, " {v:>width$}");
        }
        let s = &r.per_class[c];
        let name = r.classes.get(c).map(|n| format!("  {n}")).unwrap_or_default();
        let _ = writeln!(out, "   {:>9}  {:>6}{name}", pct(s.precision), pct(s.recall));
    }
    if r.confidently_wrong.is_empty() {
        let _ = writeln!(out, "\nno test image is misclassified");
    } else {
        let _ = writeln!(
            out,
            "\nmost confidently wrong (see `backprop predict MODEL --index N`):"
        );
        let _ = writeln!(
            out,
            "{:>7}  {:>4}  {:>9}  {:>11}",
            "index", "true", "predicted", "probability"
        );
        let names = |label: usize, predicted: usize| match (r.classes.get(label), r.classes.get(predicted)) {
            (Some(l), Some(p)) => format!("  {l} as {p}"),
            _ => String::new(),
        };
        for w in &r.confidently_wrong {
            let _ = writeln!(
                out,
                "{:>7}  {:>4}  {:>9}  {:>10.2}%{}",
                w.index,
                w.label,
                w.predicted,
                100.0 * w.probability,
                names(w.label, w.predicted)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax([1000.0f32, 1000.0, 999.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((p[0] - p[1]).abs() < 1e-15 && p[0] > p[2]);
        assert_eq!(argmax(&p), 0, "first on ties");
        assert_eq!(argmax(&softmax([-3.0f32, 2.0, 1.0])), 1);
    }
}
