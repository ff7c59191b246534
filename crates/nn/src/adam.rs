//! Adam, and AdamW with decoupled weight decay.

use crate::optim::{Slot, flat, slot_state, take_slots, tensors, zeros_like};
use crate::{Gradients, Mlp, Optimizer, OptimizerConfig, OptimizerState, Result};
use backprop_tensor::{ThreadPool, wide_lanes, zip_chunks_with};

/// Adam (Kingma and Ba 2015; PyTorch's `Adam`), or AdamW (Loshchilov and
/// Hutter 2019; PyTorch's `AdamW`) when `decoupled`: at step `t` (from 1),
/// for every parameter `theta` with gradient `g` and moments `m`, `v`,
///
/// ```text
/// theta <- theta (1 - eta lambda)           (AdamW only)
/// g     <- g + lambda theta                 (Adam only)
/// m     <- beta1 m + (1 - beta1) g
/// v     <- beta2 v + (1 - beta2) g^2
/// theta <- theta - eta m_hat / (sqrt(v_hat) + eps),
///          m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)
/// ```
///
/// ```
/// use backprop_nn::{Adam, Gradients, Mlp, Optimizer};
/// use backprop_tensor::{Rng, ThreadPool};
/// let mut model = Mlp::new(&[1, 1], &mut Rng::seed_from_u64(0)).unwrap();
/// let mut grads = Gradients::new(&model);
/// grads.db[0].fill(3.0);
/// // The first step moves every parameter by about eta, whatever |g|.
/// Adam::new(&model, 0.01, 0.9, 0.999, 1e-8, 0.0, false).step(&ThreadPool::new(1), &mut model, &grads);
/// assert!((model.layers()[0].b[0] + 0.01).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    learning_rate: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    step: u64,
    /// `m` for every parameter tensor.
    m: Slot,
    /// `v` for every parameter tensor.
    v: Slot,
}

impl Adam {
    /// Adam (AdamW when `decoupled`), its moments allocated for `model`.
    pub fn new(
        model: &Mlp,
        learning_rate: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        decoupled: bool,
    ) -> Self {
        Self {
            learning_rate,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            step: 0,
            m: zeros_like(model),
            v: zeros_like(model),
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, pool: &ThreadPool, model: &mut Mlp, grads: &Gradients) {
        self.step += 1;
        let (eta, b1, b2, eps) = (self.learning_rate, self.beta1, self.beta2, self.eps);
        // Bias corrections, in f64 then rounded once.
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let correction1 = (1.0 - f64::from(b1).powi(t)) as f32;
        let correction2 = (1.0 - f64::from(b2).powi(t)) as f32;
        let (l2, shrink) = match self.decoupled {
            false => (self.weight_decay, 1.0),
            true => (0.0, 1.0 - eta * self.weight_decay),
        };
        for (((theta, grad), m), v) in tensors(model, grads).zip(&mut self.m).zip(&mut self.v) {
            let k = Constants {
                eta,
                b1,
                b2,
                eps,
                correction1,
                correction2,
                l2,
                shrink,
            };
            let (m, v) = (flat(m), flat(v));
            zip_chunks_with(pool, theta, grad, [m, v], &|theta, grad, [m, v]| {
                update(theta, grad, m, v, &k)
            });
        }
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f32) {
        self.learning_rate = learning_rate;
    }

    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Adam {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
        }
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            step: self.step,
            slots: vec![slot_state(&self.m), slot_state(&self.v)],
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        let (step, mut slots) = take_slots(state, &[&self.m, &self.v])?;
        self.step = step;
        self.v = slots.pop().unwrap_or_default();
        self.m = slots.pop().unwrap_or_default();
        Ok(())
    }
}

/// What one step's update needs besides the tensors.
#[derive(Clone, Copy, Debug)]
struct Constants {
    eta: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    correction1: f32,
    correction2: f32,
    l2: f32,
    shrink: f32,
}

/// The update rule on one chunk, in AVX2 lanes where the CPU has them
/// ([`wide_lanes`]: the scalar loop's bits; tested), leaving out the
/// divisions by a bias correction once it is 1.0 (see `update_portable`).
fn update(theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], k: &Constants) {
    wide_lanes(
        #[inline(always)]
        || update_portable(theta, grad, m, v, k),
    );
}

#[inline(always)]
fn update_portable(theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], k: &Constants) {
    // The bias corrections round to exactly 1.0 in f32 once beta^t < 2^-25:
    // from step 165 for beta1 = 0.9, from step 17,320 for beta2 = 0.999.
    // Dividing by 1.0 changes no bit (zeros keep their sign, infinities and
    // NaNs stay), so from then on the loop leaves that division out; each
    // is about a fifth of the loop's time, its lanes waiting on the
    // divider.
    let (c1, c2) = (k.correction1, k.correction2);
    match (c1 == 1.0, c2 == 1.0) {
        (true, true) => update_rule(theta, grad, m, v, k, |m| m, |v| v),
        (true, false) => update_rule(theta, grad, m, v, k, |m| m, |v| v / c2),
        (false, true) => update_rule(theta, grad, m, v, k, |m| m / c1, |v| v),
        (false, false) => update_rule(theta, grad, m, v, k, |m| m / c1, |v| v / c2),
    }
}

/// The update rule, with `m_hat` and `v_hat` the bias-corrected moments.
#[inline(always)]
fn update_rule(
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: &Constants,
    m_hat: impl Fn(f32) -> f32,
    v_hat: impl Fn(f32) -> f32,
) {
    // Equal lengths, stated once, let the loop run in SIMD lanes.
    let n = theta.len();
    let (grad, m, v) = (&grad[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let t = theta[i] * k.shrink;
        let g = grad[i] + k.l2 * t;
        let mi = k.b1 * m[i] + (1.0 - k.b1) * g;
        let vi = k.b2 * v[i] + (1.0 - k.b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        theta[i] = t - k.eta * m_hat(mi) / (v_hat(vi).sqrt() + k.eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_tensor::Rng;

    /// Two steps on one bias, gradients 2 then -1, betas (0.5, 0.75), eps
    /// 0, eta 0.1, worked by hand:
    /// step 1: m = 1, v = 1, m_hat = 2, v_hat = 4, theta = -0.1 * 2/2 = -0.1;
    /// step 2: m = 0, v = 1, m_hat = 0, theta stays -0.1.
    /// With AdamW (lambda 1) each step first scales theta by 0.9.
    #[test]
    fn hand_computed_steps() {
        for (decoupled, decay, want) in [(false, 0.0, [-0.1f32, -0.1]), (true, 1.0, [-0.1, -0.09])] {
            let mut model = Mlp::new(&[1, 1], &mut Rng::seed_from_u64(0)).unwrap();
            let mut opt = Adam::new(&model, 0.1, 0.5, 0.75, 0.0, decay, decoupled);
            let mut grads = Gradients::new(&model);
            for (g, want) in [2.0f32, -1.0].into_iter().zip(want) {
                grads.db[0].fill(g);
                opt.step(&ThreadPool::new(1), &mut model, &grads);
                assert!(
                    (model.layers()[0].b[0] - want).abs() < 1e-6,
                    "{decoupled}: {}",
                    model.layers()[0].b[0]
                );
            }
        }
    }

    /// The moments start cache lines, fresh and loaded from a state.
    #[test]
    fn moments_start_cache_lines() {
        let model = Mlp::new(&[784, 128, 10], &mut Rng::seed_from_u64(0)).unwrap();
        let mut opt = Adam::new(&model, 0.001, 0.9, 0.999, 1e-8, 0.0, false);
        let aligned = |o: &Adam| {
            o.m.iter()
                .chain(&o.v)
                .all(|b| (b.as_ptr() as usize).is_multiple_of(backprop_tensor::CACHE_LINE))
        };
        assert!(aligned(&opt));
        opt.load_state(opt.state()).unwrap();
        assert!(aligned(&opt));
    }

    /// The AVX2 build of the update gives the portable loop's bits, on
    /// values of every size (and a length that is not a multiple of 8).
    #[test]
    fn simd_update_matches_the_scalar_loop_bit_for_bit() {
        let mut rng = Rng::seed_from_u64(9);
        let n = 1003;
        let mut draw = |scale: f64| (0..n).map(|_| (rng.normal() * scale) as f32).collect::<Vec<f32>>();
        let (theta, grad, m) = (draw(1.0), draw(10.0), draw(0.1));
        let v: Vec<f32> = draw(0.01).iter().map(|x| x * x).collect();
        let k = Constants {
            eta: 0.001,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            correction1: 0.271,
            correction2: 0.00299,
            l2: 0.01,
            shrink: 0.99999,
        };
        assert_same_bits(update_portable, update, [&theta, &grad, &m, &v], &k, "AVX2 vs portable");
    }

    /// An update's signature: theta, grad, m, v, constants.
    type Update = fn(&mut [f32], &[f32], &mut [f32], &mut [f32], &Constants);

    /// Runs `want` and `got` on copies of the same `[theta, grad, m, v]`
    /// and asserts that they leave the same bits in theta, m and v.
    fn assert_same_bits(want: Update, got: Update, [theta, grad, m, v]: [&[f32]; 4], k: &Constants, what: &str) {
        let run = |update: Update| {
            let (mut t, mut m, mut v) = (theta.to_vec(), m.to_vec(), v.to_vec());
            update(&mut t, grad, &mut m, &mut v, k);
            [t, m, v].map(|x| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        assert_eq!(run(want), run(got), "{what}");
    }

    /// The first version's update, dividing by the corrections always,
    /// kept as the reference.
    fn reference_update(theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], k: &Constants) {
        for i in 0..theta.len() {
            let t = theta[i] * k.shrink;
            let g = grad[i] + k.l2 * t;
            let mi = k.b1 * m[i] + (1.0 - k.b1) * g;
            let vi = k.b2 * v[i] + (1.0 - k.b2) * g * g;
            m[i] = mi;
            v[i] = vi;
            let m_hat = mi / k.correction1;
            let v_hat = vi / k.correction2;
            theta[i] = t - k.eta * m_hat / (v_hat.sqrt() + k.eps);
        }
    }

    /// Leaving out the divisions by a correction of exactly 1.0 keeps the
    /// reference's bits, in every combination of corrections, with zeros
    /// of both signs, subnormals, huge values and infinities among the
    /// inputs, and both kinds of weight decay.
    #[test]
    fn update_matches_the_dividing_reference_bit_for_bit() {
        let mut rng = Rng::seed_from_u64(10);
        let n = 1003;
        let mut draw = |scale: f64| (0..n).map(|_| (rng.normal() * scale) as f32).collect::<Vec<f32>>();
        let specials = [0.0, -0.0, f32::from_bits(1), -1e-40, 1e30, -f32::MAX, f32::INFINITY];
        let mut with_specials = |scale| {
            let mut x = draw(scale);
            x[..specials.len()].copy_from_slice(&specials);
            x
        };
        let (theta, grad, m) = (with_specials(1.0), with_specials(10.0), with_specials(0.1));
        let mut v: Vec<f32> = draw(0.01).iter().map(|x| x * x).collect();
        v[..3].copy_from_slice(&[0.0, f32::from_bits(1), 1e30]);
        // Step 1, step 200 (beta1's correction is 1.0) and step 20,000 (both
        // are), with PyTorch's betas.
        let correction = |beta: f64, t: i32| (1.0 - beta.powi(t)) as f32;
        for t in [1, 200, 20_000] {
            for (l2, shrink) in [(0.0, 1.0), (0.01, 1.0), (0.0, 0.9999)] {
                let k = Constants {
                    eta: 0.001,
                    b1: 0.9,
                    b2: 0.999,
                    eps: 1e-8,
                    correction1: correction(0.9, t),
                    correction2: correction(0.999, t),
                    l2,
                    shrink,
                };
                assert_eq!((k.correction1 == 1.0, k.correction2 == 1.0), (t > 1, t > 200));
                let what = format!("step {t}, l2 {l2}, shrink {shrink}");
                assert_same_bits(reference_update, update, [&theta, &grad, &m, &v], &k, &what);
            }
        }
        // And beta2's correction at 1.0 before beta1's (a beta2 below
        // beta1; here 0, whose correction is 1.0 from the first step).
        let k = Constants {
            eta: 0.001,
            b1: 0.9,
            b2: 0.0,
            eps: 1e-8,
            correction1: 0.271,
            correction2: 1.0,
            l2: 0.0,
            shrink: 1.0,
        };
        assert_same_bits(reference_update, update, [&theta, &grad, &m, &v], &k, "beta2 = 0");
    }

    #[test]
    fn state_round_trips_and_wrong_shapes_are_refused() {
        let model = Mlp::new(&[3, 2], &mut Rng::seed_from_u64(0)).unwrap();
        let mut opt = Adam::new(&model, 0.1, 0.9, 0.999, 1e-8, 0.0, false);
        let mut state = opt.state();
        state.step = 7;
        state.slots[1][0][0] = 0.5;
        opt.load_state(state.clone()).unwrap();
        assert_eq!(opt.state(), state);
        state.slots[0].pop();
        assert!(opt.load_state(state).is_err());
    }
}
