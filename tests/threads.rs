//! The number of threads does not change the result: one, two and three
//! threads train bit-identical weights.

use backprop_nn::{Mlp, TrainConfig, Trainer};
use backprop_tests::{Synthetic, weight_bytes};

fn train(sizes: Vec<usize>, side: usize, ink: f64, threads: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    Synthetic {
        side,
        ink,
        n_train: 500,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let config = TrainConfig {
        sizes,
        epochs: 2,
        batch_size: 50,
        learning_rate: 0.1,
        seed: 9,
    };
    let mut trainer = Trainer::new(config, data.train.len()).unwrap();
    trainer.set_threads(threads);
    while !trainer.is_done() {
        trainer.train_epoch(&data.train, |_, _| {}).unwrap();
    }
    weight_bytes(trainer.model())
}

#[test]
fn sparse_path_weights_do_not_depend_on_threads() {
    let one = train(vec![256, 64, 10], 16, 0.25, 1);
    assert_eq!(one, train(vec![256, 64, 10], 16, 0.25, 2));
    assert_eq!(one, train(vec![256, 64, 10], 16, 0.25, 3));
}

#[test]
fn dense_path_weights_do_not_depend_on_threads() {
    // Images with ink everywhere are dense; a batch of 50 rows is split
    // between threads in tiles of 4 rows, and 40 and 20 columns take full
    // and partial 16-column tiles.
    let one = train(vec![36, 40, 20, 10], 6, 1.0, 1);
    assert_eq!(one, train(vec![36, 40, 20, 10], 6, 1.0, 2));
    assert_eq!(one, train(vec![36, 40, 20, 10], 6, 1.0, 3));
}

#[test]
fn evaluation_does_not_depend_on_threads() {
    use backprop_nn::evaluate_in;
    use backprop_tensor::{Rng, ThreadPool};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    // 1000 test images: several evaluation chunks, the last one partial.
    Synthetic {
        side: 16,
        n_test: 1000,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let model = Mlp::new(&[256, 32, 10], &mut Rng::seed_from_u64(4)).unwrap();
    let run = |threads: usize| {
        let mut seen = Vec::new();
        let eval = evaluate_in(
            &Arc::new(ThreadPool::new(threads)),
            &model,
            &data.test,
            |first, logits, labels| {
                seen.push((
                    first,
                    logits.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    labels.to_vec(),
                ));
            },
        )
        .unwrap();
        (eval, seen)
    };
    let (one, one_chunks) = run(1);
    assert_eq!(one.n, 1000);
    assert_eq!(one_chunks.iter().map(|c| c.2.len()).sum::<usize>(), 1000);
    for threads in [2, 3] {
        let (many, many_chunks) = run(threads);
        assert_eq!(one, many, "{threads} threads");
        assert!(one_chunks == many_chunks, "{threads} threads: chunks differ");
    }
}
