//! Activation functions `A = f(Z)` and their derivatives `f'(Z)`, each
//! evaluated at the pre-activation `Z` of the layer it belongs to (E2, and
//! the `f'(Z(l))` factor of BP2).
//!
//! Adding an activation means adding a variant here (its forward, its
//! derivative, its name and its default initialisation), a record variant
//! in the checkpoint format, and a gradient check: nothing else changes.

use crate::Init;
use backprop_tensor::relu_backward_inplace;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};
use std::fmt;
use std::str::FromStr;

/// `sqrt(2 / pi)`, the constant of GELU's tanh approximation.
const GELU_C: f32 = 0.797_884_6;
/// The cubic coefficient of GELU's tanh approximation.
const GELU_K: f32 = 0.044_715;

/// An element-wise activation `f`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// `max(0, z)`; `f'(z) = 1[z > 0]`.
    #[default]
    Relu,
    /// `z` for `z > 0`, else `slope * z`; `f'(z) = 1` or `slope`.
    LeakyRelu {
        /// The slope for negative inputs (0.01 by default).
        slope: f32,
    },
    /// `tanh(z)`; `f'(z) = 1 - tanh(z)^2`.
    Tanh,
    /// `1 / (1 + e^-z)`, computed without overflow; `f'(z) = s (1 - s)`.
    Sigmoid,
    /// GELU, tanh form: `z/2 (1 + tanh(c (z + k z^3)))` with
    /// `c = sqrt(2/pi)`, `k = 0.044715`.
    Gelu,
    /// `z`; `f'(z) = 1`. The output layer's activation: the loss takes the
    /// logits (softmax cross-entropy) or the values (MSE) directly.
    Identity,
}

impl Activation {
    /// Leaky ReLU with the usual slope, 0.01.
    pub const LEAKY_RELU: Activation = Activation::LeakyRelu { slope: 0.01 };

    /// `f(z)` for one value.
    #[inline]
    pub fn apply(self, z: f32) -> f32 {
        match self {
            Activation::Relu => z.max(0.0),
            Activation::LeakyRelu { slope } => {
                if z > 0.0 {
                    z
                } else {
                    slope * z
                }
            }
            Activation::Tanh => z.tanh(),
            Activation::Sigmoid => sigmoid(z),
            Activation::Gelu => 0.5 * z * (1.0 + (GELU_C * (z + GELU_K * z * z * z)).tanh()),
            Activation::Identity => z,
        }
    }

    /// `f'(z)` for one value.
    #[inline]
    pub fn derivative(self, z: f32) -> f32 {
        match self {
            Activation::Relu => {
                if z > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu { slope } => {
                if z > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
            Activation::Tanh => {
                let t = z.tanh();
                1.0 - t * t
            }
            Activation::Sigmoid => {
                let s = sigmoid(z);
                s * (1.0 - s)
            }
            Activation::Gelu => {
                let t = (GELU_C * (z + GELU_K * z * z * z)).tanh();
                0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_K * z * z)
            }
            Activation::Identity => 1.0,
        }
    }

    /// `a <- f(z)`, element by element.
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn forward(self, z: ArrayView2<'_, f32>, a: ArrayViewMut2<'_, f32>) {
        Zip::from(a).and(z).for_each(|a, &z| *a = self.apply(z));
    }

    /// `delta <- delta * f'(z)`: the activation's factor in BP2, taken at
    /// the pre-activation `z` of the same layer.
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn backward(self, delta: ArrayViewMut2<'_, f32>, z: ArrayView2<'_, f32>) {
        match self {
            Activation::Relu => relu_backward_inplace(delta, z),
            Activation::Identity => {}
            _ => Zip::from(delta).and(z).for_each(|d, &z| *d *= self.derivative(z)),
        }
    }

    /// The initialisation that keeps activations' variance steady through
    /// layers of this kind: He for the ReLU family and GELU, Glorot for
    /// tanh, sigmoid and identity.
    pub fn default_init(self) -> Init {
        match self {
            Activation::Relu | Activation::LeakyRelu { .. } | Activation::Gelu => Init::HeNormal,
            Activation::Tanh | Activation::Sigmoid | Activation::Identity => Init::GlorotUniform,
        }
    }

    /// The name used on the command line and in `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky-relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Gelu => "gelu",
            Activation::Identity => "identity",
        }
    }

    /// Every activation, with default parameters.
    pub const ALL: [Activation; 6] = [
        Activation::Relu,
        Activation::LEAKY_RELU,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Gelu,
        Activation::Identity,
    ];
}

/// The logistic function, never computing `exp` of a large positive number.
#[inline]
fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::LeakyRelu { slope } if *slope != 0.01 => write!(f, "leaky-relu:{slope}"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for Activation {
    type Err = String;

    /// `relu`, `leaky-relu` (or `leaky-relu:SLOPE`), `tanh`, `sigmoid`,
    /// `gelu`, `identity`.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(slope) = s.strip_prefix("leaky-relu:") {
            return match slope.parse::<f32>() {
                Ok(slope) if slope.is_finite() => Ok(Activation::LeakyRelu { slope }),
                _ => Err(format!("leaky-relu slope must be a finite number, got {slope:?}")),
            };
        }
        Activation::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            format!("unknown activation {s:?}; expected one of relu, leaky-relu[:SLOPE], tanh, sigmoid, gelu, identity")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each derivative against a central difference of its own `apply`, in
    /// f64 around points away from kinks.
    #[test]
    fn derivatives_match_central_differences() {
        for act in Activation::ALL
            .into_iter()
            .chain([Activation::LeakyRelu { slope: 0.2 }])
        {
            for &z in &[-3.1f32, -0.7, -0.05, 0.05, 0.4, 1.3, 2.9] {
                let h = 1e-3f32;
                let numeric = (f64::from(act.apply(z + h)) - f64::from(act.apply(z - h))) / (2.0 * f64::from(h));
                let analytic = f64::from(act.derivative(z));
                assert!(
                    (numeric - analytic).abs() <= 2e-3 * (1.0 + analytic.abs()),
                    "{act} at {z}: numeric {numeric}, analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn values_at_known_points() {
        assert_eq!(Activation::Relu.apply(-2.0), 0.0);
        assert_eq!(Activation::LEAKY_RELU.apply(-2.0), -0.02);
        assert_eq!(Activation::Sigmoid.apply(0.0), 0.5);
        assert_eq!(Activation::Sigmoid.apply(-1000.0), 0.0);
        assert_eq!(Activation::Sigmoid.apply(1000.0), 1.0);
        assert!((Activation::Gelu.apply(1.0) - 0.841_192).abs() < 1e-5);
        assert_eq!(Activation::Tanh.apply(0.0), 0.0);
        assert_eq!(Activation::Identity.apply(-7.5), -7.5);
    }

    #[test]
    fn names_round_trip() {
        for act in Activation::ALL
            .into_iter()
            .chain([Activation::LeakyRelu { slope: 0.3 }])
        {
            assert_eq!(act.to_string().parse::<Activation>().unwrap(), act);
        }
        assert!(
            "softplus"
                .parse::<Activation>()
                .unwrap_err()
                .contains("unknown activation")
        );
        assert!("leaky-relu:x".parse::<Activation>().is_err());
    }
}
