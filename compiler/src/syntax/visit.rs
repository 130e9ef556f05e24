//! A read-only walk over the syntax tree: a `Visit` implementation
//! overrides the nodes it cares about (calls, parameter lists, ...) and
//! calls the matching `walk_*` function to go on below them, so each pass
//! over the tree is the one concern it checks, not another copy of the
//! traversal. (`depth.rs` keeps its own walk: it must stop at a depth
//! bound before recursing, which is the point of it.)

use super::ast::{Arg, Block, Expr, ExprKind, FieldKind, IndexItem, Item, Module, Param, Stmt};

pub trait Visit {
    fn expr(&mut self, e: &Expr) {
        walk_expr(self, e);
    }

    /// A call's arguments, or a submodule field's (`l: Linear(4, 8)`).
    fn args(&mut self, args: &[Arg]) {
        args.iter().for_each(|a| self.expr(&a.value));
    }

    /// A function's, method's, lambda's or model's parameter list.
    fn params(&mut self, params: &[Param]) {
        params.iter().filter_map(|p| p.default.as_ref()).for_each(|e| self.expr(e));
    }

    fn block(&mut self, b: &Block) {
        walk_block(self, b);
    }
}

/// Visits every item of `module`.
pub fn walk_module<V: Visit + ?Sized>(v: &mut V, module: &Module) {
    for item in &module.items {
        match item {
            Item::Fn(f) => {
                v.params(&f.params);
                v.expr(&f.body);
            }
            Item::Model(m) => {
                v.params(&m.config);
                for field in &m.fields {
                    match &field.kind {
                        FieldKind::Param { init, .. } => init.iter().for_each(|e| v.expr(e)),
                        FieldKind::Submodule { args, count, .. } => {
                            v.args(args);
                            count.iter().for_each(|e| v.expr(e));
                        }
                    }
                }
                for f in &m.methods {
                    v.params(&f.params);
                    v.expr(&f.body);
                }
            }
            Item::Data(d) => {
                v.expr(&d.source);
                d.settings.iter().for_each(|s| v.expr(&s.value));
            }
            Item::Trainer(t) => t.settings.iter().for_each(|s| v.expr(&s.value)),
            Item::Const(c) => v.expr(&c.value),
            Item::Use(_) => {}
        }
    }
}

/// Visits the children of `e`.
pub fn walk_expr<V: Visit + ?Sized>(v: &mut V, e: &Expr) {
    match &e.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Str(_)
        | ExprKind::Name(_)
        | ExprKind::Error => {}
        ExprKind::Unary(_, x) | ExprKind::Field(x, _) => v.expr(x),
        ExprKind::Binary(_, a, b) => {
            v.expr(a);
            v.expr(b);
        }
        ExprKind::Call { callee, args } => {
            v.expr(callee);
            v.args(args);
        }
        ExprKind::Index { base, items } => {
            v.expr(base);
            for it in items {
                match it {
                    IndexItem::At(x) => v.expr(x),
                    IndexItem::Slice { start, end, step } => {
                        [start, end, step].into_iter().flatten().for_each(|x| v.expr(x))
                    }
                    IndexItem::Ellipsis(_) => {}
                }
            }
        }
        ExprKind::Lambda(l) => {
            v.params(&l.params);
            v.expr(&l.body);
        }
        ExprKind::Tuple(items) | ExprKind::Array(items) => items.iter().for_each(|x| v.expr(x)),
        ExprKind::Block(b) => v.block(b),
        ExprKind::If { cond, then, otherwise } => {
            v.expr(cond);
            v.block(then);
            otherwise.iter().for_each(|b| v.block(b));
        }
    }
}

/// Visits the statements of `b`.
pub fn walk_block<V: Visit + ?Sized>(v: &mut V, b: &Block) {
    for s in &b.stmts {
        match s {
            Stmt::Let { value, .. } | Stmt::Assign { value, .. } => v.expr(value),
            Stmt::For { start, end, body, .. } => {
                v.expr(start);
                v.expr(end);
                v.block(body);
            }
            Stmt::Expr(e) => v.expr(e),
        }
    }
}
