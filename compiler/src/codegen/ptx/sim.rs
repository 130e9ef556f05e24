//! A test-only simulator for the PTX subset that `ptx.rs` emits, so the
//! emitted kernels can be checked against the interpreter without a GPU.
//!
//! Consumes a `PtxProgram` and host tensors; produces the outputs, running
//! grid-stride kernels with one thread (their loops cover all elements),
//! kernels with block-level features (`.shared`, `bar.sync`, `shfl.sync`)
//! as `grid` blocks of `BLOCK` threads (threads interleaved between
//! barriers, a warp's lanes meeting at each shuffle), and GEMM steps by a
//! plain host loop. Each instruction is modelled by its
//! IEEE-754 meaning in Rust (`mul_add` for `fma.rn`, `round_ties_even` for
//! `.rni`, `as` for saturating `.rzi.sat` conversions), so this checks our
//! algorithms and operand plumbing; the GPU check checks the hardware.

use std::collections::HashMap;

use super::{PtxProgram, Step};
use crate::ir::{DType, Data, Tensor};

/// Device memory: one byte vector per buffer; address = (index + 1) << 40.
struct Memory {
    bufs: Vec<Vec<u8>>,
}

impl Memory {
    fn locate(&mut self, addr: u64, size: usize) -> &mut [u8] {
        let buf = (addr >> 40) as usize - 1;
        let off = (addr & ((1 << 40) - 1)) as usize;
        let b = &mut self.bufs[buf];
        assert!(off + size <= b.len(), "out-of-bounds access: buffer {buf} offset {off} size {size} len {}", b.len());
        &mut b[off..off + size]
    }
}

/// Parses an operand to raw bits; `ty` is the instruction's operand type.
fn value(regs: &HashMap<String, u64>, op: &str, ty: &str) -> u64 {
    let op = op.trim();
    if let Some(hex) = op.strip_prefix("0d") {
        return u64::from_str_radix(hex, 16).expect("f64 immediate");
    }
    if let Some(hex) = op.strip_prefix("0f") {
        return u64::from_str_radix(hex, 16).expect("f32 immediate");
    }
    // Registers, special registers and shared symbols (all in `regs`).
    if let Some(v) = regs.get(op) {
        return *v;
    }
    if op.starts_with('%') {
        panic!("read of unset register {op}");
    }
    let v: i64 = op.parse().unwrap_or_else(|_| panic!("bad operand {op}"));
    match ty {
        "f32" => (v as f32).to_bits() as u64,
        "f64" => (v as f64).to_bits(),
        _ => v as u64,
    }
}

fn f32_of(b: u64) -> f32 {
    f32::from_bits(b as u32)
}
fn f64_of(b: u64) -> f64 {
    f64::from_bits(b)
}

/// One decoded instruction line (decoded once per kernel, run many times).
struct Line<'a> {
    /// A label line (`name:`): nothing to run.
    label: bool,
    guard: Option<&'a str>,
    opcode: &'a str,
    parts: Vec<&'a str>,
    ops: Vec<String>,
}

fn decode(line: &str) -> Line<'_> {
    if line.ends_with(':') {
        return Line { label: true, guard: None, opcode: "", parts: Vec::new(), ops: Vec::new() };
    }
    let mut text = line.trim_end_matches(';');
    let mut guard = None;
    if let Some(rest) = text.strip_prefix('@') {
        let (pred, instr) = rest.split_once(' ').expect("guarded instruction");
        guard = Some(pred);
        text = instr;
    }
    let (opcode, operands) = text.split_once(' ').unwrap_or((text, ""));
    // Split operands at top-level commas (not inside `{...}` or `[...]`).
    let mut ops: Vec<String> = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for ch in operands.chars() {
        match ch {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            ops.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(ch);
        }
    }
    if !cur.trim().is_empty() {
        ops.push(cur.trim().to_string());
    }
    Line { label: false, guard, opcode, parts: opcode.split('.').collect(), ops }
}

/// Where a thread stopped.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum State {
    Running,
    /// Past a `bar.sync`, waiting for the rest of the block.
    Barrier,
    /// At a `shfl.sync` (not yet executed), waiting for its warp.
    Shuffle,
    Done,
}

struct Thread {
    regs: HashMap<String, u64>,
    pc: usize,
    state: State,
}

/// Runs one kernel. Kernels that use block-level features (`.shared`,
/// `bar.sync`, `shfl.sync`) run as the GPU would: `grid` blocks of
/// `BLOCK` threads, each block's threads interleaved between barriers and
/// a warp's lanes meeting at every shuffle. Every other kernel is a
/// grid-stride loop and runs as one thread (`%ntid.x = %nctaid.x = 1`),
/// which covers all elements and is much faster to simulate.
fn run_kernel(ptx: &str, name: &str, grid: u32, params: &[u64], mem: &mut Memory) {
    let start = ptx.find(&format!(".entry {name}(")).unwrap_or_else(|| panic!("no kernel {name}"));
    let body_start = start + ptx[start..].find('{').expect("kernel body");
    let body_end = body_start + ptx[body_start..].find("\n}").expect("kernel end");
    let body = &ptx[body_start + 1..body_end];
    // Static shared arrays, laid out in order at 8-byte alignment.
    let mut symbols: Vec<(String, u64)> = Vec::new();
    let mut shared_bytes = 0u64;
    for l in body.lines().map(str::trim).filter(|l| l.starts_with(".shared")) {
        let decl = l.trim_end_matches(';').rsplit(' ').next().expect("shared decl");
        let (sym, size) = decl.trim_end_matches(']').split_once('[').expect("shared array");
        symbols.push((sym.to_string(), shared_bytes));
        shared_bytes += size.parse::<u64>().expect("shared size").div_ceil(8) * 8;
    }
    let lines: Vec<Line> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(".reg") && !l.starts_with(".shared"))
        .map(decode)
        .collect();
    let labels: HashMap<&str, usize> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(".reg") && !l.starts_with(".shared"))
        .enumerate()
        .filter_map(|(i, l)| l.strip_suffix(':').map(|n| (n, i)))
        .collect();
    let block_level =
        shared_bytes > 0 || body.contains("bar.sync") || body.contains("shfl.sync") || body.contains("vote.sync");
    let (n_blocks, n_threads) = if block_level { (grid, super::BLOCK) } else { (1, 1) };
    let mut steps = 0u64;
    for block in 0..n_blocks {
        let mut shared = vec![0u8; shared_bytes as usize];
        let mut threads: Vec<Thread> = (0..n_threads)
            .map(|t| {
                let mut regs = HashMap::new();
                regs.insert("%tid.x".to_string(), u64::from(t));
                regs.insert("%ntid.x".to_string(), u64::from(n_threads));
                regs.insert("%ctaid.x".to_string(), u64::from(block));
                regs.insert("%nctaid.x".to_string(), u64::from(n_blocks));
                for (sym, off) in &symbols {
                    regs.insert(sym.clone(), *off);
                }
                Thread { regs, pc: 0, state: State::Running }
            })
            .collect();
        loop {
            for th in threads.iter_mut().filter(|t| t.state == State::Running) {
                run_thread(name, &lines, &labels, th, params, mem, &mut shared, &mut steps);
            }
            let mut progress = false;
            // Warps whose 32 lanes all wait at the same shuffle run it.
            for warp in threads.chunks_mut(32) {
                if warp.iter().all(|t| t.state == State::Shuffle) {
                    let pc = warp[0].pc;
                    assert!(warp.iter().all(|t| t.pc == pc), "{name}: warp diverged at a shuffle");
                    shuffle(&lines[pc], warp);
                    progress = true;
                } else {
                    assert!(
                        warp.iter().all(|t| t.state != State::Shuffle) || warp.iter().all(|t| t.state != State::Done),
                        "{name}: a shuffle waits for exited lanes"
                    );
                }
            }
            if progress {
                continue;
            }
            if threads.iter().all(|t| t.state == State::Done) {
                break;
            }
            // Everyone else waits: a barrier needs the whole block.
            assert!(
                threads.iter().all(|t| t.state == State::Barrier),
                "{name}: deadlock (states {:?})",
                threads.iter().map(|t| t.state).collect::<std::collections::BTreeSet<_>>()
            );
            for th in &mut threads {
                th.state = State::Running;
            }
        }
    }
}

/// `shfl.sync.down.b32 d, a, b, c, mask` for a whole warp: lane `i` gets
/// lane `i + b`'s `a`, or its own when `i + b` is past the clamp `c & 31`.
fn shuffle(line: &Line, warp: &mut [Thread]) {
    if line.parts[0] == "vote" {
        return ballot(line, warp);
    }
    assert_eq!(line.parts[..3], ["shfl", "sync", "down"], "only shfl.sync.down is simulated");
    let vals: Vec<u64> = warp.iter().map(|t| value(&t.regs, &line.ops[1], "b32")).collect();
    let delta = value(&warp[0].regs, &line.ops[2], "b32") as usize;
    let clamp = (value(&warp[0].regs, &line.ops[3], "b32") & 31) as usize;
    assert_eq!(value(&warp[0].regs, &line.ops[4], "b32") & 0xffff_ffff, 0xffff_ffff, "full-warp mask");
    for (lane, th) in warp.iter_mut().enumerate() {
        let src = if lane + delta <= clamp { lane + delta } else { lane };
        th.regs.insert(line.ops[0].clone(), vals[src] & 0xffff_ffff);
        th.pc += 1;
        th.state = State::Running;
    }
}

/// `vote.sync.ballot.b32 d, p, mask` for a whole warp: every lane gets
/// the mask of lanes whose predicate `p` is true (bit `i` for lane `i`).
fn ballot(line: &Line, warp: &mut [Thread]) {
    assert_eq!(line.parts[..3], ["vote", "sync", "ballot"], "only vote.sync.ballot is simulated");
    assert_eq!(value(&warp[0].regs, &line.ops[2], "b32") & 0xffff_ffff, 0xffff_ffff, "full-warp mask");
    let mask = warp
        .iter()
        .enumerate()
        .filter(|(_, t)| value(&t.regs, &line.ops[1], "pred") != 0)
        .fold(0u64, |m, (lane, _)| m | (1 << lane));
    for th in warp.iter_mut() {
        th.regs.insert(line.ops[0].clone(), mask);
        th.pc += 1;
        th.state = State::Running;
    }
}

/// The four registers of a vector operand `{a, b, c, d}`.
fn vector_regs(op: &str) -> Vec<&str> {
    let regs: Vec<&str> = op.trim_matches(|c| c == '{' || c == '}').split(',').map(str::trim).collect();
    assert_eq!(regs.len(), 4, "a .v4 operand names four registers: {op}");
    regs
}

/// Runs `th` until it exits, passes a barrier, or reaches a shuffle.
#[allow(clippy::too_many_arguments)]
fn run_thread(
    name: &str,
    lines: &[Line],
    labels: &HashMap<&str, usize>,
    th: &mut Thread,
    params: &[u64],
    mem: &mut Memory,
    shared: &mut [u8],
    steps: &mut u64,
) {
    let regs = &mut th.regs;
    while th.pc < lines.len() {
        *steps += 1;
        assert!(*steps < 400_000_000, "kernel {name} does not terminate");
        let line = &lines[th.pc];
        th.pc += 1;
        if line.label {
            continue;
        }
        if let Some(pred) = line.guard {
            if value(regs, pred, "pred") == 0 {
                continue;
            }
        }
        let (opcode, ops, parts) = (line.opcode, &line.ops, &line.parts);
        match parts[0] {
            "ret" => break,
            "bra" => {
                th.pc = labels[ops[0].as_str()];
                continue;
            }
            "bar" => {
                th.state = State::Barrier;
                return;
            }
            "shfl" | "vote" => {
                th.pc -= 1;
                th.state = State::Shuffle;
                return;
            }
            _ => {}
        }
        let ty = *parts.last().unwrap_or_else(|| panic!("typed opcode {opcode}"));
        let get = |regs: &HashMap<String, u64>, k: usize| value(regs, &ops[k], ty);
        let size = match ty {
            "u8" => 1,
            "f64" | "u64" | "b64" | "s64" => 8,
            _ => 4,
        };
        let result: u64 = match parts[0] {
            "ld" if parts[1] == "param" => {
                let pname = ops[1].trim_matches(|c| c == '[' || c == ']');
                let k: usize = pname.rsplit_once("_p").expect("param name").1.parse().expect("param index");
                params[k]
            }
            "ld" if parts[2] == "v4" => {
                // ld.global.v4.T {a, b, c, d}, [addr]: four 4-byte elements.
                let addr = value(regs, ops[1].trim_matches(|c| c == '[' || c == ']'), "u64");
                assert_eq!(addr % 16, 0, "kernel {name}: misaligned 16-byte load at {addr:#x}");
                let bytes = mem.locate(addr, 16).to_vec();
                for (e, reg) in vector_regs(&ops[0]).into_iter().enumerate() {
                    let word = u32::from_le_bytes(bytes[4 * e..4 * e + 4].try_into().expect("4 bytes"));
                    regs.insert(reg.to_string(), u64::from(word));
                }
                continue;
            }
            "st" if parts[2] == "v4" => {
                // st.global.v4.T [addr], {a, b, c, d}.
                let addr = value(regs, ops[0].trim_matches(|c| c == '[' || c == ']'), "u64");
                assert_eq!(addr % 16, 0, "kernel {name}: misaligned 16-byte store at {addr:#x}");
                let words: Vec<u32> =
                    vector_regs(&ops[1]).into_iter().map(|r| (value(regs, r, ty) & 0xffff_ffff) as u32).collect();
                let bytes = mem.locate(addr, 16);
                for (e, w) in words.iter().enumerate() {
                    bytes[4 * e..4 * e + 4].copy_from_slice(&w.to_le_bytes());
                }
                continue;
            }
            "ld" => {
                let addr = value(regs, ops[1].trim_matches(|c| c == '[' || c == ']'), "u64");
                let bytes: &[u8] = if parts[1] == "shared" {
                    &shared[addr as usize..addr as usize + size]
                } else {
                    mem.locate(addr, size)
                };
                let mut raw = [0u8; 8];
                raw[..size].copy_from_slice(bytes);
                u64::from_le_bytes(raw)
            }
            "st" => {
                let addr = value(regs, ops[0].trim_matches(|c| c == '[' || c == ']'), "u64");
                let v = get(regs, 1);
                let bytes: &mut [u8] = if parts[1] == "shared" {
                    &mut shared[addr as usize..addr as usize + size]
                } else {
                    mem.locate(addr, size)
                };
                bytes.copy_from_slice(&v.to_le_bytes()[..size]);
                continue;
            }
            "cvta" => get(regs, 1),
            "mov" if ops[0].starts_with('{') => {
                // mov.b64 {lo, hi}, x
                let v = get(regs, 1);
                let names: Vec<&str> =
                    ops[0].trim_matches(|c| c == '{' || c == '}').split(',').map(str::trim).collect();
                regs.insert(names[0].to_string(), v & 0xffff_ffff);
                regs.insert(names[1].to_string(), v >> 32);
                continue;
            }
            "mov" if ops[1].starts_with('{') => {
                let names: Vec<&str> =
                    ops[1].trim_matches(|c| c == '{' || c == '}').split(',').map(str::trim).collect();
                (value(regs, names[0], "b32") & 0xffff_ffff) | (value(regs, names[1], "b32") << 32)
            }
            "mov" => {
                let v = get(regs, 1);
                if ty.ends_with("32") {
                    v & 0xffff_ffff
                } else {
                    v
                }
            }
            "selp" => {
                if get(regs, 3) != 0 {
                    get(regs, 1)
                } else {
                    get(regs, 2)
                }
            }
            "setp" => setp(parts[1], ty, get(regs, 1), get(regs, 2)),
            "and" | "or" if ty == "pred" => {
                let (a, b) = (get(regs, 1), get(regs, 2));
                (if parts[0] == "and" { a & b } else { a | b }) & 1
            }
            "not" if ty == "pred" => get(regs, 1) ^ 1,
            "cvt" => convert(parts, get(regs, 1)),
            _ => arith(parts, &(1..ops.len()).map(|k| get(regs, k)).collect::<Vec<_>>()),
        };
        // Overwrite in place where the register exists (no key allocation).
        match regs.get_mut(&ops[0]) {
            Some(slot) => *slot = result,
            None => {
                regs.insert(ops[0].clone(), result);
            }
        }
    }
    th.state = State::Done;
}

fn setp(cmp: &str, ty: &str, a: u64, b: u64) -> u64 {
    let r = match ty {
        "f32" | "f64" => {
            let (x, y) = if ty == "f32" { (f32_of(a) as f64, f32_of(b) as f64) } else { (f64_of(a), f64_of(b)) };
            let unord = x.is_nan() || y.is_nan();
            match cmp {
                "lt" => x < y,
                "le" => x <= y,
                "gt" => x > y,
                "ge" => x >= y,
                "eq" => x == y,
                "ne" => !unord && x != y,
                "neu" => unord || x != y,
                "nan" => unord,
                "num" => !unord,
                other => panic!("setp.{other}"),
            }
        }
        "s32" | "s64" => {
            let (x, y) =
                if ty == "s32" { (a as u32 as i32 as i64, b as u32 as i32 as i64) } else { (a as i64, b as i64) };
            match cmp {
                "lt" => x < y,
                "le" => x <= y,
                "gt" => x > y,
                "ge" => x >= y,
                "eq" => x == y,
                "ne" => x != y,
                other => panic!("setp.{other}"),
            }
        }
        _ => {
            let (x, y) = if ty == "u32" { (a & 0xffff_ffff, b & 0xffff_ffff) } else { (a, b) };
            match cmp {
                "lt" => x < y,
                "le" => x <= y,
                "gt" => x > y,
                "ge" => x >= y,
                "eq" => x == y,
                "ne" => x != y,
                other => panic!("setp.{other}"),
            }
        }
    };
    r as u64
}

fn convert(parts: &[&str], v: u64) -> u64 {
    // cvt[.rnd][.sat].dst.src
    let (dst, src) = (parts[parts.len() - 2], parts[parts.len() - 1]);
    let rnd = parts.iter().find(|p| ["rn", "rni", "rzi", "rmi", "rpi"].contains(p)).copied();
    // The integer roundings of float-to-float conversions (exact).
    let integral = |x: f64| match rnd {
        Some("rni") => x.round_ties_even(),
        Some("rzi") => x.trunc(),
        Some("rmi") => x.floor(),
        Some("rpi") => x.ceil(),
        _ => x,
    };
    let x: f64 = match src {
        "f32" => f32_of(v) as f64,
        "f64" => f64_of(v),
        "s32" => v as u32 as i32 as f64,
        "u32" => (v & 0xffff_ffff) as f64,
        "u64" => v as f64,
        other => panic!("cvt from {other}"),
    };
    match (dst, src) {
        ("u64", "u32") => v & 0xffff_ffff,
        ("u32", "u64") => v & 0xffff_ffff,
        ("f32", "u64") => (v as f32).to_bits() as u64,
        ("f64", "u64") => (v as f64).to_bits(),
        ("f32", "f64") => (f64_of(v) as f32).to_bits() as u64,
        ("f32", "s32") => (v as u32 as i32 as f32).to_bits() as u64,
        ("f32", "u32") => ((v & 0xffff_ffff) as u32 as f32).to_bits() as u64,
        ("f32", "f32") => (integral(x) as f32).to_bits() as u64,
        ("f32", _) => (x as f32).to_bits() as u64,
        ("f64", _) => integral(x).to_bits(),
        ("s32", _) => {
            let r = match rnd {
                Some("rni") => x.round_ties_even(),
                _ => x.trunc(),
            };
            (r as i32) as u32 as u64
        }
        other => panic!("cvt {other:?}"),
    }
}

fn arith(parts: &[&str], a: &[u64]) -> u64 {
    let ty = *parts.last().expect("typed");
    let op = parts[0];
    if parts.get(1) == Some(&"wide") {
        return (a[0] & 0xffff_ffff) * (a[1] & 0xffff_ffff);
    }
    if op == "mul" && parts.get(1) == Some(&"hi") {
        assert_eq!(ty, "u32", "mul.hi is emitted on u32 only");
        return ((a[0] & 0xffff_ffff) * (a[1] & 0xffff_ffff)) >> 32;
    }
    match ty {
        "f64" => {
            let x: Vec<f64> = a.iter().map(|&b| f64_of(b)).collect();
            let r = match op {
                "add" => x[0] + x[1],
                "sub" => x[0] - x[1],
                "mul" => x[0] * x[1],
                "div" => x[0] / x[1],
                "fma" => x[0].mul_add(x[1], x[2]),
                "neg" => -x[0],
                "abs" => x[0].abs(),
                "sqrt" => x[0].sqrt(),
                "max" => x[0].max(x[1]),
                "min" => x[0].min(x[1]),
                "copysign" => x[1].copysign(x[0]),
                other => panic!("{other}.f64"),
            };
            r.to_bits()
        }
        "f32" => {
            let x: Vec<f32> = a.iter().map(|&b| f32_of(b)).collect();
            let r = match op {
                "add" => x[0] + x[1],
                "sub" => x[0] - x[1],
                "mul" => x[0] * x[1],
                "div" => x[0] / x[1],
                "neg" => -x[0],
                "sqrt" => x[0].sqrt(),
                other => panic!("{other}.f32"),
            };
            r.to_bits() as u64
        }
        "s32" | "u32" | "b32" => {
            let x: Vec<u32> = a.iter().map(|&b| b as u32).collect();
            let s: Vec<i32> = x.iter().map(|&b| b as i32).collect();
            let r: u32 = match op {
                "add" => x[0].wrapping_add(x[1]),
                "sub" => x[0].wrapping_sub(x[1]),
                "mul" => x[0].wrapping_mul(x[1]),
                "div" if ty == "s32" => s[0].wrapping_div(s[1]) as u32,
                "div" => x[0] / x[1],
                "rem" if ty == "s32" => s[0].wrapping_rem(s[1]) as u32,
                "rem" => x[0] % x[1],
                "neg" => s[0].wrapping_neg() as u32,
                "abs" => s[0].wrapping_abs() as u32,
                "max" => s[0].max(s[1]) as u32,
                "min" => s[0].min(s[1]) as u32,
                "and" => x[0] & x[1],
                "popc" => x[0].count_ones(),
                "or" => x[0] | x[1],
                "xor" => x[0] ^ x[1],
                "shl" => x[0] << x[1],
                "shr" if ty == "s32" => (s[0] >> x[1]) as u32,
                "shr" => x[0] >> x[1],
                other => panic!("{other}.{ty}"),
            };
            r as u64
        }
        "u64" | "b64" | "s64" => match op {
            "mad" => a[0].wrapping_mul(a[1]).wrapping_add(a[2]),
            "add" => a[0].wrapping_add(a[1]),
            "sub" => a[0].wrapping_sub(a[1]),
            "div" => a[0] / a[1],
            "rem" => a[0] % a[1],
            "min" => a[0].min(a[1]),
            "max" => a[0].max(a[1]),
            "mul" => a[0].wrapping_mul(a[1]),
            "shl" => a[0] << a[1],
            "shr" => a[0] >> a[1],
            "xor" => a[0] ^ a[1],
            "and" => a[0] & a[1],
            "or" => a[0] | a[1],
            other => panic!("{other}.{ty}"),
        },
        other => panic!("{op}.{other}"),
    }
}

fn to_bytes(t: &Tensor) -> Vec<u8> {
    match &t.data {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bool(v) => v.iter().map(|&x| x as u8).collect(),
    }
}

fn from_bytes(dtype: DType, dims: &[usize], b: &[u8]) -> Tensor {
    let data = match dtype {
        DType::F32 => Data::F32(b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
        DType::F64 => Data::F64(b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()),
        DType::I32 => Data::I32(b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()),
        DType::Bool => Data::Bool(b.iter().map(|&x| x != 0).collect()),
    };
    Tensor { shape: crate::ir::Shape(dims.to_vec()), data }
}

/// Runs `prog` on `inputs` as the CUDA runtime would, on the host.
/// Runs the program in the device memory plan's slots (`prog.memory`),
/// each filled with 0xFF bytes (NaN floats, -1 integers) at the start, as
/// the runtime allocates them, and again before each buffer's first step
/// (the runtime leaves the previous buffer's data there): a kernel that
/// read memory it had not written, or relied on it being zero, fails the
/// tests that compare with the interpreter. A buffer lies at the start of
/// its slot.
pub fn run(prog: &PtxProgram, inputs: &[Tensor]) -> Vec<Tensor> {
    let slot = |b: usize| prog.memory.slot_of[b];
    let mut mem = Memory { bufs: prog.memory.slot_bytes.iter().map(|&bytes| vec![0xffu8; bytes]).collect() };
    for (t, &b) in inputs.iter().zip(&prog.params) {
        mem.bufs[slot(b)] = to_bytes(t);
    }
    let addr = |b: usize| ((slot(b) as u64) + 1) << 40;
    let pinned: Vec<usize> = prog.params.iter().chain(&prog.outputs).copied().collect();
    let mut started = vec![false; prog.buffers.len()];
    for step in &prog.steps {
        for b in super::memory_plan::step_buffers(step) {
            if !std::mem::replace(&mut started[b], true) && !pinned.contains(&b) {
                mem.bufs[slot(b)][..prog.buffers[b].bytes()].fill(0xff);
            }
        }
        match step {
            Step::Kernel { name, args, grid, .. } => {
                let params: Vec<u64> = args.iter().map(|&b| addr(b)).collect();
                run_kernel(&prog.ptx, name, *grid, &params, &mut mem);
            }
            Step::Gemm { dtype, batch, m, n, k, a, b, c, offsets, strides, .. } => {
                // The batch loop the runtime runs, one GEMM per matrix.
                let size = dtype.size_bytes();
                let matrix = |x: usize, p: usize, len: usize| {
                    let at = (offsets[x] + p * strides[x]) * size;
                    at..at + len * size
                };
                let (a, b, c) = (&slot(*a), &slot(*b), &slot(*c));
                for p in 0..*batch {
                    let ta = from_bytes(*dtype, &[*m, *k], &mem.bufs[*a][matrix(0, p, m * k)]);
                    let tb = from_bytes(*dtype, &[*k, *n], &mem.bufs[*b][matrix(1, p, k * n)]);
                    let mut bld = crate::ir::Builder::new("gemm", &[ta.ty(), tb.ty()]);
                    let r = bld.matmul(bld.param(0), bld.param(1));
                    let out = crate::ir::interp::run(&bld.finish(vec![r]), &[ta, tb]);
                    mem.bufs[*c][matrix(2, p, m * n)].copy_from_slice(&to_bytes(&out[0]));
                }
            }
        }
    }
    prog.outputs
        .iter()
        .zip(&prog.output_types)
        .map(|(&b, ty)| from_bytes(ty.dtype, ty.shape.dims(), &mem.bufs[slot(b)]))
        .collect()
}
