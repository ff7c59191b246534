//! Element-wise loops in the widest lanes the CPU has, with the bits of the
//! plain build.
//!
//! The crates build for baseline x86-64 (SSE2, four `f32` lanes). A loop
//! run through [`wide_lanes`] is compiled a second time with AVX2 enabled
//! (eight lanes) and that copy runs where the CPU has AVX2. Each lane does
//! the IEEE single-precision operations the scalar loop does, in the same
//! order: Rust never contracts a multiply and an add into an FMA, and
//! without reassociation the compiler vectorises no float reduction, so the
//! results are bit for bit those of the plain build.

/// Calls `f`, compiled for AVX2 where the CPU has it (the check is one
/// cached load), else as built.
///
/// `f` is meant to be a closure over an element-wise loop, marked
/// `#[inline(always)]` (an attribute a closure passed as an argument may
/// carry): it is then inlined into a function compiled for AVX2 and its
/// loop vectorised eight lanes wide. Without the mark the compiler may keep
/// the closure a function of its own, compiled as built, and only call it
/// from there (the results are the same; only the speed is lost).
///
/// ```
/// use backprop_tensor::wide_lanes;
/// let (x, mut y) = ([1.0f32, 2.0, 3.0], [0.5f32; 3]);
/// wide_lanes(
///     #[inline(always)]
///     || {
///         for (y, x) in y.iter_mut().zip(&x) {
///             *y = 2.0 * *y + x;
///         }
///     },
/// );
/// assert_eq!(y, [2.0, 3.0, 4.0]);
/// ```
#[inline(always)]
pub fn wide_lanes<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { avx2(f) };
    }
    f()
}

/// `f()`, with `f` inlined into code compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An update with products, sums, a division and a root, on values of
    /// every size (subnormals, zeros of both signs, infinities and NaNs
    /// among them), gives the plain loop's bits in wide lanes, at lengths
    /// that are not multiples of a lane count.
    #[test]
    fn wide_lanes_keep_the_plain_loops_bits() {
        #[inline(always)]
        fn update(theta: &mut [f32], grad: &[f32], v: &mut [f32]) {
            let n = theta.len();
            let (grad, v) = (&grad[..n], &mut v[..n]);
            for i in 0..n {
                let g = grad[i] + 0.01 * theta[i];
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                theta[i] -= 0.1 * g / (v[i].sqrt() + 1e-8);
            }
        }
        let specials = [
            0.0,
            -0.0,
            f32::from_bits(1),
            -1e-40,
            1e30,
            -f32::MAX,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut state = 0x9e37_79b9_u32;
        let mut draw = |scale: f32| {
            (0..1003)
                .map(|i| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    specials
                        .get(i)
                        .copied()
                        .unwrap_or((state >> 8) as f32 / (1 << 24) as f32 * scale - scale / 2.0)
                })
                .collect::<Vec<f32>>()
        };
        let (theta, grad) = (draw(2.0), draw(20.0));
        let v: Vec<f32> = draw(0.1).iter().map(|x| x * x).collect();
        for n in [0, 1, 7, 9, 1003] {
            let (mut t1, mut v1) = (theta[..n].to_vec(), v[..n].to_vec());
            let (mut t2, mut v2) = (t1.clone(), v1.clone());
            update(&mut t1, &grad, &mut v1);
            wide_lanes(
                #[inline(always)]
                || update(&mut t2, &grad, &mut v2),
            );
            let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!((bits(&t1), bits(&v1)), (bits(&t2), bits(&v2)), "n = {n}");
        }
    }

    #[test]
    fn returns_what_the_closure_returns() {
        assert_eq!(wide_lanes(|| [1.5f32, 2.5].iter().sum::<f32>()), 4.0);
    }
}
