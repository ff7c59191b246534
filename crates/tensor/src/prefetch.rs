//! [`prefetch`]: a hint to load memory into the caches before it is read.

/// Asks the CPU to start loading `data` into its caches (every level from
/// the second), so that a later read finds it there instead of waiting on
/// memory. A hint only: it reads nothing, changes no memory and no result,
/// and does nothing on CPUs without the instruction.
#[inline]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        const LINE: usize = 64;
        let bytes = std::mem::size_of_val(data);
        let start = data.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(LINE) {
            // SAFETY: an address inside `data`; prefetches never fault.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(start.add(offset)) };
        }
        // The last line, when `data` starts past a line's beginning.
        if bytes > 0 {
            // SAFETY: the last byte of `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(start.add(bytes - 1)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_changes_nothing_and_accepts_empty_and_odd_slices() {
        let data: Vec<u16> = (0..1000).collect();
        prefetch(&data[3..997]);
        prefetch(&data[..0]);
        prefetch::<u64>(&[]);
        assert!(data.iter().enumerate().all(|(i, &v)| usize::from(v) == i));
    }
}
