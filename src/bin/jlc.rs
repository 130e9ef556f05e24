//! `jlc`: the JaxLightning command line.
//!
//! `jlc run FILE` trains a model file (or runs its `fn main`), `jlc test` and
//! `jlc validate` evaluate a checkpoint, `jlc predict` writes `predict_step`'s
//! outputs as `.npy`, `jlc check FILE` reports every error
//! without running anything, `jlc fmt FILE` prints it in canonical form,
//! `jlc dump FILE --stage S` prints one stage of the pipeline. Exit codes: 0
//! success, 1 user error (diagnostics, bad data, a bad setting, a
//! non-finite loss), 2 a command line that does not parse (clap), 101
//! internal compiler error, 130 interrupted (SIGINT/SIGTERM/SIGHUP).

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "jlc", version, about = "JaxLightning: train model files with a compiled step")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the model file (or run its `fn main` if it has no trainer section).
    #[command(visible_alias = "fit")]
    Run {
        file: PathBuf,
        /// Override a setting: `--set trainer.max_epochs=3`.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
        /// Execution backend.
        #[arg(long, visible_alias = "accelerator", value_enum, default_value_t = BackendArg::Cpu)]
        backend: BackendArg,
        /// Skip the e-graph optimizer.
        #[arg(long)]
        no_opt: bool,
        /// Do not run this e-graph rewrite rule (repeatable; `jlc dump FILE
        /// --stage opt --explain` lists the rules that fire).
        #[arg(long = "disable-rule", value_name = "RULE")]
        disabled_rules: Vec<String>,
        /// The run's seed (initialization, shuffling, splits): the same as
        /// `--set trainer.seed=N`.
        #[arg(long)]
        seed: Option<u64>,
        /// Threads of the CPU backend's matrix products and convolutions
        /// (0: every CPU available, the default): the same as `--set
        /// trainer.threads=N`; for a `fn main` script, its only setting.
        /// Results do not depend on it. At most 1,024.
        #[arg(long, allow_negative_numbers = true, value_parser = thread_count)]
        threads: Option<usize>,
        /// Continue training from a checkpoint: a `.safetensors` path,
        /// `last` (the newest `version_N/checkpoints/last.safetensors` under
        /// the run's `default_root_dir/name`) or `best` (ModelCheckpoint's
        /// best file, as that `last` records it). Bit-exact, also
        /// mid-epoch; logs go to a new version directory.
        #[arg(long, value_name = "PATH|last|best")]
        resume: Option<String>,
        /// Start a new run from a checkpoint's parameters (fine-tuning, or
        /// another optimizer): its optimizer state, step count and
        /// callbacks are not taken. The parameters' names and shapes must
        /// match this model's.
        #[arg(long, value_name = "PATH")]
        init_from: Option<PathBuf>,
        /// When the loss or a gradient becomes NaN or infinite, replay that
        /// step in the reference interpreter and name the first operation
        /// that made one (JAX's `jax_debug_nans`).
        #[arg(long)]
        debug_nans: bool,
        /// Print the fully resolved configuration (defaults filled in,
        /// overrides applied) as the run directory's `hparams.yaml` would
        /// hold it, and exit without training.
        #[arg(long)]
        print_config: bool,
    },
    /// Run `test_step` on the test split with a checkpoint's parameters.
    Test {
        file: PathBuf,
        /// The checkpoint: a path, `last` (default) or `best`.
        #[arg(long, value_name = "PATH|last|best")]
        ckpt: Option<String>,
        /// Override a setting, as for `jlc run`: `--set data.batch_size=256`.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
        #[arg(long, visible_alias = "accelerator", value_enum, default_value_t = BackendArg::Cpu)]
        backend: BackendArg,
        /// Threads of the CPU backend's matrix products and convolutions,
        /// as for `jlc run` (0: every CPU; at most 1,024).
        #[arg(long, allow_negative_numbers = true, value_parser = thread_count)]
        threads: Option<usize>,
    },
    /// Run `validation_step` on the validation split with a checkpoint's parameters.
    Validate {
        file: PathBuf,
        /// The checkpoint: a path, `last` (default) or `best`.
        #[arg(long, value_name = "PATH|last|best")]
        ckpt: Option<String>,
        /// Override a setting, as for `jlc run`: `--set data.batch_size=256`.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
        #[arg(long, visible_alias = "accelerator", value_enum, default_value_t = BackendArg::Cpu)]
        backend: BackendArg,
        /// Threads of the CPU backend's matrix products and convolutions,
        /// as for `jlc run` (0: every CPU; at most 1,024).
        #[arg(long, allow_negative_numbers = true, value_parser = thread_count)]
        threads: Option<usize>,
    },
    /// Run `predict_step(self, x)` over a data split with a checkpoint's
    /// parameters and write the outputs as one `.npy` array.
    Predict {
        file: PathBuf,
        /// The checkpoint: a path, `last` (default) or `best`.
        #[arg(long, value_name = "PATH|last|best")]
        ckpt: Option<String>,
        /// The output file: `.npy`, or `.npz` (one array per tensor when `predict_step` returns a tuple).
        #[arg(long, value_name = "FILE.npy|FILE.npz")]
        out: PathBuf,
        /// Which examples: the test split (file order), the validation or
        /// training split (in the seeded split's order), or the whole
        /// training file (file order).
        #[arg(long, value_name = "test|val|train|all", default_value = "test")]
        split: String,
        /// Override a setting, as for `jlc run`: `--set data.batch_size=256`.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
        #[arg(long, visible_alias = "accelerator", value_enum, default_value_t = BackendArg::Cpu)]
        backend: BackendArg,
        /// Threads of the CPU backend's matrix products and convolutions,
        /// as for `jlc run` (0: every CPU; at most 1,024).
        #[arg(long, allow_negative_numbers = true, value_parser = thread_count)]
        threads: Option<usize>,
    },
    /// Check the file for errors without running it (exit 1 on errors).
    /// A file that trains is also checked on its data: the data loaded as
    /// `jlc run` loads them and every step method, `predict_step` and
    /// `on_train_end` elaborated for their batch types (methods whose
    /// parameters have no types are checked only this way).
    Check {
        file: PathBuf,
        /// Check the file alone, without loading its data (`--set` applies
        /// only to the check on the data, so the two do not go together).
        #[arg(long, conflicts_with = "overrides")]
        no_data: bool,
        /// Override a setting, as for `jlc run`: `--set data.batch_size=64`.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Print a shell completion script: `jlc completions bash > /etc/bash_completion.d/jlc`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Draw a run's logged metrics as SVG charts, one per quantity
    /// (`train_loss_step`, `train_loss_epoch` and `val_loss` share `loss.svg`).
    Plot {
        /// A run's `version_N` directory, its `metrics.csv`, the logger root
        /// above it or the trainer's `default_root_dir` (the newest version is plotted).
        run_dir: PathBuf,
        /// Where to write the charts (default: `RUN_DIR/plots`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the file in canonical form (`--write`: rewrite it in place).
    /// A file with syntax errors is not formatted (exit 1).
    Fmt {
        file: PathBuf,
        #[arg(long)]
        write: bool,
    },
    /// Print one stage of the pipeline.
    Dump {
        file: PathBuf,
        #[arg(long, value_enum)]
        stage: Stage,
        /// Batch size used to lower the training step (`--stage ir|grad|opt|ptx` on a model file).
        #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        batch: usize,
        /// With `--stage opt`: after the IR, print (as `# ` lines) the
        /// instructions, FLOPs, bytes and estimated time before and after
        /// the optimizer, and how many times each rewrite rule fired.
        #[arg(long)]
        explain: bool,
        /// Do not run this e-graph rewrite rule (repeatable).
        #[arg(long = "disable-rule", value_name = "RULE")]
        disabled_rules: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// Cranelift machine code.
    Cpu,
    /// The reference interpreter.
    Interp,
    /// PTX kernels and cuBLAS on an NVIDIA GPU (binaries built with `--features cuda`); `gpu` is Lightning's name.
    #[value(alias = "gpu")]
    Cuda,
    /// `cuda` when this binary has CUDA support and a GPU is present, else `cpu`.
    Auto,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Stage {
    Tokens,
    Ast,
    /// Each function's and model's signature with the types the checker infers.
    Typed,
    /// The lowered IR (for a model file: the forward + loss function of `training_step`, before autodiff).
    Ir,
    /// For a model file: the whole training step after autodiff and the optimizer update.
    Grad,
    /// The IR after the e-graph optimizer.
    Opt,
    /// The PTX the GPU backend emits (and its launch plan); needs no GPU.
    Ptx,
    /// The machine code the CPU backend generates for this CPU (Cranelift's listing).
    Asm,
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`jlc dump FILE |
    // head`) would panic; restore the default, as every Unix filter has it:
    // the process ends quietly when the reader goes away.
    // Safety: called first thing, before any thread exists.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // A panic is a compiler bug, never the user's fault: say so and exit 101.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal compiler error: {info}");
        let trace = std::backtrace::Backtrace::capture();
        if trace.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("{trace}");
        }
        eprintln!("note: this is a bug in jlc, please report it with the model file that triggered it");
    }));
    // The whole command runs on a thread with a large stack (see `with_big_stack`).
    match std::panic::catch_unwind(|| jaxlightning::with_big_stack(|| run(cli))) {
        Ok(code) => code,
        Err(_) => ExitCode::from(101),
    }
}

/// The text of a model file; an error naming the file when it cannot be
/// read or is not UTF-8 text (a binary file given by mistake had produced
/// thousands of diagnostics, one per stray byte).
fn read(file: &PathBuf) -> Result<String, ExitCode> {
    let bytes = std::fs::read(file).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", file.display());
        ExitCode::from(1)
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        eprintln!(
            "error: {} is not a UTF-8 text file (byte {at}, line {line}, is not UTF-8): a model file is text",
            file.display()
        );
        ExitCode::from(1)
    })
}

fn backend_of(b: BackendArg) -> runtime::Backend {
    match b {
        BackendArg::Cpu => runtime::Backend::Cpu,
        BackendArg::Interp => runtime::Backend::Interpreter,
        BackendArg::Cuda => runtime::Backend::Cuda,
        BackendArg::Auto => {
            let (backend, why) = runtime::auto_backend();
            eprintln!("{why}");
            backend
        }
    }
}

/// Prints a trainer error; returns its exit code (130 for an interrupt).
/// `--threads N`: 0 (every CPU) up to `threads::MAX_THREADS` (a pool
/// of 20,000 threads had exhausted memory before failing).
fn thread_count(s: &str) -> Result<usize, String> {
    use compiler::codegen::cpu::threads::{checked_count, count_range};
    s.trim().parse::<i64>().ok().and_then(checked_count).ok_or_else(|| format!("expected {}", count_range()))
}

fn fit_error(e: &trainer::FitError) -> ExitCode {
    eprint!("{e}");
    if !e.to_string().ends_with('\n') {
        eprintln!();
    }
    match e {
        trainer::FitError::Interrupted(_) => ExitCode::from(130),
        _ => ExitCode::from(1),
    }
}

/// SIGINT/SIGTERM (and SIGHUP): the first asks the loop to stop after the
/// current step (it writes `last` and flushes the logs, then jlc exits 130);
/// a second exits at once. Checkpoint writes are atomic, so even then no
/// file is torn.
fn install_interrupt_handler() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    let result = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this step (interrupt again to exit at once)");
    });
    if let Err(e) = result {
        eprintln!("warning: cannot install the interrupt handler: {e}");
    }
    flag
}

/// `jlc test` / `jlc validate`: the results table on stdout.
fn evaluate(
    stage: trainer::setup::Stage,
    file: PathBuf,
    ckpt: Option<String>,
    overrides: Vec<String>,
    backend: BackendArg,
    color: bool,
) -> ExitCode {
    let text = match read(&file) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let opts = trainer::eval::EvalOptions {
        overrides,
        backend: backend_of(backend),
        color,
        compiler: Default::default(),
        ckpt: ckpt.map(|c| trainer::Resume::parse(&c)),
    };
    match trainer::eval::run(stage, &file, &text, &opts) {
        Ok(summary) => {
            eprintln!("{} examples; checkpoint {}", summary.examples, summary.checkpoint.display());
            print!("{}", trainer::eval::results_table(stage, &summary.metrics));
            ExitCode::SUCCESS
        }
        Err(e) => fit_error(&e),
    }
}

fn run(cli: Cli) -> ExitCode {
    // The test of the internal-error path: nothing a user writes panics, so
    // the test asks for one (no other effect; named so nobody sets it by chance).
    if std::env::var_os("JLC_TEST_FORCE_INTERNAL_ERROR").is_some() {
        panic!("forced by JLC_TEST_FORCE_INTERNAL_ERROR");
    }
    let color = std::io::stderr().is_terminal();
    match cli.command {
        Command::Test { file, ckpt, mut overrides, backend, threads } => {
            overrides.extend(threads.map(|n| format!("trainer.threads={n}")));
            evaluate(trainer::setup::Stage::Test, file, ckpt, overrides, backend, color)
        }
        Command::Validate { file, ckpt, mut overrides, backend, threads } => {
            overrides.extend(threads.map(|n| format!("trainer.threads={n}")));
            evaluate(trainer::setup::Stage::Validate, file, ckpt, overrides, backend, color)
        }
        Command::Plot { run_dir, out } => match trainer::plot::plot_run(&run_dir, out.as_deref()) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Predict { file, ckpt, out, split, mut overrides, backend, threads } => {
            overrides.extend(threads.map(|n| format!("trainer.threads={n}")));
            let Some(split) = trainer::predict::Split::parse(&split) else {
                eprintln!("error: --split {split}: expected test, val, train or all");
                return ExitCode::from(1);
            };
            let text = match read(&file) {
                Ok(t) => t,
                Err(c) => return c,
            };
            let opts = trainer::predict::PredictOptions {
                overrides,
                backend: backend_of(backend),
                color,
                compiler: Default::default(),
                ckpt: ckpt.map(|c| trainer::Resume::parse(&c)),
                split,
                out: out.clone(),
            };
            match trainer::predict::run(&file, &text, &opts) {
                Ok(s) => {
                    eprintln!(
                        "{} examples; checkpoint {}; wrote {} {}",
                        s.examples,
                        s.checkpoint.display(),
                        out.display(),
                        s.shapes.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(" ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fit_error(&e),
            }
        }
        Command::Check { file, no_data, overrides } => {
            let text = match read(&file) {
                Ok(t) => t,
                Err(c) => return c,
            };
            let (diags, sources) = jaxlightning::check_source(&file.display().to_string(), &text);
            eprint!("{}", compiler::diagnostic::render_all(&diags, &sources, color));
            let errors = diags.iter().filter(|d| d.is_error()).count();
            if errors > 0 {
                eprintln!("error: {} found {errors} error{}", file.display(), if errors == 1 { "" } else { "s" });
                return ExitCode::from(1);
            }
            if no_data || !jaxlightning::has_trainer(&text) {
                eprintln!("{}: no errors", file.display());
                return ExitCode::SUCCESS;
            }
            match trainer::check::check_with_data(&file, &text, &overrides, color) {
                Ok(Some(checked)) => {
                    eprintln!(
                        "{}: no errors ({} checked on the data: {})",
                        file.display(),
                        checked.programs.join(", "),
                        checked.batch
                    );
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    eprintln!("{}: no errors (no `data` section: nothing checked on data)", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fit_error(&e),
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "jlc", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Run {
            file,
            mut overrides,
            backend,
            no_opt,
            disabled_rules,
            seed,
            threads,
            resume,
            init_from,
            debug_nans,
            print_config,
        } => {
            // What only a training run takes (a script would silently ignore it).
            let training_options: Vec<&str> = [
                ("--set", !overrides.is_empty()),
                ("--seed", seed.is_some()),
                ("--resume", resume.is_some()),
                ("--init-from", init_from.is_some()),
                ("--debug-nans", debug_nans),
                ("--print-config", print_config),
            ]
            .into_iter()
            .filter_map(|(option, given)| given.then_some(option))
            .collect();
            // Later overrides win, so `--seed` beats a `--set trainer.seed` given with it.
            overrides.extend(seed.map(|s| format!("trainer.seed={s}")));
            overrides.extend(threads.map(|n| format!("trainer.threads={n}")));
            if let Some(n) = threads {
                compiler::codegen::cpu::threads::set_threads(n);
            }
            let text = match read(&file) {
                Ok(t) => t,
                Err(c) => return c,
            };
            if let Err(c) = check_rule_names(&disabled_rules) {
                return c;
            }
            let compiler_opts = compiler::Options {
                no_opt,
                opt: compiler::opt::Options { disabled_rules, ..Default::default() },
                ..Default::default()
            };
            let backend = backend_of(backend);
            if jaxlightning::has_trainer(&text) {
                let opts = trainer::FitOptions {
                    overrides,
                    backend,
                    color,
                    progress: std::io::stderr().is_terminal(),
                    compiler: compiler_opts,
                    resume: resume.map(|r| trainer::Resume::parse(&r)),
                    init_from,
                    debug_nans,
                    interrupt: None,
                };
                if print_config {
                    return match trainer::fit::resolved_config(&file, &text, &opts) {
                        Ok(config) => {
                            print!("{config}");
                            ExitCode::SUCCESS
                        }
                        Err(e) => fit_error(&e),
                    };
                }
                let opts = trainer::FitOptions { interrupt: Some(install_interrupt_handler()), ..opts };
                match trainer::fit(&file, &text, &opts) {
                    Ok(summary) => {
                        let metrics: Vec<String> =
                            summary.final_metrics.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
                        let verb = match summary.stop {
                            trainer::Stop::MaxEpochs => "finished",
                            trainer::Stop::MaxSteps => "stopped at max_steps after",
                            trainer::Stop::Callback => "stopped early after",
                            trainer::Stop::MaxTime => "stopped at max_time after",
                        };
                        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
                        // No epoch finished (max_steps inside the first): no epoch metrics to show.
                        let shown = if metrics.is_empty() { String::new() } else { format!(": {}", metrics.join(" ")) };
                        let (epochs, steps) = (plural(summary.epochs, "epoch"), plural(summary.steps, "step"));
                        if summary.epochs == 0 {
                            // Stopped inside the first epoch: the steps say how far.
                            println!("{verb} {steps}, inside the first epoch{shown}");
                        } else {
                            println!("{verb} {epochs} ({steps}){shown}");
                        }
                        let csv = summary.log_dir.join("metrics.csv");
                        if csv.is_file() {
                            println!("logs: {}", csv.display());
                        }
                        if let Some(ck) = &summary.last_checkpoint {
                            println!("checkpoint: {}", ck.display());
                        }
                        if let Some(best) = summary
                            .best_checkpoint
                            .as_ref()
                            .filter(|_| summary.best_checkpoint != summary.last_checkpoint)
                        {
                            println!("best checkpoint: {}", best.display());
                        }
                        if !summary.test_metrics.is_empty() {
                            print!(
                                "{}",
                                trainer::eval::results_table(trainer::setup::Stage::Test, &summary.test_metrics)
                            );
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => fit_error(&e),
                }
            } else {
                if !training_options.is_empty() {
                    eprintln!(
                        "error: {} has no `trainer` section, so `jlc run` runs its `fn main`, which takes no {}: \
                         those options configure training runs",
                        file.display(),
                        training_options.join(", ")
                    );
                    return ExitCode::from(1);
                }
                match jaxlightning::run_script(&file.display().to_string(), &text, backend, &compiler_opts, color) {
                    Ok(lines) => {
                        for l in lines {
                            println!("{l}");
                        }
                        ExitCode::SUCCESS
                    }
                    Err(msg) => {
                        eprint!("{msg}");
                        ExitCode::from(1)
                    }
                }
            }
        }
        Command::Fmt { file, write } => {
            let text = match read(&file) {
                Ok(t) => t,
                Err(c) => return c,
            };
            let mut sources = compiler::span::SourceMap::default();
            let id = sources.add(&file.display().to_string(), &text);
            match compiler::syntax::format_source(id, &text) {
                Ok(out) if write => {
                    if out != text {
                        if let Err(e) = std::fs::write(&file, out) {
                            eprintln!("error: cannot write {}: {e}", file.display());
                            return ExitCode::from(1);
                        }
                    }
                    ExitCode::SUCCESS
                }
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(diags) => {
                    eprint!("{}", compiler::diagnostic::render_all(&diags, &sources, color));
                    eprintln!("error: {} has syntax errors; not formatted", file.display());
                    ExitCode::from(1)
                }
            }
        }
        Command::Dump { file, stage, batch, explain, disabled_rules } => {
            if let Err(c) = check_rule_names(&disabled_rules) {
                return c;
            }
            let text = match read(&file) {
                Ok(t) => t,
                Err(c) => return c,
            };
            let stage = match stage {
                Stage::Tokens => jaxlightning::DumpStage::Tokens,
                Stage::Ast => jaxlightning::DumpStage::Ast,
                Stage::Typed => jaxlightning::DumpStage::Typed,
                Stage::Ir => jaxlightning::DumpStage::Ir,
                Stage::Grad => jaxlightning::DumpStage::Grad,
                Stage::Opt => jaxlightning::DumpStage::Opt,
                Stage::Ptx => jaxlightning::DumpStage::Ptx,
                Stage::Asm => jaxlightning::DumpStage::Asm,
            };
            match jaxlightning::dump(&file.display().to_string(), &text, stage, explain, batch, &disabled_rules, color)
            {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(msg) => {
                    eprint!("{msg}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `--disable-rule` names must be rules of the optimizer: a typo would
/// otherwise silently change nothing.
fn check_rule_names(names: &[String]) -> Result<(), ExitCode> {
    let known = compiler::opt::rule_names();
    for n in names {
        if !known.contains(&n.as_str()) {
            let close = compiler::lower::suggest::closest(n, known.iter().copied());
            let hint = close.map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
            eprintln!(
                "error: `--disable-rule {n}`: no rewrite rule has that name{hint}; the rules are: {}",
                known.join(", ")
            );
            return Err(ExitCode::from(1));
        }
    }
    Ok(())
}
