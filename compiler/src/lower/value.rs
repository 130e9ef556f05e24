//! The values the elaborator computes while walking the AST.
//!
//! Tensors carry a front-end type and, when building IR, the IR value that
//! holds them. Everything else (integers, literals, functions, models,
//! optimizers, initializers) is known at compile time.

use crate::check::{Dim, Ty};
use crate::ir::ValueId;
use crate::span::Span;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub struct TVal {
    pub ty: Ty,
    /// The IR value; `None` in check mode.
    pub id: Option<ValueId>,
}

/// A named function: its module and index in that module's items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FnRef {
    pub module: usize,
    pub item: usize,
}

/// A lambda value: its syntax (cloned out of the AST, so a value does not
/// borrow the program) and the variables of the scope that created it.
#[derive(Debug)]
pub struct LambdaVal {
    pub module: usize,
    pub lambda: crate::syntax::ast::Lambda,
    pub captured: Vec<(String, Val)>,
    pub span: Span,
}

/// Something a transformation can be applied to: a named function, a lambda,
/// or another function value with known parameters (`grad(f)`, `vmap(f)`, a
/// model or one of its methods), so transformations compose: `grad(grad(f))`.
#[derive(Clone, Debug)]
pub enum Callee {
    Named(FnRef),
    Lambda(Rc<LambdaVal>),
    /// A `Val::Grad`, `Val::Vmap`, `Val::Model` or `Val::Method` (see
    /// `transform::callee_of_value`, the only place that makes one).
    Value(Rc<Val>),
}

#[derive(Clone, Debug)]
pub enum Val {
    Tensor(TVal),
    /// A compile-time integer (a literal, a config value, a dim).
    Int(Dim),
    /// A negative compile-time integer (`-1`, `a - b` below zero, a
    /// negative `const` or `int` argument): an index from the end, an axis
    /// from the last, a step. `Int` holds the others, which can be dims.
    NegInt(i64),
    /// A compile-time float literal: weakly typed, it takes the dtype of the
    /// tensor it meets (as in JAX).
    Float(f64),
    Bool(bool),
    Str(String),
    Tuple(Vec<Val>),
    Fn(FnRef),
    /// A model declaration: calling it instantiates the model.
    ModelDecl {
        module: usize,
        item: usize,
    },
    Builtin(&'static str),
    /// An anonymous function `fn(w) = ...` with the values it captured.
    Lambda(Rc<LambdaVal>),
    /// `grad(f, wrt = ...)` or `value_and_grad(...)`, waiting for arguments.
    /// With `has_aux`, `f` returns `(loss, aux)` and `aux` is passed through
    /// undifferentiated, as in JAX.
    Grad {
        f: Callee,
        wrt: Vec<String>,
        with_value: bool,
        has_aux: bool,
    },
    /// `jacfwd(f, wrt = ...)`, `jacrev(...)` or `hessian(...)`, waiting for
    /// arguments (`lower/jacobian.rs`).
    Jacobian {
        f: Callee,
        wrt: Vec<String>,
        mode: JacobianMode,
    },
    /// The pullback returned by `vjp(f, primals...)`: called with the
    /// cotangent of `f`'s output, it returns one cotangent per primal.
    Pullback {
        f: Callee,
        /// The arguments, trees of tensors.
        primals: Vec<Val>,
        /// The output's structure and types, a tree of tensors.
        out: Rc<Val>,
    },
    /// `vmap(f, in_axes = ...)`, waiting for arguments. `f` is any function
    /// value; `axes_span` is where `in_axes` was written (the call's span
    /// when it was left out).
    Vmap {
        f: Rc<Val>,
        in_axes: InAxes,
        axes_span: Span,
        /// Where each output's batch axis goes (`out_axes`; 0 by default).
        out_axes: OutAxes,
    },
    /// `checkpoint(f)`, waiting for arguments: `f`'s values are recomputed
    /// for a gradient instead of stored (`lower/checkpoint.rs`).
    Checkpoint {
        f: Rc<Val>,
    },
    /// `custom_vjp(f, fwd, bwd)`, waiting for arguments: `f` with the
    /// user's gradient rule (`lower/custom_vjp.rs`).
    CustomVjp(Rc<super::custom_vjp::Rule>),
    Model(Rc<ModelInst>),
    Method {
        model: Rc<ModelInst>,
        name: String,
    },
    Init(Init),
    Optimizer(Optimizer),
    /// `param_groups(...)`: optimizers per part of the model, and frozen
    /// parameters (`lower/param_groups.rs`).
    ParamGroups(Rc<super::param_groups::ParamGroups>),
    Unit,
    /// The result of an expression that already produced a diagnostic;
    /// absorbs further errors so one mistake gives one report.
    Poison,
}

impl Val {
    /// Whether `self` holds an erroneous value (already reported), in a
    /// tuple at any depth too.
    pub fn has_poison(&self) -> bool {
        match self {
            Val::Poison => true,
            Val::Tuple(items) => items.iter().any(Val::has_poison),
            _ => false,
        }
    }

    /// A compile-time integer: `Int` when it is `>= 0` (it may be a dim),
    /// `NegInt` below.
    pub fn int(n: i64) -> Val {
        if n >= 0 {
            Val::Int(Dim::Known(n as usize))
        } else {
            Val::NegInt(n)
        }
    }
    /// The value of a known compile-time integer, of either sign.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(Dim::Known(n)) => i64::try_from(*n).ok(),
            Val::NegInt(n) => Some(*n),
            _ => None,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Val::Tensor(t) => format!("a tensor of type {}", t.ty),
            Val::Int(d) => format!("the integer {d}"),
            Val::NegInt(n) => format!("the integer {n}"),
            // `{:?}` keeps the `.0` of a whole number: "the number 2" would read as an integer.
            Val::Float(x) => format!("the number {x:?}"),
            Val::Bool(b) => format!("the boolean {b}"),
            Val::Str(s) => format!("the string {s:?}"),
            Val::Tuple(items) => format!("a tuple of {} values", items.len()),
            Val::ModelDecl { .. } => "a model declaration".into(),
            Val::Fn(_)
            | Val::Builtin(_)
            | Val::Grad { .. }
            | Val::Jacobian { .. }
            | Val::Method { .. }
            | Val::Lambda(_)
            | Val::Pullback { .. }
            | Val::Vmap { .. }
            | Val::Checkpoint { .. }
            | Val::CustomVjp(_) => "a function".into(),
            Val::Model(m) => format!("a `{}` model", m.name),
            Val::Init(_) => "an initializer".into(),
            Val::Optimizer(_) => "an optimizer".into(),
            Val::ParamGroups(_) => "parameter groups".into(),
            Val::Unit => "nothing (`()`)".into(),
            Val::Poison => "an erroneous value".into(),
        }
    }
}

/// How a `Val::Jacobian` is computed: by `jvp`s (`jacfwd`, one per input
/// element), by `vjp`s (`jacrev`, one per output element), or as `jacfwd`
/// of `jacrev` (`hessian`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JacobianMode {
    Forward,
    Reverse,
    Hessian,
}

/// The batch axis of each argument of a `vmap`ped function: `None` for an
/// argument shared by every example; a negative axis counts from the
/// argument's last dim (`-1`), as in JAX.
#[derive(Clone, Debug, PartialEq)]
pub enum InAxes {
    /// One entry for every argument (`in_axes = 0`, the default).
    All(Option<i64>),
    /// One entry per argument (`in_axes = (None, 0)`).
    Each(Vec<AxisTree>),
}

/// One argument's `in_axes` entry: a batch axis (or `None`) for all its
/// tensors, or, for a tuple argument, a tuple of entries, one per element
/// (`in_axes = ((0, None), 0)`, JAX's prefix trees).
#[derive(Clone, Debug, PartialEq)]
pub enum AxisTree {
    Axis(Option<i64>),
    Tuple(Vec<AxisTree>),
}

/// `vmap`'s `out_axes`: the axis of each output that holds the examples
/// (negative counts from the output's last dim, as in JAX).
#[derive(Clone, Debug, PartialEq)]
pub enum OutAxes {
    /// One axis for every output (`out_axes = 0`, the default).
    All(i64),
    /// One entry per element of a tuple output (`out_axes = (0, 1)`).
    Each(Vec<i64>),
}

/// How a parameter's initial value is drawn (by the trainer, on the host).
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    /// Every element `value`.
    Full(f64),
    Uniform {
        low: f64,
        high: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (`fans`).
    GlorotUniform,
    /// Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)).
    GlorotNormal,
    /// He/Kaiming uniform (for ReLU): U(-a, a), a = sqrt(6 / fan_in).
    HeUniform,
    /// He/Kaiming normal: N(0, 2 / fan_in), PyTorch's `kaiming_normal_` (not truncated).
    HeNormal,
    /// PyTorch's `orthogonal_(gain)`: the weight viewed as `[dims[0],
    /// rest]` has orthonormal columns (or rows, whichever are fewer), times
    /// `gain`: Q of the QR of a normal matrix, with R's diagonal made positive.
    Orthogonal(f64),
    /// `absent()`: the field is left out of this instance (an optional
    /// parameter, `bias: f32[n] = if use_bias { zeros() } else { absent() }`);
    /// never in a `ParamSpec`.
    Absent,
}

/// The (fan_in, fan_out) of a weight of shape `dims`, as PyTorch computes
/// them for its layouts: `[in, out]` matrices (ours: `x @ w`), `[out, in,
/// kh, kw]` convolution kernels (times the receptive field), a vector
/// counting as both.
pub fn fans(dims: &[usize]) -> (usize, usize) {
    match *dims {
        [] => (1, 1),
        [n] => (n, n),
        [fan_in, fan_out] => (fan_in, fan_out),
        [out, inp, ref rest @ ..] => {
            let field: usize = rest.iter().product();
            (inp * field, out * field)
        }
    }
}

/// An optimizer: the update function (`fn f(p, g, states..., step, hyper...)`
/// returning `(p', states'...)`) and the hyperparameters given by the user.
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub name: String,
    pub update: FnRef,
    pub hyper: Vec<(String, Val)>,
}

/// One parameter of an instantiated model: trained, frozen or a buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Dotted path: `l1.weight`.
    pub path: String,
    pub ty: crate::ir::Type,
    pub init: Init,
    pub kind: ParamKind,
}

/// What changes a parameter while training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Its optimizer, from its gradient.
    Trained,
    /// Nothing: `param_groups(..., frozen = ...)` leaves it out of training
    /// (no gradient, no optimizer state).
    Frozen,
    /// `assign` in a training step (`running_mean: f32[C] =
    /// buffer(zeros())`): state the optimizer never touches, saved and
    /// restored with the parameters.
    Buffer,
}

impl ParamSpec {
    /// Whether the optimizer updates it (it gets a gradient).
    pub fn trainable(&self) -> bool {
        self.kind == ParamKind::Trained
    }
}

#[derive(Debug)]
pub struct ModelInst {
    pub name: String,
    pub module: usize,
    pub item: usize,
    pub path: String,
    pub config: BTreeMap<String, Val>,
    pub params: BTreeMap<String, TVal>,
    /// The fields among `params` that are buffers (`buffer(init)`).
    pub buffers: std::collections::BTreeSet<String>,
    /// Parameter fields this instance leaves out (`absent()`).
    pub absent: std::collections::BTreeSet<String>,
    /// Submodules by field name; the members of a list field `name` are
    /// `name.0`, `name.1`, ...
    pub subs: BTreeMap<String, Rc<ModelInst>>,
    /// List fields (`[Model(args); n]`) and their lengths.
    pub lists: BTreeMap<String, usize>,
    pub span: Span,
}
