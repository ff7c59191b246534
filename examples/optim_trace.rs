//! The Rust side of the optimiser cross-check: records every optimiser's
//! steps on a small network so that `xtask/scripts/optim_reference.py` can
//! replay them in NumPy with PyTorch's documented update rules.
//!
//! For each of sgd, momentum, nesterov, adam and adamw, once with weight
//! decay 0 and once with 0.01, and with non-default hyperparameters
//! (momentum 0.8, betas (0.85, 0.99), eps 1e-6, learning rate 0.05), it
//! builds a 3-4-2 `Mlp` from a seed, then for 25 steps computes the real
//! cross-entropy gradients of a fixed batch of 8 examples at the current
//! parameters, and records the parameters before the step, the gradients
//! and the parameters after `Optimizer::step`. Tensors are flat, in the
//! order layer 0 weight (row-major `(n_in, n_out)`), layer 0 bias, layer 1
//! weight, layer 1 bias. Hyperparameters are written as the exact values
//! of the `f32`s the optimiser uses (so 0.85 appears as 0.8500000238...).
//!
//! Writes the trace (the JSON schema is in the script's docstring) to the
//! first argument, default `optim_trace.json`, and prints one line per run.
//!
//! Run:
//! ```text
//! cargo run --release -p backprop-examples --example optim_trace -- trace.json
//! python3 -m venv /tmp/optref-venv && /tmp/optref-venv/bin/pip install numpy
//! /tmp/optref-venv/bin/python xtask/scripts/optim_reference.py trace.json
//! ```
//! The script should print PASS for all ten runs and exit with status 0.

use backprop_nn::ndarray::Array2;
use backprop_nn::{Gradients, Input, Loss, Mlp, OptimizerConfig, Targets, Workspace};
use backprop_tensor::{Rng, ThreadPool};
use serde_json::{Map, Value, json};

/// Layer sizes of the traced network.
const SIZES: [usize; 3] = [3, 4, 2];
/// Examples in the fixed batch.
const BATCH: usize = 8;
/// Steps recorded per run (the script needs at least 20).
const STEPS: usize = 25;
/// The learning rate of every run.
const LEARNING_RATE: f32 = 0.05;
/// Names of the parameter tensors, in the order they are flattened.
const TENSORS: [&str; 4] = ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"];

/// Every parameter tensor of `model`, flat, in the order of [`TENSORS`].
fn parameters(model: &Mlp) -> Vec<Vec<f32>> {
    model
        .layers()
        .iter()
        .flat_map(|l| [l.w.iter().copied().collect(), l.b.to_vec()])
        .collect()
}

/// Every gradient tensor, flat, in the order of [`TENSORS`].
fn gradients(grads: &Gradients) -> Vec<Vec<f32>> {
    grads
        .dw
        .iter()
        .zip(&grads.db)
        .flat_map(|(dw, db)| [dw.iter().copied().collect(), db.to_vec()])
        .collect()
}

/// The hyperparameters of `config` as the trace's fields, each the exact
/// value of the `f32` the optimiser uses.
fn hyperparameters(config: OptimizerConfig) -> Map<String, Value> {
    let exact = |x: f32| json!(f64::from(x));
    let mut fields = Map::new();
    fields.insert("optimizer".into(), json!(config.name()));
    fields.insert("lr".into(), exact(LEARNING_RATE));
    fields.insert("weight_decay".into(), exact(config.weight_decay()));
    match config {
        OptimizerConfig::Sgd { .. } => {}
        OptimizerConfig::Momentum { momentum, .. } => {
            fields.insert("momentum".into(), exact(momentum));
        }
        OptimizerConfig::Adam { beta1, beta2, eps, .. } => {
            fields.insert("beta1".into(), exact(beta1));
            fields.insert("beta2".into(), exact(beta2));
            fields.insert("eps".into(), exact(eps));
        }
        other => panic!("no trace fields for optimiser {other}"),
    }
    fields
}

/// One run: `STEPS` steps of `config` on a network drawn from `seed`.
fn trace(name: &str, config: OptimizerConfig, seed: u64) -> Result<Value, backprop_nn::NnError> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut model = Mlp::new(&SIZES, &mut rng)?;
    let x = Array2::from_shape_fn((BATCH, SIZES[0]), |_| rng.normal() as f32);
    let labels: Vec<usize> = (0..BATCH).map(|i| (i * 7 + seed as usize) % SIZES[2]).collect();
    let mut optimizer = config.build(&model, LEARNING_RATE)?;
    let mut ws = Workspace::new(&SIZES, BATCH);
    let mut grads = Gradients::new(&model);
    let pool = ThreadPool::new(1);
    let mut steps = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let before = parameters(&model);
        model.loss_backward(
            Input::Dense(x.view()),
            Loss::CrossEntropy,
            Targets::Classes(&labels),
            &mut ws,
            &mut grads,
        );
        optimizer.step(&pool, &mut model, &grads);
        steps.push(json!({
            "params_before": before,
            "grads": gradients(&grads),
            "params_after": parameters(&model),
        }));
    }
    let mut run = hyperparameters(config);
    run.insert("name".into(), json!(name));
    run.insert("tensors".into(), json!(TENSORS));
    run.insert("steps".into(), Value::Array(steps));
    Ok(Value::Object(run))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "optim_trace.json".into());
    let mut runs = Vec::new();
    for weight_decay in [0.0, 0.01] {
        let (momentum, beta1, beta2, eps) = (0.8, 0.85, 0.99, 1e-6);
        let configs = [
            OptimizerConfig::Sgd { weight_decay },
            OptimizerConfig::Momentum {
                momentum,
                nesterov: false,
                weight_decay,
            },
            OptimizerConfig::Momentum {
                momentum,
                nesterov: true,
                weight_decay,
            },
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled: false,
            },
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled: true,
            },
        ];
        for config in configs {
            let name = format!("{}-wd{weight_decay}", config.name());
            println!("{name:<16} {config}");
            runs.push(trace(&name, config, runs.len() as u64)?);
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    serde_json::to_writer(file, &json!({ "runs": runs }))?;
    println!("wrote {} runs of {STEPS} steps to {path}", runs.len());
    Ok(())
}
