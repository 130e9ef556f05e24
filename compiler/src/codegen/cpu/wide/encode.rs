//! Register assignment and AVX-512 encoding of a wide loop body
//! (`wide.rs`), through iced-x86's assembler.
//!
//! The kernel, `kernel(walkers: *const *mut f32, count: usize, partials:
//! *mut f32)` (System V: rdi, rsi, rdx):
//!
//! ```text
//!   constants -> a pool on the stack; walker pointers -> registers
//!   partials -> zmm31 (when the body accumulates)
//!   rax = -(count & !15) * 4, every moving walker pointer += that many bytes
//!   loop:  body on [walker + rax], rax += 64, until rax == 0
//!   tail:  k1 = the low count % 16 lanes; body with loads zeroing the
//!          other lanes, stores and the accumulation masked by k1
//!   zmm31 -> partials
//! ```
//!
//! Every value gets its own register for its whole life (a program is
//! straight-line code of at most a few hundred nodes): vectors in zmm0-30,
//! masks in k2-k6 (k1 is the tail mask, k7 a scratch for max and min). A
//! program needing more is not encoded (`None`): its loop stays
//! Cranelift's.

use cranelift_codegen::ir::condcodes::FloatCC;
use iced_x86::code_asm::*;

use super::{BinOp, IntOp, Node, Program, UnOp};

const ZMM: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16, zmm17,
    zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31,
];
/// The partial sums' register.
const ACC: AsmRegisterZmm = zmm31;
const MASKS: [AsmRegisterK; 5] = [k2, k3, k4, k5, k6];
const SCRATCH_MASK: AsmRegisterK = k7;
/// Walker pointers: the caller-saved registers first (rdi, which holds the
/// table, loaded last), then callee-saved ones, pushed and popped.
const WALKERS: [AsmRegister64; 12] = [rcx, r8, r9, r10, r11, rdi, rbx, rbp, r12, r13, r14, r15];
const FIRST_CALLEE_SAVED: usize = 6;
/// The table's register among `WALKERS`.
const TABLE_WALKER: usize = 5;

/// Why a program has no machine code: the assembler refused an
/// instruction, or a node's operand is not the kind it needs.
struct Unencodable;

impl From<IcedError> for Unencodable {
    fn from(_: IcedError) -> Unencodable {
        Unencodable
    }
}

/// Where a value lives.
#[derive(Clone, Copy)]
enum Reg {
    Vector(AsmRegisterZmm),
    Mask(AsmRegisterK),
}

/// The machine code of `program` reading and writing `walkers` pointers,
/// or `None` when it needs more registers than there are (or a node this
/// encoder has no instruction for).
pub(crate) fn encode(program: &Program, walkers: usize) -> Option<Vec<u8>> {
    if walkers > WALKERS.len() {
        return None;
    }
    let regs = assign(program)?;
    let moving = moving_walkers(program, walkers)?;
    let pool = constant_pool(program);
    let emitted = (|| -> Result<Vec<u8>, Unencodable> {
        let mut a = CodeAssembler::new(64)?;
        let saved: Vec<AsmRegister64> = WALKERS[FIRST_CALLEE_SAVED..walkers.max(FIRST_CALLEE_SAVED)].to_vec();
        for &r in &saved {
            a.push(r)?;
        }
        let pool_bytes = (pool.len() * 4).next_multiple_of(16) as i32;
        if pool_bytes > 0 {
            a.sub(rsp, pool_bytes)?;
        }
        for (j, &bits) in pool.iter().enumerate() {
            a.mov(dword_ptr(rsp + 4 * j as i32), bits as i32)?;
        }
        // The table's own register last.
        for w in (0..walkers).filter(|&w| w != TABLE_WALKER).chain((TABLE_WALKER < walkers).then_some(TABLE_WALKER)) {
            a.mov(WALKERS[w], qword_ptr(rdi + 8 * w as i32))?;
        }
        if program.accumulates {
            a.vmovups(ACC, zmmword_ptr(rdx))?;
        }
        a.shl(rsi, 2)?;
        a.mov(rax, rsi)?;
        a.and(rax, -64)?;
        for w in (0..walkers).filter(|&w| moving[w]) {
            a.add(WALKERS[w], rax)?;
        }
        let mut body = a.create_label();
        let mut tail = a.create_label();
        let mut done = a.create_label();
        a.neg(rax)?;
        a.jz(tail)?;
        a.set_label(&mut body)?;
        emit_body(&mut a, program, &regs, &pool, false)?;
        a.add(rax, 64)?;
        a.jnz(body)?;
        a.set_label(&mut tail)?;
        a.and(esi, 63)?;
        a.jz(done)?;
        a.shr(esi, 2)?;
        a.mov(eax, -1)?;
        a.bzhi(eax, eax, esi)?;
        a.kmovw(k1, eax)?;
        a.xor(eax, eax)?;
        emit_body(&mut a, program, &regs, &pool, true)?;
        a.set_label(&mut done)?;
        if program.accumulates {
            a.vmovups(zmmword_ptr(rdx), ACC)?;
        }
        if pool_bytes > 0 {
            a.add(rsp, pool_bytes)?;
        }
        for &r in saved.iter().rev() {
            a.pop(r)?;
        }
        a.vzeroupper()?;
        a.ret()?;
        Ok(a.assemble(0)?)
    })();
    emitted.ok()
}

/// `moving[w]`: walker `w` is read or written as 16 consecutive elements
/// (its pointer moves with the loop); a walker only read as a broadcast
/// stays. `None` when a walker is both.
fn moving_walkers(program: &Program, walkers: usize) -> Option<Vec<bool>> {
    let mut moving = vec![None; walkers];
    for node in &program.nodes {
        let (w, moves) = match *node {
            Node::Load { walker, broadcast } => (walker, !broadcast),
            Node::Store { walker, .. } => (walker, true),
            _ => continue,
        };
        match moving.get(w)? {
            Some(m) if *m != moves => return None,
            _ => moving[w] = Some(moves),
        }
    }
    Some(moving.into_iter().map(|m| m.unwrap_or(false)).collect())
}

/// The distinct 32-bit constants the body reads from the stack pool.
fn constant_pool(program: &Program) -> Vec<u32> {
    let mut pool: Vec<u32> = Vec::new();
    let mut add = |bits: u32| {
        if !pool.contains(&bits) {
            pool.push(bits);
        }
    };
    for node in &program.nodes {
        match *node {
            Node::Const(bits) => add(bits),
            Node::Unary(UnOp::Neg, _) => add(0x8000_0000),
            Node::Unary(UnOp::Abs, _) => add(0x7fff_ffff),
            Node::IntImm(IntOp::Add | IntOp::And, _, imm) => add(imm as i32 as u32),
            _ => {}
        }
    }
    pool
}

fn pool_slot(pool: &[u32], bits: u32) -> AsmMemoryOperand {
    let j = pool.iter().position(|&b| b == bits).expect("every constant is pooled");
    rsp + 4 * j as i32
}

/// Each value's register (see the module doc), or `None` when they run out.
fn assign(program: &Program) -> Option<Vec<Option<Reg>>> {
    let n = program.nodes.len();
    let mut last_use: Vec<Option<usize>> = vec![None; n];
    for (i, node) in program.nodes.iter().enumerate() {
        for u in operands(node) {
            last_use[u] = Some(i);
        }
    }
    let vector_limit = if program.accumulates { 31 } else { 32 };
    let mut free_vectors: Vec<AsmRegisterZmm> = ZMM[..vector_limit].iter().rev().copied().collect();
    let mut free_masks: Vec<AsmRegisterK> = MASKS.iter().rev().copied().collect();
    let mut regs: Vec<Option<Reg>> = vec![None; n];
    for (i, node) in program.nodes.iter().enumerate() {
        // The result's register is taken before the operands' are freed:
        // it differs from every operand (max and min write it first).
        regs[i] = match node {
            Node::Store { .. } | Node::Accumulate(_) => None,
            Node::Compare(..) | Node::OrMask(..) => Some(Reg::Mask(free_masks.pop()?)),
            _ => Some(Reg::Vector(free_vectors.pop()?)),
        };
        let dead = last_use[i].is_none();
        let freed = operands(node).filter(|&u| last_use[u] == Some(i)).chain(dead.then_some(i));
        for u in freed.collect::<std::collections::BTreeSet<usize>>() {
            match regs[u] {
                Some(Reg::Vector(r)) => free_vectors.push(r),
                Some(Reg::Mask(k)) => free_masks.push(k),
                None => {}
            }
        }
    }
    Some(regs)
}

fn operands(node: &Node) -> impl Iterator<Item = usize> {
    let list: Vec<usize> = match *node {
        Node::Load { .. } | Node::Const(_) => vec![],
        Node::Binary(_, a, b) | Node::Compare(_, a, b) | Node::OrMask(a, b) => vec![a, b],
        Node::MulAdd(a, b, c) | Node::Select(a, b, c) => vec![a, b, c],
        Node::Unary(_, a) | Node::IntImm(_, a, _) | Node::Accumulate(a) => vec![a],
        Node::Store { value, .. } => vec![value],
    };
    list.into_iter()
}

/// The vcmpps predicate of `cc` (quiet: no exception on NaN; `NotEqual`
/// holds on NaN, as Cranelift's `fcmp ne`).
fn predicate(cc: FloatCC) -> Option<i32> {
    Some(match cc {
        FloatCC::Equal => 0x00,
        FloatCC::NotEqual => 0x04,
        FloatCC::LessThan => 0x11,
        FloatCC::LessThanOrEqual => 0x12,
        FloatCC::GreaterThan => 0x1E,
        FloatCC::GreaterThanOrEqual => 0x1D,
        FloatCC::Unordered => 0x03,
        FloatCC::Ordered => 0x07,
        _ => return None,
    })
}

/// One pass of the body: all 16 lanes, or (`masked`) the lanes of k1.
fn emit_body(
    a: &mut CodeAssembler,
    program: &Program,
    regs: &[Option<Reg>],
    pool: &[u32],
    masked: bool,
) -> Result<(), Unencodable> {
    let vector = |v: usize| match regs[v] {
        Some(Reg::Vector(r)) => Ok(r),
        _ => Err(Unencodable),
    };
    let mask = |v: usize| match regs[v] {
        Some(Reg::Mask(k)) => Ok(k),
        _ => Err(Unencodable),
    };
    for (i, node) in program.nodes.iter().enumerate() {
        match *node {
            Node::Load { walker, broadcast: true } => a.vbroadcastss(vector(i)?, dword_ptr(WALKERS[walker]))?,
            Node::Load { walker, broadcast: false } => {
                let at = zmmword_ptr(WALKERS[walker] + rax);
                if masked {
                    a.vmovups(vector(i)?.k1().z(), at)?
                } else {
                    a.vmovups(vector(i)?, at)?
                }
            }
            Node::Const(bits) => a.vbroadcastss(vector(i)?, dword_ptr(pool_slot(pool, bits)))?,
            Node::Binary(op, x, y) => {
                let (d, x, y) = (vector(i)?, vector(x)?, vector(y)?);
                match op {
                    BinOp::Add => a.vaddps(d, x, y)?,
                    BinOp::Sub => a.vsubps(d, x, y)?,
                    BinOp::Mul => a.vmulps(d, x, y)?,
                    BinOp::Div => a.vdivps(d, x, y)?,
                    BinOp::Max | BinOp::Min => {
                        // vmaxps/vminps give y when either is NaN or both
                        // are zeros: equal lanes take x & y (max: +0 wins)
                        // or x | y (min: -0 wins), NaN lanes of x take x.
                        if op == BinOp::Max {
                            a.vmaxps(d, x, y)?;
                        } else {
                            a.vminps(d, x, y)?;
                        }
                        a.vcmpps(SCRATCH_MASK, x, y, 0x00)?;
                        if op == BinOp::Max {
                            a.vpandd(d.k7(), x, y)?;
                        } else {
                            a.vpord(d.k7(), x, y)?;
                        }
                        a.vcmpps(SCRATCH_MASK, x, x, 0x03)?;
                        a.vmovaps(d.k7(), x)?;
                    }
                }
            }
            Node::MulAdd(x, y, z) => {
                let d = vector(i)?;
                a.vmovaps(d, vector(z)?)?;
                a.vfmadd231ps(d, vector(x)?, vector(y)?)?;
            }
            Node::Unary(op, x) => {
                let (d, x) = (vector(i)?, vector(x)?);
                match op {
                    UnOp::Neg => a.vpxord(d, x, dword_bcst(pool_slot(pool, 0x8000_0000)))?,
                    UnOp::Abs => a.vpandd(d, x, dword_bcst(pool_slot(pool, 0x7fff_ffff)))?,
                    UnOp::Sqrt => a.vsqrtps(d, x)?,
                }
            }
            Node::IntImm(op, x, imm) => {
                let (d, x) = (vector(i)?, vector(x)?);
                match op {
                    IntOp::Add => a.vpaddd(d, x, dword_bcst(pool_slot(pool, imm as i32 as u32)))?,
                    IntOp::And => a.vpandd(d, x, dword_bcst(pool_slot(pool, imm as i32 as u32)))?,
                    IntOp::Shl => a.vpslld(d, x, imm as i32)?,
                    IntOp::Shr => a.vpsrld(d, x, imm as i32)?,
                }
            }
            Node::Compare(cc, x, y) => {
                let imm = predicate(cc).ok_or(Unencodable)?;
                a.vcmpps(mask(i)?, vector(x)?, vector(y)?, imm)?
            }
            Node::OrMask(x, y) => a.korw(mask(i)?, mask(x)?, mask(y)?)?,
            Node::Select(m, x, y) => {
                // vblendmps d {k}, y, x: x where the mask holds, else y.
                let d = vector(i)?;
                let (m, x, y) = (mask(m)?, vector(x)?, vector(y)?);
                match m {
                    k if k == k2 => a.vblendmps(d.k2(), y, x)?,
                    k if k == k3 => a.vblendmps(d.k3(), y, x)?,
                    k if k == k4 => a.vblendmps(d.k4(), y, x)?,
                    k if k == k5 => a.vblendmps(d.k5(), y, x)?,
                    _ => a.vblendmps(d.k6(), y, x)?,
                }
            }
            Node::Store { walker, value } => {
                let at = zmmword_ptr(WALKERS[walker] + rax);
                if masked {
                    a.vmovups(at.k1(), vector(value)?)?
                } else {
                    a.vmovups(at, vector(value)?)?
                }
            }
            Node::Accumulate(value) => {
                if masked {
                    a.vaddps(ACC.k1(), ACC, vector(value)?)?
                } else {
                    a.vaddps(ACC, ACC, vector(value)?)?
                }
            }
        }
    }
    Ok(())
}
