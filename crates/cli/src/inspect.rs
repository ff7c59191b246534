//! `backprop inspect MODEL`: what a checkpoint holds, without the weights.

use crate::args::InspectArgs;
use anyhow::Result;
use backprop_nn::Checkpoint;
use backprop_nn::checkpoint::{activation, record::DataRecord};
use serde_json::json;

pub(crate) fn run(args: InspectArgs) -> Result<()> {
    let c = Checkpoint::load(&args.model)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report(&c, &args.model.display().to_string()))?
        );
    } else {
        print!("{}", text(&c, &args.model.display().to_string()));
    }
    Ok(())
}

fn report(c: &Checkpoint, path: &str) -> serde_json::Value {
    let layers: Vec<_> = c
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let norm = c.batch_norm.get(i).and_then(Option::as_ref);
            json!({
                "shape": [l.shape.0, l.shape.1],
                "activation": activation(l.activation).to_string(),
                "parameters": l.weight.len() + l.bias.len() + norm.map_or(0, |n| n.gamma.len() + n.beta.len()),
                "batch_norm": norm.map(|n| json!({"momentum": n.momentum, "eps": n.eps})),
            })
        })
        .collect();
    let training = c.train_config().zip(c.training.as_ref()).map(|(t, r)| {
        json!({
            "activation": t.activation.to_string(),
            "init": t.resolved_init().to_string(),
            "optimizer": t.optimizer.name(),
            "optimizer_config": t.optimizer.to_string(),
            "learning_rate": t.learning_rate,
            "batch_size": t.batch_size,
            "seed": t.seed,
            "epochs": t.epochs,
            "epoch": r.epoch,
            "step": r.step,
            "schedule": t.schedule.to_string(),
            "warmup_steps": t.warmup_steps,
            "dropout": t.dropout_rates(),
            "label_smoothing": t.label_smoothing,
            "clip_norm": t.clip_norm,
            "max_norm": t.max_norm,
            "batch_norm": t.batch_norm,
            "validation": r.validation,
            "augment": r.augment,
        })
    });
    let history: Vec<_> = c
        .history
        .iter()
        .map(|h| {
            json!({
                "epoch": h.epoch,
                "train_loss": h.train_loss,
                "learning_rate": h.learning_rate,
                "seconds": h.seconds,
                "test_loss": h.test.map(|m| m.loss),
                "test_accuracy": h.test.and_then(|m| m.accuracy),
                "test_r2": h.test.and_then(|m| m.r2),
            })
        })
        .collect();
    let data = match &c.data {
        DataRecord::Unknown => json!(null),
        DataRecord::Idx { files } => json!({
            "kind": "idx",
            "files": files.iter().map(|f| json!({"name": f.name, "sha256": f.sha256})).collect::<Vec<_>>(),
        }),
        DataRecord::Csv {
            train,
            test,
            target,
            features,
        } => json!({
            "kind": "csv",
            "train": {"name": train.name, "sha256": train.sha256},
            "test": test.as_ref().map(|t| json!({"name": t.name, "sha256": t.sha256})),
            "target": target,
            "features": features,
        }),
    };
    json!({
        "path": path,
        "format_version": c.format_version,
        "crate_version": c.crate_version,
        "sizes": c.sizes(),
        "layers": layers,
        "loss": c.loss().to_string(),
        "classes": c.classes,
        "standardized": c.normalization.is_some(),
        "n_parameters": c.n_parameters(),
        "parameters_sha256": c.parameters_sha256(),
        "training": training,
        "history": history,
        "data": data,
    })
}

fn text(c: &Checkpoint, path: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let sizes = c.sizes().iter().map(usize::to_string).collect::<Vec<_>>().join("-");
    let activations = c
        .layers
        .iter()
        .map(|l| activation(l.activation).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(out, "checkpoint      {path}");
    let _ = writeln!(
        out,
        "format version  {} (written by backprop-nn {})",
        c.format_version, c.crate_version
    );
    let _ = writeln!(out, "architecture    {sizes} ({activations}), loss {}", c.loss());
    let total = c.n_parameters().max(1) as f64;
    let _ = writeln!(out, "layers          #  shape          activation   parameters  share");
    for (i, l) in c.layers.iter().enumerate() {
        let norm = c.batch_norm.get(i).and_then(Option::as_ref);
        let n = l.weight.len() + l.bias.len() + norm.map_or(0, |n| n.gamma.len() + n.beta.len());
        let _ = writeln!(
            out,
            "                {i:<2} {:<14} {:<12} {n:>10}  {:>5.1}%{}",
            format!("{}x{}", l.shape.0, l.shape.1),
            activation(l.activation).to_string(),
            100.0 * n as f64 / total,
            match norm {
                Some(n) => format!("  batch norm (momentum {}, eps {})", n.momentum, n.eps),
                None => String::new(),
            }
        );
    }
    let _ = writeln!(
        out,
        "parameters      {} (SHA-256 {})",
        c.n_parameters(),
        c.parameters_sha256()
    );
    if !c.classes.is_empty() {
        let _ = writeln!(out, "classes         {}", c.classes.join(", "));
    }
    if c.normalization.is_some() {
        let _ = writeln!(out, "inputs          standardised (means and scales stored)");
    }
    match (c.train_config(), &c.training) {
        (Some(t), Some(r)) => {
            let _ = writeln!(out, "optimizer       {}", t.optimizer);
            let _ = writeln!(
                out,
                "training        batch size {}, learning rate {}, seed {}, init {}",
                t.batch_size,
                t.learning_rate,
                t.seed,
                t.resolved_init()
            );
            let (schedule, extras) = crate::train::toolkit_text(&t);
            if !schedule.is_empty() || !extras.is_empty() {
                let _ = writeln!(out, "regularisation  learning rate{schedule}{extras}");
            }
            let _ = writeln!(
                out,
                "progress        epoch {} of {}, step {}",
                r.epoch, t.epochs, r.step
            );
        }
        _ => {
            let _ = writeln!(out, "training        (a model alone: no training run to resume)");
        }
    }
    if c.history.is_empty() {
        let _ = writeln!(out, "history         (none)");
    } else {
        let classify = c.loss().is_classification();
        let _ = writeln!(
            out,
            "history         epoch  train loss  test loss  {}  learning rate  seconds",
            if classify { "test accuracy" } else { "      test R²" }
        );
        for h in &c.history {
            let loss = h.test.map_or_else(|| "-".to_owned(), |m| format!("{:.4}", m.loss));
            let measure = h.test.and_then(|m| {
                if classify {
                    m.accuracy.map(|a| format!("{:.2}%", 100.0 * a))
                } else {
                    m.r2.map(|r| format!("{r:.4}"))
                }
            });
            let _ = writeln!(
                out,
                "                {:>5}  {:>10.4}  {loss:>9}  {:>13}  {:>13}  {:>7.2}",
                h.epoch,
                h.train_loss,
                measure.unwrap_or_else(|| "-".into()),
                h.learning_rate,
                h.seconds
            );
        }
    }
    match &c.data {
        DataRecord::Unknown => {
            let _ = writeln!(out, "dataset         (not recorded)");
        }
        DataRecord::Idx { files } => {
            let _ = writeln!(out, "dataset         IDX; SHA-256 of the decompressed content");
            for f in files {
                let _ = writeln!(out, "                {:<26} {}", f.name, f.sha256);
            }
        }
        DataRecord::Csv {
            train,
            test,
            target,
            features,
        } => {
            let _ = writeln!(
                out,
                "dataset         CSV, target {target:?}, features {}",
                features.join(", ")
            );
            let _ = writeln!(out, "                {:<26} {}", train.name, train.sha256);
            if let Some(t) = test {
                let _ = writeln!(out, "                {:<26} {}", t.name, t.sha256);
            }
        }
    }
    out
}
