//! Finite-difference gradient checks: the gradients of backpropagation
//! (BP1–BP4) against central differences of the loss, computed in `f64` by
//! plain loops that share no code with the network's forward and backward
//! passes.
//!
//! For every weight and bias `theta`, the numerical gradient is
//! `(L(theta + h) - L(theta - h)) / 2h` with `h = 1e-5`, the loss `L`
//! evaluated in `f64` from its definition (E1, each layer's activation, then
//! `-log softmax(z)[y]` or the mean squared error). The relative error of an
//! analytic gradient `g` against the numerical `n` is
//! `|g - n| / (|n| + 0.01 s + 1e-8)`, where `s` is the largest `|g|` of the
//! same tensor, so that gradients near zero are not judged by round-off.
//! A correct backward gives errors around 1e-6 (f32 arithmetic); a mistake
//! gives errors of order 1.
//!
//! ```
//! use backprop_nn::{Activation, GradCheck, Loss, gradcheck};
//! let check = GradCheck { sizes: vec![4, 5, 3], activation: Activation::Tanh, ..GradCheck::default() };
//! let errors = gradcheck(&check).unwrap();
//! assert_eq!(errors.len(), 2);
//! assert!(errors.iter().all(|e| e.max() < 1e-3));
//! ```

use crate::{Activation, Gradients, Input, Loss, Mlp, NnError, Result, Targets, Workspace};
use backprop_tensor::Rng;
use ndarray::{Array1, Array2, ArrayView2};

/// The step of the central differences.
const H: f64 = 1e-5;

/// A gradient check on a random network and batch, as `backprop
/// gradcheck` runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// Layer sizes from input to output (at least two).
    pub sizes: Vec<usize>,
    /// The hidden layers' activation (the output layer is linear).
    pub activation: Activation,
    /// The loss.
    pub loss: Loss,
    /// Examples in the random batch (at least 1).
    pub batch: usize,
    /// Seed of the weights (the activation's default initialisation, with
    /// small random biases), inputs and targets.
    pub seed: u64,
}

impl Default for GradCheck {
    /// A 4-5-3 ReLU network, cross-entropy, a batch of 8, seed 0.
    fn default() -> GradCheck {
        GradCheck {
            sizes: vec![4, 5, 3],
            activation: Activation::Relu,
            loss: Loss::CrossEntropy,
            batch: 8,
            seed: 0,
        }
    }
}

/// The largest relative errors of one layer's gradients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerError {
    /// The layer, counted from 0 (the first weight matrix).
    pub layer: usize,
    /// Over `dL/dW` (BP4).
    pub weight: f64,
    /// Over `dL/db` (BP3).
    pub bias: f64,
}

impl LayerError {
    /// The larger of the two.
    pub fn max(&self) -> f64 {
        self.weight.max(self.bias)
    }
}

/// Builds the random network and batch of `check` and compares backward's
/// gradients with central differences (see the module docs).
///
/// # Errors
/// [`NnError::InvalidConfig`] for sizes that make no network, a batch of 0,
/// or fewer than two classes for cross-entropy.
pub fn gradcheck(check: &GradCheck) -> Result<Vec<LayerError>> {
    let bad = |field: &'static str, reason: String| NnError::InvalidConfig { field, reason };
    if check.batch == 0 {
        return Err(bad("batch", "must be at least 1".to_owned()));
    }
    let mut rng = Rng::seed_from_u64(check.seed);
    let f = check.activation;
    let mut model = Mlp::with(&check.sizes, f, f.default_init(), &mut rng)?;
    let n_out = model.n_outputs();
    if check.loss == Loss::CrossEntropy && n_out < 2 {
        return Err(bad(
            "sizes",
            format!("cross-entropy needs at least 2 outputs, got {n_out}"),
        ));
    }
    for layer in model.layers_mut() {
        layer.b.mapv_inplace(|_| (rng.normal() * 0.1) as f32);
    }
    let x = Array2::from_shape_simple_fn((check.batch, model.n_inputs()), || rng.normal() as f32);
    let labels: Vec<usize> = (0..check.batch).map(|_| rng.below(n_out as u64) as usize).collect();
    let values = Array2::from_shape_simple_fn((check.batch, n_out), || rng.normal() as f32);
    let targets = match check.loss {
        Loss::CrossEntropy => Targets::Classes(&labels),
        Loss::MeanSquaredError => Targets::Values(values.view()),
    };
    Ok(check_gradients(&model, x.view(), check.loss, targets))
}

/// Compares the gradients [`Mlp::loss_backward`] gives for `model` on `x`
/// and `targets` with central differences of `loss` in `f64`, and returns
/// each layer's largest relative errors.
///
/// Each parameter costs two evaluations of the loss over the whole batch:
/// meant for small networks.
///
/// # Panics
/// If `x` or `targets` do not fit the model and the loss (as
/// [`Mlp::loss_backward`]).
pub fn check_gradients(model: &Mlp, x: ArrayView2<'_, f32>, loss: Loss, targets: Targets<'_>) -> Vec<LayerError> {
    let mut ws = Workspace::new(&model.sizes(), x.nrows());
    let mut grads = Gradients::new(model);
    model.loss_backward(Input::Dense(x), loss, targets, &mut ws, &mut grads);
    compare(model, x, targets, &grads)
}

/// Each layer's largest relative errors of `grads` against central
/// differences of the loss of `model` on `x` and `targets`.
pub(crate) fn compare(model: &Mlp, x: ArrayView2<'_, f32>, targets: Targets<'_>, grads: &Gradients) -> Vec<LayerError> {
    let acts = model.activations();
    let mut params: Vec<(Array2<f64>, Array1<f64>)> = model
        .layers()
        .iter()
        .map(|l| (l.w.mapv(f64::from), l.b.mapv(f64::from)))
        .collect();
    let x64 = x.mapv(f64::from);
    let truth = match targets {
        Targets::Classes(labels) => Truth::Classes(labels),
        Targets::Values(v) => Truth::Values(v.mapv(f64::from)),
    };
    let loss_at = |p: &[(Array2<f64>, Array1<f64>)]| reference_loss(p, &acts, &x64, &truth);
    let relative = |analytic: f32, numeric: f64, scale: f64| {
        (f64::from(analytic) - numeric).abs() / (numeric.abs() + 1e-2 * scale + 1e-8)
    };
    let mut errors = Vec::with_capacity(params.len());
    for l in 0..params.len() {
        let scale_w = grads.dw[l].iter().fold(0.0f64, |m, &g| m.max(f64::from(g).abs()));
        let mut weight = 0.0f64;
        let cols = params[l].0.ncols();
        for idx in 0..params[l].0.len() {
            let (i, j) = (idx / cols, idx % cols);
            let orig = params[l].0[[i, j]];
            params[l].0[[i, j]] = orig + H;
            let plus = loss_at(&params);
            params[l].0[[i, j]] = orig - H;
            let minus = loss_at(&params);
            params[l].0[[i, j]] = orig;
            weight = weight.max(relative(grads.dw[l][[i, j]], (plus - minus) / (2.0 * H), scale_w));
        }
        let scale_b = grads.db[l].iter().fold(0.0f64, |m, &g| m.max(f64::from(g).abs()));
        let mut bias = 0.0f64;
        for j in 0..params[l].1.len() {
            let orig = params[l].1[j];
            params[l].1[j] = orig + H;
            let plus = loss_at(&params);
            params[l].1[j] = orig - H;
            let minus = loss_at(&params);
            params[l].1[j] = orig;
            bias = bias.max(relative(grads.db[l][j], (plus - minus) / (2.0 * H), scale_b));
        }
        errors.push(LayerError { layer: l, weight, bias });
    }
    errors
}

/// The targets in `f64`.
enum Truth<'a> {
    Classes(&'a [usize]),
    Values(Array2<f64>),
}

/// Each activation by its definition, in `f64` (GELU in the tanh form the
/// network uses).
pub(crate) fn activation_f64(f: Activation, z: f64) -> f64 {
    match f {
        Activation::Relu => z.max(0.0),
        Activation::LeakyRelu { slope } => {
            if z > 0.0 {
                z
            } else {
                f64::from(slope) * z
            }
        }
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Gelu => 0.5 * z * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (z + 0.044715 * z.powi(3))).tanh()),
        Activation::Identity => z,
    }
}

/// The mean loss at `f64` parameters, by definition.
fn reference_loss(
    params: &[(Array2<f64>, Array1<f64>)],
    acts: &[Activation],
    x: &Array2<f64>,
    truth: &Truth<'_>,
) -> f64 {
    let mut a = x.clone();
    for ((w, b), &f) in params.iter().zip(acts) {
        let mut z = a.dot(w);
        z += b;
        z.mapv_inplace(|v| activation_f64(f, v));
        a = z;
    }
    match truth {
        Truth::Classes(labels) => {
            let mut total = 0.0;
            for (row, &y) in a.rows().into_iter().zip(labels.iter()) {
                let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                total -= row[y] - max - log_sum;
            }
            total / labels.len() as f64
        }
        Truth::Values(t) => (&a - t).mapv(|e| e * e).mean().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_activation_and_loss_passes() {
        for activation in Activation::ALL {
            for loss in Loss::ALL {
                let check = GradCheck {
                    sizes: vec![4, 5, 3],
                    activation,
                    loss,
                    batch: 8,
                    seed: 7,
                };
                let errors = gradcheck(&check).unwrap();
                assert_eq!(errors.len(), 2);
                for e in errors {
                    assert!(e.max() < 2e-3, "{activation}, {loss}: {e:?}");
                }
            }
        }
    }

    #[test]
    fn a_wrong_gradient_is_caught() {
        let mut rng = Rng::seed_from_u64(1);
        let model = Mlp::with(&[4, 5, 3], Activation::Tanh, crate::Init::GlorotUniform, &mut rng).unwrap();
        let x = Array2::from_shape_simple_fn((4, 4), || rng.normal() as f32);
        let labels = [0, 1, 2, 1];
        let targets = Targets::Classes(&labels);
        let good = check_gradients(&model, x.view(), Loss::CrossEntropy, targets);
        assert!(good.iter().all(|e| e.max() < 2e-3), "{good:?}");
        let mut ws = Workspace::new(&model.sizes(), 4);
        let mut grads = Gradients::new(&model);
        model.loss_backward(Input::Dense(x.view()), Loss::CrossEntropy, targets, &mut ws, &mut grads);
        grads.db[1][2] *= 1.5;
        let bad = compare(&model, x.view(), targets, &grads);
        assert!(bad[0].max() < 2e-3 && bad[1].weight < 2e-3, "{bad:?}");
        assert!(bad[1].bias > 0.1, "{bad:?}");
    }

    #[test]
    fn bad_checks_are_refused() {
        let zero = GradCheck {
            batch: 0,
            ..GradCheck::default()
        };
        assert!(gradcheck(&zero).is_err());
        let one_class = GradCheck {
            sizes: vec![3, 1],
            ..GradCheck::default()
        };
        assert!(gradcheck(&one_class).is_err());
        let no_layers = GradCheck {
            sizes: vec![3],
            ..GradCheck::default()
        };
        assert!(gradcheck(&no_layers).is_err());
    }
}
