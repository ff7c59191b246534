//! `backprop gradcheck`: backward against central differences, per layer.

mod common;

use common::{assert_fails_cleanly, assert_ok, backprop};

#[test]
fn every_activation_and_loss_passes_with_the_default_tolerance() {
    for activation in ["relu", "leaky-relu", "tanh", "sigmoid", "gelu", "identity"] {
        for loss in ["cross-entropy", "mse"] {
            let out = backprop(&[
                "gradcheck",
                "--layers",
                "4,5,3",
                "--activation",
                activation,
                "--loss",
                loss,
            ]);
            assert_ok(&out);
            let text = String::from_utf8(out.stdout).unwrap();
            let rows: Vec<&str> = text
                .lines()
                .filter(|l| l.trim_start().starts_with(['0', '1']))
                .collect();
            assert_eq!(rows.len(), 2, "{activation} {loss}: {text}");
            assert!(text.contains(": ok"), "{text}");
        }
    }
}

#[test]
fn deeper_networks_other_batches_and_seeds() {
    let out = backprop(&[
        "gradcheck",
        "--layers",
        "6,7,5,4",
        "--batch",
        "3",
        "--seed",
        "9",
        "--activation",
        "tanh",
    ]);
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("6-7-5-4") && text.contains("batch 3") && text.contains("seed 9"),
        "{text}"
    );
}

#[test]
fn an_error_above_the_tolerance_fails() {
    let out = backprop(&["gradcheck", "--tolerance", "1e-15"]);
    assert_fails_cleanly(&out, &["gradient check failed", "above the tolerance"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("above tolerance"));
}

#[test]
fn bad_settings_are_refused() {
    assert_fails_cleanly(&backprop(&["gradcheck", "--layers", "4"]), &["sizes"]);
    assert_fails_cleanly(&backprop(&["gradcheck", "--batch", "0"]), &["must be at least 1"]);
    assert_fails_cleanly(&backprop(&["gradcheck", "--tolerance", "-1"]), &["--tolerance"]);
    assert_fails_cleanly(&backprop(&["gradcheck", "--layers", "4,1"]), &["at least 2 outputs"]);
}

/// `--batch-norm` checks gamma and beta too, in training and in
/// evaluation mode; `--eval-mode` alone is refused.
#[test]
fn batch_norm_passes_in_both_modes() {
    for mode in [&[][..], &["--eval-mode"][..]] {
        let mut args = vec![
            "gradcheck",
            "--layers",
            "5,6,4,3",
            "--batch-norm",
            "--activation",
            "tanh",
        ];
        args.extend_from_slice(mode);
        let out = backprop(&args);
        assert_ok(&out);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("dgamma/dbeta") && text.contains(": ok"), "{text}");
        let expected = if mode.is_empty() {
            "training mode"
        } else {
            "evaluation mode"
        };
        assert!(text.contains(expected), "{text}");
    }
    assert_fails_cleanly(&backprop(&["gradcheck", "--eval-mode"]), &["--batch-norm"]);
}
