//! A seeded, portable random number generator whose output is fixed forever.
//!
//! `rand`'s own distributions (`shuffle`, `random_range`, `StandardNormal`)
//! may change their algorithms between releases, which would silently change
//! every trained model. So this module builds the three draws the workspace
//! needs directly on ChaCha8's raw 64-bit words, with algorithms written out
//! here: a bounded integer by Lemire's method, a normal by Box–Muller, and a
//! Fisher–Yates shuffle. The whole state is a seed and a word position, which
//! a checkpoint can store and restore exactly.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};

/// A ChaCha8 stream with version-stable draws (see the module docs).
#[derive(Clone, Debug)]
pub struct Rng {
    inner: ChaCha8Rng,
}

/// Everything needed to continue an [`Rng`] stream exactly where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 256-bit ChaCha key.
    pub seed: [u8; 32],
    /// How many 32-bit words of the stream have been consumed.
    pub word_pos: u128,
}

impl Rng {
    /// A generator whose stream is determined by `seed` alone.
    pub fn seed_from_u64(seed: u64) -> Self {
        Self {
            inner: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The position in the stream, to be restored with [`Rng::from_state`].
    pub fn state(&self) -> RngState {
        RngState {
            seed: self.inner.get_seed(),
            word_pos: self.inner.get_word_pos(),
        }
    }

    /// Continues the stream saved by [`Rng::state`].
    pub fn from_state(state: RngState) -> Self {
        let mut inner = ChaCha8Rng::from_seed(state.seed);
        inner.set_word_pos(state.word_pos);
        Self { inner }
    }

    /// A uniform 64-bit word: the next two 32-bit words of the stream, the
    /// first in the low half.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Fills `out` with the next `out.len()` 32-bit words of the stream, in
    /// order: the words that `out.len() / 2` calls of [`Rng::next_u64`]
    /// would return as low and high halves. Far faster than calling
    /// `next_u64` in a loop (the keystream is copied out in bulk).
    pub fn fill_u32(&mut self, out: &mut [u32]) {
        // The generator hands out bytes (little-endian words); go through a
        // small buffer on the stack so nothing is allocated.
        let mut bytes = [0u8; 1024];
        for out in out.chunks_mut(bytes.len() / 4) {
            let bytes = &mut bytes[..4 * out.len()];
            self.inner.fill_bytes(bytes);
            for (word, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *word = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }

    /// How many 32-bit words of the stream have been consumed (as in
    /// [`RngState::word_pos`]).
    pub fn word_pos(&self) -> u128 {
        self.inner.get_word_pos()
    }

    /// Moves to word `word_pos` of the same stream, forwards or back: the
    /// next draw starts there. With [`Rng::word_pos`], lets clones of one
    /// generator draw disjoint parts of its stream on different threads.
    pub fn set_word_pos(&mut self, word_pos: u128) {
        self.inner.set_word_pos(word_pos);
    }

    /// A uniform integer in `0..n`, without modulo bias (Lemire's
    /// multiply-and-reject method).
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0): the range is empty");
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniform `f64` in `[0, 1)` with 53 random bits.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal `f64` (mean 0, variance 1) by Box–Muller, using two
    /// uniforms per draw.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform_f64(); // (0, 1]: ln(u1) is finite.
        let u2 = self.uniform_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Shuffles `items` in place (Fisher–Yates, from the back).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_state_round_trips() {
        let mut a = Rng::seed_from_u64(42);
        let mut b = Rng::seed_from_u64(42);
        for _ in 0..5 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let saved = a.state();
        let expected: Vec<u64> = (0..10).map(|_| a.next_u64()).collect();
        let mut c = Rng::from_state(saved);
        let resumed: Vec<u64> = (0..10).map(|_| c.next_u64()).collect();
        assert_eq!(expected, resumed);
        assert_ne!(Rng::seed_from_u64(1).next_u64(), Rng::seed_from_u64(2).next_u64());
    }

    /// `fill_u32` hands out the words of `next_u64`, low half first, from
    /// any position (odd ones and block edges included), and `set_word_pos`
    /// lands on them.
    #[test]
    fn fill_u32_and_set_word_pos_follow_the_stream() {
        let mut reference = Rng::seed_from_u64(5);
        let words: Vec<u32> = (0..700)
            .flat_map(|_| {
                let w = reference.next_u64();
                [w as u32, (w >> 32) as u32]
            })
            .collect();
        for (start, len) in [(0, 0), (0, 1), (3, 64), (63, 2), (1, 513), (100, 1000)] {
            let mut rng = Rng::seed_from_u64(5);
            rng.set_word_pos(start as u128);
            let mut out = vec![0; len];
            rng.fill_u32(&mut out);
            assert_eq!(out, words[start..start + len], "from {start}, {len} words");
            assert_eq!(rng.word_pos(), (start + len) as u128);
            let w = rng.next_u64();
            assert_eq!([w as u32, (w >> 32) as u32], words[start + len..start + len + 2]);
        }
    }

    #[test]
    fn shuffle_is_a_permutation_and_roughly_uniform() {
        let mut rng = Rng::seed_from_u64(7);
        let mut counts = [[0u32; 4]; 4];
        for _ in 0..8000 {
            let mut v = [0usize, 1, 2, 3];
            rng.shuffle(&mut v);
            let mut sorted = v;
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3]);
            for (pos, &x) in v.iter().enumerate() {
                counts[pos][x] += 1;
            }
        }
        // Each (position, value) pair expects 2000 hits; 5 sigma is about 200.
        for row in counts {
            for c in row {
                assert!((1800..2200).contains(&c), "{counts:?}");
            }
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::seed_from_u64(3);
        for n in [1u64, 2, 3, 10, 1 << 40, u64::MAX] {
            for _ in 0..100 {
                assert!(rng.below(n) < n);
            }
        }
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = Rng::seed_from_u64(11);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
