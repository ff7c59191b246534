//! `cargo xtask robustness MODEL [--digits DIR]`: how a model trained on
//! handwriting does on digits set in type (see `fontdigits`). Runs the
//! release `backprop predict MODEL FILE... --json` on every image of the
//! manifest, many files per invocation, and reports the accuracy overall, per
//! class, per glyph height, stroke weight and slant, and the fonts and
//! confusions that cost most. It is a report: it exits 0 whatever the
//! accuracy, non-zero only when something fails.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::fontdigits::{self, Entry};
use crate::{project_root, verify};

/// Files per `backprop predict` invocation.
const BATCH: usize = 500;

#[derive(Debug, Args)]
pub(crate) struct RobustnessArgs {
    /// The checkpoint to test (784 inputs, 10 classes).
    pub(crate) model: PathBuf,

    /// A directory written by `cargo xtask fontdigits`; without it the digits
    /// are generated into a temporary directory first.
    #[arg(long, value_name = "DIR")]
    pub(crate) digits: Option<PathBuf>,

    /// Font files or directories to generate from (without --digits)
    /// instead of /usr/share/fonts.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub(crate) fonts: Vec<PathBuf>,

    /// Print the report as one JSON object instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

/// One line of `backprop predict --json`.
#[derive(Debug, Deserialize)]
struct PredictLine {
    file: String,
    predicted: usize,
}

/// Images and correct predictions in one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Tally {
    pub(crate) images: usize,
    pub(crate) correct: usize,
    pub(crate) accuracy: f64,
}

impl Tally {
    fn add(&mut self, correct: bool) {
        self.images += 1;
        self.correct += usize::from(correct);
        self.accuracy = self.correct as f64 / self.images as f64;
    }
}

/// A mistake and how often it was made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Confusion {
    pub(crate) digit: u8,
    pub(crate) predicted: usize,
    pub(crate) count: usize,
}

/// A font's accuracy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct FontTally {
    pub(crate) font: String,
    #[serde(flatten)]
    pub(crate) tally: Tally,
}

/// Everything the report holds.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) model: String,
    pub(crate) digits: String,
    pub(crate) fonts: usize,
    pub(crate) overall: Tally,
    pub(crate) per_class: BTreeMap<u8, Tally>,
    pub(crate) per_size: BTreeMap<u32, Tally>,
    pub(crate) per_weight: BTreeMap<u32, Tally>,
    pub(crate) per_slant: BTreeMap<i32, Tally>,
    /// Every font, least accurate first.
    pub(crate) per_font: Vec<FontTally>,
    /// The ten most frequent mistakes.
    pub(crate) confusions: Vec<Confusion>,
}

pub(crate) fn run(args: &RobustnessArgs) -> Result<()> {
    let root = project_root();
    let model =
        std::fs::canonicalize(&args.model).with_context(|| format!("{}: no such checkpoint", args.model.display()))?;
    eprintln!("== build: backprop (release)");
    let backprop = verify::build_cli(&root)?;

    let scratch;
    let digits = match &args.digits {
        Some(dir) => dir.clone(),
        None => {
            scratch = tempfile::tempdir().context("creating a temporary directory for the digits")?;
            eprintln!("== fontdigits: rendering into {}", scratch.path().display());
            let generated = fontdigits::generate(scratch.path(), &args.fonts)?;
            eprintln!("{generated}");
            scratch.path().to_path_buf()
        }
    };
    let entries = fontdigits::read_manifest(&digits)?;
    eprintln!(
        "== predict: {} images, {BATCH} per run of backprop predict",
        entries.len()
    );
    let predicted = predict_all(&backprop, &model, &digits, &entries)?;
    let report = Report::new(&model, &digits, &entries, &predicted);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// The predicted class of every entry, in order, from `backprop predict`
/// run in `digits` on relative paths, a few runs at a time after the first.
fn predict_all(backprop: &Path, model: &Path, digits: &Path, entries: &[Entry]) -> Result<Vec<usize>> {
    let chunks: Vec<&[Entry]> = entries.chunks(BATCH).collect();
    // The first batch alone, so that a bad model fails once, not per batch.
    let Some((first, rest)) = chunks.split_first() else {
        return Ok(Vec::new());
    };
    let mut predicted = predict_chunk(backprop, model, digits, first)?;
    let results = fontdigits::parallel_map(rest, |chunk| predict_chunk(backprop, model, digits, chunk));
    for chunk in results {
        predicted.extend(chunk?);
    }
    Ok(predicted)
}

fn predict_chunk(backprop: &Path, model: &Path, digits: &Path, chunk: &[Entry]) -> Result<Vec<usize>> {
    let output = Command::new(backprop)
        .current_dir(digits)
        .arg("predict")
        .arg(model)
        .args(chunk.iter().map(|e| &e.file))
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} predict", backprop.display()))?;
    ensure!(
        output.status.success(),
        "backprop predict failed ({}) on a batch starting with {}",
        output.status,
        chunk[0].file
    );
    parse_predictions(&String::from_utf8_lossy(&output.stdout), chunk)
}

/// The predicted classes in `stdout`, one JSON object per file, checked to
/// name the chunk's files in order.
fn parse_predictions(stdout: &str, chunk: &[Entry]) -> Result<Vec<usize>> {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        lines.len() == chunk.len(),
        "backprop predict printed {} results for {} files",
        lines.len(),
        chunk.len()
    );
    lines
        .iter()
        .zip(chunk)
        .map(|(line, entry)| {
            let p: PredictLine = serde_json::from_str(line)
                .with_context(|| format!("backprop predict printed no file and class: {line:.200}"))?;
            ensure!(
                p.file == entry.file,
                "backprop predict answered for {} where {} was expected",
                p.file,
                entry.file
            );
            Ok(p.predicted)
        })
        .collect()
}

impl Report {
    pub(crate) fn new(model: &Path, digits: &Path, entries: &[Entry], predicted: &[usize]) -> Report {
        let mut overall = Tally::default();
        let mut per_class = BTreeMap::new();
        let mut per_size = BTreeMap::new();
        let mut per_weight = BTreeMap::new();
        let mut per_slant = BTreeMap::new();
        let mut per_font: HashMap<&str, Tally> = HashMap::new();
        let mut mistakes: BTreeMap<(u8, usize), usize> = BTreeMap::new();
        for (e, &p) in entries.iter().zip(predicted) {
            let ok = usize::from(e.digit) == p;
            overall.add(ok);
            per_class.entry(e.digit).or_insert_with(Tally::default).add(ok);
            per_size.entry(e.variant.size).or_insert_with(Tally::default).add(ok);
            per_weight
                .entry(e.variant.weight)
                .or_insert_with(Tally::default)
                .add(ok);
            per_slant.entry(e.variant.slant).or_insert_with(Tally::default).add(ok);
            per_font.entry(&e.font).or_default().add(ok);
            if !ok {
                *mistakes.entry((e.digit, p)).or_default() += 1;
            }
        }
        let mut per_font: Vec<FontTally> = per_font
            .into_iter()
            .map(|(font, tally)| FontTally {
                font: font.to_string(),
                tally,
            })
            .collect();
        per_font.sort_by(|a, b| {
            a.tally
                .accuracy
                .total_cmp(&b.tally.accuracy)
                .then_with(|| a.font.cmp(&b.font))
        });
        let mut confusions: Vec<Confusion> = mistakes
            .into_iter()
            .map(|((digit, predicted), count)| Confusion {
                digit,
                predicted,
                count,
            })
            .collect();
        confusions.sort_by_key(|c| std::cmp::Reverse(c.count));
        confusions.truncate(10);
        Report {
            model: model.display().to_string(),
            digits: digits.display().to_string(),
            fonts: per_font.len(),
            overall,
            per_class,
            per_size,
            per_weight,
            per_slant,
            per_font,
            confusions,
        }
    }
}

fn table<K: std::fmt::Display>(out: &mut String, title: &str, rows: impl IntoIterator<Item = (K, Tally)>) {
    let _ = writeln!(out, "\n{title:<36} {:>7} {:>7} {:>9}", "images", "correct", "accuracy");
    for (key, t) in rows {
        let _ = writeln!(
            out,
            "  {:<34} {:>7} {:>7} {:>8.2}%",
            key.to_string(),
            t.images,
            t.correct,
            100.0 * t.accuracy
        );
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "robustness of {} on {} font digits from {} fonts ({})",
            self.model, self.overall.images, self.fonts, self.digits
        );
        let _ = writeln!(
            out,
            "overall accuracy {:.2}% ({} of {})",
            100.0 * self.overall.accuracy,
            self.overall.correct,
            self.overall.images
        );
        table(&mut out, "class", self.per_class.iter().map(|(k, t)| (k, *t)));
        table(
            &mut out,
            "glyph height (px)",
            self.per_size.iter().map(|(k, t)| (k, *t)),
        );
        table(
            &mut out,
            "weight (dilation)",
            self.per_weight.iter().map(|(k, t)| (format!("w{k}"), *t)),
        );
        table(
            &mut out,
            "slant (degrees)",
            self.per_slant
                .iter()
                .map(|(k, t)| (if *k == 0 { "0".into() } else { format!("{k:+}") }, *t)),
        );
        let shown = 10.min(self.per_font.len());
        table(
            &mut out,
            &format!("least accurate {shown} fonts"),
            self.per_font[..shown].iter().map(|f| (&f.font, f.tally)),
        );
        if let Some(best) = self.per_font.last() {
            let _ = writeln!(
                out,
                "  (most accurate: {} {:.2}%)",
                best.font,
                100.0 * best.tally.accuracy
            );
        }
        if !self.confusions.is_empty() {
            let _ = writeln!(out, "\nmost frequent mistakes (true -> predicted: count)");
            for c in &self.confusions {
                let _ = writeln!(out, "  {} -> {}: {}", c.digit, c.predicted, c.count);
            }
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fontdigits::Variant;

    fn entry(digit: u8, font: &str, size: u32, weight: u32, slant: i32) -> Entry {
        let variant = Variant { size, weight, slant };
        Entry {
            file: fontdigits::file_name(digit, font, variant),
            digit,
            font: font.into(),
            variant,
        }
    }

    #[test]
    fn predictions_are_matched_to_files_in_order() {
        let chunk = [entry(1, "A_R", 16, 0, 0), entry(2, "A_R", 28, 1, -12)];
        let out = format!(
            "{{\"file\":\"{}\",\"inverted\":true,\"predicted\":1,\"top\":[],\"seen\":[]}}\n\n\
             {{\"file\":\"{}\",\"predicted\":7}}\n",
            chunk[0].file, chunk[1].file
        );
        assert_eq!(parse_predictions(&out, &chunk).unwrap(), [1, 7]);
        let swapped = out.replace("-w0-", "-wX-");
        assert!(parse_predictions(&swapped, &chunk).is_err());
        assert!(parse_predictions("{\"file\":\"x\",\"predicted\":1}", &chunk).is_err());
        assert!(parse_predictions("not json\nnot json\n", &chunk).is_err());
    }

    #[test]
    fn the_report_counts_every_bucket() {
        let entries = [
            entry(1, "A_R", 16, 0, 0),
            entry(1, "A_R", 48, 2, 12),
            entry(7, "B_B", 48, 0, -12),
            entry(7, "B_B", 16, 0, 0),
        ];
        let report = Report::new(Path::new("m.ckpt"), Path::new("d"), &entries, &[1, 7, 1, 7]);
        assert_eq!((report.overall.images, report.overall.correct), (4, 2));
        assert_eq!(report.overall.accuracy, 0.5);
        assert_eq!(report.per_class[&1].correct, 1);
        assert_eq!(report.per_class[&7].correct, 1);
        assert_eq!(report.per_size[&16].accuracy, 1.0);
        assert_eq!(report.per_size[&48].accuracy, 0.0);
        assert_eq!(report.per_weight[&0].images, 3);
        assert_eq!(report.per_slant[&-12].correct, 0);
        assert_eq!(report.fonts, 2);
        assert_eq!(report.per_font[0].tally.accuracy, 0.5);
        assert_eq!(
            report.confusions,
            [
                Confusion {
                    digit: 1,
                    predicted: 7,
                    count: 1
                },
                Confusion {
                    digit: 7,
                    predicted: 1,
                    count: 1
                }
            ]
        );
        let text = report.to_string();
        assert!(text.contains("overall accuracy 50.00% (2 of 4)"), "{text}");
        assert!(text.contains("\n  -12 ") && text.contains("\n  0 "), "{text}");
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["overall"]["correct"], 2);
        assert_eq!(json["per_class"]["7"]["images"], 2);
        assert_eq!(json["per_font"][0]["font"], "A_R");
    }
}
