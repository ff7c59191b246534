//! He initialisation: `W ~ N(0, 2 / n_in)`, which keeps the variance of ReLU
//! activations roughly constant from layer to layer.

use backprop_tensor::Rng;
use ndarray::Array2;

/// A `(n_in, n_out)` weight matrix with entries drawn from `N(0, 2 / n_in)`,
/// row by row from `rng`.
pub fn he_normal(n_in: usize, n_out: usize, rng: &mut Rng) -> Array2<f32> {
    let std = (2.0 / n_in as f64).sqrt();
    Array2::from_shape_simple_fn((n_in, n_out), || (rng.normal() * std) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variance_is_two_over_fan_in() {
        let w = he_normal(200, 300, &mut Rng::seed_from_u64(0));
        let n = w.len() as f64;
        let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.003, "mean {mean}");
        assert!((var / 0.01 - 1.0).abs() < 0.03, "variance {var}, expected 0.01");
    }
}
