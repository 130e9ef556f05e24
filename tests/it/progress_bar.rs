//! The progress bar as a user sees it: `jlc run` in a terminal (a pty from
//! util-linux's `script`, which Debian always has), its output with the
//! terminal's escape sequences removed and each redraw as its own line.

use crate::checkpoints::root;
use crate::examples::tempdir;
use std::process::Command;

/// The pty's output of `jlc run FILE --set ...` in a 200-column terminal.
fn run_in_terminal(file: &str, sets: &[String]) -> String {
    let jlc = env!("CARGO_BIN_EXE_jlc");
    let mut line = format!("stty cols 200 rows 40; exec '{jlc}' run '{}'", root().join(file).display());
    for s in sets {
        line.push_str(&format!(" --set '{s}'"));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("util-linux `script` runs `jlc` in a pseudo-terminal");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The drawn text: CSI escape sequences removed, a line per redraw
/// (carriage returns and newlines split), padding trimmed.
fn redraws(raw: &str) -> Vec<String> {
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
            continue;
        }
        text.push(c);
    }
    text.split(['\r', '\n']).map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn a_terminal_shows_a_bar_per_epoch_with_progress_rate_and_prog_bar_metrics() {
    let logs = tempdir("progress-bar");
    let sets = [format!("trainer.default_root_dir={}", logs.display()), "trainer.max_epochs=2".to_string()];
    let lines = redraws(&run_in_terminal("examples/digits_mlp.jl", &sets));
    let shown = lines.join("\n");
    // The model summary first: one row per parameter, then the totals.
    assert!(
        lines.iter().any(|l| l.contains("l1.weight") && l.contains("f32[64, 64]") && l.contains("4096")),
        "{shown}"
    );
    assert!(shown.contains("4810 trainable params"), "{shown}");
    for epoch in 0..2 {
        let bars: Vec<&String> = lines.iter().filter(|l| l.contains(&format!("Epoch {epoch}:"))).collect();
        // Redraws while training: a position out of 23 batches, a rate, and
        // the step's prog_bar metrics (train_acc is logged with prog_bar).
        let mid = bars
            .iter()
            .find(|l| l.contains("/23 [") && !l.contains(" 0/23") && !l.contains("23/23"))
            .unwrap_or_else(|| panic!("no redraw of epoch {epoch} mid-way:\n{shown}"));
        assert!(mid.contains("it/s]") && mid.contains("train_loss=") && mid.contains("train_acc="), "{mid}");
        // The finished bar stays: 100%, 23/23, the epoch's prog_bar metrics
        // (val_acc has prog_bar = true, val_loss has not). Its last drawing:
        // a redraw may also catch 23/23 with the last step's metrics, before
        // the epoch's end (it did, in a clean-clone CI run).
        let done = bars
            .iter()
            .rev()
            .find(|l| l.contains("100%") && l.contains("23/23"))
            .unwrap_or_else(|| panic!("no finished bar for epoch {epoch}:\n{shown}"));
        // The bar alone (the run's last line may follow on the same row).
        let done = done.split("finished ").next().unwrap_or(done);
        assert!(
            done.contains("train_loss_epoch=") && done.contains("train_acc_epoch=") && done.contains("val_acc="),
            "{done}"
        );
        assert!(!done.contains("val_loss="), "val_loss is not logged with prog_bar: {done}");
    }
    assert!(shown.contains("finished 2 epochs (46 steps)"), "{shown}");
    // Without a terminal there is no bar: one text line per epoch instead.
    let out = Command::new(env!("CARGO_BIN_EXE_jlc"))
        .arg("run")
        .arg(root().join("examples/digits_mlp.jl"))
        .args(["--set", &format!("trainer.default_root_dir={}", tempdir("progress-bar-plain").display())])
        .args(["--set", "trainer.max_epochs=2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains('%') && !err.contains("it/s"), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("epoch 1: ") && l.contains("val_loss=") && l.contains("val_acc=")),
        "{err}"
    );
}
