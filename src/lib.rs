//! JaxLightning: Lightning's structure, JAX's transformations, one compiled
//! training step.
//!
//! This facade re-exports the three crates and offers the entry points the
//! `jlc` binary and embedding programs use.

pub use compiler;
pub use runtime;
pub use trainer;

pub mod embed;

use compiler::diagnostic::{render_all, Diagnostic};
use compiler::lower::PrintItem;
use compiler::span::SourceMap;

/// Stack size for compiling: the front end recurses over the syntax tree
/// (nesting is limited to `syntax::depth::MAX_DEPTH`, and dropping a deep
/// tree before that limit is applied recurses too).
pub const COMPILER_STACK_BYTES: usize = 1 << 30;

/// Runs `f` on a thread with `COMPILER_STACK_BYTES` of stack (reserved, not committed).
pub fn with_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .stack_size(COMPILER_STACK_BYTES)
            .spawn_scoped(scope, f)
            .expect("spawn the compiler thread");
        match handle.join() {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

/// Reads a file imported with `use "path.jl"` from disk. `path` is already
/// resolved against the importing file's directory (`name` of the file
/// given to `check_source`, `run_script` or `dump`).
pub fn read_import(path: &str) -> Result<String, String> {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).map_err(|e| e.to_string())
}

/// Parses and checks a model file; returns its diagnostics and sources.
/// The `data` and `trainer` sections are checked too (unknown keys, types).
/// Files it imports are read from disk, relative to `name`'s directory.
pub fn check_source(name: &str, text: &str) -> (Vec<Diagnostic>, SourceMap) {
    check_source_with(name, text, &mut read_import)
}

/// `check_source` with `read` giving the text of imported files (tests
/// serve them from memory).
pub fn check_source_with(
    name: &str,
    text: &str,
    read: &mut (dyn FnMut(&str) -> Result<String, String> + Send),
) -> (Vec<Diagnostic>, SourceMap) {
    with_big_stack(|| check_source_here(name, text, read))
}

/// `check_source_with` on the calling thread: the caller provides the stack
/// (`with_big_stack` once around many checks, as the fuzz tests do, saves
/// spawning a thread per file).
pub fn check_source_here(name: &str, text: &str, read: &mut compiler::lower::ReadFile) -> (Vec<Diagnostic>, SourceMap) {
    let (prog, mut diags) = compiler::lower::load_with(name, text, read);
    diags.extend(check_loaded(&prog));
    (diags, prog.sources)
}

/// The checks of `check_source` on a program already loaded (so a caller
/// that goes on to lower it parses it once): the functions and models, and
/// the `data` and `trainer` sections. Needs a big stack, like `check_source_here`.
pub fn check_loaded(prog: &compiler::lower::Program) -> Vec<Diagnostic> {
    let mut diags = compiler::lower::check_program(prog);
    // `check_program` reported the sections' own errors; the checks below
    // run on what could be read of them, so one mistake hides no other.
    {
        let (sections, _) = compiler::lower::training_sections_lenient(prog);
        if let Some(data) = &sections.data {
            diags.extend(trainer::config::data_config(data).err().unwrap_or_default());
        }
        diags.extend(trainer::config::trainer_config(sections.trainer.as_ref()).err().unwrap_or_default());
        // What `jlc run` requires of the trained model (once the file parsed:
        // a model lost to a syntax error is not missing). Independent of
        // mistakes elsewhere (a typo in a method must not hide `model =
        // Net(n_layer = 2)`), but one report per place: what the checks above
        // reported at a span is not reported again.
        // (A failed `use` poisons names silently: the model would look empty.)
        let parsed = prog.modules.iter().all(|m| !m.syntax_errors && m.unparsed.is_empty());
        if sections.trainer.is_some() && parsed {
            let seen: std::collections::HashSet<_> =
                diags.iter().map(|d| (d.code.as_str(), d.primary_span())).collect();
            let trained = compiler::lower::model_checks::check_trained_model(prog, sections.trainer.as_ref());
            diags.extend(trained.into_iter().filter(|d| !seen.contains(&(d.code.as_str(), d.primary_span()))));
        }
    }
    diags
}

/// Does the file have a `trainer` section (so `jlc run` trains it)?
pub fn has_trainer(text: &str) -> bool {
    let (tokens, _) = compiler::syntax::lexer::lex(text);
    tokens.iter().any(|(_, t, _)| *t == compiler::syntax::lexer::Token::Trainer)
}

/// Compiles (with `opts`: `no_opt`, disabled rules) and runs a script's
/// `fn main`; returns the printed lines, or the rendered diagnostics.
pub fn run_script(
    name: &str,
    text: &str,
    backend: runtime::Backend,
    opts: &compiler::Options,
    color: bool,
) -> Result<Vec<String>, String> {
    with_big_stack(|| run_script_here(name, text, backend, opts, color))
}

fn run_script_here(
    name: &str,
    text: &str,
    backend: runtime::Backend,
    opts: &compiler::Options,
    color: bool,
) -> Result<Vec<String>, String> {
    let (prog, mut diags) = compiler::lower::load_with(name, text, &mut read_import);
    diags.extend(compiler::lower::check_program(&prog));
    if diags.iter().any(Diagnostic::is_error) {
        return Err(render_all(&diags, &prog.sources, color));
    }
    let script = compiler::compile_script(&prog, opts).map_err(|d| render_all(&d, &prog.sources, color))?;
    let mut exe = runtime::Executable::compile(script.func, backend).map_err(|e| format!("error: {e}\n"))?;
    let values = exe.run(&[]).map_err(|e| format!("error: {e}\n"))?;
    Ok(script
        .prints
        .iter()
        .map(|items| items.iter().map(|it| print_text(it, &values)).collect::<Vec<_>>().join(" "))
        .collect())
}

/// One printed item as text; `values` are the script's computed tensors.
fn print_text(item: &PrintItem, values: &[compiler::ir::Tensor]) -> String {
    match item {
        PrintItem::Text(s) => s.clone(),
        PrintItem::Value(i) => values[*i].to_string(),
        PrintItem::Tuple(items) => {
            let inner: Vec<String> = items.iter().map(|it| print_text(it, values)).collect();
            // A one-tuple keeps its comma, as Python writes it.
            if inner.len() == 1 {
                format!("({},)", inner[0])
            } else {
                format!("({})", inner.join(", "))
            }
        }
    }
}

/// A stage of the pipeline `jlc dump` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpStage {
    /// The lexer's tokens, with byte ranges.
    Tokens,
    /// The parsed syntax tree.
    Ast,
    /// Each item's signature with the types the checker infers.
    Typed,
    /// The lowered IR: of `main`, or for a model file the forward + loss
    /// function `training_step` defines (parameters, x, y -> loss, logs),
    /// before autodiff.
    Ir,
    /// The whole training step after autodiff (reverse mode w.r.t. the
    /// parameters) and the optimizer update, before the e-graph optimizer.
    /// For a script, the same as `Ir`: its transformations are applied
    /// where they are called.
    Grad,
    /// The IR after the e-graph optimizer.
    Opt,
    /// The PTX module the GPU backend emits for the optimized IR, after a
    /// `//` comment listing its launch plan (kernels and cuBLAS GEMMs).
    Ptx,
    /// The machine code the CPU backend generates for the optimized IR on
    /// this host, chunk by chunk, as Cranelift lists it, with its size and
    /// a digest of its bytes.
    Asm,
}

/// The text of one pipeline stage: tokens, AST, inferred signatures, or
/// the IR of `main` / of the training step (before autodiff, after it, or
/// after the e-graph optimizer). With `explain` (and `DumpStage::Opt`), the
/// optimizer's report follows the IR as `# ` lines: instructions, FLOPs,
/// bytes and estimated time before and after, and how often each rule fired.
/// `disabled_rules` names e-graph rules not to run (see `compiler::opt::rule_names`).
pub fn dump(
    name: &str,
    text: &str,
    stage: DumpStage,
    explain: bool,
    batch: usize,
    disabled_rules: &[String],
    color: bool,
) -> Result<String, String> {
    with_big_stack(|| dump_here(name, text, stage, explain, batch, disabled_rules, color))
}

fn dump_here(
    name: &str,
    text: &str,
    stage: DumpStage,
    explain: bool,
    batch: usize,
    disabled_rules: &[String],
    color: bool,
) -> Result<String, String> {
    let optimized = matches!(stage, DumpStage::Opt | DumpStage::Ptx | DumpStage::Asm);
    let mut opts = compiler::Options { no_opt: !optimized, ..Default::default() };
    opts.opt.disabled_rules = disabled_rules.to_vec();
    if stage == DumpStage::Tokens {
        let (toks, _) = compiler::syntax::lexer::lex(text);
        return Ok(toks.iter().map(|(l, t, r)| format!("{l}..{r} {t}\n")).collect());
    }
    let (prog, mut diags) = compiler::lower::load_with(name, text, &mut read_import);
    if stage == DumpStage::Ast {
        return Ok(format!("{:#?}\n", prog.user().ast));
    }
    diags.extend(compiler::lower::check_program(&prog));
    if diags.iter().any(Diagnostic::is_error) {
        return Err(render_all(&diags, &prog.sources, color));
    }
    if stage == DumpStage::Typed {
        return Ok(compiler::lower::typed::signatures(&prog));
    }
    if has_trainer(text) {
        let sections = compiler::lower::training_sections(&prog).map_err(|d| render_all(&d, &prog.sources, color))?;
        // The data's shapes are not known without the data; dump with the
        // types `training_step` declares for its inputs, batch `batch`.
        let (x, y) = declared_io_types(&prog, sections.trainer.as_ref(), batch).ok_or(
            "error: cannot tell the input types of `training_step`; declare them, e.g. `x: f32[B, 784], y: i32[B]`, with dims after the batch that are literals, consts or model config parameters with defaults\n",
        )?;
        if stage == DumpStage::Ir {
            // The forward + loss function, as `lower_training` hands it to autodiff.
            let forward = std::cell::RefCell::new(None);
            let keep = |f: &compiler::ir::Func| {
                *forward.borrow_mut() = Some(f.clone());
                f.clone()
            };
            compiler::lower::lower_training_with(&prog, sections.trainer.as_ref(), &x, &y, &keep)
                .map_err(|d| render_all(&d, &prog.sources, color))?;
            let forward = forward.into_inner().expect("lower_training_with lowers the forward function");
            return Ok(compiler::ir::text::print(&forward));
        }
        let (progs, reports) = compiler::compile_training_reported(&prog, sections.trainer.as_ref(), &x, &y, &opts)
            .map_err(|d| render_all(&d, &prog.sources, color))?;
        if stage == DumpStage::Ptx {
            return ptx_text(&progs.train_step);
        }
        if stage == DumpStage::Asm {
            return asm_text(&progs.train_step);
        }
        let mut out = compiler::ir::text::print(&progs.train_step);
        if explain {
            out.push_str(&explain_text(reports.iter().find(|(n, _)| n == "train_step").map(|(_, r)| r)));
            if let Some((_, r)) = reports.iter().find(|(n, _)| n == "forward before autodiff") {
                out.push_str("# the forward + loss function was optimized before autodiff too (kept: cheaper):\n");
                out.push_str(&r.explain());
            }
        }
        return Ok(out);
    }
    let (script, report) =
        compiler::compile_script_reported(&prog, &opts).map_err(|d| render_all(&d, &prog.sources, color))?;
    if stage == DumpStage::Ptx {
        return ptx_text(&script.func);
    }
    if stage == DumpStage::Asm {
        return asm_text(&script.func);
    }
    let mut out = compiler::ir::text::print(&script.func);
    if explain {
        out.push_str(&explain_text(report.as_ref()));
    }
    Ok(out)
}

/// `--stage asm`: a `;` header (chunks, bytes, an FNV-1a digest of the
/// bytes), then each chunk's listing under the IR instructions it holds.
fn asm_text(func: &compiler::ir::Func) -> Result<String, String> {
    use compiler::codegen::cpu;
    let chunks = cpu::machine_code(func, &cpu::Options::default())
        .map_err(|e| format!("error: the CPU backend cannot compile this program: {e}\n"))?;
    let bytes: usize = chunks.iter().map(|c| c.bytes.len()).sum();
    let digest = chunks
        .iter()
        .flat_map(|c| &c.bytes)
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    let mut out = format!(
        "; machine code of `{}` for this CPU: {} chunks, {bytes} bytes, FNV-1a digest {digest:#018x}\n",
        func.name,
        chunks.len()
    );
    for (k, chunk) in chunks.iter().enumerate() {
        let what = if chunk.wide {
            format!("the 512-bit kernel of instruction %{}'s loop", chunk.insts.start)
        } else if chunk.outlined {
            format!("the loop of instruction %{}, run in parts on threads", chunk.insts.start)
        } else {
            format!("instructions %{}..%{}", chunk.insts.start, chunk.insts.end)
        };
        out.push_str(&format!(
            "\n; chunk {k}: {what} of the IR as compiled, {} bytes\n{}",
            chunk.bytes.len(),
            chunk.text
        ));
    }
    Ok(out)
}

/// `--stage ptx`: the launch plan as `//` lines, then the PTX module.
fn ptx_text(func: &compiler::ir::Func) -> Result<String, String> {
    use compiler::codegen::ptx::{self, Step};
    let prog = ptx::emit(func).map_err(|e| format!("error: the GPU backend cannot compile this program: {e}\n"))?;
    let mut out = format!(
        "// launch plan of `{}`: {} steps, {} buffers ({} bytes) in {} device allocations ({} bytes)\n",
        func.name,
        prog.steps.len(),
        prog.buffers.len(),
        prog.buffers.iter().map(|b| b.bytes()).sum::<usize>(),
        prog.memory.slot_bytes.len(),
        prog.memory.bytes()
    );
    for step in &prog.steps {
        out.push_str(&match step {
            Step::Kernel { name, grid, .. } => format!("//   kernel {name}, grid {grid} x {}\n", ptx::BLOCK),
            Step::Gemm { inst, batch, m, n, k, .. } => {
                format!("//   cuBLAS gemm for %{inst}: batch {batch}, m {m}, n {n}, k {k}\n")
            }
        });
    }
    out.push_str(&prog.ptx);
    Ok(out)
}

/// `--explain`'s lines for one optimized program.
fn explain_text(report: Option<&compiler::opt::Report>) -> String {
    match report {
        Some(r) => r.explain(),
        None => format!("# opt: skipped (more than {} instructions)\n", compiler::MAX_OPT_INSTS),
    }
}

/// The input types `training_step` declares (`x: f32[B, 784], y: i32[B]`,
/// `tokens: i32[B, seq]` with `seq` a config value), resolved by
/// `compiler::lower::step_inputs`, with the first dim (the batch) set to
/// `batch`; the other dims must be known.
fn declared_io_types(
    prog: &compiler::lower::Program,
    trainer: Option<&compiler::lower::Section>,
    batch: usize,
) -> Option<(compiler::ir::Type, compiler::ir::Type)> {
    use compiler::check::Dim;
    // As the trainer takes them: a step without targets gets the type an
    // evaluation step declares for them, else class labels.
    let inputs = compiler::lower::declared_batch_inputs(prog, trainer).ok()?;
    let types: Vec<compiler::ir::Type> = inputs
        .iter()
        .map(|(_, i)| {
            let ty = i.ty.as_ref()?;
            let mut dims = vec![batch];
            for d in ty.dims.iter().skip(1) {
                match d {
                    Dim::Known(n) => dims.push(*n),
                    Dim::Sym(_) => return None,
                }
            }
            Some(compiler::ir::Type::new(ty.dtype, &dims))
        })
        .collect::<Option<_>>()?;
    match <[compiler::ir::Type; 2]>::try_from(types) {
        Ok([x, y]) => Some((x, y)),
        Err(types) if types.len() == 1 => {
            Some((types[0].clone(), compiler::ir::Type::new(compiler::ir::DType::I32, &[batch])))
        }
        Err(_) => None,
    }
}
