//! The JaxLightning compiler: source text in, compiled programs out.
//!
//! source -lex-> tokens -parse-> ast -check-> checked ast -lower-> ir
//!   -differentiate-> ir (with grads) -optimize-> ir -emit-> machine code
//!
//! `compile_training` and `compile_script` below are the whole pipeline, in
//! order. No stage does IO: stdlib modules are embedded in the binary. Only
//! `codegen::cpu` links Cranelift.

pub mod autodiff;
pub mod check;
pub mod codegen;
pub mod diagnostic;
pub mod ir;
pub mod lower;
pub mod opt;
pub mod span;
pub mod syntax;

use diagnostic::Diagnostic;
use ir::{Func, Type};

/// Compiler options that change what code is produced.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Skip the e-graph optimizer (the programs still compute the same values).
    pub no_opt: bool,
    /// Do not also try optimizing the forward function before autodiff
    /// (see `compile_training_reported`).
    pub no_opt_before_autodiff: bool,
    pub opt: opt::Options,
}

/// The training pipeline: check -> lower the step -> differentiate -> add the
/// optimizer update -> optimize. The runtime then emits machine code.
pub fn compile_training(
    prog: &lower::Program,
    trainer: Option<&lower::Section>,
    x_ty: &Type,
    y_ty: &Type,
    opts: &Options,
) -> Result<lower::TrainPrograms, Vec<Diagnostic>> {
    compile_training_reported(prog, trainer, x_ty, y_ty, opts).map(|(progs, _)| progs)
}

/// The optimizer's reports, by program name.
pub type Reports = Vec<(String, opt::Report)>;

/// `compile_training`, with the optimizer's report on each program it
/// optimized, named (`train_step`, `validation_step`, `test_step`, and
/// `forward before autodiff`).
///
/// The optimizer runs after autodiff and the optimizer update, on the whole
/// step. Unless `no_opt_before_autodiff`, the step is also built a second
/// way, with the forward + loss function optimized before it is
/// differentiated, and that step is kept when its optimized form is
/// estimated faster (or as fast, in fewer instructions), and neither its
/// FLOPs nor its bytes exceed the unoptimized step's: simplifying the
/// forward first also simplifies what autodiff builds from it, but not
/// always (measured, final step after optimization, `cost::func_cost`: W1
/// 227 vs 229 instructions at equal FLOPs and bytes, but a 20-layer ReLU
/// chain 273 vs 292 instructions with 4% more bytes: the shared bias's
/// broadcast, merged before autodiff, gets its cotangents summed at full
/// size instead of after 20 small reductions), so both are tried.
pub fn compile_training_reported(
    prog: &lower::Program,
    trainer: Option<&lower::Section>,
    x_ty: &Type,
    y_ty: &Type,
    opts: &Options,
) -> Result<(lower::TrainPrograms, Reports), Vec<Diagnostic>> {
    // `lower_training` lowers, differentiates (autodiff::grad) and appends
    // the optimizer update, verifying the IR after each stage.
    let progs = lower::lower_training(prog, trainer, x_ty, y_ty)?;
    if opts.no_opt {
        return Ok((progs, Vec::new()));
    }
    let unoptimized = (progs.train_step.insts.len(), opt::cost::func_cost(&progs.train_step));
    let (plain, plain_reports) = optimize_programs(progs, &opts.opt);
    if opts.no_opt_before_autodiff {
        return Ok((plain, plain_reports));
    }
    let forward_report = std::cell::RefCell::new(None);
    let before_ad = |f: &Func| {
        // The optimizer runs a custom_vjp's function without its rule: a
        // forward that holds one is differentiated as written.
        if ir::custom_vjp::has_rules(f) {
            return f.clone();
        }
        let (f, report) = optimize_stage(f, &opts.opt);
        *forward_report.borrow_mut() = report;
        f
    };
    let progs = lower::lower_training_with(prog, trainer, x_ty, y_ty, &before_ad)?;
    let (pre, mut pre_reports) = optimize_programs(progs, &opts.opt);
    let key = |f: &Func| (opt::cost::func_cost(f).seconds, f.insts.len());
    let (kp, ka) = (key(&pre.train_step), key(&plain.train_step));
    let within = opt::cost::func_cost(&pre.train_step).within(&unoptimized.1);
    if within && (kp.0 < ka.0 || (kp.0 == ka.0 && kp.1 < ka.1)) {
        // The step's report compares with the step built without any optimization.
        for (name, r) in pre_reports.iter_mut() {
            if name == "train_step" {
                (r.nodes_before, r.cost_before) = unoptimized;
            }
        }
        pre_reports.extend(forward_report.into_inner().map(|r| ("forward before autodiff".to_string(), r)));
        Ok((pre, pre_reports))
    } else {
        Ok((plain, plain_reports))
    }
}

/// Optimizes the training, validation and test steps.
fn optimize_programs(mut progs: lower::TrainPrograms, opts: &opt::Options) -> (lower::TrainPrograms, Reports) {
    let mut reports = Vec::new();
    let mut run = |name: &str, f: &Func| {
        let (f, report) = optimize_stage(f, opts);
        reports.extend(report.map(|r| (name.to_string(), r)));
        f
    };
    progs.train_step = run("train_step", &progs.train_step);
    progs.val_step = progs.val_step.as_ref().map(|f| run("validation_step", f));
    progs.test_step = progs.test_step.as_ref().map(|f| run("test_step", f));
    if let Some(acc) = &mut progs.accumulation {
        acc.grad_step = run("grad_step", &acc.grad_step);
        acc.apply_step = run("apply_step", &acc.apply_step);
    }
    (progs, reports)
}

/// The prediction pipeline: lower `predict_step` on (params, x) -> optimize.
/// `Ok(None)` when the trained model has no `predict_step`.
pub fn compile_predict(
    prog: &lower::Program,
    trainer: Option<&lower::Section>,
    x_ty: &Type,
    opts: &Options,
) -> Result<Option<lower::PredictProgram>, Vec<Diagnostic>> {
    let Some(mut p) = lower::lower_predict(prog, trainer, x_ty)? else { return Ok(None) };
    if !opts.no_opt {
        p.func = optimize_stage(&p.func, &opts.opt).0;
    }
    Ok(Some(p))
}

/// The end-of-training hook: lower `on_train_end` -> optimize. `Ok(None)`
/// when the trained model has no such method.
pub fn compile_on_train_end(
    prog: &lower::Program,
    trainer: Option<&lower::Section>,
    x_ty: &Type,
    y_ty: &Type,
    opts: &Options,
) -> Result<Option<lower::HookProgram>, Vec<Diagnostic>> {
    let Some(mut h) = lower::lower_on_train_end(prog, trainer, x_ty, y_ty)? else { return Ok(None) };
    if !opts.no_opt {
        h.func = optimize_stage(&h.func, &opts.opt).0;
    }
    Ok(Some(h))
}

/// The script pipeline: check -> lower `main` -> optimize.
pub fn compile_script(prog: &lower::Program, opts: &Options) -> Result<lower::Script, Vec<Diagnostic>> {
    compile_script_reported(prog, opts).map(|(script, _)| script)
}

/// `compile_script`, with the optimizer's report (none with `no_opt`).
pub fn compile_script_reported(
    prog: &lower::Program,
    opts: &Options,
) -> Result<(lower::Script, Option<opt::Report>), Vec<Diagnostic>> {
    let mut script = lower::lower_main(prog)?;
    let mut report = None;
    if !opts.no_opt {
        let (f, r) = optimize_stage(&script.func, &opts.opt);
        script.func = f;
        report = r;
    }
    Ok((script, report))
}

/// Programs larger than this skip the e-graph optimizer, a bound on its
/// memory (about 1.5 KB per instruction). Its time grows about linearly:
/// 0.7-1.2 s at 30,000 instructions and 2-3 s at 100,000 in the dev profile
/// (`cargo bench --profile dev --bench opt_scaling`). It was 4,000 while
/// extraction used egg's `Extractor`, whose fixpoint over all classes took
/// 274 s on a 54,000-instruction unrolled loop.
pub const MAX_OPT_INSTS: usize = 250_000;

/// The optimizer with its verification; `None` for the report when the
/// program is too large to optimize.
/// The embedding pipeline (`jaxlightning::Module`): lower the user function
/// `name` on arguments of `types` -> with `wrt`, its value and gradient with
/// respect to those arguments (outputs: the function's results, then one
/// gradient per `wrt` entry) -> dead-code elimination -> optimize.
pub fn compile_function(
    prog: &lower::Program,
    name: &str,
    types: &[Type],
    wrt: Option<&[usize]>,
    opts: &Options,
) -> Result<Func, Vec<Diagnostic>> {
    let func = lower::lower_fn_at(prog, name, types)?;
    let func = match wrt {
        None => func,
        Some(wrt) => {
            let first = func.output_types().first().cloned();
            let decl_span = |prog: &lower::Program| match prog.user().scope.get(name) {
                Some(lower::program::Global::Fn { module, item }) => prog.fn_decl(*module, *item).name.span,
                _ => span::Span::new(prog.user().file, 0, 0),
            };
            match first {
                Some(t) if t.shape.rank() == 0 && t.dtype.is_float() => {}
                other => {
                    let found = other.map_or("nothing".to_string(), |t| t.to_string());
                    return Err(vec![Diagnostic::error(
                        diagnostic::Code::TypeMismatch,
                        format!("the gradient of `{name}` needs a float scalar as its (first) result, not {found}"),
                    )
                    .with_label(decl_span(prog), "defined here")]);
                }
            }
            for &i in wrt {
                if !types[i].dtype.is_float() {
                    return Err(vec![Diagnostic::error(
                        diagnostic::Code::TypeMismatch,
                        format!("cannot differentiate `{name}` with respect to argument {i} of type {}", types[i]),
                    )
                    .with_label(decl_span(prog), "defined here")]);
                }
            }
            let g = autodiff::grad(&func, wrt);
            ir::verify::assert_valid(&g, "autodiff::grad (compile_function)");
            g
        }
    };
    let func = ir::dce::dce(&func);
    Ok(if opts.no_opt { func } else { optimize_stage(&func, &opts.opt).0 })
}

fn optimize_stage(func: &Func, opts: &opt::Options) -> (Func, Option<opt::Report>) {
    // Counted as the e-graph will see it: custom_vjp functions inlined.
    if ir::custom_vjp::inline_rules(func).insts.len() > MAX_OPT_INSTS {
        return (func.clone(), None);
    }
    let (optimized, report) = opt::optimize(func, opts);
    ir::verify::assert_valid(&optimized, "opt::optimize");
    (optimized, Some(report))
}
