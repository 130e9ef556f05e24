//! Golden diagnostics: every `tests/data/diagnostics/*.jl` is checked and
//! its rendered report (no colour, ASCII) compared with the `.stderr` file
//! beside it. `UPDATE_EXPECT=1 cargo test` blesses changes.

use std::path::Path;

#[test]
fn golden_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diagnostics");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jl"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "expected the golden inputs in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        let (diags, sources) = jaxlightning::check_source(name, &text);
        assert!(diags.iter().any(|d| d.is_error()), "{name}: expected at least one error");
        for d in &diags {
            assert!(d.primary_span().is_some(), "{name}: every diagnostic needs a span: {d:?}");
        }
        let rendered = compiler::diagnostic::render_all(&diags, &sources, false);
        expect_test::expect_file![file.with_extension("stderr")].assert_eq(&rendered);
    }
}

/// 100% of diagnostic kinds have a golden: every `Code` appears in at least
/// one `.stderr` file (and `Code::ALL` has every variant: the match below
/// is exhaustive, so a new code fails to compile here until it is listed).
#[test]
fn every_diagnostic_code_has_a_golden() {
    use compiler::diagnostic::Code;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diagnostics");
    let mut goldens = String::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "stderr") {
            goldens.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let mut listed = 0;
    for code in Code::ALL {
        match code {
            Code::InvalidToken
            | Code::Syntax
            | Code::UnknownName
            | Code::UnknownModule
            | Code::ShapeMismatch
            | Code::TypeMismatch
            | Code::BadCall
            | Code::NotAllowed
            | Code::BadSection => listed += 1,
        }
        assert!(
            goldens.contains(&format!("[{}] Error", code.as_str())),
            "no golden shows {code:?} ({})",
            code.as_str()
        );
    }
    // Counted by hand: the number of variants in the match above, each once.
    let distinct: std::collections::BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!((listed, distinct.len()), (9, 9), "Code::ALL misses a variant or lists one twice");
}

#[test]
fn matmul_mismatch_names_both_shapes_and_exits_1() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diagnostics/matmul_inner_dims_mismatch.jl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jlc")).arg("check").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("f32[B, 784]") && stderr.contains("f32[10, 784]"), "{stderr}");
    assert!(stderr.contains("matmul_inner_dims_mismatch.jl:3:5"), "line and column: {stderr}");
}

#[test]
fn check_accepts_the_examples_and_stdlib() {
    // On their data (shipped in examples/data), every program elaborated;
    // Fashion-MNIST's where its package is installed, else the file alone.
    let fashion = Path::new("/usr/share/datasets/fashion-mnist").is_dir();
    for (ex, on_data, programs) in [
        (
            "examples/digits_mlp.jl",
            true,
            "training_step, validation_step checked on the data: x f32[64, 64], y i32[64]",
        ),
        ("examples/linreg.jl", true, ""),
        ("examples/bnn_regression.jl", true, "training_step, on_train_end checked"),
        ("examples/char_transformer.jl", true, "training_step, validation_step, on_train_end checked"),
        ("examples/score_diffusion.jl", true, "on_train_end checked"),
        ("examples/fashion_mnist_mlp.jl", fashion, "test_step"),
        ("examples/fashion_mnist_cnn.jl", fashion, "test_step"),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(ex);
        let mut jlc = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"));
        jlc.arg("check").arg(&path);
        if !on_data {
            jlc.arg("--no-data");
        }
        let out = jlc.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{ex}: {stderr}");
        let want = if on_data { programs } else { "no errors" };
        assert!(stderr.contains(want), "{ex}: expected {want:?} in {stderr}");
    }
    // Every stdlib module checks cleanly as ordinary source.
    for (name, text) in compiler::lower::program::STDLIB {
        let (diags, sources) = jaxlightning::check_source(&format!("{name}.jl"), text);
        assert!(diags.is_empty(), "stdlib {name}:\n{}", compiler::diagnostic::render_all(&diags, &sources, false));
    }
}

/// A method without parameter types is elaborated only on the data's
/// types: `jlc check` loads the data as `jlc run` does, so a shape error in
/// `on_train_end` fails the check (it had passed, and `jlc run` failed);
/// `--no-data` checks the file alone; a missing data file is named.
#[test]
fn check_elaborates_untyped_methods_on_the_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = crate::examples::tempdir("check-on-data");
    let text = std::fs::read_to_string(root.join("examples/bnn_regression.jl")).unwrap();
    let data = root.join("examples/data/bnn_regression.npz");
    let text = text.replace("npz(\"data/bnn_regression.npz\")", &format!("npz({:?})", data.display().to_string()));
    let hook = "fn on_train_end(self, x, y, key) {\n";
    assert!(text.contains(hook));
    let bad = text.replace(hook, &format!("{hook}        let bogus = x + zeros((3, 7))\n"));
    let file = dir.join("bnn.jl");
    std::fs::write(&file, &bad).unwrap();
    let check = |extra: &[&str]| {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_jlc")).arg("check").arg(&file).args(extra).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = check(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("f32[200, 1] and f32[3, 7]") && stderr.contains("bnn.jl:"), "{stderr}");
    assert!(stderr.contains("while compiling `on_train_end`"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, stderr) = check(&["--no-data"]);
    assert_eq!((code, stderr.trim_end()), (Some(0), format!("{}: no errors", file.display()).as_str()));
    // Overrides apply as for `jlc run`: the batch type follows batch_size.
    std::fs::write(&file, &text).unwrap();
    let (code, stderr) = check(&["--set", "data.batch_size=8"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("x f32[8, 1], y f32[8, 1]"), "{stderr}");
    // The data file missing: named, exit 1.
    std::fs::write(&file, text.replace(&data.display().to_string(), "/nonexistent/bnn.npz")).unwrap();
    let (code, stderr) = check(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/bnn.npz"), "{stderr}");
}

#[test]
fn missing_file_is_a_user_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"))
        .args(["check", "/nonexistent/model.jl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.jl"));
}

#[test]
fn an_import_cycle_across_files_shows_the_chain() {
    // Relative to the package root (the working directory of tests), as `jlc check` would be run.
    let path = "tests/data/imports/cycle_a.jl";
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    let (diags, sources) = jaxlightning::check_source(path, &text);
    let rendered = compiler::diagnostic::render_all(&diags, &sources, false);
    expect_test::expect_file![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/imports/cycle_a.stderr")]
        .assert_eq(&rendered);
}

/// `jlc check` rejects the trained-model mistakes `jlc run` rejects, with
/// the same message, before any data is read.
#[test]
fn check_rejects_what_run_rejects_about_the_trained_model() {
    let base = "use nn.Linear
use losses.mse
use optim.adam

model Net {
    l: Linear(4, 1)

    fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mse(self.l(x), y)

    fn configure_optimizers(self) = adam(lr = 1e-2)
}

data = npz(\"missing.npz\") {
    batch_size = 8
}

trainer {
    max_epochs = 1
}
";
    // A training_step that logs `name` (inside an `if`, as a check must look everywhere).
    let logging = |name: &str| {
        base.replace(
            "fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mse(self.l(x), y)",
            &format!(
                "fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 {{\n        let loss = mse(self.l(x), y)\n        \
                 if true {{\n            log(\"{name}\", loss)\n        }}\n        loss\n    }}"
            ),
        )
    };
    // A user's own optimizer (docs/language.md §8) whose update ends with `ret`.
    // `rate`: the name of its step size.
    let own_optimizer = |ret: &str, rate: &str| {
        base.replace(
            "use optim.adam\n",
            &format!(
                "fn momentum_update(p, g, v, step, {rate} = 0.01, beta = 0.9) {{\n    let v = beta * v + g\n    {ret}\n}}\n\n\
                 fn momentum({rate} = 0.01) = optimizer(momentum_update, {rate} = {rate}, beta = 0.9)\n"
            ),
        )
        .replace("adam(lr = 1e-2)", "momentum()")
    };
    // Without a mistake, the own optimizer (and log_lr on its `lr`) checks clean.
    let fine = own_optimizer("(p - lr * v, v)", "lr").replace("max_epochs = 1", "max_epochs = 1\n    log_lr = true");
    let (diags, sources) = jaxlightning::check_source("net.jl", &fine);
    assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &sources, false));
    // A mistake inside the update is reported once, at the mistake (not
    // also as what it made the update return).
    let broken = own_optimizer("(p - lr * mse(v), v)", "lr");
    let (diags, sources) = jaxlightning::check_source("net.jl", &broken);
    let rendered = compiler::diagnostic::render_all(&diags, &sources, false);
    assert_eq!(diags.len(), 1, "{rendered}");
    assert!(rendered.contains("missing argument `target` of `mse`"), "{rendered}");
    let cases = [
        (base.replace("max_epochs = 1", "model = Nett()"), "unknown model `Nett`"),
        (
            own_optimizer("p - lr * v", "lr"),
            "optimizer update `momentum_update` must return a tuple (p, states...) of 2 values, not a tensor of type f32[4, 1]",
        ),
        (
            own_optimizer("(sum(p - lr * v), v)", "lr"),
            "optimizer update `momentum_update` returned a tensor of type f32 for parameter `l.weight` of type f32[4, 1]",
        ),
        (
            own_optimizer("(p - rate * v, v)", "rate").replace("max_epochs = 1", "max_epochs = 1\n    log_lr = true"),
            "`log_lr = true`: the optimizer `momentum_update` has no `lr` hyperparameter",
        ),
        (base.replace("    l: Linear(4, 1)\n", "").replace("self.l(x)", "x[:, 0:1]"), "has no trainable parameters"),
        (base.replace("adam(lr = 1e-2)", "1e-2"), "`configure_optimizers` must return an optimizer"),
        (base.replace("fn training_step(", "fn train_step("), "no model with a `training_step` method"),
        (
            base.replace("fn training_step(", "fn train_step(").replace("max_epochs = 1", "model = Net()"),
            "model `Net` has no `training_step` method",
        ),
        (
            base.replace("    fn configure", "    fn predict_step(self, x, y) = self.l(x)\n\n    fn configure"),
            "`predict_step` must take (self, x) or (self, x, key)",
        ),
        (
            base.replace("    fn configure", "    fn on_train_end(self, x, y, z) {\n    }\n\n    fn configure"),
            "`on_train_end` must take",
        ),
        (
            logging("grad_norm").replace("max_epochs = 1", "max_epochs = 1\n    log_grad_norm = true"),
            "`training_step` logs `grad_norm`, which `log_grad_norm = true` logs too",
        ),
        (
            logging("lr").replace("max_epochs = 1", "max_epochs = 1\n    log_lr = true"),
            "`training_step` logs `lr`, which `log_lr = true` logs too",
        ),
    ];
    // Without the setting, logging either name is fine.
    for name in ["grad_norm", "lr"] {
        let (diags, sources) = jaxlightning::check_source("net.jl", &logging(name));
        assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &sources, false));
    }
    for (text, want) in cases {
        let (diags, sources) = jaxlightning::check_source("net.jl", &text);
        let rendered = compiler::diagnostic::render_all(&diags, &sources, false);
        assert!(rendered.contains(want), "jlc check: expected {want:?}, got:\n{rendered}\n{text}");
        // `jlc run` stops at the same mistake (before the missing data file only
        // where the data is read later; either way it fails and says why).
        let opts = trainer::FitOptions {
            overrides: vec![format!("trainer.default_root_dir={}", crate::examples::tempdir("check-run").display())],
            ..Default::default()
        };
        assert!(trainer::fit(std::path::Path::new("net.jl"), &text, &opts).is_err());
    }
}

/// One mistake, one report (error recovery): deleting one bracket, comma or
/// `=` outside comments from the examples, 300 deterministic cases, gives
/// exactly one error in at least 85% of the cases that give any, no error
/// in at most 5% (deletions that leave a valid program, such as `<=` to
/// `<`; more would mean errors gone unreported), and never more than 8 (before the recovery work of session 16: about 36% and up
/// to 19, from names a broken statement or declaration would have bound;
/// now 281 of 299, at most 6).
#[test]
fn one_deleted_token_gives_one_report() {
    use compiler::ir::generate::Rng as SplitMix;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jl"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    let mut rng = SplitMix(0x0e_0e_0e);
    let (mut with_errors, mut one, mut silent, mut worst) = (0, 0, 0, (0, String::new()));
    jaxlightning::with_big_stack(|| {
        for _ in 0..300 {
            let (name, text) = &files[rng.below(files.len())];
            let kind = [')', ']', '}', '(', '[', ',', '='][rng.below(7)];
            // Positions of `kind` in code (not in a comment).
            let spots: Vec<usize> = text
                .match_indices(kind)
                .map(|(i, _)| i)
                .filter(|&i| !text[text[..i].rfind('\n').map_or(0, |j| j + 1)..i].contains('#'))
                .collect();
            if spots.is_empty() {
                continue;
            }
            let at = spots[rng.below(spots.len())];
            let mutated = format!("{}{}", &text[..at], &text[at + 1..]);
            let (diags, _) = jaxlightning::check_source_here(name, &mutated, &mut |_| Err("no imports".into()));
            let errors = diags.iter().filter(|d| d.is_error()).count();
            if errors > 0 {
                with_errors += 1;
                one += (errors == 1) as usize;
            } else {
                // Still valid (`<=` to `<`), or an error gone unreported.
                silent += 1;
            }
            if errors > worst.0 {
                worst = (errors, format!("{name}, `{kind}` deleted at byte {at}"));
            }
        }
    });
    assert!(with_errors >= 200, "only {with_errors} mutations gave an error");
    assert!(silent * 100 <= (with_errors + silent) * 5, "{silent} mutations gave no error");
    assert!(one * 100 >= with_errors * 85, "{one} of {with_errors} mutations gave exactly one error");
    assert!(worst.0 <= 8, "{} errors for one mistake: {}", worst.0, worst.1);
}

/// A compiler bug is not the user's mistake: exit 101 (not 1) with a
/// message that says so, distinct from a user error's exit 1.
#[test]
fn an_internal_error_exits_101_and_says_it_is_a_bug() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_mlp.jl");
    let run = |force: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"));
        cmd.arg("check").arg(&file);
        if force {
            cmd.env("JLC_TEST_FORCE_INTERNAL_ERROR", "1");
        }
        cmd.output().unwrap()
    };
    let out = run(true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{err}");
    assert!(err.starts_with("error: internal compiler error: "), "{err}");
    assert!(err.contains("this is a bug in jlc"), "{err}");
    // The same command without it: a clean check (exit 0); a user error exits 1.
    assert_eq!(run(false).status.code(), Some(0));
    let bad = std::env::temp_dir().join(format!("jlc-ice-{}.jl", std::process::id()));
    std::fs::write(&bad, "fn f(x: f32[3]) -> f32[4] = x\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jlc")).arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("internal compiler error"));
    let _ = std::fs::remove_file(&bad);
}

/// Command-line mistakes a first run meets: each is refused with a message
/// that names the option, where the value came from and what is allowed,
/// and none of them starts anything (a `--threads 20000` pool had
/// exhausted memory; a script had silently ignored `--seed`; a binary file
/// given as the model gave one diagnostic per stray byte).
#[test]
fn cli_mistakes_are_refused_with_their_origin() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let digits = root.join("examples/digits_mlp.jl");
    let digits = digits.to_str().unwrap();
    let jlc = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_jlc")).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for threads in ["20000", "-1", "abc"] {
        let (code, err) = jlc(&["run", digits, "--threads", threads]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(&format!("invalid value '{threads}' for '--threads")), "{err}");
        assert!(err.contains("expected a thread count from 0 (every CPU) to 1024"), "{err}");
    }
    let (code, err) = jlc(&["check", digits, "--set", "trainer.threads=5000"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`threads` must be a thread count from 0 (every CPU) to 1024"), "{err}");
    assert!(err.contains("found 5000") && err.contains("set by `--set trainer.threads=5000`"), "{err}");
    // A value as written, not as the compiler stores it (`Str("abc")`).
    let (code, err) = jlc(&["check", digits, "--set", "trainer.max_epochs=abc"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("found \"abc\"") && err.contains("set by `--set trainer.max_epochs=abc`"), "{err}");
    let (code, err) = jlc(&["check", digits, "--set", "trainer.max_epoch=3"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("did you mean `max_epochs`?") && err.contains("set by `--set trainer.max_epoch=3`"), "{err}");
    // Both sections' mistakes at once, from `jlc run` as from `jlc check`.
    let (code, err) = jlc(&["run", digits, "--set", "data.bach_size=3", "--set", "trainer.max_epoch=1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("unknown trainer setting `max_epoch`") && err.contains("unknown data setting `bach_size`"),
        "{err}"
    );
    // A script takes no training options.
    let script = root.join("examples/linreg.jl");
    let (code, err) = jlc(&["run", script.to_str().unwrap(), "--seed", "3", "--set", "trainer.max_epochs=1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("has no `trainer` section") && err.contains("--set, --seed"), "{err}");
    // Not a text file.
    let binary = root.join("examples/data/digits.csv.gz");
    let (code, err) = jlc(&["check", binary.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("digits.csv.gz is not a UTF-8 text file"), "{err}");
    assert!(err.lines().count() < 5, "one message, not one per byte: {err}");
}

/// `jlc check` catches what `fit` would refuse before its first step: a
/// monitor that names no metric (with the close name), and a validation
/// metric monitored where the run validates nothing (with why).
#[test]
fn check_reports_monitors_that_name_no_metric() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = |sets: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"));
        cmd.arg("check").arg(root.join("examples/digits_mlp.jl"));
        for s in sets {
            cmd.args(["--set", s]);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = check(&["trainer.early_stopping_monitor=val_los"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no metric `val_los` at the end of an epoch (did you mean `val_loss`?)"), "{err}");
    let (code, err) = check(&["trainer.checkpoint_filename=e{epoch}-{val_accc:.3}"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("trainer.checkpoint_filename: no metric `val_accc`") && err.contains("`val_acc`"), "{err}");
    let (code, err) = check(&["trainer.early_stopping_monitor=val_loss", "data.val_split=0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("validation_step logs `val_loss`, but this run validates nothing"), "{err}");
    let (code, err) = check(&["trainer.early_stopping_monitor=val_loss"]);
    assert_eq!(code, Some(0), "{err}");
}

/// A monitored score (`val_acc`) under the default mode "min" gets a note
/// (it would keep the worst epoch); "max", or a loss under "min", none.
#[test]
fn a_score_monitored_for_its_minimum_gets_a_note() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let logs = crate::examples::tempdir("mode-note");
    let run = |sets: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"));
        cmd.arg("run").arg(root.join("examples/digits_mlp.jl"));
        for s in ["trainer.max_epochs=1".to_string(), format!("trainer.default_root_dir={}", logs.display())]
            .iter()
            .map(String::as_str)
            .chain(sets.iter().copied())
        {
            cmd.args(["--set", s]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["trainer.checkpoint_monitor=val_acc", "trainer.early_stopping_monitor=val_acc"]);
    assert!(err.contains("note: checkpoint_monitor = \"val_acc\" with checkpoint_mode = \"min\""), "{err}");
    assert!(err.contains("note: early_stopping_monitor = \"val_acc\""), "{err}");
    let err = run(&["trainer.checkpoint_monitor=val_acc", "trainer.checkpoint_mode=max"]);
    assert!(!err.contains("note: checkpoint_monitor"), "{err}");
    let err = run(&["trainer.checkpoint_monitor=val_loss"]);
    assert!(!err.contains("note: checkpoint_monitor"), "{err}");
}

/// `jlc run` refuses a step method's wrong signature as `jlc check` does,
/// also for a method the run never compiles (`predict_step`).
#[test]
fn run_refuses_a_wrong_predict_step_signature_like_check() {
    let text = "use nn.Linear\nuse losses.cross_entropy\nuse optim.adam\n\nmodel Net {\n    l: Linear(2, 2)\n\n\
                \x20   fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 = cross_entropy(self.l(x), y)\n\n\
                \x20   fn predict_step(self, x, y) = self.l(x)\n\n\
                \x20   fn configure_optimizers(self) = adam(lr = 1e-2)\n}\n\n\
                data = synthetic(\"moons\", n = 64) {\n    batch_size = 16\n}\n\ntrainer {\n    max_epochs = 1\n}\n";
    let want = "`predict_step` must take (self, x) or (self, x, key)";
    let (diags, _) = jaxlightning::check_source("net.jl", text);
    assert!(diags.iter().any(|d| d.message.contains(want)), "{diags:?}");
    let opts = trainer::FitOptions {
        overrides: vec![format!(
            "trainer.default_root_dir={}",
            crate::examples::tempdir("predict-signature").display()
        )],
        ..Default::default()
    };
    let err = trainer::fit(std::path::Path::new("net.jl"), text, &opts).err().expect("refused").to_string();
    assert!(err.contains(want), "{err}");
}
