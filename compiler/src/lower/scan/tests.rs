//! The `scan` builtin: each program is checked, lowered (unoptimized) and
//! run by the interpreter, against the same computation written as an
//! unrolled `for` loop in the language (bitwise equal); its IR holds one
//! `Op::Scan` per result whatever the length; misuse is a diagnostic.

use crate::ir::{interp, Func, Op, Tensor};

/// Checks and lowers `main` in `src` (unoptimized) and runs it; returns the
/// IR and the printed tensors.
fn run_main(src: &str) -> (Func, Vec<Tensor>) {
    let (prog, mut diags) = crate::lower::load("t.jl", src);
    diags.extend(crate::lower::check_program(&prog));
    assert!(diags.is_empty(), "{diags:?}");
    let script = crate::compile_script(&prog, &crate::Options { no_opt: true, ..Default::default() })
        .unwrap_or_else(|d| panic!("{d:?}"));
    let out = interp::run(&script.func, &[]);
    (script.func, out)
}

fn errors(src: &str) -> String {
    let (prog, mut diags) = crate::lower::load("t.jl", src);
    diags.extend(crate::lower::check_program(&prog));
    assert!(diags.iter().any(|d| d.is_error()), "expected an error for\n{src}");
    format!("{diags:?}")
}

fn scans(f: &Func) -> usize {
    f.insts.iter().filter(|i| matches!(i.op, Op::Scan(_))).count()
}

#[test]
fn cumulative_sum_equals_the_unrolled_loop() {
    let (func, out) = run_main(
        "fn main() {
    let xs = reshape(linspace(-1.0, 1.0, 12), (4, 3))
    let (total, sums) = scan(fn(c, x) = (c + x, c + x), xs[0] * 0.0, xs)
    let acc = xs[0] * 0.0
    for i in 0..4 {
        acc = acc + xs[i]
    }
    print(total, sums, acc, xs)
}
",
    );
    assert_eq!(scans(&func), 2, "one instruction per result:\n{}", crate::ir::text::print(&func));
    assert_eq!(out[0], out[2], "final carry vs the for loop");
    assert_eq!(out[1].shape.0, vec![4, 3]);
    let (sums, xs) = (out[1].to_f64_vec(), out[3].to_f64_vec());
    // Prefix sums in f32, computed here.
    let mut acc = [0.0f32; 3];
    for i in 0..4 {
        for j in 0..3 {
            acc[j] += xs[i * 3 + j] as f32;
            assert_eq!(sums[i * 3 + j], acc[j] as f64, "row {i}, column {j}");
        }
    }
}

#[test]
fn rnn_with_a_tuple_carry_and_captured_weights() {
    let src = "fn main() {
    let w = reshape(linspace(-0.5, 0.5, 9), (3, 3))
    let u = reshape(linspace(0.2, -0.2, 6), (3, 2))
    let xs = reshape(linspace(-1.0, 1.0, 10), (5, 2))
    let h0 = linspace(0.1, 0.3, 3)
    let cell = fn(state, x) {
        let (h, s) = state
        let h2 = tanh(w @ h + u @ x)
        ((h2, s + sum(h2)), (h2, sum(h2 * h2)))
    }
    let ((h, s), (hs, sq)) = scan(cell, (h0, 0.0), xs)
    let hh = h0
    let ss = 0.0
    for i in 0..5 {
        hh = tanh(w @ hh + u @ xs[i])
        ss = ss + sum(hh)
    }
    print(h, s, hs, sq, hh, ss)
}
";
    let (func, out) = run_main(src);
    assert!(scans(&func) >= 1);
    assert_eq!(out[0], out[4], "final hidden state");
    assert_eq!(out[1], out[5], "running sum (an f32 scalar carry from a literal)");
    assert_eq!(out[2].shape.0, vec![5, 3]);
    assert_eq!(out[3].shape.0, vec![5]);
    // The same program with 400 steps has the same number of instructions.
    let long =
        src.replace("linspace(-1.0, 1.0, 10), (5, 2)", "linspace(-1.0, 1.0, 800), (400, 2)").replace("0..5", "0..0");
    let (long_func, _) = run_main(&long);
    let short = src.replace("0..5", "0..0");
    assert_eq!(run_main(&short).0.insts.len(), long_func.insts.len());
}

#[test]
fn length_without_xs_reverse_and_grad_through_scan() {
    let (_, out) = run_main(
        "fn power(x: f32, n_unused: f32) -> f32 {
    let (p, _ys) = scan(fn(c) = (c * x, c), 1.0, length = 5)
    p
}
fn main() {
    let xs = linspace(1.0, 4.0, 4)
    let (first, ys) = scan(fn(c, x) = (x, c), 0.0, xs, reverse = true)
    let x = linspace(2.0, 2.0, 2)[0]
    print(power(x, 0.0), grad(power)(x, 0.0), first, ys)
}
",
    );
    assert_eq!(out[0].to_f64_vec(), vec![32.0]);
    assert_eq!(out[1].to_f64_vec(), vec![80.0], "d x^5 / dx = 5 x^4");
    assert_eq!(out[2].to_f64_vec(), vec![1.0], "reversed: the last carry is xs[0]");
    assert_eq!(out[3].to_f64_vec(), vec![2.0, 3.0, 4.0, 0.0], "ys[i] is the carry entering step i");
}

#[test]
fn misuse_is_a_diagnostic() {
    let e = errors(
        "fn main() {
    let xs = linspace(0.0, 1.0, 4)
    let (c, ys) = scan(fn(c, x) = (c + xs, x), 0.0, xs)
}
",
    );
    assert!(e.contains("carry must keep its type"), "{e}");
    let e = errors("fn main() {\n    let (c, ys) = scan(fn(c, x) = c + x, 0.0, linspace(0.0, 1.0, 4))\n}\n");
    assert!(e.contains("pair"), "{e}");
    let e = errors("fn main() {\n    let (c, ys) = scan(fn(c, x) = (c, x), 0.0, 1.0)\n}\n");
    assert!(e.contains("axis 0"), "{e}");
    let e = errors("fn main() {\n    let (c, ys) = scan(1.0, 0.0, linspace(0.0, 1.0, 4))\n}\n");
    assert!(e.contains("needs a function"), "{e}");
}

#[test]
fn only_the_captured_tensors_the_body_reads_become_consts() {
    // The lambda captures `xs`, `w` and `unused`; the body reads only `w`.
    let (func, _) = run_main(
        "fn main() {
    let xs = reshape(linspace(-1.0, 1.0, 12), (4, 3))
    let w = linspace(0.5, 1.5, 3)
    let unused = xs * 2.0
    let (c, ys) = scan(fn(c, x) = (c * w + x, c), xs[0], xs)
    print(c, ys, sum(unused))
}
",
    );
    for inst in &func.insts {
        if let Op::Scan(s) = &inst.op {
            assert_eq!(s.n_const, 1, "only w:\n{}", crate::ir::text::print(&func));
            assert_eq!(inst.args.len(), 3);
        }
    }
}
