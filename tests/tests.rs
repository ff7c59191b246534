//! Cross-crate tests: data loading, training and evaluation together, on
//! synthetic IDX files.

// Every corruption of a real checkpoint file is refused; no bytes panic the loader.
mod checkpoint_files;
// Same seed, same weights bit for bit; different seeds differ.
mod determinism;
// Save, load and resume: a resumed run is bit-identical to an uninterrupted one.
mod resume;
// Training on a learnable synthetic problem converges; data that does not
// fit the network is refused.
mod training;
// One, two and three threads give bit-identical weights.
mod threads;
