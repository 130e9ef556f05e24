//! IR <-> egg: the e-graph language `Node`, its `IrAnalysis`, and the two
//! conversions `to_recexpr` (an `ir::Func` in) and `to_func` (an extracted
//! e-graph out, as an `ir::Func` in a deterministic topological order).
//!
//! Op attributes (perm, dims, axes, target shape, target dtype) are attribute
//! leaves (`Node::Attr`), passed as the first children of the node that uses
//! them, so rewrite patterns can bind them (`(transpose ?p ?x)`). Value leaves
//! (`Param`, `Const`, `Iota`) carry their data directly. `Outputs` is the
//! variadic root. Result types are not stored: `IrAnalysis` infers each
//! e-class's `ir::Type` from the children with the IR's shape rules, so every
//! e-node a rule adds is type-checked, and `merge` asserts that two merged
//! classes have one type (a mismatch is an unsound rule, a compiler bug).

use crate::ir::{self, Conv, DType, Func, Inst, Op, Shape, Type, ValueId, Window};
use egg::{define_language, Analysis, DidMerge, EGraph, Id, RecExpr};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

define_language! {
    /// One e-node kind per IR op. Children are attribute leaves first, then operands.
    pub enum Node {
        "neg" = Neg([Id; 1]),
        "exp" = Exp([Id; 1]),
        "log" = Log([Id; 1]),
        "tanh" = Tanh([Id; 1]),
        "sqrt" = Sqrt([Id; 1]),
        "log1p" = Log1p([Id; 1]),
        "expm1" = Expm1([Id; 1]),
        "logistic" = Logistic([Id; 1]),
        "sin" = Sin([Id; 1]),
        "cos" = Cos([Id; 1]),
        "rsqrt" = Rsqrt([Id; 1]),
        "erf" = Erf([Id; 1]),
        "abs" = Abs([Id; 1]),
        "sign" = Sign([Id; 1]),
        "floor" = Floor([Id; 1]),
        "ceil" = Ceil([Id; 1]),
        "round" = Round([Id; 1]),
        "stop_gradient" = StopGradient([Id; 1]),
        "add" = Add([Id; 2]),
        "sub" = Sub([Id; 2]),
        "mul" = Mul([Id; 2]),
        "div" = Div([Id; 2]),
        "max" = Max([Id; 2]),
        "min" = Min([Id; 2]),
        "pow" = Pow([Id; 2]),
        "lt" = Lt([Id; 2]),
        "le" = Le([Id; 2]),
        "gt" = Gt([Id; 2]),
        "ge" = Ge([Id; 2]),
        "eq" = Eq([Id; 2]),
        "ne" = Ne([Id; 2]),
        // (select cond on_true on_false)
        "select" = Select([Id; 3]),
        // (convert <dtype> x)
        "convert" = Convert([Id; 2]),
        // (broadcast <shape> <dims> x)
        "broadcast" = Broadcast([Id; 3]),
        // (reshape <shape> x)
        "reshape" = Reshape([Id; 2]),
        // (transpose <perm> x)
        "transpose" = Transpose([Id; 2]),
        // (reduce_sum <axes> x)
        "reduce_sum" = ReduceSum([Id; 2]),
        // (reduce_max <axes> x)
        "reduce_max" = ReduceMax([Id; 2]),
        "matmul" = MatMul([Id; 2]),
        // (argmax <[axis]> x)
        "argmax" = ArgMax([Id; 2]),
        // (slice <start> <limit> <stride> x)
        "slice" = Slice([Id; 4]),
        // (pad <low> <high> <interior> x)
        "pad" = Pad([Id; 4]),
        // (concat <[axis]> x y ...): one or more operands.
        "concat" = Concat(Box<[Id]>),
        // (reduce_min <axes> x)
        "reduce_min" = ReduceMin([Id; 2]),
        // (gather table indices)
        "gather" = Gather([Id; 2]),
        // (scatter_add <[rows]> updates indices)
        "scatter_add" = ScatterAdd([Id; 3]),
        "batch_matmul" = BatchMatMul([Id; 2]),
        // (random_bits <shape> key), (random_split <shape> key): shape of the result.
        "random_bits" = RandomBits([Id; 2]),
        "random_split" = RandomSplit([Id; 2]),
        // (random_uniform <dtype> <shape> key)
        "random_uniform" = RandomUniform([Id; 3]),
        // (reverse <dims> x)
        "reverse" = Reverse([Id; 2]),
        // (conv2d <stride ++ low ++ high ++ lhs_dilation ++ rhs_dilation ++ [groups]> lhs rhs):
        // opaque to the rules.
        "conv2d" = Conv2d([Id; 3]),
        // (reduce_window_sum <size ++ stride ++ low ++ high> x): opaque to the rules.
        "reduce_window_sum" = ReduceWindowSum([Id; 2]),
        // (reduce_window_max <size ++ stride ++ low ++ high> x): opaque to the rules.
        "reduce_window_max" = ReduceWindowMax([Id; 2]),
        // (select_and_scatter <size ++ stride ++ low ++ high> x ct): opaque to the rules.
        "select_and_scatter" = SelectAndScatter([Id; 3]),
        // (scan <scan> consts.. init.. xs..): opaque to the rules; the body
        // rides in the attribute.
        "scan" = Scan(Box<[Id]>),
        // The function's results, in order: the root of the e-graph.
        "outputs" = Outputs(Box<[Id]>),
        Param(ParamLeaf),
        Const(ConstLeaf),
        Iota(IotaLeaf),
        Attr(Attr),
    }
}

/// An op attribute: a list of ints (perm, dims, axes, shape), a dtype, or a
/// scan's attributes and body.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attr {
    Ints(Vec<usize>),
    DType(DType),
    Scan(ScanAttr),
}

/// An `Op::Scan`'s attributes, compared and hashed by their text form (the
/// body holds f64 constants, which have no `Eq`; the text keeps their bits).
#[derive(Clone, Debug)]
pub struct ScanAttr {
    key: String,
    pub scan: ir::Scan,
}

impl ScanAttr {
    pub fn new(scan: &ir::Scan) -> ScanAttr {
        let key = format!(
            "{} {} {} {} {}\n{}",
            scan.n_const,
            scan.n_carry,
            scan.length,
            scan.reverse,
            scan.output,
            ir::text::print(&scan.body)
        );
        ScanAttr { key, scan: scan.clone() }
    }
}

impl PartialEq for ScanAttr {
    fn eq(&self, other: &ScanAttr) -> bool {
        self.key == other.key
    }
}
impl Eq for ScanAttr {}
impl PartialOrd for ScanAttr {
    fn partial_cmp(&self, other: &ScanAttr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ScanAttr {
    fn cmp(&self, other: &ScanAttr) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}
impl std::hash::Hash for ScanAttr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

/// `Param(index)` of type `ty`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamLeaf {
    pub index: u32,
    pub ty: Type,
}

/// `Constant(value)` of scalar type `dtype`. The value is kept by its bits so
/// that -0.0 and +0.0 are different nodes and NaN equals itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConstLeaf {
    pub bits: u64,
    pub dtype: DType,
}

impl ConstLeaf {
    pub fn new(value: f64, dtype: DType) -> ConstLeaf {
        ConstLeaf { bits: value.to_bits(), dtype }
    }
    pub fn value(&self) -> f64 {
        f64::from_bits(self.bits)
    }
}

/// `Iota { axis }` of type `ty`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IotaLeaf {
    pub axis: usize,
    pub ty: Type,
}

// Text forms (egg prints and parses leaves with these): `[1,0]`, `f32`,
// `%0:f32[2,3]`, `1.5:f64`, `iota0:f32[3,4]`. No spaces: they are s-expression atoms.

fn type_text(ty: &Type) -> String {
    let dims = ty.shape.0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    format!("{}[{dims}]", ty.dtype)
}

fn parse_ints(s: &str) -> Result<Vec<usize>, String> {
    let inner = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).ok_or("expected [..]")?;
    if inner.is_empty() {
        return Ok(vec![]);
    }
    inner.split(',').map(|d| d.parse::<usize>().map_err(|e| e.to_string())).collect()
}

fn parse_type(s: &str) -> Result<Type, String> {
    let open = s.find('[').ok_or("expected dtype[dims]")?;
    let dtype = DType::from_name(&s[..open]).ok_or("unknown dtype")?;
    Ok(Type { dtype, shape: Shape(parse_ints(&s[open..])?) })
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Ints(v) => {
                let items = v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
                write!(f, "[{items}]")
            }
            Attr::DType(d) => write!(f, "{d}"),
            // An atom naming the scan (FNV-1a of its text); never parsed back.
            Attr::Scan(s) => {
                let hash =
                    s.key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
                write!(f, "scan#{hash:016x}")
            }
        }
    }
}

impl FromStr for Attr {
    type Err = String;
    fn from_str(s: &str) -> Result<Attr, String> {
        match DType::from_name(s) {
            Some(d) => Ok(Attr::DType(d)),
            None => parse_ints(s).map(Attr::Ints),
        }
    }
}

impl fmt::Display for ParamLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}:{}", self.index, type_text(&self.ty))
    }
}

impl FromStr for ParamLeaf {
    type Err = String;
    fn from_str(s: &str) -> Result<ParamLeaf, String> {
        let (index, ty) = s.strip_prefix('%').and_then(|s| s.split_once(':')).ok_or("expected %i:type")?;
        Ok(ParamLeaf { index: index.parse().map_err(|_| "bad param index")?, ty: parse_type(ty)? })
    }
}

impl fmt::Display for ConstLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}:{}", self.value(), self.dtype)
    }
}

impl FromStr for ConstLeaf {
    type Err = String;
    fn from_str(s: &str) -> Result<ConstLeaf, String> {
        let (value, dtype) = s.split_once(':').ok_or("expected value:dtype")?;
        let value: f64 = value.parse().map_err(|_| "bad constant")?;
        Ok(ConstLeaf::new(value, DType::from_name(dtype).ok_or("unknown dtype")?))
    }
}

impl fmt::Display for IotaLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iota{}:{}", self.axis, type_text(&self.ty))
    }
}

impl FromStr for IotaLeaf {
    type Err = String;
    fn from_str(s: &str) -> Result<IotaLeaf, String> {
        let (axis, ty) = s.strip_prefix("iota").and_then(|s| s.split_once(':')).ok_or("expected iotaN:type")?;
        Ok(IotaLeaf { axis: axis.parse().map_err(|_| "bad iota axis")?, ty: parse_type(ty)? })
    }
}

/// What an e-class is: an attribute, a tensor value, or the outputs root.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Attr(Attr),
    /// `konst`: when known, the value of *every* element (exact, in `ty.dtype`,
    /// widened to f64). Set for constants and things computed only from them.
    Value {
        ty: Type,
        konst: Option<f64>,
    },
    Root,
}

pub type IrEGraph = EGraph<Node, IrAnalysis>;

/// The e-class analysis: types, uniform constant values, constant folding.
#[derive(Default)]
pub struct IrAnalysis;

/// The type of the value in e-class `id`. Panics on a non-value class (a
/// malformed e-node: compiler bug).
pub fn ty_of(egraph: &IrEGraph, id: Id) -> &Type {
    match &egraph[id].data {
        Data::Value { ty, .. } => ty,
        other => panic!("e-class {id} is not a value: {other:?}"),
    }
}

/// The known uniform value of e-class `id`, if any.
pub fn konst_of(egraph: &IrEGraph, id: Id) -> Option<f64> {
    match &egraph[id].data {
        Data::Value { konst, .. } => *konst,
        Data::Attr(_) | Data::Root => None,
    }
}

/// The int-list attribute in e-class `id`.
pub fn ints_of(egraph: &IrEGraph, id: Id) -> &[usize] {
    match &egraph[id].data {
        Data::Attr(Attr::Ints(v)) => v,
        other => panic!("e-class {id} is not an int-list attribute: {other:?}"),
    }
}

fn dtype_attr_of(egraph: &IrEGraph, id: Id) -> DType {
    match &egraph[id].data {
        Data::Attr(Attr::DType(d)) => *d,
        other => panic!("e-class {id} is not a dtype attribute: {other:?}"),
    }
}

/// The scan attribute in e-class `id`.
fn scan_of(egraph: &IrEGraph, id: Id) -> &ir::Scan {
    match &egraph[id].data {
        Data::Attr(Attr::Scan(s)) => &s.scan,
        other => panic!("e-class {id} is not a scan attribute: {other:?}"),
    }
}

/// The one element of a `[n]` attribute (an axis).
fn single(ints: &[usize]) -> usize {
    match ints {
        [n] => *n,
        other => panic!("expected a one-element attribute, found {other:?}"),
    }
}

/// A conv's attributes as one int list: stride, low, high, lhs and rhs
/// dilation (two each), then groups.
fn ints_of_conv(c: &Conv) -> Vec<usize> {
    let mut v: Vec<usize> = [c.stride, c.low, c.high, c.lhs_dilation, c.rhs_dilation].concat();
    v.push(c.groups);
    v
}

fn conv_of_ints(v: &[usize]) -> Conv {
    assert_eq!(v.len(), 11, "conv2d attribute list");
    let pair = |k: usize| [v[2 * k], v[2 * k + 1]];
    Conv { stride: pair(0), low: pair(1), high: pair(2), lhs_dilation: pair(3), rhs_dilation: pair(4), groups: v[10] }
}

/// A window as one int list: size, stride, low, high (one per dim each).
fn ints_of_window(w: &Window) -> Vec<usize> {
    [w.size.clone(), w.stride.clone(), w.low.clone(), w.high.clone()].concat()
}

fn window_of_ints(v: &[usize]) -> Window {
    assert!(v.len().is_multiple_of(4), "window attribute list");
    let rank = v.len() / 4;
    let part = |k: usize| v[k * rank..(k + 1) * rank].to_vec();
    Window { size: part(0), stride: part(1), low: part(2), high: part(3) }
}

/// The IR op an e-node stands for, with its attributes, and its operand
/// classes (attribute children dropped). `None` for the `Outputs` root and
/// attribute leaves.
pub fn node_op(egraph: &IrEGraph, node: &Node) -> Option<(Op, Vec<Id>)> {
    let ints = |id: &Id| ints_of(egraph, *id).to_vec();
    let res = match node {
        Node::Neg([x]) => (Op::Neg, vec![*x]),
        Node::Exp([x]) => (Op::Exp, vec![*x]),
        Node::Log([x]) => (Op::Log, vec![*x]),
        Node::Tanh([x]) => (Op::Tanh, vec![*x]),
        Node::Sqrt([x]) => (Op::Sqrt, vec![*x]),
        Node::Log1p([x]) => (Op::Log1p, vec![*x]),
        Node::Expm1([x]) => (Op::Expm1, vec![*x]),
        Node::Logistic([x]) => (Op::Logistic, vec![*x]),
        Node::Sin([x]) => (Op::Sin, vec![*x]),
        Node::Cos([x]) => (Op::Cos, vec![*x]),
        Node::Rsqrt([x]) => (Op::Rsqrt, vec![*x]),
        Node::Erf([x]) => (Op::Erf, vec![*x]),
        Node::Abs([x]) => (Op::Abs, vec![*x]),
        Node::Sign([x]) => (Op::Sign, vec![*x]),
        Node::Floor([x]) => (Op::Floor, vec![*x]),
        Node::Ceil([x]) => (Op::Ceil, vec![*x]),
        Node::Round([x]) => (Op::Round, vec![*x]),
        Node::StopGradient([x]) => (Op::StopGradient, vec![*x]),
        Node::ArgMax([axis, x]) => (Op::ArgMax { axis: single(ints_of(egraph, *axis)) }, vec![*x]),
        Node::Slice([start, limit, stride, x]) => {
            (Op::Slice { start: ints(start), limit: ints(limit), stride: ints(stride) }, vec![*x])
        }
        Node::Pad([low, high, interior, x]) => {
            (Op::Pad { low: ints(low), high: ints(high), interior: ints(interior) }, vec![*x])
        }
        Node::Concat(children) => (Op::Concat { axis: single(ints_of(egraph, children[0])) }, children[1..].to_vec()),
        Node::Reverse([dims, x]) => (Op::Reverse { dims: ints(dims) }, vec![*x]),
        Node::Conv2d([attrs, lhs, rhs]) => (Op::Conv2d(conv_of_ints(ints_of(egraph, *attrs))), vec![*lhs, *rhs]),
        Node::ReduceWindowSum([w, x]) => (Op::ReduceWindowSum(window_of_ints(ints_of(egraph, *w))), vec![*x]),
        Node::ReduceWindowMax([w, x]) => (Op::ReduceWindowMax(window_of_ints(ints_of(egraph, *w))), vec![*x]),
        Node::SelectAndScatter([w, x, ct]) => {
            (Op::SelectAndScatter(window_of_ints(ints_of(egraph, *w))), vec![*x, *ct])
        }
        Node::Scan(children) => (Op::Scan(scan_of(egraph, children[0]).clone()), children[1..].to_vec()),
        Node::Add(ab) => (Op::Add, ab.to_vec()),
        Node::Sub(ab) => (Op::Sub, ab.to_vec()),
        Node::Mul(ab) => (Op::Mul, ab.to_vec()),
        Node::Div(ab) => (Op::Div, ab.to_vec()),
        Node::Max(ab) => (Op::Max, ab.to_vec()),
        Node::Min(ab) => (Op::Min, ab.to_vec()),
        Node::Pow(ab) => (Op::Pow, ab.to_vec()),
        Node::Lt(ab) => (Op::Lt, ab.to_vec()),
        Node::Le(ab) => (Op::Le, ab.to_vec()),
        Node::Gt(ab) => (Op::Gt, ab.to_vec()),
        Node::Ge(ab) => (Op::Ge, ab.to_vec()),
        Node::Eq(ab) => (Op::Eq, ab.to_vec()),
        Node::Ne(ab) => (Op::Ne, ab.to_vec()),
        Node::Select(abc) => (Op::Select, abc.to_vec()),
        Node::Convert([_, x]) => (Op::Convert, vec![*x]),
        Node::Broadcast([_, dims, x]) => (Op::Broadcast { dims: ints(dims) }, vec![*x]),
        Node::Reshape([_, x]) => (Op::Reshape, vec![*x]),
        Node::Transpose([perm, x]) => (Op::Transpose { perm: ints(perm) }, vec![*x]),
        Node::ReduceSum([axes, x]) => (Op::ReduceSum { axes: ints(axes) }, vec![*x]),
        Node::ReduceMax([axes, x]) => (Op::ReduceMax { axes: ints(axes) }, vec![*x]),
        Node::MatMul(ab) => (Op::MatMul, ab.to_vec()),
        Node::ReduceMin([axes, x]) => (Op::ReduceMin { axes: ints(axes) }, vec![*x]),
        Node::Gather(ab) => (Op::Gather, ab.to_vec()),
        Node::ScatterAdd([_, u, i]) => (Op::ScatterAdd, vec![*u, *i]),
        Node::BatchMatMul(ab) => (Op::BatchMatMul, ab.to_vec()),
        Node::RandomBits([_, key]) => (Op::RandomBits, vec![*key]),
        Node::RandomSplit([_, key]) => (Op::RandomSplit, vec![*key]),
        Node::RandomUniform([_, _, key]) => (Op::RandomUniform, vec![*key]),
        Node::Param(p) => (Op::Param(p.index), vec![]),
        Node::Const(c) => (Op::Constant(c.value()), vec![]),
        Node::Iota(i) => (Op::Iota { axis: i.axis }, vec![]),
        Node::Outputs(_) | Node::Attr(_) => return None,
    };
    Some(res)
}

/// The result type of a value e-node, from its children's types and its
/// attributes (the IR's shape rules, as in `ir::verify`). Panics on an
/// ill-typed e-node: every e-node comes from verified IR or from a rule, so
/// that is a compiler bug (an unsound rule).
pub fn node_type(egraph: &IrEGraph, node: &Node) -> Option<Type> {
    let ty = |id: &Id| ty_of(egraph, *id).clone();
    let same = |a: &Id, b: &Id| {
        let (ta, tb) = (ty(a), ty(b));
        assert_eq!(ta, tb, "ill-typed e-node {node:?}");
        ta
    };
    let res = match node {
        Node::Neg([x]) | Node::Exp([x]) | Node::Log([x]) | Node::Tanh([x]) | Node::Sqrt([x]) => ty(x),
        Node::Log1p([x]) | Node::Expm1([x]) | Node::Logistic([x]) | Node::Sin([x]) | Node::Cos([x]) => ty(x),
        Node::Rsqrt([x]) | Node::Erf([x]) | Node::Abs([x]) | Node::Sign([x]) | Node::StopGradient([x]) => ty(x),
        Node::Floor([x]) | Node::Ceil([x]) | Node::Round([x]) => ty(x),
        Node::ArgMax([axis, x]) => {
            let (src, axis) = (ty(x), single(ints_of(egraph, *axis)));
            assert!(axis < src.shape.rank(), "ill-typed argmax {node:?}");
            let dims = (0..src.shape.rank()).filter(|&d| d != axis).map(|d| src.shape.0[d]).collect();
            Type { dtype: DType::I32, shape: Shape(dims) }
        }
        Node::Slice([start, limit, stride, x]) => {
            let src = ty(x);
            let (start, limit, stride) = (ints_of(egraph, *start), ints_of(egraph, *limit), ints_of(egraph, *stride));
            let dims = (0..src.shape.rank())
                .map(|d| {
                    assert!(
                        start[d] <= limit[d] && limit[d] <= src.shape.0[d] && stride[d] >= 1,
                        "ill-typed slice {node:?}"
                    );
                    (limit[d] - start[d]).div_ceil(stride[d])
                })
                .collect();
            Type { dtype: src.dtype, shape: Shape(dims) }
        }
        Node::Pad([low, high, interior, x]) => {
            let src = ty(x);
            let (low, high, interior) = (ints_of(egraph, *low), ints_of(egraph, *high), ints_of(egraph, *interior));
            let dims = (0..src.shape.rank())
                .map(|d| ir::func::padded_dim(src.shape.0[d], low[d], high[d], interior[d]))
                .collect();
            Type { dtype: src.dtype, shape: Shape(dims) }
        }
        Node::Concat(children) => {
            let axis = single(ints_of(egraph, children[0]));
            let first = ty(&children[1]);
            let fits = |t: &Type| {
                t.dtype == first.dtype
                    && t.shape.rank() == first.shape.rank()
                    && (0..t.shape.rank()).all(|d| d == axis || t.shape.0[d] == first.shape.0[d])
            };
            assert!(
                axis < first.shape.rank() && children[1..].iter().all(|c| fits(&ty(c))),
                "ill-typed concat {node:?}"
            );
            let mut dims = first.shape.0.clone();
            dims[axis] = children[1..].iter().map(|c| ty(c).shape.0[axis]).sum();
            Type { dtype: first.dtype, shape: Shape(dims) }
        }
        Node::Reverse([dims, x]) => {
            let src = ty(x);
            let ok = ir::window::check_reverse(src.shape.rank(), ints_of(egraph, *dims));
            assert!(ok.is_ok(), "ill-typed reverse {node:?}");
            src
        }
        Node::Conv2d([attrs, lhs, rhs]) => {
            let (tl, tr) = (ty(lhs), ty(rhs));
            let conv = conv_of_ints(ints_of(egraph, *attrs));
            let dims = ir::window::conv2d_dims(&tl, &tr, &conv).unwrap_or_else(|e| panic!("ill-typed {node:?}: {e}"));
            Type::new(tl.dtype, &dims)
        }
        Node::ReduceWindowSum([w, x]) | Node::ReduceWindowMax([w, x]) => {
            let src = ty(x);
            let window = window_of_ints(ints_of(egraph, *w));
            let dims =
                ir::window::reduce_window_dims(&src, &window).unwrap_or_else(|e| panic!("ill-typed {node:?}: {e}"));
            Type::new(src.dtype, &dims)
        }
        Node::SelectAndScatter([_, x, _]) => ty(x),
        Node::Add([a, b])
        | Node::Sub([a, b])
        | Node::Mul([a, b])
        | Node::Div([a, b])
        | Node::Max([a, b])
        | Node::Min([a, b])
        | Node::Pow([a, b]) => same(a, b),
        Node::Lt([a, b])
        | Node::Le([a, b])
        | Node::Gt([a, b])
        | Node::Ge([a, b])
        | Node::Eq([a, b])
        | Node::Ne([a, b]) => same(a, b).with_dtype(DType::Bool),
        Node::Select([c, t, f]) => {
            let res = same(t, f);
            assert_eq!(ty(c), res.with_dtype(DType::Bool), "ill-typed select {node:?}");
            res
        }
        Node::Convert([dtype, x]) => ty(x).with_dtype(dtype_attr_of(egraph, *dtype)),
        Node::Broadcast([shape, dims, x]) => {
            let (src, dst, dims) = (ty(x), ints_of(egraph, *shape).to_vec(), ints_of(egraph, *dims));
            assert!(
                dims.len() == src.shape.rank()
                    && dims.windows(2).all(|w| w[0] < w[1])
                    && dims.iter().zip(&src.shape.0).all(|(&d, &s)| d < dst.len() && (s == 1 || s == dst[d])),
                "ill-typed broadcast {node:?}"
            );
            Type { dtype: src.dtype, shape: Shape(dst) }
        }
        Node::Reshape([shape, x]) => {
            let (src, dst) = (ty(x), Shape(ints_of(egraph, *shape).to_vec()));
            assert_eq!(src.shape.num_elements(), dst.num_elements(), "ill-typed reshape {node:?}");
            Type { dtype: src.dtype, shape: dst }
        }
        Node::Transpose([perm, x]) => {
            let (src, perm) = (ty(x), ints_of(egraph, *perm));
            assert_eq!(perm.len(), src.shape.rank(), "ill-typed transpose {node:?}");
            Type { dtype: src.dtype, shape: Shape(perm.iter().map(|&p| src.shape.0[p]).collect()) }
        }
        Node::ReduceSum([axes, x]) | Node::ReduceMax([axes, x]) | Node::ReduceMin([axes, x]) => {
            let (src, axes) = (ty(x), ints_of(egraph, *axes));
            let dims = (0..src.shape.rank()).filter(|d| !axes.contains(d)).map(|d| src.shape.0[d]).collect();
            Type { dtype: src.dtype, shape: Shape(dims) }
        }
        Node::MatMul([a, b]) => {
            let (ta, tb) = (ty(a), ty(b));
            assert!(
                ta.dtype == tb.dtype && ta.shape.rank() == 2 && tb.shape.rank() == 2 && ta.shape.0[1] == tb.shape.0[0],
                "ill-typed matmul {node:?}"
            );
            Type::new(ta.dtype, &[ta.shape.0[0], tb.shape.0[1]])
        }
        // The typing rules of `verify_ext`, through a one-instruction function.
        Node::Gather([a, i]) => {
            let (ta, ti) = (ty(a), ty(i));
            let mut dims = ti.shape.0.clone();
            dims.extend(&ta.shape.0[1..]);
            checked(Op::Gather, &[ta.clone(), ti], Type::new(ta.dtype, &dims), node)
        }
        Node::ScatterAdd([rows, u, i]) => {
            let (tu, ti) = (ty(u), ty(i));
            let mut dims = vec![single(ints_of(egraph, *rows))];
            dims.extend(&tu.shape.0[ti.shape.rank().min(tu.shape.rank())..]);
            checked(Op::ScatterAdd, &[tu.clone(), ti], Type::new(tu.dtype, &dims), node)
        }
        Node::BatchMatMul([a, b]) => {
            let (ta, tb) = (ty(a), ty(b));
            let mut dims = ta.shape.0[..ta.shape.rank().saturating_sub(1)].to_vec();
            dims.extend(tb.shape.0.last());
            checked(Op::BatchMatMul, &[ta.clone(), tb], Type::new(ta.dtype, &dims), node)
        }
        Node::RandomBits([shape, key]) => {
            checked(Op::RandomBits, &[ty(key)], Type::new(DType::I32, ints_of(egraph, *shape)), node)
        }
        Node::RandomSplit([shape, key]) => {
            checked(Op::RandomSplit, &[ty(key)], Type::new(DType::I32, ints_of(egraph, *shape)), node)
        }
        Node::RandomUniform([dtype, shape, key]) => {
            let res = Type::new(dtype_attr_of(egraph, *dtype), ints_of(egraph, *shape));
            checked(Op::RandomUniform, &[ty(key)], res, node)
        }
        Node::Scan(children) => {
            let scan = scan_of(egraph, children[0]).clone();
            let args: Vec<Type> = children[1..].iter().map(|c| ty(c)).collect();
            checked(Op::Scan(scan.clone()), &args, scan.result_type(scan.output), node)
        }
        Node::Param(p) => p.ty.clone(),
        Node::Const(c) => Type::scalar(c.dtype),
        Node::Iota(i) => i.ty.clone(),
        Node::Outputs(_) | Node::Attr(_) => return None,
    };
    Some(res)
}

/// `res` if `op` on operands of `args` types may yield it (the verifier's
/// rule); panics on an ill-typed e-node (an unsound rule).
fn checked(op: Op, args: &[Type], res: Type, node: &Node) -> Type {
    let mut b = ir::Builder::new("node", args);
    let operands = (0..args.len()).map(|k| b.param(k)).collect();
    let v = b.push(op, operands, res.clone());
    let func = b.finish(vec![v]);
    if let Err(msg) = ir::verify::verify(&func) {
        panic!("ill-typed e-node {node:?}: {msg}");
    }
    res
}

/// The uniform value of a value e-node whose operands are uniform, computed
/// by the reference interpreter on scalars (so it is bitwise what the
/// unoptimized program computes for every element). `None` when unknown.
fn fold(egraph: &IrEGraph, node: &Node, ty: &Type) -> Option<f64> {
    match node {
        Node::Const(c) => return Some(ir::Tensor::from_f64(c.dtype, &[], &[c.value()]).scalar_value()),
        // Pure data movement keeps a uniform value.
        Node::Broadcast([_, _, x]) | Node::Reshape([_, x]) | Node::Transpose([_, x]) => return konst_of(egraph, *x),
        // max(-inf, c, c, ...) = c, if anything is reduced at all.
        Node::ReduceMax([_, x]) => {
            let n_in = ty_of(egraph, *x).shape.num_elements();
            return if n_in > 0 && ty.shape.num_elements() > 0 { konst_of(egraph, *x) } else { None };
        }
        // A sum of n copies is not n*c in floating point; matmul likewise.
        Node::ReduceSum(_) | Node::MatMul(_) | Node::Param(_) | Node::Iota(_) => return None,
        // A window of a uniform value is uniform.
        Node::Slice([_, _, _, x]) => return konst_of(egraph, *x),
        // Uniform pieces of one value (bitwise) make a uniform whole.
        Node::Concat(children) => {
            let first = konst_of(egraph, children[1])?;
            let same = children[2..].iter().all(|&c| konst_of(egraph, c).map(f64::to_bits) == Some(first.to_bits()));
            return same.then_some(first);
        }
        // Padding mixes in zeros; argmax of a uniform row is 0, but not worth a rule.
        Node::Pad(_) | Node::ArgMax(_) => return None,
        // min(+inf, c, c, ...) = c, if anything is reduced at all.
        Node::ReduceMin([_, x]) => {
            let n_in = ty_of(egraph, *x).shape.num_elements();
            return if n_in > 0 && ty.shape.num_elements() > 0 { konst_of(egraph, *x) } else { None };
        }
        // Rows of a uniform table are uniform; sums of rows and products are not exact.
        Node::Gather([x, _]) => return konst_of(egraph, *x),
        Node::ScatterAdd(_) | Node::BatchMatMul(_) => return None,
        // A key is never uniform in a useful way; random values are not.
        Node::RandomBits(_) | Node::RandomSplit(_) | Node::RandomUniform(_) => return None,
        // Reversing a uniform value keeps it; convs and window reductions sum
        // a varying number of terms (padding), so they are not folded.
        Node::Reverse([_, x]) => return konst_of(egraph, *x),
        Node::Conv2d(_) | Node::ReduceWindowSum(_) | Node::ReduceWindowMax(_) => return None,
        Node::SelectAndScatter(_) => return None,
        // A loop is not folded (its body would have to run `length` times).
        Node::Scan(_) => return None,
        Node::Outputs(_) | Node::Attr(_) => return None,
        Node::Neg(_) | Node::Exp(_) | Node::Log(_) | Node::Tanh(_) | Node::Sqrt(_) => {}
        Node::Log1p(_) | Node::Expm1(_) | Node::Logistic(_) | Node::Sin(_) | Node::Cos(_) | Node::Rsqrt(_) => {}
        Node::Erf(_) | Node::Abs(_) | Node::Sign(_) | Node::StopGradient(_) => {}
        Node::Floor(_) | Node::Ceil(_) | Node::Round(_) => {}
        Node::Add(_) | Node::Sub(_) | Node::Mul(_) | Node::Div(_) | Node::Max(_) | Node::Min(_) | Node::Pow(_) => {}
        Node::Lt(_) | Node::Le(_) | Node::Gt(_) | Node::Ge(_) | Node::Eq(_) | Node::Ne(_) => {}
        Node::Select(_) | Node::Convert(_) => {}
    }
    // Elementwise: evaluate the op once on scalars.
    let (op, operands) = node_op(egraph, node)?;
    let values = operands.iter().map(|&id| konst_of(egraph, id)).collect::<Option<Vec<f64>>>()?;
    let param_types: Vec<Type> = operands.iter().map(|&id| Type::scalar(ty_of(egraph, id).dtype)).collect();
    let mut b = ir::Builder::new("fold", &param_types);
    let args = (0..operands.len()).map(|i| b.param(i)).collect();
    let res = b.push(op, args, Type::scalar(ty.dtype));
    let func = b.finish(vec![res]);
    let inputs: Vec<ir::Tensor> =
        param_types.iter().zip(&values).map(|(t, &v)| ir::Tensor::from_f64(t.dtype, &[], &[v])).collect();
    Some(ir::interp::run(&func, &inputs)[0].scalar_value())
}

impl Analysis<Node> for IrAnalysis {
    type Data = Data;

    fn make(egraph: &mut IrEGraph, enode: &Node, _id: Id) -> Data {
        match enode {
            Node::Attr(a) => return Data::Attr(a.clone()),
            Node::Outputs(_) => return Data::Root,
            _ => {}
        }
        let ty = node_type(egraph, enode).expect("value node has a type");
        let konst = fold(egraph, enode, &ty);
        Data::Value { ty, konst }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        match (a, b) {
            (Data::Value { ty: ta, konst: ka }, Data::Value { ty: tb, konst: kb }) => {
                // Merging values of different types means a rule is unsound.
                assert_eq!(*ta, tb, "e-graph merged values of different types: unsound rewrite");
                match (*ka, kb) {
                    (Some(x), Some(y)) if x.to_bits() == y.to_bits() => DidMerge(false, false),
                    // Two different known values: only a rule documented as not
                    // value-preserving (e.g. x + 0 -> x at x = -0) gets here.
                    // Forget the value (the lattice top), so merging stays monotone.
                    (Some(_), Some(_)) => {
                        *ka = None;
                        DidMerge(true, true)
                    }
                    (None, Some(y)) => {
                        *ka = Some(y);
                        DidMerge(true, false)
                    }
                    (Some(_), None) => DidMerge(false, true),
                    (None, None) => DidMerge(false, false),
                }
            }
            (Data::Attr(x), Data::Attr(y)) => {
                assert_eq!(*x, y, "e-graph merged different attributes: unsound rewrite");
                DidMerge(false, false)
            }
            (Data::Root, Data::Root) => DidMerge(false, false),
            (a, b) => panic!("e-graph merged different kinds of class ({a:?} and {b:?}): unsound rewrite"),
        }
    }

    /// Constant folding: a class whose every element is known gets the
    /// constant node (`c`, or `broadcast(c)` for a non-scalar) as a member.
    fn modify(egraph: &mut IrEGraph, id: Id) {
        let (ty, value) = match &egraph[id].data {
            Data::Value { ty, konst: Some(v) } => (ty.clone(), *v),
            Data::Value { konst: None, .. } | Data::Attr(_) | Data::Root => return,
        };
        let mut folded = egraph.add(Node::Const(ConstLeaf::new(value, ty.dtype)));
        if ty.shape.rank() > 0 {
            let shape = egraph.add(Node::Attr(Attr::Ints(ty.shape.0.clone())));
            let dims = egraph.add(Node::Attr(Attr::Ints(vec![])));
            folded = egraph.add(Node::Broadcast([shape, dims, folded]));
        }
        egraph.union(id, folded);
    }
}

/// The function as an egg expression; its last node is the `Outputs` root.
pub fn to_recexpr(func: &Func) -> RecExpr<Node> {
    let mut expr = RecExpr::default();
    let mut ids: Vec<Id> = Vec::with_capacity(func.insts.len());
    for inst in &func.insts {
        let arg = |k: usize| ids[inst.args[k].index()];
        let mut attr = |a: Attr| expr.add(Node::Attr(a));
        let node = match &inst.op {
            Op::Param(i) => Node::Param(ParamLeaf { index: *i, ty: inst.ty.clone() }),
            Op::Constant(v) => Node::Const(ConstLeaf::new(*v, inst.ty.dtype)),
            Op::Iota { axis } => Node::Iota(IotaLeaf { axis: *axis, ty: inst.ty.clone() }),
            Op::Neg => Node::Neg([arg(0)]),
            Op::Exp => Node::Exp([arg(0)]),
            Op::Log => Node::Log([arg(0)]),
            Op::Tanh => Node::Tanh([arg(0)]),
            Op::Sqrt => Node::Sqrt([arg(0)]),
            Op::Log1p => Node::Log1p([arg(0)]),
            Op::Expm1 => Node::Expm1([arg(0)]),
            Op::Logistic => Node::Logistic([arg(0)]),
            Op::Sin => Node::Sin([arg(0)]),
            Op::Cos => Node::Cos([arg(0)]),
            Op::Rsqrt => Node::Rsqrt([arg(0)]),
            Op::Erf => Node::Erf([arg(0)]),
            Op::Abs => Node::Abs([arg(0)]),
            Op::Sign => Node::Sign([arg(0)]),
            Op::Floor => Node::Floor([arg(0)]),
            Op::Ceil => Node::Ceil([arg(0)]),
            Op::Round => Node::Round([arg(0)]),
            Op::StopGradient => Node::StopGradient([arg(0)]),
            Op::ArgMax { axis } => Node::ArgMax([attr(Attr::Ints(vec![*axis])), arg(0)]),
            Op::Slice { start, limit, stride } => {
                let (start, limit) = (attr(Attr::Ints(start.clone())), attr(Attr::Ints(limit.clone())));
                Node::Slice([start, limit, attr(Attr::Ints(stride.clone())), arg(0)])
            }
            Op::Pad { low, high, interior } => {
                let (low, high) = (attr(Attr::Ints(low.clone())), attr(Attr::Ints(high.clone())));
                Node::Pad([low, high, attr(Attr::Ints(interior.clone())), arg(0)])
            }
            Op::Concat { axis } => {
                let mut children = vec![attr(Attr::Ints(vec![*axis]))];
                children.extend((0..inst.args.len()).map(arg));
                Node::Concat(children.into_boxed_slice())
            }
            Op::Reverse { dims } => Node::Reverse([attr(Attr::Ints(dims.clone())), arg(0)]),
            Op::Conv2d(c) => Node::Conv2d([attr(Attr::Ints(ints_of_conv(c))), arg(0), arg(1)]),
            Op::ReduceWindowSum(w) => Node::ReduceWindowSum([attr(Attr::Ints(ints_of_window(w))), arg(0)]),
            Op::ReduceWindowMax(w) => Node::ReduceWindowMax([attr(Attr::Ints(ints_of_window(w))), arg(0)]),
            Op::SelectAndScatter(w) => Node::SelectAndScatter([attr(Attr::Ints(ints_of_window(w))), arg(0), arg(1)]),
            Op::CustomVjp(_) => unreachable!("`opt::optimize_timed` inlines custom_vjp rules first"),
            Op::Scan(s) => {
                let mut children = vec![attr(Attr::Scan(ScanAttr::new(s)))];
                children.extend((0..inst.args.len()).map(arg));
                Node::Scan(children.into_boxed_slice())
            }
            Op::Add => Node::Add([arg(0), arg(1)]),
            Op::Sub => Node::Sub([arg(0), arg(1)]),
            Op::Mul => Node::Mul([arg(0), arg(1)]),
            Op::Div => Node::Div([arg(0), arg(1)]),
            Op::Max => Node::Max([arg(0), arg(1)]),
            Op::Min => Node::Min([arg(0), arg(1)]),
            Op::Pow => Node::Pow([arg(0), arg(1)]),
            Op::Lt => Node::Lt([arg(0), arg(1)]),
            Op::Le => Node::Le([arg(0), arg(1)]),
            Op::Gt => Node::Gt([arg(0), arg(1)]),
            Op::Ge => Node::Ge([arg(0), arg(1)]),
            Op::Eq => Node::Eq([arg(0), arg(1)]),
            Op::Ne => Node::Ne([arg(0), arg(1)]),
            Op::Select => Node::Select([arg(0), arg(1), arg(2)]),
            Op::Convert => Node::Convert([attr(Attr::DType(inst.ty.dtype)), arg(0)]),
            Op::Broadcast { dims } => {
                let shape = attr(Attr::Ints(inst.ty.shape.0.clone()));
                Node::Broadcast([shape, attr(Attr::Ints(dims.clone())), arg(0)])
            }
            Op::Reshape => Node::Reshape([attr(Attr::Ints(inst.ty.shape.0.clone())), arg(0)]),
            Op::Transpose { perm } => Node::Transpose([attr(Attr::Ints(perm.clone())), arg(0)]),
            Op::ReduceSum { axes } => Node::ReduceSum([attr(Attr::Ints(axes.clone())), arg(0)]),
            Op::ReduceMax { axes } => Node::ReduceMax([attr(Attr::Ints(axes.clone())), arg(0)]),
            Op::MatMul => Node::MatMul([arg(0), arg(1)]),
            Op::ReduceMin { axes } => Node::ReduceMin([attr(Attr::Ints(axes.clone())), arg(0)]),
            Op::Gather => Node::Gather([arg(0), arg(1)]),
            Op::ScatterAdd => Node::ScatterAdd([attr(Attr::Ints(vec![inst.ty.shape.0[0]])), arg(0), arg(1)]),
            Op::BatchMatMul => Node::BatchMatMul([arg(0), arg(1)]),
            Op::RandomBits => Node::RandomBits([attr(Attr::Ints(inst.ty.shape.0.clone())), arg(0)]),
            Op::RandomSplit => Node::RandomSplit([attr(Attr::Ints(inst.ty.shape.0.clone())), arg(0)]),
            Op::RandomUniform => {
                let shape = attr(Attr::Ints(inst.ty.shape.0.clone()));
                Node::RandomUniform([attr(Attr::DType(inst.ty.dtype)), shape, arg(0)])
            }
        };
        ids.push(expr.add(node));
    }
    expr.add(Node::Outputs(func.outputs.iter().map(|v| ids[v.index()]).collect()));
    expr
}

/// Rebuilds a `Func` from the e-node `best(class)` chosen for each e-class
/// reachable from `root` (the `Outputs` class). Params come first, in order
/// (all of them, used or not); then every other value in post-order of a
/// depth-first walk from the outputs, children left to right. The walk only
/// looks values up in the map, never iterates it, so the result depends on
/// nothing but the e-graph and `best`.
pub fn to_func(egraph: &IrEGraph, root: Id, name: &str, param_types: &[Type], best: impl Fn(Id) -> Node) -> Func {
    let mut b = ir::Builder::new(name, param_types);
    let mut done: HashMap<Id, ValueId> = HashMap::new();
    let mut visiting: HashSet<Id> = HashSet::new();
    let outputs = match best(root) {
        Node::Outputs(outs) => outs.to_vec(),
        other => panic!("the root class holds {other:?}, not the outputs"),
    };
    // Iterative post-order (gradient graphs are deep enough to overflow the stack).
    let mut stack: Vec<(Id, bool)> = outputs.iter().rev().map(|&id| (egraph.find(id), false)).collect();
    while let Some((id, children_done)) = stack.pop() {
        if done.contains_key(&id) {
            continue;
        }
        let node = best(id);
        let (op, operands) = node_op(egraph, &node).expect("a value class's best node is a value");
        let operands: Vec<Id> = operands.iter().map(|&c| egraph.find(c)).collect();
        if !children_done {
            // Positive node costs make the extractor's choice acyclic.
            assert!(visiting.insert(id), "extracted term has a cycle through e-class {id}");
            stack.push((id, true));
            stack.extend(operands.iter().rev().filter(|c| !done.contains_key(c)).map(|&c| (c, false)));
            continue;
        }
        let ty = ty_of(egraph, id).clone();
        let value = match op {
            Op::Param(i) => {
                assert_eq!(&ty, &param_types[i as usize], "param class type");
                ValueId(i)
            }
            op => {
                let args = operands.iter().map(|c| done[c]).collect();
                b.func.insts.push(Inst { op, args, ty });
                ValueId(b.func.insts.len() as u32 - 1)
            }
        };
        done.insert(id, value);
    }
    let outputs = outputs.iter().map(|&id| done[&egraph.find(id)]).collect();
    b.finish(outputs)
}
