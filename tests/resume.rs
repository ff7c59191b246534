//! Checkpoints through the library: a run saved after 2 epochs and resumed
//! to 4 ends bit-identical to 4 epochs in one go; save then load gives the
//! same model and metadata.

use backprop_data::TrainTest;
use backprop_nn::checkpoint::record::{DataRecord, EpochRecord};
use backprop_nn::{Checkpoint, Examples, TrainConfig, TrainState, Trainer, evaluate};
use backprop_tests::{Synthetic, epoch_record, weight_bytes};

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        sizes: vec![64, 16, 10],
        epochs,
        // 600 examples: 18 full batches and a partial one of 24.
        batch_size: 32,
        learning_rate: 0.1,
        seed: 11,
        ..TrainConfig::default()
    }
}

/// Trains until `trainer` is done, recording each epoch.
fn train(trainer: &mut Trainer, data: &TrainTest, history: &mut Vec<EpochRecord>) {
    while !trainer.is_done() {
        let stats = trainer.train_epoch(&data.train, |_, _, _| {}).unwrap();
        let eval = evaluate(trainer.model(), &data.test).unwrap();
        history.push(epoch_record(&stats, &eval));
    }
}

#[test]
fn resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let dataset = DataRecord::Idx {
        files: backprop_data::hash_dir(dir.path()).unwrap(),
    };

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
    assert_eq!((checkpoint.epoch(), checkpoint.train_config().unwrap().epochs), (2, 2));
    let mut history = checkpoint.history.clone();
    let mut resumed = checkpoint.into_trainer(data.train.len()).unwrap();
    resumed.set_epochs(4);
    train(&mut resumed, &data, &mut history);

    assert_eq!(weight_bytes(resumed.model()), weight_bytes(straight.model()));
    assert_eq!(resumed.step(), straight.step());
    assert_eq!(resumed.step(), 4 * 19);
    assert_eq!(
        resumed.state().shuffle_rng.state(),
        straight.state().shuffle_rng.state()
    );
    // The losses seen along the way agree bit for bit too (times do not).
    let losses = |h: &[EpochRecord]| h.iter().map(|r| (r.epoch, r.train_loss, r.test)).collect::<Vec<_>>();
    assert_eq!(losses(&history), losses(&straight_history));

    // A resume that skipped the checkpoint's shuffle state would diverge.
    let mut fresh_rng = Trainer::resume(
        config(4),
        Checkpoint::load(&path).unwrap().model().unwrap(),
        TrainState {
            epoch: 2,
            step: 2 * 19,
            shuffle_rng: backprop_tensor::Rng::seed_from_u64(0),
            optimizer: Default::default(),
            dropout_rng: backprop_tensor::Rng::seed_from_u64(0),
        },
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
    trainer.train_epoch(&data.train, |_, _, _| {}).unwrap();
    let eval = evaluate(trainer.model(), &data.test).unwrap();
    history.push(epoch_record(
        &backprop_nn::EpochStats {
            epoch: 1,
            train_loss: 0.5,
            learning_rate: 0.1,
            seconds: 0.25,
        },
        &eval,
    ));
    let dataset = DataRecord::Idx {
        files: backprop_data::hash_dir(dir.path()).unwrap(),
    };
    let DataRecord::Idx { files } = &dataset else {
        panic!("IDX")
    };
    assert_eq!(files.len(), 4);
    assert_eq!(files[0].name, "train-images-idx3-ubyte");
    let saved = Checkpoint::from_trainer(&trainer, history, dataset);
    let path = dir.path().join("model.ckpt");
    saved.save(&path).unwrap();

    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded, saved);
    assert_eq!(weight_bytes(&loaded.model().unwrap()), weight_bytes(trainer.model()));
    assert_eq!(loaded.parameters_sha256(), saved.parameters_sha256());
    assert_eq!(loaded.n_parameters(), trainer.model().n_parameters());
    let mut expected = config(3);
    expected.init = Some(backprop_nn::Init::HeNormal);
    assert_eq!(loaded.train_config().unwrap(), expected);
    let t = loaded.training.as_ref().unwrap();
    assert_eq!((t.epoch, t.step), (1, 19));
    assert_eq!(loaded.crate_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(loaded.history[0].test.unwrap().accuracy, eval.accuracy());
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

/// Every optimiser resumes exactly: 2 epochs, a checkpoint, 2 more equal 4
/// in one go, byte for byte (the optimiser's state travels in the file).
#[test]
fn every_optimizer_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    for name in ["sgd", "momentum", "nesterov", "adam", "adamw"] {
        let config = |epochs| TrainConfig {
            optimizer: backprop_nn::OptimizerConfig::from_name(name).unwrap(),
            learning_rate: 0.01,
            ..config(epochs)
        };
        let mut straight = Trainer::new(config(4), data.train.len()).unwrap();
        train(&mut straight, &data, &mut Vec::new());
        let mut first = Trainer::new(config(2), data.train.len()).unwrap();
        train(&mut first, &data, &mut Vec::new());
        let path = dir.path().join(format!("{name}.ckpt"));
        Checkpoint::from_trainer(&first, Vec::new(), DataRecord::Unknown)
            .save(&path)
            .unwrap();
        let mut resumed = Checkpoint::load(&path).unwrap().into_trainer(data.train.len()).unwrap();
        resumed.set_epochs(4);
        train(&mut resumed, &data, &mut Vec::new());
        assert!(
            weight_bytes(resumed.model()) == weight_bytes(straight.model()),
            "{name}"
        );
        assert_eq!(resumed.optimizer().state(), straight.optimizer().state(), "{name}");
    }
}

/// The format-1 checkpoint written by backprop 0.1.0 (tests/fixtures/format1)
/// loads, evaluates to what that build reported, and resumes to the weights
/// that build reached.
#[test]
fn a_format_1_checkpoint_loads_evaluates_and_resumes() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format1");
    let data = backprop_data::load_dir(&fixture.join("data")).unwrap();
    let checkpoint = Checkpoint::load(&fixture.join("model.ckpt")).unwrap();
    assert_eq!(
        checkpoint.parameters_sha256(),
        "76c6a9d387a4a7521c7d9e5b5c10022faf588619bec8467dced40bd310195362"
    );
    assert_eq!(checkpoint.epoch(), 2);
    let eval = evaluate(&checkpoint.model().unwrap(), &data.test).unwrap();
    assert_eq!((eval.correct(), eval.n), (Some(200), 200));
    assert_eq!(eval.loss, 0.7153395414352417);
    let DataRecord::Idx { files } = &checkpoint.data else {
        panic!("IDX data")
    };
    assert_eq!(files, &backprop_data::hash_dir(&fixture.join("data")).unwrap());
    let mut resumed = checkpoint.into_trainer(data.train.len()).unwrap();
    resumed.set_epochs(3);
    train(&mut resumed, &data, &mut Vec::new());
    assert_eq!(resumed.step(), 57);
    let after = Checkpoint::from_trainer(&resumed, Vec::new(), DataRecord::Unknown);
    assert_eq!(
        after.parameters_sha256(),
        "84aa7768f585e24107adbd1d43270c183e60055427e8b9487abdadad04aec837"
    );
}

/// The format-2 checkpoint written before batch normalisation
/// (tests/fixtures/format2, every toolkit setting on) loads, evaluates to
/// what that build reported, and resumes to the weights that build reached.
#[test]
fn a_format_2_checkpoint_loads_evaluates_and_resumes() {
    use backprop_data::{Augment, Augmented};
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format2");
    let data = backprop_data::load_dir(&fixture.join("data")).unwrap();
    let checkpoint = Checkpoint::load(&fixture.join("model.ckpt")).unwrap();
    assert_eq!(
        checkpoint.parameters_sha256(),
        "03e6a39b8809d24b61cf7232c76a0909416be6f3eb8b0218a64f57f50c4dbbcb"
    );
    assert_eq!(checkpoint.format_version, backprop_nn::CHECKPOINT_FORMAT_VERSION);
    assert!(checkpoint.batch_norm.is_empty());
    let training = checkpoint.training.clone().unwrap();
    assert_eq!((training.epoch, training.step, training.validation), (2, 38, 20));
    assert_eq!(training.augment, "shift=1");
    let config = checkpoint.train_config().unwrap();
    assert_eq!(config.dropout, vec![0.2]);
    assert_eq!((config.clip_norm, config.max_norm), (Some(5.0), Some(3.0)));
    let eval = evaluate(&checkpoint.model().unwrap(), &data.test).unwrap();
    assert_eq!((eval.correct(), eval.n), (Some(139), 200));
    assert_eq!(eval.loss, 1.3520761728286743);
    // Resumed as the CLI resumes it: the same validation split and the
    // recorded augmentation, to 3 epochs.
    let augment: Augment = training.augment.parse().unwrap();
    let full = Augmented::new(data.train.clone(), augment, config.seed).unwrap();
    let (train, _) = backprop_nn::split_validation(full.len(), 20, config.seed);
    let source = backprop_nn::Subset::new(&full, train);
    let mut resumed = checkpoint.into_trainer(source.len()).unwrap();
    resumed.set_epochs(3);
    resumed.train_epoch(&source, |_, _, _| {}).unwrap();
    assert_eq!(resumed.step(), 57);
    let after = Checkpoint::from_trainer(&resumed, Vec::new(), DataRecord::Unknown);
    assert_eq!(
        after.parameters_sha256(),
        "83513f9b2d9baa19ebe78336b88a8ce76070617d768fedd50978363405e07931"
    );
}

/// Batch normalisation with dropout, a schedule and augmented images: 2
/// epochs, a checkpoint, 2 more equal 4 in one go, byte for byte (the
/// running averages included); the checkpoint keeps the normalisations.
#[test]
fn batch_norm_with_the_toolkit_resumes_bit_identically() {
    use backprop_data::{Augment, Augmented};
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let source = || Augmented::new(data.train.clone(), Augment::digits(), 4).unwrap();
    let config = |epochs| TrainConfig {
        sizes: vec![64, 32, 16, 10],
        dropout: vec![0.2],
        schedule: backprop_nn::Schedule::Cosine { floor: 0.05 },
        warmup_steps: 10,
        optimizer: backprop_nn::OptimizerConfig::ADAMW,
        learning_rate: 0.01,
        batch_norm: true,
        ..config(epochs)
    };
    let run = |trainer: &mut Trainer| {
        let source = source();
        while !trainer.is_done() {
            trainer.train_epoch(&source, |_, _, _| {}).unwrap();
        }
    };
    let mut straight = Trainer::new(config(4), data.train.len()).unwrap();
    run(&mut straight);
    let mut first = Trainer::new(config(4), data.train.len()).unwrap();
    let src = source();
    first.train_epoch(&src, |_, _, _| {}).unwrap();
    first.train_epoch(&src, |_, _, _| {}).unwrap();
    let path = dir.path().join("bn.ckpt");
    Checkpoint::from_trainer(&first, Vec::new(), DataRecord::Unknown)
        .save(&path)
        .unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded.batch_norm.iter().filter(|n| n.is_some()).count(), 2);
    assert!(loaded.train_config().unwrap().batch_norm);
    assert_eq!(loaded.model().unwrap(), *first.model());
    let mut resumed = loaded.into_trainer(data.train.len()).unwrap();
    run(&mut resumed);
    assert!(weight_bytes(resumed.model()) == weight_bytes(straight.model()));
    // The running averages moved away from their start (0 and 1).
    let norm = straight.model().norms()[0].as_ref().unwrap();
    assert!(norm.running_mean.iter().any(|&m| m != 0.0) && norm.running_var.iter().any(|&v| v != 1.0));
    // Folding the normalisations into the layers computes the same
    // function in evaluation mode, up to rounding.
    let x = ndarray::Array2::from_shape_fn((7, 64), |(i, j)| ((i * 64 + j) as f32 * 0.13).sin().abs());
    let (a, b) = (
        straight.model().predict_outputs(x.view()),
        straight.model().folded().predict_outputs(x.view()),
    );
    assert!(
        a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-4 * (1.0 + a.abs())),
        "{a} vs {b}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// For random layer sizes, epochs and optimisers, every checkpoint a
    /// run saves loads back to the same run, and resuming it for one more
    /// epoch gives the weights of the uninterrupted run.
    #[test]
    fn every_saved_checkpoint_loads_and_resumes(
        hidden in proptest::collection::vec(1usize..40, 0..3),
        epochs in 1usize..3,
        optimizer in 0usize..5,
        batch_size in 1usize..100,
    ) {
        let dir = tempfile::tempdir().unwrap();
        Synthetic { n_train: 150, n_test: 20, ..Synthetic::default() }.write_dir(dir.path(), false);
        let data = backprop_data::load_dir(dir.path()).unwrap();
        let mut sizes = vec![64];
        sizes.extend(&hidden);
        sizes.push(10);
        let name = ["sgd", "momentum", "nesterov", "adam", "adamw"][optimizer];
        let config = |epochs| TrainConfig {
            sizes: sizes.clone(),
            epochs,
            batch_size,
            learning_rate: 0.01,
            optimizer: backprop_nn::OptimizerConfig::from_name(name).unwrap(),
            ..TrainConfig::default()
        };
        let mut straight = Trainer::new(config(epochs + 1), data.train.len()).unwrap();
        train(&mut straight, &data, &mut Vec::new());
        let mut run = Trainer::new(config(epochs), data.train.len()).unwrap();
        let path = dir.path().join("run.ckpt");
        let mut history = Vec::new();
        while !run.is_done() {
            let stats = run.train_epoch(&data.train, |_, _, _| {}).unwrap();
            let eval = evaluate(run.model(), &data.test).unwrap();
            history.push(epoch_record(&stats, &eval));
            let saved = Checkpoint::from_trainer(&run, history.clone(), DataRecord::Unknown);
            saved.save(&path).unwrap();
            proptest::prop_assert_eq!(Checkpoint::load(&path).unwrap(), saved);
        }
        let mut resumed = Checkpoint::load(&path).unwrap().into_trainer(data.train.len()).unwrap();
        resumed.set_epochs(epochs + 1);
        train(&mut resumed, &data, &mut Vec::new());
        proptest::prop_assert!(weight_bytes(resumed.model()) == weight_bytes(straight.model()));
    }
}

/// The whole toolkit at once (dropout, a cosine schedule with warmup, label
/// smoothing, clipping, max-norm, Adam): 2 epochs, a checkpoint, 2 more
/// equal 4 in one go, byte for byte.
#[test]
fn the_toolkit_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let config = |epochs| TrainConfig {
        sizes: vec![64, 32, 16, 10],
        dropout: vec![0.3, 0.1],
        schedule: backprop_nn::Schedule::Cosine { floor: 0.05 },
        warmup_steps: 10,
        label_smoothing: 0.1,
        clip_norm: Some(1.0),
        max_norm: Some(3.0),
        optimizer: backprop_nn::OptimizerConfig::ADAM,
        learning_rate: 0.01,
        ..config(epochs)
    };
    let mut straight = Trainer::new(config(4), data.train.len()).unwrap();
    train(&mut straight, &data, &mut Vec::new());
    let mut first = Trainer::new(config(4), data.train.len()).unwrap();
    first.train_epoch(&data.train, |_, _, _| {}).unwrap();
    first.train_epoch(&data.train, |_, _, _| {}).unwrap();
    let path = dir.path().join("toolkit.ckpt");
    Checkpoint::from_trainer(&first, Vec::new(), DataRecord::Unknown)
        .save(&path)
        .unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded.train_config().unwrap().dropout, vec![0.3, 0.1]);
    let mut resumed = loaded.into_trainer(data.train.len()).unwrap();
    train(&mut resumed, &data, &mut Vec::new());
    assert!(weight_bytes(resumed.model()) == weight_bytes(straight.model()));
    // Dropout changes the run, so the test is not vacuous.
    let mut plain = Trainer::new(
        TrainConfig {
            dropout: Vec::new(),
            ..config(4)
        },
        data.train.len(),
    )
    .unwrap();
    train(&mut plain, &data, &mut Vec::new());
    assert!(weight_bytes(plain.model()) != weight_bytes(straight.model()));
    assert!(evaluate(straight.model(), &data.test).unwrap().accuracy().unwrap() > 0.9);
}

/// Augmented training data (`backprop_data::Augmented`): the distortions
/// depend on the seed, the epoch the trainer announces and the example
/// alone, so a run resumed (on a fresh source) after 2 epochs ends
/// bit-identical to 4 epochs in one go.
#[test]
fn a_resumed_augmented_run_is_bit_identical_to_an_uninterrupted_one() {
    use backprop_data::{Augment, Augmented};
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let source = || Augmented::new(data.train.clone(), Augment::digits(), 21).unwrap();
    let run = |trainer: &mut Trainer, source: &Augmented| {
        while !trainer.is_done() {
            trainer.train_epoch(source, |_, _, _| {}).unwrap();
        }
    };

    let mut straight = Trainer::new(config(4), data.train.len()).unwrap();
    run(&mut straight, &source());

    let mut first = Trainer::new(config(2), data.train.len()).unwrap();
    run(&mut first, &source());
    let path = dir.path().join("run.ckpt");
    Checkpoint::from_trainer(&first, Vec::new(), DataRecord::Unknown)
        .save(&path)
        .unwrap();
    drop(first);
    let mut resumed = Checkpoint::load(&path).unwrap().into_trainer(data.train.len()).unwrap();
    resumed.set_epochs(4);
    run(&mut resumed, &source());
    assert_eq!(weight_bytes(resumed.model()), weight_bytes(straight.model()));

    // Without augmentation the weights differ: the distortions were used.
    let mut plain = Trainer::new(config(4), data.train.len()).unwrap();
    while !plain.is_done() {
        plain.train_epoch(&data.train, |_, _, _| {}).unwrap();
    }
    assert_ne!(weight_bytes(plain.model()), weight_bytes(straight.model()));
}
