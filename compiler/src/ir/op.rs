//! The primitive operations of the tensor IR.
//!
//! A small set in the spirit of JAX's `lax`: everything the language offers
//! (softmax, losses, optimizers, layers) is a composition of these, so that
//! the interpreter, autodiff, the optimizer and every backend have few rules
//! to get right. `interp.rs` defines what each op means.
//!
//! Every `match` on `Op` in the crate is exhaustive (no `_ =>` arm), so adding
//! an op makes `cargo check` list each pass that must learn it.

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The `i`-th input of the function. Invariant: `insts[i]` is `Param(i)`.
    Param(u32),
    /// A scalar constant of the result dtype. Result shape is `[]`.
    Constant(f64),
    /// Each element is its index along `axis` (result dtype i32 or float).
    Iota {
        axis: usize,
    },

    // Unary elementwise, float operand, same type out.
    Neg,
    Exp,
    Log,
    Tanh,
    Sqrt,
    /// `log(1 + x)`, accurate for small `x`.
    Log1p,
    /// `exp(x) - 1`, accurate for small `x`.
    Expm1,
    /// The logistic sigmoid `1 / (1 + exp(-x))`, computed without overflow:
    /// `e / (1 + e)` with `e = exp(x)` for `x < 0` (see `interp::logistic_f64`).
    Logistic,
    Sin,
    Cos,
    /// `1 / sqrt(x)` (one square root, one correctly rounded division).
    Rsqrt,
    /// The error function (libm's `erf` / `erff`, under 1 ulp).
    Erf,
    /// Rounding to an integer value, still a float: down, up, and to the
    /// nearest with ties to even (IEEE `roundTiesToEven`, as `jnp.round`).
    /// NaN and infinities pass through; `-0.5` rounds to `-0.0`.
    Floor,
    Ceil,
    Round,

    // Unary elementwise on float or i32, same type out.
    /// `|x|`; clears the sign bit of floats; i32 wraps (`|MIN| = MIN`).
    Abs,
    /// `-1`, `0` or `1` by the sign of `x`; floats keep `±0` and NaN as they are.
    Sign,

    /// The identity on values, of any dtype, whose derivative is zero:
    /// autodiff treats its result as a constant.
    StopGradient,

    // Binary elementwise: both operands have the result's exact type.
    // Broadcasting is always explicit, through `Broadcast`.
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,

    // Comparisons: operands of one type, result `bool` of the same shape.
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,

    /// `select(cond, on_true, on_false)`: cond is bool, branches share the result type.
    Select,
    /// Element type conversion to the result dtype (float -> int truncates toward zero).
    Convert,
    /// Operand dim `i` becomes result dim `dims[i]`; it must equal that dim or be 1.
    /// Invariant: `dims` strictly increasing, `dims.len() == operand rank`.
    Broadcast {
        dims: Vec<usize>,
    },
    /// Same elements, row-major order, new shape (the result type's).
    Reshape,
    /// Result dim `i` is operand dim `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    /// Sum over `axes`, which are removed from the shape. Invariant: sorted, unique.
    /// Floats add in row-major order, except long consecutive runs, which
    /// add in the blocked order of `sum_order`.
    ReduceSum {
        axes: Vec<usize>,
    },
    /// Maximum over `axes`, which are removed. Invariant: sorted, unique.
    ReduceMax {
        axes: Vec<usize>,
    },
    /// Matrix product `[m, k] x [k, n] -> [m, n]` of floats.
    MatMul,
    /// Index (i32) of the first maximum along `axis`, which is removed. Operand
    /// float or i32, `axis` non-empty. NaN counts as larger than any number, so
    /// a slice holding NaN gives its first NaN (as NumPy). -0 and +0 tie.
    ArgMax {
        axis: usize,
    },
    /// Strided window, per dim `d`: elements `start[d], start[d] + stride[d], ...`
    /// below `limit[d]`. Invariant: one entry per dim, `start <= limit <= dim`,
    /// `stride >= 1`; result dim `ceil((limit - start) / stride)`.
    Slice {
        start: Vec<usize>,
        limit: Vec<usize>,
        stride: Vec<usize>,
    },
    /// Zero padding, per dim `d`: `low[d]` zeros before, `high[d]` after and
    /// `interior[d]` between adjacent elements (XLA's pad without negative
    /// padding). Result dim `low + n + (n - 1) * interior + high` (`low + high`
    /// when `n = 0`). The transpose of `Slice` (strides need `interior`).
    Pad {
        low: Vec<usize>,
        high: Vec<usize>,
        interior: Vec<usize>,
    },
    /// Concatenation of one or more operands along `axis`: same dtype, same
    /// dims except `axis`, whose sizes add up.
    Concat {
        axis: usize,
    },

    // Primitives for transformers, embeddings and random numbers (issue #4).
    /// Minimum over `axes`, which are removed. Invariant: sorted, unique. The
    /// mirror image of `ReduceMax`: NaN propagates, -0 < +0 (so -0 wins a tie
    /// with +0), the empty minimum is +inf (`i32::MAX` for i32).
    ReduceMin {
        axes: Vec<usize>,
    },
    /// `gather(operand, indices)`: rows along axis 0 (an embedding lookup).
    /// Operand `[V, rest...]` of any dtype with `V >= 1`, indices i32 of any
    /// shape `I`; result `[I..., rest...]` with `result[i.., r..] =
    /// operand[clamp(indices[i..], 0, V - 1), r..]`. Out-of-range indices
    /// clamp into range, as XLA's gather does, so no index faults.
    Gather,
    /// `scatter_add(updates, indices)`: the transpose of `Gather`. Updates
    /// `[I..., rest...]` (float or i32), indices i32 `[I...]`; the result
    /// `[V, rest...]` (`V >= 1`, read from the result type) starts as zeros and,
    /// for each index position `i` in row-major order, `result[clamp(indices[i],
    /// 0, V - 1), r..] += updates[i.., r..]`. Duplicate indices accumulate in
    /// that order, so the result is deterministic.
    ScatterAdd,
    /// Batched matrix product `[b.., m, k] x [b.., k, n] -> [b.., m, n]` of
    /// floats: equal ranks >= 2, equal batch dims (no broadcasting). Each batch
    /// element is a `MatMul` (same sequential accumulation order).
    BatchMatMul,
    /// `random_bits(key)`: JAX's `random_bits(key, 32, shape)` for the
    /// threefry2x32 PRNG with `jax_threefry_partitionable` (JAX's default since
    /// 0.5). `key` is i32[2] (the two u32 key words as bit patterns); the
    /// result is i32 of any shape: element `n` (row-major) is `y0 ^ y1` where
    /// `(y0, y1) = threefry2x32(key, (n >> 32, n & 0xffffffff))`. See
    /// `ir::threefry`. All three random ops also take a stack of keys
    /// i32[K.., 2] (vmap's batching rule makes it): the result's dims start
    /// with `K` and block `k` is what key `k` alone gives (counters from 0).
    RandomBits,
    /// `split(key)`: JAX's `random.split(key, shape)` (partitionable
    /// threefry). Result i32 `[S.., 2]`: the key at `[s..]` is `(y0, y1) =
    /// threefry2x32(key, (n >> 32, n & 0xffffffff))`, `n` the row-major index
    /// of `s` in `S`.
    RandomSplit,
    /// `uniform(key)`: JAX's `random.uniform(key, shape, dtype)` on [0, 1).
    /// f32: the 32 random bits `b` of `RandomBits` become `from_bits((b >> 9) |
    /// 0x3f80_0000) - 1`; f64: 64 bits `(y0 << 32) | y1` become `from_bits((b
    /// >> 12) | 0x3ff0_0000_0000_0000) - 1` (JAX with x64 enabled).
    RandomUniform,
    /// Reversal of the element order along each of `dims` (XLA's `rev`):
    /// result index `i` along a reversed dim `d` reads operand index
    /// `n_d - 1 - i`. Any dtype; same type out. Invariant: `dims` sorted,
    /// unique, in range. Flips convolution kernels in the conv's VJP.
    Reverse {
        dims: Vec<usize>,
    },
    /// 2-D convolution (cross-correlation, as in every DL framework) of a
    /// float NCHW input `lhs: [N, C, H, W]` with an OIHW kernel
    /// `rhs: [O, C / groups, KH, KW]`, giving `[N, O, OH, OW]` (XLA's
    /// `conv_general_dilated` with those dimension numbers). Per spatial dim:
    /// the input is dilated (`lhs_dilation - 1` zeros between elements), then
    /// zero padded (`low` before, `high` after) to `Hp = low + (H - 1) * ld + 1
    /// + high`; the kernel is dilated to `Kd = (KH - 1) * rd + 1`;
    /// `OH = (Hp - Kd) / stride + 1` (floor), and `Hp >= Kd` is required.
    /// With `Cg = C / groups` and `Og = O / groups`, output channel `o` sees
    /// input channels `(o / Og) * Cg ..` of its group:
    /// `out[n, o, y, x] = sum over (c < Cg, ky, kx) in that row-major order of
    /// lhs_padded[n, (o / Og) * Cg + c, y*s0 + ky*rd0, x*s1 + kx*rd1] * rhs[o, c, ky, kx]`,
    /// where positions in the padding or between dilated elements contribute
    /// no term (so `0 * inf` never arises there). Invariant: every size and
    /// factor >= 1, `groups` divides `C` and `O`, `rhs` dim 1 is `C / groups`.
    /// Its VJPs are convolutions again (input dilation = the stride), see
    /// `autodiff::window_rules`.
    Conv2d(Conv),
    /// Sum over sliding windows of any-rank float operands (XLA's
    /// `reduce_window` with `add`): see `Window` for the geometry. Padding
    /// contributes nothing (a window all in padding sums to 0). Each window
    /// adds its elements sequentially in row-major window order from 0.
    ReduceWindowSum(Window),
    /// Maximum over sliding windows (pooling): as `ReduceWindowSum` with
    /// `max` (NaN propagates, -0 < +0, as `Max`) starting from -inf, so a
    /// window all in padding gives -inf. The derivative goes to the window's
    /// first maximum in row-major window order (NaN counts as the largest,
    /// as `ArgMax`), see `autodiff::window_rules`.
    ReduceWindowMax(Window),
    /// The cotangent of `ReduceWindowMax` (XLA's `select_and_scatter` with
    /// "first maximum" as the select and `add` as the scatter): operands
    /// `x` (the pooled operand) and `ct` (one value per window, the
    /// `reduce_window_max` result's shape); the result has `x`'s type. Each
    /// window's `ct` is added at the window's first maximum among its
    /// in-range taps in row-major window order (NaN counts as the largest,
    /// -0 ties +0, as `ArgMax`); a window all in padding scatters nothing.
    /// Each result element sums the `ct` of the windows that picked it in
    /// row-major window order, starting from +0. One pass over `x` instead
    /// of one pass per window offset: max-pool backward.
    SelectAndScatter(Window),
    /// A loop over axis 0 that is never unrolled (JAX's `lax.scan`): operands
    /// `consts ++ init ++ xs`, a nested body `Func`, one result per
    /// instruction (`output`: a final carry or stacked ys). See `ir::scan`.
    Scan(super::scan::Scan),
    /// A function with the user's reverse-mode rule (JAX's `custom_vjp`):
    /// operands are the function's arguments, one result per instruction
    /// (`output`). See `ir::custom_vjp`.
    CustomVjp(super::custom_vjp::CustomVjp),
}

/// The attributes of `Op::Conv2d`, per spatial dim `[H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub stride: [usize; 2],
    /// Zero padding before the (dilated) input.
    pub low: [usize; 2],
    /// Zero padding after the (dilated) input.
    pub high: [usize; 2],
    /// Input dilation: `d - 1` zeros between input elements (a transposed
    /// convolution's stride).
    pub lhs_dilation: [usize; 2],
    /// Kernel dilation (atrous convolution).
    pub rhs_dilation: [usize; 2],
    pub groups: usize,
}

impl Conv {
    /// Stride 1, no padding, no dilation, one group.
    pub fn plain() -> Conv {
        Conv { stride: [1, 1], low: [0, 0], high: [0, 0], lhs_dilation: [1, 1], rhs_dilation: [1, 1], groups: 1 }
    }
}

/// The geometry of `Op::ReduceWindowSum` / `ReduceWindowMax`, one entry per
/// operand dim: the operand is padded (`low`, `high`) to `P = low + n + high`
/// and window `i` covers padded positions `i * stride + 0 .. i * stride +
/// size`; result dim `(P - size) / stride + 1` (floor). Invariant: `size >=
/// 1`, `stride >= 1`, `P >= size`.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
    pub low: Vec<usize>,
    pub high: Vec<usize>,
}

/// How many arguments an op takes; `None` for `Concat`, which takes any
/// number from one up.
pub fn arity(op: &Op) -> Option<usize> {
    let n = match op {
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => 0,
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => 1,
        Op::Log1p | Op::Expm1 | Op::Logistic | Op::Sin | Op::Cos | Op::Rsqrt | Op::Erf => 1,
        Op::Abs | Op::Sign | Op::StopGradient => 1,
        Op::Floor | Op::Ceil | Op::Round => 1,
        Op::ArgMax { .. } | Op::Slice { .. } | Op::Pad { .. } => 1,
        Op::Concat { .. } => return None,
        Op::Convert
        | Op::Broadcast { .. }
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::ReduceSum { .. }
        | Op::ReduceMax { .. } => 1,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => 2,
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => 2,
        Op::MatMul => 2,
        Op::Select => 3,
        Op::ReduceMin { .. } | Op::RandomBits | Op::RandomSplit | Op::RandomUniform => 1,
        Op::Gather | Op::ScatterAdd | Op::BatchMatMul => 2,
        Op::Reverse { .. } | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) => 1,
        Op::Conv2d(_) | Op::SelectAndScatter(_) => 2,
        Op::Scan(s) => s.body.n_params,
        Op::CustomVjp(c) => c.primal.n_params,
    };
    Some(n)
}

/// The op's name in the IR text form.
pub fn name(op: &Op) -> &'static str {
    match op {
        Op::Param(_) => "param",
        Op::Constant(_) => "constant",
        Op::Iota { .. } => "iota",
        Op::Neg => "neg",
        Op::Exp => "exp",
        Op::Log => "log",
        Op::Tanh => "tanh",
        Op::Sqrt => "sqrt",
        Op::Add => "add",
        Op::Sub => "sub",
        Op::Mul => "mul",
        Op::Div => "div",
        Op::Max => "max",
        Op::Min => "min",
        Op::Pow => "pow",
        Op::Lt => "lt",
        Op::Le => "le",
        Op::Gt => "gt",
        Op::Ge => "ge",
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Select => "select",
        Op::Convert => "convert",
        Op::Broadcast { .. } => "broadcast",
        Op::Reshape => "reshape",
        Op::Transpose { .. } => "transpose",
        Op::ReduceSum { .. } => "reduce_sum",
        Op::ReduceMax { .. } => "reduce_max",
        Op::MatMul => "matmul",
        Op::Log1p => "log1p",
        Op::Expm1 => "expm1",
        Op::Logistic => "logistic",
        Op::Sin => "sin",
        Op::Cos => "cos",
        Op::Rsqrt => "rsqrt",
        Op::Erf => "erf",
        Op::Floor => "floor",
        Op::Ceil => "ceil",
        Op::Round => "round",
        Op::Abs => "abs",
        Op::Sign => "sign",
        Op::StopGradient => "stop_gradient",
        Op::ArgMax { .. } => "argmax",
        Op::Slice { .. } => "slice",
        Op::Pad { .. } => "pad",
        Op::Concat { .. } => "concat",
        Op::ReduceMin { .. } => "reduce_min",
        Op::Gather => "gather",
        Op::ScatterAdd => "scatter_add",
        Op::BatchMatMul => "batch_matmul",
        Op::RandomBits => "random_bits",
        Op::RandomSplit => "random_split",
        Op::RandomUniform => "random_uniform",
        Op::Reverse { .. } => "reverse",
        Op::Conv2d(_) => "conv2d",
        Op::ReduceWindowSum(_) => "reduce_window_sum",
        Op::ReduceWindowMax(_) => "reduce_window_max",
        Op::SelectAndScatter(_) => "select_and_scatter",
        Op::Scan(_) => "scan",
        Op::CustomVjp(_) => "custom_vjp",
    }
}

/// True for ops whose result is computed element by element from operands of
/// the same shape (the ops a CPU kernel can fuse into one loop).
pub fn is_elementwise(op: &Op) -> bool {
    match op {
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => true,
        Op::Log1p | Op::Expm1 | Op::Logistic | Op::Sin | Op::Cos | Op::Rsqrt | Op::Erf => true,
        Op::Abs | Op::Sign | Op::StopGradient => true,
        Op::Floor | Op::Ceil | Op::Round => true,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => true,
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => true,
        Op::Select | Op::Convert => true,
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => false,
        Op::Broadcast { .. } | Op::Reshape | Op::Transpose { .. } => false,
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::MatMul => false,
        Op::ArgMax { .. } | Op::Slice { .. } | Op::Pad { .. } | Op::Concat { .. } => false,
        Op::ReduceMin { .. } | Op::Gather | Op::ScatterAdd | Op::BatchMatMul => false,
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => false,
        Op::Reverse { .. } | Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) => false,
        Op::SelectAndScatter(_) | Op::Scan(_) | Op::CustomVjp(_) => false,
    }
}
