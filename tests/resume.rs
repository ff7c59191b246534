//! Checkpoints through the library: a run saved after 2 epochs and resumed
//! to 4 ends bit-identical to 4 epochs in one go; save then load gives the
//! same model and metadata.

use backprop_data::TrainTest;
use backprop_nn::{Checkpoint, DatasetFile, EpochRecord, TrainConfig, Trainer, evaluate};
use backprop_tests::{Synthetic, weight_bytes};

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        sizes: vec![64, 16, 10],
        epochs,
        // 600 examples: 18 full batches and a partial one of 24.
        batch_size: 32,
        learning_rate: 0.1,
        seed: 11,
    }
}

/// Trains until `trainer` is done, recording each epoch.
fn train(trainer: &mut Trainer, data: &TrainTest, history: &mut Vec<EpochRecord>) {
    while !trainer.is_done() {
        let stats = trainer.train_epoch(&data.train, |_, _| {}).unwrap();
        let eval = evaluate(trainer.model(), &data.test).unwrap();
        history.push(EpochRecord::new(&stats, &eval));
    }
}

#[test]
fn resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let dataset = DatasetFile::hash_dir(dir.path()).unwrap();

    let mut straight = Trainer::new(config(4), data.train.len()).unwrap();
    let mut straight_history = Vec::new();
    train(&mut straight, &data, &mut straight_history);

    let mut first = Trainer::new(config(2), data.train.len()).unwrap();
    let mut history = Vec::new();
    train(&mut first, &data, &mut history);
    let path = dir.path().join("run.ckpt");
    Checkpoint::from_trainer(&first, history, dataset.clone())
        .save(&path)
        .unwrap();
    drop(first);

    let checkpoint = Checkpoint::load(&path).unwrap();
    assert_eq!((checkpoint.epoch, checkpoint.config.epochs), (2, 2));
    let mut history = checkpoint.history.clone();
    let mut resumed = checkpoint.into_trainer(data.train.len()).unwrap();
    resumed.set_epochs(4);
    train(&mut resumed, &data, &mut history);

    assert_eq!(weight_bytes(resumed.model()), weight_bytes(straight.model()));
    assert_eq!(resumed.step(), straight.step());
    assert_eq!(resumed.step(), 4 * 19);
    assert_eq!(resumed.shuffle_rng().state(), straight.shuffle_rng().state());
    // The losses seen along the way agree bit for bit too (times do not).
    let losses = |h: &[EpochRecord]| {
        h.iter()
            .map(|r| (r.epoch, r.train_loss, r.test_loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&history), losses(&straight_history));

    // A resume that skipped the checkpoint's shuffle state would diverge.
    let mut fresh_rng = Trainer::resume(
        config(4),
        Checkpoint::load(&path).unwrap().model().unwrap(),
        backprop_tensor::Rng::seed_from_u64(0),
        2,
        2 * 19,
        data.train.len(),
    )
    .unwrap();
    train(&mut fresh_rng, &data, &mut Vec::new());
    assert_ne!(weight_bytes(fresh_rng.model()), weight_bytes(straight.model()));
}

#[test]
fn save_then_load_gives_the_same_model_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let mut trainer = Trainer::new(config(3), data.train.len()).unwrap();
    let mut history = Vec::new();
    trainer.train_epoch(&data.train, |_, _| {}).unwrap();
    let eval = evaluate(trainer.model(), &data.test).unwrap();
    history.push(EpochRecord::new(
        &backprop_nn::EpochStats {
            epoch: 1,
            train_loss: 0.5,
            seconds: 0.25,
        },
        &eval,
    ));
    let dataset = DatasetFile::hash_dir(dir.path()).unwrap();
    assert_eq!(dataset.len(), 4);
    assert_eq!(dataset[0].name, "train-images-idx3-ubyte");
    let saved = Checkpoint::from_trainer(&trainer, history, dataset);
    let path = dir.path().join("model.ckpt");
    saved.save(&path).unwrap();

    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded, saved);
    assert_eq!(weight_bytes(&loaded.model().unwrap()), weight_bytes(trainer.model()));
    assert_eq!(loaded.parameters_sha256(), saved.parameters_sha256());
    assert_eq!(loaded.n_parameters(), trainer.model().n_parameters());
    assert_eq!(loaded.config, config(3));
    assert_eq!((loaded.epoch, loaded.step), (1, 19));
    assert_eq!(loaded.crate_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(loaded.history[0].test_accuracy, eval.accuracy);
    // Saving again over the file replaces it; nothing else is left in the
    // directory besides the data.
    saved.save(&path).unwrap();
    let extra: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("ckpt"))
        .collect();
    assert_eq!(extra, ["model.ckpt"]);
}
