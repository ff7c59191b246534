//! Gradient checks: backward against central differences of the loss,
//! computed in f64 by plain loops, independent of the code under test.

use super::*;

/// The mean cross-entropy of the network at f64 parameters, by definition:
/// E1 with ReLU on hidden layers, then `-log softmax(z)[y]`.
fn reference_loss(params: &[(Array2<f64>, Array1<f64>)], x: &Array2<f64>, labels: &[usize]) -> f64 {
    let mut a = x.clone();
    for (l, (w, b)) in params.iter().enumerate() {
        let mut z = a.dot(w);
        z += b;
        if l + 1 < params.len() {
            z.mapv_inplace(|v| v.max(0.0));
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
}

struct Case {
    model: Mlp,
    x: Array2<f32>,
    labels: Vec<usize>,
}

fn case(sizes: &[usize], batch: usize, seed: u64) -> Case {
    let mut rng = Rng::seed_from_u64(seed);
    let mut model = Mlp::new(sizes, &mut rng).unwrap();
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
    let classes = *sizes.last().unwrap() as u64;
    let labels = (0..batch).map(|_| rng.below(classes) as usize).collect();
    Case { model, x, labels }
}

/// The largest relative error between backward's gradients and central
/// differences, over every weight and bias.
fn max_relative_error(case: &Case, mask_layer: MaskLayer) -> f64 {
    let Case { model, x, labels } = case;
    let mut ws = Workspace::new(&model.sizes(), x.nrows());
    let mut grads = Gradients::new(model);
    // The same choice as `Mlp::backward`: mostly-zero inputs take the
    // compressed path, so both paths are checked.
    ws.input.fill(x.view());
    let input = if ws.input.density() < SPARSE_INPUT_DENSITY {
        Own::Compressed
    } else {
        Own::Given(Input::Dense(x.view()))
    };
    model.backward_from(input, labels, &mut ws, &mut grads, mask_layer);

    let mut params: Vec<(Array2<f64>, Array1<f64>)> = model
        .layers()
        .iter()
        .map(|l| (l.w.mapv(f64::from), l.b.mapv(f64::from)))
        .collect();
    let x64 = x.mapv(f64::from);
    let h = 1e-5;
    let mut worst = 0.0f64;
    let mut compare = |analytic: f32, numeric: f64, scale: f64| {
        let err = (f64::from(analytic) - numeric).abs() / (numeric.abs() + 1e-2 * scale + 1e-8);
        worst = worst.max(err);
    };
    for l in 0..params.len() {
        let scale_w = grads.dw[l].iter().fold(0.0f64, |m, &g| m.max(f64::from(g).abs()));
        for idx in 0..params[l].0.len() {
            let (i, j) = (idx / params[l].0.ncols(), idx % params[l].0.ncols());
            let orig = params[l].0[[i, j]];
            params[l].0[[i, j]] = orig + h;
            let plus = reference_loss(&params, &x64, labels);
            params[l].0[[i, j]] = orig - h;
            let minus = reference_loss(&params, &x64, labels);
            params[l].0[[i, j]] = orig;
            compare(grads.dw[l][[i, j]], (plus - minus) / (2.0 * h), scale_w);
        }
        let scale_b = grads.db[l].iter().fold(0.0f64, |m, &g| m.max(f64::from(g).abs()));
        for j in 0..params[l].1.len() {
            let orig = params[l].1[j];
            params[l].1[j] = orig + h;
            let plus = reference_loss(&params, &x64, labels);
            params[l].1[j] = orig - h;
            let minus = reference_loss(&params, &x64, labels);
            params[l].1[j] = orig;
            compare(grads.db[l][j], (plus - minus) / (2.0 * h), scale_b);
        }
    }
    worst
}

/// f32 products of a few dozen terms carry relative errors near 1e-6; the
/// differences are taken in f64 with h = 1e-5, whose truncation error is
/// about 1e-10. A tolerance of 1e-3 leaves a wide margin above both while
/// catching any real mistake, which shows up as errors of order 1.
const TOLERANCE: f64 = 1e-3;

#[test]
fn backward_matches_finite_differences_at_depths_1_2_3() {
    let mut sizes_rng = Rng::seed_from_u64(2024);
    for depth in 1..=3 {
        for trial in 0..4 {
            let sizes: Vec<usize> = (0..=depth).map(|_| 1 + sizes_rng.below(9) as usize).collect();
            let batch = 1 + sizes_rng.below(7) as usize;
            let mut sizes = sizes;
            *sizes.last_mut().unwrap() = sizes.last().unwrap().max(&2).to_owned();
            let case = case(&sizes, batch, 100 * depth as u64 + trial);
            let err = max_relative_error(&case, |l| l);
            assert!(
                err < TOLERANCE,
                "sizes {sizes:?}, batch {batch}: largest relative error {err:e}"
            );
        }
    }
}

#[test]
fn relu_derivative_at_the_wrong_layer_fails_the_check() {
    // Equal widths, so the wrong layer's pre-activation has the right shape
    // and the bug runs silently, as it does in NumPy.
    for (sizes, seed) in [(vec![6, 5, 5], 1u64), (vec![4, 6, 6, 6], 2)] {
        let case = case(&sizes, 8, seed);
        assert!(max_relative_error(&case, |l| l) < TOLERANCE);
        let err = max_relative_error(&case, |l| l + 1);
        assert!(
            err > 0.1,
            "sizes {sizes:?}: the buggy backward passed with error {err:e}"
        );
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
