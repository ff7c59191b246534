//! Plain stochastic gradient descent (E6): no momentum, no weight decay.

use crate::{Gradients, Mlp};
use backprop_tensor::{ThreadPool, axpy_with};
use ndarray::{ArrayView, ArrayViewMut, Dimension};

/// SGD with a fixed learning rate `eta`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// `eta`, the step size.
    pub learning_rate: f32,
}

impl Sgd {
    /// SGD with learning rate `learning_rate`.
    pub fn new(learning_rate: f32) -> Self {
        Self { learning_rate }
    }

    /// E6, `theta <- theta - eta * dL/dtheta`, in place for every parameter.
    pub fn step(&self, model: &mut Mlp, grads: &Gradients) {
        self.step_on(None, model, grads);
    }

    /// [`Sgd::step`] on the threads of `pool`, with the same result.
    pub fn step_in(&self, pool: &ThreadPool, model: &mut Mlp, grads: &Gradients) {
        self.step_on(Some(pool), model, grads);
    }

    fn step_on(&self, pool: Option<&ThreadPool>, model: &mut Mlp, grads: &Gradients) {
        for ((layer, dw), db) in model.layers_mut().iter_mut().zip(&grads.dw).zip(&grads.db) {
            update(pool, self.learning_rate, layer.w.view_mut(), dw.view());
            update(pool, self.learning_rate, layer.b.view_mut(), db.view());
        }
    }
}

/// The update rule for one tensor: `theta <- theta - eta * grad`.
fn update<D: Dimension>(
    pool: Option<&ThreadPool>,
    eta: f32,
    mut theta: ArrayViewMut<'_, f32, D>,
    grad: ArrayView<'_, f32, D>,
) {
    match (pool, theta.as_slice_mut(), grad.as_slice()) {
        (Some(pool), Some(theta), Some(grad)) => axpy_with(pool, -eta, grad, theta),
        // The same arithmetic as `axpy_with`, element by element.
        _ => theta.zip_mut_with(&grad, |t, &g| *t += -eta * g),
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
        Sgd::new(0.25).step(&mut model, &grads);
        let layer = &model.layers()[0];
        for (after, before) in layer.w.iter().zip(&before.layers()[0].w) {
            assert_eq!(*after, before - 0.5);
        }
        assert!(layer.b.iter().all(|&b| b == 0.25));
    }
}
