//! `backprop gradcheck`: backpropagation's gradients against central
//! differences, layer by layer (see [`backprop_nn::gradcheck`]).

use crate::args::GradcheckArgs;
use crate::eval::sizes_text;
use anyhow::{Context, Result, bail};
use backprop_nn::GradCheck;

pub(crate) fn run(args: &GradcheckArgs) -> Result<()> {
    if !(args.tolerance.is_finite() && args.tolerance > 0.0) {
        bail!("--tolerance must be a positive number, got {}", args.tolerance);
    }
    let check = GradCheck {
        sizes: args.layers.clone(),
        activation: args.activation,
        loss: args.loss,
        batch: usize::try_from(args.batch).context("--batch is too large")?,
        seed: args.seed,
        batch_norm: args.batch_norm,
        training: !args.eval_mode,
    };
    let errors = backprop_nn::gradcheck(&check).context("invalid gradient check")?;
    let norm = match (check.batch_norm, check.training) {
        (false, _) => "",
        (true, true) => ", batch norm (training mode)",
        (true, false) => ", batch norm (evaluation mode)",
    };
    println!(
        "gradient check of {} ({} hidden, {}{norm}), batch {}, seed {}: central differences in f64",
        sizes_text(&check.sizes),
        check.activation,
        check.loss,
        check.batch,
        check.seed
    );
    print!("layer  {:>14}  {:>14}", "dW rel. error", "db rel. error");
    if check.batch_norm {
        print!("  {:>16}", "dgamma/dbeta err.");
    }
    println!();
    for e in &errors {
        let flag = if e.max() > args.tolerance {
            "  above tolerance"
        } else {
            ""
        };
        print!("{:>5}  {:>14.3e}  {:>14.3e}", e.layer, e.weight, e.bias);
        if check.batch_norm {
            print!("  {:>16.3e}", e.norm);
        }
        println!("{flag}");
    }
    let worst = errors.iter().map(|e| e.max()).fold(0.0f64, f64::max);
    if let Some(bad) = errors.iter().find(|e| e.max() > args.tolerance) {
        bail!(
            "gradient check failed: layer {} has relative error {:.3e} (dW {:.3e}, db {:.3e}), above the tolerance {:e}",
            bad.layer,
            bad.max(),
            bad.weight,
            bad.bias,
            args.tolerance
        );
    }
    println!(
        "largest relative error {worst:.3e}, within the tolerance {:e}: ok",
        args.tolerance
    );
    Ok(())
}
