//! Losses and their gradient with respect to the network's output, BP1:
//!
//! - softmax and cross-entropy, fused ([`softmax_cross_entropy`]): the loss
//!   is computed through log-softmax, `log P[i, j] = (z_ij - m_i) - ln sum_k
//!   exp(z_ik - m_i)` with `m_i` the row maximum, so `log(0)` cannot occur
//!   and a confident wrong prediction costs a large but finite loss. The
//!   gradient with respect to the logits is the well-known `(P - Y) / B`, so
//!   the softmax Jacobian never has to be formed;
//! - mean squared error ([`mean_squared_error`]) for regression.
//!
//! A loss of one's own needs no change here: compute `delta(L)` into
//! [`crate::Mlp::output_and_delta`] and call
//! [`crate::Mlp::backward_from_delta`].

use crate::Targets;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};
use std::fmt;
use std::str::FromStr;

/// Mean cross-entropy of `softmax(z)` against `labels`, and BP1 into `delta`.
///
/// Returns `L = -(1/B) sum_i log P[i, y_i]` and writes
/// `delta(L) = (P - Y) / B` (BP1), where `Y` is the one-hot encoding of
/// `labels`.
///
/// # Shapes
/// `z` and `delta: (B, n_classes)`, `labels: (B)`.
///
/// # Panics
/// If the shapes disagree or a label is not below `n_classes`.
#[track_caller]
pub fn softmax_cross_entropy(z: ArrayView2<'_, f32>, labels: &[usize], mut delta: ArrayViewMut2<'_, f32>) -> f32 {
    let (batch, n_classes) = z.dim();
    assert!(
        delta.dim() == z.dim() && labels.len() == batch,
        "softmax_cross_entropy: z {:?}, delta {:?} and {} labels disagree",
        z.dim(),
        delta.dim(),
        labels.len()
    );
    let inv_batch = 1.0 / batch as f32;
    let mut loss_sum = 0.0f64;
    Zip::from(z.rows())
        .and(delta.rows_mut())
        .and(labels)
        .for_each(|z, mut delta, &y| {
            assert!(
                y < n_classes,
                "softmax_cross_entropy: label {y} is not below {n_classes}"
            );
            let max = z.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0.0f32;
            Zip::from(&mut delta).and(&z).for_each(|d, &z| {
                *d = (z - max).exp();
                sum += *d;
            });
            // -log P[i, y] = -(z_y - max - ln sum), never -log(0).
            loss_sum += f64::from(sum.ln() - (z[y] - max));
            let scale = inv_batch / sum;
            delta.mapv_inplace(|e| e * scale);
            delta[y] -= inv_batch;
        });
    (loss_sum / batch as f64) as f32
}

/// Cross-entropy against labels smoothed by `epsilon` (Szegedy et al.
/// 2016): the target of row `i` is `(1 - epsilon) onehot(y_i) + epsilon / K`.
/// Returns `L = -(1/B) sum_i sum_j T[i, j] log P[i, j]` (through
/// log-softmax) and writes BP1, `delta(L) = (P - T) / B`. With `epsilon = 0`
/// it is [`softmax_cross_entropy`].
///
/// # Panics
/// As [`softmax_cross_entropy`].
#[track_caller]
pub fn smoothed_cross_entropy(
    z: ArrayView2<'_, f32>,
    labels: &[usize],
    epsilon: f32,
    mut delta: ArrayViewMut2<'_, f32>,
) -> f32 {
    let (batch, n_classes) = z.dim();
    assert!(
        delta.dim() == z.dim() && labels.len() == batch,
        "smoothed_cross_entropy: z {:?}, delta {:?} and {} labels disagree",
        z.dim(),
        delta.dim(),
        labels.len()
    );
    let inv_batch = 1.0 / batch as f32;
    let off = epsilon / n_classes as f32;
    let on = 1.0 - epsilon + off;
    let mut loss_sum = 0.0f64;
    Zip::from(z.rows())
        .and(delta.rows_mut())
        .and(labels)
        .for_each(|z, mut delta, &y| {
            assert!(
                y < n_classes,
                "smoothed_cross_entropy: label {y} is not below {n_classes}"
            );
            let max = z.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0.0f32;
            Zip::from(&mut delta).and(&z).for_each(|d, &z| {
                *d = (z - max).exp();
                sum += *d;
            });
            let log_sum = sum.ln();
            // -sum_j T_j log P_j, with log P_j = z_j - max - ln sum.
            let mut row_loss = 0.0f64;
            for (j, &zj) in z.iter().enumerate() {
                let t = if j == y { on } else { off };
                row_loss -= f64::from(t) * f64::from(zj - max - log_sum);
            }
            loss_sum += row_loss;
            let scale = inv_batch / sum;
            for (j, d) in delta.iter_mut().enumerate() {
                let t = if j == y { on } else { off };
                *d = *d * scale - t * inv_batch;
            }
        });
    (loss_sum / batch as f64) as f32
}

/// Mean squared error against `targets`, and BP1 into `delta`.
///
/// Returns `L = 1/(B K) sum_ij (y_ij - t_ij)^2` (PyTorch's `MSELoss`, mean
/// over all `B K` elements) and writes `delta(L) = 2 (Y - T) / (B K)`.
///
/// # Panics
/// If the shapes disagree.
#[track_caller]
pub fn mean_squared_error(
    y: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    mut delta: ArrayViewMut2<'_, f32>,
) -> f32 {
    assert!(
        y.dim() == targets.dim() && y.dim() == delta.dim(),
        "mean_squared_error: output {:?}, targets {:?} and delta {:?} disagree",
        y.dim(),
        targets.dim(),
        delta.dim()
    );
    let n = y.len().max(1) as f32;
    let mut sum = 0.0f64;
    Zip::from(&mut delta).and(&y).and(&targets).for_each(|d, &y, &t| {
        let e = y - t;
        sum += f64::from(e) * f64::from(e);
        *d = 2.0 * e / n;
    });
    (sum / f64::from(n)) as f32
}

/// The loss a network is trained with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Loss {
    /// Softmax then cross-entropy against class indices (the seed's).
    #[default]
    CrossEntropy,
    /// Mean squared error against value vectors.
    MeanSquaredError,
}

impl Loss {
    /// Every loss.
    pub const ALL: [Loss; 2] = [Loss::CrossEntropy, Loss::MeanSquaredError];

    /// The mean loss of the batch, with BP1 written into `delta`.
    ///
    /// # Panics
    /// If the targets are of the other kind (class indices for MSE, values
    /// for cross-entropy), or shapes disagree.
    #[track_caller]
    pub fn forward_backward(
        self,
        output: ArrayView2<'_, f32>,
        targets: Targets<'_>,
        delta: ArrayViewMut2<'_, f32>,
    ) -> f32 {
        match (self, targets) {
            (Loss::CrossEntropy, Targets::Classes(y)) => softmax_cross_entropy(output, y, delta),
            (Loss::MeanSquaredError, Targets::Values(t)) => mean_squared_error(output, t, delta),
            (loss, _) => panic!("{loss} loss given the other kind of targets"),
        }
    }

    /// Whether the loss takes class indices (as opposed to values).
    pub fn is_classification(self) -> bool {
        matches!(self, Loss::CrossEntropy)
    }

    /// The name used on the command line and in `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross-entropy",
            Loss::MeanSquaredError => "mse",
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = String;

    /// `cross-entropy` or `mse`.
    fn from_str(s: &str) -> Result<Self, String> {
        Loss::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown loss {s:?}; expected cross-entropy or mse"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, arr2};

    #[test]
    fn confident_wrong_prediction_has_finite_loss_and_gradient() {
        let z = arr2(&[[1000.0f32, 0.0, -1000.0]]);
        let mut delta = Array2::zeros((1, 3));
        let loss = softmax_cross_entropy(z.view(), &[2], delta.view_mut());
        assert!(loss.is_finite());
        assert_eq!(loss, 2000.0);
        assert!(delta.iter().all(|d| d.is_finite()));
        assert_eq!(delta, arr2(&[[1.0, 0.0, -1.0]]));
    }

    #[test]
    fn matches_definition_and_gradient_rows_sum_to_zero() {
        let z = arr2(&[[0.5f32, -1.0, 2.0], [3.0, 3.0, 3.0]]);
        let labels = [2, 0];
        let mut delta = Array2::zeros((2, 3));
        let loss = softmax_cross_entropy(z.view(), &labels, delta.view_mut());
        let mut want = 0.0f64;
        for (i, &y) in labels.iter().enumerate() {
            let row: Vec<f64> = z.row(i).iter().map(|&v| f64::from(v)).collect();
            let denom: f64 = row.iter().map(|v| v.exp()).sum();
            want -= (row[y].exp() / denom).ln();
            for j in 0..3 {
                let p = row[j].exp() / denom;
                let target = if j == y { 1.0 } else { 0.0 };
                assert!((f64::from(delta[[i, j]]) - (p - target) / 2.0).abs() < 1e-6);
            }
            assert!(delta.row(i).sum().abs() < 1e-6);
        }
        assert!((f64::from(loss) - want / 2.0).abs() < 1e-6);
    }

    /// Label smoothing against a hand computation: two classes, logits
    /// (0, 0), label 0, epsilon 0.2: targets (0.9, 0.1), P = (0.5, 0.5),
    /// loss = ln 2, delta = (0.5 - 0.9, 0.5 - 0.1).
    #[test]
    fn smoothed_cross_entropy_by_hand() {
        let z = arr2(&[[0.0f32, 0.0]]);
        let mut delta = Array2::zeros((1, 2));
        let loss = smoothed_cross_entropy(z.view(), &[0], 0.2, delta.view_mut());
        assert!((loss - std::f32::consts::LN_2).abs() < 1e-6);
        assert!((delta[[0, 0]] + 0.4).abs() < 1e-6 && (delta[[0, 1]] - 0.4).abs() < 1e-6);
        // Epsilon 0 is the plain loss.
        let z = arr2(&[[0.5f32, -1.0, 2.0]]);
        let (mut a, mut b) = (Array2::zeros((1, 3)), Array2::zeros((1, 3)));
        let plain = softmax_cross_entropy(z.view(), &[1], a.view_mut());
        let smoothed = smoothed_cross_entropy(z.view(), &[1], 0.0, b.view_mut());
        assert!((plain - smoothed).abs() < 1e-6);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-7);
        }
    }

    #[test]
    fn mse_by_hand() {
        let y = arr2(&[[1.0f32, 2.0], [0.0, -1.0]]);
        let t = arr2(&[[0.0f32, 2.0], [1.0, 1.0]]);
        let mut delta = Array2::zeros((2, 2));
        // Errors 1, 0, -1, -2: squares sum to 6, over 4 elements.
        let loss = mean_squared_error(y.view(), t.view(), delta.view_mut());
        assert_eq!(loss, 1.5);
        assert_eq!(delta, arr2(&[[0.5, 0.0], [-0.5, -1.0]]));
        let via_enum = Loss::MeanSquaredError.forward_backward(y.view(), Targets::Values(t.view()), delta.view_mut());
        assert_eq!(via_enum, 1.5);
    }
}
