//! Whether training steps run faster on the pool's threads or on the
//! calling thread alone, decided by timing them both ways.
//!
//! Threads pay off only when they can share data cheaply: each step moves
//! the weights, their gradients and the activations between the threads'
//! caches. On a virtual machine whose CPUs the host places far apart some
//! of the time (this project's machines: a cache line between the two takes
//! about 350 ns instead of 55, for seconds or minutes at a stretch), that
//! traffic makes a two-thread step of the seed network twice as slow as a
//! one-thread step. Which thread computes what never changes a bit, so the
//! trainer is free to choose: every so often it times a window of steps in
//! its current mode, then a window in the other, and keeps the faster. While
//! the choice holds, the probes grow rarer; when it flips, they come often
//! again.

use backprop_tensor::ThreadPool;

/// Steps per timed window: several steps, so one slow step (the OS taking
/// the CPU for a moment) does not decide, judged by the median.
const WINDOW: usize = 16;
/// Steps before the first probe.
const FIRST: u32 = 16;
/// Steps between probes after a change of mode.
const MIN_INTERVAL: u32 = 256;
/// Most steps between probes, so a change in the machine is noticed within
/// a few seconds of training.
const MAX_INTERVAL: u32 = 2048;
/// How much faster the other mode must be to switch to it.
const MARGIN: f32 = 0.05;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Untimed steps in the current mode; so many left.
    Running(u32),
    /// Timing the current mode.
    Measuring,
    /// Timing the other mode.
    Probing,
}

/// The trainer's choice between the pool's threads and its calling thread
/// alone (see the module docs). Allocates nothing.
#[derive(Clone, Debug)]
pub(crate) struct ThreadChoice {
    alone: bool,
    phase: Phase,
    interval: u32,
    current: [f32; WINDOW],
    other: [f32; WINDOW],
    filled: usize,
    /// Tests only: switch mode on every step, whatever the times.
    #[cfg(test)]
    flip_every_step: bool,
}

impl ThreadChoice {
    pub(crate) fn new() -> Self {
        Self {
            alone: false,
            phase: Phase::Running(FIRST),
            interval: MIN_INTERVAL,
            current: [0.0; WINDOW],
            other: [0.0; WINDOW],
            filled: 0,
            #[cfg(test)]
            flip_every_step: false,
        }
    }

    /// A choice that switches between threads and alone on every step, to
    /// test that switching changes no bit.
    #[cfg(test)]
    pub(crate) fn flipping() -> Self {
        Self {
            flip_every_step: true,
            ..Self::new()
        }
    }

    /// Whether the next step should run on the calling thread alone.
    pub(crate) fn next_alone(&self) -> bool {
        self.alone ^ (self.phase == Phase::Probing)
    }

    /// Sets `pool` for the next step.
    pub(crate) fn apply(&self, pool: &ThreadPool) {
        if pool.n_threads() > 1 {
            pool.set_alone(self.next_alone());
        }
    }

    /// Records that the step just run took `seconds`.
    pub(crate) fn record(&mut self, seconds: f32) {
        #[cfg(test)]
        if self.flip_every_step {
            self.alone = !self.alone;
            return;
        }
        match self.phase {
            Phase::Running(0) => {
                self.phase = Phase::Measuring;
                self.filled = 0;
                self.record(seconds);
            }
            Phase::Running(left) => self.phase = Phase::Running(left - 1),
            Phase::Measuring => {
                self.current[self.filled] = seconds;
                self.filled += 1;
                if self.filled == WINDOW {
                    self.phase = Phase::Probing;
                    self.filled = 0;
                }
            }
            Phase::Probing => {
                self.other[self.filled] = seconds;
                self.filled += 1;
                if self.filled == WINDOW {
                    self.decide();
                }
            }
        }
    }

    fn decide(&mut self) {
        let (current, other) = (median(&mut self.current), median(&mut self.other));
        if other < current * (1.0 - MARGIN) {
            self.alone = !self.alone;
            self.interval = MIN_INTERVAL;
        } else {
            self.interval = (self.interval * 2).min(MAX_INTERVAL);
        }
        self.phase = Phase::Running(self.interval);
    }
}

fn median(times: &mut [f32; WINDOW]) -> f32 {
    times.sort_unstable_by(f32::total_cmp);
    times[WINDOW / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `steps` steps whose time is `time(alone)`, returning the share
    /// of them run alone.
    fn run(choice: &mut ThreadChoice, steps: usize, time: impl Fn(bool) -> f32) -> f32 {
        let mut alone = 0;
        for _ in 0..steps {
            let a = choice.next_alone();
            alone += usize::from(a);
            choice.record(time(a));
        }
        alone as f32 / steps as f32
    }

    #[test]
    fn keeps_the_threads_while_they_pay_and_probes_ever_less() {
        let mut choice = ThreadChoice::new();
        let share = run(&mut choice, 20_000, |alone| if alone { 2.0 } else { 1.0 });
        assert!(!choice.alone);
        assert!(share < 0.015, "{share} of the steps probed alone");
        assert_eq!(choice.interval, MAX_INTERVAL);
    }

    #[test]
    fn goes_alone_soon_when_threads_are_slower_and_comes_back_when_they_recover() {
        let mut choice = ThreadChoice::new();
        run(&mut choice, (FIRST as usize) + 2 * WINDOW, |alone| {
            if alone { 1.0 } else { 2.0 }
        });
        assert!(choice.alone, "alone after the first probe");
        let share = run(&mut choice, 5_000, |alone| if alone { 1.0 } else { 2.0 });
        assert!(share > 0.98, "{share}");
        // The machine recovers: threads twice as fast again.
        run(&mut choice, 2 * MAX_INTERVAL as usize + 4 * WINDOW, |alone| {
            if alone { 2.0 } else { 1.0 }
        });
        assert!(!choice.alone);
    }

    #[test]
    fn a_tie_or_one_slow_step_changes_nothing() {
        let mut choice = ThreadChoice::new();
        let mut step = 0;
        let mut time = |_alone: bool| {
            step += 1;
            // Equal modes, with a spike now and then.
            if step % 7 == 0 { 50.0 } else { 1.0 }
        };
        let mut alone = 0;
        for _ in 0..10_000 {
            let a = choice.next_alone();
            alone += usize::from(a);
            choice.record(time(a));
        }
        assert!(!choice.alone);
        assert!(alone < 200, "{alone}");
    }
}
