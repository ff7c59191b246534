//! A fixed set of worker threads for the kernels' data-parallel loops.
//!
//! A training step is a few hundred microseconds, so handing work to threads
//! must cost about a microsecond and allocate nothing. [`ThreadPool::run`]
//! publishes a borrowed closure and a task count; the caller and the workers
//! then claim task indices from one atomic counter until none are left.
//! Workers spin briefly waiting for work, then park, so an idle pool costs no
//! CPU; and because the caller claims tasks too, a worker the OS has not
//! scheduled yet (another process on the core) delays nothing: the caller
//! simply runs its tasks.
//!
//! Kernels split work by output, each output element computed whole by one
//! task in a fixed order, so results are bit-identical whichever thread runs
//! which task, and whatever the number of threads.
//!
//! Two things keep a slow or descheduled worker from stalling the caller
//! for long (a worker that holds a task while its CPU is given to another
//! process or, in a virtual machine, to another guest). The caller waits for
//! the workers' last tasks by spinning only briefly, then blocks, so its CPU
//! is free for whatever is competing with them. And it keeps a tally of what
//! its workers save it and what they make it wait ([`health`]): when waiting
//! costs more, it runs alone for a while and then tries them again.
//!
//! Besides runs, [`ThreadPool::run_beside`] hands out side work (making the
//! next batch of a training loop) that idle workers take between the runs of
//! the caller's own work; whatever is left the caller finishes afterwards.
//!
//! On Linux each worker is pinned to a CPU of its own (worker `w` to the
//! `w + 1`-th CPU the process may use, as the first pool made saw them):
//! left alone, the scheduler tends to run a worker on the core of the
//! thread that woke it, where the two take turns and a parallel step runs
//! at half speed. A program that owns its
//! calling thread can pin that one to the remaining CPU with
//! [`ThreadPool::pin_caller`].

mod health;

use health::Health;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking: longer than the gaps
/// between a training step's parallel kernels (waking a parked thread costs
/// tens of microseconds, more in a virtual machine), far shorter than
/// anything a person notices.
const SPIN_BEFORE_PARK: Duration = Duration::from_millis(2);
/// Spins between looks at the clock.
const SPINS_PER_CLOCK_CHECK: u32 = 256;
/// How long the caller spins waiting for the workers' last tasks before it
/// blocks: far longer than a running worker needs to finish one, so it
/// blocks only for a worker that is off its CPU.
const CALLER_SPIN: Duration = Duration::from_micros(50);

/// `state` packs the run's generation, its task count and the next task:
/// `generation << 40 | n_tasks << 20 | next`. One compare-and-swap on it
/// claims a task of one particular run, never a stale one.
const FIELD: u64 = 20;
const MASK: u64 = (1 << FIELD) - 1;
/// The generation's bits.
const GENERATION_MASK: u64 = (1 << (64 - 2 * FIELD)) - 1;
/// The most tasks one run may have.
const MAX_TASKS: usize = MASK as usize;

/// The task of a run, on the caller's stack; workers dereference it only
/// after claiming a task of that run, which the caller waits for.
struct Job<'a> {
    task: &'a (dyn Fn(usize) + Sync),
}

struct Shared {
    state: AtomicU64,
    /// The current run's `Job` (stored before `state` announces the run).
    job: AtomicPtr<Job<'static>>,
    /// Tasks of the current run that have finished.
    done: AtomicUsize,
    /// The caller of the current run is blocked (or about to block) waiting
    /// for `done`, so whoever finishes the last task must unpark it.
    caller_blocked: AtomicBool,
    /// The thread of the caller that last blocked.
    caller: Mutex<Option<Thread>>,
    /// Whether a task of the current run panicked.
    panicked: AtomicBool,
    /// Per worker: parked (or about to park), so `run` must unpark it.
    sleeping: Vec<AtomicBool>,
    shutdown: AtomicBool,
    /// Workers that have finished starting up (pinning allocates).
    started: AtomicUsize,
    /// Work beside the runs ([`ThreadPool::run_beside`]), packed as `state`
    /// is, with its job and finished count: idle workers claim it between
    /// runs.
    side_state: AtomicU64,
    side_job: AtomicPtr<Job<'static>>,
    side_done: AtomicUsize,
    /// Whether a task of the work beside the runs panicked.
    side_panicked: AtomicBool,
}

impl Shared {
    /// Claims the next task of run `generation`, if that run still has one;
    /// returns it with the run's task count.
    fn claim(&self, generation: u64) -> Option<(usize, usize)> {
        claim_of(&self.state, generation)
    }

    /// Claims and runs tasks of the work beside the runs, if any is left;
    /// returns whether it ran one. For an idle worker, and for the caller
    /// of [`ThreadPool::run_beside`] finishing it.
    fn side_work(&self) -> bool {
        let generation = self.side_state.load(Ordering::Acquire) >> (2 * FIELD);
        let mut ran = false;
        while let Some((t, _)) = claim_of(&self.side_state, generation) {
            ran = true;
            // SAFETY: as in `work`: a successful claim is a task of the side
            // work in progress, whose caller waits in `run_beside` for every
            // task's `side_done` increment, with the job alive on its stack;
            // it stored the job before the state.
            let task = unsafe { (*self.side_job.load(Ordering::Acquire)).task };
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(t))) {
                std::mem::forget(payload);
                self.side_panicked.store(true, Ordering::Relaxed);
            }
            self.side_done.fetch_add(1, Ordering::AcqRel);
            // Back to the runs as soon as one has tasks left.
            let state = self.state.load(Ordering::Acquire);
            if state & MASK < (state >> FIELD) & MASK {
                break;
            }
        }
        ran
    }

    /// The caller's wait for the workers' last tasks of a run of `n_tasks`:
    /// spins briefly, then blocks until the last one unparks it.
    fn wait_for(&self, n_tasks: usize) {
        let start = Instant::now();
        let mut spins = 0u32;
        while self.done.load(Ordering::Acquire) < n_tasks {
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(SPINS_PER_CLOCK_CHECK) || start.elapsed() < CALLER_SPIN {
                std::hint::spin_loop();
                continue;
            }
            {
                let mut caller = lock(&self.caller);
                if caller.as_ref().map(Thread::id) != Some(thread::current().id()) {
                    *caller = Some(thread::current());
                }
            }
            self.caller_blocked.store(true, Ordering::SeqCst);
            if self.done.load(Ordering::SeqCst) < n_tasks {
                thread::park();
            }
            self.caller_blocked.store(false, Ordering::SeqCst);
        }
    }

    /// Claims and runs tasks of run `generation` until none are left;
    /// returns how many this thread ran.
    ///
    /// The job is loaded after each successful claim, never before. Loading
    /// it once, on seeing a new generation, and then claiming would race:
    /// the generation has only 24 bits, so a worker descheduled between that
    /// load and a claim while 2^24 runs went by could find the generation
    /// back at its old value with another run under way, claim a task of
    /// that run, and call the old run's job, long gone from its caller's
    /// stack. Loaded after the claim, the job is always the claimed run's: a
    /// successful claim, whatever run the worker thought it was in, is a task
    /// of the run in progress, whose job is the one stored (see below).
    fn work(&self, generation: u64) -> usize {
        let mut ran = 0;
        while let Some((t, n_tasks)) = self.claim(generation) {
            ran += 1;
            let job = self.job.load(Ordering::Acquire);
            // SAFETY: the claim read, from the state stored by this run's
            // `run` (Acquire, through the chain of claims), a task not yet
            // done; so the run is unfinished and its caller is still waiting
            // in `run`, with the job alive on its stack. That caller stored
            // the job before the state, so `job` is it: no later run can
            // store another before this task's `done` increment below lets
            // the current run finish.
            let task = unsafe { (*job).task };
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(t))) {
                // Leak the payload: one whose drop panics would unwind out of
                // here while other threads still use the job.
                std::mem::forget(payload);
                self.panicked.store(true, Ordering::Relaxed);
            }
            // SeqCst, paired with the caller's store of `caller_blocked`
            // then load of `done`: either it sees this task done, or this
            // thread sees it blocked and wakes it.
            if self.done.fetch_add(1, Ordering::SeqCst) + 1 == n_tasks && self.caller_blocked.load(Ordering::SeqCst) {
                // The caller cannot leave `run` (nor start another) before
                // it sees `done` complete, so the thread stored is this
                // run's caller; a late unpark of it would only make one
                // later `park` return early, which every park loop allows.
                if let Some(caller) = lock(&self.caller).as_ref() {
                    caller.unpark();
                }
            }
        }
        ran
    }
}

/// Claims the next task of the run of `generation` packed in `state` (see
/// [`FIELD`]), if that run still has one; returns it with the run's task
/// count.
fn claim_of(state_word: &AtomicU64, generation: u64) -> Option<(usize, usize)> {
    let mut state = state_word.load(Ordering::Acquire);
    loop {
        let (next, n_tasks) = (state & MASK, (state >> FIELD) & MASK);
        if state >> (2 * FIELD) != generation || next >= n_tasks {
            return None;
        }
        match state_word.compare_exchange_weak(state, state + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some((next as usize, n_tasks as usize)),
            Err(now) => state = now,
        }
    }
}

/// Announces a job of `n_tasks` tasks on `state`, whose `job` and finished
/// count `done` go with it (a run's, or the side work's): the job and the
/// count are stored before the state that makes the tasks claimable, under
/// a new generation, which it returns. The generation wraps within its 24
/// bits: it only has to differ from the previous job's (`Shared::work`
/// says why a wrap is safe).
fn announce(
    state: &AtomicU64,
    job: &AtomicPtr<Job<'static>>,
    done: &AtomicUsize,
    job_ptr: *mut Job<'static>,
    n_tasks: usize,
) -> u64 {
    job.store(job_ptr, Ordering::SeqCst);
    done.store(0, Ordering::SeqCst);
    let generation = ((state.load(Ordering::Relaxed) >> (2 * FIELD)) + 1) & GENERATION_MASK;
    state.store(generation << (2 * FIELD) | (n_tasks as u64) << FIELD, Ordering::SeqCst);
    generation
}

/// Locks `mutex`, ignoring poisoning: the data it guards stays valid
/// whatever panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Worker threads that, with the calling thread, run a task on indices
/// `0..n_tasks`.
pub struct ThreadPool {
    n_threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises `run` calls from different threads, and holds the
    /// caller's tally of its workers.
    health: Mutex<Health>,
    /// Run everything on the calling thread ([`ThreadPool::set_alone`]).
    alone: AtomicBool,
    /// A [`ThreadPool::run_beside`] is under way.
    beside: AtomicBool,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("n_threads", &self.n_threads)
            .finish()
    }
}

impl ThreadPool {
    /// A pool of `n_threads` threads in all, counting the caller's: `1` runs
    /// everything on the calling thread and starts no workers. `0` means one
    /// per available CPU.
    ///
    /// # Panics
    /// If the operating system cannot start a thread.
    pub fn new(n_threads: usize) -> Self {
        let n_threads = match n_threads {
            0 => available_cpus(),
            n => n,
        };
        let n_workers = n_threads - 1;
        // Take note of the CPUs before anything here pins this thread to one
        // of them: the workers inherit this thread's affinity, so they must
        // not read theirs.
        available_cpus();
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            caller_blocked: AtomicBool::new(false),
            caller: Mutex::new(None),
            panicked: AtomicBool::new(false),
            sleeping: (0..n_workers).map(|_| AtomicBool::new(false)).collect(),
            shutdown: AtomicBool::new(false),
            started: AtomicUsize::new(0),
            side_state: AtomicU64::new(0),
            side_job: AtomicPtr::new(std::ptr::null_mut()),
            side_done: AtomicUsize::new(0),
            side_panicked: AtomicBool::new(false),
        });
        let workers = (0..n_workers)
            .map(|w| {
                let shared = Arc::clone(&shared);
                thread::Builder::new()
                    .name(format!("backprop-worker-{}", w + 1))
                    .spawn(move || worker(&shared, w))
                    .expect("failed to start a worker thread")
            })
            .collect();
        // Wait for the workers to start: their start-up (pinning) allocates,
        // and must not fall inside the caller's first steps, which on a busy
        // machine it could, long after `new` returned.
        while shared.started.load(Ordering::Acquire) < n_workers {
            thread::yield_now();
        }
        Self {
            n_threads,
            shared,
            workers,
            health: Mutex::new(Health::new()),
            alone: AtomicBool::new(false),
            beside: AtomicBool::new(false),
        }
    }

    /// Which thread of a pool the calling thread is: `w + 1` on worker `w`
    /// of any pool, 0 on every other thread (a caller of
    /// [`ThreadPool::run`] runs its share of the tasks as thread 0). For
    /// tasks that keep scratch memory per thread rather than per task, so
    /// that it stays in one core's caches instead of moving to whichever
    /// core claims the task next.
    pub fn thread_index() -> usize {
        THREAD_INDEX.get()
    }

    /// The number of threads, the caller's included.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Keeps the calling thread on the first CPU this process may use, the
    /// one the workers leave free (see the module docs), so the OS cannot
    /// put it on a spinning worker's core. For programs that own their main
    /// thread, like the `backprop` CLI; a library should leave its caller's
    /// affinity alone. Does nothing for a pool of one thread, or where
    /// affinity is not supported.
    pub fn pin_caller(&self) {
        available_cpus();
        if self.n_threads > 1 {
            pin_to_cpu_index(0);
        }
    }

    /// With `true`, runs every task on the calling thread, as a pool of one
    /// thread would, until set back to `false`; the workers park. Results
    /// do not change: which thread runs a task never changes its result.
    /// For a caller that measures whether the other threads pay off (the
    /// trainer of `backprop-nn` times its steps both ways).
    pub fn set_alone(&self, alone: bool) {
        self.alone.store(alone, Ordering::Relaxed);
    }

    /// The threads that take part in a run now: 1 while
    /// [`ThreadPool::set_alone`] holds, else [`ThreadPool::n_threads`].
    /// Kernels size their split of the work by it, so a pool set alone
    /// works exactly as a pool of one thread (the same bits either way).
    pub fn active_threads(&self) -> usize {
        if self.is_alone() { 1 } else { self.n_threads }
    }

    /// Whether [`ThreadPool::set_alone`] has the calling thread run
    /// everything.
    pub fn is_alone(&self) -> bool {
        self.alone.load(Ordering::Relaxed)
    }

    /// How many runs so far went on the calling thread alone because the
    /// workers were costing more time than they saved (see the module docs).
    pub fn runs_alone(&self) -> u64 {
        lock(&self.health).solo_total()
    }

    /// Unparks the workers that are parked (or about to park).
    fn wake_sleepers(&self) {
        for (w, sleeping) in self.shared.sleeping.iter().enumerate() {
            if sleeping.load(Ordering::SeqCst) {
                self.workers[w].thread().unpark();
            }
        }
    }

    /// Runs `main` on the calling thread while the pool's other threads,
    /// whenever they are idle (between the runs `main` makes, or all along
    /// if it makes none), run `side(t)` for `t` in `0..n_side`; then runs on
    /// the calling thread whatever side tasks are left, and returns when
    /// all are done, each run exactly once. For work that can be done ahead
    /// (making the next batch of a training loop while this one trains):
    /// threads that would wait for the caller's serial work do it instead.
    /// The caller takes side tasks only after `main`, and a worker goes
    /// back to the runs after each side task, so keep side tasks short
    /// (tens of microseconds). Which thread runs a side task must not
    /// change what it does. Allocates nothing.
    ///
    /// With one thread, `main` runs first and then every side task.
    ///
    /// # Panics
    /// If a side task panics (after all have stopped), if `n_side` exceeds
    /// 2^20 - 1, or if called from within `main` or a side task of the same
    /// pool.
    pub fn run_beside<R>(&self, n_side: usize, side: &(dyn Fn(usize) + Sync), main: impl FnOnce() -> R) -> R {
        assert!(
            n_side <= MAX_TASKS,
            "ThreadPool::run_beside: {n_side} tasks exceed {MAX_TASKS}"
        );
        if self.n_threads == 1 || n_side == 0 {
            let out = main();
            (0..n_side).for_each(side);
            return out;
        }
        assert!(
            !self.beside.swap(true, Ordering::Acquire),
            "ThreadPool::run_beside: called within run_beside on the same pool"
        );
        let shared = &*self.shared;
        let job = Job { task: side };
        // SAFETY: only the lifetime is erased; workers dereference the job
        // only after claiming one of its tasks, and this function returns
        // only once every task is done (below), even if `main` panics.
        let job_ptr = unsafe { std::mem::transmute::<*const Job<'_>, *mut Job<'static>>(&job) };
        announce(&shared.side_state, &shared.side_job, &shared.side_done, job_ptr, n_side);
        self.wake_sleepers();
        /// Finishes the side work when dropped, so that it is finished
        /// however `main` ends.
        struct Finish<'p>(&'p ThreadPool, usize);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                let (pool, n_side) = (self.0, self.1);
                let shared = &*pool.shared;
                shared.side_work();
                // The workers' last side tasks: short, so spin (yielding, in
                // case a worker waits for this CPU).
                while shared.side_done.load(Ordering::Acquire) < n_side {
                    thread::yield_now();
                }
                pool.beside.store(false, Ordering::Release);
            }
        }
        let finish = Finish(self, n_side);
        let out = main();
        drop(finish);
        if shared.side_panicked.swap(false, Ordering::Relaxed) {
            panic!("a side task of ThreadPool::run_beside panicked");
        }
        out
    }

    /// Runs `task(t)` for every `t` in `0..n_tasks`, each exactly once on
    /// some thread of the pool, and returns when all are done. Allocates
    /// nothing (after the first time the calling thread has had to block).
    ///
    /// # Panics
    /// If a task panics (after all tasks have stopped), or `n_tasks` exceeds
    /// 2^20 - 1. A task must not call `run` on the same pool.
    pub fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        assert!(
            n_tasks <= MAX_TASKS,
            "ThreadPool::run: {n_tasks} tasks exceed {MAX_TASKS}"
        );
        if self.n_threads == 1 || n_tasks <= 1 || self.is_alone() {
            (0..n_tasks).for_each(task);
            return;
        }
        let mut health = lock(&self.health);
        if health.run_alone() {
            (0..n_tasks).for_each(task);
            return;
        }
        let shared = &*self.shared;
        let job = Job { task };
        // SAFETY: only the lifetime is erased; workers dereference the job
        // only while this run is unfinished, and this function does not
        // return before it is finished.
        let job_ptr = unsafe { std::mem::transmute::<*const Job<'_>, *mut Job<'static>>(&job) };
        let generation = announce(&shared.state, &shared.job, &shared.done, job_ptr, n_tasks);
        self.wake_sleepers();
        let start = Instant::now();
        let mine = shared.work(generation);
        let own = start.elapsed();
        let waited = if mine == n_tasks {
            Duration::ZERO
        } else {
            shared.wait_for(n_tasks);
            start.elapsed() - own
        };
        health.record(n_tasks, mine, own, waited);
        if shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a task of ThreadPool::run panicked");
        }
    }
}

thread_local! {
    /// [`ThreadPool::thread_index`] of this thread.
    static THREAD_INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn worker(shared: &Shared, w: usize) {
    THREAD_INDEX.set(w + 1);
    pin_to_cpu_index(w + 1);
    shared.started.fetch_add(1, Ordering::Release);
    let mut seen = 0u64;
    loop {
        let mut spins = 0u32;
        let mut idle_since = std::time::Instant::now();
        let generation = loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            let generation = shared.state.load(Ordering::Acquire) >> (2 * FIELD);
            if generation != seen {
                break generation;
            }
            if shared.side_work() {
                idle_since = std::time::Instant::now();
                continue;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(SPINS_PER_CLOCK_CHECK) || idle_since.elapsed() < SPIN_BEFORE_PARK {
                std::hint::spin_loop();
            } else {
                // Announce the nap, then look once more: either `run` sees
                // the flag and unparks us, or we see its new generation.
                shared.sleeping[w].store(true, Ordering::SeqCst);
                let now = shared.state.load(Ordering::SeqCst) >> (2 * FIELD);
                let side = shared.side_state.load(Ordering::SeqCst);
                let side_left = side & MASK < (side >> FIELD) & MASK;
                if now == seen && !side_left && !shared.shutdown.load(Ordering::SeqCst) {
                    thread::park();
                }
                shared.sleeping[w].store(false, Ordering::SeqCst);
                idle_since = std::time::Instant::now();
            }
        };
        seen = generation;
        shared.work(generation);
    }
}

/// The CPUs this process may use, as they were the first time a pool was
/// made or pinned: later, [`ThreadPool::pin_caller`] has narrowed the calling
/// thread's affinity to one CPU, and threads it starts inherit that.
#[cfg(target_os = "linux")]
fn process_cpus() -> &'static [usize] {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| {
        // SAFETY: the cpu_set_t is plain data owned here, and the call only
        // writes it.
        unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &allowed))
                .collect()
        }
    })
}

/// How many threads a pool of "one per CPU" gets: the CPUs this process may
/// use (as [`process_cpus`] first saw them, so a pinned caller still counts
/// them all), and no more than the standard library allows (which also
/// counts cgroup quotas), both taken once.
fn available_cpus() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        let std = thread::available_parallelism().map_or(1, |n| n.get());
        #[cfg(target_os = "linux")]
        if !process_cpus().is_empty() {
            return process_cpus().len().min(std);
        }
        std
    })
}

/// Keeps the calling thread on the `index`-th CPU this process may use
/// (worker `w` on the `w + 1`-th, leaving the first to the caller). Left to
/// itself, Linux tends to run a worker on the core of the thread that woke
/// it, where the two then take turns and a parallel step runs at half speed.
/// With fewer CPUs than threads, the threads past them may run on any of
/// the process's CPUs (a worker started by a pinned caller would otherwise
/// keep its caller's one CPU). Best effort: on failure the thread stays as
/// it is.
#[cfg(target_os = "linux")]
fn pin_to_cpu_index(index: usize) {
    let cpus = process_cpus();
    let mine = match cpus.get(index) {
        Some(cpu) => std::slice::from_ref(cpu),
        None => cpus,
    };
    if mine.is_empty() {
        return;
    }
    // SAFETY: the cpu_set_t is plain data owned here, and the call only
    // reads it and sets this thread's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in mine {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to_cpu_index(_index: usize) {}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for worker in self.workers.drain(..) {
            worker.thread().unpark();
            let _ = worker.join();
        }
    }
}

/// A raw pointer that tasks on several threads may use, each on its own
/// disjoint part of the pointee.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SharedMut<T>(pub(crate) *mut T);

impl<T> SharedMut<T> {
    /// The pointer. (A method, so closures capture the whole `SharedMut`,
    /// which is `Sync`, rather than its raw field.)
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: users of `SharedMut` guarantee that tasks write disjoint elements.
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedMut<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_exactly_once() {
        for n_threads in [1, 2, 3] {
            let pool = ThreadPool::new(n_threads);
            for n_tasks in [0, 1, 2, 5, 64, 1000] {
                let counts: Vec<AtomicU32> = (0..n_tasks).map(|_| AtomicU32::new(0)).collect();
                pool.run(n_tasks, &|t| {
                    counts[t].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    counts.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                    "{n_threads} threads, {n_tasks} tasks"
                );
            }
        }
    }

    /// Tasks learn which thread runs them: the caller is 0, worker `w` is
    /// `w + 1`, each thread keeps its index across runs, and the threads
    /// of a run have distinct indices.
    #[test]
    fn each_thread_knows_its_index() {
        assert_eq!(ThreadPool::thread_index(), 0);
        let pool = ThreadPool::new(3);
        let thread_of_index: Vec<Mutex<Option<thread::ThreadId>>> = (0..3).map(|_| Mutex::new(None)).collect();
        // Until a worker has run a task (the pool may run alone for a while
        // on a machine too busy for its workers), at least 200 runs.
        for run in 0..20_000 {
            if run >= 200 && thread_of_index[1..].iter().any(|i| i.lock().unwrap().is_some()) {
                break;
            }
            pool.run(64, &|_| {
                let index = ThreadPool::thread_index();
                let mut seen = thread_of_index[index].lock().unwrap();
                assert_eq!(*seen.get_or_insert(thread::current().id()), thread::current().id());
                // Busy for a moment, so that the workers get tasks too.
                std::hint::black_box((0..2000u32).fold(0u32, |a, b| a.wrapping_mul(31) ^ b));
            });
        }
        assert_eq!(*thread_of_index[0].lock().unwrap(), Some(thread::current().id()));
        let ids: Vec<_> = thread_of_index.iter().filter_map(|i| *i.lock().unwrap()).collect();
        let mut distinct = ids.clone();
        distinct.sort_by_key(|id| format!("{id:?}"));
        distinct.dedup();
        assert_eq!(distinct.len(), ids.len(), "two threads share an index");
        assert!(ids.len() >= 2, "no worker ran a task in 20,000 runs of 64");
    }

    /// The CPUs the calling thread may run on now.
    #[cfg(target_os = "linux")]
    fn my_cpus() -> Vec<usize> {
        // SAFETY: plain data owned here; the call only writes it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }

    /// A pool made after another pinned the caller to one CPU still puts
    /// its worker on a CPU of its own, not on the caller's (which its thread
    /// inherits), and "one thread per CPU" still counts every CPU.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_pool_made_after_pinning_the_caller_still_spreads_out() {
        if process_cpus().len() < 2 || available_cpus() < 2 {
            eprintln!("skipped: fewer than 2 CPUs");
            return;
        }
        // On a thread of its own, whose affinity this may change.
        thread::spawn(|| {
            let first = ThreadPool::new(2);
            first.pin_caller();
            let caller = my_cpus();
            assert_eq!(caller.len(), 1);
            let later = ThreadPool::new(2);
            let worker_cpus = Mutex::new(None);
            for _ in 0..20_000 {
                if worker_cpus.lock().unwrap().is_some() {
                    break;
                }
                later.run(8, &|_| {
                    if ThreadPool::thread_index() == 1 {
                        *worker_cpus.lock().unwrap() = Some(my_cpus());
                    }
                    std::hint::black_box((0..2000u32).fold(0u32, |a, b| a.wrapping_mul(31) ^ b));
                });
            }
            let worker = worker_cpus.into_inner().unwrap().expect("the worker ran a task");
            assert_eq!(worker.len(), 1, "the worker is pinned");
            assert_ne!(worker, caller, "the worker shares the caller's CPU");
            assert_eq!(ThreadPool::new(0).n_threads(), available_cpus());
        })
        .join()
        .unwrap();
    }

    /// Spends a few microseconds.
    fn busy(units: u32) -> u32 {
        std::hint::black_box((0..units * 1000).fold(0u32, |a, b| a.wrapping_mul(31) ^ b))
    }

    /// Side work runs each task exactly once, whatever `main` does (runs of
    /// its own, or nothing), on pools of 1 to 3 threads, and `main`'s result
    /// comes back; with more than one thread, idle workers take side tasks
    /// while `main` is busy.
    #[test]
    fn side_work_runs_each_task_once_and_workers_take_it_while_main_is_busy() {
        for n_threads in [1, 2, 3] {
            let pool = ThreadPool::new(n_threads);
            let mut by_worker = 0;
            for round in 0..400 {
                let n_side = [0, 1, 7, 64][round % 4];
                let counts: Vec<AtomicU32> = (0..n_side).map(|_| AtomicU32::new(0)).collect();
                let workers = AtomicU32::new(0);
                let runs: Vec<AtomicU32> = (0..16).map(|_| AtomicU32::new(0)).collect();
                let out = pool.run_beside(
                    n_side,
                    &|t| {
                        counts[t].fetch_add(1, Ordering::Relaxed);
                        if ThreadPool::thread_index() != 0 {
                            workers.fetch_add(1, Ordering::Relaxed);
                        }
                        busy(2);
                    },
                    || {
                        if round % 2 == 0 {
                            // Serial work, then runs of its own.
                            busy(20);
                            pool.run(16, &|t| {
                                runs[t].fetch_add(1, Ordering::Relaxed);
                                busy(1);
                            });
                        }
                        round * 3
                    },
                );
                assert_eq!(out, round * 3);
                assert!(
                    counts.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                    "{n_threads} threads"
                );
                if round % 2 == 0 {
                    assert!(runs.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                }
                by_worker += workers.load(Ordering::Relaxed);
                if n_threads == 1 {
                    assert_eq!(workers.load(Ordering::Relaxed), 0);
                }
            }
            if n_threads > 1 {
                assert!(by_worker > 0, "{n_threads} threads: no worker took a side task");
            }
        }
    }

    /// A panicking side task panics the caller once every side task has
    /// run; so does a panicking `main`, after finishing the side work; and
    /// the pool works on.
    #[test]
    fn panics_in_side_work_or_main_come_back_after_the_side_work_is_done() {
        let pool = ThreadPool::new(2);
        for main_panics in [false, true] {
            let counts: Vec<AtomicU32> = (0..32).map(|_| AtomicU32::new(0)).collect();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.run_beside(
                    32,
                    &|t| {
                        counts[t].fetch_add(1, Ordering::Relaxed);
                        assert!(main_panics || t != 5, "side task 5 fails");
                    },
                    || {
                        busy(10);
                        assert!(!main_panics, "main fails");
                    },
                )
            }));
            assert!(result.is_err());
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        }
        let ran = AtomicU32::new(0);
        pool.run_beside(
            4,
            &|_| {
                ran.fetch_add(1, Ordering::Relaxed);
            },
            || {
                pool.run(4, &|_| {
                    busy(1);
                })
            },
        );
        assert_eq!(ran.load(Ordering::Relaxed), 4);
    }

    #[test]
    #[should_panic(expected = "called within run_beside on the same pool")]
    fn side_work_does_not_nest() {
        let pool = ThreadPool::new(2);
        pool.run_beside(1, &|_| {}, || pool.run_beside(1, &|_| {}, || ()));
    }

    #[test]
    fn many_tiny_runs_across_the_generation_wrap_run_each_task_once() {
        let pool = ThreadPool::new(3);
        // Start just below the wrap of the generation, so the runs cross it.
        // (Nothing is running: the state only names an empty, finished run.)
        pool.shared
            .state
            .store((GENERATION_MASK - 50) << (2 * FIELD), Ordering::SeqCst);
        let counts: Vec<AtomicU32> = (0..13).map(|_| AtomicU32::new(0)).collect();
        for call in 0..20_000usize {
            let n_tasks = call * 7 % 13;
            pool.run(n_tasks, &|t| {
                counts[t].fetch_add(1, Ordering::Relaxed);
            });
            for (t, count) in counts.iter().enumerate() {
                assert_eq!(
                    count.swap(0, Ordering::Relaxed),
                    u32::from(t < n_tasks),
                    "call {call}: task {t} of {n_tasks}"
                );
            }
        }
        assert!(pool.shared.state.load(Ordering::SeqCst) >> (2 * FIELD) < 20_000);
    }

    #[test]
    fn workers_take_part() {
        let pool = ThreadPool::new(2);
        let caller = thread::current().id();
        let elsewhere = AtomicU32::new(0);
        // Slow tasks, so the worker wakes before the caller has done them all.
        pool.run(64, &|_| {
            thread::sleep(std::time::Duration::from_millis(1));
            if thread::current().id() != caller {
                elsewhere.fetch_add(1, Ordering::Relaxed);
            }
        });
        assert!(elsewhere.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn many_runs_in_a_row_and_after_parking() {
        let pool = ThreadPool::new(2);
        let total = AtomicU32::new(0);
        for _ in 0..2000 {
            pool.run(4, &|t| {
                total.fetch_add(t as u32, Ordering::Relaxed);
            });
        }
        assert_eq!(total.load(Ordering::Relaxed), 2000 * 6);
        // Let the worker park, then wake it.
        thread::sleep(std::time::Duration::from_millis(50));
        pool.run(2, &|t| {
            total.fetch_add(t as u32, Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 2000 * 6 + 1);
    }

    #[test]
    fn a_worker_that_stalls_the_caller_is_left_out_and_every_task_still_runs() {
        let pool = ThreadPool::new(2);
        let caller = thread::current().id();
        let on_worker = AtomicU32::new(0);
        let ran = AtomicU32::new(0);
        // A task is 50 us of work, but the worker holds each one it claims
        // for 2 ms, as a descheduled thread looks to the caller.
        let task = |_| {
            ran.fetch_add(1, Ordering::Relaxed);
            if thread::current().id() == caller {
                let start = Instant::now();
                while start.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
            } else {
                on_worker.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(2));
            }
        };
        let runs = 200;
        for _ in 0..runs {
            pool.run(4, &task);
        }
        assert_eq!(ran.load(Ordering::Relaxed), 4 * runs);
        // After a window of such runs the pool runs alone, so the worker ran
        // tasks in at most the first window's runs.
        assert!(pool.runs_alone() >= 100, "{} runs alone", pool.runs_alone());
        assert!(on_worker.load(Ordering::Relaxed) <= 4 * 64);
    }

    #[test]
    fn set_alone_runs_every_task_on_the_caller_until_set_back() {
        let pool = ThreadPool::new(2);
        let caller = thread::current().id();
        let elsewhere = AtomicU32::new(0);
        let task = |_| {
            thread::sleep(Duration::from_millis(1));
            if thread::current().id() != caller {
                elsewhere.fetch_add(1, Ordering::Relaxed);
            }
        };
        pool.set_alone(true);
        assert!(pool.is_alone());
        pool.run(16, &task);
        assert_eq!(elsewhere.load(Ordering::Relaxed), 0);
        pool.set_alone(false);
        pool.run(64, &task);
        assert!(elsewhere.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(2, &|t| assert!(t != 1, "task 1 fails"));
        }));
        assert!(result.is_err());
        let ran = AtomicU32::new(0);
        pool.run(2, &|_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }
}
