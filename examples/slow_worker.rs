//! How a training step copes with a worker thread that is off its CPU half
//! of the time, as on a core shared with another program or a time-sliced
//! virtual CPU. Linux only.
//!
//! The seed recipe (784-128-10, SGD, batches of 64) trains on MNIST in one
//! process, in rounds of three epochs: on 2 threads; on 2 threads with the
//! pool's worker slowed; on 1 thread. The worker is slowed from outside the
//! library, the way an OS would: every `PERIOD` microseconds another thread
//! sends it a signal whose handler sleeps for half of that, wherever the
//! worker happens to be (mid-task, spinning, parked). Prints each epoch's
//! seconds, then per variant the median and the slowed run's ratio to the
//! normal one.
//!
//! Run: `cargo run --release -p backprop-examples --example slow_worker --
//! [DIR] [ROUNDS] [PERIOD]` with `DIR` the folder of the MNIST IDX files
//! (default `datasets/mnist`), `ROUNDS` (default 4) and `PERIOD` in
//! microseconds (default 2000).

#[cfg(target_os = "linux")]
mod slow {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// How long the signal handler sleeps, in nanoseconds.
    static NAP_NS: AtomicI64 = AtomicI64::new(0);
    /// Nanoseconds the handler has slept, in all.
    static SLEPT_NS: AtomicU64 = AtomicU64::new(0);

    fn now_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec to write.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    extern "C" fn nap(_: libc::c_int) {
        let ns = NAP_NS.load(Ordering::Relaxed);
        let ts = libc::timespec {
            tv_sec: ns / 1_000_000_000,
            tv_nsec: ns % 1_000_000_000,
        };
        let start = now_ns();
        // SAFETY: nanosleep and clock_gettime are async-signal-safe.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        SLEPT_NS.fetch_add(now_ns() - start, Ordering::Relaxed);
    }

    /// The kernel's id of this process's thread whose name starts with
    /// `name` (the kernel keeps the first 15 bytes of a thread's name).
    fn thread_id(name: &str) -> Option<libc::pid_t> {
        std::fs::read_dir("/proc/self/task").ok()?.find_map(|task| {
            let task = task.ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            (name.starts_with(comm.trim()) && !comm.trim().is_empty())
                .then(|| task.file_name().to_str()?.parse().ok())?
        })
    }

    /// A thread that naps the named thread for half of every `period`.
    pub(crate) struct Slower {
        stop: Arc<AtomicBool>,
        handle: Option<JoinHandle<()>>,
        started: u64,
    }

    impl Slower {
        pub(crate) fn start(name: &str, period: Duration) -> Result<Self, String> {
            let tid = thread_id(name).ok_or_else(|| format!("no thread named {name}"))?;
            NAP_NS.store(period.as_nanos() as i64 / 2, Ordering::Relaxed);
            // SAFETY: installs a handler that only calls async-signal-safe
            // functions and touches atomics.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = nap as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()) != 0 {
                    return Err("sigaction failed".into());
                }
            }
            let stop = Arc::new(AtomicBool::new(false));
            let handle = {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    // SAFETY: getpid and tgkill have no memory-safety
                    // preconditions.
                    let pid = unsafe { libc::getpid() };
                    while !stop.load(Ordering::Relaxed) {
                        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
                        std::thread::sleep(period);
                    }
                })
            };
            Ok(Self {
                stop,
                handle: Some(handle),
                started: SLEPT_NS.load(Ordering::Relaxed),
            })
        }

        /// Stops napping the thread; returns the seconds it was made to
        /// sleep.
        pub(crate) fn stop(mut self) -> f64 {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(handle) = self.handle.take() {
                let _ = handle.join();
            }
            // Let a nap in progress finish.
            std::thread::sleep(Duration::from_nanos(2 * NAP_NS.load(Ordering::Relaxed) as u64));
            (SLEPT_NS.load(Ordering::Relaxed) - self.started) as f64 * 1e-9
        }
    }
}

#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use backprop_data::load_dir;
    use backprop_nn::{TrainConfig, Trainer};
    use std::path::PathBuf;
    use std::time::Duration;

    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "datasets/mnist".into()));
    let rounds: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let period = Duration::from_micros(args.next().map_or(Ok(2000), |n| n.parse())?);
    let data = load_dir(&dir)?;
    let config = TrainConfig {
        epochs: 3 * rounds + 1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, data.train.len())?;
    trainer.train_epoch(&data.train, |_, _, _| {})?;
    let names = ["2 threads", "2 threads, worker slowed", "1 thread"];
    let mut seconds = vec![Vec::new(); names.len()];
    let mut alone = 0;
    for round in 0..rounds {
        for (v, name) in names.iter().enumerate() {
            trainer.set_threads(if v == 2 { 1 } else { 2 });
            trainer.pool().pin_caller();
            let slower = (v == 1)
                .then(|| slow::Slower::start("backprop-worker-1", period))
                .transpose()?;
            let stats = trainer.train_epoch(&data.train, |_, _, _| {})?;
            let slept = slower.map_or(0.0, slow::Slower::stop);
            if v == 1 {
                alone += trainer.pool().runs_alone();
            }
            println!(
                "round {round}: {name:>26} {:.3} s{}",
                stats.seconds,
                if v == 1 {
                    format!(" (worker asleep {:.0}% of it)", 100.0 * slept / stats.seconds)
                } else {
                    String::new()
                }
            );
            seconds[v].push(stats.seconds);
        }
    }
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let medians: Vec<f64> = seconds.iter_mut().map(median).collect();
    for (name, m) in names.iter().zip(&medians) {
        println!("{name:>26}: median {m:.3} s");
    }
    println!(
        "slowed / normal: {:.2}x (period {} us; the pool's stall check left the worker out of {alone} runs)",
        medians[1] / medians[0],
        period.as_micros()
    );
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("slow_worker needs Linux (signals to one thread, /proc/self/task)");
}
