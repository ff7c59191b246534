//! Optimisers: how parameters move given their gradients (E6 and its
//! descendants). Each lives in a file of its own with its update rule in
//! its doc comment; PyTorch's documented formulas (`torch.optim.SGD`,
//! `Adam`, `AdamW`) are the reference, and `xtask/scripts/optim_reference.py`
//! checks them against NumPy.
//!
//! Every optimiser allocates its state once, when built, updates every
//! element in fixed chunks on the pool's threads (so results do not depend
//! on the thread count), and can hand its state to a checkpoint and take it
//! back for an exact resume. A new optimiser is a type implementing
//! [`Optimizer`] in a new file, plus a variant of [`OptimizerConfig`] to
//! build and record it.

use crate::{Adam, Gradients, Mlp, Momentum, NnError, Result, Sgd};
use backprop_tensor::{ThreadPool, aligned_copy, aligned_zeros};
use ndarray::{Array1, ArrayView1};
use std::fmt;

/// Updates a model's parameters from their gradients, step after step.
pub trait Optimizer: fmt::Debug + Send {
    /// One update of every parameter of `model` from `grads`, on the threads
    /// of `pool`. Allocates nothing.
    fn step(&mut self, pool: &ThreadPool, model: &mut Mlp, grads: &Gradients);

    /// The current step size `eta`.
    fn learning_rate(&self) -> f32;

    /// Changes the step size (learning-rate schedules).
    fn set_learning_rate(&mut self, learning_rate: f32);

    /// What this optimiser is, with its hyperparameters.
    fn config(&self) -> OptimizerConfig;

    /// The state carried between steps, for a checkpoint.
    fn state(&self) -> OptimizerState;

    /// Continues from a state taken by [`Optimizer::state`].
    ///
    /// # Errors
    /// [`NnError::InvalidConfig`] when the state has another number or shape
    /// of slots than this optimiser keeps for its model.
    fn load_state(&mut self, state: OptimizerState) -> Result<()>;
}

/// The state an optimiser carries between steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Steps taken (Adam's `t`).
    pub step: u64,
    /// `slots[k][i]`: state slot `k` (momentum buffer, first moment, second
    /// moment) for parameter tensor `i` (layer 0's weight, its bias, layer
    /// 1's weight, ...), flat in the tensor's row-major order.
    pub slots: Vec<Vec<Vec<f32>>>,
}

/// Which optimiser, with its hyperparameters (the learning rate is kept
/// apart, since schedules change it).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum OptimizerConfig {
    /// Plain SGD ([`Sgd`]).
    Sgd {
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// SGD with momentum, classic or Nesterov ([`Momentum`]).
    Momentum {
        /// `mu`, the momentum factor.
        momentum: f32,
        /// Nesterov's look-ahead form.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// Adam, or AdamW with decoupled weight decay ([`Adam`]).
    Adam {
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the root of the second moment.
        eps: f32,
        /// Weight decay: L2 added to the gradient (Adam), or decoupled
        /// (AdamW).
        weight_decay: f32,
        /// AdamW.
        decoupled: bool,
    },
}

impl Default for OptimizerConfig {
    /// Plain SGD, the seed's.
    fn default() -> Self {
        OptimizerConfig::Sgd { weight_decay: 0.0 }
    }
}

impl OptimizerConfig {
    /// SGD with momentum 0.9.
    pub const MOMENTUM: OptimizerConfig = OptimizerConfig::Momentum {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    /// Nesterov momentum 0.9.
    pub const NESTEROV: OptimizerConfig = OptimizerConfig::Momentum {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.0,
    };
    /// Adam with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.
    pub const ADAM: OptimizerConfig = OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
    };
    /// AdamW with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight
    /// decay 0.01.
    pub const ADAMW: OptimizerConfig = OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        decoupled: true,
    };

    /// The name used on the command line: `sgd`, `momentum`, `nesterov`,
    /// `adam` or `adamw`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Momentum { nesterov: false, .. } => "momentum",
            OptimizerConfig::Momentum { nesterov: true, .. } => "nesterov",
            OptimizerConfig::Adam { decoupled: false, .. } => "adam",
            OptimizerConfig::Adam { decoupled: true, .. } => "adamw",
        }
    }

    /// The configuration named `name`, with default hyperparameters.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sgd" => OptimizerConfig::default(),
            "momentum" => OptimizerConfig::MOMENTUM,
            "nesterov" => OptimizerConfig::NESTEROV,
            "adam" => OptimizerConfig::ADAM,
            "adamw" => OptimizerConfig::ADAMW,
            _ => return None,
        })
    }

    /// The weight decay.
    pub fn weight_decay(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { weight_decay }
            | OptimizerConfig::Momentum { weight_decay, .. }
            | OptimizerConfig::Adam { weight_decay, .. } => weight_decay,
        }
    }

    /// Checks every hyperparameter's range.
    ///
    /// # Errors
    /// [`NnError::InvalidConfig`] naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, value: f32, range: &str| {
            Err(NnError::InvalidConfig {
                field,
                reason: format!("must be {range}, got {value}"),
            })
        };
        let decay = self.weight_decay();
        if !(decay.is_finite() && decay >= 0.0) {
            return bad("weight decay", decay, "a finite number >= 0");
        }
        match *self {
            OptimizerConfig::Sgd { .. } => {}
            OptimizerConfig::Momentum { momentum, .. } => {
                if !(0.0..1.0).contains(&momentum) {
                    return bad("momentum", momentum, "in [0, 1)");
                }
            }
            OptimizerConfig::Adam { beta1, beta2, eps, .. } => {
                if !(0.0..1.0).contains(&beta1) {
                    return bad("beta1", beta1, "in [0, 1)");
                }
                if !(0.0..1.0).contains(&beta2) {
                    return bad("beta2", beta2, "in [0, 1)");
                }
                if !(eps.is_finite() && eps > 0.0) {
                    return bad("eps", eps, "a finite number > 0");
                }
            }
        }
        Ok(())
    }

    /// The optimiser for `model`, its state allocated now.
    ///
    /// # Errors
    /// An invalid hyperparameter or learning rate.
    pub fn build(&self, model: &Mlp, learning_rate: f32) -> Result<Box<dyn Optimizer>> {
        self.validate()?;
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(NnError::InvalidConfig {
                field: "learning rate",
                reason: format!("must be a positive number, got {learning_rate}"),
            });
        }
        Ok(match *self {
            OptimizerConfig::Sgd { weight_decay } => Box::new(Sgd::with_weight_decay(learning_rate, weight_decay)),
            OptimizerConfig::Momentum {
                momentum,
                nesterov,
                weight_decay,
            } => Box::new(Momentum::new(model, learning_rate, momentum, nesterov, weight_decay)),
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
            } => Box::new(Adam::new(
                model,
                learning_rate,
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
            )),
        })
    }
}

impl fmt::Display for OptimizerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OptimizerConfig::Sgd { weight_decay } => write!(f, "SGD, weight decay {weight_decay}"),
            OptimizerConfig::Momentum {
                momentum,
                nesterov,
                weight_decay,
            } => write!(
                f,
                "SGD with {}momentum {momentum}, weight decay {weight_decay}",
                if nesterov { "Nesterov " } else { "" }
            ),
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
            } => write!(
                f,
                "{}, betas ({beta1}, {beta2}), eps {eps}, weight decay {weight_decay}",
                if decoupled { "AdamW" } else { "Adam" }
            ),
        }
    }
}

/// Every parameter tensor of `model` with its gradient, flat, in the order
/// of [`OptimizerState::slots`]: layer 0's weight, its bias (and its batch
/// normalisation's `gamma` and `beta`, when it has one), layer 1's weight,
/// ...
pub(crate) fn tensors<'a>(
    model: &'a mut Mlp,
    grads: &'a Gradients,
) -> impl Iterator<Item = (&'a mut [f32], &'a [f32])> {
    let flat = |g: &'a ndarray::Array1<f32>| g.as_slice().expect("gradients in standard layout");
    let (layers, norms) = model.parts_mut();
    layers
        .iter_mut()
        .zip(norms.iter_mut())
        .zip(grads.dw.iter().zip(&grads.db))
        .zip(grads.dgamma.iter().zip(&grads.dbeta))
        .flat_map(move |(((layer, norm), (dw, db)), (dgamma, dbeta))| {
            let w = layer.w.as_slice_mut().expect("weights in standard layout");
            let b = layer.b.as_slice_mut().expect("biases in standard layout");
            let dense = [(w, dw.as_slice().expect("gradients in standard layout")), (b, flat(db))];
            let norm = norm.as_mut().map(|n| {
                [
                    (n.gamma.as_slice_mut().expect("standard layout"), flat(dgamma)),
                    (n.beta.as_slice_mut().expect("standard layout"), flat(dbeta)),
                ]
            });
            dense.into_iter().chain(norm.into_iter().flatten())
        })
}

/// An optimiser's buffer for each parameter tensor (a velocity, a moment),
/// flat, in the order of [`tensors`]; each starts a cache line, like the
/// weights it moves beside.
pub(crate) type Slot = Vec<Array1<f32>>;

/// Zeroed buffers shaped like every parameter tensor of `model`.
pub(crate) fn zeros_like(model: &Mlp) -> Slot {
    model
        .layers()
        .iter()
        .zip(model.norms())
        .flat_map(|(l, norm)| {
            let norm = norm.as_ref().map(|n| [aligned_zeros(n.len()), aligned_zeros(n.len())]);
            [aligned_zeros(l.w.len()), aligned_zeros(l.b.len())]
                .into_iter()
                .chain(norm.into_iter().flatten())
        })
        .collect()
}

/// A buffer of a slot, as the slice the update loops take.
pub(crate) fn flat(buffer: &mut Array1<f32>) -> &mut [f32] {
    buffer.as_slice_mut().expect("slot buffers are made contiguous")
}

/// A slot as [`OptimizerState::slots`] stores it.
pub(crate) fn slot_state(slot: &Slot) -> Vec<Vec<f32>> {
    slot.iter().map(|b| b.to_vec()).collect()
}

/// Checks that `state` has one slot shaped like each of `like`, and returns
/// them.
pub(crate) fn take_slots(state: OptimizerState, like: &[&Slot]) -> Result<(u64, Vec<Slot>)> {
    let shape =
        |s: &[Vec<Vec<f32>>]| -> Vec<Vec<usize>> { s.iter().map(|t| t.iter().map(Vec::len).collect()).collect() };
    let want: Vec<Vec<usize>> = like.iter().map(|t| t.iter().map(Array1::len).collect()).collect();
    if shape(&state.slots) != want {
        return Err(NnError::InvalidConfig {
            field: "optimizer state",
            reason: format!(
                "slots of sizes {:?} do not fit this optimiser and model, which need {:?}",
                shape(&state.slots),
                want
            ),
        });
    }
    if state.slots.iter().flatten().flatten().any(|x| !x.is_finite()) {
        return Err(NnError::InvalidConfig {
            field: "optimizer state",
            reason: "contains NaN or infinity".into(),
        });
    }
    let slots = state
        .slots
        .iter()
        .map(|slot| slot.iter().map(|b| aligned_copy(ArrayView1::from(b))).collect())
        .collect();
    Ok((state.step, slots))
}
