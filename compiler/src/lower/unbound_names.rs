//! Unknown names in every function body, called or not.
//!
//! The checker elaborates a function on its declared types, or at its calls;
//! a helper with untyped parameters that nothing calls (yet) is never
//! elaborated, so a typo in it (`sqrtt(x)`, an undefined variable) would go
//! unreported until the day it is called. This pass reads the bodies of
//! the user's functions and model methods and reports each name that is
//! neither bound in the function nor visible at the top level nor a
//! builtin, with the elaborator's message (`check_program` merges the two
//! reports of one place).
//!
//! It errs on the side of silence: every name the function binds anywhere
//! (parameters, `let` and `for` names, lambda parameters, dim names of any
//! type written in it, the model's config parameters) counts as bound
//! everywhere in it, so block scoping mistakes are left to the elaborator.

use super::program::{Program, STDLIB};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{
    Block, DimExpr, Expr, ExprKind, FnDecl, IndexItem, Item, Lambda, Param, Pattern, Stmt, TypeExpr,
};
use std::collections::BTreeSet;

/// The diagnostics, in source order of the user's modules.
pub fn unknown_names(prog: &Program) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for module in &prog.modules {
        if STDLIB.iter().any(|(name, _)| *name == module.name) {
            continue;
        }
        let visible = |name: &str| {
            module.scope.contains_key(name) || module.unparsed.contains(name) || super::builtins::lookup(name).is_some()
        };
        for item in &module.ast.items {
            let (fns, config, method): (Vec<&FnDecl>, Vec<&Param>, bool) = match item {
                Item::Fn(f) => (vec![f], vec![], false),
                Item::Model(m) => (m.methods.iter().collect(), m.config.iter().collect(), true),
                _ => continue,
            };
            for f in fns {
                let mut names = Names::default();
                names.bound.extend(config.iter().map(|p| p.name.name.clone()));
                // The elaborator binds a method's `self` whatever its parameters say.
                if method {
                    names.bound.insert("self".into());
                }
                bind_params(&f.params, f.ret.as_ref(), &mut names.bound);
                for p in f.params.iter().chain(config.iter().copied()) {
                    if let Some(d) = &p.default {
                        names.expr(d);
                    }
                }
                names.expr(&f.body);
                let Names { mut bound, uses, unparsed, .. } = names;
                for span in unparsed {
                    bound.extend(super::unparsed::names_in(&prog.sources, span));
                }
                for (name, span) in uses {
                    if bound.contains(name) || visible(name) {
                        continue;
                    }
                    let candidates = bound
                        .iter()
                        .map(String::as_str)
                        .chain(module.scope.keys().map(String::as_str))
                        .chain(super::builtins::NAMES.iter().copied());
                    let mut d = Diagnostic::error(Code::UnknownName, format!("unknown name `{name}`"))
                        .with_label(span, "not found in this scope");
                    if name == super::KEY_PARAM && f.name.name.ends_with("_step") {
                        d = d.with_help(format!(
                            "a step method gets the trainer's random key as its parameter named `{name}`: \
                             `fn {}(self, x, y, {name})`",
                            f.name.name
                        ));
                    } else if let Some(help) = super::suggest::unknown_name_help(name, candidates) {
                        d = d.with_help(help);
                    }
                    diags.push(d);
                }
            }
        }
    }
    diags
}

/// The names lambda `l` reads values of from the scope it was written in
/// (not those only given to `shape`, `ndim`, `size`; every
/// name it binds anywhere counts as bound, as above: it may miss one that
/// is also rebound inside, never reports one it does not read), first use
/// each, in source order.
pub(super) fn free_names(l: &Lambda) -> Vec<(String, Span)> {
    let mut names = Names { values_only: true, ..Names::default() };
    names.expr_of_lambda(l);
    let Names { bound, uses, .. } = names;
    let mut free: Vec<(String, Span)> = Vec::new();
    for (name, span) in uses {
        if !bound.contains(name) && !free.iter().any(|(n, _)| n == name) {
            free.push((name.to_string(), span));
        }
    }
    free
}

fn bind_params(params: &[Param], ret: Option<&TypeExpr>, bound: &mut BTreeSet<String>) {
    for p in params {
        bound.insert(p.name.name.clone());
        if let Some(t) = &p.ty {
            type_names(t, bound);
        }
    }
    if let Some(t) = ret {
        type_names(t, bound);
    }
}

/// Dim names of a written type (`B` in `f32[B, 784]`): bound by it.
fn type_names(t: &TypeExpr, bound: &mut BTreeSet<String>) {
    let mut dim = |d: &DimExpr| {
        if let DimExpr::Name(id) = d {
            bound.insert(id.name.clone());
        }
    };
    for d in t.dims.iter().flatten() {
        match d {
            DimExpr::Product(factors, _) => factors.iter().for_each(&mut dim),
            other => dim(other),
        }
    }
}

fn pattern_names(p: &Pattern, bound: &mut BTreeSet<String>) {
    match p {
        Pattern::Name(id) => {
            bound.insert(id.name.clone());
        }
        Pattern::Tuple(items, _) => items.iter().for_each(|p| pattern_names(p, bound)),
    }
}

/// What one function binds anywhere in it and every name it reads.
#[derive(Default)]
struct Names<'a> {
    bound: BTreeSet<String>,
    uses: Vec<(&'a str, Span)>,
    /// Leave out a name read only for its type (`shape(w)`, `ndim(w)`,
    /// `size(w)`: no value of it is computed with).
    values_only: bool,
    /// Spans of code the parser could not read: the names in them count as
    /// bound (`unparsed.rs`).
    unparsed: Vec<Span>,
}

impl<'a> Names<'a> {
    fn expr(&mut self, e: &'a Expr) {
        match &e.kind {
            ExprKind::Name(n) => self.uses.push((n.as_str(), e.span)),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) => {}
            ExprKind::Error => self.unparsed.push(e.span),
            ExprKind::Unary(_, a) | ExprKind::Field(a, _) => self.expr(a),
            ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Call { callee, args } => {
                self.expr(callee);
                let type_only =
                    matches!(&callee.kind, ExprKind::Name(f) if ["shape", "ndim", "size"].contains(&f.as_str()));
                for a in args {
                    if self.values_only && type_only && matches!(a.value.kind, ExprKind::Name(_)) {
                        continue;
                    }
                    // (A misspelled `wrt` or `in_axes` too: the typo is reported where the call is checked.)
                    let callee_is =
                        |names: &[&str]| matches!(&callee.kind, ExprKind::Name(f) if names.contains(&f.as_str()));
                    match a.name.as_ref().map(|n| n.name.as_str()) {
                        // `grad(f, wrt = (w, b))` names the function's parameters.
                        Some(kw)
                            if super::keywords::meant(kw, "wrt")
                                && callee_is(&["grad", "value_and_grad", "jacfwd", "jacrev", "hessian"]) => {}
                        // `vmap(f, in_axes = (None, 0))`: `None` is a name only there.
                        Some(kw)
                            if (super::keywords::meant(kw, "in_axes") || super::keywords::meant(kw, "out_axes"))
                                && callee_is(&["vmap"]) =>
                        {
                            self.in_axes(&a.value)
                        }
                        _ => self.expr(&a.value),
                    }
                }
            }
            ExprKind::Tuple(items) | ExprKind::Array(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Block(b) => self.block(b),
            ExprKind::If { cond, then, otherwise } => {
                self.expr(cond);
                self.block(then);
                otherwise.iter().for_each(|b| self.block(b));
            }
            ExprKind::Index { base, items } => {
                self.expr(base);
                for item in items {
                    match item {
                        IndexItem::At(e) => self.expr(e),
                        IndexItem::Slice { start, end, step } => {
                            [start, end, step].into_iter().flatten().for_each(|e| self.expr(e))
                        }
                        IndexItem::Ellipsis(_) => {}
                    }
                }
            }
            ExprKind::Lambda(l) => self.expr_of_lambda(l),
        }
    }

    fn expr_of_lambda(&mut self, l: &'a Lambda) {
        bind_params(&l.params, l.ret.as_ref(), &mut self.bound);
        l.params.iter().filter_map(|p| p.default.as_ref()).for_each(|d| self.expr(d));
        self.expr(&l.body);
    }

    fn in_axes(&mut self, e: &'a Expr) {
        match &e.kind {
            ExprKind::Name(n) if n == "None" => {}
            ExprKind::Tuple(items) => items.iter().for_each(|i| self.in_axes(i)),
            _ => self.expr(e),
        }
    }

    fn block(&mut self, b: &'a Block) {
        for s in &b.stmts {
            match s {
                Stmt::Let { pattern, ty, value, .. } => {
                    pattern_names(pattern, &mut self.bound);
                    if let Some(t) = ty {
                        type_names(t, &mut self.bound);
                    }
                    self.expr(value);
                }
                Stmt::Assign { value, .. } => self.expr(value),
                Stmt::For { var, start, end, body, .. } => {
                    self.bound.insert(var.name.clone());
                    self.expr(start);
                    self.expr(end);
                    self.block(body);
                }
                Stmt::Expr(e) => self.expr(e),
            }
        }
    }
}
