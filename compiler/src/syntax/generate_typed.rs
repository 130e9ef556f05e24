//! Random WELL-TYPED programs, for testing: a seed -> source text that
//! `jlc check` accepts without a diagnostic (unlike `generate.rs`, whose
//! programs are only syntactically valid).
//!
//! The generator is type-directed: `expr(ty)` writes an expression of
//! exactly `ty` (dtype and shape), picking among the forms that can give
//! that type (broadcasting arithmetic, reductions, matrix products,
//! indexing and slicing, reshapes, calls to earlier functions with their
//! dims bound, lambdas given to `grad`, `vmap`, `jvp`, ...) and writing the
//! operands' types first. Dims are literals, a function's symbolic dims
//! (bound at each call to a dim of the caller, symbolic or a literal of at
//! least `MIN_SYM`, so index and slice bounds written for `MIN_SYM` hold),
//! or `...` (leading dims, first only).
//!
//! `Program::features` names every form the program used, so a test can
//! check that the generator still reaches all of them.

use super::generate::Rng;
use std::collections::BTreeSet;

/// The smallest size a symbolic dim is bound to: bounds on a symbolic axis
/// stay below it.
const MIN_SYM: u32 = 4;
const SYMS: &[&str] = &["B", "D", "N", "K", "H", "M", "T", "E"];
const FLOATS: &[&str] = &["0.5", "2.0", "1.5", "0.25", "1e-3", "3.0", "0.1"];
const UNARY: &[&str] = &["exp", "tanh", "sqrt", "log1p", "sin", "cos", "abs", "sigmoid", "erf", "expm1"];
const NN_UNARY: &[&str] = &["relu", "softplus", "silu", "gelu"];
const NN_ROW: &[&str] = &["softmax", "log_softmax"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Lit(u32),
    Sym(&'static str),
    /// `...`: the function's leading dims (only at position 0).
    Rest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dt {
    F32,
    Bool,
}

/// The type of a value the generator tracks.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    Tensor(Dt, Vec<Dim>),
    /// A compile-time integer; `tensor_ok`: usable as a weak scalar in
    /// tensor arithmetic (a loop variable; not an `int` parameter, see the
    /// report in the tests).
    Int {
        tensor_ok: bool,
    },
    Float,
    Bool,
}

/// A generated program and the forms it uses.
pub struct Program {
    pub text: String,
    pub features: BTreeSet<&'static str>,
}

/// A well-typed program from `seed`; `size` (0 to ~6) scales the number of
/// functions, their length and the nesting depth.
pub fn program(seed: u64, size: usize) -> Program {
    let mut g = Gen {
        rng: Rng(seed),
        features: BTreeSet::new(),
        fns: Vec::new(),
        models: Vec::new(),
        consts: Vec::new(),
        named: Vec::new(),
        scope: Vec::new(),
        pool_syms: Vec::new(),
        rest: false,
        depth: 0,
        fuel: 0,
        counter: 0,
        nn: BTreeSet::new(),
        no_unknown_int: false,
        max_depth: 2 + size.min(3),
    };
    g.program(size)
}

#[derive(Clone)]
enum PKind {
    Tensor(Vec<Dim>),
    /// `scale = 2.0` or `scale: float = 2.0`
    Float,
    /// `k: int = 2`
    Int,
    /// `flag: bool = true`
    Flag,
}

#[derive(Clone)]
struct FnSig {
    /// What a call writes before `(`: `f3`, `self.forward`, `m0.score`.
    name: String,
    params: Vec<(String, PKind)>,
    ret: Vec<Dim>,
}

struct Var {
    name: String,
    ty: Ty,
}

struct Gen {
    rng: Rng,
    features: BTreeSet<&'static str>,
    fns: Vec<FnSig>,
    /// The models generated so far (by name).
    models: Vec<String>,
    /// Top-level constants: (name, kind), kind Int(value) / Float / Bool.
    consts: Vec<(String, Ty, u32)>,
    /// Names of integer values usable as dims here: (name, value).
    named: Vec<(String, u32)>,
    scope: Vec<Var>,
    /// The current function's symbolic dims (each in some parameter's type).
    pool_syms: Vec<&'static str>,
    /// The current function has `...` parameters.
    rest: bool,
    depth: usize,
    /// Expression nodes left in the current function.
    fuel: usize,
    counter: usize,
    nn: BTreeSet<&'static str>,
    /// Leave `int` parameters out of compile-time conditions.
    no_unknown_int: bool,
    max_depth: usize,
}

fn paren(s: String) -> String {
    if s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.') {
        s
    } else {
        format!("({s})")
    }
}

fn numel(dims: &[Dim]) -> Option<u32> {
    dims.iter().try_fold(1u32, |acc, d| match d {
        Dim::Lit(n) => acc.checked_mul(*n),
        _ => None,
    })
}

fn all_lit(dims: &[Dim]) -> bool {
    numel(dims).is_some()
}

impl Gen {
    fn hit(&mut self, f: &'static str) {
        self.features.insert(f);
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.rng.below(xs.len())].clone()
    }

    fn float_lit(&mut self) -> String {
        self.pick(FLOATS).to_string()
    }

    // ---- dims and types -------------------------------------------------

    /// A dim for a new value in the current function.
    fn dim(&mut self) -> Dim {
        if !self.pool_syms.is_empty() && self.rng.chance(55) {
            Dim::Sym(self.pick(&self.pool_syms.clone()))
        } else {
            Dim::Lit(1 + self.rng.below(6) as u32)
        }
    }

    /// A dim to bind a callee's symbolic dim to (at least `MIN_SYM`).
    fn big_dim(&mut self) -> Dim {
        if !self.pool_syms.is_empty() && self.rng.chance(60) {
            Dim::Sym(self.pick(&self.pool_syms.clone()))
        } else {
            Dim::Lit(MIN_SYM + self.rng.below(3) as u32)
        }
    }

    fn shape(&mut self) -> Vec<Dim> {
        // Mostly the shape of a value in scope, so that values get used.
        let known: Vec<Vec<Dim>> = self
            .scope
            .iter()
            .filter_map(|v| match &v.ty {
                Ty::Tensor(Dt::F32, d) if self.rest || !d.contains(&Dim::Rest) => Some(d.clone()),
                _ => None,
            })
            .collect();
        if !known.is_empty() && self.rng.chance(55) {
            return self.pick(&known);
        }
        if self.rest && self.rng.chance(50) {
            let mut d = vec![Dim::Rest];
            if self.rng.chance(60) {
                d.push(self.dim());
            }
            return d;
        }
        let rank = self.rng.below(4);
        (0..rank).map(|_| self.dim()).collect()
    }

    fn dim_text(&mut self, d: &Dim) -> String {
        match d {
            Dim::Lit(n) => {
                let names: Vec<String> = self.named.iter().filter(|(_, v)| v == n).map(|(s, _)| s.clone()).collect();
                if !names.is_empty() && self.rng.chance(60) {
                    self.hit("named dim");
                    self.pick(&names)
                } else {
                    n.to_string()
                }
            }
            Dim::Sym(s) => s.to_string(),
            Dim::Rest => "...".into(),
        }
    }

    fn type_text(&mut self, dims: &[Dim]) -> String {
        if dims.is_empty() && self.rng.chance(70) {
            return "f32".into();
        }
        if dims.first() == Some(&Dim::Rest) {
            self.hit("leading dims type");
        }
        let parts: Vec<String> = dims.iter().map(|d| self.dim_text(d)).collect();
        format!("f32[{}]", parts.join(", "))
    }

    /// A compile-time integer expression for dim `d` (a literal, a
    /// constant, or `size(v, axis)` of a value that has that dim).
    fn size_text(&mut self, d: &Dim) -> String {
        match d {
            Dim::Lit(_) => self.dim_text(d),
            Dim::Sym(s) => {
                let mut found = Vec::new();
                for v in &self.scope {
                    if let Ty::Tensor(_, dims) = &v.ty {
                        let has_rest = dims.first() == Some(&Dim::Rest);
                        for (i, x) in dims.iter().enumerate() {
                            if x == &Dim::Sym(s) {
                                let axis = if has_rest { i as i64 - dims.len() as i64 } else { i as i64 };
                                found.push(format!("size({}, {axis})", v.name));
                            }
                        }
                    }
                }
                self.hit("size");
                assert!(!found.is_empty(), "symbolic dim {s} is in no value in scope");
                // The first: a parameter's.
                found.swap_remove(0)
            }
            Dim::Rest => unreachable!("`...` has no size"),
        }
    }

    // ---- compile-time values -------------------------------------------

    fn cint(&mut self, tensor: bool) -> String {
        let mut opts: Vec<String> = vec![(self.rng.below(4)).to_string()];
        for v in &self.scope {
            if let Ty::Int { tensor_ok } = v.ty {
                // An `int` parameter is unknown when the function is checked
                // on its own, and the checker then reports values computed
                // from it (`x * k`; an `if k > 1` value inside `concat` or
                // `size`: see the report in the tests), so it is only passed.
                if tensor_ok && (tensor || !self.no_unknown_int) {
                    opts.push(v.name.clone());
                }
            }
        }
        for (n, t, _) in &self.consts {
            if matches!(t, Ty::Int { .. }) {
                opts.push(n.clone());
            }
        }
        let s = self.pick(&opts);
        if self.rng.chance(15) {
            let other = self.rng.below(3);
            format!("{} {} {other}", paren(s), if self.rng.chance(50) { "+" } else { "*" })
        } else {
            s
        }
    }

    /// The variables and consts in scope of compile-time type `ty`.
    fn names_of(&self, ty: &Ty) -> Vec<String> {
        let vars = self.scope.iter().filter(|v| v.ty == *ty).map(|v| v.name.clone());
        vars.chain(self.consts.iter().filter(|(_, t, _)| t == ty).map(|(n, _, _)| n.clone())).collect()
    }

    fn cfloat(&mut self) -> String {
        let mut opts: Vec<String> = vec![self.float_lit()];
        opts.extend(self.names_of(&Ty::Float));
        self.pick(&opts)
    }

    /// A compile-time bool.
    fn cbool(&mut self, depth: usize) -> String {
        let r = self.rng.below(if depth > 1 { 3 } else { 6 });
        match r {
            0 => {
                let mut opts = vec!["true".to_string(), "false".into()];
                opts.extend(self.names_of(&Ty::Bool));
                self.pick(&opts)
            }
            1 | 2 => {
                self.hit("compile-time comparison");
                let op = self.pick(&["<", "<=", ">", ">=", "==", "!="]);
                if self.rng.chance(30) {
                    let tensors: Vec<String> =
                        self.scope.iter().filter(|v| matches!(v.ty, Ty::Tensor(..))).map(|v| v.name.clone()).collect();
                    if !tensors.is_empty() {
                        self.hit("ndim");
                        let t = self.pick(&tensors);
                        return format!("ndim({t}) {op} {}", self.rng.below(3));
                    }
                }
                let (a, b) = (self.cint(false), self.cint(false));
                format!("{} {op} {}", paren(a), paren(b))
            }
            3 => {
                self.hit("compile-time not");
                format!("!{}", paren(self.cbool(depth + 1)))
            }
            _ => {
                self.hit("compile-time and/or");
                let op = if self.rng.chance(50) { "&&" } else { "||" };
                let (a, b) = (self.cbool(depth + 1), self.cbool(depth + 1));
                format!("{} {op} {}", paren(a), paren(b))
            }
        }
    }

    // ---- tensor expressions --------------------------------------------

    /// Vars of exactly this type.
    fn vars_of(&self, ty: &Ty) -> Vec<String> {
        self.scope.iter().filter(|v| &v.ty == ty).map(|v| v.name.clone()).collect()
    }

    /// A type that broadcasts against `dims` to give `dims`.
    fn partner(&mut self, dims: &[Dim]) -> Vec<Dim> {
        match self.rng.below(4) {
            0 => dims.to_vec(),
            1 => {
                let k = self.rng.below(dims.len() + 1);
                dims[k..].to_vec()
            }
            2 => dims
                .iter()
                .map(|d| if *d != Dim::Rest && self.rng.chance(40) { Dim::Lit(1) } else { d.clone() })
                .collect(),
            _ => vec![],
        }
    }

    /// A float tensor of `dims` built from nothing but its shape.
    fn filled(&mut self, dims: &[Dim]) -> String {
        self.hit("fill");
        if dims.first() == Some(&Dim::Rest) {
            // Every `...` function has a first parameter `x: f32[..., D]`.
            let base = self.rest_base();
            return match dims.len() {
                1 => format!("{base}[..., 0] * 0.0"),
                _ => format!("{base}[..., 0:1] * 0.0 + zeros({})", self.size_text(&dims[1])),
            };
        }
        if dims.is_empty() {
            return format!("sum(zeros({}))", 1 + self.rng.below(3));
        }
        let parts: Vec<String> = dims.iter().map(|d| self.size_text(d)).collect();
        let shape = if parts.len() == 1 && self.rng.chance(50) {
            parts[0].clone()
        } else if parts.len() == 1 {
            format!("({},)", parts[0])
        } else {
            format!("({})", parts.join(", "))
        };
        match self.rng.below(3) {
            0 => format!("zeros({shape})"),
            1 => format!("ones({shape})"),
            _ => format!("full({shape}, {})", self.float_lit()),
        }
    }

    fn rest_base(&self) -> String {
        self.scope
            .iter()
            .find(|v| matches!(&v.ty, Ty::Tensor(Dt::F32, d) if d.first() == Some(&Dim::Rest) && d.len() == 2))
            .map(|v| v.name.clone())
            .expect("a `...` parameter")
    }

    fn leaf(&mut self, dims: &[Dim]) -> String {
        let vars = self.vars_of(&Ty::Tensor(Dt::F32, dims.to_vec()));
        if !vars.is_empty() && self.rng.chance(85) {
            return self.pick(&vars);
        }
        if all_lit(dims) && self.rng.chance(50) {
            return self.literal_tensor(dims);
        }
        self.filled(dims)
    }

    /// Literal-only tensors: array literals, linspace, one_hot, arange.
    fn literal_tensor(&mut self, dims: &[Dim]) -> String {
        let lits: Vec<u32> = dims.iter().map(|d| if let Dim::Lit(n) = d { *n } else { 0 }).collect();
        match (lits.as_slice(), self.rng.below(4)) {
            ([n], 0) if *n >= 2 => {
                self.hit("linspace");
                format!("linspace({}, {}, {n})", self.float_lit(), self.float_lit())
            }
            ([n], 1) => {
                self.hit("arange");
                format!("float(arange({n}))")
            }
            ([k, n], 2) => {
                self.hit("one_hot");
                let labels: Vec<String> = (0..*k).map(|_| self.rng.below(*n as usize).to_string()).collect();
                format!("one_hot([{}], {n})", labels.join(", "))
            }
            (_, _) if lits.len() <= 2 && lits.iter().product::<u32>() <= 12 && !lits.is_empty() => {
                self.hit("array literal");
                if lits.len() == 1 {
                    let xs: Vec<String> = (0..lits[0]).map(|_| self.float_lit()).collect();
                    format!("[{}]", xs.join(", "))
                } else {
                    let rows: Vec<String> = (0..lits[0])
                        .map(|_| {
                            let xs: Vec<String> = (0..lits[1]).map(|_| self.float_lit()).collect();
                            format!("[{}]", xs.join(", "))
                        })
                        .collect();
                    format!("[{}]", rows.join(", "))
                }
            }
            _ => self.filled(dims),
        }
    }

    /// A float (f32) expression of shape `dims`.
    fn expr(&mut self, dims: &[Dim]) -> String {
        if self.fuel == 0 || self.depth > self.max_depth || self.rng.chance(25) {
            return self.leaf(dims);
        }
        self.fuel -= 1;
        self.depth += 1;
        let mut out = None;
        for _ in 0..6 {
            out = self.compound(dims);
            if out.is_some() {
                break;
            }
        }
        self.depth -= 1;
        out.unwrap_or_else(|| self.leaf(dims))
    }

    fn has_rest(dims: &[Dim]) -> bool {
        dims.first() == Some(&Dim::Rest)
    }

    fn compound(&mut self, dims: &[Dim]) -> Option<String> {
        let rest = Self::has_rest(dims);
        let rank = dims.len();
        Some(match self.rng.below(24) {
            0..=2 => {
                self.hit("arithmetic");
                let op = self.pick(&["+", "-", "*", "/"]);
                let a = self.expr(dims);
                let b = if self.rng.chance(25) {
                    self.hit("weak scalar");
                    if self.rng.chance(40) {
                        self.cint(true)
                    } else {
                        self.cfloat()
                    }
                } else {
                    self.hit("broadcasting");
                    let p = self.partner(dims);
                    self.expr(&p)
                };
                if self.rng.chance(50) {
                    format!("{} {op} {}", paren(a), paren(b))
                } else {
                    format!("{} {op} {}", paren(b), paren(a))
                }
            }
            3 => {
                self.hit("pow");
                let a = self.expr(dims);
                let e = match self.rng.below(3) {
                    0 => "2".to_string(),
                    1 => self.float_lit(),
                    _ => {
                        let p = self.partner(dims);
                        paren(self.expr(&p))
                    }
                };
                format!("{} ^ {e}", paren(a))
            }
            4 => {
                self.hit("negate");
                format!("-{}", paren(self.expr(dims)))
            }
            5 => {
                self.hit("elementwise builtin");
                let f = self.pick(UNARY);
                format!("{f}({})", self.expr(dims))
            }
            6 => {
                self.hit("nn activation");
                // (Over the last axis: a `...` may be empty, so a real one.)
                let f = if dims.iter().any(|d| *d != Dim::Rest) && self.rng.chance(30) {
                    self.pick(NN_ROW)
                } else {
                    self.pick(NN_UNARY)
                };
                self.nn.insert(f);
                format!("{f}({})", self.expr(dims))
            }
            7 => {
                self.hit("where");
                let (pc, pb) = (self.partner(dims), self.partner(dims));
                let c = self.bool_expr(&pc);
                let (a, b) = (self.expr(dims), self.expr(&pb));
                format!("where({c}, {a}, {b})")
            }
            8 => {
                self.hit("max/min of two");
                let f = self.pick(&["max", "min"]);
                let p = self.partner(dims);
                format!("{f}({}, {})", self.expr(dims), self.expr(&p))
            }
            9 | 10 => self.reduction(dims)?,
            11 => self.matmul(dims)?,
            12 => self.transpose(dims)?,
            13 | 14 => self.index(dims)?,
            15 => self.reshape(dims)?,
            16 => self.join(dims)?,
            17 | 18 => self.call(dims)?,
            19 => {
                self.hit("if expression");
                let c = self.cbool(0);
                let (a, b) = (self.expr(dims), self.expr(dims));
                if self.rng.chance(30) {
                    self.hit("else if");
                    let c2 = self.cbool(0);
                    let e = self.expr(dims);
                    format!("if {c} {{ {a} }} else if {c2} {{ {b} }} else {{ {e} }}")
                } else {
                    format!("if {c} {{ {a} }} else {{ {b} }}")
                }
            }
            20 => {
                self.hit("block expression");
                let mark = self.scope.len();
                let s = self.shape();
                let v = self.fresh("t");
                let e = self.expr(&s);
                self.scope.push(Var { name: v.clone(), ty: Ty::Tensor(Dt::F32, s) });
                let body = self.expr(dims);
                self.scope.truncate(mark);
                format!("{{ let {v} = {e}; {body} }}")
            }
            21 if !rest && rank >= 1 => self.vmap(dims),
            22 => self.grad_expr(dims),
            23 => self.jvp_expr(dims),
            _ => return None,
        })
    }

    fn bool_expr(&mut self, dims: &[Dim]) -> String {
        let vars = self.vars_of(&Ty::Tensor(Dt::Bool, dims.to_vec()));
        if !vars.is_empty() && self.rng.chance(50) {
            return self.pick(&vars);
        }
        match self.rng.below(if self.depth > 4 { 1 } else { 5 }) {
            0..=2 => {
                self.hit("tensor comparison");
                let op = self.pick(&["<", "<=", ">", ">=", "==", "!="]);
                let a = self.expr(dims);
                let b = if self.rng.chance(30) {
                    self.cfloat()
                } else {
                    let p = self.partner(dims);
                    self.expr(&p)
                };
                format!("{} {op} {}", paren(a), paren(b))
            }
            3 => {
                self.hit("tensor not");
                format!("!{}", paren(self.bool_expr(dims)))
            }
            _ => {
                self.hit("tensor and/or");
                let op = if self.rng.chance(50) { "&&" } else { "||" };
                let p = self.partner(dims);
                format!("{} {op} {}", paren(self.bool_expr(dims)), paren(self.bool_expr(&p)))
            }
        }
    }

    fn reduction(&mut self, dims: &[Dim]) -> Option<String> {
        let rest = Self::has_rest(dims);
        let f = self.pick(&["sum", "mean", "max", "min"]);
        let lo = usize::from(rest);
        match self.rng.below(4) {
            0 => {
                // All axes: a scalar from anything.
                if !dims.is_empty() {
                    return None;
                }
                self.hit("full reduction");
                let s = self.shape();
                Some(format!("{f}({})", self.expr(&s)))
            }
            1 => {
                // keepdims: a 1 in the result.
                let ones: Vec<usize> = (lo..dims.len()).filter(|&i| dims[i] == Dim::Lit(1)).collect();
                if ones.is_empty() {
                    return None;
                }
                self.hit("keepdims");
                let p = self.pick(&ones);
                let mut base = dims.to_vec();
                base[p] = self.dim();
                let axis = self.axis_text(p, dims.len(), rest);
                Some(format!("{f}({}, axis = {axis}, keepdims = true)", self.expr(&base)))
            }
            2 if !rest && dims.len() <= 2 => {
                self.hit("reduction over two axes");
                let mut base = dims.to_vec();
                let p = self.rng.below(dims.len() + 1);
                base.insert(p, self.dim());
                let q = self.rng.below(base.len() + 1);
                base.insert(q, self.dim());
                let (a, b) = if p < q { (p, q) } else { (q, p + 1) };
                Some(format!("{f}({}, axis = ({a}, {b}))", self.expr(&base)))
            }
            _ => {
                if rest && dims.len() > 1 {
                    // `...` types keep at most one trailing dim.
                    return None;
                }
                self.hit("reduction with axis");
                let p = lo + self.rng.below(dims.len() + 1 - lo);
                let mut base = dims.to_vec();
                base.insert(p, self.dim());
                let axis = self.axis_text(p, base.len(), rest);
                Some(format!("{f}({}, axis = {axis})", self.expr(&base)))
            }
        }
    }

    fn axis_text(&mut self, p: usize, rank: usize, rest: bool) -> String {
        if rest || self.rng.chance(40) {
            self.hit("negative axis");
            format!("-{}", rank - p)
        } else {
            p.to_string()
        }
    }

    fn matmul(&mut self, dims: &[Dim]) -> Option<String> {
        let k = self.dim();
        self.hit("matmul");
        let n = dims.len();
        let (a, b) = match n {
            0 => (vec![k.clone()], vec![k]),
            1 if dims[0] != Dim::Rest && self.rng.chance(50) => (vec![k.clone()], vec![k, dims[0].clone()]),
            1 => (vec![dims[0].clone(), k.clone()], vec![k]),
            _ => {
                let mut a = dims.to_vec();
                a[n - 1] = k.clone();
                let b = if n == 3 && !Self::has_rest(dims) && self.rng.chance(40) {
                    self.hit("batched matmul");
                    vec![dims[0].clone(), k, dims[2].clone()]
                } else {
                    vec![k, dims[n - 1].clone()]
                };
                (a, b)
            }
        };
        Some(format!("{} @ {}", paren(self.expr(&a)), paren(self.expr(&b))))
    }

    fn transpose(&mut self, dims: &[Dim]) -> Option<String> {
        if dims.len() < 2 || Self::has_rest(dims) {
            return None;
        }
        if dims.len() >= 3 && self.rng.chance(50) {
            self.hit("transpose with axes");
            let mut perm: Vec<usize> = (0..dims.len()).collect();
            for i in (1..perm.len()).rev() {
                let j = self.rng.below(i + 1);
                perm.swap(i, j);
            }
            let mut base = dims.to_vec();
            for (i, &p) in perm.iter().enumerate() {
                base[p] = dims[i].clone();
            }
            let ps: Vec<String> = perm.iter().map(|p| p.to_string()).collect();
            return Some(format!("transpose({}, ({}))", self.expr(&base), ps.join(", ")));
        }
        self.hit("transpose");
        let base: Vec<Dim> = dims.iter().rev().cloned().collect();
        let e = self.expr(&base);
        Some(if self.rng.chance(50) { format!("{}.T", paren(e)) } else { format!("transpose({e})") })
    }

    /// One index item giving a kept axis of `want` from an axis of `have`.
    fn slice_for(&mut self, want: &Dim) -> (Dim, String) {
        if let Dim::Lit(l) = *want {
            if self.rng.chance(65) {
                // A base axis of `n >= l` and a slice of length `l`.
                let (base, n, sym) = if self.rng.chance(40) && !self.pool_syms.is_empty() && l <= MIN_SYM {
                    (self.big_dim(), MIN_SYM, true)
                } else {
                    let n = l + self.rng.below(4) as u32;
                    (Dim::Lit(n), n, false)
                };
                let (n, l) = (n as i64, l as i64);
                if let (false, true) = (sym, self.rng.chance(35)) {
                    // Backwards.
                    self.hit("negative step");
                    let s = 1 + self.rng.below(2) as i64;
                    let lo = (l - 1) * s;
                    if lo > n - 1 {
                        return (Dim::Lit(l as u32), ":".into());
                    }
                    let a = lo + self.rng.below((n - lo) as usize) as i64;
                    let a_text = if a == n - 1 && self.rng.chance(50) {
                        String::new()
                    } else if self.rng.chance(30) {
                        (a - n).to_string()
                    } else {
                        a.to_string()
                    };
                    let r = self.rng.below(s as usize) as i64;
                    let b = a - (l - 1) * s - 1 - r;
                    let b_text = if b < 0 {
                        // Missing end: through element 0; length a / s + 1.
                        if a / s + 1 != l {
                            return (Dim::Lit(l as u32), ":".into());
                        }
                        String::new()
                    } else if self.rng.chance(30) {
                        (b - n).to_string()
                    } else {
                        b.to_string()
                    };
                    return (base, format!("{a_text}:{b_text}:-{s}"));
                }
                let s = if sym { 1 } else { 1 + self.rng.below(3) as i64 };
                let span = (l - 1) * s + 1;
                if span > n {
                    return (Dim::Lit(l as u32), ":".into());
                }
                let a = self.rng.below((n - span + 1) as usize) as i64;
                let b = a + span + self.rng.below(s as usize) as i64;
                let b = b.min(n);
                if sym && a + l == n && b == n && self.rng.chance(50) {
                    // `-k:` on a symbolic axis: a length that does not depend on it.
                    self.hit("negative start");
                    return (base, format!("-{l}:"));
                }
                // (`:2` on a symbolic axis gets a fresh dim from the checker,
                // not 2: the start is written there; see the tests.)
                let a_text = if a == 0 && !sym && self.rng.chance(50) {
                    String::new()
                } else if !sym && self.rng.chance(25) {
                    self.hit("negative start");
                    (a - n).to_string()
                } else {
                    a.to_string()
                };
                let b_text = if b == n && !sym && self.rng.chance(50) {
                    String::new()
                } else if !sym && b < n && self.rng.chance(25) {
                    (b - n).to_string()
                } else {
                    b.to_string()
                };
                if s > 1 {
                    self.hit("slice step");
                }
                self.hit("slice");
                let st = if s > 1 { format!(":{s}") } else { String::new() };
                return (base, format!("{a_text}:{b_text}{st}"));
            }
        }
        if self.rng.chance(40) {
            self.hit("reverse");
            (want.clone(), "::-1".into())
        } else {
            (want.clone(), ":".into())
        }
    }

    fn index(&mut self, dims: &[Dim]) -> Option<String> {
        let rest = Self::has_rest(dims);
        let mut base = Vec::new();
        let mut items = Vec::new();
        for d in dims {
            if *d == Dim::Rest {
                base.push(Dim::Rest);
                items.push("...".to_string());
                continue;
            }
            // Maybe an integer index before this axis.
            if !rest && self.rng.chance(25) {
                let (b, i) = self.int_index();
                base.push(b);
                items.push(i);
            }
            let (b, it) = self.slice_for(d);
            base.push(b);
            items.push(it);
        }
        if (!rest || dims.len() == 1) && (self.rng.chance(40) || items.iter().all(|i| i == ":" || i == "...")) {
            let (b, i) = self.int_index();
            base.push(b);
            items.push(i);
        }
        if !rest {
            // Trailing whole axes may be left out; a leading run of them may
            // be `...`.
            let lead = items.iter().take_while(|i| *i == ":").count();
            if lead >= 1 && lead < items.len() && self.rng.chance(30) {
                self.hit("ellipsis index");
                items.splice(0..lead, ["...".to_string()]);
            } else {
                while items.len() > 1 && items.last().is_some_and(|i| i == ":") && self.rng.chance(60) {
                    items.pop();
                }
            }
        } else {
            self.hit("ellipsis index");
        }
        let e = self.expr(&base);
        Some(format!("{}[{}]", paren(e), items.join(", ")))
    }

    fn int_index(&mut self) -> (Dim, String) {
        self.hit("integer index");
        let d = self.dim();
        let n = match d {
            Dim::Lit(n) => n as i64,
            _ => MIN_SYM as i64,
        };
        let i = self.rng.below((2 * n) as usize) as i64 - n;
        if i < 0 {
            self.hit("negative index");
        }
        (d, i.to_string())
    }

    fn reshape(&mut self, dims: &[Dim]) -> Option<String> {
        let total = numel(dims)?;
        if dims.is_empty() || total > 216 {
            return None;
        }
        if dims.len() == 2 && self.rng.chance(30) {
            // flatten: [a, b, c] -> [a, b * c]
            let Dim::Lit(m) = dims[1] else { return None };
            let f: Vec<u32> = (1..=m).filter(|d| m % d == 0).collect();
            let b = self.pick(&f);
            self.hit("flatten");
            return Some(format!("flatten({})", self.expr(&[dims[0].clone(), Dim::Lit(b), Dim::Lit(m / b)])));
        }
        self.hit("reshape");
        let base: Vec<Dim> = if self.rng.chance(50) {
            vec![Dim::Lit(total)]
        } else {
            let f: Vec<u32> = (1..=total).filter(|d| total % d == 0).collect();
            let a = self.pick(&f);
            vec![Dim::Lit(a), Dim::Lit(total / a)]
        };
        let inferred = self.rng.below(dims.len() + 2);
        let parts: Vec<String> =
            dims.iter().enumerate().map(|(i, d)| if i == inferred { "-1".into() } else { self.dim_text(d) }).collect();
        let shape = if parts.len() == 1 { format!("({},)", parts[0]) } else { format!("({})", parts.join(", ")) };
        Some(format!("reshape({}, {shape})", self.expr(&base)))
    }

    fn join(&mut self, dims: &[Dim]) -> Option<String> {
        if dims.is_empty() || Self::has_rest(dims) {
            return None;
        }
        let saved = self.no_unknown_int;
        self.no_unknown_int = true;
        let out = self.join_inner(dims);
        self.no_unknown_int = saved;
        out
    }

    fn join_inner(&mut self, dims: &[Dim]) -> Option<String> {
        let last = dims.len() - 1;
        let (p, axis) = if self.rng.chance(50) { (0, "0") } else { (last, "-1") };
        let Dim::Lit(n) = dims[p] else { return None };
        if self.rng.chance(50) && n <= 3 {
            self.hit("stack");
            let mut part = dims.to_vec();
            part.remove(p);
            let xs: Vec<String> = (0..n).map(|_| self.expr(&part)).collect();
            let tup = if n == 1 { format!("({},)", xs[0]) } else { format!("({})", xs.join(", ")) };
            Some(if axis == "0" && self.rng.chance(50) {
                format!("stack({tup})")
            } else {
                format!("stack({tup}, axis = {axis})")
            })
        } else if n >= 2 {
            self.hit("concat");
            let a = 1 + self.rng.below(n as usize - 1) as u32;
            let (mut x, mut y) = (dims.to_vec(), dims.to_vec());
            x[p] = Dim::Lit(a);
            y[p] = Dim::Lit(n - a);
            Some(format!("concat(({}, {}), axis = {axis})", self.expr(&x), self.expr(&y)))
        } else {
            None
        }
    }

    // ---- calls ----------------------------------------------------------

    /// Binds `pat` to `dims`; false when they cannot agree.
    fn unify(pat: &[Dim], dims: &[Dim], b: &mut Binding) -> bool {
        let (pat, dims) = if pat.first() == Some(&Dim::Rest) {
            let tail = pat.len() - 1;
            if dims.len() < tail {
                return false;
            }
            let prefix = dims[..dims.len() - tail].to_vec();
            // `...` binds to the caller's own `...` whole, or to plain dims.
            if prefix.len() > 1 && prefix[0] == Dim::Rest {
                return false;
            }
            match &b.rest {
                Some(r) if *r != prefix => return false,
                _ => b.rest = Some(prefix),
            }
            (&pat[1..], &dims[dims.len() - tail..])
        } else {
            (pat, dims)
        };
        if pat.len() != dims.len() {
            return false;
        }
        for (p, d) in pat.iter().zip(dims) {
            match (p, d) {
                (Dim::Lit(a), Dim::Lit(c)) if a == c => {}
                (Dim::Sym(s), d) => {
                    let ok = match d {
                        Dim::Sym(_) => true,
                        Dim::Lit(n) => *n >= MIN_SYM,
                        Dim::Rest => false,
                    };
                    if !ok {
                        return false;
                    }
                    match b.syms.iter().find(|(n, _)| n == s) {
                        Some((_, v)) if v != d => return false,
                        Some(_) => {}
                        None => b.syms.push((s, d.clone())),
                    }
                }
                _ => return false,
            }
        }
        true
    }

    fn subst(&mut self, pat: &[Dim], b: &mut Binding) -> Vec<Dim> {
        let mut out = Vec::new();
        for p in pat {
            match p {
                Dim::Rest => {
                    if b.rest.is_none() {
                        let r = if self.rest && self.rng.chance(50) {
                            vec![Dim::Rest]
                        } else {
                            (0..self.rng.below(2)).map(|_| self.dim()).collect()
                        };
                        b.rest = Some(r);
                    }
                    out.extend(b.rest.clone().unwrap());
                }
                Dim::Sym(s) => {
                    if !b.syms.iter().any(|(n, _)| n == s) {
                        let d = self.big_dim();
                        b.syms.push((s, d));
                    }
                    out.push(b.syms.iter().find(|(n, _)| n == s).unwrap().1.clone());
                }
                d => out.push(d.clone()),
            }
        }
        out
    }

    fn call_args(&mut self, f: &FnSig, b: &mut Binding) -> String {
        let mut args = Vec::new();
        let mut positional = true;
        for (name, kind) in &f.params {
            match kind {
                PKind::Tensor(pat) => {
                    let d = self.subst(pat, b);
                    args.push(self.expr(&d));
                }
                other => {
                    let value = match other {
                        PKind::Float => self.cfloat(),
                        PKind::Int => self.rng.below(4).to_string(),
                        _ => self.cbool(1),
                    };
                    match self.rng.below(3) {
                        0 if positional => args.push(value),
                        1 => {
                            positional = false;
                            self.hit("keyword argument");
                            args.push(format!("{name} = {value}"));
                        }
                        _ => {
                            self.hit("default argument");
                            positional = false;
                        }
                    }
                }
            }
        }
        args.join(", ")
    }

    fn call(&mut self, dims: &[Dim]) -> Option<String> {
        let cands: Vec<usize> =
            (0..self.fns.len()).filter(|&i| Self::unify(&self.fns[i].ret, dims, &mut Binding::default())).collect();
        if cands.is_empty() {
            return None;
        }
        let i = self.pick(&cands);
        let f = self.fns[i].clone();
        let mut b = Binding::default();
        Self::unify(&f.ret, dims, &mut b);
        self.hit("call");
        if f.params.iter().any(|(_, k)| matches!(k, PKind::Tensor(p) if p.iter().any(|d| matches!(d, Dim::Sym(_))))) {
            self.hit("generic call");
        }
        let args = self.call_args(&f, &mut b);
        Some(format!("{}({args})", f.name))
    }

    // ---- transformations -----------------------------------------------

    fn lambda_param(&mut self, dims: &[Dim]) -> (String, String) {
        let p = self.fresh("p");
        let text = if self.rng.chance(30) && !Self::has_rest(dims) {
            self.hit("typed lambda parameter");
            format!("{p}: {}", self.type_text(dims))
        } else {
            p.clone()
        };
        (p, text)
    }

    fn lambda_body(&mut self, params: &[(String, Vec<Dim>)], ret: &[Dim]) -> String {
        let mark = self.scope.len();
        for (p, d) in params {
            self.scope.push(Var { name: p.clone(), ty: Ty::Tensor(Dt::F32, d.clone()) });
        }
        let uses = params[0].1.clone();
        let body = if self.rng.chance(60) && (ret.is_empty() || ret == uses.as_slice()) {
            // Use the first parameter: `sum(p * e)` or `p * e`.
            let e = self.expr(&uses);
            let op = self.pick(&["*", "+", "-"]);
            if ret.is_empty() {
                let f = self.pick(&["sum", "mean"]);
                format!(" = {f}({} {op} {})", params[0].0, paren(e))
            } else {
                format!(" = {} {op} {}", params[0].0, paren(e))
            }
        } else if self.rng.chance(25) {
            self.hit("lambda block body");
            let s = self.shape();
            let v = self.fresh("t");
            let e = self.expr(&s);
            self.scope.push(Var { name: v.clone(), ty: Ty::Tensor(Dt::F32, s) });
            format!(" {{ let {v} = {e}; {} }}", self.expr(ret))
        } else {
            format!(" = {}", self.expr(ret))
        };
        self.scope.truncate(mark);
        body
    }

    fn vmap(&mut self, dims: &[Dim]) -> String {
        self.hit("vmap");
        let row = self.shape_no_rest();
        let (p, pt) = self.lambda_param(&row);
        let mut batched = vec![dims[0].clone()];
        batched.extend(row.clone());
        if self.rng.chance(30) {
            self.hit("vmap in_axes");
            let other = self.shape_no_rest();
            let (q, qt) = self.lambda_param(&other);
            let body = self.lambda_body(&[(p, row), (q, other.clone())], &dims[1..]);
            let (x, y) = (self.expr(&batched), self.expr(&other));
            format!("vmap(fn({pt}, {qt}){body}, in_axes = (0, None))({x}, {y})")
        } else {
            let body = self.lambda_body(&[(p, row)], &dims[1..]);
            format!("vmap(fn({pt}){body})({})", self.expr(&batched))
        }
    }

    fn shape_no_rest(&mut self) -> Vec<Dim> {
        let r = self.rest;
        self.rest = false;
        let s = self.shape();
        self.rest = r;
        s
    }

    /// `grad(fn(w) = scalar)(x)` or `value_and_grad(...)(x)[i]`.
    fn grad_expr(&mut self, dims: &[Dim]) -> String {
        let (p, pt) = self.lambda_param(dims);
        if dims.is_empty() && self.rng.chance(40) {
            // The value of value_and_grad: any argument type.
            let s = self.shape();
            let (q, qt) = self.lambda_param(&s);
            let body = self.lambda_body(&[(q, s.clone())], &[]);
            self.hit("value_and_grad");
            return format!("value_and_grad(fn({qt}){body})({})[0]", self.expr(&s));
        }
        let body = self.lambda_body(&[(p, dims.to_vec())], &[]);
        let x = self.expr(dims);
        if self.rng.chance(50) {
            self.hit("grad");
            format!("grad(fn({pt}){body})({x})")
        } else {
            self.hit("value_and_grad");
            format!("value_and_grad(fn({pt}){body})({x})[1]")
        }
    }

    fn jvp_expr(&mut self, dims: &[Dim]) -> String {
        self.hit("jvp");
        let s = self.shape();
        let (p, pt) = self.lambda_param(&s);
        let body = self.lambda_body(&[(p, s.clone())], dims);
        let (x, t) = (self.expr(&s), self.expr(&s));
        let i = self.rng.below(2);
        format!("jvp(fn({pt}){body}, ({x},), ({t},))[{i}]")
    }

    // ---- statements ------------------------------------------------------

    fn bind(&mut self, ty: Ty) -> String {
        let v = self.fresh("v");
        self.scope.push(Var { name: v.clone(), ty });
        v
    }

    /// Statements of a body; the final expression has shape `ret`.
    fn block_body(&mut self, ret: &[Dim], n: usize, indent: &str) -> String {
        let mut lines = Vec::new();
        let mark = self.scope.len();
        for _ in 0..n {
            let s = self.stmt(indent);
            lines.push(s);
        }
        lines.push(format!("{indent}{}", self.expr(ret)));
        self.scope.truncate(mark);
        lines.join("\n")
    }

    fn stmt(&mut self, indent: &str) -> String {
        match self.rng.below(12) {
            0..=3 => {
                self.hit("let");
                let s = self.shape();
                let e = self.expr(&s);
                let annot = if self.rng.chance(25) {
                    self.hit("let with type");
                    format!(": {}", self.type_text(&s))
                } else {
                    String::new()
                };
                let v = self.bind(Ty::Tensor(Dt::F32, s));
                format!("{indent}let {v}{annot} = {e}")
            }
            4 => {
                self.hit("tuple destructuring");
                let (s1, s2, s3) = (self.shape(), self.shape(), self.shape());
                let (e1, e2, e3) = (self.expr(&s1), self.expr(&s2), self.expr(&s3));
                if self.rng.chance(40) {
                    self.hit("nested tuple pattern");
                    let (a, b, c) = (
                        self.bind(Ty::Tensor(Dt::F32, s1)),
                        self.bind(Ty::Tensor(Dt::F32, s2)),
                        self.bind(Ty::Tensor(Dt::F32, s3)),
                    );
                    format!("{indent}let ({a}, ({b}, {c})) = ({e1}, ({e2}, {e3}))")
                } else {
                    let (a, b) = (self.bind(Ty::Tensor(Dt::F32, s1)), self.bind(Ty::Tensor(Dt::F32, s2)));
                    format!("{indent}let ({a}, {b}) = ({e1}, {e2})")
                }
            }
            5 => {
                self.hit("bool tensor let");
                let s = self.shape();
                let e = self.bool_expr(&s);
                let v = self.bind(Ty::Tensor(Dt::Bool, s));
                format!("{indent}let {v} = {e}")
            }
            6 => {
                let s = self.shape();
                let (p, pt) = self.lambda_param(&s);
                let body = self.lambda_body(&[(p, s.clone())], &[]);
                let x = self.expr(&s);
                self.hit("value_and_grad destructured");
                let (v, g) = (self.bind(Ty::Tensor(Dt::F32, vec![])), self.bind(Ty::Tensor(Dt::F32, s)));
                format!("{indent}let ({v}, {g}) = value_and_grad(fn({pt}){body})({x})")
            }
            7 => {
                let (s, r) = (self.shape(), self.shape());
                let (p, pt) = self.lambda_param(&s);
                let body = self.lambda_body(&[(p, s.clone())], &r);
                let (x, t) = (self.expr(&s), self.expr(&s));
                self.hit("jvp destructured");
                let (y, dy) = (self.bind(Ty::Tensor(Dt::F32, r.clone())), self.bind(Ty::Tensor(Dt::F32, r)));
                format!("{indent}let ({y}, {dy}) = jvp(fn({pt}){body}, ({x},), ({t},))")
            }
            8 => self.grad_of_fn(indent).unwrap_or_else(|| self.stmt(indent)),
            9 | 10 => {
                self.hit("for");
                let s = self.shape();
                let init = self.expr(&s);
                let acc = self.bind(Ty::Tensor(Dt::F32, s.clone()));
                let i = self.fresh("i");
                let lo = self.rng.below(3);
                let hi = if self.rng.chance(30) {
                    let ints: Vec<(String, u32)> = self
                        .consts
                        .iter()
                        .filter(|(_, t, v)| matches!(t, Ty::Int { .. }) && *v as usize > lo && *v <= 6)
                        .map(|(n, _, v)| (n.clone(), *v))
                        .collect();
                    if ints.is_empty() {
                        (lo + 1 + self.rng.below(3)).to_string()
                    } else {
                        self.pick(&ints).0
                    }
                } else {
                    (lo + 1 + self.rng.below(3)).to_string()
                };
                let mark = self.scope.len();
                self.scope.push(Var { name: i.clone(), ty: Ty::Int { tensor_ok: true } });
                let inner = format!("{indent}    ");
                let mut body = Vec::new();
                if self.rng.chance(40) {
                    let t = self.shape();
                    let e = self.expr(&t);
                    let v = self.bind(Ty::Tensor(Dt::F32, t));
                    body.push(format!("{inner}let {v} = {e}"));
                }
                self.hit("rebinding");
                let upd = self.expr(&s);
                let k = self.float_lit();
                body.push(format!("{inner}{acc} = {acc} * {k} + {}", paren(upd)));
                self.scope.truncate(mark);
                format!("{indent}let {acc} = {init}\n{indent}for {i} in {lo}..{hi} {{\n{}\n{indent}}}", body.join("\n"))
            }
            _ => {
                // Rebinding outside a loop.
                let vars: Vec<(String, Vec<Dim>)> = self
                    .scope
                    .iter()
                    .filter_map(|v| match &v.ty {
                        Ty::Tensor(Dt::F32, d) if v.name.starts_with('v') => Some((v.name.clone(), d.clone())),
                        _ => None,
                    })
                    .collect();
                if vars.is_empty() {
                    return self.stmt(indent);
                }
                self.hit("rebinding");
                let (v, d) = self.pick(&vars);
                format!("{indent}{v} = {}", self.expr(&d))
            }
        }
    }

    /// `let g = grad(f)(args)` of an earlier function with a scalar result.
    fn grad_of_fn(&mut self, indent: &str) -> Option<String> {
        let cands: Vec<usize> = (0..self.fns.len())
            .filter(|&i| {
                let f = &self.fns[i];
                f.ret.is_empty()
                    && !f.name.contains('.')
                    && f.params.iter().all(|(_, k)| matches!(k, PKind::Tensor(_)))
                    && !f.params.is_empty()
            })
            .collect();
        if cands.is_empty() {
            return None;
        }
        let i = self.pick(&cands);
        let f = self.fns[i].clone();
        let mut b = Binding::default();
        let mut args = Vec::new();
        let mut types = Vec::new();
        for (_, k) in &f.params {
            let PKind::Tensor(p) = k else { unreachable!() };
            let d = self.subst(p, &mut b);
            args.push(self.expr(&d));
            types.push(d);
        }
        let w = self.rng.below(f.params.len());
        self.hit("grad of a named function");
        let call = if w == 0 && self.rng.chance(50) {
            format!("grad({})", f.name)
        } else {
            self.hit("grad wrt");
            format!("grad({}, wrt = {})", f.name, f.params[w].0)
        };
        let v = self.bind(Ty::Tensor(Dt::F32, types[w].clone()));
        Some(format!("{indent}let {v} = {call}({})", args.join(", ")))
    }

    // ---- items -----------------------------------------------------------

    fn fn_item(&mut self, idx: usize, size: usize) -> String {
        let name = format!("f{idx}");
        self.scope.clear();
        self.counter = 0;
        self.fuel = 2 + 4 * size;
        let kind = self.rng.below(10);
        let generic = kind == 9;
        self.rest = kind >= 7 && kind < 9;
        let mut syms: Vec<&'static str> = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let s = self.pick(SYMS);
            if !syms.contains(&s) {
                syms.push(s);
            }
        }
        self.pool_syms = syms.clone();
        let mut params: Vec<(String, PKind)> = Vec::new();
        if self.rest {
            self.hit("leading dims function");
            let d = self.dim();
            params.push(("x".into(), PKind::Tensor(vec![Dim::Rest, d.clone()])));
            if self.rng.chance(50) {
                params.push(("w".into(), PKind::Tensor(vec![d.clone()])));
            }
            if self.rng.chance(30) {
                params.push(("y".into(), PKind::Tensor(vec![Dim::Rest, d])));
            }
        } else {
            for i in 0..1 + self.rng.below(3) {
                let rank = self.rng.below(4);
                let dims: Vec<Dim> = (0..rank).map(|_| self.dim()).collect();
                params.push((["x", "y", "z"][i].to_string(), PKind::Tensor(dims)));
            }
        }
        // Only dims some parameter binds are symbolic dims of the body.
        self.pool_syms
            .retain(|s| params.iter().any(|(_, k)| matches!(k, PKind::Tensor(d) if d.contains(&Dim::Sym(s)))));
        if !generic {
            if self.rng.chance(30) {
                params.push(("scale".into(), PKind::Float));
            }
            if self.rng.chance(20) {
                params.push(("k".into(), PKind::Int));
            }
            if self.rng.chance(20) {
                params.push(("flag".into(), PKind::Flag));
            }
        }
        let mut ptexts = Vec::new();
        for (n, k) in &params {
            let t = match k {
                PKind::Tensor(d) if generic => {
                    self.scope.push(Var { name: n.clone(), ty: Ty::Tensor(Dt::F32, d.clone()) });
                    n.clone()
                }
                PKind::Tensor(d) => {
                    self.hit("typed parameter");
                    if d.iter().any(|x| matches!(x, Dim::Sym(_))) {
                        self.hit("symbolic dims");
                    }
                    self.scope.push(Var { name: n.clone(), ty: Ty::Tensor(Dt::F32, d.clone()) });
                    let t = self.type_text(d);
                    format!("{n}: {t}")
                }
                PKind::Float => {
                    self.hit("default parameter");
                    self.scope.push(Var { name: n.clone(), ty: Ty::Float });
                    if self.rng.chance(50) {
                        format!("{n} = {}", self.float_lit())
                    } else {
                        format!("{n}: float = {}", self.float_lit())
                    }
                }
                PKind::Int => {
                    self.hit("default parameter");
                    self.scope.push(Var { name: n.clone(), ty: Ty::Int { tensor_ok: false } });
                    format!("{n}: int = {}", self.rng.below(4))
                }
                PKind::Flag => {
                    self.hit("default parameter");
                    self.scope.push(Var { name: n.clone(), ty: Ty::Bool });
                    format!("{n}: bool = {}", self.rng.chance(50))
                }
            };
            ptexts.push(t);
        }
        if generic {
            self.hit("untyped parameters");
        }
        let ret = self.shape();
        let ret_text = if !generic && self.rng.chance(65) {
            self.hit("return type");
            format!(" -> {}", self.type_text(&ret))
        } else {
            String::new()
        };
        let body = if self.rng.chance(35) {
            self.hit("= body");
            format!(" = {}", self.expr(&ret))
        } else {
            self.hit("block body");
            let n = self.rng.below(2 + size);
            format!(" {{\n{}\n}}", self.block_body(&ret, n, "    "))
        };
        self.fns.push(FnSig { name: name.clone(), params, ret });
        self.rest = false;
        format!("fn {name}({}){ret_text}{body}", ptexts.join(", "))
    }

    fn model_item(&mut self, idx: usize, size: usize) -> String {
        self.hit("model");
        let name = format!("Net{idx}");
        let d = 2 + self.rng.below(4) as u32;
        let n = 1 + self.rng.below(4) as u32;
        let mark = self.named.len();
        self.named.push(("width".into(), d));
        self.scope.clear();
        self.pool_syms = vec!["B"];
        self.rest = false;
        let init =
            self.pick(&["", " = glorot_uniform()", " = normal(0.02)", " = uniform(-0.1, 0.1)", " = he_normal()"]);
        let w_ty = self.type_text(&[Dim::Lit(d), Dim::Lit(n)]);
        let b_ty = self.type_text(&[Dim::Lit(n)]);
        let mut lines = vec![format!("    w: {w_ty}{init}"), format!("    b: {b_ty}")];
        let fns_mark = self.fns.len();
        // Methods: forward, then one that calls it.
        let x_ty = vec![Dim::Sym("B"), Dim::Lit(d)];
        let out = vec![Dim::Sym("B"), Dim::Lit(n)];
        self.scope.push(Var { name: "x".into(), ty: Ty::Tensor(Dt::F32, x_ty.clone()) });
        self.scope.push(Var { name: "self.w".into(), ty: Ty::Tensor(Dt::F32, vec![Dim::Lit(d), Dim::Lit(n)]) });
        self.scope.push(Var { name: "self.b".into(), ty: Ty::Tensor(Dt::F32, vec![Dim::Lit(n)]) });
        self.fuel = 4 + 2 * size;
        let xt = self.type_text(&x_ty);
        let ot = self.type_text(&out);
        let body = self.expr(&out);
        lines.push(String::new());
        lines.push(format!("    fn forward(self, x: {xt}) -> {ot} = x @ self.w + self.b + {}", paren(body)));
        let forward =
            FnSig { name: "self.forward".into(), params: vec![("x".into(), PKind::Tensor(x_ty.clone()))], ret: out };
        self.fns.push(forward.clone());
        self.fuel = 4 + 2 * size;
        let body = self.expr(&[]);
        lines.push(String::new());
        self.hit("method calling a method");
        lines.push(format!("    fn score(self, x: {xt}) -> f32 = sum(self.forward(x)) + {}", paren(body)));
        self.fns.truncate(fns_mark);
        self.named.truncate(mark);
        self.models.push(name.clone());
        format!("model {name}(width: int = {d}) {{\n{}\n}}", lines.join("\n"))
    }

    fn main_item(&mut self, size: usize) -> String {
        self.scope.clear();
        self.pool_syms.clear();
        self.rest = false;
        self.fuel = 8 + 4 * size;
        let mut lines = Vec::new();
        // No model instances: the generated models have parameters, which
        // exist only in training (`fn main` cannot make them); their
        // methods are checked on the model itself.
        let fns_mark = self.fns.len();
        let n = 1 + self.rng.below(2 + size);
        let body = self.block_body(&[], n, "    ");
        // print the last value and every tensor bound at the top.
        let printed = body.lines().last().unwrap().trim().to_string();
        let mut body_lines: Vec<&str> = body.lines().collect();
        body_lines.pop();
        lines.extend(body_lines.iter().map(|s| s.to_string()));
        self.hit("print");
        lines.push(format!("    print(\"result\", {printed})"));
        self.fns.truncate(fns_mark);
        format!("fn main() {{\n{}\n}}", lines.join("\n"))
    }

    fn program(&mut self, size: usize) -> Program {
        let mut items = Vec::new();
        // Constants.
        let mut const_lines = Vec::new();
        for i in 0..self.rng.below(4) {
            self.hit("const");
            match self.rng.below(4) {
                0 | 1 => {
                    let v = 1 + self.rng.below(6) as u32;
                    let name = format!("C{i}");
                    let smaller = self.consts.iter().find(|(_, t, x)| matches!(t, Ty::Int { .. }) && *x < v).cloned();
                    let text = match smaller {
                        Some((n, _, x)) if self.rng.chance(50) => {
                            self.hit("const expression");
                            format!("{n} + {}", v - x)
                        }
                        _ => v.to_string(),
                    };
                    const_lines.push(format!("const {name} = {text}"));
                    self.consts.push((name.clone(), Ty::Int { tensor_ok: true }, v));
                    self.named.push((name, v));
                }
                2 => {
                    let name = format!("LR{i}");
                    const_lines.push(format!("const {name} = {} / {}", self.float_lit(), 1 + self.rng.below(8)));
                    self.consts.push((name, Ty::Float, 0));
                }
                _ => {
                    let name = format!("FLAG{i}");
                    let v = self.cbool(1);
                    const_lines.push(format!("const {name} = {v}"));
                    self.consts.push((name, Ty::Bool, 0));
                }
            }
        }
        if !const_lines.is_empty() {
            items.push(const_lines.join("\n"));
        }
        let nfn = 1 + self.rng.below(1 + size);
        for i in 0..nfn {
            if self.rng.chance(15) {
                items.push(self.model_item(i, size));
            }
            items.push(self.fn_item(i, size));
        }
        if self.rng.chance(20) && self.models.is_empty() {
            items.push(self.model_item(nfn, size));
        }
        items.push(self.main_item(size));
        let mut text = String::new();
        if !self.nn.is_empty() {
            let names: Vec<&str> = self.nn.iter().copied().collect();
            text.push_str(&format!("use nn.{{{}}}\n\n", names.join(", ")));
        }
        text.push_str(&items.join("\n\n"));
        text.push('\n');
        Program { text, features: std::mem::take(&mut self.features) }
    }
}

#[derive(Default)]
struct Binding {
    syms: Vec<(&'static str, Dim)>,
    rest: Option<Vec<Dim>>,
}
