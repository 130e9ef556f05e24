//! The random-number built-ins: `random_key(seed)`, `split(key, n = 2)`,
//! `random_bits(key, shape)`, `uniform(key, shape)`, `normal(key, shape)`.
//!
//! Keys are `i32[2]` tensors (JAX's raw threefry keys, u32 words as bit
//! patterns); every function is a pure function of its key, as in JAX, so
//! the same key always gives the same numbers. `random_key`, `split`,
//! `random_bits` and `uniform` give JAX's exact bits (`ir::threefry`);
//! `normal` uses Box-Muller on two uniforms (JAX uses an inverse erf, so its
//! normals differ). In check mode the same rules produce types only.

use super::builtins::bad;
use super::elab::{CallArg, Elaborator};
use super::ops::known;
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DType, Op, Shape, Type};
use crate::span::Span;

fn key_ty() -> Ty {
    Ty { dtype: DType::I32, dims: vec![Dim::Known(2)] }
}

/// The key argument (an `i32[2]` tensor) of `name`, or an error.
fn key_arg(el: &mut Elaborator, args: &[CallArg], span: Span, name: &str) -> Option<TVal> {
    match args.first().map(|a| &a.value) {
        Some(Val::Tensor(t)) if t.ty == key_ty() => Some(t.clone()),
        Some(v) => {
            let d = v.describe();
            el.error(
                Diagnostic::error(Code::TypeMismatch, format!("`{name}` needs a random key (i32[2]), found {d}"))
                    .with_label(args[0].span, format!("this is {d}"))
                    .with_help("make one with `random_key(seed)`"),
            );
            None
        }
        None => {
            bad(el, &format!("`{name}` needs a random key"), span);
            None
        }
    }
}

/// A shape argument: an integer or a tuple of integers (dims may be symbolic).
fn shape_arg(el: &mut Elaborator, arg: Option<&CallArg>, span: Span, name: &str) -> Option<Vec<Dim>> {
    let dim = |v: &Val| match v {
        Val::Int(d) => Some(d.clone()),
        _ => None,
    };
    let dims = match arg.map(|a| &a.value) {
        Some(Val::Tuple(items)) => items.iter().map(dim).collect::<Option<Vec<Dim>>>(),
        Some(v) => dim(v).map(|d| vec![d]),
        None => None,
    };
    if dims.is_none() {
        bad(el, &format!("`{name}(key, shape)`: the shape is an integer or a tuple of integers, e.g. `(2, 3)`"), span);
    }
    dims
}

/// `random_key(seed)`: JAX's `PRNGKey(seed)` for a 32-bit seed, `[0, seed]`.
pub fn random_key(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    if args.len() != 1 {
        return bad(el, "`random_key(seed)` takes one integer", span);
    }
    let seed = match &args[0].value {
        Val::Int(Dim::Known(n)) if i32::try_from(*n).is_ok() => SeedArg::Const(*n as i32),
        Val::NegInt(n) if i32::try_from(*n).is_ok() => SeedArg::Const(*n as i32),
        Val::Tensor(t) if t.ty == Ty::scalar(DType::I32) => SeedArg::Tensor(t.id),
        v => {
            let d = v.describe();
            return el.error(
                Diagnostic::error(Code::TypeMismatch, format!("`random_key` needs an i32 seed, found {d}"))
                    .with_label(args[0].span, format!("this is {d}")),
            );
        }
    };
    if !el.building() {
        return Val::Tensor(TVal { ty: key_ty(), id: None });
    }
    let b = el.b();
    let seed_id = match seed {
        SeedArg::Const(n) => b.constant(n as f64, DType::I32),
        SeedArg::Tensor(id) => id.expect("build mode"),
    };
    let one = Shape(vec![1]);
    let hi = b.constant(0.0, DType::I32);
    let hi = b.reshape(hi, &one);
    let lo = b.reshape(seed_id, &one);
    let key = b.concat(vec![hi, lo], 0);
    Val::Tensor(TVal { ty: key_ty(), id: Some(key) })
}

enum SeedArg {
    Const(i32),
    Tensor(Option<crate::ir::ValueId>),
}

/// `split(key, n = 2)`: a tuple of `n` new keys (JAX's `split`).
pub fn split(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let Some(key) = key_arg(el, args, span, "split") else { return Val::Poison };
    let n = match args.get(1).map(|a| &a.value) {
        None => 2,
        Some(Val::Int(Dim::Known(n))) if *n >= 1 => *n,
        Some(_) => return bad(el, "`split(key, n)`: n is a compile-time integer >= 1", args[1].span),
    };
    if n > 1024 {
        return bad(el, "`split` makes at most 1024 keys at once", span);
    }
    let keys: Vec<Val> = match key.id {
        None => (0..n).map(|_| Val::Tensor(TVal { ty: key_ty(), id: None })).collect(),
        Some(k) => {
            let b = el.b();
            let all = b.random_split(k, &Shape(vec![n]));
            (0..n)
                .map(|i| {
                    let row = b.slice(all, vec![i, 0], vec![i + 1, 2], vec![1, 1]);
                    Val::Tensor(TVal { ty: key_ty(), id: Some(b.reshape(row, &Shape(vec![2]))) })
                })
                .collect()
        }
    };
    Val::Tuple(keys)
}

/// `random_bits(key, shape)`: i32 bit patterns (JAX's `bits(key, shape, uint32)`).
pub fn random_bits(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let Some(key) = key_arg(el, args, span, "random_bits") else { return Val::Poison };
    let Some(dims) = shape_arg(el, args.get(1), span, "random_bits") else { return Val::Poison };
    let ty = Ty { dtype: DType::I32, dims };
    let id = key.id.map(|k| {
        let shape = Shape(ty.dims.iter().map(known).collect());
        el.b().random_bits(k, &shape)
    });
    Val::Tensor(TVal { ty, id })
}

/// `uniform(key, shape)` (f32 on [0, 1), JAX's bits) or `normal(key, shape)`.
pub fn sample(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    let Some(key) = key_arg(el, args, span, name) else { return Val::Poison };
    let Some(dims) = shape_arg(el, args.get(1), span, name) else { return Val::Poison };
    let ty = Ty { dtype: DType::F32, dims };
    let id = key.id.map(|k| {
        let ir_ty = Type { dtype: DType::F32, shape: Shape(ty.dims.iter().map(known).collect()) };
        let b = el.b();
        if name == "uniform" {
            return b.random_uniform(k, &ir_ty);
        }
        // Box-Muller: z = sqrt(-2 log(1 - u1)) cos(2 pi u2), u1, u2 uniform
        // on [0, 1) from the two halves of split(key); log1p(-u1) is finite.
        let keys = b.random_split(k, &Shape(vec![2]));
        let half = |b: &mut crate::ir::Builder, i: usize| {
            let row = b.slice(keys, vec![i, 0], vec![i + 1, 2], vec![1, 1]);
            let key_i = b.reshape(row, &Shape(vec![2]));
            b.random_uniform(key_i, &ir_ty)
        };
        let (u1, u2) = (half(b, 0), half(b, 1));
        let neg_u1 = b.neg(u1);
        let log = b.unary(Op::Log1p, neg_u1);
        let minus_two = b.full(-2.0, &ir_ty);
        let r2 = b.mul(minus_two, log);
        let r = b.unary(Op::Sqrt, r2);
        let two_pi = b.full(std::f64::consts::TAU, &ir_ty);
        let angle = b.mul(two_pi, u2);
        let c = b.unary(Op::Cos, angle);
        b.mul(r, c)
    });
    Val::Tensor(TVal { ty, id })
}
