//! Criterion bench of one image's distortion, as on-the-fly augmentation
//! makes it for every training image of every epoch: a 28x28 digit-like
//! image (a ring of ink, 3 pixels wide) under `recipes/mnist-best.toml`'s
//! distortions (`shift=2,rotate=10,scale=0.1,shear=8,elastic=34:4`), under
//! the same without the elastic field, and under the `digits` preset.
//!
//! `cargo bench -p backprop-data --bench augment`.

use backprop_data::{Augment, Scratch};
use backprop_tensor::Rng;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const SIDE: usize = 28;

/// A ring of ink around the centre: radii 6 to 9, full intensity.
fn ring() -> Vec<u8> {
    let centre = (SIDE as f32 - 1.0) / 2.0;
    (0..SIDE * SIDE)
        .map(|i| {
            let (r, c) = ((i / SIDE) as f32 - centre, (i % SIDE) as f32 - centre);
            let d = (r * r + c * c).sqrt();
            if (6.0..=9.0).contains(&d) { 255 } else { 0 }
        })
        .collect()
}

fn distortions(c: &mut Criterion) {
    let src = ring();
    let mut dst = vec![0u8; SIDE * SIDE];
    let mut scratch = Scratch::new(SIDE, SIDE);
    let mut rng = Rng::seed_from_u64(1);
    for (name, spec) in [
        ("mnist-best", "shift=2,rotate=10,scale=0.1,shear=8,elastic=34:4"),
        ("mnist-best without elastic", "shift=2,rotate=10,scale=0.1,shear=8"),
    ] {
        let augment: Augment = spec.parse().expect("a valid spec");
        c.bench_function(&format!("distort one 28x28 image, {name}"), |b| {
            b.iter(|| augment.apply(black_box(&src), &mut dst, SIDE, SIDE, &mut rng, &mut scratch))
        });
    }
    let digits = Augment::digits();
    c.bench_function("distort one 28x28 image, digits preset", |b| {
        b.iter(|| digits.apply(black_box(&src), &mut dst, SIDE, SIDE, &mut rng, &mut scratch))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = distortions
}
criterion_main!(benches);
