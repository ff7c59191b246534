//! A progress bar within an epoch, only when stderr is a terminal: batches
//! done, the running mean loss, examples per second and the time left.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// The bar of one training epoch.
pub(crate) struct EpochBar {
    bar: ProgressBar,
    batch_size: usize,
    n_examples: usize,
    /// Sum of the batch losses, each weighted by its batch's examples.
    loss_sum: f64,
    start: Instant,
}

impl EpochBar {
    /// A bar for an epoch over `n_examples` in batches of `batch_size` on a
    /// terminal, or nothing when stderr is piped.
    pub(crate) fn new(label: &str, batch_size: usize, n_examples: usize) -> Option<EpochBar> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_owned());
        Some(EpochBar {
            bar,
            batch_size,
            n_examples,
            loss_sum: 0.0,
            start: Instant::now(),
        })
    }

    /// Records batch `done` of `total`, whose mean loss was `loss`.
    pub(crate) fn update(&mut self, done: usize, total: usize, loss: f32) {
        let examples = examples_done(done, self.batch_size, self.n_examples);
        let before = examples_done(done.saturating_sub(1), self.batch_size, self.n_examples);
        self.loss_sum += f64::from(loss) * (examples - before) as f64;
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.bar
            .set_message(status(self.loss_sum, examples, self.start.elapsed().as_secs_f64()));
    }

    /// Removes the bar.
    pub(crate) fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// Examples seen after `batches` batches (the last one may be partial).
fn examples_done(batches: usize, batch_size: usize, n_examples: usize) -> usize {
    batches.saturating_mul(batch_size).min(n_examples)
}

/// `loss 0.1234  12345 ex/s`: the running mean loss over `examples`, and
/// the examples per second rounded to an integer.
fn status(loss_sum: f64, examples: usize, seconds: f64) -> String {
    let mean = loss_sum / examples.max(1) as f64;
    let rate = if seconds > 0.0 {
        (examples as f64 / seconds).round()
    } else {
        0.0
    };
    format!("loss {mean:.4}  {rate:.0} ex/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_the_running_mean_and_a_whole_rate() {
        assert_eq!(status(3.0, 4, 0.5), "loss 0.7500  8 ex/s");
        assert_eq!(status(1.0, 3, 2.0), "loss 0.3333  2 ex/s");
        assert_eq!(status(0.0, 0, 0.0), "loss 0.0000  0 ex/s");
        assert_eq!(examples_done(3, 64, 150), 150);
        assert_eq!(examples_done(2, 64, 150), 128);
    }
}
