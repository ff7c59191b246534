//! Adam, and AdamW with decoupled weight decay.

use crate::optim::{take_slots, tensors, zeros_like};
use crate::{Gradients, Mlp, Optimizer, OptimizerConfig, OptimizerState, Result};
use backprop_tensor::{ThreadPool, zip_chunks_with};

/// Adam (Kingma and Ba 2015; PyTorch's `Adam`), or AdamW (Loshchilov and
/// Hutter 2019; PyTorch's `AdamW`) when `decoupled`: at step `t` (from 1),
/// for every parameter `theta` with gradient `g` and moments `m`, `v`,
///
/// ```text
/// theta <- theta (1 - eta lambda)           (AdamW only)
/// g     <- g + lambda theta                 (Adam only)
/// m     <- beta1 m + (1 - beta1) g
/// v     <- beta2 v + (1 - beta2) g^2
/// theta <- theta - eta m_hat / (sqrt(v_hat) + eps),
///          m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)
/// ```
///
/// ```
/// use backprop_nn::{Adam, Gradients, Mlp, Optimizer};
/// use backprop_tensor::{Rng, ThreadPool};
/// let mut model = Mlp::new(&[1, 1], &mut Rng::seed_from_u64(0)).unwrap();
/// let mut grads = Gradients::new(&model);
/// grads.db[0].fill(3.0);
/// // The first step moves every parameter by about eta, whatever |g|.
/// Adam::new(&model, 0.01, 0.9, 0.999, 1e-8, 0.0, false).step(&ThreadPool::new(1), &mut model, &grads);
/// assert!((model.layers()[0].b[0] + 0.01).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    learning_rate: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    step: u64,
    /// `m` for every parameter tensor.
    m: Vec<Vec<f32>>,
    /// `v` for every parameter tensor.
    v: Vec<Vec<f32>>,
}

impl Adam {
    /// Adam (AdamW when `decoupled`), its moments allocated for `model`.
    pub fn new(
        model: &Mlp,
        learning_rate: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        decoupled: bool,
    ) -> Self {
        Self {
            learning_rate,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            step: 0,
            m: zeros_like(model),
            v: zeros_like(model),
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, pool: &ThreadPool, model: &mut Mlp, grads: &Gradients) {
        self.step += 1;
        let (eta, b1, b2, eps) = (self.learning_rate, self.beta1, self.beta2, self.eps);
        // Bias corrections, in f64 then rounded once.
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let correction1 = (1.0 - f64::from(b1).powi(t)) as f32;
        let correction2 = (1.0 - f64::from(b2).powi(t)) as f32;
        let (l2, shrink) = match self.decoupled {
            false => (self.weight_decay, 1.0),
            true => (0.0, 1.0 - eta * self.weight_decay),
        };
        for (((theta, grad), m), v) in tensors(model, grads).zip(&mut self.m).zip(&mut self.v) {
            zip_chunks_with(pool, theta, grad, [m, v], &|theta, grad, [m, v]| {
                for (((t, &g), m), v) in theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
                    *t *= shrink;
                    let g = g + l2 * *t;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    let m_hat = *m / correction1;
                    let v_hat = *v / correction2;
                    *t -= eta * m_hat / (v_hat.sqrt() + eps);
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
        OptimizerConfig::Adam {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
        }
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            step: self.step,
            slots: vec![self.m.clone(), self.v.clone()],
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        let (step, mut slots) = take_slots(state, &[self.m.clone(), self.v.clone()])?;
        self.step = step;
        self.v = slots.pop().unwrap_or_default();
        self.m = slots.pop().unwrap_or_default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_tensor::Rng;

    /// Two steps on one bias, gradients 2 then -1, betas (0.5, 0.75), eps
    /// 0, eta 0.1, worked by hand:
    /// step 1: m = 1, v = 1, m_hat = 2, v_hat = 4, theta = -0.1 * 2/2 = -0.1;
    /// step 2: m = 0, v = 1, m_hat = 0, theta stays -0.1.
    /// With AdamW (lambda 1) each step first scales theta by 0.9.
    #[test]
    fn hand_computed_steps() {
        for (decoupled, decay, want) in [(false, 0.0, [-0.1f32, -0.1]), (true, 1.0, [-0.1, -0.09])] {
            let mut model = Mlp::new(&[1, 1], &mut Rng::seed_from_u64(0)).unwrap();
            let mut opt = Adam::new(&model, 0.1, 0.5, 0.75, 0.0, decay, decoupled);
            let mut grads = Gradients::new(&model);
            for (g, want) in [2.0f32, -1.0].into_iter().zip(want) {
                grads.db[0].fill(g);
                opt.step(&ThreadPool::new(1), &mut model, &grads);
                assert!(
                    (model.layers()[0].b[0] - want).abs() < 1e-6,
                    "{decoupled}: {}",
                    model.layers()[0].b[0]
                );
            }
        }
    }

    #[test]
    fn state_round_trips_and_wrong_shapes_are_refused() {
        let model = Mlp::new(&[3, 2], &mut Rng::seed_from_u64(0)).unwrap();
        let mut opt = Adam::new(&model, 0.1, 0.9, 0.999, 1e-8, 0.0, false);
        let mut state = opt.state();
        state.step = 7;
        state.slots[1][0][0] = 0.5;
        opt.load_state(state.clone()).unwrap();
        assert_eq!(opt.state(), state);
        state.slots[0].pop();
        assert!(opt.load_state(state).is_err());
    }
}
