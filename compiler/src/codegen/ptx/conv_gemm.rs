//! `Conv2d` as im2col + cuBLAS GEMM, for convolutions with many taps.
//!
//! Consumes a `Conv2d` instruction's operand types and attributes; produces
//! an im2col kernel (gathering the input into a `cols` scratch buffer) and
//! one strided-batched GEMM per group, for `ptx::emit` to plan.
//!
//! Why: the direct kernel (`window.rs`) gives each output element one
//! thread that loops over its `Cg * KH * KW` taps. That is fine for a 3x3
//! forward convolution, but the weight gradient of a convolution is a
//! convolution whose taps are the whole batch and image (`N * OH * OW`:
//! 86,528 for the first layer of W2), so a few hundred threads each run a
//! 86k-long dependent loop. As a GEMM the same work spreads over the card.
//!
//! Layout (NCHW input `[N, C, H, W]`, OIHW kernel `[O, Cg, KH, KW]`, `G`
//! groups, `Og = O / G`, `P = OH * OW`, `T = Cg * KH * KW`); `col(n, g, t,
//! p)` is the padded/dilated input at tap `t = (ci, ky, kx)` of output
//! position `p = (oy, ox)`, channel `g*Cg + ci` (0 in padding and between
//! dilated elements). Two layouts, by the shape of the products:
//!   per image (`P >= FOLD_BELOW_P`): cols[n, g, t, p];
//!     out[n, g*Og .. g*Og+Og, :] = w[g] [Og, T] · cols[n, g] [T, P] for
//!     every `n`: one strided-batched GEMM per group, the weight matrix
//!     with batch stride 0;
//!   folded (`P < FOLD_BELOW_P`, every weight gradient: its "image" is the
//!     kernel, 3x3 = 9 positions): cols[g, t, n, p];
//!     tmp[g] [Og, N*P] = w[g] [Og, T] · cols[g] [T, N*P], one GEMM per
//!     group with the batch folded into its `n` (N GEMMs with n = 9 are
//!     slow: 0.33 ms of W2's 1.9 ms on an H100), then a transpose kernel
//!     tmp[g, o, n, p] -> out[n, g*Og + o, p].
//! Rounding: the GEMM sums the `T` taps in cuBLAS's order, so the result is
//! within the matmul bound (`|gpu - exact| <= c sqrt(T) sum |x w|`) instead
//! of bitwise; and a padded tap contributes `0 * w`, which is NaN where a
//! weight is infinite or NaN (the direct kernel skips padded taps).

use super::builder::{imm_f32, imm_f64, Class, Kernel};
use super::window::source_or_skip;
use super::{coords, load, mapped_index, store, Buffer, Step, BLOCK, MAX_GRID};
use crate::ir::op::Conv;
use crate::ir::{DType, Type};

/// Convolutions with at least this many taps per output go through GEMM:
/// below it the direct kernel's per-thread loop is short and exact.
pub const MIN_TAPS: usize = 256;

/// Output images smaller than this many positions use the folded layout.
pub const FOLD_BELOW_P: usize = 64;

/// Whether `Conv2d(lhs, rhs) -> ty` should be im2col + GEMM.
pub fn use_gemm(lhs: &Type, rhs: &Type, ty: &Type) -> bool {
    let taps: usize = rhs.shape.0[1..].iter().product();
    taps >= MIN_TAPS && ty.shape.num_elements() > 0 && lhs.shape.num_elements() > 0
}

/// The sizes of the plan: (`N`, `G`, `Og`, `T`, `P`).
pub fn dims(rhs: &Type, ty: &Type, a: &Conv) -> (usize, usize, usize, usize, usize) {
    let (n, o) = (ty.shape.0[0], ty.shape.0[1]);
    let taps: usize = rhs.shape.0[1..].iter().product();
    let p = ty.shape.0[2] * ty.shape.0[3];
    (n, a.groups, o / a.groups, taps, p)
}

/// One convolution's im2col + GEMM plan.
pub struct Plan<'t> {
    inst: usize,
    lhs: &'t Type,
    rhs: &'t Type,
    ty: &'t Type,
    attrs: &'t Conv,
    folded: bool,
}

impl<'t> Plan<'t> {
    pub fn new(inst: usize, lhs: &'t Type, rhs: &'t Type, ty: &'t Type, attrs: &'t Conv) -> Plan<'t> {
        let folded = dims(rhs, ty, attrs).4 < FOLD_BELOW_P;
        Plan { inst, lhs, rhs, ty, attrs, folded }
    }

    /// Plans the steps for `[input, weights, out]` buffers: scratch
    /// buffers, kernels into `ptx`, launches and GEMMs into `steps`.
    pub fn emit(
        &self,
        [input, weights, out]: [usize; 3],
        buffers: &mut Vec<Buffer>,
        ptx: &mut String,
        steps: &mut Vec<Step>,
    ) {
        let (n, groups, og, taps, p) = dims(self.rhs, self.ty, self.attrs);
        let dtype = self.ty.dtype;
        let cols = buffers.len();
        buffers.push(Buffer { dtype, len: n * groups * taps * p });
        let name = format!("k{}_im2col", self.inst);
        let mut k = Kernel::new(&name, 2);
        let (cols_ptr, input_ptr) = (k.param_ptr(0), k.param_ptr(1));
        im2col(&mut k, self.lhs, self.rhs, self.ty, self.attrs, self.folded, &cols_ptr, &input_ptr);
        launch(ptx, steps, self.inst, &name, k.finish(), buffers[cols].len, vec![cols, input]);
        if !self.folded {
            for g in 0..groups {
                steps.push(Step::Gemm {
                    inst: self.inst,
                    dtype,
                    batch: n,
                    m: og,
                    n: p,
                    k: taps,
                    a: weights,
                    b: cols,
                    c: out,
                    offsets: [g * og * taps, g * taps * p, g * og * p],
                    strides: [0, groups * taps * p, groups * og * p],
                });
            }
            return;
        }
        let tmp = buffers.len();
        buffers.push(Buffer { dtype, len: groups * og * n * p });
        for g in 0..groups {
            steps.push(Step::Gemm {
                inst: self.inst,
                dtype,
                batch: 1,
                m: og,
                n: n * p,
                k: taps,
                a: weights,
                b: cols,
                c: tmp,
                offsets: [g * og * taps, g * taps * n * p, g * og * n * p],
                strides: [og * taps, taps * n * p, og * n * p],
            });
        }
        // out[n, g, o, p] = tmp[g, o, n, p]
        let name = format!("k{}_unfold", self.inst);
        let mut k = Kernel::new(&name, 2);
        let (dst, src) = (k.param_ptr(0), k.param_ptr(1));
        let out_dims = [n, groups, og, p];
        let strides = [p, og * n * p, n * p, 1];
        let total = (n * groups * og * p) as u64;
        k.grid_stride_loop(total, |k, i| {
            let at = mapped_index(k, i, &out_dims, &strides);
            let v = load(k, dtype, &src, &at);
            store(k, dtype, &dst, i, &v);
        });
        launch(ptx, steps, self.inst, &name, k.finish(), n * groups * og * p, vec![out, tmp]);
    }
}

/// Appends kernel `text` and its launch over `len` elements.
fn launch(
    ptx: &mut String,
    steps: &mut Vec<Step>,
    inst: usize,
    name: &str,
    text: String,
    len: usize,
    args: Vec<usize>,
) {
    ptx.push('\n');
    ptx.push_str(&text);
    let grid = (len as u64).div_ceil(u64::from(BLOCK)).min(u64::from(MAX_GRID)) as u32;
    steps.push(Step::Kernel { name: name.to_string(), inst, grid, args });
}

/// The im2col kernel: `cols[n, g, t, p]` (or `cols[g, t, n, p]` when
/// `folded`) as the module doc defines it.
#[allow(clippy::too_many_arguments)]
fn im2col(k: &mut Kernel, lhs: &Type, rhs: &Type, ty: &Type, a: &Conv, folded: bool, cols: &str, input: &str) {
    let dtype = ty.dtype;
    let (n, g, _, t, p) = dims(rhs, ty, a);
    let (c, h, w) = (lhs.shape.0[1], lhs.shape.0[2], lhs.shape.0[3]);
    let (cg, kh, kw) = (rhs.shape.0[1], rhs.shape.0[2], rhs.shape.0[3]);
    let (oh, ow) = (ty.shape.0[2], ty.shape.0[3]);
    let total = (n * g * t * p) as u64;
    let (mov, zero) = match dtype {
        DType::F32 => ("mov.f32", imm_f32(0.0)),
        DType::F64 => ("mov.f64", imm_f64(0.0)),
        other => unreachable!("the verifier rejects conv2d on {other}"),
    };
    let cls = super::class(dtype);
    k.grid_stride_loop(total, |k, e| {
        let (img, grp, tap, pos) = if folded {
            let ec = coords(k, e, &[g, t, n, p]);
            (ec[2].clone(), ec[0].clone(), ec[1].clone(), ec[3].clone())
        } else {
            let ec = coords(k, e, &[n, g, t, p]);
            (ec[0].clone(), ec[1].clone(), ec[2].clone(), ec[3].clone())
        };
        let tc = coords(k, &tap, &[cg, kh, kw]);
        let pc = coords(k, &pos, &[oh, ow]);
        let value = k.op1(mov, cls, &zero);
        let done = k.label("im2col_store");
        let y0 = k.op2("mul.lo.u64", Class::B64, &pc[0], &a.stride[0].to_string());
        let py = k.op3("mad.lo.u64", Class::B64, &tc[1], &a.rhs_dilation[0].to_string(), &y0);
        let iy = source_or_skip(k, &py, a.low[0], a.lhs_dilation[0], h, &done);
        let x0 = k.op2("mul.lo.u64", Class::B64, &pc[1], &a.stride[1].to_string());
        let px = k.op3("mad.lo.u64", Class::B64, &tc[2], &a.rhs_dilation[1].to_string(), &x0);
        let ix = source_or_skip(k, &px, a.low[1], a.lhs_dilation[1], w, &done);
        // ((n * C + g * Cg + ci) * H + iy) * W + ix
        let chan = k.op3("mad.lo.u64", Class::B64, &grp, &cg.to_string(), &tc[0]);
        let chan = k.op3("mad.lo.u64", Class::B64, &img, &c.to_string(), &chan);
        let row = k.op3("mad.lo.u64", Class::B64, &chan, &h.to_string(), &iy);
        let at = k.op3("mad.lo.u64", Class::B64, &row, &w.to_string(), &ix);
        let v = load(k, dtype, input, &at);
        k.ins(&format!("{mov} {value}, {v}"));
        k.place(&done);
        store(k, dtype, cols, e, &value);
    });
}
