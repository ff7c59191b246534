//! Regularisers applied around a training step, each allocation-free and
//! independent of the thread count:
//!
//! - dropout (Srivastava et al. 2014), inverted: in training, each hidden
//!   unit's output is kept with probability `1 - p` and scaled by
//!   `1 / (1 - p)`, so evaluation needs no change; the masks come from a
//!   seeded generator of their own, element `i` of a mask from word `i` of
//!   its stream, so chunks of a mask are drawn on the pool's threads from
//!   clones of the generator set to their chunk's first word;
//! - gradient clipping by global norm: when `||g|| = sqrt(sum of every
//!   gradient element squared) > c`, every gradient is scaled by `c / ||g||`;
//! - a max-norm constraint: after each step, every unit's incoming weight
//!   vector (a column of `W`) longer than `c` is scaled back to length `c`.

use crate::{Gradients, Mlp, Workspace};
use backprop_tensor::{Rng, chunks_mut_with};

/// Mask elements drawn by one task, as many as the optimisers' chunks: about
/// 20 us of keystream, which dwarfs the hand-off to a thread. The seed
/// network's 64x128 mask is one chunk, drawn on the calling thread: its
/// 10 us would not repay a hand-off, which costs far more than that on a
/// loaded machine (seen: epochs with dropout 70% slower on two threads when
/// it was split in two). A 1024-wide layer at batch 128 is eight.
const DRAW_CHUNK: usize = 16 * 1024;

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
    /// `1 / (1 - p)` otherwise, from one 32-bit word of the stream.
    ///
    /// Element `i` of a mask takes word `w + i`, `w` the stream's position
    /// before the mask: what the first version did with one 64-bit draw per
    /// pair of elements (its low half first), so the masks, and every model
    /// trained with them, keep their bits. Since each element's word is
    /// known in advance, chunks of the mask are drawn on the threads of
    /// `ws`'s pool, each from a clone of the generator moved to its chunk's
    /// first word; the results do not depend on the number of threads.
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
            let len = batch * mask.ncols();
            let mask = &mut mask.as_slice_mut().expect("masks are contiguous")[..len];
            let start = self.rng.word_pos();
            let rng = &self.rng;
            chunks_mut_with(&ws.pool, mask, DRAW_CHUNK, &|t, chunk| {
                let mut rng = rng.clone();
                rng.set_word_pos(start + (t * DRAW_CHUNK) as u128);
                fill_mask(&mut rng, chunk, p);
            });
            // The first version drew whole 64-bit words, the last one's high
            // half unused when `len` is odd: the stream moves on by `len`
            // rounded up to even, so the draws after it keep their bits too.
            self.rng.set_word_pos(start + len.next_multiple_of(2) as u128);
        }
        ws.dropout_on = true;
    }
}

/// Fills `mask` from the next `mask.len()` words of `rng`: an element is `0`
/// when its word `u < p 2^32` (probability `p`), and `1 / (1 - p)`
/// otherwise. The words come in bulk through a buffer on the stack, and the
/// choice is a select, not a branch (which mispredicted half the time at
/// `p = 0.5` and cost more than the keystream).
fn fill_mask(rng: &mut Rng, mask: &mut [f32], p: f32) {
    let threshold = (f64::from(p) * 4_294_967_296.0) as u64;
    let keep = 1.0 / (1.0 - p);
    let mut words = [0u32; 256];
    for mask in mask.chunks_mut(words.len()) {
        let words = &mut words[..mask.len()];
        rng.fill_u32(words);
        for (m, &u) in mask.iter_mut().zip(words.iter()) {
            *m = if u64::from(u) < threshold { 0.0 } else { keep };
        }
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

    /// The first version of `Dropout::draw`, kept as the reference: one
    /// 64-bit draw per pair of mask elements, on the calling thread.
    fn reference_draw(rng: &mut Rng, rates: &[f32], masks: &mut [Vec<f32>], batch: usize, widths: &[usize]) {
        for ((mask, &p), &width) in masks.iter_mut().zip(rates).zip(widths) {
            if p <= 0.0 {
                continue;
            }
            let threshold = (f64::from(p) * 4_294_967_296.0) as u64;
            let keep = 1.0 / (1.0 - p);
            let mask = &mut mask[..batch * width];
            let value = |draw: u64| if draw < threshold { 0.0 } else { keep };
            let mut pairs = mask.chunks_exact_mut(2);
            for pair in &mut pairs {
                let word = rng.next_u64();
                pair[0] = value(word & 0xffff_ffff);
                pair[1] = value(word >> 32);
            }
            if let [last] = pairs.into_remainder() {
                *last = value(rng.next_u64() & 0xffff_ffff);
            }
        }
    }

    /// The chunked, threaded draw gives the reference's masks bit for bit,
    /// and leaves the stream where the reference does, on 1, 2 and 3
    /// threads: odd and even mask lengths, masks of several chunks, several
    /// rates (one layer off), batches that shrink, and a stream starting at
    /// an odd word.
    #[test]
    fn draw_matches_the_sequential_reference_bit_for_bit() {
        use backprop_tensor::ThreadPool;
        use std::sync::Arc;
        let sizes = [3, 7, 7001, 5, 2];
        let widths = [7, 7001, 5];
        for threads in [1, 2, 3] {
            for rates in [[0.5, 0.5, 0.5], [0.1, 0.0, 0.8], [0.25, 0.9, 0.01]] {
                for start in [0u128, 7, 62] {
                    let mut state = Rng::seed_from_u64(21).state();
                    state.word_pos = start;
                    let mut reference = Rng::from_state(state);
                    let mut dropout = Dropout::new(rates.to_vec(), Rng::from_state(state));
                    let mut ws = Workspace::with_pool(&sizes, 5, Arc::new(ThreadPool::new(threads)));
                    let mut masks: Vec<Vec<f32>> = widths.iter().map(|w| vec![0.0; 5 * w]).collect();
                    for batch in [5, 3, 1, 4] {
                        dropout.draw(&mut ws, batch);
                        reference_draw(&mut reference, &rates, &mut masks, batch, &widths);
                        for ((mask, want), (&p, &width)) in ws.masks.iter().zip(&masks).zip(rates.iter().zip(&widths)) {
                            let Some(mask) = mask else {
                                assert_eq!(p, 0.0);
                                continue;
                            };
                            let got = &mask.as_slice().unwrap()[..batch * width];
                            let bits = |m: &[f32]| m.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(got),
                                bits(&want[..batch * width]),
                                "{threads} threads, rates {rates:?}, batch {batch}, width {width}"
                            );
                        }
                        assert_eq!(dropout.rng().state(), reference.state(), "the stream moves on alike");
                    }
                }
            }
        }
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
