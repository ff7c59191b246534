//! Cross-crate tests: data loading, training and evaluation together, on
//! synthetic IDX files.

// Same seed, same weights bit for bit; different seeds differ.
mod determinism;
// Training on a learnable synthetic problem converges; data that does not
// fit the network is refused.
mod training;
