//! The IR text parser: text in the form `text::print` writes in, a verified
//! `Func` out, so that `parse(print(f)) == f` for every valid `f`.
//!
//! ```text
//! func @loss(%0: f32[8, 4], %1: f32[4]) {
//!   %2 = broadcast{dims=[1]} %1 : f32[8, 4]
//!   %3 = add %0, %2 : f32[8, 4]
//!   return %3
//! }
//! ```
//!
//! One construct per line: the header, one instruction per line numbered
//! densely after the params, `return`, `}`. Blank lines are skipped and spaces
//! between tokens are free. Attributes come in the printer's order. A
//! function name is everything between `@` and `(`. Errors name the 1-based
//! line; no input makes the parser panic (fuzzed in `parse/tests.rs`), and
//! the result has passed `verify`, so it is safe to interpret and compile.
//! A `scan` line is followed by its body, a nested function in the same form;
//! a `custom_vjp` line by its three functions (primal, fwd, bwd).

use std::sync::Arc;

use super::custom_vjp::CustomVjp;
use super::func::{Func, Inst, ValueId};
use super::op::{Conv, Op, Window};
use super::scan::Scan;
use super::types::{DType, Shape, Type};
use super::verify;

/// Parses one function in `text::print`'s format and verifies it.
pub fn parse(text: &str) -> Result<Func, String> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let (func, last_line) = parse_func(&mut lines, 0, 0)?;
    if let Some((line_no, l)) = lines.next() {
        return Err(format!("line {line_no}: unexpected text after the function: `{}`", l.trim()));
    }
    // Everything was checked line by line; this is the whole-function check.
    verify::verify(&func).map_err(|msg| format!("line {last_line}: {msg}"))?;
    Ok(func)
}

/// How deeply scan bodies may nest in parsed text (each level recurses).
const MAX_NESTING: usize = 32;

/// One function, from its header to its closing `}` (a scan's body is one
/// too, on the lines after the scan); returns it and its last line number.
/// `prev_line` is the line before it (for "missing" errors).
fn parse_func<'a>(
    lines: &mut dyn Iterator<Item = (usize, &'a str)>,
    prev_line: usize,
    depth: usize,
) -> Result<(Func, usize), String> {
    let (header_line, header) = lines.next().ok_or(match depth {
        0 => "line 1: empty input, expected `func @name(...) {`".to_string(),
        _ => format!(
            "line {}: missing a nested function (a scan's body or a custom_vjp's rule), expected `func @name(...) {{`",
            prev_line + 1
        ),
    })?;
    let at = |line: usize| move |msg: String| format!("line {line}: {msg}");
    if depth > MAX_NESTING {
        return Err(at(header_line)(format!("scan bodies nest more than {MAX_NESTING} deep")));
    }
    let (name, param_types) = parse_header(header).map_err(at(header_line))?;
    let mut func = Func {
        name,
        insts: param_types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| Inst { op: Op::Param(i as u32), args: vec![], ty })
            .collect(),
        n_params: 0,
        outputs: vec![],
    };
    func.n_params = func.insts.len();
    let mut last_line = header_line;
    loop {
        let Some((line_no, line)) = lines.next() else {
            return Err(format!("line {}: missing `return`", last_line + 1));
        };
        last_line = line_no;
        let mut cur = Cursor::new(line);
        if cur.eat_word("return") {
            func.outputs = parse_return(&mut cur, func.insts.len()).map_err(at(line_no))?;
            break;
        }
        let mut inst = parse_inst(&mut cur, func.insts.len()).map_err(at(line_no))?;
        if let Op::Scan(s) = &mut inst.op {
            let (body, body_last) = parse_func(lines, line_no, depth + 1)?;
            s.body = Arc::new(body);
            last_line = body_last;
        }
        if let Op::CustomVjp(c) = &mut inst.op {
            for f in [&mut c.primal, &mut c.fwd, &mut c.bwd] {
                let (body, body_last) = parse_func(lines, last_line, depth + 1)?;
                *f = Arc::new(body);
                last_line = body_last;
            }
        }
        func.insts.push(inst);
        let index = func.insts.len() - 1;
        verify::check_inst(&func, index).map_err(at(line_no))?;
    }
    match lines.next() {
        Some((line_no, l)) if l.trim() == "}" => last_line = line_no,
        Some((line_no, l)) => {
            return Err(format!("line {line_no}: expected `}}` after `return`, found `{}`", l.trim()))
        }
        None => return Err(format!("line {}: missing `}}`", last_line + 1)),
    }
    Ok((func, last_line))
}

/// `func @name(%0: type, ...) {`
fn parse_header(line: &str) -> Result<(String, Vec<Type>), String> {
    let mut cur = Cursor::new(line);
    if !cur.eat_word("func") {
        return Err("expected `func @name(...) {`".into());
    }
    cur.expect("@")?;
    let name = cur.take_until('(').ok_or("expected `(` after the function name")?.to_string();
    cur.expect("(")?;
    let mut types = Vec::new();
    if !cur.eat(")") {
        loop {
            let index = cur.value_ref()?;
            if index as usize != types.len() {
                return Err(format!("params must be numbered in order: expected %{}, found %{index}", types.len()));
            }
            cur.expect(":")?;
            types.push(cur.ty()?);
            if cur.eat(")") {
                break;
            }
            cur.expect(",")?;
        }
    }
    cur.expect("{")?;
    cur.end()?;
    Ok((name, types))
}

/// `return %a, %b` (possibly empty); the cursor is after `return`.
fn parse_return(cur: &mut Cursor, n_insts: usize) -> Result<Vec<ValueId>, String> {
    let mut outputs = Vec::new();
    if !cur.at_end() {
        loop {
            let v = cur.value_ref()?;
            if v as usize >= n_insts {
                return Err(format!("output %{v} is not defined"));
            }
            outputs.push(ValueId(v));
            if !cur.eat(",") {
                break;
            }
        }
    }
    cur.end()?;
    Ok(outputs)
}

/// `%i = name{attrs} %a, %b : type`, where `i` must be `index`.
fn parse_inst(cur: &mut Cursor, index: usize) -> Result<Inst, String> {
    let id = cur.value_ref()?;
    if id as usize != index {
        return Err(format!("expected instruction %{index}, found %{id}"));
    }
    cur.expect("=")?;
    let name = cur.word().ok_or("expected an op name")?;
    let attrs = if cur.peek() == Some('{') { cur.attrs()? } else { Vec::new() };
    let mut attrs = Attrs { items: attrs.into_iter(), op: name };
    let op = match name {
        "constant" => Op::Constant(attrs.float("value")?),
        "iota" => Op::Iota { axis: attrs.int("axis")? },
        "neg" => Op::Neg,
        "exp" => Op::Exp,
        "log" => Op::Log,
        "tanh" => Op::Tanh,
        "sqrt" => Op::Sqrt,
        "log1p" => Op::Log1p,
        "expm1" => Op::Expm1,
        "logistic" => Op::Logistic,
        "sin" => Op::Sin,
        "cos" => Op::Cos,
        "rsqrt" => Op::Rsqrt,
        "erf" => Op::Erf,
        "floor" => Op::Floor,
        "ceil" => Op::Ceil,
        "round" => Op::Round,
        "abs" => Op::Abs,
        "sign" => Op::Sign,
        "stop_gradient" => Op::StopGradient,
        "add" => Op::Add,
        "sub" => Op::Sub,
        "mul" => Op::Mul,
        "div" => Op::Div,
        "max" => Op::Max,
        "min" => Op::Min,
        "pow" => Op::Pow,
        "lt" => Op::Lt,
        "le" => Op::Le,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "select" => Op::Select,
        "convert" => Op::Convert,
        "broadcast" => Op::Broadcast { dims: attrs.ints("dims")? },
        "reshape" => Op::Reshape,
        "transpose" => Op::Transpose { perm: attrs.ints("perm")? },
        "reduce_sum" => Op::ReduceSum { axes: attrs.ints("axes")? },
        "reduce_max" => Op::ReduceMax { axes: attrs.ints("axes")? },
        "matmul" => Op::MatMul,
        "argmax" => Op::ArgMax { axis: attrs.int("axis")? },
        "slice" => {
            Op::Slice { start: attrs.ints("start")?, limit: attrs.ints("limit")?, stride: attrs.ints("stride")? }
        }
        "pad" => Op::Pad { low: attrs.ints("low")?, high: attrs.ints("high")?, interior: attrs.ints("interior")? },
        "concat" => Op::Concat { axis: attrs.int("axis")? },
        "reduce_min" => Op::ReduceMin { axes: attrs.ints("axes")? },
        "gather" => Op::Gather,
        "scatter_add" => Op::ScatterAdd,
        "batch_matmul" => Op::BatchMatMul,
        "random_bits" => Op::RandomBits,
        "random_split" => Op::RandomSplit,
        "random_uniform" => Op::RandomUniform,
        "reverse" => Op::Reverse { dims: attrs.ints("dims")? },
        "conv2d" => Op::Conv2d(Conv {
            stride: attrs.pair("stride")?,
            low: attrs.pair("low")?,
            high: attrs.pair("high")?,
            lhs_dilation: attrs.pair("lhs_dilation")?,
            rhs_dilation: attrs.pair("rhs_dilation")?,
            groups: attrs.int("groups")?,
        }),
        "reduce_window_sum" | "reduce_window_max" | "select_and_scatter" => {
            let window = Window {
                size: attrs.ints("size")?,
                stride: attrs.ints("stride")?,
                low: attrs.ints("low")?,
                high: attrs.ints("high")?,
            };
            match name {
                "reduce_window_max" => Op::ReduceWindowMax(window),
                "select_and_scatter" => Op::SelectAndScatter(window),
                _ => Op::ReduceWindowSum(window),
            }
        }
        // The body comes on the following lines (`parse_func` reads it).
        "scan" => Op::Scan(Scan {
            n_const: attrs.int("n_const")?,
            n_carry: attrs.int("n_carry")?,
            length: attrs.int("length")?,
            reverse: attrs.bool("reverse")?,
            output: attrs.int("output")?,
            body: Arc::new(Func { name: String::new(), insts: vec![], n_params: 0, outputs: vec![] }),
        }),
        // The three functions come on the following lines (`parse_func`).
        "custom_vjp" => {
            let empty = || Arc::new(Func { name: String::new(), insts: vec![], n_params: 0, outputs: vec![] });
            Op::CustomVjp(CustomVjp { primal: empty(), fwd: empty(), bwd: empty(), output: attrs.int("output")? })
        }
        "param" => return Err("params are declared in the `func` header, not as instructions".into()),
        other => return Err(format!("unknown op `{other}`")),
    };
    attrs.done()?;
    let mut args = Vec::new();
    if cur.peek() == Some('%') {
        loop {
            let v = cur.value_ref()?;
            if v as usize >= index {
                return Err(format!("uses %{v} before its definition"));
            }
            args.push(ValueId(v));
            if !cur.eat(",") {
                break;
            }
        }
    }
    cur.expect(":")?;
    let ty = cur.ty()?;
    cur.end()?;
    Ok(Inst { op, args, ty })
}

/// The attributes of one instruction, consumed in the printer's order.
struct Attrs<'a> {
    items: std::vec::IntoIter<(&'a str, &'a str)>,
    op: &'a str,
}

impl<'a> Attrs<'a> {
    fn next(&mut self, key: &str) -> Result<&'a str, String> {
        match self.items.next() {
            Some((k, v)) if k == key => Ok(v),
            Some((k, _)) => Err(format!("`{}` expects attribute `{key}`, found `{k}`", self.op)),
            None => Err(format!("`{}` needs attribute `{key}`", self.op)),
        }
    }
    fn int(&mut self, key: &str) -> Result<usize, String> {
        let v = self.next(key)?;
        parse_usize(v).ok_or_else(|| format!("attribute `{key}`: `{v}` is not a non-negative integer"))
    }
    fn float(&mut self, key: &str) -> Result<f64, String> {
        let v = self.next(key)?;
        v.parse::<f64>().map_err(|_| format!("attribute `{key}`: `{v}` is not a number"))
    }
    fn bool(&mut self, key: &str) -> Result<bool, String> {
        match self.next(key)? {
            "true" => Ok(true),
            "false" => Ok(false),
            v => Err(format!("attribute `{key}`: `{v}` is not `true` or `false`")),
        }
    }
    fn ints(&mut self, key: &str) -> Result<Vec<usize>, String> {
        let v = self.next(key)?;
        let mut cur = Cursor::new(v);
        let res = cur.int_list().map_err(|msg| format!("attribute `{key}`: {msg}"))?;
        cur.end()?;
        Ok(res)
    }
    /// An int list of exactly two entries (a conv attribute, per spatial dim).
    fn pair(&mut self, key: &str) -> Result<[usize; 2], String> {
        let v = self.ints(key)?;
        <[usize; 2]>::try_from(v).map_err(|v| format!("attribute `{key}`: expected 2 entries, found {}", v.len()))
    }
    fn done(mut self) -> Result<(), String> {
        match self.items.next() {
            None => Ok(()),
            Some((k, _)) => Err(format!("`{}` has no attribute `{k}`", self.op)),
        }
    }
}

fn parse_usize(s: &str) -> Option<usize> {
    // `usize::from_str` also takes a leading `+`; the printer never writes one.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A position in one line. Every method skips leading spaces first.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(line: &'a str) -> Cursor<'a> {
        Cursor { rest: line }
    }
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }
    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest.chars().next()
    }
    fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }
    fn end(&mut self) -> Result<(), String> {
        match self.at_end() {
            true => Ok(()),
            false => Err(format!("unexpected `{}`", self.rest)),
        }
    }
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }
    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            let found = self.rest.chars().next().map_or("end of line".to_string(), |c| format!("`{c}`"));
            Err(format!("expected `{token}`, found {found}"))
        }
    }
    /// A word (letters, digits, `_`); `None` if there is none.
    fn word(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let len = self.rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(self.rest.len());
        if len == 0 {
            return None;
        }
        let (word, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(word)
    }
    /// Eats `word` if it is the next whole word.
    fn eat_word(&mut self, word: &str) -> bool {
        let saved = self.rest;
        if self.word() == Some(word) {
            return true;
        }
        self.rest = saved;
        false
    }
    /// Everything up to (not including) `stop`, unskipped; `None` if absent.
    fn take_until(&mut self, stop: char) -> Option<&'a str> {
        let at = self.rest.find(stop)?;
        let (taken, rest) = self.rest.split_at(at);
        self.rest = rest;
        Some(taken)
    }
    fn usize(&mut self) -> Result<usize, String> {
        self.skip_ws();
        let len = self.rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(self.rest.len());
        let (digits, rest) = self.rest.split_at(len);
        let n = parse_usize(digits).ok_or_else(|| match digits.is_empty() {
            true => "expected a number".to_string(),
            false => format!("number `{digits}` is too large"),
        })?;
        self.rest = rest;
        Ok(n)
    }
    /// `%N`
    fn value_ref(&mut self) -> Result<u32, String> {
        self.expect("%")?;
        let n = self.usize()?;
        u32::try_from(n).map_err(|_| format!("value %{n} is out of range"))
    }
    /// `[a, b, ...]`
    fn int_list(&mut self) -> Result<Vec<usize>, String> {
        self.expect("[")?;
        let mut res = Vec::new();
        if self.eat("]") {
            return Ok(res);
        }
        loop {
            res.push(self.usize()?);
            if self.eat("]") {
                return Ok(res);
            }
            self.expect(",")?;
        }
    }
    /// `f32` or `f32[2, 3]`. The element count must fit a `usize`.
    fn ty(&mut self) -> Result<Type, String> {
        let name = self.word().ok_or("expected a type")?;
        let dtype = DType::from_name(name).ok_or_else(|| format!("unknown dtype `{name}`"))?;
        // The dims follow the dtype directly: `f32 [2]` is not a type.
        let dims = if self.rest.starts_with('[') { self.int_list()? } else { Vec::new() };
        if dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).is_none() {
            return Err(format!("shape {dims:?} has too many elements"));
        }
        Ok(Type { dtype, shape: Shape(dims) })
    }
    /// `{key=value, ...}`: a value is an int list or one token without `,` `}`.
    fn attrs(&mut self) -> Result<Vec<(&'a str, &'a str)>, String> {
        self.expect("{")?;
        let mut res = Vec::new();
        loop {
            let key = self.word().ok_or("expected an attribute name")?;
            self.expect("=")?;
            self.skip_ws();
            let len = if self.rest.starts_with('[') {
                self.rest.find(']').map(|i| i + 1).ok_or("unclosed `[`")?
            } else {
                self.rest.find([',', '}']).ok_or("unclosed `{`")?
            };
            let (value, rest) = self.rest.split_at(len);
            self.rest = rest;
            res.push((key, value.trim()));
            if self.eat("}") {
                return Ok(res);
            }
            self.expect(",")?;
        }
    }
}

#[cfg(test)]
mod tests;
