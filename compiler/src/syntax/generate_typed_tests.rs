//! The typed generator (`generate_typed.rs`) against the checker and the
//! printer: every generated program checks without a diagnostic, and
//! parse -> print -> parse is the identity on it. Seeds are new every run
//! (from the clock) unless `JLC_TEST_SEED` is set; a failure prints the
//! seed and the program.

use super::generate::Rng;
use super::generate_typed::program;
use super::print::{format_source, print_module};
use super::tests::parse_clean;
use crate::ir::generate::run_seed;
use crate::span::FileId;

/// The seed of the `i`-th program of a run, and its size.
fn nth(base: u64, i: u64) -> (u64, usize) {
    let seed = Rng(base ^ i.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64();
    (seed, 1 + (i % 4) as usize)
}

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Loads and checks `text` as `jlc check` does inside the compiler crate
/// (`jaxlightning::check_source` adds only the `data`/`trainer` settings,
/// which these programs do not have); the diagnostics, rendered.
fn check(text: &str) -> Vec<String> {
    let (prog, mut diags) = crate::lower::load("gen.jl", text);
    diags.extend(crate::lower::check_program(&prog));
    diags.iter().map(|d| d.render(&prog.sources, false)).collect()
}

/// Runs `f` with the compiler's stack (the checker recurses over the tree).
fn big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match std::thread::Builder::new().stack_size(1 << 30).spawn_scoped(s, f).unwrap().join() {
        Ok(v) => v,
        Err(payload) => std::panic::resume_unwind(payload),
    })
}

#[test]
fn generated_typed_programs_check_without_diagnostics() {
    let base = run_seed(1);
    let n = env_count("JLC_TYPED_CHECK_PROGRAMS", 2_000);
    let start = std::time::Instant::now();
    let mut bytes = 0;
    big_stack(|| {
        for i in 0..n {
            let (seed, size) = nth(base, i);
            let p = program(seed, size);
            bytes += p.text.len();
            let diags = check(&p.text);
            assert!(
                diags.is_empty(),
                "program {i} (seed {seed:#x}, size {size}; run with JLC_TEST_SEED={base:#x}) does not check:\n{}\n{}",
                p.text,
                diags.join("\n")
            );
        }
    });
    eprintln!("checked {n} typed programs, {bytes} bytes, in {:?}", start.elapsed());
}

#[test]
fn parse_print_parse_is_the_identity_on_typed_programs() {
    let base = run_seed(2);
    let n = env_count("JLC_TYPED_ROUNDTRIP_PROGRAMS", 100_000);
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        // Smaller programs than the checker test's (size 0 and 1), so that
        // 100,000 fit in the time: about 1.3 ms each at sizes 1 to 4.
        let (seed, size) = nth(base, i);
        let size = size % 2;
        let text = program(seed, size).text;
        bytes += text.len();
        let first = parse_clean(&text)
            .unwrap_or_else(|d| panic!("program {i} (seed {seed:#x}, size {size}) does not parse:\n{text}\n{d}"));
        let printed = print_module(&first);
        let second = parse_clean(&printed).unwrap_or_else(|d| {
            panic!("program {i} (seed {seed:#x}): the printed program does not parse:\n{printed}\n{d}")
        });
        assert!(
            first == second,
            "program {i} (seed {seed:#x}, size {size}): parse -> print -> parse changed the tree:\n{text}\n--- printed:\n{printed}"
        );
        if i % 16 == 0 {
            // `jlc fmt` (which keeps numbers' spelling) keeps the tree and is idempotent.
            let formatted = format_source(FileId(0), &text).unwrap_or_else(|d| panic!("seed {seed:#x}: {d:#?}"));
            assert!(
                parse_clean(&formatted).as_ref() == Ok(&first),
                "program {i} (seed {seed:#x}): fmt changed the tree:\n{formatted}"
            );
            let again = format_source(FileId(0), &formatted).unwrap();
            assert_eq!(again, formatted, "program {i} (seed {seed:#x}): fmt is not idempotent");
        }
    }
    eprintln!("round trip: {n} typed programs, {bytes} bytes, in {:?}", start.elapsed());
}

#[test]
fn the_typed_generator_reaches_every_feature() {
    // A fixed seed: whether 1,000 programs reach every feature is chance
    // (the rare ones), so a clock seed would make this test flaky.
    let base = 0x7e57_fea7;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..1000 {
        let (seed, size) = nth(base, i);
        seen.extend(program(seed, size).features);
    }
    let want = [
        "const",
        "const expression",
        "named dim",
        "typed parameter",
        "symbolic dims",
        "leading dims function",
        "leading dims type",
        "default parameter",
        "keyword argument",
        "default argument",
        "return type",
        "= body",
        "block body",
        "untyped parameters",
        "let",
        "let with type",
        "tuple destructuring",
        "nested tuple pattern",
        "arithmetic",
        "broadcasting",
        "weak scalar",
        "pow",
        "negate",
        "tensor comparison",
        "where",
        "tensor not",
        "tensor and/or",
        "bool tensor let",
        "compile-time comparison",
        "compile-time not",
        "compile-time and/or",
        "ndim",
        "matmul",
        "batched matmul",
        "full reduction",
        "reduction with axis",
        "keepdims",
        "reduction over two axes",
        "negative axis",
        "elementwise builtin",
        "nn activation",
        "max/min of two",
        "integer index",
        "negative index",
        "slice",
        "slice step",
        "negative step",
        "negative start",
        "reverse",
        "ellipsis index",
        "reshape",
        "flatten",
        "transpose",
        "transpose with axes",
        "stack",
        "concat",
        "if expression",
        "else if",
        "block expression",
        "for",
        "rebinding",
        "call",
        "generic call",
        "grad",
        "value_and_grad",
        "value_and_grad destructured",
        "grad of a named function",
        "grad wrt",
        "vmap",
        "vmap in_axes",
        "jvp",
        "jvp destructured",
        "typed lambda parameter",
        "lambda block body",
        "model",
        "method calling a method",
        "size",
        "fill",
        "linspace",
        "arange",
        "one_hot",
        "array literal",
        "print",
    ];
    let missing: Vec<&str> = want.iter().copied().filter(|f| !seen.contains(f)).collect();
    assert!(missing.is_empty(), "never generated in 1,000 programs: {missing:?}");
    let unlisted: Vec<&&str> = seen.iter().filter(|f| !want.contains(f)).collect();
    assert!(unlisted.is_empty(), "features the test does not list: {unlisted:?}");
}
