//! The pretty printer: AST -> canonical source text (what `jlc fmt` writes).
//!
//! Canonical form: 4-space indentation, one statement, field, setting or
//! item per line, a space around every binary operator, and parentheses only
//! where the grammar's precedence needs them. Printing then parsing gives the
//! same tree (spans aside): `syntax/generate.rs` and the round-trip tests
//! check that on random programs.
//!
//! `print_module` prints a bare tree. `format_source` formats a file: it
//! keeps the comments (which the AST does not hold) by position, and keeps
//! single blank lines between statements, members and items where the
//! source had them.

use super::ast::*;
use super::lexer::Token;
use crate::diagnostic::Diagnostic;
use crate::span::FileId;
use logos::Logos;

/// Prints a module in canonical form (no comments: the AST has none).
pub fn print_module(m: &Module) -> String {
    let mut p = Printer::new(None);
    p.module(m);
    p.out
}

/// Prints one expression in canonical form (single-line unless it holds a
/// block).
pub fn print_expr(e: &Expr) -> String {
    let mut p = Printer::new(None);
    p.expr(e, 0);
    p.out
}

/// Formats a source file: parses it, and prints it back with its comments.
/// A file with syntax errors is not formatted: its diagnostics come back.
pub fn format_source(file: FileId, text: &str) -> Result<String, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let module = super::parse(file, text, &mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    let mut p = Printer::new(Some(Source { text, comments: comments(text), next: 0 }));
    p.module(&module);
    Ok(p.out)
}

/// The `#` comments of a text: (start, end, text without trailing blanks).
fn comments(text: &str) -> Vec<(usize, usize, String)> {
    Token::lexer(text)
        .spanned()
        .filter(|(t, _)| *t == Ok(Token::Comment))
        .map(|(_, r)| (r.start, r.end, text[r.clone()].trim_end().to_string()))
        .collect()
}

struct Source<'a> {
    text: &'a str,
    comments: Vec<(usize, usize, String)>,
    /// The first comment not printed yet.
    next: usize,
}

struct Printer<'a> {
    out: String,
    indent: usize,
    src: Option<Source<'a>>,
    /// Source end of the last thing printed at the current nesting level
    /// (`None` at the start of a block): decides blank lines.
    prev_end: Option<usize>,
    /// Set when `flush_comments` prints anything.
    flushed: bool,
}

// Binding strength of each expression form, weakest first. A child printed
// where the grammar wants at least level `min` gets parentheses when its own
// level is lower. The grammar (grammar.lalrpop), as a table:
//   1 a || b      left: 1  right: 2
//   2 a && b      left: 2  right: 3
//   3 a < b ...   both: 4 (comparisons do not chain)
//   4 a + b, a - b          left: 4  right: 5
//   5 a * b, a / b, a @ b   left: 5  right: 6
//   6 -a, !a                operand: 6
//   7 a ^ b                 left: 8 (a postfix form)  right: 6 (right-assoc, -x allowed)
//   8 f(x), a.b             callee / base: 8
//   0 fn(x) = body          a full expression (the body extends to the right)
//   9 literals, names, (tuples), [arrays], { blocks }, if
const TOP: u8 = 0;
const OR: u8 = 1;
const AND: u8 = 2;
const CMP: u8 = 3;
const SUM: u8 = 4;
const PROD: u8 = 5;
const UNARY: u8 = 6;
const POW: u8 = 7;
const POSTFIX: u8 = 8;
const PRIMARY: u8 = 9;

fn binop_level(op: BinOp) -> (u8, u8, u8) {
    match op {
        BinOp::Or => (OR, OR, AND),
        BinOp::And => (AND, AND, CMP),
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => (CMP, SUM, SUM),
        BinOp::Add | BinOp::Sub => (SUM, SUM, PROD),
        BinOp::Mul | BinOp::Div | BinOp::MatMul => (PROD, PROD, UNARY),
        BinOp::Pow => (POW, POSTFIX, UNARY),
    }
}

fn level(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, _, _) => binop_level(*op).0,
        ExprKind::Unary(..) => UNARY,
        ExprKind::Call { .. } | ExprKind::Field(..) | ExprKind::Index { .. } => POSTFIX,
        ExprKind::Lambda(_) => TOP,
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Str(_)
        | ExprKind::Name(_)
        | ExprKind::Tuple(_)
        | ExprKind::Array(_)
        | ExprKind::Block(_)
        | ExprKind::If { .. }
        | ExprKind::Error => PRIMARY,
    }
}

/// A float literal that lexes back to the same `f64` (`{:?}` is the
/// shortest round-tripping form and always has a `.` or an exponent).
fn float_text(x: f64) -> String {
    if x.is_infinite() {
        // Only `1e999`-style literals overflow to infinity.
        return "1e999".to_string();
    }
    if x.is_nan() {
        return "0.0".to_string();
    }
    format!("{x:?}")
}

fn string_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl<'a> Printer<'a> {
    fn new(src: Option<Source<'a>>) -> Printer<'a> {
        Printer { out: String::new(), indent: 0, src, prev_end: None, flushed: false }
    }

    /// The source spelling of a number literal, when it is exactly one
    /// number token (not `(1.0)`, whose span includes the parentheses).
    fn literal_text(&self, e: &Expr) -> Option<&'a str> {
        let text = self.src.as_ref()?.text.get(e.span.range())?;
        let number = text.starts_with(|c: char| c.is_ascii_digit())
            && text.chars().all(|c| c.is_ascii_digit() || matches!(c, '_' | '.' | 'e' | 'E' | '+' | '-'));
        number.then_some(text)
    }

    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
    }

    /// Does the source have a blank line between byte offsets `a` and `b`?
    fn blank_between(&self, a: usize, b: usize) -> bool {
        let Some(src) = &self.src else { return false };
        let Some(text) = src.text.get(a.min(b)..b) else { return false };
        let lines: Vec<&str> = text.split('\n').collect();
        lines.len() >= 3 && lines[1..lines.len() - 1].iter().any(|l| l.trim().is_empty())
    }

    /// Starts a new line (not before the first thing in the file), after a
    /// blank line if `blank`.
    fn start_line(&mut self, blank: bool) {
        if self.out.is_empty() {
            return;
        }
        if blank {
            self.out.push('\n');
        }
        self.newline();
    }

    /// Starts the line of a node (item, member, statement, setting) that
    /// begins at source offset `start`: prints the comments before it, and
    /// a blank line where `blank` asks or the source had one.
    fn line_for(&mut self, start: usize, blank: bool) {
        let blank = self.flush_comments(start, blank);
        let b = blank || self.prev_end.is_some_and(|p| self.blank_between(p, start));
        self.start_line(b);
    }

    /// Prints every comment that starts before `before`: on its own line, or
    /// at the end of the last printed line where it was a trailing comment in
    /// the source. `blank` asks for a blank line before the first own-line
    /// comment; returns whether the caller still owes that blank line.
    fn flush_comments(&mut self, before: usize, mut blank: bool) -> bool {
        loop {
            let Some(src) = &self.src else { return blank };
            let Some((start, end, text)) = src.comments.get(src.next).cloned() else { return blank };
            if start >= before {
                return blank;
            }
            let line_start = src.text[..start].rfind('\n').map_or(0, |i| i + 1);
            let trailing = !src.text[line_start..start].trim().is_empty();
            self.src.as_mut().expect("checked").next += 1;
            self.flushed = true;
            if trailing && !self.out.is_empty() {
                self.w("  ");
            } else {
                let b = blank || self.prev_end.is_some_and(|p| self.blank_between(p, start));
                self.start_line(b);
                blank = false;
            }
            self.w(&text);
            self.prev_end = Some(end);
        }
    }

    // ---- items ----

    fn module(&mut self, m: &Module) {
        let mut prev: Option<&Item> = None;
        for item in &m.items {
            let (start, end) = item_range(item);
            // Consecutive `use` lines stay together, and so do consecutive `const`s.
            let blank = prev.is_some_and(|p| {
                !(matches!(p, Item::Use(_)) && matches!(item, Item::Use(_))
                    || matches!(p, Item::Const(_)) && matches!(item, Item::Const(_)))
            });
            self.line_for(start, blank);
            self.item(item);
            self.prev_end = Some(end);
            prev = Some(item);
        }
        self.flush_comments(usize::MAX, false);
        if !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(u) => {
                self.w("use ");
                if u.file {
                    self.w(&string_text(&u.module.name));
                } else {
                    self.w(&u.module.name);
                }
                match &u.names {
                    None => {}
                    Some(names) if names.len() == 1 => {
                        self.w(".");
                        self.w(&names[0].name);
                    }
                    Some(names) => {
                        self.w(".{");
                        let list: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
                        self.w(&list.join(", "));
                        self.w("}");
                    }
                }
            }
            Item::Fn(f) => self.fn_decl(f),
            Item::Model(m) => self.model(m),
            Item::Data(d) => {
                self.w("data = ");
                self.expr(&d.source, TOP);
                if !d.settings.is_empty() {
                    self.w(" ");
                    self.settings(&d.settings, d.span.end as usize);
                }
            }
            Item::Trainer(t) => {
                self.w("trainer ");
                self.settings(&t.settings, t.span.end as usize);
            }
            Item::Const(c) => {
                self.w("const ");
                self.w(&c.name.name);
                self.w(" = ");
                self.expr(&c.value, TOP);
            }
        }
    }

    fn settings(&mut self, settings: &[Setting], end: usize) {
        self.open_brace();
        for (i, s) in settings.iter().enumerate() {
            let _ = i;
            self.line_for(s.key.span.start as usize, false);
            self.w(&s.key.name);
            self.w(" = ");
            self.expr(&s.value, TOP);
            self.prev_end = Some(s.value.span.end as usize);
        }
        self.close_brace(end, !settings.is_empty());
    }

    fn open_brace(&mut self) {
        self.w("{");
        self.indent += 1;
        self.prev_end = None;
    }

    /// Closes a brace opened by `open_brace`; `end` is the source offset
    /// just after the `}` (comments before it stay inside).
    fn close_brace(&mut self, end: usize, nonempty: bool) {
        self.flushed = false;
        self.flush_comments(end.saturating_sub(1), false);
        self.indent -= 1;
        if nonempty || self.flushed {
            self.newline();
        }
        self.w("}");
    }

    fn fn_decl(&mut self, f: &FnDecl) {
        self.w("fn ");
        self.w(&f.name.name);
        self.signature(&f.params, f.ret.as_ref(), &f.body);
    }

    /// `(params) -> ret = body` or `(params) -> ret { body }`: the part a
    /// function and a lambda share.
    fn signature(&mut self, params: &[Param], ret: Option<&TypeExpr>, body: &Expr) {
        self.params(params);
        if let Some(ret) = ret {
            self.w(" -> ");
            self.type_expr(ret);
        }
        match &body.kind {
            ExprKind::Block(b) => {
                self.w(" ");
                self.block(b);
            }
            _ => {
                self.w(" = ");
                self.expr(body, TOP);
            }
        }
    }

    fn params(&mut self, params: &[Param]) {
        self.w("(");
        for (i, p) in params.iter().enumerate() {
            if i > 0 {
                self.w(", ");
            }
            self.w(&p.name.name);
            if let Some(ty) = &p.ty {
                self.w(": ");
                self.type_expr(ty);
            }
            if let Some(d) = &p.default {
                self.w(" = ");
                self.expr(d, TOP);
            }
        }
        self.w(")");
    }

    fn type_expr(&mut self, t: &TypeExpr) {
        let s = t.to_string();
        self.w(&s);
    }

    fn model(&mut self, m: &ModelDecl) {
        self.w("model ");
        self.w(&m.name.name);
        if !m.config.is_empty() {
            self.params(&m.config);
        }
        self.w(" ");
        self.open_brace();
        // Members in source order (fields first when spans say nothing).
        let (mut fi, mut mi) = (0, 0);
        let mut prev_was_field: Option<bool> = None;
        while fi < m.fields.len() || mi < m.methods.len() {
            let take_field = match (m.fields.get(fi), m.methods.get(mi)) {
                (Some(f), Some(g)) => f.name.span.start <= g.span.start,
                (Some(_), None) => true,
                _ => false,
            };
            let start = if take_field { m.fields[fi].name.span.start } else { m.methods[mi].span.start } as usize;
            // A blank line between a method and anything next to it.
            let blank = prev_was_field.is_some_and(|p| !(p && take_field));
            self.line_for(start, blank);
            if take_field {
                self.field(&m.fields[fi]);
                self.prev_end = Some(field_end(&m.fields[fi]));
                fi += 1;
            } else {
                self.fn_decl(&m.methods[mi]);
                self.prev_end = Some(m.methods[mi].span.end as usize);
                mi += 1;
            }
            prev_was_field = Some(take_field);
        }
        self.close_brace(m.span.end as usize, prev_was_field.is_some());
    }

    fn field(&mut self, f: &Field) {
        self.w(&f.name.name);
        self.w(": ");
        match &f.kind {
            FieldKind::Param { ty, init } => {
                self.type_expr(ty);
                if let Some(e) = init {
                    self.w(" = ");
                    self.expr(e, TOP);
                }
            }
            FieldKind::Submodule { model, args, count, .. } => {
                if count.is_some() {
                    self.w("[");
                }
                self.w(&model.name);
                self.args(args);
                if let Some(n) = count {
                    self.w("; ");
                    self.expr(n, 0);
                    self.w("]");
                }
            }
        }
    }

    // ---- statements ----

    fn block(&mut self, b: &Block) {
        self.open_brace();
        for s in &b.stmts {
            let (start, end) = stmt_range(s);
            self.line_for(start, false);
            self.stmt(s);
            self.prev_end = Some(end);
        }
        self.close_brace(b.span.end as usize, !b.stmts.is_empty());
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Let { pattern, ty, value, .. } => {
                self.w("let ");
                self.pattern(pattern);
                if let Some(t) = ty {
                    self.w(": ");
                    self.type_expr(t);
                }
                self.w(" = ");
                self.expr(value, TOP);
            }
            Stmt::Assign { name, value, .. } => {
                self.w(&name.name);
                self.w(" = ");
                self.expr(value, TOP);
            }
            Stmt::For { var, start, end, body, .. } => {
                self.w("for ");
                self.w(&var.name);
                self.w(" in ");
                self.expr(start, TOP);
                self.w("..");
                self.expr(end, TOP);
                self.w(" ");
                self.block(body);
            }
            Stmt::Expr(e) => self.expr(e, OR),
        }
    }

    fn pattern(&mut self, p: &Pattern) {
        match p {
            Pattern::Name(id) => self.w(&id.name),
            Pattern::Tuple(ps, _) => {
                self.w("(");
                for (i, q) in ps.iter().enumerate() {
                    if i > 0 {
                        self.w(", ");
                    }
                    self.pattern(q);
                }
                if ps.len() == 1 {
                    self.w(",");
                }
                self.w(")");
            }
        }
    }

    // ---- expressions ----

    fn expr(&mut self, e: &Expr, min: u8) {
        let paren = level(e) < min;
        if paren {
            self.w("(");
        }
        match &e.kind {
            // `jlc fmt` keeps a number as the user spelled it (`1e-2`, `1_000`).
            ExprKind::Int(_) | ExprKind::Float(_) if self.literal_text(e).is_some() => {
                let text = self.literal_text(e).expect("checked").to_string();
                self.w(&text);
            }
            ExprKind::Int(v) => self.w(&v.to_string()),
            ExprKind::Float(x) => self.w(&float_text(*x)),
            ExprKind::Bool(b) => self.w(if *b { "true" } else { "false" }),
            ExprKind::Str(s) => self.w(&string_text(s)),
            ExprKind::Name(n) => self.w(n),
            ExprKind::Unary(op, x) => {
                self.w(match op {
                    UnOp::Neg => "-",
                    UnOp::Not => "!",
                });
                self.expr(x, UNARY);
            }
            ExprKind::Binary(op, a, b) => {
                let (_, l, r) = binop_level(*op);
                self.expr(a, l);
                self.w(" ");
                self.w(op.symbol());
                self.w(" ");
                self.expr(b, r);
            }
            ExprKind::Call { callee, args } => {
                self.expr(callee, POSTFIX);
                match self.keeps_call_broken(args, callee.span.end as usize) {
                    Some(end) => self.args_broken(args, end),
                    None => self.args(args),
                }
            }
            ExprKind::Field(base, field) => {
                self.expr(base, POSTFIX);
                self.w(".");
                self.w(&field.name);
            }
            ExprKind::Index { base, items } => {
                self.expr(base, POSTFIX);
                self.w("[");
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        self.w(", ");
                    }
                    match it {
                        IndexItem::At(x) => self.expr(x, TOP),
                        IndexItem::Slice { start, end, step } => {
                            if let Some(x) = start {
                                self.expr(x, TOP);
                            }
                            self.w(":");
                            if let Some(x) = end {
                                self.expr(x, TOP);
                            }
                            if let Some(x) = step {
                                self.w(":");
                                self.expr(x, TOP);
                            }
                        }
                        IndexItem::Ellipsis(_) => self.w("..."),
                    }
                }
                self.w("]");
            }
            ExprKind::Lambda(l) => {
                self.w("fn");
                self.signature(&l.params, l.ret.as_ref(), &l.body);
            }
            ExprKind::Tuple(items) => {
                self.w("(");
                self.expr_list(items);
                if items.len() == 1 {
                    self.w(",");
                }
                self.w(")");
            }
            ExprKind::Array(items) => {
                self.w("[");
                self.expr_list(items);
                self.w("]");
            }
            ExprKind::Block(b) => self.block(b),
            ExprKind::If { cond, then, otherwise } => {
                self.w("if ");
                self.expr(cond, TOP);
                self.w(" ");
                self.block(then);
                if let Some(b) = otherwise {
                    self.w(" else ");
                    match b.stmts.as_slice() {
                        // Written `else if`: the block is the `if` itself.
                        [Stmt::Expr(e @ Expr { kind: ExprKind::If { .. }, span })] if *span == b.span => {
                            self.expr(e, TOP)
                        }
                        _ => self.block(b),
                    }
                }
            }
            // Never printed by `jlc fmt` (it refuses files with syntax errors).
            ExprKind::Error => self.w("()"),
        }
        if paren {
            self.w(")");
        }
    }

    fn expr_list(&mut self, items: &[Expr]) {
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.w(", ");
            }
            self.expr(x, TOP);
        }
    }

    /// Whether a call (its arguments' source from `open`, the callee's end)
    /// is printed one argument per line, and then where its `)` ends: when
    /// the source ends its arguments with a comma (Black's "magic trailing
    /// comma": the writer asked for it), or has comments between them,
    /// which a one-line call would move.
    fn keeps_call_broken(&self, args: &[Arg], open: usize) -> Option<usize> {
        let src = self.src.as_ref()?;
        // The call's own `)` (its span may take in parentheses around it).
        let after = args.last().map_or(open, |a| a.value.span.end as usize);
        let (close, trailing_comma) = call_close(src.text, after, args.is_empty())?;
        let between = |c: usize| {
            c >= open && c < close && !args.iter().any(|a| (arg_start(a)..a.value.span.end as usize).contains(&c))
        };
        let comments = src.comments[src.next..].iter().take_while(|(c, _, _)| *c < close).any(|(c, _, _)| between(*c));
        (trailing_comma || comments).then_some(close + 1)
    }

    /// `(\n    a,\n    k = v,\n)`: one argument per line, each followed by a
    /// comma, with the comments around them kept in place.
    fn args_broken(&mut self, args: &[Arg], end: usize) {
        let outer_prev = self.prev_end;
        self.w("(");
        self.indent += 1;
        self.prev_end = None;
        for a in args {
            self.line_for(arg_start(a), false);
            if let Some(n) = &a.name {
                self.w(&n.name);
                self.w(" = ");
            }
            self.expr(&a.value, TOP);
            self.w(",");
            self.prev_end = Some(a.value.span.end as usize);
        }
        self.flush_comments(end.saturating_sub(1), false);
        self.indent -= 1;
        self.newline();
        self.w(")");
        self.prev_end = outer_prev;
    }

    fn args(&mut self, args: &[Arg]) {
        self.w("(");
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                self.w(", ");
            }
            if let Some(n) = &a.name {
                self.w(&n.name);
                self.w(" = ");
            }
            self.expr(&a.value, TOP);
        }
        self.w(")");
    }
}

/// The offset of a call's `)` in `text`, scanning from `after` (its last
/// argument's end, or the callee's end when it has none) over blanks,
/// comments and one comma; and whether that comma was there.
fn call_close(text: &str, after: usize, empty: bool) -> Option<(usize, bool)> {
    let mut comma = false;
    let mut opened = !empty;
    let mut i = after;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'(' if !opened => opened = true,
            b')' if opened => return Some((i, comma)),
            b',' if opened && !comma && !empty => comma = true,
            b'#' => i = text[i..].find('\n').map_or(bytes.len(), |n| i + n),
            b if b.is_ascii_whitespace() => {}
            _ => return None,
        }
        i += 1;
    }
    None
}

/// Where an argument starts in the source: its keyword, else its value.
fn arg_start(a: &Arg) -> usize {
    a.name.as_ref().map_or(a.value.span.start, |n| n.span.start) as usize
}

fn item_range(item: &Item) -> (usize, usize) {
    let span = match item {
        Item::Use(u) => u.span,
        Item::Fn(f) => f.span,
        Item::Model(m) => m.span,
        Item::Data(d) => d.span,
        Item::Trainer(t) => t.span,
        Item::Const(c) => c.span,
    };
    (span.start as usize, span.end as usize)
}

fn stmt_range(s: &Stmt) -> (usize, usize) {
    let span = match s {
        Stmt::Let { span, .. } | Stmt::Assign { span, .. } | Stmt::For { span, .. } => *span,
        Stmt::Expr(e) => e.span,
    };
    (span.start as usize, span.end as usize)
}

fn field_end(f: &Field) -> usize {
    (match &f.kind {
        FieldKind::Param { ty, init } => init.as_ref().map_or(ty.span.end, |e| e.span.end),
        FieldKind::Submodule { count: Some(n), .. } => n.span.end + 1,
        FieldKind::Submodule { span, .. } => span.end,
    }) as usize
}
