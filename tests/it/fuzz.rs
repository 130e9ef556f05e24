//! No panics on user input: random bytes and mutated model files go through
//! the lexer, parser and checker (and, when they check cleanly, lowering).
//! Seeds are fixed and printed; a failure names the seed and the input.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Inputs per CI run (raise with JLC_FUZZ_INPUTS for longer local runs).
fn budget(default: usize) -> usize {
    std::env::var("JLC_FUZZ_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn corpus() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts: Vec<String> = compiler::lower::program::STDLIB.iter().map(|(_, t)| t.to_string()).collect();
    for dir in ["examples", "tests/data/diagnostics"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jl") {
                texts.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    texts
}

const FRAGMENTS: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ",", ".", "..", ":", "=", "->", "+", "-", "*", "/", "@", "^", "==", "<", ">=", "&&", "!",
    "\n", " ", "fn", "let", "model", "use", "data", "trainer", "for", "in", "if", "else", "x", "self", "B", "f32", "i32[",
    "f32[B, 3]", "0", "1", "-1", "1e-3", "99999999999999999999", "\"s\"", "#", "grad(", "sum(", "max(", "one_hot(", "log(\"a\", ",
    "mean(x, axis = 5)", "x @ x", "linspace(0.0, 1.0, 0)", "é", "\u{0}",
];

fn mutate(rng: &mut SplitMix, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => {
                let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
                bytes.splice(at..at, frag.bytes());
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            3 if !bytes.is_empty() => {
                let start = rng.below(bytes.len());
                let end = (start + rng.below(40)).min(bytes.len());
                let chunk = bytes[start..end].to_vec();
                bytes.splice(at..at, chunk);
            }
            _ => bytes.truncate(at),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs the whole front end (and lowering of `main` when it checks) on `text`.
fn front_end(text: &str) {
    let (diags, _) = jaxlightning::check_source("fuzz.jl", text);
    if !diags.iter().any(|d| d.is_error()) && text.contains("fn main") {
        let (prog, _) = compiler::lower::load("fuzz.jl", text);
        let _ = compiler::lower::lower_main(&prog);
    }
}

fn run_case(seed: u64, case: usize, text: &str, slowest: &mut Duration) {
    let start = Instant::now();
    let res = catch_unwind(AssertUnwindSafe(|| front_end(text)));
    let took = start.elapsed();
    *slowest = (*slowest).max(took);
    assert!(res.is_ok(), "panic on fuzz input (seed {seed}, case {case}):\n{text:?}");
    assert!(took < Duration::from_secs(1), "input took {took:?} (seed {seed}, case {case}):\n{text:?}");
}

#[test]
fn mutated_model_files_never_panic() {
    let seed = 0x5eed_0001;
    let n = budget(100_000);
    let corpus = corpus();
    let mut rng = SplitMix(seed);
    let mut slowest = Duration::ZERO;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    for case in 0..n {
        let base = &corpus[rng.below(corpus.len())];
        let text = mutate(&mut rng, base);
        run_case(seed, case, &text, &mut slowest);
    }
    std::panic::set_hook(hook);
    eprintln!("fuzz (mutated): seed {seed:#x}, {n} inputs in {:?}, slowest {slowest:?}", start.elapsed());
}

#[test]
fn random_bytes_never_panic() {
    let seed = 0x5eed_0002;
    let n = budget(100_000);
    let mut rng = SplitMix(seed);
    let mut slowest = Duration::ZERO;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    for case in 0..n {
        let len = rng.below(64);
        let text: String = if case % 2 == 0 {
            // Raw bytes (lossily decoded, as `jlc` reads files).
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            // Token soup: more likely to reach the parser and checker.
            (0..len / 4).map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())]).collect::<Vec<_>>().join(" ")
        };
        run_case(seed, case, &text, &mut slowest);
    }
    std::panic::set_hook(hook);
    eprintln!("fuzz (random): seed {seed:#x}, {n} inputs in {:?}, slowest {slowest:?}", start.elapsed());
}

/// Random syntactically valid programs (`compiler::syntax::generate`): the
/// checker reports errors, never panics. Programs that check cleanly and
/// have a `main` are lowered too.
#[test]
fn generated_programs_never_panic_the_checker() {
    let n = budget(20_000) as u64;
    let mut slowest = Duration::ZERO;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    for seed in 0..n {
        let text = compiler::syntax::print_module(&compiler::syntax::generate::module(seed, 1 + (seed % 4) as usize));
        // A stack overflow aborts without unwinding: JLC_TRACE=1 names the seed.
        if std::env::var("JLC_TRACE").is_ok() {
            eprintln!("seed {seed}");
        }
        run_case(seed, 0, &text, &mut slowest);
    }
    std::panic::set_hook(hook);
    eprintln!("fuzz (generated): seeds 0..{n} in {:?}, slowest {slowest:?}", start.elapsed());
}
