//! Batch normalisation of a hidden layer's pre-activations (Ioffe and
//! Szegedy 2015), between E1 and E2: `Z -> Y = BN(Z) -> A = f(Y)`.
//!
//! In training, over the `m` rows of a batch, per feature `j`:
//!
//! ```text
//! mu_j     = (1/m) sum_i Z_ij
//! var_j    = (1/m) sum_i (Z_ij - mu_j)^2
//! xhat_ij  = (Z_ij - mu_j) / sqrt(var_j + eps)
//! Y_ij     = gamma_j xhat_ij + beta_j
//! ```
//!
//! and the running averages move towards the batch's statistics (with
//! PyTorch's conventions: `momentum` is the weight of the new value, and
//! the running variance takes the unbiased `var_j m / (m - 1)`). In
//! evaluation the running averages replace `mu` and `var`, so a row's
//! output no longer depends on the rest of its batch.
//!
//! Backward, from `dY = dL/dY` (the delta after BP2's activation factor):
//!
//! ```text
//! dbeta_j  = sum_i dY_ij
//! dgamma_j = sum_i dY_ij xhat_ij
//! dZ_ij    = gamma_j / (m sqrt(var_j + eps)) (m dY_ij - dbeta_j - xhat_ij dgamma_j)   (training)
//! dZ_ij    = gamma_j dY_ij / sqrt(running_var_j + eps)                               (evaluation)
//! ```
//!
//! Sums over the batch run row by row in `f64`, on the calling thread, so
//! the result is the same whatever the number of threads.

use crate::{NnError, Result};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};

/// A batch normalisation of `n` features: the learned scale `gamma` and
/// shift `beta` (trained like weights), and the running averages used in
/// evaluation (part of the model, not trained by the optimiser).
///
/// ```
/// use backprop_nn::BatchNorm;
/// let norm = BatchNorm::new(3);
/// assert_eq!(norm.gamma.to_vec(), [1.0, 1.0, 1.0]); // starts as the identity on standardised inputs
/// assert_eq!(norm.running_var.to_vec(), [1.0, 1.0, 1.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// `gamma`, the scale, `(n)`; starts at 1.
    pub gamma: Array1<f32>,
    /// `beta`, the shift, `(n)`; starts at 0.
    pub beta: Array1<f32>,
    /// The running mean of `Z`, `(n)`; starts at 0.
    pub running_mean: Array1<f32>,
    /// The running (unbiased) variance of `Z`, `(n)`; starts at 1.
    pub running_var: Array1<f32>,
    /// The weight of each batch's statistics in the running averages.
    pub momentum: f32,
    /// Added to the variance before the square root.
    pub eps: f32,
}

impl BatchNorm {
    /// PyTorch's default weight of a batch's statistics in the running
    /// averages.
    pub const DEFAULT_MOMENTUM: f32 = 0.1;

    /// PyTorch's default `eps`, added to the variance before the square
    /// root.
    pub const DEFAULT_EPS: f32 = 1e-5;

    /// A normalisation of `n` features with PyTorch's defaults: `gamma` 1,
    /// `beta` 0, running mean 0 and variance 1, momentum 0.1, eps 1e-5.
    pub fn new(n: usize) -> Self {
        Self::with(n, Self::DEFAULT_MOMENTUM, Self::DEFAULT_EPS)
    }

    /// [`BatchNorm::new`] with a momentum and an eps of one's own.
    pub fn with(n: usize, momentum: f32, eps: f32) -> Self {
        Self {
            gamma: Array1::ones(n),
            beta: Array1::zeros(n),
            running_mean: Array1::zeros(n),
            running_var: Array1::ones(n),
            momentum,
            eps,
        }
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.gamma.len()
    }

    /// `true` for a normalisation of no features.
    pub fn is_empty(&self) -> bool {
        self.gamma.is_empty()
    }

    /// Checks that every vector has `n` finite entries, the variances are
    /// not negative, `momentum` is in `(0, 1]` and `eps` is positive.
    ///
    /// # Errors
    /// [`NnError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self, n: usize) -> Result<()> {
        let bad = |field, reason: String| Err(NnError::InvalidConfig { field, reason });
        for (field, v) in [
            ("batch-norm gamma", &self.gamma),
            ("batch-norm beta", &self.beta),
            ("batch-norm running mean", &self.running_mean),
            ("batch-norm running variance", &self.running_var),
        ] {
            if v.len() != n {
                return bad(field, format!("has {} entries, the layer has {n} units", v.len()));
            }
            if !v.iter().all(|x| x.is_finite()) {
                return bad(field, "contains NaN or infinity".into());
            }
        }
        if self.running_var.iter().any(|&v| v < 0.0) {
            return bad("batch-norm running variance", "contains a negative variance".into());
        }
        if !(self.momentum > 0.0 && self.momentum <= 1.0) {
            return bad(
                "batch-norm momentum",
                format!("must be in (0, 1], got {}", self.momentum),
            );
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("batch-norm eps", format!("must be a positive number, got {}", self.eps));
        }
        Ok(())
    }

    /// Normalises `z` in place into `Y`, with the batch's statistics when
    /// `cache.training` and the running averages otherwise, keeping in
    /// `cache` what [`BatchNorm::backward`] and
    /// [`BatchNorm::update_running`] need.
    ///
    /// # Shapes
    /// `z: (m, n)` with `m <= cache`'s rows.
    pub(crate) fn forward(&self, mut z: ArrayViewMut2<'_, f32>, cache: &mut NormCache) {
        let m = z.nrows();
        cache.rows = m;
        if cache.training {
            cache.acc.fill(0.0);
            for row in z.rows() {
                Zip::from(&mut cache.acc).and(row).for_each(|s, &v| *s += f64::from(v));
            }
            Zip::from(&mut cache.mean)
                .and(&cache.acc)
                .for_each(|mu, &s| *mu = (s / m as f64) as f32);
            cache.acc.fill(0.0);
            for row in z.rows() {
                Zip::from(&mut cache.acc)
                    .and(row)
                    .and(&cache.mean)
                    .for_each(|s, &v, &mu| {
                        let d = f64::from(v - mu);
                        *s += d * d;
                    });
            }
            Zip::from(&mut cache.var)
                .and(&cache.acc)
                .for_each(|var, &s| *var = (s / m as f64) as f32);
        } else {
            cache.mean.assign(&self.running_mean);
            cache.var.assign(&self.running_var);
        }
        let eps = self.eps;
        Zip::from(&mut cache.inv_std)
            .and(&cache.var)
            .for_each(|r, &var| *r = 1.0 / (var + eps).sqrt());
        let mut xhat = cache.xhat.slice_mut(ndarray::s![..m, ..]);
        Zip::from(z.rows_mut())
            .and(xhat.rows_mut())
            .for_each(|mut z, mut xhat| {
                Zip::from(&mut z)
                    .and(&mut xhat)
                    .and(&cache.mean)
                    .and(&cache.inv_std)
                    .for_each(|z, xhat, &mu, &r| *xhat = (*z - mu) * r);
                Zip::from(&mut z)
                    .and(&xhat)
                    .and(&self.gamma)
                    .and(&self.beta)
                    .for_each(|z, &xhat, &gamma, &beta| *z = gamma * xhat + beta);
            });
    }

    /// Backward through the normalisation of the last
    /// [`BatchNorm::forward`]: turns `delta = dL/dY` into `dL/dZ` in place
    /// and overwrites `dgamma` and `dbeta`.
    ///
    /// # Shapes
    /// `delta: (m, n)` with the forward pass's `m`; `dgamma`, `dbeta: (n)`.
    pub(crate) fn backward(
        &self,
        mut delta: ArrayViewMut2<'_, f32>,
        cache: &mut NormCache,
        mut dgamma: ArrayViewMut1<'_, f32>,
        mut dbeta: ArrayViewMut1<'_, f32>,
    ) {
        let m = delta.nrows();
        let xhat = cache.xhat.slice(ndarray::s![..m, ..]);
        cache.acc.fill(0.0);
        cache.acc2.fill(0.0);
        for (dy, xhat) in delta.rows().into_iter().zip(xhat.rows()) {
            Zip::from(&mut cache.acc)
                .and(&mut cache.acc2)
                .and(dy)
                .and(xhat)
                .for_each(|sb, sg, &dy, &xhat| {
                    *sb += f64::from(dy);
                    *sg += f64::from(dy) * f64::from(xhat);
                });
        }
        Zip::from(&mut dbeta).and(&cache.acc).for_each(|d, &s| *d = s as f32);
        Zip::from(&mut dgamma).and(&cache.acc2).for_each(|d, &s| *d = s as f32);
        if cache.training {
            let mf = m as f32;
            Zip::from(delta.rows_mut()).and(xhat.rows()).for_each(|mut dy, xhat| {
                Zip::from(&mut dy)
                    .and(xhat)
                    .and(&self.gamma)
                    .and(&cache.inv_std)
                    .and(&dbeta)
                    .and(&dgamma)
                    .for_each(|d, &xhat, &gamma, &r, &db, &dg| {
                        *d = gamma * r / mf * (mf * *d - db - xhat * dg);
                    });
            });
        } else {
            Zip::from(delta.rows_mut()).for_each(|mut dy| {
                Zip::from(&mut dy)
                    .and(&self.gamma)
                    .and(&cache.inv_std)
                    .for_each(|d, &gamma, &r| *d *= gamma * r);
            });
        }
    }

    /// Moves the running averages towards the statistics of the last
    /// training-mode [`BatchNorm::forward`] over `m` rows: `r <- (1 - momentum)
    /// r + momentum s`, with the unbiased variance `var m / (m - 1)` (the
    /// biased one for a batch of 1).
    pub(crate) fn update_running(&mut self, cache: &NormCache) {
        let m = cache.rows;
        let unbias = if m > 1 { m as f32 / (m - 1) as f32 } else { 1.0 };
        let k = self.momentum;
        Zip::from(&mut self.running_mean)
            .and(&cache.mean)
            .for_each(|r, &mu| *r = (1.0 - k) * *r + k * mu);
        Zip::from(&mut self.running_var)
            .and(&cache.var)
            .for_each(|r, &var| *r = (1.0 - k) * *r + k * var * unbias);
    }

    /// The affine map of evaluation mode, `Y = Z * scale + shift` per
    /// feature: `scale = gamma / sqrt(running_var + eps)`, `shift = beta -
    /// running_mean * scale`, in `f64` then rounded (for folding into the
    /// layer before, see [`crate::Mlp::folded`]).
    pub fn eval_affine(&self) -> (Array1<f64>, Array1<f64>) {
        let scale = Zip::from(&self.gamma)
            .and(&self.running_var)
            .map_collect(|&g, &v| f64::from(g) / (f64::from(v) + f64::from(self.eps)).sqrt());
        let shift = Zip::from(&self.beta)
            .and(&self.running_mean)
            .and(&scale)
            .map_collect(|&b, &mu, &s| f64::from(b) - f64::from(mu) * s);
        (scale, shift)
    }
}

/// What a batch normalisation keeps between its forward and backward
/// passes, allocated once in the workspace.
#[derive(Clone, Debug)]
pub(crate) struct NormCache {
    /// Whether the last forward used the batch's statistics.
    pub(crate) training: bool,
    /// Rows of the last forward.
    pub(crate) rows: usize,
    /// `xhat`, `(max_batch, n)`.
    pub(crate) xhat: Array2<f32>,
    /// The mean used, `(n)`.
    pub(crate) mean: Array1<f32>,
    /// The (biased) variance used, `(n)`.
    pub(crate) var: Array1<f32>,
    /// `1 / sqrt(var + eps)`, `(n)`.
    pub(crate) inv_std: Array1<f32>,
    /// Sums over the batch.
    acc: Array1<f64>,
    acc2: Array1<f64>,
}

impl NormCache {
    pub(crate) fn new(max_batch: usize, n: usize) -> Self {
        Self {
            training: false,
            rows: 0,
            xhat: Array2::zeros((max_batch, n)),
            mean: Array1::zeros(n),
            var: Array1::zeros(n),
            inv_std: Array1::zeros(n),
            acc: Array1::zeros(n),
            acc2: Array1::zeros(n),
        }
    }

    /// Whether this cache fits `n` features and batches of `max_batch`.
    pub(crate) fn fits(&self, max_batch: usize, n: usize) -> bool {
        self.xhat.dim() == (max_batch, n)
    }
}

/// `Y = Z * scale + shift` per feature, in `f64`: the evaluation-mode
/// reference the tests and the gradient check compare with.
pub(crate) fn reference_f64(
    z: ArrayView2<'_, f64>,
    gamma: ArrayView1<'_, f64>,
    beta: ArrayView1<'_, f64>,
    stats: Option<(ArrayView1<'_, f64>, ArrayView1<'_, f64>)>,
    eps: f64,
) -> Array2<f64> {
    let m = z.nrows() as f64;
    let (mean, var) = match stats {
        Some((mean, var)) => (mean.to_owned(), var.to_owned()),
        None => {
            let mean = z.sum_axis(ndarray::Axis(0)) / m;
            let var = (&z - &mean).mapv(|d| d * d).sum_axis(ndarray::Axis(0)) / m;
            (mean, var)
        }
    };
    let xhat = (&z - &mean) / var.mapv(|v| (v + eps).sqrt());
    xhat * gamma + beta
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Forward in training mode against a hand computation: column 0 is
    /// (1, 3): mean 2, variance 1; column 1 is (0, 0): variance 0.
    #[test]
    fn training_forward_by_hand() {
        let mut norm = BatchNorm::with(2, 0.5, 0.0 + 1e-5);
        norm.gamma = array![2.0, 1.0];
        norm.beta = array![0.5, -1.0];
        let mut z = array![[1.0f32, 0.0], [3.0, 0.0]];
        let mut cache = NormCache::new(4, 2);
        cache.training = true;
        norm.forward(z.view_mut(), &mut cache);
        let r = 1.0 / (1.0f32 + 1e-5).sqrt();
        // xhat = (-r, r) and (0, 0); Y = 2 xhat + 0.5 and -1.
        assert!((z[[0, 0]] - (0.5 - 2.0 * r)).abs() < 1e-6, "{z}");
        assert!((z[[1, 0]] - (0.5 + 2.0 * r)).abs() < 1e-6, "{z}");
        assert_eq!(z.column(1).to_vec(), [-1.0, -1.0]);
        assert_eq!(cache.mean.to_vec(), [2.0, 0.0]);
        assert_eq!(cache.var.to_vec(), [1.0, 0.0]);
        // Running: mean 0.5 * 0 + 0.5 * 2 = 1; variance 0.5 * 1 + 0.5 * (1 * 2/1) = 1.5.
        norm.update_running(&cache);
        assert_eq!(norm.running_mean.to_vec(), [1.0, 0.0]);
        assert_eq!(norm.running_var.to_vec(), [1.5, 0.5]);
    }

    /// Evaluation mode uses the running averages: each row alone.
    #[test]
    fn eval_forward_uses_running_averages() {
        let mut norm = BatchNorm::new(1);
        norm.running_mean = array![4.0];
        norm.running_var = array![4.0 - 1e-5];
        norm.gamma = array![3.0];
        norm.beta = array![1.0];
        let mut z = array![[6.0f32], [4.0]];
        let mut cache = NormCache::new(2, 1);
        norm.forward(z.view_mut(), &mut cache);
        // (6 - 4) / 2 * 3 + 1 = 4, (4 - 4) / 2 * 3 + 1 = 1.
        assert!((z[[0, 0]] - 4.0).abs() < 1e-6 && (z[[1, 0]] - 1.0).abs() < 1e-6, "{z}");
        let (scale, shift) = norm.eval_affine();
        assert!((scale[0] - 1.5).abs() < 1e-6 && (shift[0] + 5.0).abs() < 1e-5);
    }

    /// Backward in both modes against central differences of
    /// `sum(Y * C)` for a fixed random `C`, with `Z`, `gamma` and `beta`
    /// perturbed in `f64` through [`reference_f64`].
    #[test]
    fn backward_matches_central_differences_in_both_modes() {
        let mut rng = backprop_tensor::Rng::seed_from_u64(3);
        let (m, n) = (5, 3);
        let z = Array2::from_shape_simple_fn((m, n), || (rng.normal() * 2.0 + 1.0) as f32);
        let c = Array2::from_shape_simple_fn((m, n), || rng.normal());
        let mut norm = BatchNorm::new(n);
        norm.gamma = Array1::from_shape_simple_fn(n, || (1.0 + rng.normal() * 0.3) as f32);
        norm.beta = Array1::from_shape_simple_fn(n, || rng.normal() as f32);
        norm.running_mean = Array1::from_shape_simple_fn(n, || rng.normal() as f32);
        norm.running_var = Array1::from_shape_simple_fn(n, || (0.5 + rng.uniform_f64()) as f32);
        for training in [true, false] {
            let mut cache = NormCache::new(m, n);
            cache.training = training;
            let mut y = z.clone();
            norm.forward(y.view_mut(), &mut cache);
            let mut delta = c.mapv(|v| v as f32);
            let (mut dgamma, mut dbeta) = (Array1::zeros(n), Array1::zeros(n));
            norm.backward(delta.view_mut(), &mut cache, dgamma.view_mut(), dbeta.view_mut());
            let stats = (norm.running_mean.mapv(f64::from), norm.running_var.mapv(f64::from));
            let loss = |z: &Array2<f64>, gamma: &Array1<f64>, beta: &Array1<f64>| {
                let s = (!training).then(|| (stats.0.view(), stats.1.view()));
                (reference_f64(z.view(), gamma.view(), beta.view(), s, f64::from(norm.eps)) * &c).sum()
            };
            let (z64, g64, b64) = (z.mapv(f64::from), norm.gamma.mapv(f64::from), norm.beta.mapv(f64::from));
            let h = 1e-5;
            let close = |analytic: f32, numeric: f64, what: &str| {
                assert!(
                    (f64::from(analytic) - numeric).abs() < 1e-3 * (1.0 + numeric.abs()),
                    "training {training}, {what}: {analytic} vs {numeric}"
                );
            };
            for i in 0..m {
                for j in 0..n {
                    let (mut p, mut q) = (z64.clone(), z64.clone());
                    p[[i, j]] += h;
                    q[[i, j]] -= h;
                    close(
                        delta[[i, j]],
                        (loss(&p, &g64, &b64) - loss(&q, &g64, &b64)) / (2.0 * h),
                        "dZ",
                    );
                }
            }
            for j in 0..n {
                let (mut p, mut q) = (g64.clone(), g64.clone());
                p[j] += h;
                q[j] -= h;
                close(
                    dgamma[j],
                    (loss(&z64, &p, &b64) - loss(&z64, &q, &b64)) / (2.0 * h),
                    "dgamma",
                );
                let (mut p, mut q) = (b64.clone(), b64.clone());
                p[j] += h;
                q[j] -= h;
                close(
                    dbeta[j],
                    (loss(&z64, &g64, &p) - loss(&z64, &g64, &q)) / (2.0 * h),
                    "dbeta",
                );
            }
            if training {
                // Through batch statistics, every column's dZ sums to zero.
                for col in delta.columns() {
                    assert!(col.sum().abs() < 1e-5, "{col}");
                }
            }
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let mut norm = BatchNorm::new(2);
        assert!(norm.validate(2).is_ok());
        assert!(norm.validate(3).is_err());
        norm.running_var[1] = -1.0;
        let err = norm.validate(2).unwrap_err().to_string();
        assert!(err.contains("running variance"), "{err}");
        let mut norm = BatchNorm::new(2);
        norm.momentum = 0.0;
        assert!(norm.validate(2).unwrap_err().to_string().contains("momentum"));
        let mut norm = BatchNorm::new(2);
        norm.gamma[0] = f32::NAN;
        assert!(norm.validate(2).unwrap_err().to_string().contains("gamma"));
    }
}
