//! Random syntactically valid programs, for testing: a seed -> an AST
//! (`Module`) with every item, member, statement and expression form and
//! every operator at every nesting, plus `erase_spans`, which zeroes every
//! span so that trees from different sources compare with `==`.
//!
//! The trees are syntactically valid, not well typed: they exercise the
//! printer and parser (round trip), and the checker's robustness (it must
//! report errors, never panic).

use super::ast::*;
use crate::span::Span;

/// splitmix64: a tiny deterministic PRNG (no `rand` dependency).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

// Names avoid keywords; a few are builtins or stdlib names so the checker
// sees real calls too.
const NAMES: &[&str] = &[
    "x",
    "y",
    "w",
    "b",
    "z1",
    "_t",
    "self",
    "B",
    "N",
    "loss",
    "relu",
    "sum",
    "mean",
    "exp",
    "max",
    "grad",
    "logits",
    "T",
    "forward",
    "Linear",
    "a_b_c",
    "fn_",
    "iff",
    "lets",
    "main",
    "training_step",
    "i",
];
const TYPES: &[&str] = &["f32", "f64", "i32", "bool", "int", "float", "T"];
const STR_CHARS: &[&str] = &["a", "Z", " ", "\"", "\\", "\n", "\t", "#", "é", "{", "..", "0"];
const BINOPS: &[BinOp] = &[
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::MatMul,
    BinOp::Pow,
    BinOp::Eq,
    BinOp::Ne,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
    BinOp::And,
    BinOp::Or,
];

fn sp() -> Span {
    Span::default()
}

/// A random program from `seed`; `size` (1 to ~10) scales the item count
/// and nesting depth.
pub fn module(seed: u64, size: usize) -> Module {
    let mut g = Gen { rng: Rng(seed), depth: 0, max_depth: 1 + size.min(6) / 2 };
    let n = 1 + g.rng.below(size.max(1));
    Module { items: (0..n).map(|_| g.item()).collect() }
}

struct Gen {
    rng: Rng,
    depth: usize,
    max_depth: usize,
}

impl Gen {
    fn ident(&mut self) -> Ident {
        Ident { name: self.rng.pick(NAMES).to_string(), span: sp() }
    }

    fn item(&mut self) -> Item {
        match self.rng.below(9) {
            0 => Item::Use(UseDecl {
                file: self.rng.chance(30),
                module: self.ident(),
                names: match self.rng.below(3) {
                    0 => None,
                    _ => Some((0..self.rng.below(4)).map(|_| self.ident()).collect()),
                },
                span: sp(),
            }),
            1 | 2 | 3 => Item::Fn(self.fn_decl()),
            4 | 5 => Item::Model(self.model()),
            6 => Item::Data(DataDecl { source: self.expr(), settings: self.settings(), span: sp() }),
            7 => Item::Const(ConstDecl { name: self.ident(), value: self.expr(), span: sp() }),
            _ => Item::Trainer(TrainerDecl { settings: self.settings(), span: sp() }),
        }
    }

    fn settings(&mut self) -> Vec<Setting> {
        (0..self.rng.below(4))
            .map(|_| {
                // `model` is a keyword everywhere but as a setting key.
                let key = if self.rng.chance(10) { Ident { name: "model".into(), span: sp() } } else { self.ident() };
                Setting { key, value: self.expr() }
            })
            .collect()
    }

    fn fn_decl(&mut self) -> FnDecl {
        let params = self.params(4);
        let ret = self.rng.chance(40).then(|| self.type_expr());
        let body =
            if self.rng.chance(60) { Expr { kind: ExprKind::Block(self.block()), span: sp() } } else { self.expr() };
        FnDecl { name: self.ident(), params, ret, body, span: sp() }
    }

    /// Fewer than `most` parameters, their names distinct (`arg_rules`).
    fn params(&mut self, most: usize) -> Vec<Param> {
        let mut out: Vec<Param> = Vec::new();
        for _ in 0..self.rng.below(most) {
            let p = self.param();
            if !out.iter().any(|q| q.name.name == p.name.name) {
                out.push(p);
            }
        }
        out
    }

    fn param(&mut self) -> Param {
        Param {
            name: self.ident(),
            ty: self.rng.chance(60).then(|| self.type_expr()),
            default: self.rng.chance(25).then(|| self.expr()),
        }
    }

    fn type_expr(&mut self) -> TypeExpr {
        let dims = self.rng.chance(60).then(|| {
            (0..self.rng.below(4))
                .map(|_| {
                    let atom = |g: &mut Self| {
                        if g.rng.chance(50) {
                            DimExpr::Lit(g.rng.below(1000) as i64, sp())
                        } else {
                            DimExpr::Name(g.ident())
                        }
                    };
                    if self.rng.chance(15) {
                        DimExpr::Product((0..2 + self.rng.below(2)).map(|_| atom(self)).collect(), sp())
                    } else {
                        atom(self)
                    }
                })
                .collect::<Vec<_>>()
        });
        let dims = dims.map(|mut d| {
            if self.rng.chance(15) {
                d.insert(0, DimExpr::Ellipsis(sp()));
            }
            d
        });
        TypeExpr { name: Ident { name: self.rng.pick(TYPES).to_string(), span: sp() }, dims, span: sp() }
    }

    fn model(&mut self) -> ModelDecl {
        let config = self.params(3);
        let fields = (0..self.rng.below(4))
            .map(|_| Field {
                name: self.ident(),
                kind: if self.rng.chance(60) {
                    FieldKind::Param { ty: self.type_expr(), init: self.rng.chance(60).then(|| self.expr()) }
                } else {
                    let (model, args) = (self.ident(), self.args());
                    let count = self.rng.chance(30).then(|| self.expr());
                    FieldKind::Submodule { model, args, count, span: sp() }
                },
            })
            .collect();
        let methods = (0..self.rng.below(3)).map(|_| self.fn_decl()).collect();
        ModelDecl { name: self.ident(), config, fields, methods, broken_fields: vec![], span: sp() }
    }

    fn block(&mut self) -> Block {
        self.depth += 1;
        let n = if self.depth > self.max_depth { self.rng.below(2) } else { self.rng.below(4) };
        let stmts = (0..n).map(|_| self.stmt()).collect();
        self.depth -= 1;
        Block { stmts, span: sp() }
    }

    fn stmt(&mut self) -> Stmt {
        match self.rng.below(6) {
            0 | 1 => {
                let pattern = self.pattern(0);
                let ty = (matches!(pattern, Pattern::Name(_)) && self.rng.chance(20)).then(|| self.type_expr());
                Stmt::Let { pattern, ty, value: self.expr(), span: sp() }
            }
            2 => Stmt::Assign { name: self.ident(), value: self.expr(), span: sp() },
            3 if self.depth <= self.max_depth => {
                Stmt::For { var: self.ident(), start: self.expr(), end: self.expr(), body: self.block(), span: sp() }
            }
            _ => Stmt::Expr(self.expr()),
        }
    }

    fn pattern(&mut self, depth: usize) -> Pattern {
        if depth < 2 && self.rng.chance(30) {
            Pattern::Tuple((0..self.rng.below(4)).map(|_| self.pattern(depth + 1)).collect(), sp())
        } else {
            Pattern::Name(self.ident())
        }
    }

    fn args(&mut self) -> Vec<Arg> {
        let mut args: Vec<Arg> = (0..self.rng.below(4))
            .map(|_| Arg { name: self.rng.chance(30).then(|| self.ident()), value: self.expr() })
            .collect();
        // Positional arguments first (`arg_rules`).
        args.sort_by_key(|a| a.name.is_some());
        args
    }

    fn index_item(&mut self) -> IndexItem {
        match self.rng.below(4) {
            0 => IndexItem::Ellipsis(sp()),
            1 => IndexItem::At(self.expr()),
            _ => IndexItem::Slice {
                start: self.rng.chance(50).then(|| self.expr()),
                end: self.rng.chance(50).then(|| self.expr()),
                step: self.rng.chance(30).then(|| self.expr()),
            },
        }
    }

    fn exprs(&mut self, max: usize) -> Vec<Expr> {
        (0..self.rng.below(max + 1)).map(|_| self.expr()).collect()
    }

    fn leaf(&mut self) -> ExprKind {
        match self.rng.below(6) {
            0 => ExprKind::Int(match self.rng.below(4) {
                0 => i64::MAX,
                1 => self.rng.below(1 << 40) as i64,
                _ => self.rng.below(100) as i64,
            }),
            1 => ExprKind::Float(match self.rng.below(5) {
                0 => 1e-8,
                1 => 2.5e300,
                2 => 0.1,
                _ => (self.rng.next_u64() >> 11) as f64 / (1u64 << 40) as f64,
            }),
            2 => ExprKind::Bool(self.rng.chance(50)),
            3 => ExprKind::Str((0..self.rng.below(5)).map(|_| self.rng.pick(STR_CHARS)).collect()),
            _ => ExprKind::Name(self.rng.pick(NAMES).to_string()),
        }
    }

    fn expr(&mut self) -> Expr {
        self.depth += 1;
        let kind = if self.depth > self.max_depth + 2 || self.rng.chance(30) {
            self.leaf()
        } else {
            match self.rng.below(14) {
                0 => ExprKind::Unary(if self.rng.chance(60) { UnOp::Neg } else { UnOp::Not }, Box::new(self.expr())),
                1..=4 => {
                    let op = BINOPS[self.rng.below(BINOPS.len())];
                    ExprKind::Binary(op, Box::new(self.expr()), Box::new(self.expr()))
                }
                5 => ExprKind::Call { callee: Box::new(self.expr()), args: self.args() },
                6 => ExprKind::Field(Box::new(self.expr()), self.ident()),
                7 => ExprKind::Tuple(self.exprs(3)),
                8 => ExprKind::Array(self.exprs(3)),
                9 if self.depth <= self.max_depth => ExprKind::Block(self.block()),
                10 if self.depth <= self.max_depth => ExprKind::If {
                    cond: Box::new(self.expr()),
                    then: self.block(),
                    otherwise: self.rng.chance(50).then(|| {
                        if self.rng.chance(30) {
                            // `else if`: a block holding just the `if`, spans equal.
                            let inner = Expr {
                                kind: ExprKind::If {
                                    cond: Box::new(self.expr()),
                                    then: self.block(),
                                    otherwise: self.rng.chance(50).then(|| self.block()),
                                },
                                span: sp(),
                            };
                            Block { stmts: vec![Stmt::Expr(inner)], span: sp() }
                        } else {
                            self.block()
                        }
                    }),
                },
                12 => {
                    let base = Box::new(self.expr());
                    let items = (0..self.rng.below(4)).map(|_| self.index_item()).collect();
                    ExprKind::Index { base, items }
                }
                13 if self.depth <= self.max_depth => {
                    let params = self.params(3);
                    let ret = self.rng.chance(20).then(|| self.type_expr());
                    let body = if self.rng.chance(40) {
                        Expr { kind: ExprKind::Block(self.block()), span: sp() }
                    } else {
                        self.expr()
                    };
                    ExprKind::Lambda(Box::new(Lambda { params, ret, body }))
                }
                _ => self.leaf(),
            }
        };
        self.depth -= 1;
        Expr { kind, span: sp() }
    }
}

/// Sets every span in the module to `Span::default()` (so two parses of
/// differently formatted text compare equal with `==`).
pub fn erase_spans(m: &mut Module) {
    for item in &mut m.items {
        match item {
            Item::Use(u) => {
                u.span = sp();
                ident(&mut u.module);
                u.names.iter_mut().flatten().for_each(ident);
            }
            Item::Fn(f) => fn_decl(f),
            Item::Model(md) => {
                md.span = sp();
                ident(&mut md.name);
                md.config.iter_mut().for_each(param);
                for f in &mut md.fields {
                    ident(&mut f.name);
                    match &mut f.kind {
                        FieldKind::Param { ty, init } => {
                            type_expr(ty);
                            init.iter_mut().for_each(expr);
                        }
                        FieldKind::Submodule { model, args, count, span } => {
                            *span = sp();
                            ident(model);
                            args.iter_mut().for_each(arg);
                            count.iter_mut().for_each(expr);
                        }
                    }
                }
                md.methods.iter_mut().for_each(fn_decl);
            }
            Item::Data(d) => {
                d.span = sp();
                expr(&mut d.source);
                d.settings.iter_mut().for_each(setting);
            }
            Item::Trainer(t) => {
                t.span = sp();
                t.settings.iter_mut().for_each(setting);
            }
            Item::Const(c) => {
                c.span = sp();
                ident(&mut c.name);
                expr(&mut c.value);
            }
        }
    }
}

fn ident(i: &mut Ident) {
    i.span = sp();
}

fn setting(s: &mut Setting) {
    ident(&mut s.key);
    expr(&mut s.value);
}

fn fn_decl(f: &mut FnDecl) {
    f.span = sp();
    ident(&mut f.name);
    f.params.iter_mut().for_each(param);
    f.ret.iter_mut().for_each(type_expr);
    expr(&mut f.body);
}

fn param(p: &mut Param) {
    ident(&mut p.name);
    p.ty.iter_mut().for_each(type_expr);
    p.default.iter_mut().for_each(expr);
}

fn type_expr(t: &mut TypeExpr) {
    t.span = sp();
    ident(&mut t.name);
    for d in t.dims.iter_mut().flatten() {
        match d {
            DimExpr::Lit(_, s) | DimExpr::Ellipsis(s) => *s = sp(),
            DimExpr::Name(i) => ident(i),
            DimExpr::Product(factors, s) => {
                *s = sp();
                for f in factors {
                    match f {
                        DimExpr::Lit(_, s) => *s = sp(),
                        DimExpr::Name(i) => ident(i),
                        DimExpr::Product(..) | DimExpr::Ellipsis(_) => {
                            unreachable!("the grammar has no nested products and no `...` in one")
                        }
                    }
                }
            }
        }
    }
}

fn arg(a: &mut Arg) {
    a.name.iter_mut().for_each(ident);
    expr(&mut a.value);
}

fn block(b: &mut Block) {
    b.span = sp();
    for s in &mut b.stmts {
        match s {
            Stmt::Let { pattern: p, ty, value, span } => {
                *span = sp();
                pattern(p);
                ty.iter_mut().for_each(type_expr);
                expr(value);
            }
            Stmt::Assign { name, value, span } => {
                *span = sp();
                ident(name);
                expr(value);
            }
            Stmt::For { var, start, end, body, span } => {
                *span = sp();
                ident(var);
                expr(start);
                expr(end);
                block(body);
            }
            Stmt::Expr(e) => expr(e),
        }
    }
}

fn pattern(p: &mut Pattern) {
    match p {
        Pattern::Name(i) => ident(i),
        Pattern::Tuple(ps, s) => {
            *s = sp();
            ps.iter_mut().for_each(pattern);
        }
    }
}

fn expr(e: &mut Expr) {
    e.span = sp();
    match &mut e.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Str(_)
        | ExprKind::Name(_)
        | ExprKind::Error => {}
        ExprKind::Unary(_, x) => expr(x),
        ExprKind::Binary(_, a, b) => {
            expr(a);
            expr(b);
        }
        ExprKind::Call { callee, args } => {
            expr(callee);
            args.iter_mut().for_each(arg);
        }
        ExprKind::Field(base, f) => {
            expr(base);
            ident(f);
        }
        ExprKind::Index { base, items } => {
            expr(base);
            for it in items {
                match it {
                    IndexItem::At(x) => expr(x),
                    IndexItem::Slice { start, end, step } => {
                        [start, end, step].into_iter().flatten().for_each(expr);
                    }
                    IndexItem::Ellipsis(s) => *s = sp(),
                }
            }
        }
        ExprKind::Lambda(l) => {
            l.params.iter_mut().for_each(param);
            l.ret.iter_mut().for_each(type_expr);
            expr(&mut l.body);
        }
        ExprKind::Tuple(items) | ExprKind::Array(items) => items.iter_mut().for_each(expr),
        ExprKind::Block(b) => block(b),
        ExprKind::If { cond, then, otherwise } => {
            expr(cond);
            block(then);
            otherwise.iter_mut().for_each(block);
        }
    }
}
