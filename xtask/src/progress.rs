//! Rendering download events: a progress bar per file on a terminal, plain
//! lines otherwise (CI logs, pipes).

use std::io::IsTerminal;

use backprop_data::Event;
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) struct Reporter {
    terminal: bool,
    bar: Option<ProgressBar>,
}

impl Reporter {
    pub(crate) fn new() -> Reporter {
        Reporter {
            terminal: std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    pub(crate) fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Present { file, path } => eprintln!("  {file}: present and verified ({})", path.display()),
            Event::Start {
                file,
                origin,
                attempt,
                total,
            } => {
                let retry = if attempt > 1 {
                    format!(" (try {attempt})")
                } else {
                    String::new()
                };
                if self.terminal {
                    let bar = match total {
                        Some(total) => ProgressBar::new(total).with_style(
                            ProgressStyle::with_template(
                                "  {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        ),
                        None => ProgressBar::new_spinner().with_style(
                            ProgressStyle::with_template("  {spinner} {msg} {bytes} {bytes_per_sec}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        ),
                    };
                    bar.set_message(format!("{file}{retry}"));
                    self.bar = Some(bar);
                } else {
                    let size = total.map(|t| format!(", {t} bytes")).unwrap_or_default();
                    eprintln!("  {file}: fetching {origin}{size}{retry}");
                }
            }
            Event::Bytes { done, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                }
            }
            Event::Failed {
                file,
                failure,
                retrying,
                ..
            } => {
                self.clear();
                let next = if retrying {
                    "retrying"
                } else {
                    "giving up on this source"
                };
                eprintln!("  {file}: {failure}; {next}");
            }
            Event::Installed { file, path, origin } => {
                self.clear();
                eprintln!("  {file}: verified, saved as {} (from {origin})", path.display());
            }
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
