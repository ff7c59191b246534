//! The per-epoch metrics `backprop plot` draws, read from a checkpoint's
//! history or from a metrics JSONL file (one JSON object per epoch, with
//! any subset of the keys `train --json` prints).

use anyhow::{Context, Result, bail};
use backprop_nn::Checkpoint;
use backprop_nn::checkpoint::record::EpochRecord;
use std::io::Read;
use std::path::Path;

/// Metrics files larger than this are refused before they are read.
const MAX_JSONL_BYTES: u64 = 256 << 20;

/// One curve: a name for the legend and `(epoch, value)` points.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Series {
    /// The legend's text, such as `test loss`.
    pub(crate) name: &'static str,
    /// `(epoch, value)`, in file order.
    pub(crate) points: Vec<(f64, f64)>,
}

/// What the score panel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Score {
    /// Accuracy, in percent.
    Accuracy,
    /// The coefficient of determination.
    R2,
}

/// Everything one picture of training curves shows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct History {
    /// The picture's title.
    pub(crate) title: String,
    /// The loss axis's label, such as `loss (cross-entropy)`.
    pub(crate) loss_label: &'static str,
    /// Train, validation and test loss (those present).
    pub(crate) loss: Vec<Series>,
    /// What `score` holds.
    pub(crate) score_kind: Score,
    /// Validation and test accuracy or R² (those present; may be empty).
    pub(crate) score: Vec<Series>,
}

/// Reads `path`: a checkpoint (told by its magic tag) or a metrics JSONL file.
pub(crate) fn load(path: &Path) -> Result<History> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
    if meta.is_dir() {
        bail!(
            "{} is a directory, not a checkpoint or a metrics JSONL file",
            path.display()
        );
    }
    if !meta.is_file() {
        // Opening a FIFO would block, and a device is no metrics file.
        bail!(
            "{} is not a regular file (a FIFO or a device); give a checkpoint or a metrics JSONL file",
            path.display()
        );
    }
    let mut head = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(backprop_nn::CHECKPOINT_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if head == backprop_nn::CHECKPOINT_MAGIC {
        from_checkpoint(path, &Checkpoint::load(path)?)
    } else {
        let mut text = String::new();
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        file.take(MAX_JSONL_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| {
                format!(
                    "{} is neither a checkpoint nor a metrics JSONL file (one JSON object per line)",
                    path.display()
                )
            })?;
        if text.len() as u64 > MAX_JSONL_BYTES {
            bail!(
                "{}: over {MAX_JSONL_BYTES} bytes, too large for a metrics file",
                path.display()
            );
        }
        from_jsonl(path, &text)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The curves of a checkpoint's per-epoch history.
pub(crate) fn from_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<History> {
    if checkpoint.history.is_empty() {
        bail!(
            "{} holds no per-epoch history (it was saved before its first epoch, or by Mlp::save); \
             nothing to plot",
            path.display()
        );
    }
    let classify = checkpoint.loss().is_classification();
    let h = &checkpoint.history;
    let curve = |name, f: &dyn Fn(&EpochRecord) -> Option<f64>| Series {
        name,
        points: h.iter().filter_map(|r| Some((r.epoch as f64, f(r)?))).collect(),
    };
    let loss = vec![
        curve("train loss", &|r| Some(r.train_loss)),
        curve("validation loss", &|r| Some(r.validation?.loss)),
        curve("test loss", &|r| Some(r.test?.loss)),
    ];
    let score = if classify {
        vec![
            curve("validation accuracy", &|r| Some(100.0 * r.validation?.accuracy?)),
            curve("test accuracy", &|r| Some(100.0 * r.test?.accuracy?)),
        ]
    } else {
        vec![
            curve("validation R²", &|r| r.validation?.r2),
            curve("test R²", &|r| r.test?.r2),
        ]
    };
    let sizes = crate::eval::sizes_text(&checkpoint.sizes());
    finish(History {
        title: format!("{} ({sizes})", file_name(path)),
        loss_label: if classify { "loss (cross-entropy)" } else { "loss (MSE)" },
        loss,
        score_kind: if classify { Score::Accuracy } else { Score::R2 },
        score,
    })
}

/// The curves of a metrics JSONL file; blank lines are skipped, and an
/// object without `epoch` is numbered by its position.
pub(crate) fn from_jsonl(path: &Path, text: &str) -> Result<History> {
    // (key, series name); the test loss falls back on `test_mse`.
    const KEYS: [(&str, &str); 7] = [
        ("train_loss", "train loss"),
        ("validation_loss", "validation loss"),
        ("test_loss", "test loss"),
        ("validation_accuracy", "validation accuracy"),
        ("test_accuracy", "test accuracy"),
        ("validation_r2", "validation R²"),
        ("test_r2", "test R²"),
    ];
    let mut points: [Vec<(f64, f64)>; 7] = Default::default();
    let mut mse_loss = Vec::new();
    let mut n = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: not JSON (a metrics file has one JSON object per line)", at()))?;
        let Some(object) = value.as_object() else {
            bail!("{}: not a JSON object (a metrics file has one per line)", at());
        };
        n += 1;
        let number = |key: &str| -> Result<Option<f64>> {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) => Ok(Some(x)),
                    None => bail!("{}: {key} is {v}, not a number", at()),
                },
            }
        };
        let epoch = number("epoch")?.unwrap_or(n as f64);
        for (slot, (key, _)) in points.iter_mut().zip(KEYS) {
            if let Some(v) = number(key)? {
                let scale = if key.ends_with("accuracy") { 100.0 } else { 1.0 };
                slot.push((epoch, scale * v));
            }
        }
        if let Some(v) = number("test_mse")? {
            mse_loss.push((epoch, v));
        }
    }
    if n == 0 {
        bail!(
            "{} holds no epochs (an empty metrics file); nothing to plot",
            path.display()
        );
    }
    let [train, val_loss, test_loss, val_acc, test_acc, val_r2, test_r2] = points;
    let regression = !mse_loss.is_empty() || !val_r2.is_empty() || !test_r2.is_empty();
    let classify = !val_acc.is_empty() || !test_acc.is_empty();
    let test_loss = if test_loss.is_empty() { mse_loss } else { test_loss };
    let series = |name, points| Series { name, points };
    let (score_kind, score) = if classify || !regression {
        (
            Score::Accuracy,
            vec![series(KEYS[3].1, val_acc), series(KEYS[4].1, test_acc)],
        )
    } else {
        (Score::R2, vec![series(KEYS[5].1, val_r2), series(KEYS[6].1, test_r2)])
    };
    finish(History {
        title: file_name(path),
        loss_label: match (classify, regression) {
            (true, false) => "loss (cross-entropy)",
            (false, true) => "loss (MSE)",
            _ => "loss",
        },
        loss: vec![
            series(KEYS[0].1, train),
            series(KEYS[1].1, val_loss),
            series(KEYS[2].1, test_loss),
        ],
        score_kind,
        score,
    })
}

/// Drops non-finite points (a diverged run) and empty series; refuses a
/// history with nothing left to draw.
fn finish(mut h: History) -> Result<History> {
    for s in h.loss.iter_mut().chain(h.score.iter_mut()) {
        s.points.retain(|(x, y)| x.is_finite() && y.is_finite());
    }
    h.loss.retain(|s| !s.points.is_empty());
    h.score.retain(|s| !s.points.is_empty());
    if h.loss.is_empty() && h.score.is_empty() {
        bail!(
            "{}: no finite loss, accuracy or R² in any epoch; nothing to plot",
            h.title
        );
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<History> {
        from_jsonl(Path::new("m.metrics.jsonl"), text)
    }

    #[test]
    fn jsonl_accepts_any_subset_of_the_keys() {
        let h = parse(
            "{\"epoch\":1,\"train_loss\":0.5,\"test_loss\":0.4,\"test_accuracy\":0.9,\"seconds\":1}\n\n\
             {\"epoch\":2,\"train_loss\":0.3,\"test_loss\":0.35,\"test_accuracy\":0.92}\n",
        )
        .unwrap();
        assert_eq!(h.loss_label, "loss (cross-entropy)");
        assert_eq!(h.loss.len(), 2);
        assert_eq!(h.loss[1].points, vec![(1.0, 0.4), (2.0, 0.35)]);
        assert_eq!(h.score_kind, Score::Accuracy);
        assert_eq!(h.score[0].name, "test accuracy");
        assert!((h.score[0].points[1].1 - 92.0).abs() < 1e-9);

        let h = parse("{\"train_loss\":2}\n{\"train_loss\":1}").unwrap();
        assert_eq!(h.loss[0].points, vec![(1.0, 2.0), (2.0, 1.0)], "numbered by position");
        assert!(h.score.is_empty());

        let h = parse("{\"epoch\":1,\"train_loss\":2,\"test_mse\":1.5,\"test_r2\":0.3}").unwrap();
        assert_eq!((h.loss_label, h.score_kind), ("loss (MSE)", Score::R2));
        assert_eq!(h.loss[1].name, "test loss");
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        for (text, needle) in [
            ("", "no epochs"),
            ("\n  \n", "no epochs"),
            ("{\"epoch\":1}\n[1]", "line 2: not a JSON object"),
            ("{\"epoch\":1,\"train_loss\":\"x\"}", "line 1: train_loss is \"x\""),
            ("{\"epoch\":1", "line 1: not JSON"),
            ("{\"epoch\":1,\"seconds\":3}", "nothing to plot"),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
