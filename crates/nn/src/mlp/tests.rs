//! Gradient checks: backward against central differences of the loss,
//! computed in f64 by plain loops (`crate::gradcheck`), independent of the
//! code under test; with BP2's activation factor swapped for planted bugs.

use super::*;
use crate::gradcheck::activation_f64 as f64_activation;
use ndarray::Zip;

/// The targets of a case: class indices, or values (kept in `Case::values`).
enum Truth {
    Classes(Vec<usize>),
    Values,
}

struct Case {
    model: Mlp,
    x: Array2<f32>,
    truth: Truth,
    values: Array2<f32>,
}

fn case(sizes: &[usize], batch: usize, seed: u64, f: Activation, loss: Loss) -> Case {
    let mut rng = Rng::seed_from_u64(seed);
    let mut model = Mlp::with(sizes, f, f.default_init(), &mut rng).unwrap();
    for layer in model.layers_mut() {
        layer.b.mapv_inplace(|_| (rng.normal() * 0.1) as f32);
    }
    // Odd seeds give inputs that are three quarters zeros (the sparse path).
    let sparse = seed % 2 == 1;
    let x = Array2::from_shape_simple_fn((batch, sizes[0]), || {
        if sparse && rng.below(4) != 0 {
            0.0
        } else {
            rng.normal() as f32
        }
    });
    let n_out = *sizes.last().unwrap();
    let values = Array2::from_shape_simple_fn((batch, n_out), || rng.normal() as f32);
    let truth = match loss {
        Loss::CrossEntropy => Truth::Classes((0..batch).map(|_| rng.below(n_out as u64) as usize).collect()),
        _ => Truth::Values,
    };
    Case {
        model,
        x,
        truth,
        values,
    }
}

/// The largest relative error between backward's gradients (with BP2's
/// factor `bp2`) and central differences, over every weight and bias.
fn max_relative_error(case: &Case, bp2: Bp2Factor) -> f64 {
    let Case {
        model,
        x,
        truth,
        values,
    } = case;
    let mut ws = Workspace::new(&model.sizes(), x.nrows());
    let mut grads = Gradients::new(model);
    // The same choice as `Mlp::backward`: mostly-zero inputs take the
    // compressed path, so both paths are checked.
    let input = model.compress(x.view(), &mut ws);
    let (loss, targets) = match truth {
        Truth::Classes(labels) => (Loss::CrossEntropy, Targets::Classes(labels)),
        Truth::Values => (Loss::MeanSquaredError, Targets::Values(values.view())),
    };
    model.backward_from(input, loss, targets, &mut ws, &mut grads, bp2);
    // The library's own checker: central differences of the loss by its
    // definition, in f64 (`crate::gradcheck`).
    crate::gradcheck::compare(model, x.view(), targets, &grads, false)
        .iter()
        .map(|e| e.max())
        .fold(0.0, f64::max)
}

/// f32 products of a few dozen terms carry relative errors near 1e-6; the
/// differences are taken in f64 with h = 1e-5, whose truncation error is
/// about 1e-10. A tolerance of 2e-3 leaves a wide margin above both (the
/// smooth activations' f32 derivatives add a little) while catching any real
/// mistake, which shows up as errors of order 1.
const TOLERANCE: f64 = 2e-3;

/// Random sizes at depths 1 to 3 (two classes at least).
fn random_sizes(rng: &mut Rng, depth: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..=depth).map(|_| 1 + rng.below(9) as usize).collect();
    *sizes.last_mut().unwrap() = (*sizes.last().unwrap()).max(2);
    sizes
}

#[test]
fn backward_matches_finite_differences_for_every_activation_and_loss_at_depths_1_2_3() {
    let mut sizes_rng = Rng::seed_from_u64(2024);
    for f in Activation::ALL {
        for loss in Loss::ALL {
            for depth in 1..=3 {
                for trial in 0..3 {
                    let sizes = random_sizes(&mut sizes_rng, depth);
                    let batch = 1 + sizes_rng.below(7) as usize;
                    let case = case(&sizes, batch, 100 * depth as u64 + trial, f, loss);
                    let err = max_relative_error(&case, bp2_factor);
                    assert!(
                        err < TOLERANCE,
                        "{f}, {loss}, sizes {sizes:?}, batch {batch}: largest relative error {err:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn derivative_at_the_wrong_layer_fails_the_check() {
    // Equal widths, so the wrong layer's pre-activation has the right shape
    // and the bug runs silently, as it does in NumPy.
    fn wrong_layer(f: Activation, delta: ArrayViewMut2<'_, f32>, z: &[Array2<f32>], l: usize, batch: usize) {
        bp2_factor(f, delta, z, l + 1, batch);
    }
    for (sizes, seed) in [(vec![6, 5, 5], 1u64), (vec![4, 6, 6, 6], 2)] {
        let case = case(&sizes, 8, seed, Activation::Relu, Loss::CrossEntropy);
        assert!(max_relative_error(&case, bp2_factor) < TOLERANCE);
        let err = max_relative_error(&case, wrong_layer);
        assert!(
            err > 0.1,
            "sizes {sizes:?}: the buggy backward passed with error {err:e}"
        );
    }
}

/// A planted wrong derivative, multiplying by `f(Z)` where `f'(Z)` belongs
/// (a classic slip), fails the check for every activation.
#[test]
fn a_planted_wrong_derivative_fails_the_check_for_every_activation() {
    fn value_for_derivative(f: Activation, delta: ArrayViewMut2<'_, f32>, z: &[Array2<f32>], l: usize, batch: usize) {
        Zip::from(delta)
            .and(z[l].slice(s![..batch, ..]))
            .for_each(|d, &z| *d *= f.apply(z));
    }
    for f in Activation::ALL {
        let case = case(&[5, 6, 3], 8, 4, f, Loss::CrossEntropy);
        assert!(max_relative_error(&case, bp2_factor) < TOLERANCE, "{f}");
        let err = max_relative_error(&case, value_for_derivative);
        assert!(err > 0.1, "{f}: the wrong derivative passed with error {err:e}");
    }
}

#[test]
fn bad_sizes_and_layers_are_rejected() {
    let mut rng = Rng::seed_from_u64(0);
    assert!(matches!(Mlp::new(&[784], &mut rng), Err(NnError::InvalidConfig { .. })));
    assert!(matches!(
        Mlp::new(&[784, 0, 10], &mut rng),
        Err(NnError::InvalidConfig { .. })
    ));
    let mut layers = Mlp::new(&[3, 4, 2], &mut rng).unwrap().layers().to_vec();
    layers[1].w = Array2::zeros((5, 2));
    let err = Mlp::from_layers(layers.clone()).unwrap_err().to_string();
    assert!(err.contains("layer 1") && err.contains("takes 5 inputs"), "{err}");
    layers[1].w = Array2::from_elem((4, 2), f32::NAN);
    assert!(Mlp::from_layers(layers).unwrap_err().to_string().contains("NaN"));
}

/// `predict_proba` for more rows than one chunk: rows sum to 1 and agree
/// with the forward pass row by row.
#[test]
fn predictions_for_any_number_of_rows() {
    let model = Mlp::with(
        &[3, 5, 4],
        Activation::Tanh,
        Init::GlorotUniform,
        &mut Rng::seed_from_u64(1),
    )
    .unwrap();
    let x = Array2::from_shape_fn((600, 3), |(i, j)| ((i * 3 + j) as f32).sin());
    let p = model.predict_proba(x.view());
    assert_eq!(p.dim(), (600, 4));
    for row in p.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-5);
    }
    let mut ws = Workspace::new(&model.sizes(), 1);
    let last = model.forward(x.slice(s![599..600, ..]), &mut ws).to_owned();
    assert_eq!(model.predict_outputs(x.view()).slice(s![599..600, ..]), last);
    assert_eq!(model.predict(x.view()).len(), 600);
    assert_eq!(model.predict_outputs(Array2::zeros((0, 3)).view()).dim(), (0, 4));
}

/// A loss of one's own through `output_and_delta` and `backward_from_delta`
/// gives the gradients the built-in loss gives.
#[test]
fn backward_from_a_delta_of_ones_own_matches_the_built_in_loss() {
    let model = Mlp::new(&[4, 6, 3], &mut Rng::seed_from_u64(8)).unwrap();
    let x = Array2::from_shape_fn((5, 4), |(i, j)| ((i * 4 + j) as f32).sin());
    let labels = [0usize, 2, 1, 1, 0];
    let mut ws = Workspace::new(&model.sizes(), 5);
    let mut built_in = Gradients::new(&model);
    model.backward_input(Input::Dense(x.view()), &labels, &mut ws, &mut built_in);
    let mut own = Gradients::new(&model);
    model.forward_input(Input::Dense(x.view()), &mut ws);
    let (logits, delta) = model.output_and_delta(&mut ws, 5);
    let logits = logits.to_owned();
    crate::softmax_cross_entropy(logits.view(), &labels, delta);
    model.backward_from_delta(Input::Dense(x.view()), &mut ws, &mut own);
    assert_eq!(own.dw, built_in.dw);
    assert_eq!(own.db, built_in.db);
}

/// With fixed dropout masks, backward matches central differences of the
/// masked network (the masks multiply each hidden layer's output).
#[test]
fn dropout_backward_matches_finite_differences() {
    for f in [Activation::Relu, Activation::Tanh] {
        let case = case(&[6, 7, 5, 3], 8, 12, f, Loss::CrossEntropy);
        let Case { model, x, truth, .. } = &case;
        let Truth::Classes(labels) = truth else { unreachable!() };
        let mut ws = Workspace::new(&model.sizes(), 8);
        let mut dropout = crate::Dropout::new(vec![0.5, 0.3], Rng::seed_from_u64(9));
        dropout.draw(&mut ws, 8);
        let masks: Vec<Array2<f64>> = ws.masks.iter().map(|m| m.as_ref().unwrap().mapv(f64::from)).collect();
        let mut grads = Gradients::new(model);
        model.backward_input(Input::Dense(x.view()), labels, &mut ws, &mut grads);
        assert!(!ws.dropout_on, "masks are used for one pass only");
        let masked_loss = |params: &[(Array2<f64>, Array1<f64>)]| {
            let mut a = x.mapv(f64::from);
            for (l, (w, b)) in params.iter().enumerate() {
                let mut z = a.dot(w);
                z += b;
                z.mapv_inplace(|v| f64_activation(model.layers()[l].activation, v));
                if l < masks.len() {
                    z *= &masks[l];
                }
                a = z;
            }
            let mut total = 0.0;
            for (row, &y) in a.rows().into_iter().zip(labels) {
                let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                total -= row[y] - max - log_sum;
            }
            total / labels.len() as f64
        };
        let mut params: Vec<(Array2<f64>, Array1<f64>)> = model
            .layers()
            .iter()
            .map(|l| (l.w.mapv(f64::from), l.b.mapv(f64::from)))
            .collect();
        let h = 1e-5;
        let mut worst = 0.0f64;
        for l in 0..params.len() {
            let scale = grads.dw[l].iter().fold(0.0f64, |m, &g| m.max(f64::from(g).abs()));
            for idx in 0..params[l].0.len() {
                let (i, j) = (idx / params[l].0.ncols(), idx % params[l].0.ncols());
                let orig = params[l].0[[i, j]];
                params[l].0[[i, j]] = orig + h;
                let plus = masked_loss(&params);
                params[l].0[[i, j]] = orig - h;
                let minus = masked_loss(&params);
                params[l].0[[i, j]] = orig;
                let numeric = (plus - minus) / (2.0 * h);
                let err = (f64::from(grads.dw[l][[i, j]]) - numeric).abs() / (numeric.abs() + 1e-2 * scale + 1e-8);
                worst = worst.max(err);
            }
        }
        assert!(worst < TOLERANCE, "{f}: largest relative error {worst:e}");
    }
}

/// Running averages move after a training-mode batch of several rows, not
/// after an evaluation-mode pass nor after a batch of one row.
#[test]
fn running_averages_move_only_after_training_batches_of_two_rows_or_more() {
    let mut model = Mlp::new(&[3, 4, 2], &mut Rng::seed_from_u64(1)).unwrap();
    model.add_batch_norm(0.5, 1e-5);
    let x = Array2::from_shape_fn((3, 3), |(i, j)| (i * 3 + j) as f32);
    let mut ws = Workspace::new(&model.sizes(), 3);
    let start = model.norms()[0].clone().unwrap();
    model.forward(x.view(), &mut ws);
    model.update_batch_norm(&ws);
    assert_eq!(model.norms()[0].as_ref(), Some(&start), "evaluation mode");
    ws.set_training(true);
    model.forward(x.slice(ndarray::s![..1, ..]), &mut ws);
    model.update_batch_norm(&ws);
    assert_eq!(model.norms()[0].as_ref(), Some(&start), "one row");
    model.forward(x.view(), &mut ws);
    model.update_batch_norm(&ws);
    let moved = model.norms()[0].as_ref().unwrap();
    assert!(moved.running_mean != start.running_mean && moved.running_var != start.running_var);
}

/// `set_norms` refuses the wrong count, a normalisation of the output layer,
/// and one that does not fit its layer; a configuration asks for hidden
/// layers; a model and a configuration that disagree do not resume.
#[test]
fn bad_batch_norms_are_refused() {
    let mut model = Mlp::new(&[3, 4, 2], &mut Rng::seed_from_u64(1)).unwrap();
    let err = |r: Result<()>| r.unwrap_err().to_string();
    assert!(err(model.set_norms(vec![None])).contains("1 batch normalisations for 2 layers"));
    assert!(err(model.set_norms(vec![None, Some(BatchNorm::new(2))])).contains("output layer"));
    assert!(err(model.set_norms(vec![Some(BatchNorm::new(3)), None])).contains("4 units"));
    assert!(!model.has_batch_norm(), "nothing changed");
    model.set_norms(vec![Some(BatchNorm::new(4)), None]).unwrap();
    assert!(model.has_batch_norm());

    let config = crate::TrainConfig {
        sizes: vec![3, 2],
        batch_norm: true,
        ..crate::TrainConfig::default()
    };
    assert!(config.validate().unwrap_err().to_string().contains("has none"));
    let config = crate::TrainConfig {
        sizes: vec![3, 4, 2],
        ..config
    };
    let trainer = crate::Trainer::new(config.clone(), 10).unwrap();
    let state = trainer.state();
    let plain = Mlp::new(&[3, 4, 2], &mut Rng::seed_from_u64(1)).unwrap();
    let e = crate::Trainer::resume(config, plain, state, 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not batch-normalised"), "{e}");
}
