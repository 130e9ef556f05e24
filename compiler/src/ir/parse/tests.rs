//! Parser tests: the round trip `parse(print(f)) == f` on generated functions
//! (every op, wild constants), hand-written texts, and a fuzzer: mutated texts
//! must give `Ok` or an `Err` naming a line, never a panic.

use super::parse;
use crate::ir::generate::{random_func, GenOptions, Rng};
use crate::ir::op::Op;
use crate::ir::{text, Func};

/// `f == g` with constants compared bitwise (`==` on f64 says -0.0 == 0.0
/// and NaN != NaN).
fn assert_same_func(f: &Func, g: &Func, what: &str) {
    let has_nan = f.insts.iter().any(|i| matches!(i.op, Op::Constant(v) if v.is_nan()));
    if !has_nan {
        assert_eq!(f, g, "{what}");
    }
    assert_eq!((&f.name, f.n_params, &f.outputs, f.insts.len()), (&g.name, g.n_params, &g.outputs, g.insts.len()));
    for (a, b) in f.insts.iter().zip(&g.insts) {
        assert_eq!((&a.args, &a.ty), (&b.args, &b.ty), "{what}");
        match (&a.op, &b.op) {
            (Op::Constant(x), Op::Constant(y)) => {
                assert_eq!(x.to_bits(), y.to_bits(), "{what}: constant {x:?} vs {y:?}")
            }
            (x, y) => assert_eq!(x, y, "{what}"),
        }
    }
}

#[test]
fn print_then_parse_round_trips_on_generated_functions() {
    let mut n_insts = 0;
    for seed in 0..2_000u64 {
        let opts = GenOptions { wild_constants: true, matmul: true, ..GenOptions::default() };
        let func = random_func(0x7E47_0000 + seed, &opts);
        n_insts += func.insts.len();
        let printed = text::print(&func);
        let parsed = parse(&printed).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{printed}"));
        assert_same_func(&func, &parsed, &format!("seed {seed}\n{printed}"));
        assert_eq!(text::print(&parsed), printed, "seed {seed}");
    }
    assert!(n_insts > 2_000 * 15, "functions too small: {n_insts} instructions");
}

#[test]
fn hand_written_functions_parse() {
    let src = "func @f(%0: f32[2, 3], %1: i32) {
  %2 = slice{start=[0, 1], limit=[2, 3], stride=[1, 2]} %0 : f32[2, 1]
  %3 = pad{low=[1, 0], high=[0, 2], interior=[1, 0]} %2 : f32[4, 3]
  %4 = concat{axis=0} %3, %0, %0 : f32[8, 3]
  %5 = argmax{axis=1} %4 : i32[8]
  %6 = constant{value=-0.0} : f32
  %7 = constant{value=inf} : f64
  %8 = erf %6 : f32
  %9 = stop_gradient %1 : i32
  return %5, %9, %8, %7
}
";
    let func = parse(src).unwrap();
    assert_eq!(func.n_params, 2);
    assert_eq!(func.insts.len(), 10);
    assert_eq!(func.insts[4].op, Op::Concat { axis: 0 });
    assert_eq!(func.insts[4].args.len(), 3);
    assert!(matches!(func.insts[6].op, Op::Constant(v) if v.to_bits() == (-0.0f64).to_bits()));
    assert_eq!(text::print(&func), src);
    // Free spacing and blank lines; no params, no outputs.
    let func = parse("\n  func   @g( )  {\n\n return\n }\n\n").unwrap();
    assert_eq!((func.name.as_str(), func.n_params, func.outputs.len()), ("g", 0, 0));
}

#[test]
fn errors_name_the_line() {
    let cases: &[(&str, &str)] = &[
        ("", "line 1:"),
        ("fun @f() {\n  return\n}", "line 1: expected `func"),
        ("func @f(%1: f32) {\n  return\n}", "line 1: params must be numbered"),
        ("func @f(%0: f33) {\n  return\n}", "line 1: unknown dtype"),
        ("func @f(%0: f32) {\n  %2 = neg %0 : f32\n  return\n}", "line 2: expected instruction %1"),
        ("func @f(%0: f32) {\n  %1 = nope %0 : f32\n  return\n}", "line 2: unknown op"),
        ("func @f(%0: f32) {\n  %1 = neg %0 : f64\n  return\n}", "line 2: %1 = neg: result type"),
        ("func @f(%0: f32) {\n  %1 = neg %1 : f32\n  return\n}", "line 2: uses %1"),
        ("func @f(%0: f32) {\n  %1 = neg %0 : f32\n  return %2\n}", "line 3: output %2"),
        ("func @f(%0: f32) {\n  %1 = neg %0 : f32\n}", "line 3: expected `%`"),
        ("func @f(%0: f32) {\n  %1 = neg %0 : f32", "line 3: missing `return`"),
        ("func @f(%0: f32) {\n  return %0", "line 3: missing `}`"),
        ("func @f(%0: f32) {\n  return %0\n}\nx", "line 4: unexpected text"),
        ("func @f(%0: f32[2]) {\n  %1 = iota{axs=0} : f32[2]\n  return\n}", "line 2: `iota` expects attribute `axis`"),
        ("func @f(%0: f32[2]) {\n  %1 = neg{axis=0} %0 : f32[2]\n  return\n}", "line 2: `neg` has no attribute"),
        ("func @f(%0: f32[99999999999, 99999999999]) {\n  return\n}", "line 1: shape"),
        ("func @f(%0: f32[2]) {\n  %1 = concat{axis=0} : f32[0]\n  return\n}", "line 2: %1 = concat: expects at least one"),
        (
            "func @f(%0: f32[2]) {\n  %1 = pad{low=[18446744073709551615], high=[1], interior=[0]} %0 : f32[2]\n  return\n}",
            "line 2: %1 = pad: padded size overflows",
        ),
        ("func @f(%0: f32[2]) {\n  %1 = argmax{axis=0} %0 : i32[2]\n  return\n}", "line 2: %1 = argmax"),
        ("func @f(%0: f32[0]) {\n  %1 = argmax{axis=0} %0 : i32\n  return\n}", "line 2: %1 = argmax: argmax over an empty axis"),
    ];
    for (src, want) in cases {
        let err = parse(src).expect_err(src);
        assert!(err.starts_with(want), "for\n{src}\nwant `{want}...`, got `{err}`");
    }
}

/// One random edit of `text`.
fn mutate(text: &str, rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "%",
        "%0",
        "%99",
        "%4294967296",
        ",",
        ":",
        "=",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "@",
        " ",
        "\n",
        "0",
        "1",
        "-1",
        "99999999999999999999",
        "f32",
        "i32",
        "bool",
        "f64[",
        "axis=",
        "value=nan",
        "start=[",
        "concat",
        "pad",
        "slice",
        "argmax",
        "return",
        "func",
        "é",
        "\t",
        "1e400",
        "inf",
    ];
    let mut chars: Vec<char> = text.chars().collect();
    let at = |rng: &mut Rng, len: usize| rng.below(len + 1);
    match rng.below(7) {
        0 if !chars.is_empty() => {
            let i = rng.below(chars.len());
            let len = 1 + rng.below(4.min(chars.len() - i));
            chars.drain(i..i + len);
        }
        1 => {
            let i = at(rng, chars.len());
            let piece = rng.pick(PIECES);
            chars.splice(i..i, piece.chars());
        }
        2 if !chars.is_empty() => {
            // Replace a digit with another number.
            let digits: Vec<usize> = (0..chars.len()).filter(|&i| chars[i].is_ascii_digit()).collect();
            if let Some(&i) = digits.get(rng.below(digits.len().max(1))) {
                let n = rng.pick(&["0", "1", "2", "7", "40", "4294967295"]);
                chars.splice(i..i + 1, n.chars());
            }
        }
        3 => {
            let lines: Vec<&str> = text.lines().collect();
            let mut lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            if !lines.is_empty() {
                let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                match rng.below(3) {
                    0 => lines.swap(i, j),
                    1 => {
                        lines.remove(i);
                    }
                    _ => {
                        let l = lines[i].clone();
                        lines.insert(j, l);
                    }
                }
            }
            return lines.join("\n");
        }
        4 => {
            let i = at(rng, chars.len());
            chars.truncate(i);
        }
        5 if !chars.is_empty() => {
            let (i, j) = (rng.below(chars.len()), rng.below(chars.len()));
            chars.swap(i, j);
        }
        _ => {
            let i = at(rng, chars.len());
            let c = char::from_u32(rng.below(128) as u32).unwrap_or('?');
            chars.insert(i, c);
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_texts_never_panic() {
    const N: usize = 50_000;
    let mut rng = Rng(0xF022);
    let opts = GenOptions { max_steps: 8, wild_constants: true, ..GenOptions::default() };
    let bases: Vec<String> = (0..200).map(|seed| text::print(&random_func(0xBA5E + seed, &opts))).collect();
    let (mut n_ok, mut n_err) = (0, 0);
    for k in 0..N {
        let mut src = rng.pick(&bases);
        for _ in 0..1 + rng.below(3) {
            src = mutate(&src, &mut rng);
        }
        match parse(&src) {
            // Anything accepted is valid IR that prints back to itself.
            Ok(func) => {
                n_ok += 1;
                let again = parse(&text::print(&func)).unwrap_or_else(|e| panic!("mutant {k}: reparse: {e}\n{src}"));
                assert_same_func(&func, &again, &format!("mutant {k}"));
            }
            Err(msg) => {
                n_err += 1;
                assert!(msg.starts_with("line "), "mutant {k}: error without a line: {msg}\n{src}");
            }
        }
    }
    // The mutations must mostly break the text, but not always.
    assert!(n_err > N / 2 && n_ok > 100, "{n_ok} accepted, {n_err} rejected");
}
