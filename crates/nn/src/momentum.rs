//! SGD with momentum, classic or Nesterov.

use crate::optim::{Slot, flat, slot_state, take_slots, tensors, zeros_like};
use crate::{Gradients, Mlp, Optimizer, OptimizerConfig, OptimizerState, Result};
use backprop_tensor::{ThreadPool, zip_chunks_with};

/// SGD with momentum (PyTorch's `SGD(momentum=mu, dampening=0)`): for every
/// parameter `theta` with gradient `g` and velocity `b`,
///
/// ```text
/// g     <- g + lambda theta                  (weight decay lambda)
/// b     <- g                  at step 1,
///          mu b + g           after
/// theta <- theta - eta b                     (classic)
/// theta <- theta - eta (g + mu b)            (Nesterov)
/// ```
///
/// ```
/// use backprop_nn::{Gradients, Mlp, Momentum, Optimizer};
/// use backprop_tensor::{Rng, ThreadPool};
/// let mut model = Mlp::new(&[1, 1], &mut Rng::seed_from_u64(0)).unwrap();
/// let mut grads = Gradients::new(&model);
/// grads.db[0].fill(1.0);
/// let mut opt = Momentum::new(&model, 0.5, 0.9, false, 0.0);
/// let pool = ThreadPool::new(1);
/// opt.step(&pool, &mut model, &grads); // b = 1,   b <- 0 - 0.5
/// opt.step(&pool, &mut model, &grads); // b = 1.9, b <- -0.5 - 0.95
/// assert_eq!(model.layers()[0].b[0], -1.45);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Momentum {
    learning_rate: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    step: u64,
    /// `b` for every parameter tensor.
    velocity: Slot,
}

impl Momentum {
    /// Momentum `momentum` (Nesterov's form when `nesterov`), its velocity
    /// allocated for `model`.
    pub fn new(model: &Mlp, learning_rate: f32, momentum: f32, nesterov: bool, weight_decay: f32) -> Self {
        Self {
            learning_rate,
            momentum,
            nesterov,
            weight_decay,
            step: 0,
            velocity: zeros_like(model),
        }
    }
}

impl Optimizer for Momentum {
    fn step(&mut self, pool: &ThreadPool, model: &mut Mlp, grads: &Gradients) {
        self.step += 1;
        let (eta, mu, lambda, nesterov, first) = (
            self.learning_rate,
            self.momentum,
            self.weight_decay,
            self.nesterov,
            self.step == 1,
        );
        for ((theta, grad), velocity) in tensors(model, grads).zip(&mut self.velocity) {
            zip_chunks_with(pool, theta, grad, [flat(velocity)], &|theta, grad, [velocity]| {
                for ((t, &g), b) in theta.iter_mut().zip(grad).zip(velocity.iter_mut()) {
                    let g = g + lambda * *t;
                    *b = if first { g } else { mu * *b + g };
                    let update = if nesterov { g + mu * *b } else { *b };
                    *t -= eta * update;
                }
            });
        }
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f32) {
        self.learning_rate = learning_rate;
    }

    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Momentum {
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
        }
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            step: self.step,
            slots: vec![slot_state(&self.velocity)],
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        let (step, mut slots) = take_slots(state, &[&self.velocity])?;
        self.step = step;
        self.velocity = slots.remove(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_tensor::Rng;

    /// Three steps on one bias with gradients 1, 2, -1, momentum 0.5, eta
    /// 0.1, worked by hand.
    #[test]
    fn hand_computed_steps() {
        for (nesterov, want) in [(false, [-0.1f32, -0.35, -0.375]), (true, [-0.15, -0.475, -0.3875])] {
            let mut model = Mlp::new(&[1, 1], &mut Rng::seed_from_u64(0)).unwrap();
            let mut opt = Momentum::new(&model, 0.1, 0.5, nesterov, 0.0);
            let mut grads = Gradients::new(&model);
            // b: 1, 2.5, 0.25. Classic: theta -= 0.1 b. Nesterov: theta -= 0.1 (g + 0.5 b).
            for (g, want) in [1.0f32, 2.0, -1.0].into_iter().zip(want) {
                grads.db[0].fill(g);
                opt.step(&ThreadPool::new(1), &mut model, &grads);
                assert!(
                    (model.layers()[0].b[0] - want).abs() < 1e-6,
                    "nesterov {nesterov}: {want}"
                );
            }
        }
    }
}
