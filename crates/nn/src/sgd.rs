//! Plain stochastic gradient descent (E6).

use crate::optim::{take_slots, tensors};
use crate::{Gradients, Mlp, Optimizer, OptimizerConfig, OptimizerState, Result};
use backprop_tensor::{ThreadPool, wide_lanes, zip_chunks_with};

/// SGD: for every parameter `theta` with gradient `g`,
///
/// ```text
/// g     <- g + lambda theta          (weight decay lambda, when non-zero)
/// theta <- theta - eta g             (E6)
/// ```
///
/// ```
/// use backprop_nn::{Gradients, Mlp, Optimizer, Sgd};
/// use backprop_tensor::{Rng, ThreadPool};
/// let mut model = Mlp::new(&[2, 1], &mut Rng::seed_from_u64(0)).unwrap();
/// let mut grads = Gradients::new(&model);
/// grads.db[0].fill(2.0);
/// Sgd::new(0.25).step(&ThreadPool::new(1), &mut model, &grads);
/// assert_eq!(model.layers()[0].b[0], -0.5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// `eta`, the step size.
    pub learning_rate: f32,
    /// `lambda`, the L2 penalty.
    pub weight_decay: f32,
}

impl Sgd {
    /// SGD with learning rate `learning_rate` and no weight decay.
    pub fn new(learning_rate: f32) -> Self {
        Self::with_weight_decay(learning_rate, 0.0)
    }

    /// SGD with an L2 penalty `weight_decay` added to the gradient.
    pub fn with_weight_decay(learning_rate: f32, weight_decay: f32) -> Self {
        Self {
            learning_rate,
            weight_decay,
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, pool: &ThreadPool, model: &mut Mlp, grads: &Gradients) {
        let (neg_eta, lambda) = (-self.learning_rate, self.weight_decay);
        // Each loop runs in AVX2 lanes where the CPU has them, with the
        // scalar loop's bits (`wide_lanes`).
        for (theta, grad) in tensors(model, grads) {
            if lambda == 0.0 {
                zip_chunks_with(pool, theta, grad, [], &|theta, grad, []| {
                    wide_lanes(
                        #[inline(always)]
                        || {
                            for (t, &g) in theta.iter_mut().zip(grad) {
                                *t += neg_eta * g;
                            }
                        },
                    )
                });
            } else {
                zip_chunks_with(pool, theta, grad, [], &|theta, grad, []| {
                    wide_lanes(
                        #[inline(always)]
                        || {
                            for (t, &g) in theta.iter_mut().zip(grad) {
                                let g = g + lambda * *t;
                                *t += neg_eta * g;
                            }
                        },
                    )
                });
            }
        }
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f32) {
        self.learning_rate = learning_rate;
    }

    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Sgd {
            weight_decay: self.weight_decay,
        }
    }

    fn state(&self) -> OptimizerState {
        OptimizerState::default()
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        take_slots(state, &[]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_tensor::Rng;

    #[test]
    fn step_moves_against_the_gradient() {
        let mut model = Mlp::new(&[2, 3], &mut Rng::seed_from_u64(1)).unwrap();
        let before = model.clone();
        let mut grads = Gradients::new(&model);
        grads.dw[0].fill(2.0);
        grads.db[0].fill(-1.0);
        Sgd::new(0.25).step(&ThreadPool::new(1), &mut model, &grads);
        let layer = &model.layers()[0];
        for (after, before) in layer.w.iter().zip(&before.layers()[0].w) {
            assert_eq!(*after, before - 0.5);
        }
        assert!(layer.b.iter().all(|&b| b == 0.25));
    }

    /// With weight decay 0.1 and a zero gradient, `theta <- theta (1 - eta lambda)`.
    #[test]
    fn weight_decay_shrinks() {
        let mut model = Mlp::new(&[1, 1], &mut Rng::seed_from_u64(1)).unwrap();
        model.layers_mut()[0].w[[0, 0]] = 2.0;
        let grads = Gradients::new(&model);
        Sgd::with_weight_decay(0.5, 0.1).step(&ThreadPool::new(1), &mut model, &grads);
        assert_eq!(model.layers()[0].w[[0, 0]], 2.0 - 0.5 * 0.2);
    }
}
