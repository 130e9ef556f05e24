//! `Op::Scan`: a loop over a leading axis that is never unrolled (JAX's
//! `lax.scan`). Holds the op's attributes (`Scan`), its typing rule (for
//! `verify`), its definition (for `interp`) and the `Builder` helper that
//! emits one instruction per result.
//!
//! Operands: `consts ++ init ++ xs` (`n_const`, `n_carry`, then the rest).
//! The body is a nested `Func` with params `consts ++ carries ++ x slices`
//! (each x slice is its `xs` operand without axis 0) and outputs `new
//! carries ++ y slices`. Iteration `i` (`0..length`, or `length-1` down to
//! `0` when `reverse`) reads `xs[k][i]` and writes `ys[k][i]`; the carries
//! flow from `init` through the iterations. The results are `final carries
//! ++ ys` (ys stacked along a new axis 0 of size `length`).
//!
//! Multiple results (Note [One instruction per result]): an IR instruction
//! has one type, so a scan with `m` results is `m` instructions that differ
//! only in `output` (which result they yield). Each is a pure function of
//! its operands, so every pass (DCE, autodiff rules, the e-graph) treats it
//! as an ordinary op; `interp` and the CPU backend compute a group of such
//! siblings once.

use std::sync::Arc;

use super::func::{Builder, Func, ValueId};
use super::op::Op;
use super::tensor::{Data, Tensor};
use super::types::{Shape, Type};

/// The attributes of `Op::Scan` (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// Params `consts ++ carries ++ x slices`, outputs `carries ++ y slices`.
    pub body: Arc<Func>,
    pub n_const: usize,
    pub n_carry: usize,
    /// The number of iterations (axis 0 of every `xs` operand and `ys` result).
    pub length: usize,
    /// Iterate from `length - 1` down to `0`.
    pub reverse: bool,
    /// Which result this instruction yields: `< n_carry` a final carry, else
    /// `ys[output - n_carry]`.
    pub output: usize,
}

impl Scan {
    /// The number of `xs` operands (and x-slice params of the body).
    pub fn n_xs(&self) -> usize {
        self.body.n_params - self.n_const - self.n_carry
    }
    /// The number of results (final carries and ys).
    pub fn n_outputs(&self) -> usize {
        self.body.outputs.len()
    }
    /// The same scan yielding result `output`.
    pub fn with_output(&self, output: usize) -> Scan {
        Scan { output, ..self.clone() }
    }
    /// Whether `other` is the same loop (same body, attributes and operands
    /// aside from `output`): siblings compute one scan.
    pub fn same_loop(&self, other: &Scan) -> bool {
        self.n_const == other.n_const
            && self.n_carry == other.n_carry
            && self.length == other.length
            && self.reverse == other.reverse
            && (Arc::ptr_eq(&self.body, &other.body) || self.body == other.body)
    }
    /// The type of result `k`: a carry's type, or a y slice's with `length` in front.
    pub fn result_type(&self, k: usize) -> Type {
        let t = self.body.ty(self.body.outputs[k]).clone();
        if k < self.n_carry {
            t
        } else {
            stacked(&t, self.length)
        }
    }
    /// The iteration order.
    pub fn order(&self) -> Box<dyn Iterator<Item = usize>> {
        if self.reverse {
            Box::new((0..self.length).rev())
        } else {
            Box::new(0..self.length)
        }
    }
}

/// `t` with a leading axis of size `n`.
pub fn stacked(t: &Type, n: usize) -> Type {
    let mut dims = vec![n];
    dims.extend(&t.shape.0);
    Type::new(t.dtype, &dims)
}

/// The typing rule (`verify::check_type` defers to it). `args` are the
/// operand types; `ty` the result type.
pub(super) fn check(s: &Scan, ty: &Type, args: &[&Type]) -> Result<(), String> {
    let want = |cond: bool, what: &str| if cond { Ok(()) } else { Err(what.to_string()) };
    let body = &s.body;
    want(s.n_const + s.n_carry <= body.n_params, "n_const + n_carry exceeds the body's params")?;
    want(body.outputs.len() >= s.n_carry, "the body returns fewer values than carries")?;
    want(s.output < body.outputs.len(), "output index out of range")?;
    super::verify::verify(body).map_err(|msg| format!("in the body: {msg}"))?;
    want(args.len() == body.n_params, "one operand per body param")?;
    let params = body.param_types();
    for (k, (a, p)) in args.iter().zip(&params).enumerate() {
        if k < s.n_const + s.n_carry {
            want(*a == p, "a const or init operand differs from its body param's type")?;
        } else {
            want(**a == stacked(p, s.length), "an xs operand must be [length, x slice type]")?;
        }
    }
    for k in 0..s.n_carry {
        let out = body.ty(body.outputs[k]);
        want(out == &params[s.n_const + k], "a carry changes its type across an iteration")?;
    }
    // `length` times the y slice must fit a usize (the parser reads any length).
    let y = body.ty(body.outputs[s.output]);
    let fits = y.shape.0.iter().try_fold(s.length, |acc, &d| acc.checked_mul(d)).is_some();
    want(fits, "ys have too many elements")?;
    want(ty == &s.result_type(s.output), "scan result type")
}

/// Every result of the scan (final carries, then ys), from its operands.
pub fn eval(s: &Scan, args: &[&Tensor]) -> Vec<Tensor> {
    let body = &s.body;
    let (n_const, n_carry) = (s.n_const, s.n_carry);
    let mut carries: Vec<Tensor> = args[n_const..n_const + n_carry].iter().map(|&t| t.clone()).collect();
    let y_types: Vec<Type> = (n_carry..s.n_outputs()).map(|k| s.result_type(k)).collect();
    let mut ys: Vec<Tensor> = y_types.iter().map(Tensor::zeros).collect();
    for i in s.order() {
        let mut inputs: Vec<Tensor> = args[..n_const].iter().map(|&t| t.clone()).collect();
        inputs.append(&mut carries);
        inputs.extend(args[n_const + n_carry..].iter().map(|x| row(x, i)));
        let mut outs = super::interp::run(body, &inputs);
        for (y, slice) in ys.iter_mut().zip(&outs[n_carry..]) {
            set_row(y, i, slice);
        }
        outs.truncate(n_carry);
        carries = outs;
    }
    carries.extend(ys);
    carries
}

/// `x[i]`: row `i` along axis 0.
pub fn row(x: &Tensor, i: usize) -> Tensor {
    let shape = Shape(x.shape.0[1..].to_vec());
    let n = shape.num_elements();
    let r = i * n..(i + 1) * n;
    let data = match &x.data {
        Data::F32(v) => Data::F32(v[r].to_vec()),
        Data::F64(v) => Data::F64(v[r].to_vec()),
        Data::I32(v) => Data::I32(v[r].to_vec()),
        Data::Bool(v) => Data::Bool(v[r].to_vec()),
    };
    Tensor { shape, data }
}

/// `y[i] = slice`.
fn set_row(y: &mut Tensor, i: usize, slice: &Tensor) {
    let n = slice.len();
    let r = i * n..(i + 1) * n;
    match (&mut y.data, &slice.data) {
        (Data::F32(d), Data::F32(s)) => d[r].copy_from_slice(s),
        (Data::F64(d), Data::F64(s)) => d[r].copy_from_slice(s),
        (Data::I32(d), Data::I32(s)) => d[r].copy_from_slice(s),
        (Data::Bool(d), Data::Bool(s)) => d[r].copy_from_slice(s),
        (d, s) => panic!("scan: y slice of the wrong dtype ({d:?} <- {s:?})"),
    }
}

impl Builder {
    /// Appends the scan of `body` over `consts ++ init ++ xs` and returns
    /// its results (final carries, then ys), one instruction each, adjacent
    /// (so backends compute them as one loop).
    pub fn scan(
        &mut self,
        body: Arc<Func>,
        n_const: usize,
        n_carry: usize,
        length: usize,
        reverse: bool,
        args: &[ValueId],
    ) -> Vec<ValueId> {
        let s = Scan { body, n_const, n_carry, length, reverse, output: 0 };
        (0..s.n_outputs()).map(|k| self.scan_output(&s, k, args)).collect()
    }
    /// One result of a scan (see `scan`).
    pub fn scan_output(&mut self, s: &Scan, k: usize, args: &[ValueId]) -> ValueId {
        assert_eq!(args.len(), s.body.n_params, "scan: one operand per body param");
        let ty = s.result_type(k);
        self.push(Op::Scan(s.with_output(k)), args.to_vec(), ty)
    }
}

/// `body` without the const params (the first `n_const`) it never reads,
/// and the indices of the consts it keeps. A lambda captures its whole
/// scope, so a scan body built from one would otherwise take (and the CPU
/// loop copy) every tensor in sight.
pub fn drop_unused_consts(body: &Func, n_const: usize) -> (Func, Vec<usize>) {
    let mut read = vec![false; body.n_params];
    for a in body.insts.iter().flat_map(|i| &i.args).chain(&body.outputs) {
        if a.index() < body.n_params {
            read[a.index()] = true;
        }
    }
    let kept: Vec<usize> = (0..n_const).filter(|&k| read[k]).collect();
    let removed = n_const - kept.len();
    let new_id = |v: usize| -> usize {
        match v {
            v if v < n_const => kept.iter().position(|&k| k == v).expect("a dropped const is never read"),
            v => v - removed,
        }
    };
    let mut insts = Vec::with_capacity(body.insts.len() - removed);
    for (i, inst) in body.insts.iter().enumerate() {
        if i < n_const && !read[i] {
            continue;
        }
        let op = match inst.op {
            Op::Param(_) => Op::Param(new_id(i) as u32),
            ref op => op.clone(),
        };
        let args = inst.args.iter().map(|a| ValueId(new_id(a.index()) as u32)).collect();
        insts.push(super::func::Inst { op, args, ty: inst.ty.clone() });
    }
    let outputs = body.outputs.iter().map(|o| ValueId(new_id(o.index()) as u32)).collect();
    let res = Func { name: body.name.clone(), insts, n_params: body.n_params - removed, outputs };
    (res, kept)
}

/// `func` with each scan whose body is a prefix of another scan's body over
/// the same operands (the same instructions, its outputs the first of the
/// other's) turned into a result of that other scan, so the two loops run
/// as one. Reverse mode makes such pairs: it replays the primal scan and
/// builds a forward scan of the same body that also stores the carries
/// (`autodiff/scan_rules.rs`), and `value_and_grad` uses both. Run before
/// the bodies are optimized apart (`opt::prepare`, the CPU backend).
pub fn merge_prefix_loops(func: &Func) -> Func {
    let scans: Vec<usize> = (0..func.insts.len()).filter(|&i| matches!(func.insts[i].op, Op::Scan(_))).collect();
    if scans.len() < 2 {
        return func.clone();
    }
    let mut res = func.clone();
    for &i in &scans {
        let Op::Scan(a) = &func.insts[i].op else { continue };
        let widest = scans
            .iter()
            .filter_map(|&j| match &func.insts[j].op {
                Op::Scan(b) if func.insts[j].args == func.insts[i].args && extends(a, b) => Some(b),
                _ => None,
            })
            .max_by_key(|b| b.body.outputs.len());
        if let Some(b) = widest.filter(|b| b.body.outputs.len() > a.body.outputs.len()) {
            res.insts[i].op = Op::Scan(Scan { output: a.output, ..b.clone() });
        }
    }
    super::verify::debug_valid(res, "merge_prefix_loops")
}

/// Whether `b`'s loop computes everything `a`'s does: same attributes, same
/// body instructions, `a`'s outputs first among `b`'s.
fn extends(a: &Scan, b: &Scan) -> bool {
    a.n_const == b.n_const
        && a.n_carry == b.n_carry
        && a.length == b.length
        && a.reverse == b.reverse
        && b.body.outputs.starts_with(&a.body.outputs)
        && (Arc::ptr_eq(&a.body, &b.body) || (a.body.n_params == b.body.n_params && a.body.insts == b.body.insts))
}

/// The multi-result ops of `func` (Note [One instruction per result]): each
/// group holds the instructions, in order, of one scan (same loop) or one
/// custom_vjp (same rule) over the same operands.
pub fn result_groups(func: &Func) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, inst) in func.insts.iter().enumerate() {
        if !matches!(inst.op, Op::Scan(_) | Op::CustomVjp(_)) {
            continue;
        }
        let same = |g: &&mut Vec<usize>| {
            let first = &func.insts[g[0]];
            first.args == inst.args
                && match (&first.op, &inst.op) {
                    (Op::Scan(a), Op::Scan(b)) => a.same_loop(b),
                    (Op::CustomVjp(a), Op::CustomVjp(b)) => a.same_rule(b),
                    _ => false,
                }
        };
        match groups.iter_mut().find(same) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// `func` with every scan's later siblings (same loop, same operands) moved
/// up to just after it, so that each loop is one run of adjacent siblings
/// (computed once by the interpreter and the CPU backend). Moving an
/// instruction up is valid because its operands are those of the first
/// sibling, defined before it. Other instructions keep their order.
pub fn group_siblings(func: &Func) -> Func {
    let n = func.insts.len();
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    for i in 0..n {
        if placed[i] {
            continue;
        }
        placed[i] = true;
        order.push(i);
        let Op::Scan(s) = &func.insts[i].op else { continue };
        for j in i + 1..n {
            let other = &func.insts[j];
            if !placed[j] && other.args == func.insts[i].args && matches!(&other.op, Op::Scan(o) if o.same_loop(s)) {
                placed[j] = true;
                order.push(j);
            }
        }
    }
    super::verify::debug_valid(func.reordered(&order), "group_siblings")
}

// Note [One instruction per result]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The IR has no tuple type: every value has one dtype and shape, and every
// pass (the e-graph's type analysis, the CPU memory plan, autodiff's
// per-value cotangents) depends on that. Adding tuples would touch all of
// them. Instead a scan with results (c1, c2, ys) is three instructions
// `scan{output=0}`, `scan{output=1}`, `scan{output=2}` with the same body and
// operands. Semantically each computes the whole loop and keeps one result,
// so DCE drops unused results for free, and autodiff's rules are per result.
// For speed, `interp` and the CPU backend run a run of adjacent siblings as
// one loop; `Builder::scan` emits them adjacent, and the CPU backend first
// applies `group_siblings` (passes such as the optimizer may separate them).

#[cfg(test)]
pub(crate) mod tests;
