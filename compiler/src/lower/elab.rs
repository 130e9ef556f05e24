//! The elaborator: walks the AST once per use, computing values.
//!
//! In check mode (`builder == None`) tensors have front-end types with
//! possibly symbolic dims and no IR is built: that is type and shape
//! checking. In build mode every dim is known and each tensor operation
//! appends IR: that is lowering. One walk serves both, so the checker and
//! the lowering can never disagree about a rule.
//!
//! Functions are instantiated per call (like templates): a generic function
//! is checked with its arguments' types, and calls are inlined into the IR.

use super::leading_dims::{align, ellipsis_dims, split_ellipsis, ELLIPSIS};
use super::program::{Global, Program};
use super::value::{Callee, FnRef, LambdaVal, ModelInst, ParamSpec, TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, DType, ValueId};
use crate::span::Span;
use crate::syntax::ast::{self, Expr, ExprKind, Pattern, Stmt};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// The deepest call nesting allowed (recursion is not supported).
const MAX_CALL_DEPTH: usize = 64;

/// A value logged with `log(name, value)` inside a step method.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub name: String,
    pub value: TVal,
    pub prog_bar: bool,
    /// The `log(...)` call, for errors about the name.
    pub span: Span,
}

/// One `print(...)` call in `main`: strings and indices of printed outputs.
#[derive(Clone, Debug, PartialEq)]
pub enum PrintItem {
    Text(String),
    Value(usize),
    /// A tuple's items, printed as `(a, b)`.
    Tuple(Vec<PrintItem>),
}

pub struct Elaborator<'p> {
    pub prog: &'p Program,
    pub diags: Vec<Diagnostic>,
    /// Poison was made without an error in `diags`, on purpose: code the
    /// parser could not read (its error is the parser's), or a comparison
    /// of symbolic integers in check mode (known only at each call, where
    /// the function is checked again). Poison is then expected.
    pub silent_poison: bool,
    /// An `assert` just failed: the block it is in stops there (its later
    /// statements would only report what the assert already said).
    pub failed_assert: bool,
    /// `None` in check mode.
    pub builder: Option<Builder>,
    /// `Some` while elaborating a step method: where `log(...)` goes.
    pub logs: Option<Vec<LogEntry>>,
    /// `Some` while elaborating `on_train_end`: where `save_image(...)`
    /// and `save_plot(...)` go.
    pub artifacts: Option<Vec<super::artifacts::Artifact>>,
    /// `Some` while elaborating `main`: where `print(...)` goes.
    pub prints: Option<Vec<Vec<PrintItem>>>,
    pub printed: Vec<TVal>,
    /// Parameters collected while instantiating a model (build mode).
    pub param_specs: Vec<ParamSpec>,
    /// IR values of model parameters by path (build mode).
    pub param_values: HashMap<String, ValueId>,
    /// What `self.training` is: true while elaborating a training step
    /// (and everything it calls), false in every other program.
    pub training: bool,
    /// `Some` while elaborating a training step: the buffers `assign`
    /// gave new values, by path, in the order assigned.
    pub assigned: Option<Vec<Assigned>>,
    /// The calls of transformations being elaborated, innermost last
    /// (`transforming`).
    pub transformations: Vec<Span>,
    pub(crate) depth: usize,
    /// Set when `MAX_CALL_DEPTH` was exceeded; elaboration then winds down.
    pub(crate) recursion_limit_hit: bool,
    /// Fresh names for symbolic dims created while checking.
    pub(crate) fresh: usize,
    /// The names `fresh_dim` made (see `is_unknown`).
    unknown_dims: std::collections::HashSet<String>,
    /// What each `fresh_dim` stands for, by name.
    dim_origins: HashMap<String, String>,
    /// The `const`s being evaluated (module, item), innermost last: a const
    /// met again while on this stack depends on itself.
    consts_active: Vec<(usize, usize)>,
    /// Submodules made by `[Model(); n]` lists so far in the outermost
    /// model being instantiated (`MAX_LISTED_SUBMODULES`), and how deep
    /// instantiations nest now.
    listed_submodules: usize,
    instantiating: usize,
}

/// A buffer's new value from `assign(self, name = value)`.
#[derive(Clone, Debug)]
pub struct Assigned {
    pub path: String,
    pub value: TVal,
    pub span: Span,
}

/// At most this many submodules come from `[Model(); n]` lists in one
/// model, its submodules' lists included (nested lists multiply): a length of 10^12 would otherwise loop
/// for hours before running out of memory.
const MAX_LISTED_SUBMODULES: usize = 10_000;

/// Local variables of one function invocation.
pub struct Env {
    pub module: usize,
    scopes: Vec<HashMap<String, Val>>,
    /// Where each symbolic dim of the call was bound to its size (the
    /// argument's span, and the parameter's name), for the note of a later
    /// argument that does not fit it.
    dim_sites: HashMap<String, (Span, String)>,
}

impl Env {
    pub fn new(module: usize) -> Env {
        Env { module, scopes: vec![HashMap::new()], dim_sites: HashMap::new() }
    }
    pub fn bind(&mut self, name: &str, v: Val) {
        self.scopes.last_mut().expect("env has a scope").insert(name.to_string(), v);
    }
    pub fn lookup(&self, name: &str) -> Option<&Val> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }
    /// Rebinds an existing local (`x = ...`); false if there is none.
    fn rebind(&mut self, name: &str, v: Val) -> bool {
        for scope in self.scopes.iter_mut().rev() {
            if let Some(slot) = scope.get_mut(name) {
                *slot = v;
                return true;
            }
        }
        false
    }
    fn names(&self) -> Vec<String> {
        self.scopes.iter().flat_map(|s| s.keys().cloned()).collect()
    }
    /// Every visible variable, outer scopes first (a lambda's capture:
    /// binding them in this order lets inner bindings shadow outer ones).
    fn snapshot(&self) -> Vec<(String, Val)> {
        self.scopes.iter().flat_map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone()))).collect()
    }
}

impl<'p> Elaborator<'p> {
    pub fn new(prog: &'p Program, builder: Option<Builder>) -> Elaborator<'p> {
        Elaborator {
            prog,
            diags: Vec::new(),
            silent_poison: false,
            failed_assert: false,
            builder,
            logs: None,
            artifacts: None,
            prints: None,
            printed: Vec::new(),
            param_specs: Vec::new(),
            param_values: HashMap::new(),
            training: false,
            assigned: None,
            transformations: Vec::new(),
            depth: 0,
            recursion_limit_hit: false,
            fresh: 0,
            unknown_dims: Default::default(),
            dim_origins: HashMap::new(),
            consts_active: Vec::new(),
            listed_submodules: 0,
            instantiating: 0,
        }
    }

    pub fn error(&mut self, mut d: Diagnostic) -> Val {
        // A dim the checker made up (a slice's length) is explained where it shows.
        let words: std::collections::BTreeSet<&str> =
            d.message.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
        let mut explained: Vec<(&String, &String)> =
            self.dim_origins.iter().filter(|(n, _)| words.contains(n.as_str())).collect();
        explained.sort();
        for (name, origin) in explained {
            d = d.with_note(format!("`{name}` is {origin}"));
        }
        self.diags.push(d);
        Val::Poison
    }

    pub fn building(&self) -> bool {
        self.builder.is_some()
    }

    pub fn b(&mut self) -> &mut Builder {
        self.builder.as_mut().expect("IR builder in build mode")
    }

    // ---- statements and blocks ----

    pub fn block(&mut self, env: &mut Env, block: &ast::Block) -> Val {
        env.scopes.push(HashMap::new());
        let last = self.statements(env, block);
        env.scopes.pop();
        last
    }

    /// A block's statements in the current scope; the last one's value, or
    /// poison when a statement has a syntax error (the parser may have
    /// dropped the block's real last expression with it).
    fn statements(&mut self, env: &mut Env, block: &ast::Block) -> Val {
        let mut last = Val::Unit;
        let mut broken = false;
        for stmt in &block.stmts {
            broken |= matches!(stmt, Stmt::Expr(e) if matches!(e.kind, ExprKind::Error));
            last = self.stmt(env, stmt);
            if std::mem::take(&mut self.failed_assert) {
                return Val::Poison;
            }
        }
        if broken {
            self.silent_poison = true;
            return Val::Poison;
        }
        last
    }

    fn stmt(&mut self, env: &mut Env, stmt: &Stmt) -> Val {
        match stmt {
            Stmt::Let { pattern, ty, value, .. } => {
                let mut v = self.expr(env, value);
                if let Some(ty) = ty {
                    v = self.check_let_type(env, pattern, ty, v, value.span);
                }
                self.bind_pattern(env, pattern, v, value.span);
                Val::Unit
            }
            Stmt::Assign { name, value, .. } => {
                let v = self.expr(env, value);
                if env.lookup(&name.name).is_none() {
                    let mut d = Diagnostic::error(
                        Code::UnknownName,
                        format!("cannot assign to `{}`: no such variable", name.name),
                    )
                    .with_label(name.span, "not defined in this function");
                    d = d.with_help(format!("use `let {} = ...` to define a new variable", name.name));
                    return self.error(d);
                }
                let old = env.lookup(&name.name).cloned().expect("checked above");
                if let (Val::Tensor(a), Val::Tensor(b)) = (&old, &v) {
                    if a.ty != b.ty {
                        return self.error(
                            Diagnostic::error(
                                Code::TypeMismatch,
                                format!("`{}` changes type from {} to {}", name.name, a.ty, b.ty),
                            )
                            .with_label(value.span, format!("this is {}", b.ty))
                            .with_help("a rebinding must keep the variable's type; use `let` for a new variable"),
                        );
                    }
                }
                env.rebind(&name.name, v);
                Val::Unit
            }
            Stmt::For { var, start, end, body, span } => {
                let lo = self.expr(env, start);
                let hi = self.expr(env, end);
                let (lo, hi) = match (lo.as_i64(), hi.as_i64(), lo, hi) {
                    (Some(a), Some(b), _, _) => (a, b),
                    (_, _, Val::Poison, _) | (_, _, _, Val::Poison) => return Val::Poison,
                    // Bounds from `int` parameters of a function checked alone:
                    // like an `if` on them, the loop is checked at each call.
                    (_, _, Val::Int(_) | Val::NegInt(_), Val::Int(_) | Val::NegInt(_)) => return Val::Unit,
                    (_, _, a, b) => {
                        return self.error(
                            Diagnostic::error(
                                Code::TypeMismatch,
                                "a `for` range must have compile-time integer bounds",
                            )
                            .with_label(
                                start.span.to(end.span),
                                format!("this is {} .. {}", a.describe(), b.describe()),
                            ),
                        )
                    }
                };
                // Static loops are unrolled. In check mode one iteration checks
                // the body; the limit applies in both modes, so `jlc check`
                // reports what building would.
                let total = hi.saturating_sub(lo).max(0) as usize;
                const MAX_UNROLL: usize = 10_000;
                if total > MAX_UNROLL {
                    return self.error(
                        Diagnostic::error(
                            Code::NotAllowed,
                            format!("this loop runs {total} times; at most {MAX_UNROLL} are supported"),
                        )
                        .with_label(*span, "too many iterations"),
                    );
                }
                let count = if self.building() { total } else { total.min(1) };
                for i in 0..count {
                    env.scopes.push(HashMap::new());
                    env.bind(&var.name, Val::int(lo + i as i64));
                    for s in &body.stmts {
                        self.stmt(env, s);
                    }
                    env.scopes.pop();
                    if self.diags.len() > 100 {
                        break;
                    }
                }
                Val::Unit
            }
            Stmt::Expr(e) if matches!(e.kind, ExprKind::Error) => {
                // What the broken statement may have bound (`unparsed.rs`).
                for name in super::unparsed::names_in(&self.prog.sources, e.span) {
                    if !self.is_known(env, &name) {
                        env.bind(&name, Val::Poison);
                    }
                }
                self.expr(env, e)
            }
            Stmt::Expr(e) => self.expr(env, e),
        }
    }

    fn bind_pattern(&mut self, env: &mut Env, pattern: &Pattern, v: Val, span: Span) {
        match pattern {
            Pattern::Name(id) => env.bind(&id.name, v),
            Pattern::Tuple(pats, pspan) => match v {
                Val::Tuple(items) if items.len() == pats.len() => {
                    for (p, item) in pats.iter().zip(items) {
                        self.bind_pattern(env, p, item, span);
                    }
                }
                Val::Poison => {
                    for p in pats {
                        self.bind_pattern(env, p, Val::Poison, span);
                    }
                }
                other => {
                    self.error(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            format!("cannot destructure {} into {} names", other.describe(), pats.len()),
                        )
                        .with_label(*pspan, format!("expects a tuple of {}", pats.len()))
                        .with_label(span, format!("this is {}", other.describe())),
                    );
                    for p in pats {
                        self.bind_pattern(env, p, Val::Poison, span);
                    }
                }
            },
        }
    }

    // ---- expressions ----

    pub fn expr(&mut self, env: &mut Env, e: &Expr) -> Val {
        match &e.kind {
            ExprKind::Int(v) => {
                if *v < 0 {
                    Val::Poison
                } else {
                    Val::Int(Dim::Known(*v as usize))
                }
            }
            ExprKind::Float(x) => Val::Float(*x),
            ExprKind::Bool(b) => Val::Bool(*b),
            ExprKind::Str(s) => Val::Str(s.clone()),
            ExprKind::Name(name) => self.name(env, name, e.span),
            ExprKind::Unary(op, x) => {
                let v = self.expr(env, x);
                self.unary(*op, v, e.span)
            }
            ExprKind::Binary(op, a, b) => {
                let va = self.expr(env, a);
                let vb = self.expr(env, b);
                self.binary(*op, va, a.span, vb, b.span, e.span)
            }
            ExprKind::Call { callee, args } => {
                let f = self.expr(env, callee);
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    // `grad(f, wrt = (w, b))` names parameters: keep names unevaluated.
                    let v = if a.name.as_ref().is_some_and(|n| super::keywords::meant(&n.name, "wrt"))
                        && matches!(f, Val::Builtin("grad" | "value_and_grad" | "jacfwd" | "jacrev" | "hessian"))
                    {
                        match names_of(&a.value) {
                            Some(ns) => Val::Tuple(ns.into_iter().map(Val::Str).collect()),
                            None => self.error(
                                Diagnostic::error(
                                    Code::BadCall,
                                    "`wrt` names the parameters to differentiate, e.g. `wrt = w` or `wrt = (w, b)`",
                                )
                                .with_label(a.value.span, "not a parameter name"),
                            ),
                        }
                    } else if a.name.as_ref().is_some_and(|n| {
                        super::keywords::meant(&n.name, "in_axes") || super::keywords::meant(&n.name, "out_axes")
                    }) && matches!(f, Val::Builtin("vmap"))
                    {
                        super::vmap::in_axes_value(self, env, &a.value)
                    } else {
                        self.expr(env, &a.value)
                    };
                    vals.push(CallArg {
                        name: a.name.as_ref().map(|n| n.name.clone()),
                        name_span: a.name.as_ref().map(|n| n.span),
                        value: v,
                        span: a.value.span,
                    });
                }
                self.call(env, f, callee.span, vals, e.span)
            }
            ExprKind::Field(base, field) => {
                let v = self.expr(env, base);
                self.field(v, field, e.span)
            }
            ExprKind::Index { base, items } => {
                let v = self.expr(env, base);
                super::index::index(self, env, v, base.span, items, e.span)
            }
            ExprKind::Lambda(l) => Val::Lambda(Rc::new(LambdaVal {
                module: env.module,
                lambda: (**l).clone(),
                captured: env.snapshot(),
                span: e.span,
            })),
            ExprKind::Tuple(items) => Val::Tuple(items.iter().map(|x| self.expr(env, x)).collect()),
            ExprKind::Array(items) => super::array_literal::array(self, env, items, e.span),
            ExprKind::Block(b) => self.block(env, b),
            ExprKind::If { cond, then, otherwise } => match self.expr(env, cond) {
                Val::Bool(true) => self.block(env, then),
                Val::Bool(false) => match otherwise {
                    Some(b) => self.block(env, b),
                    None => Val::Unit,
                },
                Val::Poison => Val::Poison,
                other => self.error(
                    Diagnostic::error(Code::TypeMismatch, "an `if` condition must be known at compile time")
                        .with_label(cond.span, format!("this is {}", other.describe()))
                        .with_help("to choose between tensors element by element, use `where(cond, a, b)`"),
                ),
            },
            ExprKind::Error => {
                self.silent_poison = true;
                Val::Poison
            }
        }
    }

    /// Whether `name` resolves (a local, a global, a builtin, or a
    /// declaration the parser lost), without reporting anything.
    fn is_known(&self, env: &Env, name: &str) -> bool {
        let module = &self.prog.modules[env.module];
        env.lookup(name).is_some()
            || module.scope.contains_key(name)
            || module.unparsed.contains(name)
            || super::builtins::lookup(name).is_some()
    }

    fn name(&mut self, env: &Env, name: &str, span: Span) -> Val {
        if let Some(v) = env.lookup(name) {
            return v.clone();
        }
        match self.prog.modules[env.module].scope.get(name) {
            Some(Global::Fn { module, item }) => return Val::Fn(FnRef { module: *module, item: *item }),
            Some(Global::Model { module, item }) => return Val::ModelDecl { module: *module, item: *item },
            Some(Global::Const { module, item }) => return self.const_value(*module, *item, span),
            None => {}
        }
        if let Some(b) = super::builtins::lookup(name) {
            return Val::Builtin(b);
        }
        if self.prog.modules[env.module].unparsed.contains(name) {
            // Its declaration has a syntax error, reported already.
            self.silent_poison = true;
            return Val::Poison;
        }
        let mut candidates: Vec<String> = env.names();
        candidates.extend(self.prog.modules[env.module].scope.keys().cloned());
        candidates.extend(super::builtins::NAMES.iter().map(|s| s.to_string()));
        let mut d = Diagnostic::error(Code::UnknownName, format!("unknown name `{name}`"))
            .with_label(span, "not found in this scope");
        if let Some(help) = super::suggest::unknown_name_help(name, candidates.iter().map(|s| s.as_str())) {
            d = d.with_help(help);
        }
        self.error(d)
    }

    fn field(&mut self, base: Val, field: &ast::Ident, span: Span) -> Val {
        match base {
            Val::Model(m) => {
                if let Some(p) = m.params.get(&field.name) {
                    return Val::Tensor(p.clone());
                }
                if let Some(s) = m.subs.get(&field.name) {
                    return Val::Model(s.clone());
                }
                if let Some(&n) = m.lists.get(&field.name) {
                    let items = (0..n).map(|i| m.subs.get(&format!("{}.{i}", field.name)).cloned());
                    // A member that failed to instantiate was reported already
                    // (maybe while checking another function).
                    let items: Vec<Val> = items.map(|s| s.map_or(Val::Poison, Val::Model)).collect();
                    self.silent_poison |= items.iter().any(|v| matches!(v, Val::Poison));
                    return Val::Tuple(items);
                }
                if let Some(c) = m.config.get(&field.name) {
                    return c.clone();
                }
                let decl = self.prog.model_decl(m.module, m.item);
                if decl.methods.iter().any(|f| f.name.name == field.name) {
                    return Val::Method { model: m.clone(), name: field.name.clone() };
                }
                // PyTorch's `self.training`: known while compiling each program.
                if field.name == "training" && !decl.fields.iter().any(|f| f.name.name == "training") {
                    return Val::Bool(self.training);
                }
                if m.absent.contains(&field.name) {
                    let d = Diagnostic::error(
                        Code::UnknownName,
                        format!("`{}` is absent from this `{}`: its initializer gave `absent()`", field.name, m.name),
                    )
                    .with_label(field.span, "absent in this instance");
                    return self.error(d.with_help("use it only where its initializer makes it (the same condition)"));
                }
                if decl.fields.iter().any(|f| f.name.name == field.name) {
                    // Declared, but it failed to instantiate: reported there
                    // (maybe while checking another function).
                    self.silent_poison = true;
                    return Val::Poison;
                }
                let lost = self.prog.modules[m.module].unparsed_members.contains(&field.name);
                if lost || decl.broken_fields.iter().any(|f| f.name == field.name) {
                    // Its declaration has a syntax error, reported already.
                    self.silent_poison = true;
                    return Val::Poison;
                }
                let mut names: Vec<String> = m
                    .params
                    .keys()
                    .chain(m.subs.keys().filter(|k| !k.contains('.')))
                    .chain(m.lists.keys())
                    .chain(m.config.keys())
                    .cloned()
                    .collect();
                names.extend(decl.methods.iter().map(|f| f.name.name.clone()));
                let mut d = Diagnostic::error(
                    Code::UnknownName,
                    format!("model `{}` has no field or method `{}`", m.name, field.name),
                )
                .with_label(field.span, "unknown field");
                if let Some(s) = super::suggest::closest(&field.name, names.iter().map(|s| s.as_str())) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.error(d)
            }
            Val::Tensor(t) if field.name == "T" => self.transpose_all(t, span),
            Val::Poison => Val::Poison,
            other => self.error(
                Diagnostic::error(Code::TypeMismatch, format!("{} has no field `{}`", other.describe(), field.name))
                    .with_label(span, "no such field"),
            ),
        }
    }

    /// Instantiates a model declaration with constructor arguments.
    pub fn instantiate(&mut self, module: usize, item: usize, args: Vec<CallArg>, path: &str, span: Span) -> Val {
        let name = self.prog.model_decl(module, item).name.name.clone();
        if self.instantiating == 0 {
            self.listed_submodules = 0;
        }
        self.instantiating += 1;
        let model = self.nested(&name, span, "models", |el| el.instantiate_inner(module, item, args, path, span));
        self.instantiating -= 1;
        model
    }

    fn instantiate_inner(&mut self, module: usize, item: usize, args: Vec<CallArg>, path: &str, span: Span) -> Val {
        let decl = self.prog.model_decl(module, item);
        let Some(bound) = self.bind_args(&decl.name.name, &decl.config, args, span, module) else {
            return Val::Poison;
        };
        let mut env = Env::new(module);
        let mut config = BTreeMap::new();
        for (p, v) in decl.config.iter().zip(bound) {
            env.bind(&p.name.name, v.clone());
            config.insert(p.name.name.clone(), v);
        }
        let mut params = BTreeMap::new();
        let mut buffers = std::collections::BTreeSet::new();
        let mut absent = std::collections::BTreeSet::new();
        let mut subs = BTreeMap::new();
        let mut lists = BTreeMap::new();
        for field in &decl.fields {
            let field_path =
                if path.is_empty() { field.name.name.clone() } else { format!("{path}.{}", field.name.name) };
            match &field.kind {
                ast::FieldKind::Param { ty, init } => {
                    let Some(t) = self.resolve_type(&env, ty, true) else { continue };
                    let Some(ir_ty) = t.to_ir() else {
                        self.error(
                            Diagnostic::error(
                                Code::TypeMismatch,
                                format!("the shape of parameter `{}` must be known at compile time", field.name.name),
                            )
                            .with_label(ty.span, format!("this is {t}")),
                        );
                        continue;
                    };
                    // `buffer(init)`: a buffer, drawn by `init`, not trained.
                    let (init, trainable) = match init.as_ref().and_then(buffer_init) {
                        Some(inner) => (inner, false),
                        None => (init.as_ref(), true),
                    };
                    let init_val = match init {
                        Some(e) => self.expr(&mut env, e),
                        None => Val::Init(super::value::Init::Zeros),
                    };
                    let init = match init_val {
                        Val::Init(super::value::Init::Absent) => {
                            absent.insert(field.name.name.clone());
                            continue;
                        }
                        Val::Init(i) => i,
                        Val::Poison => continue,
                        other => {
                            self.error(
                                Diagnostic::error(Code::TypeMismatch, "a parameter's initializer must be an initializer such as `zeros()` or `uniform(-a, a)`")
                                    .with_label(init.as_ref().map_or(ty.span, |e| e.span), format!("this is {}", other.describe())),
                            );
                            continue;
                        }
                    };
                    if ir_ty.dtype != DType::F32 && ir_ty.dtype != DType::F64 {
                        self.error(
                            Diagnostic::error(
                                Code::TypeMismatch,
                                if trainable {
                                    "trainable parameters must be floating point"
                                } else {
                                    "buffers must be floating point (count in a float: `steps: f32[1] = buffer()`)"
                                },
                            )
                            .with_label(ty.span, format!("this is {t}")),
                        );
                        continue;
                    }
                    if matches!(init, super::value::Init::Orthogonal(_)) && ir_ty.shape.rank() < 2 {
                        self.error(
                            Diagnostic::error(
                                Code::TypeMismatch,
                                "`orthogonal()` initializes matrices: the parameter needs rank 2 or more",
                            )
                            .with_label(ty.span, format!("this is {t}")),
                        );
                        continue;
                    }
                    self.param_specs.push(ParamSpec {
                        path: field_path.clone(),
                        ty: ir_ty,
                        init,
                        kind: if trainable {
                            super::value::ParamKind::Trained
                        } else {
                            super::value::ParamKind::Buffer
                        },
                    });
                    if !trainable {
                        buffers.insert(field.name.name.clone());
                    }
                    let id = self.param_values.get(&field_path).copied();
                    // `prints` is set only in `fn main`: checking it
                    // refuses what building it would.
                    if id.is_none() && (self.building() || self.prints.is_some()) {
                        // Parameters get values only as inputs of a training
                        // program (the trainer draws them); `fn main` and
                        // other scripts have none to give.
                        return self.error(
                            Diagnostic::error(
                                Code::NotAllowed,
                                format!("model `{}` has trainable parameters, which exist only in training", decl.name.name),
                            )
                            .with_label(span, "instantiated outside the trainer")
                            .with_label(field.name.span, format!("parameter `{field_path}`"))
                            .with_help("train it with a `trainer` section (`model = ...`), or pass tensors to a plain function"),
                        );
                    }
                    params.insert(field.name.name.clone(), TVal { ty: t, id });
                }
                ast::FieldKind::Submodule { model, args, count, span } => {
                    let target = match self.prog.modules[module].scope.get(&model.name) {
                        Some(Global::Model { module, item }) => (*module, *item),
                        // Its declaration has a syntax error, reported already.
                        _ if self.prog.modules[module].unparsed.contains(&model.name) => {
                            self.silent_poison = true;
                            continue;
                        }
                        _ => {
                            let names: Vec<&str> = self.prog.modules[module]
                                .scope
                                .iter()
                                .filter(|(_, g)| matches!(g, Global::Model { .. }))
                                .map(|(k, _)| k.as_str())
                                .collect();
                            let mut d = Diagnostic::error(Code::UnknownName, format!("unknown model `{}`", model.name))
                                .with_label(model.span, "not a model in scope");
                            if let Some(help) = super::suggest::unknown_name_help(&model.name, names.into_iter()) {
                                d = d.with_help(help);
                            }
                            self.error(d);
                            continue;
                        }
                    };
                    let vals: Vec<CallArg> = args
                        .iter()
                        .map(|a| {
                            let v = self.expr(&mut env, &a.value);
                            CallArg {
                                name: a.name.as_ref().map(|n| n.name.clone()),
                                name_span: a.name.as_ref().map(|n| n.span),
                                value: v,
                                span: a.value.span,
                            }
                        })
                        .collect();
                    let Some(count) = count else {
                        if let Val::Model(m) = self.instantiate(target.0, target.1, vals, &field_path, *span) {
                            subs.insert(field.name.name.clone(), m);
                        }
                        continue;
                    };
                    // `[Model(args); n]`: n independent instances, stored as
                    // submodules `name.0`, `name.1`, ... (PyTorch's ModuleList
                    // paths), read back as a tuple by `self.name`.
                    let n = match self.expr(&mut env, count) {
                        Val::Int(Dim::Known(n)) => n,
                        Val::Poison => continue,
                        other => {
                            self.error(
                                Diagnostic::error(
                                    Code::TypeMismatch,
                                    "the length of a submodule list must be a compile-time integer",
                                )
                                .with_label(count.span, format!("this is {}", other.describe())),
                            );
                            continue;
                        }
                    };
                    if n > MAX_LISTED_SUBMODULES - self.listed_submodules {
                        let so_far = if self.listed_submodules > 0 {
                            format!(" (after {} made by other lists of this model)", self.listed_submodules)
                        } else {
                            String::new()
                        };
                        self.error(
                            Diagnostic::error(
                                Code::NotAllowed,
                                format!(
                                    "this list makes {n} submodules{so_far}; at most {MAX_LISTED_SUBMODULES} are supported"
                                ),
                            )
                            .with_label(count.span, "too many submodules"),
                        );
                        continue;
                    }
                    self.listed_submodules += n;
                    // Every instance, also in check mode: its parameters'
                    // paths are collected there for the build.
                    for i in 0..n {
                        let key = format!("{}.{i}", field.name.name);
                        let path = format!("{field_path}.{i}");
                        if let Val::Model(m) = self.instantiate(target.0, target.1, vals.clone(), &path, *span) {
                            subs.insert(key, m);
                        }
                        // A broken submodule reports once per instance: stop early.
                        if self.diags.len() > 100 {
                            break;
                        }
                    }
                    lists.insert(field.name.name.clone(), n);
                }
            }
        }
        Val::Model(Rc::new(ModelInst {
            name: decl.name.name.clone(),
            module,
            item,
            path: path.to_string(),
            config,
            params,
            buffers,
            absent,
            subs,
            lists,
            span,
        }))
    }

    /// Resolves a written type in `env` (config values and bound dims).
    /// `bind_free`: unknown dim names become symbolic dims (checking a
    /// signature) instead of errors.
    pub fn resolve_type(&mut self, env: &Env, ty: &ast::TypeExpr, bind_free: bool) -> Option<Ty> {
        let dtype = match ty.name.name.as_str() {
            // One float dtype per call (`float_dtype`); checking a signature
            // on its own, the f32 instance.
            "float" => float_dtype(env).unwrap_or(DType::F32),
            "f32" => DType::F32,
            "f64" => DType::F64,
            "i32" | "int" => DType::I32,
            "bool" => DType::Bool,
            other => {
                let mut d = Diagnostic::error(Code::UnknownName, format!("unknown type `{other}`"))
                    .with_label(ty.name.span, "not a type");
                if let Some(s) =
                    super::suggest::closest(other, ["f32", "f64", "i32", "bool", "int", "float"].into_iter())
                {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.error(d);
                return None;
            }
        };
        let mut dims = Vec::new();
        for d in ty.dims.iter().flatten() {
            match d {
                ast::DimExpr::Product(factors, _) => {
                    let mut parts = Vec::new();
                    for f in factors {
                        let one = ast::TypeExpr { name: ty.name.clone(), dims: Some(vec![f.clone()]), span: ty.span };
                        parts.push(self.resolve_type(env, &one, bind_free)?.dims.remove(0));
                    }
                    dims.push(Dim::product(&parts));
                }
                ast::DimExpr::Lit(n, _) => dims.push(Dim::Known(*n as usize)),
                ast::DimExpr::Ellipsis(span) => match ellipsis_dims(env) {
                    Some(lead) => dims.extend(lead),
                    // A generic signature is checked with one symbolic
                    // leading dim: an instance the signature promises to
                    // accept, so an error found with it is a real one.
                    None if bind_free => dims.push(Dim::Sym(ELLIPSIS.into())),
                    None => {
                        self.error(
                            Diagnostic::error(Code::UnknownName, "`...` is not bound here")
                                .with_label(*span, "no earlier type gave the leading dims")
                                .with_help("write the dims out, or take them from a parameter typed `f32[..., D]`"),
                        );
                        return None;
                    }
                },
                ast::DimExpr::Name(id) => match self.dim_binding(env, &id.name, id.span) {
                    Some(Val::Int(dim)) => dims.push(dim.clone()),
                    Some(Val::Poison) => return None,
                    Some(other) => {
                        let (code, msg) = match other {
                            Val::NegInt(n) => (Code::ShapeMismatch, format!("is {n}: a dimension cannot be negative")),
                            other => (Code::TypeMismatch, format!("is {}, not an integer", other.describe())),
                        };
                        self.error(
                            Diagnostic::error(code, format!("dimension `{}` {msg}", id.name))
                                .with_label(id.span, "used as a dimension"),
                        );
                        return None;
                    }
                    None if bind_free => dims.push(Dim::Sym(id.name.clone())),
                    None => {
                        self.error(
                            Diagnostic::error(Code::UnknownName, format!("unknown dimension `{}`", id.name))
                                .with_label(id.span, "not bound here"),
                        );
                        return None;
                    }
                },
            }
        }
        Some(Ty { dtype, dims })
    }

    /// Function values: calls of named functions, methods, models, builtins
    /// and transformations.
    pub fn call(&mut self, env: &mut Env, f: Val, f_span: Span, args: Vec<CallArg>, span: Span) -> Val {
        match f {
            Val::ModelDecl { module, item } => self.instantiate(module, item, args, "", span),
            Val::Fn(r) => self.call_fn(r, None, args, span),
            Val::Method { model, name } => {
                let decl = self.prog.model_decl(model.module, model.item);
                let idx = decl.methods.iter().position(|m| m.name.name == name).expect("method exists");
                self.call_method(model.clone(), idx, args, span)
            }
            Val::Model(m) => {
                let decl = self.prog.model_decl(m.module, m.item);
                let lost = &self.prog.modules[m.module].unparsed_members;
                match decl.methods.iter().position(|f| f.name.name == "__call__" || f.name.name == "forward") {
                    Some(idx) => self.call_method(m.clone(), idx, args, span),
                    // Declared with a syntax error, reported already.
                    None if lost.contains("__call__") || lost.contains("forward") => {
                        self.silent_poison = true;
                        Val::Poison
                    }
                    None => self.error(
                        Diagnostic::error(
                            Code::BadCall,
                            format!("model `{}` cannot be called: it has no `__call__` or `forward` method", m.name),
                        )
                        .with_label(f_span, "called here"),
                    ),
                }
            }
            Val::Builtin(name) => super::builtins::call(self, env, name, args, span),
            Val::Grad { f, wrt, with_value, has_aux } => self
                .transforming(span, |el| super::transform::call_grad(el, f, &wrt, (with_value, has_aux), args, span)),
            Val::Jacobian { f, wrt, mode } => {
                self.transforming(span, |el| super::jacobian::call_jacobian(el, f, &wrt, mode, args, span))
            }
            Val::Lambda(l) => self.call_lambda(l, args, span),
            Val::Pullback { f, primals, out } => {
                self.transforming(span, |el| super::transform::call_pullback(el, f, primals, &out, args, span))
            }
            Val::Vmap { f, in_axes, axes_span, out_axes } => self.transforming(span, |el| {
                let out = super::vmap::call_vmap(el, env, &f, &in_axes, axes_span, args, span);
                super::vmap::place_batch_axes(el, out, &out_axes, span)
            }),
            Val::Checkpoint { f } => {
                self.transforming(span, |el| super::checkpoint::call_checkpoint(el, env, &f, args, span))
            }
            Val::CustomVjp(rule) => {
                self.transforming(span, |el| super::custom_vjp::call_custom_vjp(el, env, &rule, args, span))
            }
            Val::Poison => Val::Poison,
            other => self.error(
                Diagnostic::error(Code::BadCall, format!("{} is not a function", other.describe()))
                    .with_label(f_span, "called here"),
            ),
        }
    }

    /// Runs `f`, the call of a transformation (`grad`, `vmap`, `scan`, ...)
    /// at `span`: the functions it transforms are lowered on their own, so
    /// `assign` inside them is refused (`buffers::assign`), pointing here.
    pub fn transforming(&mut self, span: Span, f: impl FnOnce(&mut Self) -> Val) -> Val {
        self.transformations.push(span);
        let v = f(self);
        self.transformations.pop();
        v
    }

    pub fn call_method(&mut self, model: Rc<ModelInst>, idx: usize, args: Vec<CallArg>, span: Span) -> Val {
        let r = FnRef { module: model.module, item: idx };
        self.call_fn_decl(
            r,
            self.prog.model_decl(model.module, model.item).methods.get(idx).expect("method"),
            Some(model),
            args,
            span,
        )
    }

    pub fn call_fn(&mut self, r: FnRef, model: Option<Rc<ModelInst>>, args: Vec<CallArg>, span: Span) -> Val {
        let decl = self.prog.fn_decl(r.module, r.item);
        self.call_fn_decl(r, decl, model, args, span)
    }

    /// Guards against unbounded recursion: a call, a default argument that
    /// calls its own function (`fn f(x = f()) = x`), or a model that
    /// contains itself (`model M { s: M() }`) all nest through here.
    fn nested(&mut self, name: &str, span: Span, what: &str, f: impl FnOnce(&mut Self) -> Val) -> Val {
        // Once the limit was hit, every further call gives up at once:
        // recursion that branches (`fn f(x = f()) { f() }`) would otherwise
        // make exponentially many calls on the way back up.
        if self.recursion_limit_hit {
            return Val::Poison;
        }
        if self.depth >= MAX_CALL_DEPTH {
            self.recursion_limit_hit = true;
            return self.error(
                Diagnostic::error(
                    Code::NotAllowed,
                    format!("calls nest deeper than {MAX_CALL_DEPTH} levels at `{name}`"),
                )
                .with_label(span, "in this call")
                .with_note(format!("recursive {what} are not supported")),
            );
        }
        self.depth += 1;
        let res = f(self);
        self.depth -= 1;
        res
    }

    fn call_fn_decl(
        &mut self,
        r: FnRef,
        decl: &'p ast::FnDecl,
        model: Option<Rc<ModelInst>>,
        args: Vec<CallArg>,
        span: Span,
    ) -> Val {
        self.nested(&decl.name.name, span, "functions", |el| el.call_fn_decl_inner(r, decl, model, args, span))
    }

    fn call_fn_decl_inner(
        &mut self,
        r: FnRef,
        decl: &'p ast::FnDecl,
        model: Option<Rc<ModelInst>>,
        args: Vec<CallArg>,
        span: Span,
    ) -> Val {
        let mut env = Env::new(r.module);
        let params: Vec<ast::Param> = decl.params.iter().filter(|p| p.name.name != "self").cloned().collect();
        if let Some(m) = &model {
            env.bind("self", Val::Model(m.clone()));
            for (k, v) in &m.config {
                env.bind(k, v.clone());
            }
        }
        // `log` belongs to step methods themselves (as checking a method
        // alone finds it): a helper's body runs without the step's list, so
        // a helper that logs is an error whether or not its types are written.
        let name = &decl.name.name;
        let is_step = name.ends_with("_step") || name == super::artifacts::HOOK;
        let step_logs = if is_step { None } else { Some(self.logs.take()) };
        // A layer called as `self.head(x)` is named so in errors about its
        // arguments (`__call__` of which model was unclear).
        let shown = match &model {
            Some(m) if name == "__call__" && m.path.is_empty() => "self".to_string(),
            Some(m) if name == "__call__" => format!("self.{}", m.path),
            _ => name.clone(),
        };
        let (before, arg_spans): (usize, Vec<Span>) = (self.diags.len(), args.iter().map(|a| a.span).collect());
        let res = self.call_body(&shown, &params, decl.ret.as_ref(), &decl.body, env, args, span);
        // An argument that does not fit a layer: show the layer's field too
        // (`head: Linear(16, 10)` is usually the line to change).
        if let Some(m) = model.as_ref().filter(|m| name == "__call__" && !m.path.is_empty()) {
            for d in &mut self.diags[before..] {
                let about_an_argument = d.primary_span().is_some_and(|s| arg_spans.contains(&s));
                if d.is_error() && about_an_argument && !d.labels.iter().any(|(s, _)| *s == m.span) {
                    d.labels.push((m.span, format!("`{shown}` is this {}", m.name)));
                }
            }
        }
        if let Some(logs) = step_logs {
            self.logs = logs;
        }
        res
    }

    /// Calls a lambda: its body runs in the scope it captured.
    pub fn call_lambda(&mut self, l: Rc<LambdaVal>, args: Vec<CallArg>, span: Span) -> Val {
        self.nested("fn(...)", span, "functions", |el| {
            let mut env = Env::new(l.module);
            for (k, v) in &l.captured {
                env.bind(k, v.clone());
            }
            el.call_body("fn(...)", &l.lambda.params, l.lambda.ret.as_ref(), &l.lambda.body, env, args, span)
        })
    }

    /// Calls a named function or a lambda.
    pub fn call_callee(&mut self, f: &Callee, args: Vec<CallArg>, span: Span) -> Val {
        match f {
            Callee::Named(r) => self.call_fn(*r, None, args, span),
            Callee::Lambda(l) => self.call_lambda(l.clone(), args, span),
            // Calling a function value needs no scope: `env` only reaches builtins, which ignore it.
            Callee::Value(v) => self.call(&mut Env::new(0), (**v).clone(), span, args, span),
        }
    }

    /// The name (for messages) and parameters of a callee.
    pub fn callee_sig(&self, f: &Callee) -> (String, Vec<ast::Param>) {
        match f {
            Callee::Named(r) => {
                let d = self.prog.fn_decl(r.module, r.item);
                (format!("`{}`", d.name.name), d.params.clone())
            }
            Callee::Lambda(l) => ("the anonymous function".into(), l.lambda.params.clone()),
            Callee::Value(v) => super::transform::value_sig(self, v).expect("made by callee_of_value"),
        }
    }

    /// Binds arguments to parameters in `env` (checking declared types) and
    /// elaborates the body, checking the declared return type.
    #[allow(clippy::too_many_arguments)]
    fn call_body(
        &mut self,
        name: &str,
        params: &[ast::Param],
        ret: Option<&ast::TypeExpr>,
        body: &Expr,
        mut env: Env,
        args: Vec<CallArg>,
        span: Span,
    ) -> Val {
        let Some(bound) = self.bind_args(name, params, args.clone(), span, env.module) else {
            return Val::Poison;
        };
        // Check declared parameter types, binding symbolic dims as we go.
        // A value's span: its keyword argument, else its positional one, else
        // the default it took (keyword arguments come in any order).
        let mut positional = args.iter().filter(|a| a.name.is_none());
        for (p, v) in params.iter().zip(bound.iter()) {
            let keyword = args.iter().find(|a| a.name.as_deref() == Some(p.name.name.as_str()));
            let arg_span = match keyword {
                Some(a) => a.span,
                None => positional.next().map(|a| a.span).or(p.default.as_ref().map(|e| e.span)).unwrap_or(span),
            };
            let v = match &p.ty {
                Some(ty) => self.coerce_to_declared(&mut env, ty, v.clone(), arg_span, name, &p.name),
                None => v.clone(),
            };
            env.bind(&p.name.name, v);
        }
        // Poison in, poison out: the call itself was checked (arguments,
        // their types), but a body given an argument whose error was
        // reported would only report consequences (a generic function's dims
        // left unbound). A function is also checked on its declared types.
        if args.iter().any(|a| matches!(a.value, Val::Poison)) {
            return Val::Poison;
        }
        let before = self.diags.len();
        // A failed `assert` stops its own function's block, not the caller's
        // (a body without a block leaves the flag set: cleared here).
        let outer_assert = std::mem::take(&mut self.failed_assert);
        // A body block's scope stays open for the return type: dims its
        // top-level `let` annotations bound (`H`, `...`) hold "for the rest
        // of the function", which the declared return type is part of.
        let res = match &body.kind {
            ExprKind::Block(b) => {
                env.scopes.push(HashMap::new());
                self.statements(&mut env, b)
            }
            _ => self.expr(&mut env, body),
        };
        self.failed_assert = outer_assert;
        // An error inside a function of another file (a stdlib module, an
        // imported file) also points at the call that led there: the user
        // sees their own line, not only library code. One label per file
        // crossed, so a deep chain of calls stays short.
        for d in &mut self.diags[before..] {
            if d.labels.iter().all(|(s, _)| s.file != span.file) {
                d.labels.push((span, format!("in this call of `{name}`")));
            }
        }
        // Dim names the parameters bound (`B`, an `int`, a config value) must
        // match exactly; a new name (`-> f32[B, H2]`) names the dim it meets,
        // as in a `let` annotation.
        if let (Some(ret), Val::Tensor(t)) = (ret, &res) {
            if let Some(want) = self.resolve_type(&env, ret, true) {
                let (fits, note, _) = self.dims_fit(&env, ret, want.dtype, &t.ty);
                if !fits {
                    let mut d = Diagnostic::error(
                        Code::TypeMismatch,
                        format!("`{name}` returns {} but declares {}", t.ty, want),
                    )
                    .with_label(tail_span(body), format!("this is {}", t.ty))
                    .with_label(ret.span, format!("declared as {want}"));
                    if let Some(n) = note {
                        d = d.with_note(n);
                    }
                    return self.error(d);
                }
            }
        }
        res
    }

    /// `let name: ty = v`: `v` must have type `ty`. Dims of `ty` already
    /// bound (or literals) must match; new dim names are bound to `v`'s dims.
    fn check_let_type(&mut self, env: &mut Env, pattern: &Pattern, ty: &ast::TypeExpr, v: Val, span: Span) -> Val {
        let Pattern::Name(name) = pattern else {
            return self.error(
                Diagnostic::error(Code::TypeMismatch, "a type annotation needs a single name: `let x: f32[N] = ...`")
                    .with_label(ty.span, "annotates a tuple pattern"),
            );
        };
        // A compile-time number keeps its kind under `int` / `float`, and
        // becomes a scalar tensor under a dtype (`let lr: f32 = 0.1`), as
        // an argument does.
        let number = matches!(v, Val::Float(_) | Val::Int(Dim::Known(_)) | Val::NegInt(_) | Val::Bool(_));
        let v = match (ty.name.name.as_str(), &ty.dims, v) {
            ("int", None, v @ (Val::Int(_) | Val::NegInt(_))) | ("float", None, v @ Val::Float(_)) => return v,
            ("float", None, Val::Int(Dim::Known(n))) => return Val::Float(n as f64),
            ("float", None, Val::NegInt(n)) => return Val::Float(n as f64),
            (_, dims, v) if number && dims.as_ref().is_none_or(|d| d.is_empty()) => {
                match declared_dtype_of(env, ty, None) {
                    Some(dtype) if self.literal_fits(&v, dtype, span) && self.int_fits(&v, dtype, span) => {
                        match self.scalar_tensor(&v, dtype) {
                            Some(t) => Val::Tensor(t),
                            None => return Val::Poison,
                        }
                    }
                    Some(_) => return Val::Poison,
                    None => v,
                }
            }
            (_, _, v) => v,
        };
        let t = match v {
            Val::Tensor(t) => t,
            Val::Poison => return Val::Poison,
            other => {
                return self.error(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!("`{}` is declared {ty}, but its value is {}", name.name, other.describe()),
                    )
                    .with_label(span, format!("this is {}", other.describe()))
                    .with_label(ty.span, "declared here"),
                )
            }
        };
        let Some(dtype) = declared_dtype_of(env, ty, Some(t.ty.dtype)) else {
            self.resolve_type(env, ty, true);
            return Val::Poison;
        };
        let (fits, note, fresh) = self.dims_fit(env, ty, dtype, &t.ty);
        if !fits {
            let mut d = Diagnostic::error(
                Code::ShapeMismatch,
                format!("`{}` is declared {ty}, but its value is {}", name.name, t.ty),
            )
            .with_label(span, format!("this is {}", t.ty))
            .with_label(ty.span, format!("declared as {ty}"));
            if let Some(n) = note {
                d = d.with_note(n);
            }
            return self.error(d);
        }
        for (n, v) in fresh {
            env.bind(&n, v);
        }
        bind_float_dtype(env, ty, dtype);
        Val::Tensor(t)
    }

    /// Does a value of type `got` have the declared type `ty` (of dtype
    /// `dtype`)? Literal dims and dims named by bound names must be equal;
    /// a new name binds to its dim (twice in one type: equal dims), and a
    /// product (`B * T`) may solve for one new name. A leading `...` covers
    /// the value's extra leading dims (bound once, see `leading_dims`).
    /// Returns whether it fits, a note for the mismatch message, and the
    /// new names' values.
    fn dims_fit(
        &mut self,
        env: &Env,
        ty: &ast::TypeExpr,
        dtype: DType,
        got: &Ty,
    ) -> (bool, Option<String>, Vec<(String, Val)>) {
        let all = ty.dims.clone().unwrap_or_default();
        let mut fresh = Vec::new();
        let Some(aligned) = align(&all, &got.dims).filter(|_| dtype == got.dtype) else {
            return (false, None, fresh);
        };
        let mut fits = true;
        let mut note = None;
        if aligned.leading {
            match self.match_ellipsis(env, aligned.lead) {
                Ok(bind) => fresh.extend(bind.map(|v| (ELLIPSIS.to_string(), v))),
                Err(n) => return (false, Some(n), fresh),
            }
        }
        for (i, (d, got)) in aligned.pairs.into_iter().enumerate() {
            let axis = aligned.lead.len() + i;
            let ok = match d {
                ast::DimExpr::Ellipsis(_) => unreachable!("the grammar puts `...` first only"),
                ast::DimExpr::Product(factors, _) => match self.match_product(env, factors, got, &fresh) {
                    Ok(bound) => {
                        fresh.extend(bound.into_iter().map(|(n, d)| (n, Val::Int(d))));
                        true
                    }
                    Err(n) => {
                        note = n.or(note);
                        false
                    }
                },
                ast::DimExpr::Lit(n, _) => got == &Dim::Known(*n as usize) || self.is_unknown(got),
                ast::DimExpr::Name(id) => match self.dim_binding(env, &id.name, id.span) {
                    // A size only the build knows: checked then, with real dims.
                    Some(Val::Int(_)) if self.is_unknown(got) => true,
                    Some(Val::Int(bound)) => {
                        if &bound != got && note.is_none() {
                            let is =
                                if bound.to_string() == id.name { String::new() } else { format!(" is {bound} here:") };
                            note = Some(format!("`{}`{is} does not match {got}, the value's dim {axis}", id.name));
                        }
                        &bound == got
                    }
                    Some(_) => false,
                    None => match fresh.iter().find(|(n, _)| *n == id.name) {
                        Some((_, first)) => matches!(first, Val::Int(d) if d == got),
                        None => {
                            fresh.push((id.name.clone(), Val::Int(got.clone())));
                            true
                        }
                    },
                },
            };
            fits &= ok;
        }
        (fits, note, fresh)
    }

    /// Matches the declared product `factors` (`B * T`) against a value's
    /// dim `got`. Factors bound in `env` or `pending` (names bound earlier in
    /// the same type) are multiplied out; one unbound name may remain, and
    /// is solved for (`got / the rest`, which must divide). Returns the new
    /// bindings, or a note for the mismatch message.
    fn match_product(
        &mut self,
        env: &Env,
        factors: &[ast::DimExpr],
        got: &Dim,
        pending: &[(String, Val)],
    ) -> Result<Vec<(String, Dim)>, Option<String>> {
        let mut bound = Vec::new();
        let mut free: Vec<&str> = Vec::new();
        for f in factors {
            match f {
                ast::DimExpr::Lit(n, _) => bound.push(Dim::Known(*n as usize)),
                ast::DimExpr::Name(id) => {
                    let earlier = pending.iter().find(|(n, _)| *n == id.name).map(|(_, v)| v.clone());
                    match earlier.or_else(|| self.dim_binding(env, &id.name, id.span)) {
                        Some(Val::Int(d)) => bound.push(d),
                        Some(_) => return Err(Some(format!("`{}` is not an integer", id.name))),
                        None => free.push(&id.name),
                    }
                }
                ast::DimExpr::Product(..) | ast::DimExpr::Ellipsis(_) => return Err(None),
            }
        }
        let (bk, mut bs) = crate::check::types::dim_factors(&bound);
        let shown = || Dim::product(&bound);
        match free.as_slice() {
            [] => {
                if Dim::product(&bound) == Dim::product(std::slice::from_ref(got)) {
                    Ok(vec![])
                } else {
                    Err(Some(format!("the product is {} here", shown())))
                }
            }
            [name] => {
                let (gk, mut gs) = crate::check::types::dim_factors(std::slice::from_ref(got));
                // Every bound symbolic factor must appear in `got`.
                for s in bs.drain(..) {
                    match gs.iter().position(|g| *g == s) {
                        Some(i) => {
                            gs.remove(i);
                        }
                        None => return Err(Some(format!("{got} has no factor {s}"))),
                    }
                }
                if bk == 0 || gk % bk != 0 {
                    return Err(Some(format!("{got} is not a multiple of {}", shown())));
                }
                Ok(vec![(name.to_string(), crate::check::types::product_dim(gk / bk, gs))])
            }
            _ => Err(Some(format!("only one unknown name can be solved for in a product, found {}", free.join(", ")))),
        }
    }

    /// Converts an argument to a declared parameter type, unifying symbolic
    /// dims (`B`) with the argument's dims and binding them in `env`.
    fn coerce_to_declared(
        &mut self,
        env: &mut Env,
        ty: &ast::TypeExpr,
        v: Val,
        arg_span: Span,
        fn_name: &str,
        pname: &ast::Ident,
    ) -> Val {
        if ty.dims.is_none() && matches!(ty.name.name.as_str(), "int") {
            return match v {
                Val::Int(_) | Val::NegInt(_) | Val::Poison => v,
                other => self.error(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!("`{}` of `{fn_name}` must be an integer known at compile time", pname.name),
                    )
                    .with_label(arg_span, format!("this is {}", other.describe())),
                ),
            };
        }
        if ty.dims.is_none() && ty.name.name == "float" {
            return match v {
                Val::Float(_) | Val::Poison => v,
                Val::Int(Dim::Known(n)) => Val::Float(n as f64),
                Val::NegInt(n) => Val::Float(n as f64),
                other => self.error(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!("`{}` of `{fn_name}` must be a number known at compile time", pname.name),
                    )
                    .with_label(arg_span, format!("this is {}", other.describe())),
                ),
            };
        }
        // `flag: bool` given a compile-time bool keeps it one (a static
        // argument, as in JAX): `if flag { ... }` selects code, and where a
        // tensor is needed it is promoted as a literal is.
        if ty.dims.is_none() && ty.name.name == "bool" && matches!(v, Val::Bool(_)) {
            return v;
        }
        let got = match &v {
            Val::Tensor(t) => Some(t.ty.dtype),
            _ => None,
        };
        let Some(dtype) = declared_dtype_of(env, ty, got) else {
            self.resolve_type(env, ty, true);
            return Val::Poison;
        };
        let t = match v {
            Val::Poison => return Val::Poison,
            Val::Tensor(t) => t,
            Val::Float(_) | Val::Int(Dim::Known(_)) | Val::NegInt(_) | Val::Bool(_)
                if ty.dims.as_ref().is_none_or(|d| split_ellipsis(d).1.is_empty()) =>
            {
                if !self.literal_fits(&v, dtype, arg_span) || !self.int_fits(&v, dtype, arg_span) {
                    return Val::Poison;
                }
                match self.scalar_tensor(&v, dtype) {
                    Some(t) => t,
                    None => return Val::Poison,
                }
            }
            other => {
                return self.error(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!("argument `{}` of `{fn_name}` expects a tensor, got {}", pname.name, other.describe()),
                    )
                    .with_label(arg_span, format!("this is {}", other.describe()))
                    .with_label(ty.span, "declared here"),
                )
            }
        };
        let all = ty.dims.clone().unwrap_or_default();
        if let Some(aligned) = align(&all, &t.ty.dims).filter(|_| t.ty.dtype == dtype) {
            if aligned.leading {
                match self.match_ellipsis(env, aligned.lead) {
                    Ok(Some(v)) => env.bind(ELLIPSIS, v),
                    Ok(None) => {}
                    Err(note) => return self.declared_mismatch(ty, &t, arg_span, fn_name, pname, Some(note)),
                }
            }
            for (d, got) in aligned.pairs {
                match d {
                    ast::DimExpr::Ellipsis(_) => unreachable!("the grammar puts `...` first only"),
                    ast::DimExpr::Product(factors, _) => match self.match_product(env, factors, got, &[]) {
                        Ok(bound) => {
                            for (n, v) in bound {
                                env.bind(&n, Val::Int(v));
                            }
                        }
                        Err(note) => return self.declared_mismatch(ty, &t, arg_span, fn_name, pname, note),
                    },
                    ast::DimExpr::Lit(n, _) => {
                        if got != &Dim::Known(*n as usize) {
                            return self.declared_mismatch(ty, &t, arg_span, fn_name, pname, None);
                        }
                    }
                    ast::DimExpr::Name(id) => match self.dim_binding(env, &id.name, id.span) {
                        Some(Val::Int(bound)) => {
                            if &bound != got {
                                let Some((site, by)) = env.dim_sites.get(&id.name).cloned() else {
                                    let note = format!("`{}` is {bound} here", id.name);
                                    return self.declared_mismatch(ty, &t, arg_span, fn_name, pname, Some(note));
                                };
                                let note = format!("`{}` is {bound} in this call: argument `{by}` bound it", id.name);
                                let bound_at = Some((site, format!("`{}` = {bound} here", id.name)));
                                let d = self.declared_mismatch_report(
                                    ty,
                                    &t,
                                    arg_span,
                                    fn_name,
                                    pname,
                                    bound_at,
                                    Some(note),
                                );
                                return self.error(d);
                            }
                        }
                        Some(_) => {}
                        None => {
                            env.bind(&id.name, Val::Int(got.clone()));
                            env.dim_sites.insert(id.name.clone(), (arg_span, pname.name.clone()));
                        }
                    },
                }
            }
            bind_float_dtype(env, ty, dtype);
            return Val::Tensor(t);
        }
        let generic = ty.name.name == "float" && t.ty.dtype != dtype;
        let note = generic.then(|| match float_dtype(env) {
            Some(bound) => format!("`float` is {bound} in this call: the first `float[...]` argument has that dtype"),
            None => "`float[...]` takes f32 or f64".to_string(),
        });
        self.declared_mismatch(ty, &t, arg_span, fn_name, pname, note)
    }

    /// Whether a poison value may have reached here: an error was reported,
    /// here or by the parser, or poison was made on purpose
    /// (`silent_poison`). Poison without one would end a program silently
    /// (checked in debug builds where poison stops a call).
    pub fn poison_explained(&self) -> bool {
        self.silent_poison || self.diags.iter().any(Diagnostic::is_error)
    }

    /// Whether literal `v` may become a scalar of the declared `dtype`
    /// (reported if not): a float literal is no `i32` and no `bool`, and
    /// only `true`/`false` are `bool`s, as arithmetic refuses to mix them.
    fn literal_fits(&mut self, v: &Val, dtype: DType, span: Span) -> bool {
        let fits = match v {
            Val::Float(_) => dtype.is_float(),
            Val::Int(_) | Val::NegInt(_) => dtype != DType::Bool,
            Val::Bool(_) => dtype == DType::Bool,
            _ => true,
        };
        if !fits {
            self.error(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!(
                        "{} cannot be {dtype} ({})",
                        v.describe(),
                        match v {
                            Val::Float(_) => "a float literal needs f32 or f64",
                            Val::Bool(_) => "`true` and `false` are only bools",
                            _ => "only `true` and `false` are bools",
                        }
                    ),
                )
                .with_label(span, format!("this is declared {dtype}")),
            );
        }
        fits
    }

    fn declared_mismatch(
        &mut self,
        ty: &ast::TypeExpr,
        t: &TVal,
        arg_span: Span,
        fn_name: &str,
        pname: &ast::Ident,
        note: Option<String>,
    ) -> Val {
        let d = self.declared_mismatch_report(ty, t, arg_span, fn_name, pname, None, note);
        self.error(d)
    }

    /// `declared_mismatch`'s report, before it is reported; `bound_at`
    /// labels the argument that bound the dim this one contradicts.
    #[allow(clippy::too_many_arguments)]
    fn declared_mismatch_report(
        &self,
        ty: &ast::TypeExpr,
        t: &TVal,
        arg_span: Span,
        fn_name: &str,
        pname: &ast::Ident,
        bound_at: Option<(Span, String)>,
        note: Option<String>,
    ) -> Diagnostic {
        let mut d = Diagnostic::error(
            Code::ShapeMismatch,
            format!("argument `{}` of `{fn_name}` has type {}, which does not fit its declared type", pname.name, t.ty),
        )
        .with_label(arg_span, format!("this is {}", t.ty));
        if let Some((site, label)) = bound_at {
            d = d.with_label(site, label);
        }
        d = d.with_label(ty.span, format!("declared as {ty}"));
        if let Some(n) = note {
            d = d.with_note(n);
        }
        d
    }

    /// Matches call arguments (positional, then keyword, then defaults) to
    /// declared parameters. Returns one value per parameter.
    pub fn bind_args(
        &mut self,
        fn_name: &str,
        params: &[ast::Param],
        args: Vec<CallArg>,
        span: Span,
        module: usize,
    ) -> Option<Vec<Val>> {
        let mut slots: Vec<Option<Val>> = vec![None; params.len()];
        let mut ok = true;
        let mut misplaced = false;
        let mut positional = 0;
        let mut keyword_seen = false;
        for a in args {
            keyword_seen |= a.name.is_some();
            match &a.name {
                // After a keyword argument: `syntax::arg_rules` reported it.
                None if keyword_seen => {
                    self.silent_poison = true;
                    ok = false;
                    misplaced = true;
                }
                None => {
                    if positional >= params.len() {
                        self.error(
                            Diagnostic::error(
                                Code::BadCall,
                                format!("`{fn_name}` takes {} arguments but more were given", params.len()),
                            )
                            .with_label(a.span, "extra argument"),
                        );
                        ok = false;
                        continue;
                    }
                    slots[positional] = Some(a.value);
                    positional += 1;
                }
                Some(n) => match params.iter().position(|p| &p.name.name == n) {
                    Some(i) if slots[i].is_none() => slots[i] = Some(a.value),
                    Some(_) => {
                        self.error(
                            Diagnostic::error(Code::BadCall, format!("argument `{n}` of `{fn_name}` is given twice"))
                                .with_label(a.name_span.unwrap_or(a.span), "given again here"),
                        );
                        ok = false;
                        // The argument was probably meant for another parameter: the
                        // one mistake should not also report that parameter missing.
                        misplaced = true;
                    }
                    None => {
                        let mut d =
                            Diagnostic::error(Code::BadCall, format!("`{fn_name}` has no parameter named `{n}`"))
                                .with_label(a.name_span.unwrap_or(a.span), "unknown keyword argument");
                        let names: Vec<&str> = params.iter().map(|p| p.name.name.as_str()).collect();
                        d = match super::suggest::closest(n, names.iter().copied()) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None if names.is_empty() => d.with_help(format!("`{fn_name}` takes no arguments")),
                            None => d.with_help(format!("`{fn_name}` takes {}", names.join(", "))),
                        };
                        self.error(d);
                        ok = false;
                    }
                },
            }
        }
        let mut out = Vec::with_capacity(params.len());
        for (p, slot) in params.iter().zip(slots) {
            match slot {
                Some(v) => out.push(v),
                None => match &p.default {
                    Some(e) => {
                        let mut env = Env::new(module);
                        out.push(self.expr(&mut env, e));
                    }
                    None if misplaced => ok = false,
                    None => {
                        self.error(
                            Diagnostic::error(
                                Code::BadCall,
                                format!("missing argument `{}` of `{fn_name}`", p.name.name),
                            )
                            .with_label(span, "in this call"),
                        );
                        ok = false;
                    }
                },
            }
        }
        ok.then_some(out)
    }

    /// What a name in a type's dims means: a variable (a config value, a
    /// bound dim) or else a `const` of the module.
    fn dim_binding(&mut self, env: &Env, name: &str, span: Span) -> Option<Val> {
        if let Some(v) = env.lookup(name) {
            return Some(v.clone());
        }
        match self.prog.modules[env.module].scope.get(name) {
            Some(Global::Const { module, item }) => Some(self.const_value(*module, *item, span)),
            _ => None,
        }
    }

    /// The value of `const NAME = expr`, evaluated where it is used (in its
    /// own module's scope, with no local variables).
    pub fn const_value(&mut self, module: usize, item: usize, span: Span) -> Val {
        let decl = self.prog.const_decl(module, item);
        if let Some(start) = self.consts_active.iter().position(|&c| c == (module, item)) {
            // One report per cycle: from the const that comes first in the source.
            if self.consts_active[start..].iter().any(|&c| c < (module, item)) {
                return Val::Poison;
            }
            let chain: Vec<String> = self.consts_active[start..]
                .iter()
                .chain(std::iter::once(&(module, item)))
                .map(|&(m, i)| self.prog.const_decl(m, i).name.name.clone())
                .collect();
            return self.error(
                Diagnostic::error(Code::NotAllowed, format!("constant `{}` depends on itself", decl.name.name))
                    .with_label(span, "used here")
                    .with_label(decl.name.span, "defined here")
                    .with_note(format!("the cycle: {}", chain.join(" -> "))),
            );
        }
        self.consts_active.push((module, item));
        let v = self.nested(&decl.name.name, span, "constants", |el| {
            let mut env = Env::new(module);
            el.expr(&mut env, &decl.value)
        });
        self.consts_active.pop();
        v
    }

    /// A fresh symbolic dim (check mode only).
    /// A new symbolic dim, `{base}{n}`; `origin` says what it is (for the
    /// note of an error whose message shows it: "`S1` is the length of
    /// slice `1:` of an axis of size B").
    pub fn fresh_dim(&mut self, base: &str, origin: String) -> Dim {
        self.fresh += 1;
        let name = format!("{base}{}", self.fresh);
        self.unknown_dims.insert(name.clone());
        self.dim_origins.insert(name.clone(), origin);
        Dim::Sym(name)
    }

    /// Whether `d` involves a dim made by `fresh_dim`: a size known only
    /// when the program is built (a slice with an `int` parameter's bound,
    /// checked alone), which no declared dim can be compared with yet.
    pub(super) fn is_unknown(&self, d: &Dim) -> bool {
        match d {
            Dim::Sym(s) => s.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|t| self.unknown_dims.contains(t)),
            Dim::Known(_) => false,
        }
    }
}

/// An evaluated call argument.
#[derive(Clone, Debug)]
pub struct CallArg {
    pub name: Option<String>,
    pub name_span: Option<Span>,
    pub value: Val,
    pub span: Span,
}

/// The span of the expression that gives a body its value (the block's last statement).
pub fn tail_span(body: &Expr) -> Span {
    match &body.kind {
        ExprKind::Block(b) => match b.stmts.last() {
            Some(Stmt::Expr(e)) => tail_span(e),
            _ => body.span,
        },
        _ => body.span,
    }
}

/// The names in `wrt = x` or `wrt = (x, y)`.
fn names_of(e: &Expr) -> Option<Vec<String>> {
    match &e.kind {
        ExprKind::Name(n) => Some(vec![n.clone()]),
        ExprKind::Tuple(items) => {
            items.iter().map(|i| if let ExprKind::Name(n) = &i.kind { Some(n.clone()) } else { None }).collect()
        }
        _ => None,
    }
}

/// The env name holding the float dtype a `float[...]` annotation bound in
/// this call (not an identifier a program can write).
const FLOAT_DTYPE: &str = "float[]";

/// The float dtype `float[...]` stands for in this call, once bound.
fn float_dtype(env: &Env) -> Option<DType> {
    match env.lookup(FLOAT_DTYPE)? {
        Val::Str(name) => DType::from_name(name),
        _ => None,
    }
}

/// The dtype a declared tensor type asks for of a value of dtype `got`:
/// its named dtype, or for `float[...]` the call's float dtype, bound by
/// the first `float` parameter (any float dtype `got` fits it, f32 when the
/// value is a number). `None`: not a tensor dtype name.
fn declared_dtype_of(env: &Env, ty: &ast::TypeExpr, got: Option<DType>) -> Option<DType> {
    match ty.name.name.as_str() {
        "float" if ty.dims.is_some() => {
            let fresh = got.filter(|d| d.is_float()).unwrap_or(DType::F32);
            Some(float_dtype(env).unwrap_or(fresh))
        }
        "int" if ty.dims.is_some() => Some(DType::I32),
        name => DType::from_name(name),
    }
}

/// After a value fitted `ty`: a `float[...]` binds the call's float dtype.
fn bind_float_dtype(env: &mut Env, ty: &ast::TypeExpr, dtype: DType) {
    if ty.name.name == "float" && ty.dims.is_some() && float_dtype(env).is_none() {
        env.bind(FLOAT_DTYPE, Val::Str(dtype.name().to_string()));
    }
}

/// The initializer inside `buffer(init)`, when a field's initializer is that.
fn buffer_init(e: &ast::Expr) -> Option<Option<&ast::Expr>> {
    match &e.kind {
        ExprKind::Call { callee, args } if matches!(&callee.kind, ExprKind::Name(n) if n == "buffer") => {
            match args.as_slice() {
                [] => Some(None),
                [a] if a.name.as_ref().is_none_or(|n| n.name == "init") => Some(Some(&a.value)),
                // Reported by the builtin `buffer` when evaluated.
                _ => None,
            }
        }
        _ => None,
    }
}
