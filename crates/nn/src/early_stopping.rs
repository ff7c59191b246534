//! Early stopping on a validation metric: stop once the metric has not
//! improved by more than `min_delta` for `patience` epochs in a row, and say
//! which epoch was best (the one `--save-best` keeps).

use crate::Evaluation;
use std::fmt;
use std::str::FromStr;

/// The metric early stopping watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// Validation loss: lower is better.
    Loss,
    /// Validation accuracy: higher is better (classifiers only).
    Accuracy,
}

impl Monitor {
    /// The watched value of an evaluation, as a quantity to minimise.
    pub fn value(self, eval: &Evaluation) -> Option<f64> {
        match self {
            Monitor::Loss => Some(eval.loss),
            Monitor::Accuracy => eval.accuracy().map(|a| -a),
        }
    }
}

impl fmt::Display for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Monitor::Loss => "loss",
            Monitor::Accuracy => "accuracy",
        })
    }
}

impl FromStr for Monitor {
    type Err = String;

    /// `loss` or `accuracy`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "loss" => Ok(Monitor::Loss),
            "accuracy" => Ok(Monitor::Accuracy),
            _ => Err(format!("unknown metric {s:?}; expected loss or accuracy")),
        }
    }
}

/// What an epoch's validation result means for the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new best: keep this model.
    Improved,
    /// No improvement, but patience remains.
    Wait,
    /// No improvement for `patience` epochs: stop.
    Stop,
}

/// The state of early stopping, saved with a checkpoint so that a resumed
/// run stops where an uninterrupted one would.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// The watched metric.
    pub monitor: Monitor,
    /// Epochs without improvement tolerated.
    pub patience: usize,
    /// The least change that counts as an improvement.
    pub min_delta: f64,
    /// The best epoch so far and its value (as a quantity to minimise).
    pub best: Option<(usize, f64)>,
    /// Epochs since the best.
    pub waited: usize,
}

impl EarlyStopping {
    /// Watching `monitor` with `patience` and `min_delta`, nothing seen yet.
    pub fn new(monitor: Monitor, patience: usize, min_delta: f64) -> Self {
        Self {
            monitor,
            patience,
            min_delta,
            best: None,
            waited: 0,
        }
    }

    /// Takes epoch `epoch`'s validation `value` (as [`Monitor::value`]).
    pub fn update(&mut self, epoch: usize, value: f64) -> Verdict {
        // A NaN value is never an improvement.
        let improves = |best: f64| value < best - self.min_delta;
        match self.best {
            Some((_, best)) if !improves(best) => {
                self.waited += 1;
                if self.waited >= self.patience {
                    Verdict::Stop
                } else {
                    Verdict::Wait
                }
            }
            _ => {
                self.best = Some((epoch, value));
                self.waited = 0;
                Verdict::Improved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted validation curve: the loss falls to its best at epoch 4,
    /// then wobbles within min_delta; with patience 3 the run stops at 7.
    #[test]
    fn stops_where_the_curve_says() {
        let curve = [1.0, 0.8, 0.7, 0.65, 0.6505, 0.66, 0.649, 0.7, 0.5];
        let mut stop = EarlyStopping::new(Monitor::Loss, 3, 0.01);
        let mut verdicts = Vec::new();
        for (i, &v) in curve.iter().enumerate() {
            let verdict = stop.update(i + 1, v);
            verdicts.push(verdict);
            if verdict == Verdict::Stop {
                break;
            }
        }
        use Verdict::*;
        assert_eq!(verdicts, [Improved, Improved, Improved, Improved, Wait, Wait, Stop]);
        assert_eq!(stop.best, Some((4, 0.65)));
    }

    #[test]
    fn accuracy_is_maximised() {
        let mut stop = EarlyStopping::new(Monitor::Accuracy, 1, 0.0);
        assert_eq!(stop.update(1, -0.9), Verdict::Improved);
        assert_eq!(stop.update(2, -0.95), Verdict::Improved);
        assert_eq!(stop.update(3, -0.95), Verdict::Stop);
        assert_eq!(stop.best, Some((2, -0.95)));
    }
}
