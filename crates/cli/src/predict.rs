//! `backprop predict MODEL IMAGE... [--index N]`: classify image files,
//! brought into MNIST's form first (see [`backprop_data::preprocess_digit`]),
//! or test images by index; print the three most probable classes and what
//! the network saw.

use crate::args::PredictArgs;
use crate::eval::{argmax, sizes_text, softmax};
use anyhow::{Context, Result, bail};
use backprop_data::{DIGIT_FRAME, DIGIT_PIXELS, pixel_to_f32};
use backprop_nn::{Mlp, Workspace};
use ndarray::Array2;
use serde::Serialize;
use std::path::Path;

/// Classes listed per image.
const TOP: usize = 3;

/// Grey ramp for the text rendering, from black to full ink.
const RAMP: &[u8] = b" .:-=+*#%@";

#[derive(Serialize)]
struct Top {
    class: usize,
    /// The class's name, when the checkpoint has class names.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    probability: f64,
}

/// One image's result, as printed with `--json`.
#[derive(Serialize)]
struct Prediction {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    /// The test set's label, with `--index`.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<usize>,
    /// Whether the file had a light background and was inverted.
    #[serde(skip_serializing_if = "Option::is_none")]
    inverted: Option<bool>,
    /// The name of the test set's label, when the checkpoint has class names.
    #[serde(skip_serializing_if = "Option::is_none")]
    label_name: Option<String>,
    predicted: usize,
    /// The predicted class's name, when the checkpoint has class names.
    #[serde(skip_serializing_if = "Option::is_none")]
    predicted_name: Option<String>,
    top: Vec<Top>,
    /// What the network saw, one string per row (ramp " .:-=+*#%@").
    #[serde(skip)]
    seen: Vec<String>,
}

/// Runs a model on one example at a time.
struct Classifier {
    model: Mlp,
    ws: Workspace,
    x: Array2<f32>,
}

impl Classifier {
    fn new(model: Mlp) -> Self {
        let ws = Workspace::new(&model.sizes(), 1);
        let x = Array2::zeros((1, model.n_inputs()));
        Self { model, ws, x }
    }

    /// `(predicted class, top classes)` for one image of `n_inputs` pixels.
    fn classify(&mut self, pixels: &[u8]) -> Result<(usize, Vec<Top>)> {
        for (x, &p) in self.x.iter_mut().zip(pixels) {
            *x = pixel_to_f32(p);
        }
        let logits = self.model.forward(self.x.view(), &mut self.ws);
        if !logits.iter().all(|v| v.is_finite()) {
            bail!(backprop_nn::NnError::NonFiniteOutput { example: 0 });
        }
        let z: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        let p = softmax(logits.iter().copied());
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        let top = order
            .iter()
            .take(TOP)
            .map(|&class| Top {
                class,
                name: None,
                probability: p[class],
            })
            .collect();
        Ok((argmax(&z), top))
    }
}

pub(crate) fn run(mut args: PredictArgs) -> Result<()> {
    if let Some(csv) = &args.csv {
        return predict_csv(&args.model, csv, args.json);
    }
    if args.images.is_empty() && args.index.is_empty() {
        bail!("nothing to predict: give image files (PNG, JPEG, PGM) or --index N for test image N");
    }
    let checkpoint = backprop_nn::Checkpoint::load(&args.model)?;
    if !checkpoint.loss().is_classification() || checkpoint.normalization.is_some() {
        bail!(
            "{} was trained on a table ({}); images and --index are for classifiers of images: use --csv FILE",
            args.model.display(),
            if checkpoint.normalization.is_some() {
                "standardised inputs"
            } else {
                "a regression"
            }
        );
    }
    let model = checkpoint
        .model()
        .with_context(|| format!("{}: cannot build the network", args.model.display()))?;
    let names = &checkpoint.classes;
    let sizes = model.sizes();
    let mut classifier = Classifier::new(model);
    if !args.index.is_empty() {
        args.data = crate::datasets::resolve(&args.named, &args.data)?;
        let data = crate::datasets::load_idx(&args.data)?;
        let test = &data.test;
        if test.n_features() != sizes[0] {
            bail!(
                "{} (layers {}) takes {} inputs, but the images in {} have {}x{} = {} pixels",
                args.model.display(),
                sizes_text(&sizes),
                sizes[0],
                args.data.display(),
                test.image_shape().0,
                test.image_shape().1,
                test.n_features()
            );
        }
        for &index in &args.index {
            if index >= test.len() {
                bail!(
                    "--index {index}: {} has {} test images, expected an index below {}",
                    args.data.display(),
                    test.len(),
                    test.len()
                );
            }
            let pixels = test.image(index);
            let (predicted, top) = classifier.classify(pixels)?;
            let label = usize::from(test.labels()[index]);
            emit(
                &Prediction {
                    label_name: names.get(label).cloned(),
                    predicted_name: names.get(predicted).cloned(),
                    top: named(top, names),
                    file: None,
                    index: Some(index),
                    label: Some(label),
                    inverted: None,
                    predicted,
                    seen: if args.quiet {
                        Vec::new()
                    } else {
                        render(pixels, test.image_shape().1)
                    },
                },
                args.json,
            )?;
        }
    }
    if !args.images.is_empty() && sizes[0] != DIGIT_PIXELS {
        bail!(
            "{} (layers {}) takes {} inputs, but image files are brought to {DIGIT_FRAME}x{DIGIT_FRAME} = \
             {DIGIT_PIXELS} pixels as in MNIST; use a model trained on 28x28 images",
            args.model.display(),
            sizes_text(&sizes),
            sizes[0]
        );
    }
    for path in &args.images {
        let (pixels, inverted) = load_digit(path)?;
        let (predicted, top) = classifier.classify(&pixels)?;
        emit(
            &Prediction {
                label_name: None,
                predicted_name: names.get(predicted).cloned(),
                top: named(top, names),
                file: Some(path.display().to_string()),
                index: None,
                label: None,
                inverted: Some(inverted),
                predicted,
                seen: if args.quiet {
                    Vec::new()
                } else {
                    render(&pixels, DIGIT_FRAME)
                },
            },
            args.json,
        )?;
    }
    Ok(())
}

/// `top` with each class's name from `names` (empty: no names).
fn named(top: Vec<Top>, names: &[String]) -> Vec<Top> {
    top.into_iter()
        .map(|t| Top {
            name: names.get(t.class).cloned(),
            ..t
        })
        .collect()
}

/// Decodes an image file and brings it into MNIST's form: `(pixels,
/// inverted)`. Transparent pixels are composited over white, as a viewer
/// shows them.
fn load_digit(path: &Path) -> Result<([u8; DIGIT_PIXELS], bool)> {
    let digit = backprop_data::load_digit_image(path)?;
    Ok((digit.pixels, digit.inverted))
}

/// Two characters per pixel, one string per row.
fn render(pixels: &[u8], width: usize) -> Vec<String> {
    pixels
        .chunks(width)
        .map(|row| {
            row.iter()
                .flat_map(|&v| {
                    let c = char::from(RAMP[(usize::from(v) * (RAMP.len() - 1) + 127) / 255]);
                    [c, c]
                })
                .collect()
        })
        .collect()
}

fn emit(p: &Prediction, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(p)?);
        return Ok(());
    }
    let name = match (&p.file, p.index) {
        (Some(file), _) => file.clone(),
        (None, Some(i)) => format!(
            "test image {i} (label {})",
            p.label_name
                .clone()
                .unwrap_or_else(|| p.label.unwrap_or_default().to_string())
        ),
        (None, None) => String::new(),
    };
    let top = p
        .top
        .iter()
        .map(|t| {
            let class = t.name.clone().unwrap_or_else(|| t.class.to_string());
            format!("{class} {:.2}%", 100.0 * t.probability)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let predicted = p.predicted_name.clone().unwrap_or_else(|| p.predicted.to_string());
    println!("{name}: {predicted}  ({top})");
    if p.inverted == Some(true) {
        println!("(light background: inverted)");
    }
    if p.seen.is_empty() {
        // --quiet: no rendering.
        return Ok(());
    }
    let width = p.seen.first().map_or(0, |r| r.chars().count());
    println!("+{}+", "-".repeat(width));
    for row in &p.seen {
        println!("|{row}|");
    }
    println!("+{}+", "-".repeat(width));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_maps_black_to_space_and_full_ink_to_at() {
        let rows = render(&[0, 255, 128, 28], 2);
        assert_eq!(rows, ["  @@", "++.."]);
    }
}

/// One CSV row's prediction, as printed with `--json`.
#[derive(Serialize)]
struct RowPrediction {
    /// 1-based line in the file.
    line: u64,
    /// The predicted class index, for a classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    predicted: Option<usize>,
    /// Its name, when the checkpoint has class names.
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<String>,
    /// Class probabilities, for a classifier; predicted values, for a
    /// regression.
    outputs: Vec<f64>,
}

/// `predict MODEL --csv FILE`: every row of a CSV file with the model's
/// feature columns (found by name; other columns are ignored), standardised
/// as in training.
fn predict_csv(model_path: &Path, csv_path: &Path, json: bool) -> Result<()> {
    let checkpoint = backprop_nn::Checkpoint::load(model_path)?;
    let backprop_nn::checkpoint::record::DataRecord::Csv { features, .. } = &checkpoint.data else {
        bail!(
            "{} was not trained on a CSV table; --csv needs such a model",
            model_path.display()
        );
    };
    let model = checkpoint.model()?;
    let size = std::fs::metadata(csv_path)
        .with_context(|| format!("cannot read {}", csv_path.display()))?
        .len();
    if size > backprop_data::MAX_CSV_BYTES {
        bail!(
            "{}: {size} bytes, more than the {} a table may have",
            csv_path.display(),
            backprop_data::MAX_CSV_BYTES
        );
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .with_context(|| format!("cannot read {}", csv_path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header", csv_path.display()))?
        .clone();
    let columns = features
        .iter()
        .map(|name| {
            header.iter().position(|h| h == name).with_context(|| {
                format!(
                    "{}: no column {name:?}; the model needs {}",
                    csv_path.display(),
                    features.join(", ")
                )
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("cannot read {}", csv_path.display()))?;
        let line = record.position().map_or(0, |p| p.line());
        for (&c, name) in columns.iter().zip(features) {
            let cell = record.get(c).unwrap_or("");
            let value: f32 = cell.parse().ok().filter(|v: &f32| v.is_finite()).with_context(|| {
                format!(
                    "{}: line {line}, column {name}: {cell:?} is not a number",
                    csv_path.display()
                )
            })?;
            rows.push(value);
        }
        lines.push(line);
    }
    let mut x = Array2::from_shape_vec((lines.len(), features.len()), rows)?;
    if let Some(n) = &checkpoint.normalization {
        for mut row in x.rows_mut() {
            for ((v, m), s) in row.iter_mut().zip(&n.mean).zip(&n.scale) {
                *v = (*v - m) / s;
            }
        }
    }
    let classify = checkpoint.loss().is_classification();
    let outputs = if classify {
        model.predict_proba(x.view())
    } else {
        model.predict_outputs(x.view())
    };
    for (line, out) in lines.into_iter().zip(outputs.rows()) {
        let values: Vec<f64> = out.iter().map(|&v| f64::from(v)).collect();
        let predicted = classify.then(|| argmax(&values));
        let class = predicted.and_then(|p| checkpoint.classes.get(p).cloned());
        let row = RowPrediction {
            line,
            predicted,
            class,
            outputs: values,
        };
        if json {
            println!("{}", serde_json::to_string(&row)?);
        } else if let Some(p) = row.predicted {
            let name = row.class.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
            println!(
                "line {:>5}: class {p}{name}, probability {:.2}%",
                row.line,
                100.0 * row.outputs[p]
            );
        } else {
            let shown: Vec<String> = row.outputs.iter().map(|v| format!("{v:.6}")).collect();
            println!("line {:>5}: {}", row.line, shown.join(", "));
        }
    }
    Ok(())
}
