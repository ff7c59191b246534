//! Sets the `has_avx512` cfg when the compiler has the AVX-512 intrinsics
//! (stable from Rust 1.89), so the crate still builds on its rust-version,
//! 1.88, without the AVX-512 kernel.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_avx512)");
    println!("cargo::rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|minor| minor.parse::<u32>().ok());
    if minor.is_some_and(|minor| minor >= 89) {
        println!("cargo::rustc-cfg=has_avx512");
    }
}
