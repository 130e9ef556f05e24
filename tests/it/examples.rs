//! The shipped examples do what their comments promise.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn linreg_recovers_the_line() {
    let text = std::fs::read_to_string(root().join("examples/linreg.jl")).unwrap();
    let lines =
        jaxlightning::run_script("linreg.jl", &text, runtime::Backend::Cpu, &Default::default(), false).unwrap();
    // "w 2.999998 b 2.000001"
    let words: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(words[0], "w");
    let w: f64 = words[1].parse().unwrap();
    let b: f64 = words[3].parse().unwrap();
    assert!((w - 3.0).abs() < 1e-2 && (b - 2.0).abs() < 1e-2, "fitted w = {w}, b = {b}");
}

fn fit_digits(extra: &[&str], log_root: &Path) -> trainer::FitSummary {
    let path = root().join("examples/digits_mlp.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    overrides.push(format!("trainer.default_root_dir={}", log_root.display()));
    let opts = trainer::FitOptions { overrides, ..Default::default() };
    trainer::fit(&path, &text, &opts).unwrap_or_else(|e| panic!("{e}"))
}

fn metric(summary: &trainer::FitSummary, name: &str) -> f64 {
    summary.final_metrics.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no metric {name}")).1
}

/// The batch-norm CNN example: learns (val_acc at least 0.95 after 3
/// epochs; 0.976 measured), and `jlc validate`'s evaluation of its last
/// checkpoint (running statistics read back from the file) gives the
/// training run's final validation numbers exactly.
#[test]
fn batch_norm_cnn_example_learns_and_evaluates_from_its_checkpoint() {
    let path = root().join("examples/digits_cnn_bn.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let logs = tempdir("digits-cnn-bn");
    let overrides = vec!["trainer.max_epochs=3".to_string(), format!("trainer.default_root_dir={}", logs.display())];
    let opts = trainer::FitOptions { overrides: overrides.clone(), ..Default::default() };
    let summary = trainer::fit(&path, &text, &opts).unwrap_or_else(|e| panic!("{e}"));
    let acc = metric(&summary, "val_acc");
    assert!(acc >= 0.95, "val_acc = {acc}");
    let buffers: Vec<&str> =
        summary.params.iter().filter(|(p, _)| !p.trainable()).map(|(p, _)| p.path.as_str()).collect();
    assert_eq!(buffers.len(), 6, "{buffers:?}");
    let ckpt = summary.last_checkpoint.as_ref().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"))
        .args(["validate", path.to_str().unwrap(), "--ckpt", ckpt.to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{out}");
    let val_acc = out.lines().find(|l| l.trim_start().starts_with("val_acc")).unwrap_or_else(|| panic!("{out}"));
    let value: f64 = val_acc.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(value, acc, "{out}");
}

/// The autoencoder example trains without targets and rebuilds the digits
/// far better than the mean image does (its MSE is 0.0733 on this file),
/// and saves the reconstructions.
#[test]
fn autoencoder_example_reconstructs_better_than_the_mean_image() {
    let path = root().join("examples/digits_autoencoder.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let logs = tempdir("digits-autoencoder");
    let overrides = vec!["trainer.max_epochs=15".to_string(), format!("trainer.default_root_dir={}", logs.display())];
    let opts = trainer::FitOptions { overrides, ..Default::default() };
    let summary = trainer::fit(&path, &text, &opts).unwrap_or_else(|e| panic!("{e}"));
    let val_mse = metric(&summary, "val_mse");
    assert!(val_mse < 0.5 * 0.0733, "val_mse = {val_mse}");
    let png = std::fs::read(summary.log_dir.join("reconstructions.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

#[test]
fn digits_classifier_reaches_090_validation_accuracy() {
    let logs = tempdir("digits");
    let summary = fit_digits(&[], &logs);
    let acc = metric(&summary, "val_acc");
    assert!(acc >= 0.90, "val_acc = {acc}");
    let csv = std::fs::read_to_string(summary.log_dir.join("metrics.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("epoch,step,") && header.contains("val_acc") && header.contains("train_loss_step"),
        "{header}"
    );
    assert!(summary.log_dir.join("hparams.yaml").exists());
    assert!(summary.log_dir.ends_with("lightning_logs/version_0"), "{}", summary.log_dir.display());
}

#[test]
fn same_seed_gives_identical_metrics_csv() {
    let logs = tempdir("determinism");
    let a = fit_digits(&["trainer.max_epochs=2"], &logs);
    let b = fit_digits(&["trainer.max_epochs=2"], &logs);
    assert_ne!(a.log_dir, b.log_dir, "each run gets a new version directory");
    let read = |s: &trainer::FitSummary| std::fs::read(s.log_dir.join("metrics.csv")).unwrap();
    assert_eq!(read(&a), read(&b));
    let c = fit_digits(&["trainer.max_epochs=2", "trainer.seed=1"], &logs);
    assert_ne!(read(&a), read(&c), "another seed must give another run");
}

#[test]
fn interpreter_and_jit_train_the_same_model() {
    // The same two epochs on both backends: the JIT's GEMM sums in another
    // order, so parameters agree to float32 rounding, not bitwise.
    let logs = tempdir("backends");
    let path = root().join("examples/digits_mlp.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let run = |backend| {
        let overrides = vec!["trainer.max_epochs=2".into(), format!("trainer.default_root_dir={}", logs.display())];
        trainer::fit(&path, &text, &trainer::FitOptions { overrides, backend, ..Default::default() }).unwrap()
    };
    let jit = run(runtime::Backend::Cpu);
    let interp = run(runtime::Backend::Interpreter);
    for ((spec, a), (_, b)) in jit.params.iter().zip(&interp.params) {
        let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
        let max_diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(max_diff < 1e-3, "{}: max |jit - interp| = {max_diff}", spec.path);
    }
}

/// A fresh directory under the target dir (no temp-dir crate needed), or
/// under the system's temp dir where that is not writable (the prebuilt
/// test binary on the GPU machine).
pub fn tempdir(name: &str) -> std::path::PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let base = if std::fs::create_dir_all(target).is_ok() { target.to_path_buf() } else { std::env::temp_dir() };
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `examples/embed.rs`'s model file through the embedding API, shortened:
/// 300 gradient steps from Rust lower the loss at least fivefold.
#[test]
fn the_embed_example_model_trains_from_rust() {
    use compiler::ir::Tensor;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/embed_model.jl");
    let module = jaxlightning::embed::Module::from_file(&path).unwrap();
    let mut step = module.function("loss").unwrap().grad(&["w1", "b1", "w2"]).unwrap().jit(runtime::Backend::Cpu);
    let (n, h) = (32, 8);
    let xs: Vec<f32> = (0..n).map(|i| -1.0 + 2.0 * i as f32 / (n - 1) as f32).collect();
    let ys: Vec<f32> = xs.iter().map(|x| (3.0 * x).sin()).collect();
    let pattern =
        |k: usize, scale: f32| -> Vec<f32> { (0..k).map(|i| scale * ((i * 7 % 11) as f32 / 5.0 - 1.0)).collect() };
    let mut params = vec![
        Tensor::f32(&[1, h], pattern(h, 2.0)),
        Tensor::f32(&[h], pattern(h, 1.0)),
        Tensor::f32(&[h, 1], pattern(h, 0.3)),
    ];
    let mut losses = Vec::new();
    for _ in 0..300 {
        let mut inputs = params.clone();
        inputs.push(Tensor::f32(&[n, 1], xs.clone()));
        inputs.push(Tensor::f32(&[n, 1], ys.clone()));
        let out = step.call(&inputs).unwrap();
        losses.push(out[0].scalar_value());
        for (p, g) in params.iter_mut().zip(&out[1..]) {
            let v: Vec<f32> = p.to_f64_vec().iter().zip(g.to_f64_vec()).map(|(p, g)| (p - 0.05 * g) as f32).collect();
            *p = Tensor::f32(&p.ty().shape.0, v);
        }
    }
    assert!(losses[299] < losses[0] / 5.0, "loss {} -> {}", losses[0], losses[299]);
    assert_eq!(step.compiled_signatures(), 1);
}

/// The examples the GPU backend cannot compile yet, and the op that stops
/// each (the error must name it: a new failure is a regression).
/// (Empty since log1p, expm1, sin, cos and erf got PTX rules.)
const NOT_YET_ON_THE_GPU: &[(&str, &str)] = &[];

/// `ptxas`, from `JLC_PTXAS` or `PATH` (the PyPI wheel
/// `nvidia-cuda-nvcc-cu12` carries one), or `None`.
fn ptxas() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("JLC_PTXAS") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("ptxas")).find(|p| p.is_file())
}

/// Every example's training step (or `main`) through `jlc dump --stage
/// ptx`: a launch plan and a PTX module, and — where `ptxas` is installed —
/// a module that assembles for sm_90. Examples in `NOT_YET_ON_THE_GPU` must
/// fail with an error naming their op.
#[test]
fn every_example_emits_ptx_that_ptxas_assembles() {
    let ptxas = ptxas();
    if ptxas.is_none() {
        println!("ptxas not found (set JLC_PTXAS or put it on PATH): checking emission only");
    }
    let dir = std::env::temp_dir().join(format!("jlc-example-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.extension().is_none_or(|e| e != "jl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("trainer {") && !text.contains("fn main(") {
            continue; // a library file (embed_model.jl): nothing to compile on its own
        }
        let out = jaxlightning::dump(&name, &text, jaxlightning::DumpStage::Ptx, false, 8, &[], false);
        if let Some((_, op)) = NOT_YET_ON_THE_GPU.iter().find(|(n, _)| *n == name) {
            let Err(err) = out else { panic!("{name} compiles for the GPU now: drop it from NOT_YET_ON_THE_GPU") };
            assert!(err.contains(&format!("= {op}: not supported by the GPU backend")), "{name}: {err}");
            continue;
        }
        let ptx = out.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(ptx.starts_with("// launch plan of `"), "{name}");
        assert!(ptx.contains(".target sm_80") && ptx.contains(".entry "), "{name}: no kernels");
        if let Some(ptxas) = &ptxas {
            let file = dir.join(name.replace(".jl", ".ptx"));
            std::fs::write(&file, &ptx).unwrap();
            let res = std::process::Command::new(ptxas)
                .args(["-arch=sm_90", "-o", "/dev/null"])
                .arg(&file)
                .output()
                .expect("running ptxas");
            assert!(res.status.success(), "{name}: ptxas failed:\n{}", String::from_utf8_lossy(&res.stderr));
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} examples compiled for the GPU");
    std::fs::remove_dir_all(&dir).ok();
}

/// `--accelerator auto` falls back to the CPU without CUDA; `jlc plot` on
/// a logger root plots the newest run: one SVG per metric group, the paths
/// printed one per line; and the two Rust examples, where
/// `cargo test` built them (it builds examples with the test targets), run
/// and print what their comments promise.
#[test]
fn jlc_plot_and_the_rust_examples_run() {
    let logs = tempdir("plot-cli");
    let logs_at = format!("trainer.default_root_dir={}", logs.display());
    let model = root().join("examples/digits_mlp.jl");
    let (code, _, err) =
        crate::evaluate::jlc_out(&["run", model.to_str().unwrap(), "--set", &logs_at, "--set", "trainer.max_epochs=2"]);
    assert_eq!(code, 0, "{err}");
    // `--accelerator auto` in a binary without CUDA (the test build) trains on the CPU and says why.
    let (code, _, err) = crate::evaluate::jlc_out(&[
        "run",
        model.to_str().unwrap(),
        "--set",
        &logs_at,
        "--set",
        "trainer.max_epochs=1",
        "--accelerator",
        "auto",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("accelerator: cpu (Cranelift JIT)"), "{err}");
    // `gpu` (Lightning's name) is `cuda`: here, a binary without it, said before any run directory is made.
    let (code, _, err) =
        crate::evaluate::jlc_out(&["run", model.to_str().unwrap(), "--set", &logs_at, "--accelerator", "gpu"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("built without CUDA support"), "{err}");
    // A newer run with only the header (killed before its first row) is
    // passed over: the root plots the newest run with data.
    let killed = logs.join("lightning_logs/version_2");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(killed.join("metrics.csv"), "epoch,step,train_loss_step\n").unwrap();
    let (code, out, err) = crate::evaluate::jlc_out(&["plot", logs.join("lightning_logs").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let files: Vec<&str> = out.lines().collect();
    assert!(files.iter().any(|f| f.contains("loss")) && files.iter().any(|f| f.contains("acc")), "{out}");
    for f in &files {
        // The newest run: version_1 (the `auto` one).
        assert!(f.starts_with(logs.join("lightning_logs/version_1/plots").to_str().unwrap()), "{f}");
        let svg = std::fs::read_to_string(f).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{f} is not an SVG");
    }
    // A metrics.csv itself names its run.
    let csv = logs.join("lightning_logs/version_0/metrics.csv");
    let (code, out, err) = crate::evaluate::jlc_out(&["plot", csv.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().all(|f| f.contains("version_0/plots")), "{out}");
    let (code, _, err) = crate::evaluate::jlc_out(&["plot", logs.join("nothing-here").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing-here"), "a missing run directory is named: {err}");

    let examples = Path::new(env!("CARGO_BIN_EXE_jlc")).parent().unwrap().join("examples");
    for (name, promise) in [("fit_from_rust", "test_acc"), ("embed", "loss")] {
        let bin = examples.join(name);
        if !bin.exists() {
            eprintln!("skipped `{name}`: {} is not built (run the whole `cargo test`)", bin.display());
            continue;
        }
        let out = std::process::Command::new(&bin).current_dir(&logs).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{name}: {text}");
        assert!(text.contains(promise), "{name} prints {promise}: {text}");
    }
}
