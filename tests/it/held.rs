//! Held inputs (`runtime::held`): holding inputs and carrying outputs into
//! them gives the same numbers as passing everything through `run`, on
//! every backend; misuse is an error, not a panic. The GPU runs the same
//! checks (`gpu.rs`), where the carry is a device copy inside a CUDA graph.

use compiler::ir::{interp, Builder, DType, Func, Tensor, Type};
use runtime::{Backend, Executable, Fresh};

/// `f(a, b, x) = (b, a + x, sum(a * x))`: output 0 is input `b` itself (its
/// buffer is an input buffer that output 1's carry overwrites: the staging
/// case), output 1 a computed value, output 2 returned.
pub(crate) fn swap_program() -> Func {
    let ty = Type::new(DType::F32, &[5]);
    let mut b = Builder::new("swap", &[ty.clone(), ty.clone(), ty]);
    let (a, bb, x) = (b.param(0), b.param(1), b.param(2));
    let sum = b.add(a, x);
    let prod = b.mul(a, x);
    let total = b.reduce_sum(prod, vec![0]);
    b.finish(vec![bb, sum, total])
}

fn vec5(seed: f32) -> Tensor {
    Tensor::f32(&[5], (0..5).map(|i| seed + i as f32 * 0.25).collect())
}

/// Runs `swap_program` held on `backend` for 5 calls (a, b held; outputs
/// 0 -> a and 1 -> b carried) and compares every returned value and the
/// final held values with the interpreter chained by hand, bitwise.
pub(crate) fn check_swap_carry(backend: Backend) {
    let func = swap_program();
    let mut exe = Executable::compile(func.clone(), backend).unwrap();
    let (mut a, mut b) = (vec5(1.0), vec5(-2.0));
    exe.hold(vec![(0, a.clone()), (1, b.clone())], &[(0, 0), (1, 1)]).unwrap();
    for call in 0..5 {
        let x = vec5(call as f32 * 0.5);
        let want = interp::run(&func, &[a.clone(), b.clone(), x.clone()]);
        let got = exe.run_held(vec![x]).unwrap();
        assert_eq!(got.len(), 1, "only the uncarried output is returned");
        assert_eq!(got[0], want[2], "call {call}: returned output");
        a = want[0].clone();
        b = want[1].clone();
        assert_eq!(exe.held_value(0).unwrap(), a, "call {call}: held a");
        assert_eq!(exe.held_value(1).unwrap(), b, "call {call}: held b");
    }
    // `run` is refused while inputs are held; `release` hands them back.
    let err = exe.run(&[a.clone(), b.clone(), vec5(0.0)]).unwrap_err().to_string();
    assert!(err.contains("held"), "{err}");
    let released = exe.release().unwrap();
    assert_eq!(released, vec![(0, a.clone()), (1, b.clone())]);
    let plain = exe.run(&[a.clone(), b.clone(), vec5(0.0)]).unwrap();
    assert_eq!(plain, interp::run(&func, &[a, b, vec5(0.0)]));
}

/// Fresh inputs staged a call ahead (`run_held_staging`: on a GPU, copied
/// while the call before computes) give bitwise the interpreter's chained
/// values: given, staged and staged-again calls, a call that stages nothing
/// and one that gives its inputs while a batch is staged (which forgets
/// it). Misuse is an error: `Fresh::Staged` with nothing staged (first
/// call, after a call without `next`, after `run_held`, after `hold`), a
/// `next` of the wrong type or count.
pub(crate) fn check_staged_calls(backend: Backend) {
    let func = swap_program();
    let mut exe = Executable::compile(func.clone(), backend).unwrap();
    let (mut a, mut b) = (vec5(1.0), vec5(-2.0));
    exe.hold(vec![(0, a.clone()), (1, b.clone())], &[(0, 0), (1, 1)]).unwrap();
    let staged_err = |exe: &mut Executable| exe.run_held_staging(Fresh::Staged, None).unwrap_err().to_string();
    assert!(staged_err(&mut exe).contains("staged no inputs"), "{}", staged_err(&mut exe));
    let x = |call: usize| vec5(call as f32 * 0.5 - 1.0);
    // (fresh given?, stage the next call's x?) per call.
    let plan = [(true, true), (false, true), (false, true), (false, false), (true, true), (true, false)];
    for (call, &(given, stage)) in plan.iter().enumerate() {
        let want = interp::run(&func, &[a.clone(), b.clone(), x(call)]);
        let fresh = if given { Fresh::Given(vec![x(call)]) } else { Fresh::Staged };
        let got = exe.run_held_staging(fresh, stage.then(|| vec![x(call + 1)])).unwrap();
        assert_eq!(got, vec![want[2].clone()], "call {call}: returned output");
        a = want[0].clone();
        b = want[1].clone();
        assert_eq!(exe.held_value(0).unwrap(), a, "call {call}: held a");
        assert_eq!(exe.held_value(1).unwrap(), b, "call {call}: held b");
        if !stage {
            assert!(staged_err(&mut exe).contains("staged no inputs"), "call {call}: nothing was staged");
        }
    }
    let wrong = exe.run_held_staging(Fresh::Given(vec![x(0)]), Some(vec![Tensor::scalar_f32(1.0)])).unwrap_err();
    assert!(wrong.to_string().contains("type"), "{wrong}");
    let wrong = exe.run_held_staging(Fresh::Given(vec![x(0)]), Some(vec![])).unwrap_err();
    assert!(wrong.to_string().contains("1 inputs"), "{wrong}");
    exe.run_held_staging(Fresh::Given(vec![x(0)]), Some(vec![x(1)])).unwrap();
    exe.run_held(vec![x(1)]).unwrap();
    assert!(staged_err(&mut exe).contains("staged no inputs"), "run_held forgets a staged batch");
    exe.run_held_staging(Fresh::Given(vec![x(0)]), Some(vec![x(1)])).unwrap();
    exe.hold(vec![(0, a.clone()), (1, b.clone())], &[(0, 0), (1, 1)]).unwrap();
    assert!(staged_err(&mut exe).contains("staged no inputs"), "hold forgets a staged batch");
}

/// `run_held_into` (the caller's lists reused) gives bitwise what
/// `run_held` gives, hands the fresh inputs back unchanged, writes the
/// next results into the tensors handed back, and forgets a staged batch.
pub(crate) fn check_calls_into(backend: Backend) {
    let func = swap_program();
    let mut exe = Executable::compile(func.clone(), backend).unwrap();
    let mut plain = Executable::compile(func, backend).unwrap();
    let (a, b) = (vec5(1.0), vec5(-2.0));
    exe.hold(vec![(0, a.clone()), (1, b.clone())], &[(0, 0), (1, 1)]).unwrap();
    plain.hold(vec![(0, a), (1, b)], &[(0, 0), (1, 1)]).unwrap();
    let (mut fresh, mut outs) = (Vec::new(), Vec::new());
    for call in 0..5 {
        let x = vec5(call as f32 * 0.5 - 1.0);
        fresh.clear();
        fresh.push(x.clone());
        let handed_back = outs.first().map(|t: &Tensor| t.as_f32().unwrap().as_ptr());
        exe.run_held_into(&mut fresh, &mut outs).unwrap();
        assert_eq!(outs, plain.run_held(vec![x.clone()]).unwrap(), "call {call}");
        assert_eq!(fresh, vec![x], "call {call}: the fresh inputs are given back");
        if backend == Backend::Cpu {
            if let Some(old) = handed_back {
                assert_eq!(outs[0].as_f32().unwrap().as_ptr(), old, "call {call}: the handed-back output is reused");
            }
        }
        assert_eq!(exe.held_value(1).unwrap(), plain.held_value(1).unwrap(), "call {call}: held b");
    }
    exe.run_held_staging(Fresh::Given(vec![vec5(0.0)]), Some(vec![vec5(1.0)])).unwrap();
    exe.run_held_into(&mut fresh, &mut outs).unwrap();
    let err = exe.run_held_staging(Fresh::Staged, None).unwrap_err().to_string();
    assert!(err.contains("staged no inputs"), "run_held_into forgets a staged batch: {err}");
    let err = exe.run_held_into(&mut vec![], &mut outs).unwrap_err().to_string();
    assert!(err.contains("1 inputs"), "{err}");
}

/// Recorded outputs (`record_outputs`): each call appends its values,
/// `take_recorded` hands over the rows in call order, bitwise the
/// interpreter's chained values, with staged batches too and across more
/// calls than the engine's capacity (2: on a GPU the ring is copied out
/// when full). A recorded output is no longer returned; misuse is an error;
/// a new `hold` forgets the recording.
pub(crate) fn check_recorded_outputs(backend: Backend) {
    let func = swap_program();
    let mut exe = Executable::compile(func.clone(), backend).unwrap();
    let (mut a, mut b) = (vec5(1.0), vec5(-2.0));
    exe.hold(vec![(0, a.clone()), (1, b.clone())], &[(0, 0), (1, 1)]).unwrap();
    assert!(exe.take_recorded().unwrap_err().to_string().contains("no outputs are recorded"));
    assert!(exe.record_outputs(&[0], 2).unwrap_err().to_string().contains("cannot be recorded"));
    assert!(exe.record_outputs(&[2, 2], 2).unwrap_err().to_string().contains("cannot be recorded"));
    assert!(exe.record_outputs(&[], 2).unwrap_err().to_string().contains("names no outputs"));
    exe.record_outputs(&[2], 2).unwrap();
    assert!(exe.record_outputs(&[2], 2).unwrap_err().to_string().contains("recorded already"));
    let xs: Vec<Tensor> = (0..7).map(|c| vec5(c as f32 * 0.5)).collect();
    let mut want_rows = Vec::new();
    for x in &xs {
        let want = interp::run(&func, &[a.clone(), b.clone(), x.clone()]);
        want_rows.push(vec![want[2].clone()]);
        a = want[0].clone();
        b = want[1].clone();
    }
    // Calls 0-2 given (call 2 stages call 3's batch), 3 staged, 4-6 given.
    let mut got_rows = Vec::new();
    for (call, x) in xs.iter().enumerate() {
        let fresh = if call == 3 { Fresh::Staged } else { Fresh::Given(vec![x.clone()]) };
        let next = (call == 2).then(|| vec![xs[3].clone()]);
        assert_eq!(exe.run_held_staging(fresh, next).unwrap(), vec![], "call {call}: nothing returned");
        if call == 2 || call == 6 {
            got_rows.extend(exe.take_recorded().unwrap());
        }
    }
    assert_eq!(got_rows, want_rows);
    assert_eq!(exe.take_recorded().unwrap(), Vec::<Vec<Tensor>>::new(), "taken rows are gone");
    assert_eq!(exe.held_value(0).unwrap(), a);
    exe.hold(vec![(0, a), (1, b)], &[(0, 0), (1, 1)]).unwrap();
    assert!(exe.take_recorded().unwrap_err().to_string().contains("no outputs are recorded"));
    assert_eq!(exe.run_held(vec![vec5(0.0)]).unwrap().len(), 1, "returned again");
}

/// `f(a, x) = (a + x, a, a)` held with output 0 carried into `a`: outputs
/// 1 and 2 are `a` itself (on a GPU, `a`'s own buffer, which the carry
/// overwrites), so returned (1), kept or recorded (2), they must still be
/// the call's `a`, not the carried `a + x`: a trainer logging a parameter
/// as it was in the step (`self.log("t", self.t)`).
pub(crate) fn check_outputs_that_are_held_inputs(backend: Backend) {
    let ty = Type::new(DType::F32, &[5]);
    let mut b = Builder::new("alias", &[ty.clone(), ty]);
    let (a, x) = (b.param(0), b.param(1));
    let sum = b.add(a, x);
    let func = b.finish(vec![sum, a, a]);
    for record in [false, true] {
        let mut exe = Executable::compile(func.clone(), backend).unwrap();
        let mut a = vec5(1.0);
        exe.hold(vec![(0, a.clone())], &[(0, 0)]).unwrap();
        if record {
            exe.record_outputs(&[2], 4).unwrap();
        } else {
            exe.keep_outputs(&[2]).unwrap();
        }
        let mut rows = Vec::new();
        for call in 0..3 {
            let x = vec5(call as f32 + 0.5);
            let got = exe.run_held(vec![x.clone()]).unwrap();
            assert_eq!(got, vec![a.clone()], "{backend:?} call {call}: returned output 1 is the call's a");
            if !record {
                assert_eq!(exe.kept_output(2).unwrap(), a, "{backend:?} call {call}: kept output 2");
            }
            rows.push(vec![a.clone()]);
            a = interp::run(&func, &[a.clone(), x])[0].clone();
        }
        if record {
            assert_eq!(exe.take_recorded().unwrap(), rows, "{backend:?}: recorded output 2, call by call");
        }
        assert_eq!(exe.held_value(0).unwrap(), a, "{backend:?}: the carried a");
    }
}

#[test]
fn outputs_that_are_held_inputs_are_the_calls_values_on_the_cpu_backends() {
    check_outputs_that_are_held_inputs(Backend::Cpu);
    check_outputs_that_are_held_inputs(Backend::Interpreter);
}

#[test]
fn recorded_outputs_come_back_in_call_order_on_the_cpu_backends() {
    check_recorded_outputs(Backend::Cpu);
    check_recorded_outputs(Backend::Interpreter);
}

#[test]
fn calls_into_reused_lists_match_run_held_on_the_cpu_backends() {
    check_calls_into(Backend::Cpu);
    check_calls_into(Backend::Interpreter);
}

#[test]
fn staged_inputs_carry_like_chained_runs_on_the_cpu_backends() {
    check_staged_calls(Backend::Cpu);
    check_staged_calls(Backend::Interpreter);
}

#[test]
fn held_inputs_carry_like_chained_runs_on_the_cpu_backends() {
    check_swap_carry(Backend::Cpu);
    check_swap_carry(Backend::Interpreter);
}

#[test]
fn held_input_misuse_is_an_error() {
    let func = swap_program();
    let mut exe = Executable::compile(func, Backend::Cpu).unwrap();
    let t = vec5(0.0);
    let cases: Vec<(Vec<(usize, Tensor)>, Vec<(usize, usize)>, &str)> = vec![
        (vec![(3, t.clone())], vec![], "out of range"),
        (vec![(0, t.clone()), (0, t.clone())], vec![], "held twice"),
        (vec![(0, t.clone())], vec![(1, 1)], "not held"),
        (vec![(0, t.clone())], vec![(7, 0)], "out of range"),
        (vec![(0, t.clone())], vec![(2, 0)], "type"),
        (vec![(0, t.clone()), (1, t.clone())], vec![(0, 0), (1, 0)], "two outputs"),
        (vec![(0, t.clone()), (1, t.clone())], vec![(0, 0), (0, 1)], "two inputs"),
        (vec![(0, Tensor::f32(&[2], vec![0.0, 1.0]))], vec![], "type"),
    ];
    for (values, carry, want) in cases {
        let err = exe.hold(values, &carry).unwrap_err().to_string();
        assert!(err.contains(want), "expected `{want}` in: {err}");
    }
    assert!(exe.run_held(vec![]).unwrap_err().to_string().contains("before hold"));
    exe.hold(vec![(0, t.clone()), (1, t.clone())], &[]).unwrap();
    // One fresh input expected, of type f32[5].
    assert!(exe.run_held(vec![]).unwrap_err().to_string().contains("1 inputs"));
    assert!(exe.run_held(vec![Tensor::scalar_f32(1.0)]).unwrap_err().to_string().contains("type"));
    assert!(exe.held_value(2).unwrap_err().to_string().contains("not held"));
    // Without carry, held values stay as given.
    let out = exe.run_held(vec![vec5(1.0)]).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(exe.held_value(0).unwrap(), t);
}

#[test]
fn kept_outputs_stay_in_the_engine_until_read() {
    let func = swap_program();
    let mut exe = Executable::compile(func.clone(), Backend::Cpu).unwrap();
    let (a, b, x) = (vec5(1.0), vec5(2.0), vec5(3.0));
    exe.hold(vec![(0, a.clone()), (1, b.clone())], &[(0, 0)]).unwrap();
    exe.keep_outputs(&[1]).unwrap();
    assert!(exe.kept_output(1).unwrap_err().to_string().contains("no value yet"));
    assert!(exe.keep_outputs(&[0]).unwrap_err().to_string().contains("carried"));
    let want = interp::run(&func, &[a.clone(), b.clone(), x.clone()]);
    let got = exe.run_held(vec![x]).unwrap();
    assert_eq!(got, vec![want[2].clone()]);
    assert_eq!(exe.kept_output(1).unwrap(), want[1]);
    assert!(exe.kept_output(2).unwrap_err().to_string().contains("not kept"));
    // A new holding has no kept value yet (it had the last holding's).
    exe.hold(vec![(0, a.clone()), (1, b.clone())], &[(0, 0)]).unwrap();
    exe.keep_outputs(&[1]).unwrap();
    assert!(exe.kept_output(1).unwrap_err().to_string().contains("no value yet"));
    // A tensor whose data disagrees with its shape (public fields) is an
    // error, not a read past its data.
    let mut short = vec5(0.0);
    short.data = compiler::ir::Data::F32(vec![0.0; 3]);
    let err = exe.run_held(vec![short.clone()]).unwrap_err().to_string();
    assert_eq!(err, "input 2 has shape f32[5] (5 values) but holds 3 values");
    let err = Executable::compile(func, Backend::Cpu).unwrap().run(&[a, short, b]).unwrap_err().to_string();
    assert!(err.starts_with("input 1 has shape f32[5]"), "{err}");
}
