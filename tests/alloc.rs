//! No heap allocation inside a training step once the first step has run:
//! a counting global allocator watches a whole second epoch, on one thread
//! and on two, on the sparse and on the dense input path.

use backprop_nn::{Activation, Examples, Features, Loss, OptimizerConfig, TrainConfig, Trainer};
use backprop_tests::Synthetic;
use ndarray::Array2;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

/// Whether allocations are being counted, and how many were seen. Global
/// (not per thread) so the pool's workers are watched too; the test body
/// holds `SERIAL` so tests in this binary do not count each other.
static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated and not yet freed, by any thread, and the most seen.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn note_allocation(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns how many allocations any thread made meanwhile.
fn allocations_during(f: impl FnOnce()) -> usize {
    COUNT.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    COUNT.load(Ordering::SeqCst)
}

/// Runs `f` and returns the most bytes it had allocated at once (beyond what
/// was live before).
fn peak_bytes_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst).saturating_sub(base)
}

fn the_counter_sees_allocations() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = allocations_during(|| drop(std::hint::black_box(vec![1u8; 100])));
    assert_eq!(n, 1);
}

/// Allocations during the first and the second epoch of `config` on
/// `data`.
/// The caller holds `SERIAL` for its whole body, so that no other test
/// allocates (building its data) while this one counts.
fn epoch_allocations_of(config: TrainConfig, data: &dyn Examples, threads: usize) -> (usize, usize) {
    let mut trainer = Trainer::new(config, data.len()).unwrap();
    trainer.set_threads(threads);
    let first = allocations_during(|| {
        trainer.train_epoch(data, |_, _, _| {}).unwrap();
    });
    // A worker thread's first task may touch lazily allocated thread-local
    // state once; with tiny products the caller can finish every task of
    // the first epoch before the worker wakes, so that moment may fall in
    // the second. One more epoch settles it; what is counted is steady state.
    trainer.train_epoch(data, |_, _, _| {}).unwrap();
    let steady = allocations_during(|| {
        trainer.train_epoch(data, |_, _, _| {}).unwrap();
    });
    (first, steady)
}

/// Allocations during the first and the second epoch on synthetic IDX
/// images, with each optimiser.
fn epoch_allocations(sizes: Vec<usize>, side: usize, ink: f64, threads: usize) -> Vec<(String, usize)> {
    let dir = tempfile::tempdir().unwrap();
    Synthetic {
        side,
        ink,
        n_train: 300,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    // 300 examples in batches of 64: four full batches and a partial one.
    ["sgd", "momentum", "nesterov", "adam", "adamw"]
        .into_iter()
        .map(|name| {
            let config = TrainConfig {
                sizes: sizes.clone(),
                epochs: 3,
                batch_size: 64,
                learning_rate: 0.01,
                seed: 1,
                optimizer: OptimizerConfig::from_name(name).unwrap(),
                ..TrainConfig::default()
            };
            (name.to_owned(), epoch_allocations_of(config, &data.train, threads).1)
        })
        .collect()
}

fn a_second_epoch_allocates_nothing_on_the_sparse_path() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Synthetic images are about three quarters zeros: the compressed path;
    // a 784x512 first layer (1.6 MB) is copied tile by tile and read in
    // blocks of its rows (its forward) and in column blocks (BP4).
    for (sizes, side) in [(vec![64, 32, 10], 8), (vec![784, 512, 10], 28)] {
        for threads in [1, 2] {
            for (optimizer, second) in epoch_allocations(sizes.clone(), side, 0.25, threads) {
                assert_eq!(
                    second, 0,
                    "{optimizer}: allocations during the second epoch with {threads} threads, {sizes:?}"
                );
            }
        }
    }
}

fn a_second_epoch_allocates_nothing_on_the_dense_path() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Images with ink everywhere are dense; a deep network runs every dense
    // kernel (forward, BP4 and BP2) on every step.
    for threads in [1, 2] {
        // The second network is wide enough for the packed AVX-512 kernel
        // (products of 2^18 multiply-adds and more), where the CPU has it.
        for sizes in [vec![16, 16, 16, 10], vec![256, 512, 512, 10]] {
            let side = (sizes[0] as f64).sqrt() as usize;
            for (optimizer, second) in epoch_allocations(sizes.clone(), side, 1.0, threads) {
                assert_eq!(
                    second, 0,
                    "{optimizer}: allocations during the second epoch of {sizes:?} with {threads} threads"
                );
            }
        }
    }
}

/// Training on augmented images (`backprop_data::Augmented`, the digits
/// preset: affine warps, elastic fields, stroke thickness) allocates
/// nothing after the first epoch either: the distorted batch and the
/// augmentation scratch are reused, on the sparse and on the dense path.
fn a_second_epoch_allocates_nothing_with_augmentation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (sizes, side, ink) in [(vec![64, 32, 10], 8, 0.25), (vec![36, 16, 10], 6, 1.0)] {
        let dir = tempfile::tempdir().unwrap();
        Synthetic {
            side,
            ink,
            n_train: 300,
            ..Synthetic::default()
        }
        .write_dir(dir.path(), false);
        let data = backprop_data::load_dir(dir.path()).unwrap();
        let augmented = backprop_data::Augmented::new(data.train, backprop_data::Augment::digits(), 5).unwrap();
        for threads in [1, 2] {
            let config = TrainConfig {
                sizes: sizes.clone(),
                epochs: 3,
                batch_size: 64,
                learning_rate: 0.01,
                seed: 1,
                ..TrainConfig::default()
            };
            let (_, second) = epoch_allocations_of(config, &augmented, threads);
            assert_eq!(second, 0, "{side}x{side} images, ink {ink}, {threads} threads");
        }
    }
}

/// An in-memory regression table, every activation, MSE and Adam: the
/// second epoch allocates nothing either.
fn a_second_epoch_allocates_nothing_for_regression_with_every_activation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let x = Array2::from_shape_fn((130, 5), |(i, j)| ((i * 5 + j) as f32 * 0.37).sin());
    let y = Array2::from_shape_fn((130, 2), |(i, j)| x[[i, j]] * 2.0 - x[[i, 4]]);
    let data = Features::regression(x, y).unwrap();
    for activation in Activation::ALL {
        for threads in [1, 2] {
            let config = TrainConfig {
                sizes: vec![5, 12, 8, 2],
                activation,
                loss: Loss::MeanSquaredError,
                optimizer: OptimizerConfig::ADAM,
                learning_rate: 0.01,
                batch_size: 32,
                epochs: 3,
                ..TrainConfig::default()
            };
            let (_, second) = epoch_allocations_of(config, &data, threads);
            assert_eq!(second, 0, "{activation}, {threads} threads");
        }
    }
}

/// Forged checkpoints (random bytes of a real one changed, and length
/// prefixes claiming gigabytes planted, with the CRC recomputed so the
/// decoder sees them) never make the loader hold more than 16 times the
/// file's size plus 8 MiB.
fn forged_checkpoints_stay_within_a_memory_bound() {
    use backprop_nn::checkpoint::record::DataRecord;
    use backprop_nn::{CHECKPOINT_HEADER_LEN, Checkpoint};
    use backprop_tensor::Rng;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = TrainConfig {
        sizes: vec![64, 12, 10],
        optimizer: OptimizerConfig::ADAM,
        ..TrainConfig::default()
    };
    let trainer = Trainer::new(config, 100).unwrap();
    let real = Checkpoint::from_trainer(&trainer, Vec::new(), DataRecord::Unknown)
        .to_bytes()
        .unwrap();
    let mut rng = Rng::seed_from_u64(7);
    let mut worst = 0usize;
    for case in 0..400 {
        let mut bytes = real.clone();
        let at = CHECKPOINT_HEADER_LEN + rng.below((bytes.len() - CHECKPOINT_HEADER_LEN - 9) as u64) as usize;
        if case % 2 == 0 {
            // A varint length prefix of 2^40 (or more) planted anywhere.
            bytes[at] = 0xfd;
            bytes[at + 1..at + 9].copy_from_slice(&(1u64 << (40 + rng.below(20))).to_le_bytes());
        } else {
            for _ in 0..1 + rng.below(8) {
                let i = CHECKPOINT_HEADER_LEN + rng.below((bytes.len() - CHECKPOINT_HEADER_LEN) as u64) as usize;
                bytes[i] ^= 1 + rng.below(255) as u8;
            }
        }
        let crc = crc32fast::hash(&bytes[CHECKPOINT_HEADER_LEN..]);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        let peak = peak_bytes_during(|| {
            let _ = Checkpoint::from_bytes(&bytes, std::path::Path::new("forged"));
        });
        worst = worst.max(peak);
        assert!(
            peak <= 16 * bytes.len() + (8 << 20),
            "case {case}: {peak} bytes for a {}-byte file",
            bytes.len()
        );
    }
    assert!(worst > 0);
}

/// A forged checkpoint whose list holds a million empty entries (one byte
/// each on disk, 24 in memory) is refused while it decodes, without
/// holding more than the bound either.
fn a_million_empty_entries_are_refused_within_the_bound() {
    use backprop_nn::checkpoint::record::DataRecord;
    use backprop_nn::{CHECKPOINT_FORMAT_VERSION, CHECKPOINT_MAGIC, Checkpoint};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = TrainConfig {
        sizes: vec![4, 3, 2],
        optimizer: OptimizerConfig::ADAM,
        ..TrainConfig::default()
    };
    let trainer = Trainer::new(config, 10).unwrap();
    let forge = |edit: &dyn Fn(&mut Checkpoint)| {
        let mut c = Checkpoint::from_trainer(&trainer, Vec::new(), DataRecord::Unknown);
        edit(&mut c);
        let payload = bincode::serde::encode_to_vec(&c, bincode::config::standard()).unwrap();
        let mut bytes = CHECKPOINT_MAGIC.to_vec();
        bytes.extend_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes
    };
    let cases: [&dyn Fn(&mut Checkpoint); 3] = [
        &|c| c.training.as_mut().unwrap().optimizer_slots[0] = vec![Vec::new(); 1_000_000],
        &|c| c.classes = vec![String::new(); 1_000_000],
        &|c| {
            c.data = DataRecord::Csv {
                train: backprop_nn::checkpoint::record::DataFileRecord {
                    name: "a".into(),
                    sha256: "0".repeat(64),
                },
                test: None,
                target: "y".into(),
                features: vec![String::new(); 2_000_000],
            }
        },
    ];
    for (i, edit) in cases.iter().enumerate() {
        let bytes = forge(*edit);
        let mut result = None;
        let peak = peak_bytes_during(|| {
            result = Some(Checkpoint::from_bytes(&bytes, std::path::Path::new("forged")).is_err());
        });
        assert_eq!(result, Some(true), "case {i}");
        assert!(
            peak <= 16 * bytes.len() + (8 << 20),
            "case {i}: {peak} bytes for a {}-byte file",
            bytes.len()
        );
    }
}

/// The toolkit (dropout, schedule, smoothing, clipping, max-norm, batch
/// normalisation) allocates nothing per step either: on sparse images, and
/// on dense ones through a network wide enough for the packed kernel.
fn the_toolkit_allocates_nothing_per_step() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let toolkit = TrainConfig {
        epochs: 3,
        learning_rate: 0.01,
        optimizer: OptimizerConfig::ADAM,
        dropout: vec![0.3],
        schedule: backprop_nn::Schedule::Cosine { floor: 0.0 },
        warmup_steps: 5,
        label_smoothing: 0.1,
        clip_norm: Some(1.0),
        max_norm: Some(3.0),
        ..TrainConfig::default()
    };
    for (sizes, side, ink) in [(vec![64, 32, 16, 10], 8, 0.25), (vec![256, 512, 512, 10], 16, 1.0)] {
        let dir = tempfile::tempdir().unwrap();
        Synthetic {
            side,
            ink,
            n_train: 200,
            ..Synthetic::default()
        }
        .write_dir(dir.path(), false);
        let data = backprop_data::load_dir(dir.path()).unwrap();
        for batch_norm in [false, true] {
            for threads in [1, 2] {
                let config = TrainConfig {
                    sizes: sizes.clone(),
                    batch_norm,
                    ..toolkit.clone()
                };
                let (_, steady) = epoch_allocations_of(config, &data.train, threads);
                assert_eq!(steady, 0, "{sizes:?}, batch norm {batch_norm}, {threads} threads");
            }
        }
    }
}

/// A compressed product whose `B` outgrows L2 (read in blocks of its rows,
/// each task keeping cursors into its rows' entries) allocates nothing once
/// it has run at its size, even when a later batch's non-zeros hand one
/// task many more rows than before (tasks are balanced by non-zeros).
fn a_blocked_sparse_product_allocates_nothing_however_rows_are_shared_out() {
    use backprop_tensor::{Op, SparseRows, ThreadPool, sparse_gemm_with};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (m, k, n) = (64, 784, 512);
    let pool = ThreadPool::new(2);
    let w = Array2::from_elem((k, n), 0.5f32);
    let mut c = Array2::<f32>::zeros((m, n));
    // Every row 20 or 21 non-zeros; then four rows full and one entry in each other.
    let even = Array2::from_shape_fn((m, k), |(i, j)| f32::from(u8::from(j % 39 == i % 39)));
    let skewed = Array2::from_shape_fn((m, k), |(i, j)| f32::from(u8::from(i < 4 || j == i)));
    let mut x = SparseRows::with_capacity(m, k);
    x.fill(even.view());
    // Several times, so that both threads have run tasks of it.
    for _ in 0..20 {
        sparse_gemm_with(&pool, 1.0, &x, Op::Plain, w.view(), 0.0, &mut c.view_mut());
    }
    x.fill(skewed.view());
    let allocations =
        allocations_during(|| sparse_gemm_with(&pool, 1.0, &x, Op::Plain, w.view(), 0.0, &mut c.view_mut()));
    assert_eq!(
        allocations, 0,
        "allocations in a blocked product with rows shared out anew"
    );
    assert_eq!(c[[0, 0]], 392.0, "a full row of ones times 0.5");
}

/// Every check in turn, from a `main` of its own (`harness = false` in
/// `tests/Cargo.toml`): the counter sees every thread, and libtest's
/// harness allocates on its own thread whenever a concurrent test finishes
/// or a test has run for over 60 seconds (its warning), which a loaded
/// machine can reach. Without the harness nothing else runs while a check
/// counts.
fn main() {
    eprintln!("allocation checks (a counting allocator, every check in turn)");
    the_counter_sees_allocations();
    a_second_epoch_allocates_nothing_on_the_sparse_path();
    a_second_epoch_allocates_nothing_on_the_dense_path();
    a_second_epoch_allocates_nothing_with_augmentation();
    a_second_epoch_allocates_nothing_for_regression_with_every_activation();
    forged_checkpoints_stay_within_a_memory_bound();
    a_million_empty_entries_are_refused_within_the_bound();
    the_toolkit_allocates_nothing_per_step();
    a_blocked_sparse_product_allocates_nothing_however_rows_are_shared_out();
    eprintln!("allocation checks: all passed");
}
