//! The metrics files of a training run: every epoch's record appended to
//! `BASE.metrics.jsonl` (the `--json` line) and `BASE.metrics.csv`, where
//! `BASE` is `--log`, else `--save`, else `--resume`.
//!
//! Each line is appended with a single write and then synced, so after a
//! crash a line is whole or absent. The line is written before the epoch's
//! checkpoint: a run killed between the two leaves one line too many, which
//! a resumed run drops before it appends, so the files always hold exactly
//! the checkpoint's epochs.

use anyhow::{Context, Result};
use backprop_nn::atomic::{Special, write_atomic};
use backprop_nn::checkpoint::record::{EpochRecord, MetricsRecord};
use backprop_nn::{EpochStats, Evaluation, Metrics};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One epoch's metrics, as printed with `--json` and written to the metrics
/// files: the test fields when the test set was measured, the validation
/// fields when there is a validation split.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct EpochLine {
    pub(crate) epoch: usize,
    /// Planned epochs: printed with `--json`, not written to the files (a
    /// resumed run may change it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) epochs: Option<usize>,
    pub(crate) train_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) validation_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) validation_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) validation_mse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) validation_r2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) test_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) test_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) test_mse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) test_r2: Option<f64>,
    pub(crate) learning_rate: f32,
    pub(crate) seconds: f64,
    /// `None` only for an epoch restored from a checkpoint's history, which
    /// does not record it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) eval_seconds: Option<f64>,
}

/// `(loss, accuracy, mse, r2)` of an evaluation.
fn measures(eval: Option<&Evaluation>) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
    match eval.map(|e| (e.loss, e.metrics)) {
        None => (None, None, None, None),
        Some((loss, Metrics::Classification { accuracy, .. })) => (Some(loss), Some(accuracy), None, None),
        Some((loss, Metrics::Regression { mse, r2 })) => (Some(loss), None, Some(mse), Some(r2)),
    }
}

/// The same from a history record (the MSE is a regression's loss).
fn recorded(m: Option<MetricsRecord>, regression: bool) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
    match m {
        None => (None, None, None, None),
        Some(m) => (Some(m.loss), m.accuracy, regression.then_some(m.loss), m.r2),
    }
}

impl EpochLine {
    /// The line of an epoch just trained and evaluated.
    pub(crate) fn new(
        stats: &EpochStats,
        validation: Option<&Evaluation>,
        test: Option<&Evaluation>,
        eval_seconds: f64,
    ) -> EpochLine {
        let (validation_loss, validation_accuracy, validation_mse, validation_r2) = measures(validation);
        let (test_loss, test_accuracy, test_mse, test_r2) = measures(test);
        EpochLine {
            epoch: stats.epoch,
            epochs: None,
            train_loss: stats.train_loss,
            validation_loss,
            validation_accuracy,
            validation_mse,
            validation_r2,
            test_loss,
            test_accuracy,
            test_mse,
            test_r2,
            learning_rate: stats.learning_rate,
            seconds: stats.seconds,
            eval_seconds: Some(eval_seconds),
        }
    }

    /// The line of an epoch of a checkpoint's history (for a metrics file
    /// that lacks it).
    fn from_record(r: &EpochRecord, regression: bool) -> EpochLine {
        let (validation_loss, validation_accuracy, validation_mse, validation_r2) = recorded(r.validation, regression);
        let (test_loss, test_accuracy, test_mse, test_r2) = recorded(r.test, regression);
        EpochLine {
            epoch: usize::try_from(r.epoch).unwrap_or(usize::MAX),
            epochs: None,
            train_loss: r.train_loss,
            validation_loss,
            validation_accuracy,
            validation_mse,
            validation_r2,
            test_loss,
            test_accuracy,
            test_mse,
            test_r2,
            learning_rate: r.learning_rate,
            seconds: r.seconds,
            eval_seconds: None,
        }
    }

    /// The JSON object, on one line with its newline.
    fn json_line(&self) -> Result<String> {
        Ok(serde_json::to_string(self)? + "\n")
    }

    /// The CSV row under [`csv_header`], with its newline; an absent value
    /// is an empty cell.
    fn csv_line(&self, regression: bool) -> String {
        let cell = |x: Option<f64>| x.map_or_else(String::new, |x| x.to_string());
        let split = |loss, accuracy, mse, r2| {
            if regression {
                format!("{},{},{}", cell(loss), cell(mse), cell(r2))
            } else {
                format!("{},{}", cell(loss), cell(accuracy))
            }
        };
        format!(
            "{},{},{},{},{},{},{}\n",
            self.epoch,
            self.train_loss,
            split(
                self.validation_loss,
                self.validation_accuracy,
                self.validation_mse,
                self.validation_r2
            ),
            split(self.test_loss, self.test_accuracy, self.test_mse, self.test_r2),
            self.learning_rate,
            self.seconds,
            cell(self.eval_seconds)
        )
    }
}

/// The CSV file's header line, with its newline.
fn csv_header(regression: bool) -> &'static str {
    if regression {
        "epoch,train_loss,validation_loss,validation_mse,validation_r2,test_loss,test_mse,test_r2,learning_rate,seconds,eval_seconds\n"
    } else {
        "epoch,train_loss,validation_loss,validation_accuracy,test_loss,test_accuracy,learning_rate,seconds,eval_seconds\n"
    }
}

/// The two metrics files of `base`: `BASE.metrics.jsonl` and
/// `BASE.metrics.csv`.
pub(crate) fn paths(base: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut name = base.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    (with(".metrics.jsonl"), with(".metrics.csv"))
}

/// The open metrics files of a run, appended to after every epoch.
pub(crate) struct MetricsLog {
    jsonl: (PathBuf, File),
    csv: (PathBuf, File),
    regression: bool,
}

impl MetricsLog {
    /// Starts the metrics files of `base`. A fresh run (`history` empty,
    /// `source` `None`) replaces them with empty ones (the CSV with its
    /// header). A resumed run continues the metrics files of `source` (the
    /// base it logged to): it keeps their lines that match the checkpoint's
    /// `history`, drops any past it, and restores from `history` any epoch
    /// they lack. Each file of `base` is rewritten atomically.
    pub(crate) fn start(
        base: &Path,
        regression: bool,
        history: &[EpochRecord],
        source: Option<&Path>,
    ) -> Result<MetricsLog> {
        let (jsonl_path, csv_path) = paths(base);
        let read = |path: Option<&PathBuf>| -> String {
            path.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default()
        };
        let old = source.filter(|_| !history.is_empty()).map(paths);
        let lines: Vec<EpochLine> = history.iter().map(|r| EpochLine::from_record(r, regression)).collect();

        let jsonl_text = if history.is_empty() {
            String::new()
        } else {
            read(old.as_ref().map(|o| &o.0))
        };
        let mut jsonl = String::new();
        let kept = keep_lines(&jsonl_text, "", history, &mut jsonl, |line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()?
                .get("epoch")?
                .as_u64()
        });
        for line in &lines[kept..] {
            jsonl.push_str(&line.json_line()?);
        }

        let header = csv_header(regression);
        let csv_text = if history.is_empty() {
            String::new()
        } else {
            read(old.as_ref().map(|o| &o.1))
        };
        let mut csv = String::from(header);
        let kept = keep_lines(&csv_text, header, history, &mut csv, |line| {
            line.split(',').next()?.parse().ok()
        });
        for line in &lines[kept..] {
            csv.push_str(&line.csv_line(regression));
        }

        Ok(MetricsLog {
            jsonl: (jsonl_path.clone(), rewrite(&jsonl_path, &jsonl)?),
            csv: (csv_path.clone(), rewrite(&csv_path, &csv)?),
            regression,
        })
    }

    /// Appends the epoch's line to both files, each with one write, then
    /// syncs them.
    pub(crate) fn append(&mut self, line: &EpochLine) -> Result<()> {
        let json = line.json_line()?;
        let csv = line.csv_line(self.regression);
        for ((path, file), text) in [(&mut self.jsonl, json), (&mut self.csv, csv)] {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_data())
                .with_context(|| format!("cannot append epoch {} to {}", line.epoch, path.display()))?;
        }
        Ok(())
    }
}

/// Copies to `out` the whole lines of `text` (after `header`, which must
/// match) whose epochs (read by `epoch`) are those of `history`, in order,
/// and returns how many were kept; the first line that is cut short,
/// unreadable or past the history ends the copy.
fn keep_lines(
    text: &str,
    header: &str,
    history: &[EpochRecord],
    out: &mut String,
    epoch: impl Fn(&str) -> Option<u64>,
) -> usize {
    let Some(body) = text.strip_prefix(header) else {
        return 0;
    };
    let mut kept = 0;
    for line in body.split_inclusive('\n') {
        let Some(content) = line.strip_suffix('\n') else { break };
        match history.get(kept) {
            Some(r) if epoch(content) == Some(r.epoch) => {
                out.push_str(line);
                kept += 1;
            }
            _ => break,
        }
    }
    kept
}

/// Replaces `path` atomically with `text`, then opens it for appending.
fn rewrite(path: &Path, text: &str) -> Result<File> {
    write_atomic(path, Special::Refuse, |f| f.write_all(text.as_bytes()), None)
        .map_err(|(p, e)| anyhow::anyhow!("cannot write the metrics file {}: {e}", p.display()))?;
    File::options()
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the metrics file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 0.5,
            learning_rate: 0.1,
            seconds: 1.0,
            validation: None,
            test: Some(backprop_nn::checkpoint::record::MetricsRecord {
                loss: 0.25,
                accuracy: Some(0.75),
                r2: None,
            }),
        }
    }

    #[test]
    fn lines_past_the_history_or_cut_short_are_dropped() {
        let history = [record(1), record(2)];
        let epoch = |l: &str| l.split(',').next()?.parse().ok();
        let mut out = String::new();
        assert_eq!(keep_lines("h\n1,a\n2,b\n3,c\n", "h\n", &history, &mut out, epoch), 2);
        assert_eq!(out, "1,a\n2,b\n");
        out.clear();
        assert_eq!(keep_lines("h\n1,a\n2,b", "h\n", &history, &mut out, epoch), 1);
        out.clear();
        assert_eq!(keep_lines("x\n1,a\n", "h\n", &history, &mut out, epoch), 0);
        assert_eq!(keep_lines("h\n2,b\n", "h\n", &history, &mut out, epoch), 0);
    }

    #[test]
    fn a_restored_line_leaves_eval_seconds_empty() {
        let line = EpochLine::from_record(&record(3), false);
        // No validation split: its two columns are empty.
        assert_eq!(line.csv_line(false), "3,0.5,,,0.25,0.75,0.1,1,\n");
        assert!(!line.json_line().unwrap().contains("eval_seconds"));
    }
}
