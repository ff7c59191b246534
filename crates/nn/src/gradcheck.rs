//! Finite-difference gradient checks: the gradients of backpropagation
//! (BP1–BP4) against central differences of the loss, computed in `f64` by
//! plain loops that share no code with the network's forward and backward
//! passes.
//!
//! For every weight and bias `theta` (and batch normalisation's `gamma`
//! and `beta`), the numerical gradient is
//! `(L(theta + h) - L(theta - h)) / 2h` with `h = 1e-5`, the loss `L`
//! evaluated in `f64` from its definition (E1, the batch normalisation with
//! the batch's statistics in training mode or the running averages in
//! evaluation mode, each layer's activation, then `-log softmax(z)[y]` or
//! the mean squared error). The relative error of an
//! analytic gradient `g` against the numerical `n` is
//! `|g - n| / (|n| + 0.01 s + 1e-8)`, where `s` is the largest `|g|` of the
//! same layer, so that gradients near zero are not judged by round-off (a
//! batch-normalised layer's bias has a true gradient of exactly zero).
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

use crate::batch_norm::reference_f64;
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
    /// Batch normalisation on every hidden layer (with random `gamma`,
    /// `beta` and running averages).
    pub batch_norm: bool,
    /// Check the training-mode pass (batch statistics) rather than the
    /// evaluation-mode one (running averages); matters only with batch
    /// normalisation.
    pub training: bool,
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
            batch_norm: false,
            training: true,
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
    /// Over `dL/dgamma` and `dL/dbeta` of the layer's batch normalisation
    /// (0 without one).
    pub norm: f64,
}

impl LayerError {
    /// The largest of the three.
    pub fn max(&self) -> f64 {
        self.weight.max(self.bias).max(self.norm)
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
    if check.batch_norm {
        model.add_batch_norm(0.1, 1e-5);
        for norm in model.norms_mut().iter_mut().flatten() {
            norm.gamma.mapv_inplace(|_| (1.0 + rng.normal() * 0.2) as f32);
            norm.beta.mapv_inplace(|_| (rng.normal() * 0.1) as f32);
            norm.running_mean.mapv_inplace(|_| (rng.normal() * 0.3) as f32);
            norm.running_var.mapv_inplace(|_| (0.5 + rng.uniform_f64()) as f32);
        }
    }
    let x = Array2::from_shape_simple_fn((check.batch, model.n_inputs()), || rng.normal() as f32);
    let labels: Vec<usize> = (0..check.batch).map(|_| rng.below(n_out as u64) as usize).collect();
    let values = Array2::from_shape_simple_fn((check.batch, n_out), || rng.normal() as f32);
    let targets = match check.loss {
        Loss::CrossEntropy => Targets::Classes(&labels),
        Loss::MeanSquaredError => Targets::Values(values.view()),
    };
    Ok(check_gradients(&model, x.view(), check.loss, targets, check.training))
}

/// Compares the gradients [`Mlp::loss_backward`] gives for `model` on `x`
/// and `targets` with central differences of `loss` in `f64`, and returns
/// each layer's largest relative errors. `training` picks batch
/// normalisation's mode ([`Workspace::set_training`]).
///
/// Each parameter costs two evaluations of the loss over the whole batch:
/// meant for small networks.
///
/// # Panics
/// If `x` or `targets` do not fit the model and the loss (as
/// [`Mlp::loss_backward`]).
pub fn check_gradients(
    model: &Mlp,
    x: ArrayView2<'_, f32>,
    loss: Loss,
    targets: Targets<'_>,
    training: bool,
) -> Vec<LayerError> {
    let mut ws = Workspace::new(&model.sizes(), x.nrows());
    ws.set_training(training);
    let mut grads = Gradients::new(model);
    model.loss_backward(Input::Dense(x), loss, targets, &mut ws, &mut grads);
    compare(model, x, targets, &grads, training)
}

/// One layer's parameters in `f64`: `W`, `b`, and the batch
/// normalisation's `gamma` and `beta`.
struct Layer64 {
    w: Array2<f64>,
    b: Array1<f64>,
    gamma: Array1<f64>,
    beta: Array1<f64>,
}

/// A batch normalisation's eps, and in evaluation mode the running mean
/// and variance it uses.
type Norm64 = (f64, Option<(Array1<f64>, Array1<f64>)>);

/// What the reference forward pass needs besides the parameters.
struct Fixed<'a> {
    acts: Vec<Activation>,
    /// Per layer: `None` without batch normalisation; else its eps, and
    /// the running mean and variance in evaluation mode.
    norms: Vec<Option<Norm64>>,
    x: Array2<f64>,
    truth: Truth<'a>,
}

/// Each layer's largest relative errors of `grads` against central
/// differences of the loss of `model` on `x` and `targets`, batch
/// normalisation in training mode when `training`.
pub(crate) fn compare(
    model: &Mlp,
    x: ArrayView2<'_, f32>,
    targets: Targets<'_>,
    grads: &Gradients,
    training: bool,
) -> Vec<LayerError> {
    let mut params: Vec<Layer64> = model
        .layers()
        .iter()
        .zip(model.norms())
        .map(|(l, norm)| Layer64 {
            w: l.w.mapv(f64::from),
            b: l.b.mapv(f64::from),
            gamma: norm.as_ref().map_or(Array1::zeros(0), |n| n.gamma.mapv(f64::from)),
            beta: norm.as_ref().map_or(Array1::zeros(0), |n| n.beta.mapv(f64::from)),
        })
        .collect();
    let fixed = Fixed {
        acts: model.activations(),
        norms: model
            .norms()
            .iter()
            .map(|n| {
                n.as_ref().map(|n| {
                    let stats = (!training).then(|| (n.running_mean.mapv(f64::from), n.running_var.mapv(f64::from)));
                    (f64::from(n.eps), stats)
                })
            })
            .collect(),
        x: x.mapv(f64::from),
        truth: match targets {
            Targets::Classes(labels) => Truth::Classes(labels),
            Targets::Values(v) => Truth::Values(v.mapv(f64::from)),
        },
    };
    let mut errors = Vec::with_capacity(params.len());
    for l in 0..params.len() {
        let scale = [&grads.db[l], &grads.dgamma[l], &grads.dbeta[l]]
            .into_iter()
            .flatten()
            .chain(&grads.dw[l])
            .fold(0.0f64, |m, &g| m.max(f64::from(g).abs()));
        // The largest relative error over one tensor, picked out of the
        // layer by `pick`, against its analytic gradient.
        let mut worst = |pick: fn(&mut Layer64) -> &mut [f64], analytic: &[f32]| {
            let mut worst = 0.0f64;
            for (k, &g) in analytic.iter().enumerate() {
                let orig = pick(&mut params[l])[k];
                pick(&mut params[l])[k] = orig + H;
                let plus = reference_loss(&params, &fixed);
                pick(&mut params[l])[k] = orig - H;
                let minus = reference_loss(&params, &fixed);
                pick(&mut params[l])[k] = orig;
                let numeric = (plus - minus) / (2.0 * H);
                worst = worst.max((f64::from(g) - numeric).abs() / (numeric.abs() + 1e-2 * scale + 1e-8));
            }
            worst
        };
        let flat = |a: &Array1<f32>| a.as_slice().expect("standard layout").to_vec();
        let weight = worst(
            |p| p.w.as_slice_mut().expect("standard layout"),
            grads.dw[l].as_slice().expect("standard layout"),
        );
        let bias = worst(|p| p.b.as_slice_mut().expect("standard layout"), &flat(&grads.db[l]));
        let norm = worst(
            |p| p.gamma.as_slice_mut().expect("standard layout"),
            &flat(&grads.dgamma[l]),
        )
        .max(worst(
            |p| p.beta.as_slice_mut().expect("standard layout"),
            &flat(&grads.dbeta[l]),
        ));
        errors.push(LayerError {
            layer: l,
            weight,
            bias,
            norm,
        });
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
fn reference_loss(params: &[Layer64], fixed: &Fixed<'_>) -> f64 {
    let mut a = fixed.x.clone();
    for ((p, &f), norm) in params.iter().zip(&fixed.acts).zip(&fixed.norms) {
        let mut z = a.dot(&p.w);
        z += &p.b;
        if let Some((eps, stats)) = norm {
            let stats = stats.as_ref().map(|(m, v)| (m.view(), v.view()));
            z = reference_f64(z.view(), p.gamma.view(), p.beta.view(), stats, *eps);
        }
        z.mapv_inplace(|v| activation_f64(f, v));
        a = z;
    }
    match &fixed.truth {
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
                    ..GradCheck::default()
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
        let good = check_gradients(&model, x.view(), Loss::CrossEntropy, targets, true);
        assert!(good.iter().all(|e| e.max() < 2e-3), "{good:?}");
        let mut ws = Workspace::new(&model.sizes(), 4);
        let mut grads = Gradients::new(&model);
        model.loss_backward(Input::Dense(x.view()), Loss::CrossEntropy, targets, &mut ws, &mut grads);
        grads.db[1][2] *= 1.5;
        let bad = compare(&model, x.view(), targets, &grads, true);
        assert!(bad[0].max() < 2e-3 && bad[1].weight < 2e-3, "{bad:?}");
        assert!(bad[1].bias > 0.1, "{bad:?}");
    }

    /// Batch normalisation's backward pass, through whole networks of one
    /// and two normalised layers, in training and evaluation mode, for
    /// every activation and loss; and a planted error in `dgamma` is caught.
    #[test]
    fn batch_norm_passes_in_both_modes() {
        for sizes in [vec![4, 5, 3], vec![3, 6, 4, 2]] {
            for training in [true, false] {
                for activation in Activation::ALL {
                    for loss in Loss::ALL {
                        let check = GradCheck {
                            sizes: sizes.clone(),
                            activation,
                            loss,
                            batch: 6,
                            seed: 11,
                            batch_norm: true,
                            training,
                        };
                        let errors = gradcheck(&check).unwrap();
                        for e in &errors {
                            assert!(
                                e.max() < 2e-3,
                                "{sizes:?} {activation} {loss} training {training}: {e:?}"
                            );
                        }
                        assert!(errors[0].norm > 0.0 || errors[0].max() == 0.0);
                    }
                }
            }
        }
        let mut rng = Rng::seed_from_u64(2);
        let mut model = Mlp::new(&[4, 5, 3], &mut rng).unwrap();
        model.add_batch_norm(0.1, 1e-5);
        let x = Array2::from_shape_simple_fn((6, 4), || rng.normal() as f32);
        let labels = [0, 1, 2, 1, 0, 2];
        let targets = Targets::Classes(&labels);
        let mut ws = Workspace::new(&model.sizes(), 6);
        ws.set_training(true);
        let mut grads = Gradients::new(&model);
        model.loss_backward(Input::Dense(x.view()), Loss::CrossEntropy, targets, &mut ws, &mut grads);
        assert!(compare(&model, x.view(), targets, &grads, true)[0].max() < 2e-3);
        grads.dgamma[0][1] += 0.5;
        let bad = compare(&model, x.view(), targets, &grads, true);
        assert!(bad[0].norm > 0.1 && bad[0].weight < 2e-3, "{bad:?}");
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
