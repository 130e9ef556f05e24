//! The generator's contract: verified output, determinism, and coverage of
//! every op over a few hundred seeds.

use super::{random_func, random_inputs, GenOptions};
use crate::ir::op::Op;
use crate::ir::{interp, text, verify};

/// A distinct index per op kind; exhaustive, so a new op must be added here
/// (and then to the generator, or `every_op_is_generated` fails).
fn op_kind(op: &Op) -> usize {
    match op {
        Op::Param(_) => 0,
        Op::Constant(_) => 1,
        Op::Iota { .. } => 2,
        Op::Neg => 3,
        Op::Exp => 4,
        Op::Log => 5,
        Op::Tanh => 6,
        Op::Sqrt => 7,
        Op::Log1p => 8,
        Op::Expm1 => 9,
        Op::Logistic => 10,
        Op::Sin => 11,
        Op::Cos => 12,
        Op::Rsqrt => 13,
        Op::Erf => 14,
        Op::Abs => 15,
        Op::Sign => 16,
        Op::StopGradient => 17,
        Op::Add => 18,
        Op::Sub => 19,
        Op::Mul => 20,
        Op::Div => 21,
        Op::Max => 22,
        Op::Min => 23,
        Op::Pow => 24,
        Op::Lt => 25,
        Op::Le => 26,
        Op::Gt => 27,
        Op::Ge => 28,
        Op::Eq => 29,
        Op::Ne => 30,
        Op::Select => 31,
        Op::Convert => 32,
        Op::Broadcast { .. } => 33,
        Op::Reshape => 34,
        Op::Transpose { .. } => 35,
        Op::ReduceSum { .. } => 36,
        Op::ReduceMax { .. } => 37,
        Op::MatMul => 38,
        Op::ArgMax { .. } => 39,
        Op::Slice { .. } => 40,
        Op::Pad { .. } => 41,
        Op::Concat { .. } => 42,
        Op::ReduceMin { .. } => 43,
        Op::Gather => 44,
        Op::ScatterAdd => 45,
        Op::BatchMatMul => 46,
        Op::RandomBits => 47,
        Op::RandomSplit => 48,
        Op::RandomUniform => 49,
        Op::Reverse { .. } => 50,
        Op::Conv2d(_) => 51,
        Op::ReduceWindowSum(_) => 52,
        Op::ReduceWindowMax(_) => 53,
        Op::Scan(_) => 54,
        Op::SelectAndScatter(_) => 55,
        Op::CustomVjp(_) => 56,
        Op::Floor => 57,
        Op::Ceil => 58,
        Op::Round => 59,
    }
}
const N_KINDS: usize = 60;

#[test]
fn every_op_is_generated() {
    let mut seen = [false; N_KINDS];
    let mut names = vec![""; N_KINDS];
    for seed in 0..300 {
        let func = random_func(seed, &GenOptions::default());
        for inst in &func.insts {
            seen[op_kind(&inst.op)] = true;
            names[op_kind(&inst.op)] = crate::ir::op::name(&inst.op);
        }
    }
    let missing: Vec<usize> = (0..N_KINDS).filter(|&k| !seen[k]).collect();
    assert!(missing.is_empty(), "op kinds never generated: {missing:?} (seen: {names:?})");
}

/// Each random op also appears with a stack of keys (the form vmap's rule
/// makes), so the backend tests over generated programs cover it.
#[test]
fn random_ops_are_generated_with_stacks_of_keys() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..300 {
        let func = random_func(seed, &GenOptions::default());
        for inst in &func.insts {
            let random = matches!(inst.op, Op::RandomBits | Op::RandomSplit | Op::RandomUniform);
            if random && func.ty(inst.args[0]).shape.rank() > 1 {
                seen.insert(crate::ir::op::name(&inst.op));
            }
        }
    }
    assert_eq!(seen.len(), 3, "random ops seen with a stack of keys: {seen:?}");
}

#[test]
fn generated_functions_are_valid_deterministic_and_run() {
    for seed in 0..200 {
        let opts = GenOptions { wild_constants: seed % 2 == 0, ..GenOptions::default() };
        let func = random_func(seed, &opts);
        verify::verify(&func).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", text::print(&func)));
        assert_eq!(text::print(&func), text::print(&random_func(seed, &opts)), "seed {seed}: not deterministic");
        assert!(func.insts.iter().all(|i| i.ty.shape.num_elements() <= opts.max_elements), "seed {seed}");
        // The interpreter defines every generated program.
        let outputs = interp::run(&func, &random_inputs(&func, seed));
        assert_eq!(outputs.iter().map(|t| t.ty()).collect::<Vec<_>>(), func.output_types(), "seed {seed}");
    }
}
