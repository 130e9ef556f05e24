//! Fused f32 loops on 512-bit vectors: a small straight-line program per
//! loop body, encoded as AVX-512 machine code and called by the JIT's code.
//!
//! Why: Cranelift emits at most 128-bit vectors on x86-64, and the fused
//! elementwise loops (W4's GELU and its gradient, Adam's update, the
//! activations and their gradients) were bound by arithmetic on 4 lanes:
//! the routines of `vmath_x16.rs` only cover the transcendentals. Here the
//! whole tree runs on 16 lanes.
//!
//! How: `emit/wide_tree.rs` walks a fused loop's tree (`emit::Tree`) and
//! records it as a `Program`: loads from the loop's walkers (a contiguous
//! row, or one element broadcast to every lane), constants, arithmetic,
//! the transcendentals through `vmath`'s algorithms (this `Program` is a
//! `vmath::Arith`), stores to the walkers, and a lane-wise accumulation
//! (a blocked sum's 16 partials, `ir::sum_order`). `wide/encode.rs` gives
//! each value a register (32 zmm, 6 mask registers; a program that needs
//! more is not encoded and the loop stays Cranelift's) and encodes
//! `kernel(walkers: *const *mut f32, count: usize, partials: *mut f32)`:
//! full vectors of 16, then the last `count % 16` elements under a lane
//! mask, so element `k` of the call lands in lane `k % 16`.
//!
//! Bitwise: every operation is the IEEE operation Cranelift's code
//! performs on the same element (add, sub, mul, div, sqrt correctly
//! rounded at any width; `mul_add` one FMA exactly where `vmath` asks for
//! it; max and min with the interpreter's NaN and signed-zero rules), so a
//! wide loop stores the bits the 4-lane loop stores (tested against the
//! interpreter and against `Options::wide_loops` off), up to a NaN's
//! payload and sign, which no backend promises: a max or min of a NaN
//! here keeps the operand's NaN, Cranelift's gives its own.

mod encode;

use cranelift_codegen::ir::condcodes::FloatCC;

use super::vmath::{self, Arith};

pub(super) use encode::encode;

/// Whether this host runs wide loops: AVX-512F, BMI2 for the tail mask,
/// and FMA (so that `vmath`'s `mul_add` is one FMA here as in the JIT); on
/// Unix, whose System V calling convention the kernels follow.
pub(super) fn available() -> bool {
    #[cfg(all(target_arch = "x86_64", unix))]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("bmi2")
            && vmath::host_has_fma()
    }
    #[cfg(not(all(target_arch = "x86_64", unix)))]
    {
        false
    }
}

/// A value of the program: the index of the node that computes it.
pub(super) type V = usize;

/// One operation of a wide loop body, on 16 f32 lanes.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    /// 16 consecutive elements of walker `walker`, or (`broadcast`) its
    /// current element in every lane.
    Load {
        walker: usize,
        broadcast: bool,
    },
    /// A constant's bit pattern in every lane.
    Const(u32),
    Binary(BinOp, V, V),
    /// `a * b + c` with one rounding.
    MulAdd(V, V, V),
    Unary(UnOp, V),
    /// Integer ops on the lanes' bits with an immediate.
    IntImm(IntOp, V, i64),
    /// A lane mask: `a cc b` (a mask register, not a vector).
    Compare(FloatCC, V, V),
    OrMask(V, V),
    /// `mask ? a : b`.
    Select(V, V, V),
    /// The value's lanes to walker `walker` (16 consecutive elements).
    Store {
        walker: usize,
        value: V,
    },
    /// The value added lane-wise to the partial sums.
    Accumulate(V),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    /// The interpreter's max and min: NaN if either is NaN, -0 < +0.
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum UnOp {
    Neg,
    Abs,
    Sqrt,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum IntOp {
    Add,
    And,
    Shl,
    Shr,
}

/// A wide loop body being recorded (see the module doc).
#[derive(Default, Debug)]
pub(super) struct Program {
    pub(super) nodes: Vec<Node>,
    /// Whether the body accumulates (the kernel then reads and writes the
    /// partial sums).
    pub(super) accumulates: bool,
}

impl Program {
    pub(super) fn push(&mut self, node: Node) -> V {
        if matches!(node, Node::Accumulate(_)) {
            self.accumulates = true;
        }
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub(super) fn constant(&mut self, value: f32) -> V {
        self.push(Node::Const(value.to_bits()))
    }
}

impl Arith for Program {
    type V = V;
    fn is_f64(&self) -> bool {
        false
    }
    fn f(&mut self, value: f64) -> V {
        self.constant(value as f32)
    }
    fn add(&mut self, a: V, b: V) -> V {
        self.push(Node::Binary(BinOp::Add, a, b))
    }
    fn sub(&mut self, a: V, b: V) -> V {
        self.push(Node::Binary(BinOp::Sub, a, b))
    }
    fn mul(&mut self, a: V, b: V) -> V {
        self.push(Node::Binary(BinOp::Mul, a, b))
    }
    fn div(&mut self, a: V, b: V) -> V {
        self.push(Node::Binary(BinOp::Div, a, b))
    }
    fn mul_add(&mut self, a: V, b: V, c: V) -> V {
        // `available` requires FMA, as `vmath::ClifArith` uses it then.
        self.push(Node::MulAdd(a, b, c))
    }
    fn abs(&mut self, a: V) -> V {
        self.push(Node::Unary(UnOp::Abs, a))
    }
    fn neg(&mut self, a: V) -> V {
        self.push(Node::Unary(UnOp::Neg, a))
    }
    fn bits(&mut self, a: V) -> V {
        a
    }
    fn from_bits(&mut self, a: V) -> V {
        a
    }
    fn iadd_imm(&mut self, a: V, imm: i64) -> V {
        self.push(Node::IntImm(IntOp::Add, a, imm))
    }
    fn iand_imm(&mut self, a: V, imm: i64) -> V {
        self.push(Node::IntImm(IntOp::And, a, imm))
    }
    fn ishl_imm(&mut self, a: V, imm: i64) -> V {
        self.push(Node::IntImm(IntOp::Shl, a, imm))
    }
    fn ushr_imm(&mut self, a: V, imm: i64) -> V {
        self.push(Node::IntImm(IntOp::Shr, a, imm))
    }
    fn cmp(&mut self, cc: FloatCC, a: V, b: V) -> V {
        self.push(Node::Compare(cc, a, b))
    }
    fn or_mask(&mut self, a: V, b: V) -> V {
        self.push(Node::OrMask(a, b))
    }
    fn select(&mut self, mask: V, a: V, b: V) -> V {
        self.push(Node::Select(mask, a, b))
    }
}
