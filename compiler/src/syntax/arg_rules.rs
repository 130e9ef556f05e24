//! Rules of argument and parameter lists that the grammar leaves open,
//! checked on the whole tree after parsing, so that code the compiler never
//! elaborates (an uncalled function, a branch not taken) is held to them
//! too, as Python's parser holds it:
//!
//! - a positional argument may not follow a keyword argument (it would fill
//!   the first slot, which the keyword may have filled already);
//! - a parameter name may not repeat in one parameter list (the second
//!   would shadow the first, and a caller's arguments would go astray).

use super::ast::{Arg, Block, Expr, ExprKind, FieldKind, IndexItem, Item, Module, Param, Stmt};
use crate::diagnostic::{Code, Diagnostic};

/// Reports every call and parameter list of `module` that breaks a rule.
pub fn check(module: &Module, diags: &mut Vec<Diagnostic>) {
    for item in &module.items {
        match item {
            Item::Fn(f) => {
                params(&f.params, diags);
                expr(&f.body, diags);
            }
            Item::Model(m) => {
                params(&m.config, diags);
                for field in &m.fields {
                    match &field.kind {
                        FieldKind::Param { init, .. } => init.iter().for_each(|e| expr(e, diags)),
                        FieldKind::Submodule { args: a, count, .. } => {
                            args(a, diags);
                            count.iter().for_each(|e| expr(e, diags));
                        }
                    }
                }
                for f in &m.methods {
                    params(&f.params, diags);
                    expr(&f.body, diags);
                }
            }
            Item::Data(d) => {
                expr(&d.source, diags);
                d.settings.iter().for_each(|s| expr(&s.value, diags));
            }
            Item::Trainer(t) => t.settings.iter().for_each(|s| expr(&s.value, diags)),
            Item::Const(c) => expr(&c.value, diags),
            Item::Use(_) => {}
        }
    }
}

fn params(ps: &[Param], diags: &mut Vec<Diagnostic>) {
    for (i, p) in ps.iter().enumerate() {
        if let Some(first) = ps[..i].iter().find(|q| q.name.name == p.name.name) {
            diags.push(
                Diagnostic::error(Code::BadCall, format!("the parameter `{}` is declared twice", p.name.name))
                    .with_label(first.name.span, "first here")
                    .with_label(p.name.span, "again here")
                    .with_help("give each parameter its own name"),
            );
        }
        p.default.iter().for_each(|e| expr(e, diags));
    }
}

fn args(list: &[Arg], diags: &mut Vec<Diagnostic>) {
    if let Some(k) = list.iter().position(|a| a.name.is_some()) {
        if let Some(late) = list[k..].iter().find(|a| a.name.is_none()) {
            let keyword = list[k].name.as_ref().expect("found a keyword");
            diags.push(
                Diagnostic::error(Code::BadCall, "a positional argument follows a keyword argument")
                    .with_label(late.value.span, "positional")
                    .with_label(keyword.span, "after this keyword argument")
                    .with_help("put the positional arguments first, or name this one too"),
            );
        }
    }
    list.iter().for_each(|a| expr(&a.value, diags));
}

fn expr(e: &Expr, diags: &mut Vec<Diagnostic>) {
    match &e.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Str(_)
        | ExprKind::Name(_)
        | ExprKind::Error => {}
        ExprKind::Unary(_, x) | ExprKind::Field(x, _) => expr(x, diags),
        ExprKind::Binary(_, a, b) => {
            expr(a, diags);
            expr(b, diags);
        }
        ExprKind::Call { callee, args: a } => {
            expr(callee, diags);
            args(a, diags);
        }
        ExprKind::Index { base, items } => {
            expr(base, diags);
            for it in items {
                match it {
                    IndexItem::At(x) => expr(x, diags),
                    IndexItem::Slice { start, end, step } => {
                        [start, end, step].into_iter().flatten().for_each(|x| expr(x, diags))
                    }
                    IndexItem::Ellipsis(_) => {}
                }
            }
        }
        ExprKind::Lambda(l) => {
            params(&l.params, diags);
            expr(&l.body, diags);
        }
        ExprKind::Tuple(items) | ExprKind::Array(items) => items.iter().for_each(|x| expr(x, diags)),
        ExprKind::Block(b) => block(b, diags),
        ExprKind::If { cond, then, otherwise } => {
            expr(cond, diags);
            block(then, diags);
            otherwise.iter().for_each(|b| block(b, diags));
        }
    }
}

fn block(b: &Block, diags: &mut Vec<Diagnostic>) {
    for s in &b.stmts {
        match s {
            Stmt::Let { value, .. } | Stmt::Assign { value, .. } => expr(value, diags),
            Stmt::For { start, end, body, .. } => {
                expr(start, diags);
                expr(end, diags);
                block(body, diags);
            }
            Stmt::Expr(e) => expr(e, diags),
        }
    }
}
