//! A nesting limit for expressions and blocks.
//!
//! The checker and lowering recurse over the tree, so a pathological file
//! (`------...x` or `x + x + ... + x` with a million terms) would overflow
//! the stack. Items nested deeper than `MAX_DEPTH` are reported and dropped
//! before checking. The walk stops at the limit, so it is itself bounded.

use super::ast::{Block, Expr, ExprKind, FieldKind, IndexItem, Item, Module, Stmt};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;

pub const MAX_DEPTH: usize = 1000;

/// Removes items that nest too deeply; reports each one.
pub fn limit_depth(module: &mut Module, diags: &mut Vec<Diagnostic>) {
    let mut kept = Vec::with_capacity(module.items.len());
    for item in std::mem::take(&mut module.items) {
        match item_too_deep(&item) {
            Some(span) => {
                diags.push(
                    Diagnostic::error(
                        Code::NotAllowed,
                        format!("this expression nests more than {MAX_DEPTH} levels deep"),
                    )
                    .with_label(span, "too deeply nested")
                    .with_help("split it with `let` bindings"),
                );
                // Dropping a deep tree recurses too; callers run on a large stack.
                drop(item);
            }
            None => kept.push(item),
        }
    }
    module.items = kept;
}

fn item_too_deep(item: &Item) -> Option<Span> {
    match item {
        Item::Fn(f) => expr(&f.body, 0).err().or_else(|| params(&f.params)),
        Item::Model(m) => {
            for field in &m.fields {
                match &field.kind {
                    FieldKind::Param { init: Some(e), .. } => {
                        if let Err(s) = expr(e, 0) {
                            return Some(s);
                        }
                    }
                    FieldKind::Param { init: None, .. } => {}
                    FieldKind::Submodule { args, count, .. } => {
                        for e in args.iter().map(|a| &a.value).chain(count.iter()) {
                            if let Err(s) = expr(e, 0) {
                                return Some(s);
                            }
                        }
                    }
                }
            }
            m.methods
                .iter()
                .find_map(|f| expr(&f.body, 0).err().or_else(|| params(&f.params)))
                .or_else(|| params(&m.config))
        }
        Item::Data(d) => expr(&d.source, 0).err().or_else(|| d.settings.iter().find_map(|s| expr(&s.value, 0).err())),
        Item::Trainer(t) => t.settings.iter().find_map(|s| expr(&s.value, 0).err()),
        Item::Const(c) => expr(&c.value, 0).err(),
        Item::Use(_) => None,
    }
}

fn params(ps: &[super::ast::Param]) -> Option<Span> {
    ps.iter().find_map(|p| p.default.as_ref().and_then(|e| expr(e, 0).err()))
}

/// `Err(span)` of the first expression past the limit.
fn expr(e: &Expr, depth: usize) -> Result<(), Span> {
    if depth > MAX_DEPTH {
        return Err(e.span);
    }
    let d = depth + 1;
    match &e.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Str(_)
        | ExprKind::Name(_)
        | ExprKind::Error => Ok(()),
        ExprKind::Unary(_, x) => expr(x, d),
        ExprKind::Binary(_, a, b) => {
            expr(a, d)?;
            expr(b, d)
        }
        ExprKind::Call { callee, args } => {
            expr(callee, d)?;
            args.iter().try_for_each(|a| expr(&a.value, d))
        }
        ExprKind::Field(base, _) => expr(base, d),
        ExprKind::Index { base, items } => {
            expr(base, d)?;
            items.iter().try_for_each(|it| match it {
                IndexItem::At(x) => expr(x, d),
                IndexItem::Slice { start, end, step } => {
                    [start, end, step].into_iter().flatten().try_for_each(|x| expr(x, d))
                }
                IndexItem::Ellipsis(_) => Ok(()),
            })
        }
        ExprKind::Lambda(l) => {
            expr(&l.body, d)?;
            params(&l.params).map_or(Ok(()), Err)
        }
        ExprKind::Tuple(items) | ExprKind::Array(items) => items.iter().try_for_each(|x| expr(x, d)),
        ExprKind::Block(b) => block(b, d),
        ExprKind::If { cond, then, otherwise } => {
            expr(cond, d)?;
            block(then, d)?;
            otherwise.as_ref().map_or(Ok(()), |b| block(b, d))
        }
    }
}

fn block(b: &Block, depth: usize) -> Result<(), Span> {
    if depth > MAX_DEPTH {
        return Err(b.span);
    }
    b.stmts.iter().try_for_each(|s| match s {
        Stmt::Let { value, .. } | Stmt::Assign { value, .. } => expr(value, depth + 1),
        Stmt::For { start, end, body, .. } => {
            expr(start, depth + 1)?;
            expr(end, depth + 1)?;
            block(body, depth + 1)
        }
        Stmt::Expr(e) => expr(e, depth + 1),
    })
}
