//! SGD with momentum, classic or Nesterov.

use crate::optim::{Slot, flat, slot_state, take_slots, tensors, zeros_like};
use crate::{Gradients, Mlp, Optimizer, OptimizerConfig, OptimizerState, Result};
use backprop_tensor::{ThreadPool, wide_lanes, zip_chunks_with};

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
        let rule = Rule {
            eta: self.learning_rate,
            mu: self.momentum,
            lambda: self.weight_decay,
            first: self.step == 1,
            nesterov: self.nesterov,
        };
        for ((theta, grad), velocity) in tensors(model, grads).zip(&mut self.velocity) {
            zip_chunks_with(pool, theta, grad, [flat(velocity)], &|theta, grad, [b]| {
                update(theta, grad, b, &rule)
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

/// One step's constants: `eta`, `mu`, `lambda`, whether it is the first
/// step and whether the update is Nesterov's.
#[derive(Clone, Copy, Debug)]
struct Rule {
    eta: f32,
    mu: f32,
    lambda: f32,
    first: bool,
    nesterov: bool,
}

/// The update rule on one chunk: `theta`, its gradient and its velocity
/// `b`. Each form (first step or later, classic or Nesterov) is a loop of
/// its own without a branch, run in SIMD lanes through [`wide_lanes`] (the
/// scalar loop's bits; tested).
fn update(theta: &mut [f32], grad: &[f32], b: &mut [f32], rule: &Rule) {
    wide_lanes(
        #[inline(always)]
        || match (rule.first, rule.nesterov) {
            (true, true) => update_rule::<true, true>(theta, grad, b, rule),
            (true, false) => update_rule::<true, false>(theta, grad, b, rule),
            (false, true) => update_rule::<false, true>(theta, grad, b, rule),
            (false, false) => update_rule::<false, false>(theta, grad, b, rule),
        },
    )
}

/// One form of the update rule.
#[inline(always)]
fn update_rule<const FIRST: bool, const NESTEROV: bool>(theta: &mut [f32], grad: &[f32], b: &mut [f32], rule: &Rule) {
    let Rule { eta, mu, lambda, .. } = *rule;
    // Equal lengths, stated once, let the loop run without bounds checks.
    let n = theta.len();
    let (grad, b) = (&grad[..n], &mut b[..n]);
    for i in 0..n {
        let g = grad[i] + lambda * theta[i];
        b[i] = if FIRST { g } else { mu * b[i] + g };
        let step = if NESTEROV { g + mu * b[i] } else { b[i] };
        theta[i] -= eta * step;
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

    /// The first version's loop, one element at a time, kept as the
    /// reference.
    fn reference(theta: &mut [f32], grad: &[f32], b: &mut [f32], k: (f32, f32, f32), first: bool, nesterov: bool) {
        let (eta, mu, lambda) = k;
        for ((t, &g), b) in theta.iter_mut().zip(grad).zip(b.iter_mut()) {
            let g = g + lambda * *t;
            *b = if first { g } else { mu * *b + g };
            let update = if nesterov { g + mu * *b } else { *b };
            *t -= eta * update;
        }
    }

    /// The update, in each of its four forms, gives the
    /// reference's bits, with and without weight decay, on values of every
    /// size (zeros of both signs, subnormals, huge values, infinities) and
    /// a length that is not a multiple of 8.
    #[test]
    fn update_in_wide_lanes_matches_the_reference_bit_for_bit() {
        let mut rng = Rng::seed_from_u64(11);
        let n = 1003;
        let specials = [0.0, -0.0, f32::from_bits(1), -1e-40, 1e30, -f32::MAX, f32::INFINITY];
        let mut draw = |scale: f64| {
            let mut x: Vec<f32> = (0..n).map(|_| (rng.normal() * scale) as f32).collect();
            x[..specials.len()].copy_from_slice(&specials);
            x
        };
        let (theta, grad, b) = (draw(1.0), draw(10.0), draw(0.1));
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for (first, nesterov) in [(true, true), (true, false), (false, true), (false, false)] {
            for lambda in [0.0, 1e-4] {
                let k = (0.05, 0.9, lambda);
                let (mut t1, mut b1) = (theta.clone(), b.clone());
                reference(&mut t1, &grad, &mut b1, k, first, nesterov);
                let (mut t2, mut b2) = (theta.clone(), b.clone());
                let (eta, mu, lambda) = k;
                let rule = Rule {
                    eta,
                    mu,
                    lambda,
                    first,
                    nesterov,
                };
                update(&mut t2, &grad, &mut b2, &rule);
                let what = format!("first {first}, nesterov {nesterov}, lambda {lambda}");
                assert_eq!((bits(&t1), bits(&b1)), (bits(&t2), bits(&b2)), "{what}");
            }
        }
    }
}
