//! Learning-rate schedules, computed per optimiser step from the step
//! count alone, so that a resumed run continues the same curve.
//!
//! With base rate `eta`, step `t` (from 0), `S` steps per epoch and `T`
//! steps in the planned run:
//!
//! | schedule | rate at step `t` |
//! |---|---|
//! | constant | `eta` |
//! | step | `eta * factor^floor(t / (every * S))` |
//! | exponential | `eta * gamma^(t / S)` (`gamma` per epoch, applied smoothly) |
//! | cosine | `eta_min + (eta - eta_min) (1 + cos(pi t / T)) / 2`, `eta_min = floor * eta` |
//! | one-cycle | cosine from `eta / 25` up to `eta` over the first 30% of `T`, then cosine down to `eta / 25e4` (PyTorch's `OneCycleLR` defaults) |
//!
//! A linear warmup multiplies any of them by `(t + 1) / W` for the first `W`
//! steps. Rates are computed in f64 and rounded once.

use crate::{NnError, Result};
use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

/// How the learning rate changes over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiplied by `factor` every `every` epochs.
    Step {
        /// Epochs between decays (at least 1).
        every: usize,
        /// The decay factor, in `(0, 1]`.
        factor: f32,
    },
    /// Multiplied by `gamma` per epoch, smoothly step by step.
    Exponential {
        /// The decay per epoch, in `(0, 1]`.
        gamma: f32,
    },
    /// Cosine annealing from the base rate to `floor` times it at the end
    /// of the planned run.
    Cosine {
        /// The final rate as a fraction of the base, in `[0, 1]`.
        floor: f32,
    },
    /// Smith's one-cycle policy: up to the base rate (the peak) over 30% of
    /// the run, then down to nearly zero, both along cosines.
    OneCycle,
}

impl Schedule {
    /// The rate at step `t` (from 0) of a run of `total` steps with
    /// `per_epoch` steps per epoch, base rate `base` and `warmup` warmup steps.
    pub fn rate(self, base: f32, t: u64, per_epoch: u64, total: u64, warmup: u64) -> f32 {
        let base = f64::from(base);
        let (t_f, per_epoch, total) = (t as f64, per_epoch.max(1) as f64, total.max(1) as f64);
        let rate = match self {
            Schedule::Constant => base,
            Schedule::Step { every, factor } => {
                let decays = (t_f / (every.max(1) as f64 * per_epoch)).floor();
                base * f64::from(factor).powf(decays)
            }
            Schedule::Exponential { gamma } => base * f64::from(gamma).powf(t_f / per_epoch),
            Schedule::Cosine { floor } => {
                let min = base * f64::from(floor);
                let progress = (t_f / total).min(1.0);
                min + (base - min) * 0.5 * (1.0 + (PI * progress).cos())
            }
            Schedule::OneCycle => {
                let (start, end) = (base / 25.0, base / 25.0 / 1e4);
                let up = 0.3 * total;
                let cos_between = |from: f64, to: f64, p: f64| to + (from - to) * 0.5 * (1.0 + (PI * p.min(1.0)).cos());
                if t_f < up {
                    cos_between(start, base, t_f / up)
                } else {
                    cos_between(base, end, (t_f - up) / (total - up).max(1.0))
                }
            }
        };
        let warm = if t < warmup {
            (t + 1) as f64 / warmup as f64
        } else {
            1.0
        };
        (rate * warm) as f32
    }

    /// Checks the parameters' ranges.
    ///
    /// # Errors
    /// [`NnError::InvalidConfig`] naming the schedule.
    pub fn validate(self) -> Result<()> {
        let ok = match self {
            Schedule::Constant | Schedule::OneCycle => true,
            Schedule::Step { every, factor } => every >= 1 && factor > 0.0 && factor <= 1.0,
            Schedule::Exponential { gamma } => gamma > 0.0 && gamma <= 1.0,
            Schedule::Cosine { floor } => (0.0..=1.0).contains(&floor),
        };
        if ok {
            Ok(())
        } else {
            Err(NnError::InvalidConfig {
                field: "schedule",
                reason: format!(
                    "{self}: step needs every >= 1 and a factor in (0, 1], exponential a gamma in (0, 1], \
                     cosine a floor in [0, 1]"
                ),
            })
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Step { every, factor } => write!(f, "step:{every}:{factor}"),
            Schedule::Exponential { gamma } => write!(f, "exponential:{gamma}"),
            Schedule::Cosine { floor } => write!(f, "cosine:{floor}"),
            Schedule::OneCycle => f.write_str("one-cycle"),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    /// `constant`, `step:EVERY:FACTOR`, `exponential:GAMMA`, `cosine[:FLOOR]`
    /// (floor 0 by default) or `one-cycle`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| {
            p.parse::<f32>()
                .map_err(|_| format!("{p:?} in schedule {s:?} is not a number"))
        };
        let schedule = match parts.as_slice() {
            ["constant"] => Schedule::Constant,
            ["one-cycle"] => Schedule::OneCycle,
            ["cosine"] => Schedule::Cosine { floor: 0.0 },
            ["cosine", floor] => Schedule::Cosine { floor: num(floor)? },
            ["exponential", gamma] => Schedule::Exponential { gamma: num(gamma)? },
            ["step", every, factor] => Schedule::Step {
                every: every
                    .parse()
                    .map_err(|_| format!("{every:?} in schedule {s:?} is not a whole number of epochs"))?,
                factor: num(factor)?,
            },
            _ => {
                return Err(format!(
                    "unknown schedule {s:?}; expected constant, step:EVERY:FACTOR, exponential:GAMMA, cosine[:FLOOR] or one-cycle"
                ));
            }
        };
        schedule.validate().map_err(|e| e.to_string())?;
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1e-3)
    }

    /// Each schedule at chosen steps against its formula (100 steps per
    /// epoch, 10 epochs, base 0.1).
    #[test]
    fn values_at_chosen_steps() {
        let rate = |s: Schedule, t| s.rate(0.1, t, 100, 1000, 0);
        assert_eq!(rate(Schedule::Constant, 999), 0.1);
        let step = Schedule::Step { every: 3, factor: 0.5 };
        assert!(close(rate(step, 299), 0.1) && close(rate(step, 300), 0.05) && close(rate(step, 900), 0.0125));
        let exp = Schedule::Exponential { gamma: 0.9 };
        assert!(close(rate(exp, 0), 0.1) && close(rate(exp, 250), 0.1 * 0.9f64.powf(2.5)));
        let cos = Schedule::Cosine { floor: 0.1 };
        assert!(close(rate(cos, 0), 0.1) && close(rate(cos, 500), 0.055) && close(rate(cos, 1000), 0.01));
        assert!(close(rate(cos, 250), 0.01 + 0.09 * 0.5 * (1.0 + (PI / 4.0).cos())));
        let one = Schedule::OneCycle;
        assert!(close(rate(one, 0), 0.004) && close(rate(one, 300), 0.1) && close(rate(one, 1000), 0.1 / 25e4));
        assert!(rate(one, 150) > 0.004 && rate(one, 150) < 0.1);
        // Warmup: linear over the first 10 steps, then the schedule itself.
        assert!(close(Schedule::Constant.rate(0.1, 0, 100, 1000, 10), 0.01));
        assert!(close(Schedule::Constant.rate(0.1, 4, 100, 1000, 10), 0.05));
        assert_eq!(Schedule::Constant.rate(0.1, 10, 100, 1000, 10), 0.1);
    }

    #[test]
    fn names_round_trip_and_bad_ones_are_refused() {
        for s in ["constant", "step:3:0.5", "exponential:0.95", "cosine:0.01", "one-cycle"] {
            assert_eq!(s.parse::<Schedule>().unwrap().to_string(), s);
        }
        assert_eq!("cosine".parse::<Schedule>().unwrap(), Schedule::Cosine { floor: 0.0 });
        for bad in ["linear", "step:0:0.5", "step:2:1.5", "exponential:x", "cosine:2"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }
}
