//! Whether the pool's workers are worth waiting for.
//!
//! Work is claimed task by task, so a worker that runs slowly simply claims
//! fewer tasks. What claiming cannot absorb is a worker the OS (or the
//! hypervisor under a virtual machine) deschedules while it holds a task:
//! the caller has to wait for that task, for as long as the worker is off
//! its CPU, often milliseconds, against a few microseconds of work. On a
//! shared or time-sliced core this happens run after run, and a step on two
//! threads ends up slower than on one.
//!
//! So the caller keeps two sums over a window of runs: what the workers
//! saved it (the tasks they ran, at the caller's own time per task) and how
//! long it waited for them after running out of tasks to claim. When the
//! waiting exceeds the saving, the pool runs the next runs on the caller
//! alone, then tries its workers again, backing off exponentially while they
//! keep costing more than they give. Which thread runs a task never changes
//! its result, so none of this changes a single bit, only where time goes.

use std::time::Duration;

/// Runs per judgement: a few training steps, so one unlucky wait does not
/// decide alone, and a core that stays slow is noticed within milliseconds.
const WINDOW: u32 = 64;
/// Runs alone after the first bad window.
const MIN_SOLO: u32 = 256;
/// The longest stretch alone (about a second or two of training steps), so
/// a core that recovers is back in use soon.
const MAX_SOLO: u32 = 1 << 16;

/// The caller's tally of what its workers cost and give (see the module
/// docs). Lives under the pool's run lock.
#[derive(Debug)]
pub(super) struct Health {
    runs: u32,
    /// Caller time the workers saved in this window, in nanoseconds.
    saved: u64,
    /// Time the caller waited for workers in this window, in nanoseconds.
    waited: u64,
    /// Runs left to run on the caller alone.
    solo_left: u32,
    /// How many runs the next stretch alone lasts.
    next_solo: u32,
    /// Runs that were run alone because of this policy, in all.
    solo_total: u64,
}

impl Health {
    pub(super) const fn new() -> Self {
        Self {
            runs: 0,
            saved: 0,
            waited: 0,
            solo_left: 0,
            next_solo: MIN_SOLO,
            solo_total: 0,
        }
    }

    /// Whether the next run should skip the workers; counts it if so.
    pub(super) fn run_alone(&mut self) -> bool {
        if self.solo_left == 0 {
            return false;
        }
        self.solo_left -= 1;
        self.solo_total += 1;
        true
    }

    /// Runs that skipped the workers so far.
    pub(super) fn solo_total(&self) -> u64 {
        self.solo_total
    }

    /// Records a shared run of `n_tasks` tasks: the caller ran `mine` of
    /// them in `own` time, then waited `waited` for the workers' last ones.
    pub(super) fn record(&mut self, n_tasks: usize, mine: usize, own: Duration, waited: Duration) {
        let per_task = own.as_nanos() as u64 / mine.max(1) as u64;
        self.saved += per_task * (n_tasks - mine) as u64;
        self.waited += waited.as_nanos() as u64;
        self.runs += 1;
        if self.runs < WINDOW {
            return;
        }
        if self.waited > self.saved {
            self.solo_left = self.next_solo;
            self.next_solo = (self.next_solo * 2).min(MAX_SOLO);
        } else {
            self.next_solo = MIN_SOLO;
        }
        self.runs = 0;
        self.saved = 0;
        self.waited = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    /// Feeds `windows` windows of identical runs and returns how many runs
    /// of the following `probe` went alone.
    fn after(health: &mut Health, windows: u32, record: impl Fn(&mut Health)) -> u32 {
        for _ in 0..windows * WINDOW {
            if !health.run_alone() {
                record(health);
            }
        }
        (0..MAX_SOLO * 4).filter(|_| health.run_alone()).count() as u32
    }

    #[test]
    fn helpful_workers_are_kept() {
        let mut health = Health::new();
        // 8 tasks, the caller ran 5 in 50 us, then waited 3 us for the rest.
        let alone = after(&mut health, 10, |h| h.record(8, 5, 50 * US, 3 * US));
        assert_eq!(alone, 0);
        assert_eq!(health.solo_total(), 0);
    }

    #[test]
    fn a_slow_worker_that_still_helps_is_kept() {
        // Half speed: of 8 tasks of 10 us it runs 2-3, and the caller waits
        // up to a task's time for its last one.
        let mut health = Health::new();
        assert_eq!(after(&mut health, 10, |h| h.record(8, 6, 60 * US, 10 * US)), 0);
    }

    #[test]
    fn workers_that_stall_the_caller_are_skipped_with_growing_backoff() {
        let mut health = Health::new();
        // The worker holds one task for 3 ms in every run: far more waiting
        // than the 30 us of work it did.
        let stalled = |h: &mut Health| h.record(8, 5, 50 * US, 3_000 * US);
        assert_eq!(after(&mut health, 1, stalled), MIN_SOLO);
        assert_eq!(after(&mut health, 1, stalled), 2 * MIN_SOLO);
        assert_eq!(after(&mut health, 1, stalled), 4 * MIN_SOLO);
        for _ in 0..20 {
            after(&mut health, 1, stalled);
        }
        assert_eq!(after(&mut health, 1, stalled), MAX_SOLO);
        // A good window resets the backoff.
        assert_eq!(after(&mut health, 1, |h| h.record(8, 4, 40 * US, US)), 0);
        assert_eq!(after(&mut health, 1, stalled), MIN_SOLO);
    }

    #[test]
    fn a_single_long_wait_is_outweighed_by_a_window_of_help() {
        let mut health = Health::new();
        // One wait of 500 us in a window whose runs each saved 200 us.
        let alone = after(&mut health, 1, |h| {
            let waited = if h.runs == 10 { 500 * US } else { 2 * US };
            h.record(8, 4, 200 * US, waited)
        });
        assert_eq!(alone, 0);
    }
}
