//! Regularisers applied around a training step, each allocation-free and
//! independent of the thread count:
//!
//! - dropout (Srivastava et al. 2014), inverted: in training, each hidden
//!   unit's output is kept with probability `1 - p` and scaled by
//!   `1 / (1 - p)`, so evaluation needs no change; the masks come from a
//!   seeded generator of their own, drawn on the calling thread;
//! - gradient clipping by global norm: when `||g|| = sqrt(sum of every
//!   gradient element squared) > c`, every gradient is scaled by `c / ||g||`;
//! - a max-norm constraint: after each step, every unit's incoming weight
//!   vector (a column of `W`) longer than `c` is scaled back to length `c`.

use crate::{Gradients, Mlp, Workspace};
use backprop_tensor::Rng;

/// Inverted dropout on hidden layers, with its own generator.
#[derive(Clone, Debug)]
pub struct Dropout {
    /// The drop probability of each hidden layer (0 = off).
    rates: Vec<f32>,
    rng: Rng,
}

impl Dropout {
    /// Dropout with `rates[l]` for hidden layer `l`, masks drawn from `rng`.
    pub fn new(rates: Vec<f32>, rng: Rng) -> Self {
        Self { rates, rng }
    }

    /// The generator, to save its state with a checkpoint.
    pub fn rng(&self) -> &Rng {
        &self.rng
    }

    /// Draws this step's masks for `batch` rows into `ws` (allocating them
    /// the first time) and turns dropout on for the next forward and
    /// backward pass. Each mask element is `0` with probability `p` and
    /// `1 / (1 - p)` otherwise, from one 32-bit draw.
    pub fn draw(&mut self, ws: &mut Workspace, batch: usize) {
        if ws.masks.len() != self.rates.len() {
            ws.masks = self
                .rates
                .iter()
                .zip(&ws.a)
                .map(|(&p, a)| (p > 0.0).then(|| ndarray::Array2::zeros(a.dim())))
                .collect();
        }
        for (mask, &p) in ws.masks.iter_mut().zip(&self.rates) {
            let Some(mask) = mask else { continue };
            let threshold = (f64::from(p) * 4_294_967_296.0) as u64;
            let keep = 1.0 / (1.0 - p);
            // Element 2j takes the low half of the j-th 64-bit draw, element
            // 2j + 1 its high half.
            let len = batch * mask.ncols();
            let mask = &mut mask.as_slice_mut().expect("masks are contiguous")[..len];
            let value = |draw: u64| if draw < threshold { 0.0 } else { keep };
            let mut pairs = mask.chunks_exact_mut(2);
            for pair in &mut pairs {
                let word = self.rng.next_u64();
                pair[0] = value(word & 0xffff_ffff);
                pair[1] = value(word >> 32);
            }
            if let [last] = pairs.into_remainder() {
                *last = value(self.rng.next_u64() & 0xffff_ffff);
            }
        }
        ws.dropout_on = true;
    }
}

/// Scales every gradient by `max_norm / ||g||` when the global norm
/// `||g||` exceeds `max_norm`; returns `||g||` before clipping. The sum runs
/// in a fixed order in f64, so the result does not depend on threads.
pub fn clip_global_norm(grads: &mut Gradients, max_norm: f32) -> f32 {
    let sum: f64 = grads
        .dw
        .iter()
        .flat_map(|w| w.iter())
        .chain(grads.db.iter().flat_map(|b| b.iter()))
        .chain(grads.dgamma.iter().chain(&grads.dbeta).flat_map(|g| g.iter()))
        .map(|&g| f64::from(g) * f64::from(g))
        .sum();
    let norm = sum.sqrt() as f32;
    if norm > max_norm && norm.is_finite() {
        let scale = max_norm / norm;
        grads.dw.iter_mut().for_each(|w| w.mapv_inplace(|g| g * scale));
        grads.db.iter_mut().for_each(|b| b.mapv_inplace(|g| g * scale));
        (grads.dgamma.iter_mut().chain(&mut grads.dbeta)).for_each(|b| b.mapv_inplace(|g| g * scale));
    }
    norm
}

/// Scales every column of every weight matrix (a unit's incoming weights)
/// whose Euclidean norm exceeds `max_norm` back to `max_norm`. `norms` is
/// scratch of at least the widest layer's `n_out`.
pub fn apply_max_norm(model: &mut Mlp, max_norm: f32, norms: &mut [f64]) {
    for layer in model.layers_mut() {
        let n_out = layer.n_out();
        let norms = &mut norms[..n_out];
        norms.fill(0.0);
        for row in layer.w.rows() {
            for (n, &w) in norms.iter_mut().zip(row) {
                *n += f64::from(w) * f64::from(w);
            }
        }
        for n in norms.iter_mut() {
            let len = n.sqrt();
            *n = if len > f64::from(max_norm) {
                f64::from(max_norm) / len
            } else {
                1.0
            };
        }
        if norms.iter().any(|&scale| scale != 1.0) {
            for mut row in layer.w.rows_mut() {
                for (w, &scale) in row.iter_mut().zip(norms.iter()) {
                    if scale != 1.0 {
                        *w = (f64::from(*w) * scale) as f32;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Gradients;

    /// Dropout keeps expectation: the mean mask is 1 and the kept fraction
    /// `1 - p`.
    #[test]
    fn dropout_keeps_expectation() {
        let model = Mlp::new(&[3, 400, 300, 2], &mut Rng::seed_from_u64(0)).unwrap();
        let mut ws = Workspace::new(&model.sizes(), 64);
        let mut dropout = Dropout::new(vec![0.5, 0.2], Rng::seed_from_u64(1));
        dropout.draw(&mut ws, 64);
        for (mask, p) in ws.masks.iter().zip([0.5f64, 0.2]) {
            let mask = mask.as_ref().unwrap();
            let n = mask.len() as f64;
            let mean = mask.iter().map(|&m| f64::from(m)).sum::<f64>() / n;
            let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / n;
            assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
            assert!((kept - (1.0 - p)).abs() < 0.01, "kept {kept}");
            assert!(
                mask.iter()
                    .all(|&m| m == 0.0 || (f64::from(m) - 1.0 / (1.0 - p)).abs() < 1e-6)
            );
        }
        assert!(ws.dropout_on);
    }

    #[test]
    fn clipping_scales_to_the_norm() {
        let model = Mlp::new(&[1, 2], &mut Rng::seed_from_u64(0)).unwrap();
        let mut grads = Gradients::new(&model);
        grads.dw[0].assign(&ndarray::arr2(&[[3.0, 0.0]]));
        grads.db[0].assign(&ndarray::arr1(&[0.0, 4.0]));
        assert_eq!(clip_global_norm(&mut grads, 10.0), 5.0);
        assert_eq!(grads.db[0][1], 4.0, "under the limit: unchanged");
        assert_eq!(clip_global_norm(&mut grads, 1.0), 5.0);
        assert!((grads.dw[0][[0, 0]] - 0.6).abs() < 1e-7 && (grads.db[0][1] - 0.8).abs() < 1e-7);
    }

    #[test]
    fn max_norm_caps_each_units_incoming_weights() {
        let mut model = Mlp::new(&[2, 2], &mut Rng::seed_from_u64(0)).unwrap();
        model.layers_mut()[0]
            .w
            .assign(&ndarray::arr2(&[[3.0, 0.1], [4.0, 0.1]]));
        apply_max_norm(&mut model, 1.0, &mut [0.0; 2]);
        let w = &model.layers()[0].w;
        assert!((w[[0, 0]] - 0.6).abs() < 1e-6 && (w[[1, 0]] - 0.8).abs() < 1e-6);
        assert_eq!((w[[0, 1]], w[[1, 1]]), (0.1, 0.1), "a short column is left alone");
    }
}
