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
    // `lower_training` lowers, differentiates (autodiff::grad) and appends
    // the optimizer update, verifying the IR after each stage.
    let mut progs = lower::lower_training(prog, trainer, x_ty, y_ty)?;
    if !opts.no_opt {
        progs.train_step = optimize_stage(&progs.train_step, &opts.opt);
        progs.val_step = progs.val_step.as_ref().map(|f| optimize_stage(f, &opts.opt));
        progs.test_step = progs.test_step.as_ref().map(|f| optimize_stage(f, &opts.opt));
        if let Some(acc) = &mut progs.accumulation {
            acc.grad_step = optimize_stage(&acc.grad_step, &opts.opt);
            acc.apply_step = optimize_stage(&acc.apply_step, &opts.opt);
        }
    }
    Ok(progs)
}

/// The script pipeline: check -> lower `main` -> optimize.
pub fn compile_script(prog: &lower::Program, opts: &Options) -> Result<lower::Script, Vec<Diagnostic>> {
    let mut script = lower::lower_main(prog)?;
    if !opts.no_opt {
        script.func = optimize_stage(&script.func, &opts.opt);
    }
    Ok(script)
}

/// Programs larger than this skip the e-graph optimizer for now: its run
/// time grows faster than linearly with program size (an unrolled
/// 10,000-step loop took 40 s). Issue #6 tracks making it scale.
pub const MAX_OPT_INSTS: usize = 4_000;

fn optimize_stage(func: &Func, opts: &opt::Options) -> Func {
    if func.insts.len() > MAX_OPT_INSTS {
        return func.clone();
    }
    let (optimized, _report) = opt::optimize(func, opts);
    ir::verify::assert_valid(&optimized, "opt::optimize");
    optimized
}
