//! No panics on user input: random bytes and mutated model files go through
//! the lexer, parser and checker (and, when they check cleanly, lowering).
//! Seeds are new every run (`run_seed`) and printed; a failure names the
//! seed and the input.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// The project's splitmix64 (same sequence for a seed as every other generator).
use compiler::ir::generate::Rng as SplitMix;

/// Inputs per CI run; JLC_FUZZ_INPUTS sets every fuzz test's count (lower
/// it for quick local runs, raise it for longer ones). The two source-text
/// tests together run 1,000,000 inputs through lexer, parser and checker
/// (the issue's bar): 500,000 mutated model files (the slow half: about
/// 80 s of CPU) and 500,000 random byte strings and token soups (about 15 s).
const SOURCE_INPUTS_EACH: usize = 500_000;

fn budget(default: usize) -> usize {
    std::env::var("JLC_FUZZ_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn corpus() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts: Vec<String> = compiler::lower::program::STDLIB.iter().map(|(_, t)| t.to_string()).collect();
    for dir in ["examples", "tests/data/diagnostics", "tests/data/imports", "tests/data/imports/lib"] {
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
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "..",
    ":",
    "=",
    "->",
    "+",
    "-",
    "*",
    "/",
    "@",
    "^",
    "==",
    "<",
    ">=",
    "&&",
    "!",
    "\n",
    " ",
    "fn",
    "let",
    "model",
    "use",
    "data",
    "trainer",
    "for",
    "in",
    "if",
    "else",
    "x",
    "self",
    "B",
    "f32",
    "i32[",
    "f32[B, 3]",
    "0",
    "1",
    "-1",
    "1e-3",
    "99999999999999999999",
    "\"s\"",
    "#",
    "grad(",
    "sum(",
    "max(",
    "one_hot(",
    "log(\"a\", ",
    "mean(x, axis = 5)",
    "x @ x",
    "linspace(0.0, 1.0, 0)",
    "...",
    "::",
    "[-1]",
    "[:, 0:2]",
    "[1:-1:2]",
    "[::-1]",
    "[5:1:-2]",
    "grad(grad(",
    "jvp(grad(f), (x,), (x,))",
    "const ",
    "fn(x) = ",
    "fn(w) { ",
    "jvp(",
    "vjp(",
    "vmap(",
    ", in_axes = (None, 0))",
    "use \"lib.jl\"",
    "é",
    "\u{0}",
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

/// What every imported file contains, whatever its path (no disk access):
/// it imports itself relative to its own path, so imports nest and then
/// close a cycle.
const IMPORTED: &str = "use \"lib.jl\"\nuse nn.relu\nconst K = 2\nfn f(x) = relu(x)[0]\nfn g(x) = x[..., -1:]\n";

fn read_import(_path: &str) -> Result<String, String> {
    Ok(IMPORTED.to_string())
}

/// Runs the whole front end (and lowering of `main` when it checks) on `text`,
/// on the calling thread: each fuzz loop runs inside one `with_big_stack`
/// (spawning a thread per input was half the cost of an input).
fn front_end(text: &str) {
    // `check_source_here`, keeping the loaded program to lower it.
    let (prog, mut diags) = compiler::lower::load_with("fuzz.jl", text, &mut read_import);
    diags.extend(jaxlightning::check_loaded(&prog));
    if !diags.iter().any(|d| d.is_error()) && text.contains("fn main") {
        let _ = compiler::lower::lower_main(&prog);
    }
}

fn run_case(seed: u64, case: usize, text: &str, slowest: &mut Duration) {
    let start = Instant::now();
    let res = catch_unwind(AssertUnwindSafe(|| front_end(text)));
    let mut took = start.elapsed();
    if res.is_err() {
        // The caught panic stays quiet; this test's own failure must not.
        QUIET.with(|q| q.set(false));
    }
    assert!(res.is_ok(), "panic on fuzz input (seed {seed}, case {case}):\n{text:?}");
    // A shared machine can deschedule us for a while: a slow input is timed
    // twice more and judged by its fastest run.
    for _ in 0..2 {
        if took < Duration::from_secs(1) {
            break;
        }
        let again = Instant::now();
        front_end(text);
        took = took.min(again.elapsed());
    }
    *slowest = (*slowest).max(took);
    if took >= Duration::from_secs(1) {
        QUIET.with(|q| q.set(false));
    }
    assert!(took < Duration::from_secs(1), "input took {took:?} (seed {seed}, case {case}):\n{text:?}");
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's panic messages silenced (the fuzz cases'
/// caught panics are counted, not printed). The hook is installed once for
/// the process and stays quiet only on such a thread: tests running in
/// parallel report their failures as usual (swapping the process-wide hook
/// per test had swallowed another test's assertion message).
fn with_quiet_panics<R>(f: impl FnOnce() -> R) -> R {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                report(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = f();
    QUIET.with(|q| q.set(false));
    result
}

#[test]
fn mutated_model_files_never_panic() {
    let seed = compiler::ir::generate::run_seed(0x5eed_0001);
    let n = budget(SOURCE_INPUTS_EACH);
    let corpus = corpus();
    let mut rng = SplitMix(seed);
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    jaxlightning::with_big_stack(|| {
        with_quiet_panics(|| {
            for case in 0..n {
                let base = &corpus[rng.below(corpus.len())];
                let text = mutate(&mut rng, base);
                if std::env::var_os("JLC_TRACE").is_some() {
                    eprintln!("case {case}: {text:?}");
                }
                run_case(seed, case, &text, &mut slowest);
            }
        })
    });
    eprintln!("fuzz (mutated): seed {seed:#x}, {n} inputs in {:?}, slowest {slowest:?}", start.elapsed());
}

#[test]
fn random_bytes_never_panic() {
    let seed = compiler::ir::generate::run_seed(0x5eed_0002);
    let n = budget(SOURCE_INPUTS_EACH);
    let mut rng = SplitMix(seed);
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    jaxlightning::with_big_stack(|| {
        with_quiet_panics(|| {
            for case in 0..n {
                let len = rng.below(64);
                let text: String = if case % 2 == 0 {
                    // Raw bytes (lossily decoded, as `jlc` reads files).
                    let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    // Token soup: more likely to reach the parser and checker.
                    (0..len / 4).map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())]).collect::<Vec<_>>().join(" ")
                };
                run_case(seed, case, &text, &mut slowest);
            }
        })
    });
    eprintln!("fuzz (random): seed {seed:#x}, {n} inputs in {:?}, slowest {slowest:?}", start.elapsed());
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    for text in [
        format!("fn main() {{ print({}1.0) }}", "-".repeat(200_000)),
        format!("fn f(x: f32[2]) -> f32 {{ sum(x{}) }}", " + x".repeat(200_000)),
        format!("fn main() {{ print({}1.0{}) }}", "(".repeat(100_000), ")".repeat(100_000)),
    ] {
        let (diags, _) = jaxlightning::check_source("deep.jl", &text);
        let deep = diags.iter().any(|d| d.message.contains("nests more than"));
        assert!(deep || text.contains("(((("), "expected a nesting diagnostic, got {diags:?}");
    }
}

/// One mutation of a binary file; the kinds are chosen so that headers
/// (the first bytes) are hit often.
enum Mutation {
    Truncate,
    FlipBit,
    Other,
}

fn mutate_bytes(rng: &mut SplitMix, base: &[u8]) -> (Vec<u8>, Mutation) {
    let mut b = base.to_vec();
    // Half the positions in the first 32 bytes (magic, dims, length fields).
    let pos = |rng: &mut SplitMix, len: usize| if rng.below(2) == 0 { rng.below(len.min(32)) } else { rng.below(len) };
    let kind = rng.below(6);
    match kind {
        0 => {
            b.truncate(rng.below(base.len()));
            return (b, Mutation::Truncate);
        }
        1 => {
            let i = pos(rng, b.len());
            b[i] ^= 1 << rng.below(8);
            return (b, Mutation::FlipBit);
        }
        2 => {
            for _ in 0..1 + rng.below(8) {
                let i = pos(rng, b.len());
                b[i] = rng.next_u64() as u8;
            }
        }
        3 => {
            let i = pos(rng, b.len() + 1);
            let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next_u64() as u8).collect();
            b.splice(i..i, extra);
        }
        4 => {
            let i = pos(rng, b.len());
            let end = (i + 1 + rng.below(16)).min(b.len());
            b.drain(i..end);
        }
        _ => {
            // A 4-byte big-endian or 8-byte little-endian field set to an extreme.
            let i = pos(rng, b.len().saturating_sub(8));
            let v = [0u64, 1, u32::MAX as u64, u64::MAX, 1 << 40, rng.next_u64()][rng.below(6)];
            if rng.below(2) == 0 {
                b[i..i + 4].copy_from_slice(&(v as u32).to_be_bytes());
            } else {
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    (b, Mutation::Other)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_file(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

/// IDX images and labels, CSV and text (each raw and gzipped): at least
/// 1,000,000 mutated inputs per format (the IDX pair gets two million, a
/// quarter each of its eight bases), no panics, every error naming its
/// file; then truncations and bit flips at 1,000 random positions each.
#[test]
fn mutated_idx_csv_and_text_inputs_never_panic() {
    let seed = compiler::ir::generate::run_seed(0x5eed_0003);
    let n = budget(4_000_000);
    let mut rng = SplitMix(seed);
    let pixels: Vec<u8> = (0..5 * 4 * 3).map(|_| rng.next_u64() as u8).collect();
    let images = idx_file(&[5, 4, 3], &pixels);
    let labels = idx_file(&[5], &[1, 0, 3, 9, 2]);
    let csv = b"0.5,1,2,0\n3,4e-1,5,1\n-6,7,8.25,2\n".to_vec();
    let text = b"To be, or not to be, that is the question:\n".to_vec();
    // (bytes, which input it replaces: 0 images, 1 labels, 2 csv, 3 text)
    let bases: Vec<(Vec<u8>, usize)> = vec![
        (images.clone(), 0),
        (gzip(&images), 0),
        (labels.clone(), 1),
        (gzip(&labels), 1),
        (csv.clone(), 2),
        (gzip(&csv), 2),
        (text.clone(), 3),
        (gzip(&text), 3),
    ];
    let load = |which: usize, bytes: &[u8]| match which {
        0 => trainer::data::parse_idx_pair("img", bytes, "lab", &labels, 1.0),
        1 => trainer::data::parse_idx_pair("img", &images, "lab", bytes, 1.0),
        2 => trainer::data::parse_csv_bytes("x.csv", bytes, 1.0),
        _ => trainer::data::parse_text("t.txt", bytes, 8),
    };
    let start = Instant::now();
    let (mut errors, mut truncations) = (0usize, 0usize);
    for case in 0..n {
        let (base, which) = &bases[case % bases.len()];
        let (bytes, kind) = mutate_bytes(&mut rng, base);
        let res = catch_unwind(AssertUnwindSafe(|| load(*which, &bytes).map(|_| ())));
        // No quiet panic hook here: a panic is a failure, and its message
        // should print (the hook is global, so swapping it races other tests).
        let Ok(res) = res else {
            panic!("panic on fuzz input (seed {seed:#x}, case {case}): {bytes:?}");
        };
        if let Err(e) = &res {
            errors += 1;
            let msg = e.to_string();
            assert!(["img", "lab", "x.csv", "t.txt"].iter().any(|f| msg.starts_with(f)), "error names no file: {msg}");
        }
        // A truncated IDX file is always an error (a CSV cut at a line end is still a CSV).
        if matches!(kind, Mutation::Truncate) && *which < 2 {
            truncations += 1;
            assert!(res.is_err(), "truncation accepted (seed {seed:#x}, case {case}): {bytes:?}");
        }
    }
    let fuzz_time = start.elapsed();

    // Truncations and bit flips at 1,000 random positions of each base. A
    // truncated IDX file or gzip stream is always rejected (a raw CSV or text
    // cut short can still be one). A flipped bit in an IDX header or a
    // gzip stream is rejected or changes nothing (gzip's CRC-32; its header's
    // time and OS bytes are not covered, and a flip in the magic makes a
    // different, raw text file); one in raw data is data.
    let start = Instant::now();
    let (mut truncations_caught, mut flips_caught) = (0, 0);
    for case in 0..1000 * bases.len() {
        let (base, which) = &bases[case % bases.len()];
        let gz = base.starts_with(&[0x1f, 0x8b]);
        let cut = rng.below(base.len());
        let Ok(res) = catch_unwind(AssertUnwindSafe(|| load(*which, &base[..cut]))) else {
            panic!("panic on input {which} truncated at {cut} (seed {seed:#x}, case {case})");
        };
        if gz || *which < 2 {
            assert!(res.is_err(), "input {which} (gzip: {gz}) truncated to {cut} bytes accepted (seed {seed:#x})");
        }
        truncations_caught += res.is_err() as usize;
        let (i, bit) = (rng.below(base.len()), rng.below(8));
        let mut flipped = base.clone();
        flipped[i] ^= 1 << bit;
        let Ok(res) = catch_unwind(AssertUnwindSafe(|| load(*which, &flipped))) else {
            panic!("panic on input {which} with bit {bit} of byte {i} flipped (seed {seed:#x}, case {case})");
        };
        flips_caught += res.is_err() as usize;
        let idx_header = !gz && *which < 2 && i < base.len() - if *which == 0 { pixels.len() } else { 5 };
        let gz_checked = gz && !(*which == 3 && i < 2);
        if (idx_header || gz_checked) && res.is_ok() {
            assert!(
                load(*which, &flipped).unwrap() == load(*which, base).unwrap(),
                "input {which}: flipping bit {bit} of byte {i} changed the data unnoticed (seed {seed:#x}, case {case})"
            );
        }
    }
    eprintln!(
        "fuzz (idx/csv/text): seed {seed:#x}, {n} inputs ({errors} rejected, {truncations} truncated IDX all rejected) \
         in {fuzz_time:?}; {} truncations ({truncations_caught} rejected) and as many bit flips ({flips_caught} \
         rejected) in {:?}",
        1000 * bases.len(),
        start.elapsed()
    );
}

#[test]
fn mutated_checkpoints_never_panic_and_truncations_are_detected() {
    use compiler::ir::Tensor;
    let seed = compiler::ir::generate::run_seed(0x5eed_0004);
    let n = budget(1_000_000);
    let mut rng = SplitMix(seed);
    let meta = trainer::checkpoint::Meta {
        format_version: trainer::checkpoint::FORMAT_VERSION,
        jlc_version: "0.1.0".into(),
        model_name: "Mlp".into(),
        model_hash: trainer::checkpoint::model_hash("model"),
        seed: 3,
        epoch: 1,
        batch: 2,
        global_step: 9,
        loss_sum: 1.25,
        log_sums: vec![0.5],
        data_order: "batch_size=2".into(),
        config: "x: 1\n".into(),
        callbacks: r#"{"EarlyStopping":{"best":null,"monitor":"val_loss","wait":0}}"#.into(),
    };
    let w = Tensor::f32(&[3, 2], (0..6).map(|i| i as f32 * 0.37).collect());
    let b = Tensor::f32(&[2], vec![0.25, -1.0]);
    let m = Tensor::f32(&[3, 2], vec![1e-3; 6]);
    let tensors = vec![("l.weight".to_string(), &w), ("l.bias".to_string(), &b), ("opt.l.weight.0".to_string(), &m)];
    let base = trainer::checkpoint::encode(&meta, &tensors).unwrap();
    let original = trainer::checkpoint::decode("ok.safetensors", &base).unwrap();
    let start = Instant::now();
    let (mut unchanged, mut truncations, mut flips) = (0usize, 0usize, 0usize);
    for case in 0..n {
        let (bytes, kind) = mutate_bytes(&mut rng, &base);
        let Ok(res) = catch_unwind(AssertUnwindSafe(|| trainer::checkpoint::decode("c.safetensors", &bytes))) else {
            panic!("panic on fuzz input (seed {seed:#x}, case {case}): {bytes:?}");
        };
        match (&res, kind) {
            (Ok(_), Mutation::Truncate) => {
                panic!("truncation to {} bytes accepted (seed {seed:#x}, case {case})", bytes.len())
            }
            (Ok(_), Mutation::FlipBit) => panic!("bit flip accepted (seed {seed:#x}, case {case})"),
            (Ok(ck), Mutation::Other) => {
                // Only a mutation that changes nothing decoded may pass: a
                // byte overwritten with its own value, or header padding
                // (spaces) changed into other JSON whitespace.
                assert!(*ck == original, "corrupt checkpoint accepted (seed {seed:#x}, case {case}): {bytes:?}");
                unchanged += 1;
            }
            (Err(e), k) => {
                assert!(e.to_string().starts_with("checkpoint c.safetensors: "), "{e}");
                truncations += matches!(k, Mutation::Truncate) as usize;
                flips += matches!(k, Mutation::FlipBit) as usize;
            }
        }
    }
    eprintln!(
        "fuzz (checkpoints): seed {seed:#x}, {n} inputs in {:?}: all rejected ({truncations} truncations, {flips} bit flips) except {unchanged} that decode to the original (same bytes, or whitespace in the header padding)",
        start.elapsed()
    );
}

/// Random syntactically valid programs (`compiler::syntax::generate`): the
/// checker reports errors, never panics. Programs that check cleanly and
/// have a `main` are lowered too.
#[test]
fn generated_programs_never_panic_the_checker() {
    let n = budget(20_000) as u64;
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    jaxlightning::with_big_stack(|| {
        with_quiet_panics(|| {
            for seed in 0..n {
                let text =
                    compiler::syntax::print_module(&compiler::syntax::generate::module(seed, 1 + (seed % 4) as usize));
                // A stack overflow aborts without unwinding: JLC_TRACE=1 names the seed.
                if std::env::var("JLC_TRACE").is_ok() {
                    eprintln!("seed {seed}");
                }
                run_case(seed, 0, &text, &mut slowest);
            }
        })
    });
    eprintln!("fuzz (generated): seeds 0..{n} in {:?}, slowest {slowest:?}", start.elapsed());
}

/// `.npy` files of every dtype (versions 1 and 2) and `.npz` archives
/// (stored and deflated) of them: the bases the NPY/NPZ fuzz tests mutate.
fn npy_and_npz_bases(rng: &mut SplitMix) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use trainer::data::{npy, npz, Values};
    let n = 12;
    let all = [
        Values::U8((0..n).map(|_| rng.next_u64() as u8).collect()),
        Values::I32((0..n).map(|_| rng.next_u64() as i32).collect()),
        Values::F32((0..n).map(|_| rng.next_u64() as u32 as f32).collect()),
        Values::F64((0..n).map(|_| rng.next_u64() as f64).collect()),
        Values::Bool((0..n).map(|_| rng.below(2) == 1).collect()),
    ];
    let mut npys: Vec<Vec<u8>> = all.iter().map(|v| npy::write(&[3, 4], v)).collect();
    // Version 2 (a 4-byte header length, same header text) and an '<i8' file.
    let v1 = npy::write(&[12], &all[3]);
    let mut v2 = v1[..6].to_vec();
    v2.extend([2, 0]);
    v2.extend((u16::from_le_bytes([v1[8], v1[9]]) as u32).to_le_bytes());
    v2.extend(&v1[10..]);
    npys.push(v2);
    let mut i8_file = npy::write(&[4], &Values::F64(vec![0.0; 4]));
    let at = i8_file.windows(3).position(|w| w == b"<f8").unwrap();
    i8_file[at + 1] = b'i';
    i8_file.truncate(i8_file.len() - 32);
    i8_file.extend((0..4i64).flat_map(|v| (v * 1000 - 1500).to_le_bytes()));
    npys.push(i8_file);
    for f in &npys {
        npy::parse("base.npy", f).expect("the bases are valid");
    }
    let npzs = vec![
        npz::write(&[("x", npys[2].clone()), ("y", npys[1].clone())], false),
        npz::write(&[("x", npys[0].clone()), ("y", npys[4].clone())], true),
        npz::write(&[("x", npys[6].clone()), ("y", npys[6].clone())], true),
    ];
    for z in &npzs {
        trainer::data::parse_npz("base.npz", z, "x", "y", 1.0).expect("the bases are valid");
    }
    (npys, npzs)
}

/// Safetensors files with an input and a target tensor of each dtype the
/// source reads (as `safetensors.numpy.save_file` writes them).
fn safetensors_bases(rng: &mut SplitMix) -> Vec<Vec<u8>> {
    use safetensors::{tensor::TensorView, Dtype};
    let mut bytes = |size: usize, n: usize| -> Vec<u8> { (0..size * n).map(|_| rng.next_u64() as u8).collect() };
    let f32s: Vec<u8> = (0..12).flat_map(|_| 0.5f32.to_le_bytes()).collect();
    let (f64s, u8s) = (bytes(8, 12).iter().map(|b| b & 0x3f).collect::<Vec<u8>>(), bytes(1, 12));
    let i32s: Vec<u8> = (0..3i32).flat_map(|v| v.to_le_bytes()).collect();
    let i64s: Vec<u8> = (0..3i64).flat_map(|v| (v - 1).to_le_bytes()).collect();
    let bools = vec![1u8, 0, 1];
    let pairs: [((Dtype, &[u8]), (Dtype, &[u8])); 3] = [
        ((Dtype::F32, &f32s), (Dtype::I32, &i32s)),
        ((Dtype::U8, &u8s), (Dtype::BOOL, &bools)),
        ((Dtype::F64, &f64s), (Dtype::I64, &i64s)),
    ];
    let files: Vec<Vec<u8>> = pairs
        .iter()
        .map(|((xd, xb), (yd, yb))| {
            let t = [
                ("x", TensorView::new(*xd, vec![3, 4], xb).unwrap()),
                ("y", TensorView::new(*yd, vec![3], yb).unwrap()),
            ];
            safetensors::serialize(t, None).unwrap()
        })
        .collect();
    for f in &files {
        trainer::data::parse_safetensors("base.safetensors", f, "x", "y", 1.0).expect("the bases are valid");
    }
    files
}

/// `budget` mutated inputs per loader (NPY, NPZ, safetensors) with 0 panics; then, per
/// loader, truncations at 1,000 random lengths (all rejected: the formats
/// state their sizes) and bit flips at 1,000 random positions (no panic; in
/// an NPZ every flip inside a member's bytes is caught by its CRC-32 or
/// leaves the arrays unchanged: the unused bits after a deflate stream).
#[test]
fn mutated_npy_npz_and_safetensors_inputs_never_panic_and_truncations_are_detected() {
    let seed = 0x5eed_0005;
    let n = budget(1_000_000);
    let mut rng = SplitMix(seed);
    let (npys, npzs) = npy_and_npz_bases(&mut rng);
    let safetensors = safetensors_bases(&mut rng);
    let npy = |b: &[u8]| trainer::data::npy::parse("f.npy", b).map(|_| ());
    let npz = |b: &[u8]| trainer::data::parse_npz("f.npz", b, "x", "y", 1.0).map(|_| ());
    let st = |b: &[u8]| trainer::data::parse_safetensors("f.safetensors", b, "x", "y", 1.0).map(|_| ());
    type Loader<'a> = &'a dyn Fn(&[u8]) -> Result<(), trainer::data::DataError>;
    let loaders: [(&str, &[Vec<u8>], Loader); 3] =
        [("npy", &npys, &npy), ("npz", &npzs, &npz), ("safetensors", &safetensors, &st)];
    for (name, bases, load) in loaders {
        let start = Instant::now();
        let mut errors = 0usize;
        for case in 0..n {
            let base = &bases[case % bases.len()];
            let (bytes, kind) = mutate_bytes(&mut rng, base);
            let Ok(res) = catch_unwind(AssertUnwindSafe(|| load(&bytes))) else {
                panic!("panic on {name} fuzz input (seed {seed:#x}, case {case}): {bytes:?}");
            };
            if let Err(e) = &res {
                errors += 1;
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("f.{name}")), "error names no file: {msg}");
            }
            if matches!(kind, Mutation::Truncate) {
                assert!(res.is_err(), "{name} truncation accepted (seed {seed:#x}, case {case}): {bytes:?}");
            }
        }
        let fuzz_time = start.elapsed();
        // Truncations and bit flips at 1,000 random positions each.
        let start = Instant::now();
        let mut flips_caught = 0;
        for case in 0..1000 {
            let base = &bases[case % bases.len()];
            let cut = rng.below(base.len());
            let Ok(res) = catch_unwind(AssertUnwindSafe(|| load(&base[..cut]))) else {
                panic!("panic on a {name} truncated at {cut} (seed {seed:#x}, case {case})");
            };
            assert!(res.is_err(), "{name} truncated to {cut} bytes accepted (seed {seed:#x}, case {case})");
            let (i, bit) = (rng.below(base.len()), rng.below(8));
            let mut flipped = base.clone();
            flipped[i] ^= 1 << bit;
            let Ok(res) = catch_unwind(AssertUnwindSafe(|| load(&flipped))) else {
                panic!("panic on a {name} with bit {bit} of byte {i} flipped (seed {seed:#x}, case {case})");
            };
            flips_caught += res.is_err() as usize;
            if name == "npz" {
                let archive = trainer::data::npz::Npz::parse("f.npz", base).unwrap();
                let in_member = archive.members.iter().any(|m| archive.data_range(m).is_some_and(|r| r.contains(&i)));
                // Caught, or (a flip in a deflate stream's unused last bits) the same arrays.
                if in_member && res.is_ok() {
                    let parse = |b: &[u8]| trainer::data::parse_npz("f.npz", b, "x", "y", 1.0).unwrap();
                    assert!(
                        parse(&flipped) == parse(base),
                        "npz: flipping bit {bit} of member byte {i} changed the data unnoticed (seed {seed:#x}, case {case})"
                    );
                }
            }
        }
        eprintln!(
            "fuzz ({name}): seed {seed:#x}, {n} mutated inputs ({errors} rejected, every truncation rejected) in {fuzz_time:?}; \
             1,000 truncations all rejected and 1,000 bit flips ({flips_caught} rejected, none panicked) in {:?}",
            start.elapsed()
        );
    }
}

/// Generated program 46795 (found by `generated_programs_never_panic_the_checker`
/// with a larger budget): a written dim of `450 * N * b` with `N` near
/// `i64::MAX` overflowed the product of known factors. It is an error now,
/// not a panic.
#[test]
fn a_huge_written_dim_does_not_overflow_the_checker() {
    let text = "const N = 9223372036854775807\n\nfn relu(logits: int[450 * N * b] = 0.1) {\n    _t\n}\n";
    let res =
        jaxlightning::with_big_stack(|| catch_unwind(AssertUnwindSafe(|| jaxlightning::check_source("t.jl", text))));
    let (diags, _) = res.expect("no panic");
    assert!(diags.iter().any(|d| d.is_error()), "{diags:?}");
}
