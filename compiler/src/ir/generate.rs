//! Random well-typed IR functions for property tests: a seed and options in,
//! a verified `Func` out, deterministically. Every op appears with some
//! probability (`tests` checks that 300 seeds cover them all), so a property
//! over generated functions (print/parse round trip, JIT == interpreter,
//! optimized == unoptimized) covers every op.
//!
//! Programs are a chain of steps over a pool of values of one float dtype
//! (of any shape up to `max_elements`); i32 and bool values appear inside
//! steps and are converted back. Log, sqrt, rsqrt, log1p and pow get guarded
//! operands and exp/expm1 capped ones, so most values stay finite.

mod custom_vjp_ops;
mod scan_ops;
mod transformer_ops;

use super::func::{Builder, Func, ValueId};
use super::op::Op;
use super::tensor::Tensor;
use super::types::{DType, Shape, Type};

/// splitmix64: a tiny deterministic PRNG.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform(0.0, 1.0) < p
    }
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

#[derive(Clone, Debug)]
pub struct GenOptions {
    /// The number of steps (each adds one or more instructions) is drawn from
    /// `min_steps..=max_steps`.
    pub min_steps: usize,
    pub max_steps: usize,
    /// Most elements a generated value may have.
    pub max_elements: usize,
    /// The pool's float dtype; `None` draws f32 (70%) or f64.
    pub dtype: Option<DType>,
    /// Whether to emit `MatMul` and `Conv2d` (the CPU backend sums them in
    /// gemm's order, not bitwise equal to the interpreter's, so JIT tests
    /// turn them off).
    pub matmul: bool,
    /// Whether constants may be any non-NaN f64 bit pattern (for round trips)
    /// instead of small numbers.
    pub wild_constants: bool,
    /// Whether to emit `CustomVjp` ops. Their generated rule is not the
    /// function's derivative (`generate/custom_vjp_ops.rs`), so tests that
    /// compare gradients with finite differences turn them off.
    pub custom_vjp: bool,
}

impl Default for GenOptions {
    fn default() -> GenOptions {
        GenOptions {
            min_steps: 5,
            max_steps: 20,
            max_elements: 48,
            dtype: None,
            matmul: true,
            wild_constants: false,
            custom_vjp: true,
        }
    }
}

/// A random verified function; the same `seed` and `opts` give the same function.
pub fn random_func(seed: u64, opts: &GenOptions) -> Func {
    let mut rng = Rng(seed);
    let float = opts.dtype.unwrap_or(if rng.chance(0.7) { DType::F32 } else { DType::F64 });
    // [2, 17]: rows of 16+ f32, where the CPU backend's 512-bit math applies.
    let shapes: [&[usize]; 8] = [&[], &[5], &[2, 3], &[3, 1, 4], &[2, 3, 4], &[9], &[4, 2], &[2, 17]];
    let n_params = 1 + rng.below(3);
    let param_types: Vec<Type> = (0..n_params)
        .map(|_| Type::new(float, rng.pick(&shapes)))
        .filter(|t| t.shape.num_elements() <= opts.max_elements)
        .collect();
    let param_types = if param_types.is_empty() { vec![Type::scalar(float)] } else { param_types };
    let mut gen =
        Gen { rng, b: Builder::new("random", &param_types), pool: vec![], float, opts: opts.clone(), depth: 0 };
    gen.pool = (0..param_types.len()).map(|i| gen.b.param(i)).collect();
    let n_steps = opts.min_steps + gen.rng.below(opts.max_steps.saturating_sub(opts.min_steps) + 1);
    for _ in 0..n_steps {
        let v = gen.step();
        debug_assert_eq!(gen.b.ty(v).dtype, float, "pool values have the program's float dtype");
        gen.pool.push(v);
    }
    let mut outputs = vec![*gen.pool.last().expect("the pool holds the params")];
    for _ in 0..gen.rng.below(3) {
        let v = gen.rng.pick(&gen.pool);
        outputs.push(v);
    }
    let func = gen.b.finish(outputs);
    super::verify::assert_valid(&func, "generate::random_func");
    func
}

/// Inputs for `func`'s params: mostly uniform in [-3, 3), with 3% specials
/// (NaN, ±inf, ±0) in floats; i32 in [-50, 50); random bools.
pub fn random_inputs(func: &Func, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng(seed);
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0];
    func.param_types()
        .iter()
        .map(|ty| {
            let values: Vec<f64> = (0..ty.shape.num_elements())
                .map(|_| match ty.dtype {
                    DType::F32 | DType::F64 if rng.chance(0.03) => rng.pick(&specials),
                    DType::F32 | DType::F64 => rng.uniform(-3.0, 3.0),
                    DType::I32 => rng.uniform(-50.0, 50.0).floor(),
                    DType::Bool => rng.below(2) as f64,
                })
                .collect();
            Tensor::from_f64(ty.dtype, ty.shape.dims(), &values)
        })
        .collect()
}

struct Gen {
    rng: Rng,
    b: Builder,
    /// Values of the program's float dtype that later steps may use.
    pool: Vec<ValueId>,
    float: DType,
    opts: GenOptions,
    /// How many scan bodies this generator is inside.
    depth: usize,
}

impl Gen {
    fn ty(&self, v: ValueId) -> Type {
        self.b.ty(v).clone()
    }
    /// A pool value, biased to recent ones so that chains get deep.
    fn pick(&mut self) -> ValueId {
        let n = self.pool.len();
        if self.rng.chance(0.6) {
            self.pool[n - 1 - self.rng.below(n.min(4))]
        } else {
            self.rng.pick(&self.pool)
        }
    }
    fn constant(&mut self) -> f64 {
        if self.opts.wild_constants && self.rng.chance(0.5) {
            let v = f64::from_bits(self.rng.next_u64());
            if v.is_nan() {
                -0.0
            } else {
                v
            }
        } else {
            self.rng.uniform(-3.0, 3.0).round() / 2.0
        }
    }
    fn full(&mut self, value: f64, like: ValueId) -> ValueId {
        let ty = self.ty(like);
        self.b.full(value, &ty)
    }
    /// A value of `x`'s type to combine with it: another pool value of that
    /// type when there is one, else something computed from `x`.
    fn partner(&mut self, x: ValueId) -> ValueId {
        let ty = self.ty(x);
        let same: Vec<ValueId> = self.pool.iter().copied().filter(|&v| v != x && self.b.ty(v) == &ty).collect();
        if !same.is_empty() && self.rng.chance(0.8) {
            return self.rng.pick(&same);
        }
        match self.rng.below(3) {
            0 => {
                let c = self.constant();
                self.full(c, x)
            }
            1 => self.b.unary(Op::Tanh, x),
            _ if ty.shape.rank() == 0 => self.b.neg(x),
            _ => {
                let axis = self.rng.below(ty.shape.rank());
                let i = self.b.iota(ty, axis);
                self.b.sub(x, i)
            }
        }
    }
    fn random_perm(&mut self, rank: usize) -> Vec<usize> {
        let mut perm: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() {
            let j = self.rng.below(i + 1);
            perm.swap(i, j);
        }
        perm
    }
    /// A random shape with `n > 0` elements and rank 1..=3.
    fn random_factoring(&mut self, n: usize) -> Shape {
        let rank = 1 + self.rng.below(3);
        let mut dims = vec![];
        let mut rest = n;
        for _ in 1..rank {
            let divisors: Vec<usize> = (1..=rest).filter(|&d| rest.is_multiple_of(d)).collect();
            let d = self.rng.pick(&divisors);
            dims.push(d);
            rest /= d;
        }
        dims.push(rest);
        Shape(dims)
    }
    /// A random window of `x` (sometimes empty along a dim).
    fn random_slice(&mut self, x: ValueId) -> ValueId {
        let dims = self.ty(x).shape.0;
        let (mut start, mut limit, mut stride) = (vec![], vec![], vec![]);
        for &n in &dims {
            let s = self.rng.below(n + 1);
            let l = if self.rng.chance(0.05) { s } else { s + self.rng.below(n - s + 1) };
            start.push(s);
            limit.push(l);
            stride.push(1 + self.rng.below(3));
        }
        self.b.slice(x, start, limit, stride)
    }
    /// Random zero padding of `x`, or `x` itself if it would grow too large.
    fn random_pad(&mut self, x: ValueId) -> ValueId {
        let dims = self.ty(x).shape.0;
        let (mut low, mut high, mut interior) = (vec![], vec![], vec![]);
        for _ in &dims {
            low.push(self.rng.below(3));
            high.push(self.rng.below(3));
            interior.push(if self.rng.chance(0.3) { 1 + self.rng.below(2) } else { 0 });
        }
        let size: usize =
            (0..dims.len()).map(|d| super::func::padded_dim(dims[d], low[d], high[d], interior[d])).product();
        if size > self.opts.max_elements {
            return x;
        }
        self.b.pad(x, low, high, interior)
    }
    /// `x` concatenated with 1-2 values that match it off a random axis: pool
    /// values when some fit, else windows of `x`. `x` itself if too large.
    fn random_concat(&mut self, x: ValueId) -> ValueId {
        let ty = self.ty(x);
        let rank = ty.shape.rank();
        if rank == 0 {
            return x;
        }
        let axis = self.rng.below(rank);
        let fits = |t: &Type| {
            t.dtype == ty.dtype
                && t.shape.rank() == rank
                && (0..rank).all(|d| d == axis || t.shape.0[d] == ty.shape.0[d])
        };
        let cands: Vec<ValueId> = self.pool.iter().copied().filter(|&v| fits(self.b.ty(v))).collect();
        let mut parts = vec![x];
        for _ in 0..1 + self.rng.below(2) {
            let part = if !cands.is_empty() && self.rng.chance(0.6) {
                self.rng.pick(&cands)
            } else {
                // A window along the axis only.
                let mut start = vec![0; rank];
                let mut limit = ty.shape.0.clone();
                let n = ty.shape.0[axis];
                start[axis] = self.rng.below(n + 1);
                limit[axis] = start[axis] + self.rng.below(n - start[axis] + 1);
                self.b.slice(x, start, limit, vec![1; rank])
            };
            parts.push(part);
        }
        if self.rng.chance(0.5) {
            parts.reverse();
        }
        let total: usize = parts.iter().map(|&p| self.b.ty(p).shape.num_elements()).sum();
        if total > self.opts.max_elements {
            return x;
        }
        self.b.concat(parts, axis)
    }
    /// A random divisor of `n > 0`.
    fn divisor(&mut self, n: usize) -> usize {
        let divisors: Vec<usize> = (1..=n).filter(|&d| n.is_multiple_of(d)).collect();
        self.rng.pick(&divisors)
    }
    /// `x` (n > 0 elements) as an NCHW image convolved with a kernel from the
    /// pool or from iota, with random strides, padding, dilations and
    /// groups; `x` itself if that does not fit.
    fn random_conv(&mut self, x: ValueId) -> ValueId {
        let n_el = self.ty(x).shape.num_elements();
        let n = self.divisor(n_el);
        let c = self.divisor(n_el / n);
        let h = self.divisor(n_el / n / c);
        let w = n_el / n / c / h;
        let groups = self.divisor(c);
        let o = groups * (1 + self.rng.below(2));
        let mut pick2 = |lo: usize, hi: usize, p: f64| -> [usize; 2] {
            [0, 1].map(|_| if self.rng.chance(p) { lo + self.rng.below(hi - lo + 1) } else { lo })
        };
        let (kernel_dims, stride, low, high) = (pick2(1, 3, 0.7), pick2(1, 2, 0.3), pick2(0, 2, 0.3), pick2(0, 2, 0.3));
        let (lhs_dilation, rhs_dilation) = (pick2(1, 2, 0.15), pick2(1, 2, 0.15));
        let attrs = super::op::Conv { stride, low, high, lhs_dilation, rhs_dilation, groups };
        let image = Type::new(self.float, &[n, c, h, w]);
        let kernel_ty = Type::new(self.float, &[o, c / groups, kernel_dims[0], kernel_dims[1]]);
        let fits = match super::window::conv2d_dims(&image, &kernel_ty, &attrs) {
            Ok(dims) => dims.iter().product::<usize>() <= self.opts.max_elements,
            Err(_) => false,
        };
        if !fits || kernel_ty.shape.num_elements() > self.opts.max_elements {
            return x;
        }
        let lhs = self.b.reshape(x, &image.shape);
        let cands: Vec<ValueId> = self
            .pool
            .iter()
            .copied()
            .filter(|&v| self.b.ty(v).shape.num_elements() == kernel_ty.shape.num_elements())
            .collect();
        let kernel = if !cands.is_empty() && self.rng.chance(0.7) {
            let v = self.rng.pick(&cands);
            self.b.reshape(v, &kernel_ty.shape)
        } else {
            let axis = self.rng.below(4);
            let i = self.b.iota(kernel_ty.clone(), axis);
            let c = self.constant();
            let c = self.b.full(c, &kernel_ty);
            self.b.sub(c, i)
        };
        self.b.conv2d(lhs, kernel, attrs)
    }
    /// A window sum or max over `x` (n > 0 elements) with random sizes,
    /// strides and padding, or a max's `select_and_scatter` back onto `x`.
    fn random_reduce_window(&mut self, x: ValueId) -> ValueId {
        let dims = self.ty(x).shape.0;
        let mut w = super::op::Window { size: vec![], stride: vec![], low: vec![], high: vec![] };
        for &d in &dims {
            let (low, high) = if self.rng.chance(0.3) { (self.rng.below(2), self.rng.below(3)) } else { (0, 0) };
            w.low.push(low);
            w.high.push(high);
            w.size.push(1 + self.rng.below(3.min(low + d + high)));
            w.stride.push(1 + self.rng.below(2));
        }
        let ty = self.ty(x);
        match super::window::reduce_window_dims(&ty, &w) {
            Ok(out) if out.iter().product::<usize>() <= self.opts.max_elements => match self.rng.below(3) {
                0 => self.b.reduce_window(x, w, false),
                1 => self.b.reduce_window(x, w, true),
                // Max pooling's backward, with the maxima as the cotangent.
                _ => {
                    let max = self.b.reduce_window(x, w.clone(), true);
                    self.b.select_and_scatter(x, max, w)
                }
            },
            _ => x,
        }
    }
    /// One step: some instructions ending in a value of the program's float dtype.
    fn step(&mut self) -> ValueId {
        let x = self.pick();
        let ty = self.ty(x);
        let (rank, n) = (ty.shape.rank(), ty.shape.num_elements());
        let float = self.float;
        let cmp_ops = [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne];
        match self.rng.below(26) {
            // Unary ops defined everywhere; exp and expm1 of a value capped at 10.
            0 | 1 => {
                let ops = [
                    Op::Neg,
                    Op::Tanh,
                    Op::Sin,
                    Op::Cos,
                    Op::Erf,
                    Op::Logistic,
                    Op::Abs,
                    Op::Sign,
                    Op::StopGradient,
                    Op::Exp,
                    Op::Expm1,
                    Op::Floor,
                    Op::Ceil,
                    Op::Round,
                ];
                match self.rng.pick(&ops) {
                    op @ (Op::Exp | Op::Expm1) => {
                        let cap = self.full(10.0, x);
                        let capped = self.b.binary(Op::Min, x, cap);
                        self.b.unary(op, capped)
                    }
                    op => self.b.unary(op, x),
                }
            }
            // Guarded log, sqrt, rsqrt, log1p.
            2 => {
                let op = self.rng.pick(&[Op::Log, Op::Sqrt, Op::Rsqrt, Op::Log1p]);
                let floor = match op {
                    Op::Log1p => -0.5,
                    _ if self.rng.chance(0.5) => 1e-3,
                    _ => 0.0,
                };
                let floor = self.full(floor, x);
                let guarded = self.b.binary(Op::Max, x, floor);
                self.b.unary(op, guarded)
            }
            // Arithmetic.
            3 | 4 => {
                let y = self.partner(x);
                let op = self.rng.pick(&[Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min]);
                self.b.binary(op, x, y)
            }
            // Guarded pow: base >= 0.1, exponent in [-3, 3].
            5 => {
                let y = self.partner(x);
                let floor = self.full(0.1, x);
                let base = self.b.binary(Op::Max, x, floor);
                let (three, minus_three) = (self.full(3.0, x), self.full(-3.0, x));
                let e = self.b.binary(Op::Min, y, three);
                let e = self.b.binary(Op::Max, e, minus_three);
                self.b.binary(Op::Pow, base, e)
            }
            // Compare and select.
            6 => {
                let y = self.partner(x);
                let op = self.rng.pick(&cmp_ops);
                let c = self.b.binary(op, x, y);
                if self.rng.chance(0.7) {
                    self.b.select(c, x, y)
                } else {
                    self.b.convert(c, float)
                }
            }
            // An i32 detour.
            7 => {
                let y = self.partner(x);
                let scale = self.full(4.0, x);
                let xs = self.b.mul(x, scale);
                let xi = self.b.convert(xs, DType::I32);
                let yi = self.b.convert(y, DType::I32);
                let ops = [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Pow, Op::Neg, Op::Abs, Op::Sign];
                let zi = match self.rng.pick(&ops) {
                    op @ (Op::Neg | Op::Abs | Op::Sign) => self.b.unary(op, xi),
                    op => self.b.binary(op, xi, yi),
                };
                let zi = if self.rng.chance(0.3) {
                    let op = self.rng.pick(&cmp_ops);
                    let c = self.b.binary(op, zi, yi);
                    self.b.select(c, zi, xi)
                } else {
                    zi
                };
                self.b.convert(zi, float)
            }
            // A detour through another dtype and a data-movement op there.
            8 => {
                let other = self.rng.pick(&[DType::Bool, DType::I32, DType::F32, DType::F64]);
                let xo = self.b.push(Op::Convert, vec![x], ty.with_dtype(other));
                let moved = match self.rng.below(4) {
                    0 => self.random_slice(xo),
                    1 => self.random_pad(xo),
                    2 => self.random_concat(xo),
                    _ => self.b.unary(Op::StopGradient, xo),
                };
                let back_ty = self.ty(moved).with_dtype(float);
                self.b.push(Op::Convert, vec![moved], back_ty)
            }
            // Broadcast to a new leading dim, or reduce-then-broadcast back.
            9 => {
                if rank > 0 && self.rng.chance(0.6) {
                    let axis = self.rng.below(rank);
                    let r = if self.rng.chance(0.5) {
                        self.b.reduce_sum(x, vec![axis])
                    } else {
                        self.b.reduce_max(x, vec![axis])
                    };
                    let mut kept = ty.shape.0.clone();
                    kept[axis] = 1;
                    let r = self.b.reshape(r, &Shape(kept));
                    let back = self.b.broadcast(r, &ty.shape, (0..rank).collect());
                    self.b.sub(x, back)
                } else if 2 * n <= self.opts.max_elements {
                    let mut dims = vec![2];
                    dims.extend(&ty.shape.0);
                    self.b.broadcast(x, &Shape(dims), (1..=rank).collect())
                } else {
                    self.b.neg(x)
                }
            }
            10 if rank >= 2 => {
                let perm = self.random_perm(rank);
                self.b.transpose(x, perm)
            }
            11 if n > 0 => {
                let shape = self.random_factoring(n);
                self.b.reshape(x, &shape)
            }
            // Reduce over a random axis set (possibly empty: no instruction).
            12 if rank >= 1 => {
                let axes: Vec<usize> = (0..rank).filter(|_| self.rng.chance(0.5)).collect();
                if self.rng.chance(0.5) {
                    self.b.reduce_sum(x, axes)
                } else {
                    self.b.reduce_max(x, axes)
                }
            }
            13 if rank >= 1 => {
                let axis = self.rng.below(rank);
                let i = self.b.iota(ty, axis);
                self.b.add(x, i)
            }
            // Argmax along a non-empty axis, of x or of x as i32.
            14 if rank >= 1 && ty.shape.0.iter().any(|&d| d > 0) => {
                let axes: Vec<usize> = (0..rank).filter(|&d| ty.shape.0[d] > 0).collect();
                let axis = self.rng.pick(&axes);
                let src = if self.rng.chance(0.3) { self.b.convert(x, DType::I32) } else { x };
                let i = self.b.argmax(src, axis);
                self.b.convert(i, float)
            }
            15 => self.random_slice(x),
            16 => self.random_pad(x),
            17 => self.random_concat(x),
            // Matmul of x (as a matrix) with a fitting pool value or its own transpose.
            18 if self.opts.matmul && n > 0 => {
                let x2 = if rank == 2 {
                    x
                } else {
                    let divisors: Vec<usize> = (1..=n).filter(|&d| n.is_multiple_of(d)).collect();
                    let d = self.rng.pick(&divisors);
                    self.b.reshape(x, &Shape(vec![n / d, d]))
                };
                let (m, k) = (self.b.ty(x2).shape.0[0], self.b.ty(x2).shape.0[1]);
                let cands: Vec<ValueId> = self
                    .pool
                    .iter()
                    .copied()
                    .filter(|&v| {
                        let t = self.b.ty(v);
                        t.shape.rank() == 2 && t.shape.0[0] == k && m * t.shape.0[1] <= self.opts.max_elements
                    })
                    .collect();
                if !cands.is_empty() && self.rng.chance(0.6) {
                    let y = self.rng.pick(&cands);
                    self.b.matmul(x2, y)
                } else if m * m <= self.opts.max_elements {
                    let t = self.b.transpose(x2, vec![1, 0]);
                    self.b.matmul(x2, t)
                } else {
                    self.b.neg(x)
                }
            }
            // Gather, scatter_add, batch_matmul, reduce_min, random numbers.
            19 | 20 => self.transformer_step(x),
            21 if self.opts.matmul && n > 0 => self.random_conv(x),
            22 if n > 0 => self.random_reduce_window(x),
            23 if rank >= 1 => {
                let dims: Vec<usize> = (0..rank).filter(|_| self.rng.chance(0.6)).collect();
                self.b.reverse(x, dims)
            }
            24 if self.rng.chance(0.7) => self.random_scan(x),
            24 => self.random_custom_vjp(x),
            // A constant (maybe a wild one) times x.
            _ => {
                let c = self.constant();
                let c = self.full(c, x);
                self.b.mul(x, c)
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// The seed of a randomized test run: `JLC_TEST_SEED` (decimal or 0x-hex)
/// if set, else one from the clock, so that each run (each CI run) tries
/// new cases; printed, so that a failure (whose captured output the test
/// harness shows) can be repeated. `salt` keeps the tests of one run on
/// different streams.
pub fn run_seed(salt: u64) -> u64 {
    let seed = match std::env::var("JLC_TEST_SEED") {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("JLC_TEST_SEED={v:?}: expected a decimal or 0x-hex u64"))
        }
        Err(_) => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            Rng((nanos as u64) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
        }
    };
    eprintln!("seed {seed:#x} (repeat with JLC_TEST_SEED={seed:#x})");
    seed
}
