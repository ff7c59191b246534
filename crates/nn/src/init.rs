//! Weight initialisation, drawn row by row from the seeded [`Rng`]:
//!
//! - He: `W ~ N(0, 2 / n_in)`, which keeps the variance of ReLU activations
//!   roughly constant from layer to layer (He et al. 2015);
//! - Glorot (Xavier): `W ~ U(-a, a)` with `a = sqrt(6 / (n_in + n_out))`, or
//!   `N(0, 2 / (n_in + n_out))`, for tanh and sigmoid (Glorot and Bengio 2010).
//!
//! Biases start at zero.

use backprop_tensor::Rng;
use ndarray::Array2;
use std::fmt;
use std::str::FromStr;

/// How a layer's weights are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Init {
    /// `N(0, 2 / n_in)`.
    #[default]
    HeNormal,
    /// `U(-a, a)`, `a = sqrt(6 / (n_in + n_out))`.
    GlorotUniform,
    /// `N(0, 2 / (n_in + n_out))`.
    GlorotNormal,
}

impl Init {
    /// Every initialisation.
    pub const ALL: [Init; 3] = [Init::HeNormal, Init::GlorotUniform, Init::GlorotNormal];

    /// A `(n_in, n_out)` weight matrix drawn from this distribution.
    pub fn weights(self, n_in: usize, n_out: usize, rng: &mut Rng) -> Array2<f32> {
        match self {
            Init::HeNormal => he_normal(n_in, n_out, rng),
            Init::GlorotUniform => {
                let a = (6.0 / (n_in + n_out) as f64).sqrt();
                Array2::from_shape_simple_fn((n_in, n_out), || ((2.0 * rng.uniform_f64() - 1.0) * a) as f32)
            }
            Init::GlorotNormal => {
                let std = (2.0 / (n_in + n_out) as f64).sqrt();
                Array2::from_shape_simple_fn((n_in, n_out), || (rng.normal() * std) as f32)
            }
        }
    }

    /// The name used on the command line and in `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Init::HeNormal => "he",
            Init::GlorotUniform => "glorot",
            Init::GlorotNormal => "glorot-normal",
        }
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Init {
    type Err = String;

    /// `he`, `glorot` (uniform), `glorot-normal`; `xavier` is taken for `glorot`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = if s == "xavier" { "glorot" } else { s };
        Init::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| format!("unknown initialisation {s:?}; expected he, glorot or glorot-normal"))
    }
}

/// A `(n_in, n_out)` weight matrix with entries drawn from `N(0, 2 / n_in)`,
/// row by row from `rng`.
pub fn he_normal(n_in: usize, n_out: usize, rng: &mut Rng) -> Array2<f32> {
    let std = (2.0 / n_in as f64).sqrt();
    Array2::from_shape_simple_fn((n_in, n_out), || (rng.normal() * std) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_var(w: &Array2<f32>) -> (f64, f64) {
        let n = w.len() as f64;
        let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn variance_is_two_over_fan_in() {
        let (mean, var) = mean_var(&he_normal(200, 300, &mut Rng::seed_from_u64(0)));
        assert!(mean.abs() < 0.003, "mean {mean}");
        assert!((var / 0.01 - 1.0).abs() < 0.03, "variance {var}, expected 0.01");
    }

    /// Both Glorot forms have variance `2 / (n_in + n_out)`; the uniform one
    /// stays within its bound.
    #[test]
    fn glorot_variance_and_bound() {
        for init in [Init::GlorotUniform, Init::GlorotNormal] {
            let w = init.weights(200, 300, &mut Rng::seed_from_u64(1));
            let (mean, var) = mean_var(&w);
            assert!(mean.abs() < 0.003, "{init}: mean {mean}");
            assert!(
                (var / 0.004 - 1.0).abs() < 0.03,
                "{init}: variance {var}, expected 0.004"
            );
        }
        let a = (6.0f64 / 500.0).sqrt() as f32;
        let w = Init::GlorotUniform.weights(200, 300, &mut Rng::seed_from_u64(1));
        assert!(w.iter().all(|x| x.abs() <= a));
    }

    #[test]
    fn he_is_the_seed_draw() {
        let a = Init::HeNormal.weights(5, 4, &mut Rng::seed_from_u64(3));
        assert_eq!(a, he_normal(5, 4, &mut Rng::seed_from_u64(3)));
        for init in Init::ALL {
            assert_eq!(init.to_string().parse::<Init>().unwrap(), init);
        }
        assert_eq!("xavier".parse::<Init>().unwrap(), Init::GlorotUniform);
    }
}
