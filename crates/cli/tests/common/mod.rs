//! Helpers shared by the CLI test binaries: run `backprop` as a user would
//! and check how it ended.
// Each test binary uses only some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `backprop` binary built for these tests with `args`.
pub(crate) fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("run backprop")
}

/// A path as a command-line argument.
pub(crate) fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// What the command printed on stderr.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command succeeded; otherwise show its stderr.
#[track_caller]
pub(crate) fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// The command failed with a message containing every needle, and did not
/// panic.
#[track_caller]
pub(crate) fn assert_fails_cleanly(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "must not panic: {err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr should mention {needle:?}: {err}");
    }
}
