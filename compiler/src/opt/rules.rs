//! The rewrite table: `rules()` gives the egg rewrites the optimizer runs,
//! one line per rule with its math in the comment.
//!
//! Every rule is exact (bitwise the same result, NaN payloads aside) unless
//! it is listed in `INEXACT` with the reason. Conditions look only at e-class
//! `Data` (type, known uniform value, attributes), never at the absence of an
//! e-node, which a later union could invalidate (egg#297). Types need no
//! condition: `IrAnalysis::merge` asserts that a rule only equates values of
//! one type, and the shape rules re-check every e-node a rule builds.

use super::egraph::ConstLeaf;
use super::egraph::{ints_of, konst_of, ty_of, Attr, IrAnalysis, IrEGraph, Node};
use crate::ir::DType;
use egg::{rewrite, Applier, ConditionalApplier, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};

pub type Rule = Rewrite<Node, IrAnalysis>;

/// Rules whose two sides may differ, and why (with a bound). The
/// differential tests demand bitwise agreement when none of these fired, and
/// 1e-12 relative agreement in f64 on each rule's own test case. ε is the
/// unit roundoff (2^-53 in f64, 2^-24 in f32).
pub const INEXACT: &[(&str, &str)] = &[
    ("add-zero-l", "0 + x is +0 for x = -0 (and c + x with c = -0 keeps x exactly)"),
    ("add-zero-r", "x + 0 is +0 for x = -0"),
    ("log-exp", "log(exp x) rounds twice (about 1 ulp of 1 absolute); exp overflows to inf for x > ~709 (f64) / ~88 (f32) and underflows to 0 for very negative x"),
    ("sum-of-broadcast", "floats: adding n copies of x rounds n - 1 times (relative error below (n - 1)ε), n * x once; copies of -0 sum to +0 but n * -0 = -0. Exact for i32 (wrapping)"),
    ("matmul-assoc-l", "(AB)C and A(BC) group the products a*b*c differently: each element differs by about (k + l)ε sum|a||b||c| (k, l the inner dims); overflow may differ"),
    ("matmul-assoc-r", "as matmul-assoc-l"),
    ("log-exp-div", "log(e^a / d) rounds exp, the division and log; a - log d rounds log and the subtraction: a few ulp of |a| + |log d| apart. Where e^a overflows (underflows) the left is +inf (-inf) and the right finite: the stable log_softmax form"),
    ("log1p", "log1p(x) is within an ulp; log(1 + x) loses x's low bits in 1 + x (relative error up to ε / |x| for small |x|)"),
    ("expm1", "expm1(x) is within an ulp; exp(x) - 1 cancels (relative error up to ε / |x| for small |x|)"),
    ("pow-two", "pow is glibc's (under 1 ulp, not always correctly rounded: measured 0.07% of f64 and 0.14% of f32 inputs differ from x*x), x*x is correctly rounded: at most 1 ulp apart"),
    ("add-of-adjacent-pads", "pad fills with +0: where one side held -0 the sum is +0, the concatenation keeps -0 (as add-zero-r)"),
    ("pow-three", "pow is glibc's (under 1 ulp), x*x*x rounds twice (under 2 ulp): at most about 3 ulp apart; x*x may overflow or underflow where x^3 does too"),
];

/// The rewrite table. Each line: name; left side => right side; the math.
pub fn rules() -> Vec<Rule> {
    let mut rules = vec![
        // Identities of arithmetic.
        rewrite!("mul-one-r"; "(mul ?x ?c)" => "?x" if is_uniform("?c", 1.0)), // x * 1 = x
        rewrite!("mul-one-l"; "(mul ?c ?x)" => "?x" if is_uniform("?c", 1.0)), // 1 * x = x
        rewrite!("div-one"; "(div ?x ?c)" => "?x" if is_uniform("?c", 1.0)),   // x / 1 = x
        rewrite!("add-zero-r"; "(add ?x ?c)" => "?x" if is_uniform("?c", 0.0) if not_known_neg_zero("?x")), // x + 0 = x (up to the sign of zero)
        rewrite!("add-zero-l"; "(add ?c ?x)" => "?x" if is_uniform("?c", 0.0) if not_known_neg_zero("?x")), // 0 + x = x (up to the sign of zero)
        rewrite!("sub-zero"; "(sub ?x ?c)" => "?x" if is_pos_zero("?c")), // x - (+0) = x, also for x = -0
        rewrite!("add-comm"; "(add ?a ?b)" => "(add ?b ?a)"),             // a + b = b + a
        rewrite!("mul-comm"; "(mul ?a ?b)" => "(mul ?b ?a)"),             // a * b = b * a
        rewrite!("neg-neg"; "(neg (neg ?x))" => "?x"),                    // -(-x) = x
        rewrite!("neg-mul"; "(neg (mul ?a ?b))" => "(mul (neg ?a) ?b)"),  // -(a b) = (-a) b (rounding is symmetric)
        rewrite!("sub-neg"; "(sub ?a (neg ?b))" => "(add ?a ?b)"),        // a - (-b) = a + b (IEEE: a - b is a + (-b))
        rewrite!("add-neg"; "(add ?a (neg ?b))" => "(sub ?a ?b)"),        // a + (-b) = a - b
        rewrite!("mul-neg-one"; "(mul ?x ?c)" => "(neg ?x)" if is_uniform("?c", -1.0)), // x * -1 = -x
        rewrite!("select-same"; "(select ?c ?x ?x)" => "?x"),             // (c ? x : x) = x
        rewrite!("convert-same"; "(convert ?d ?x)" => "?x" if has_dtype("?x", "?d")), // convert_T(x: T) = x
        // Stable forms (inexact: more accurate than the left side).
        rewrite!("log-exp"; "(log (exp ?x))" => "?x"), // ln(e^x) = x (so log(softmax x) = log_softmax x)
        rewrite!("log-exp-div"; "(log (div (exp ?a) ?d))" => "(sub ?a (log ?d))"), // ln(e^a / d) = a - ln d (naive log(softmax))
        rewrite!("log1p"; "(log (add ?c ?x))" => "(log1p ?x)" if is_uniform("?c", 1.0)), // ln(1 + x) = log1p(x)
        rewrite!("expm1"; "(sub (exp ?x) ?c)" => "(expm1 ?x)" if is_uniform("?c", 1.0)), // e^x - 1 = expm1(x)
        // Strength reduction.
        rewrite!("pow-one"; "(pow ?x ?c)" => "?x" if is_uniform("?c", 1.0)), // x^1 = x (C's pow: exact)
        rewrite!("pow-two"; "(pow ?x ?c)" => "(mul ?x ?x)" if is_uniform("?c", 2.0)), // x^2 = x x
        rewrite!("pow-three"; "(pow ?x ?c)" => "(mul (mul ?x ?x) ?x)" if is_uniform("?c", 3.0)), // x^3 = (x x) x
        rewrite!("div-pow2"; "(div ?x ?c)" => { DivByPowerOfTwo::new("?x", "?c") }), // x / 2^k = x * 2^-k (both round x 2^-k once)
        // Data movement: cancellation and canonical forms.
        rewrite!("reshape-reshape"; "(reshape ?s (reshape ?t ?x))" => "(reshape ?s ?x)"), // reshape_s . reshape_t = reshape_s
        rewrite!("reshape-id"; "(reshape ?s ?x)" => "?x" if has_shape("?x", "?s")), // reshape to x's own shape = x
        rewrite!("transpose-transpose"; "(transpose ?p (transpose ?q ?x))" => { ComposeTransposes::new("?p", "?q", "?x") }), // T_p(T_q x) = T_r x, r[i] = q[p[i]]
        rewrite!("transpose-id"; "(transpose ?p ?x)" => "?x" if is_identity("?p")), // T_id x = x
        rewrite!("broadcast-broadcast"; "(broadcast ?s ?d (broadcast ?t ?e ?x))" => { ComposeBroadcasts::new("?s", "?d", "?e", "?x") }), // B_{s,d}(B_{t,e} x) = B_{s,d.e} x
        rewrite!("broadcast-id"; "(broadcast ?s ?d ?x)" => "?x" if has_shape("?x", "?s")), // same shape forces dims = identity, so = x
        rewrite!("transpose-broadcast"; "(transpose ?p (broadcast ?s ?d ?x))" => { TransposeBroadcast::new("?p", "?s", "?d", "?x") }), // T_p(B_{s,d} x) = B_{s.p, p^-1.d} x when p^-1.d increases
        rewrite!("reshape-scalar-broadcast"; "(reshape ?s (broadcast ?t ?d ?x))" => "(broadcast ?s ?d ?x)" if is_scalar("?x")), // reshape(B c) = B c, c a scalar
        rewrite!("broadcast-unit-reshape"; "(broadcast ?s ?d (reshape ?r ?x))" => { BroadcastUnitReshape::new("?s", "?d", "?r", "?x") }), // B_{s,d}(R x) = B_{s,d'} x when R only adds 1s
        // Pieces put back together (reverse mode's cotangent of slices: a pad per slice, summed).
        rewrite!("add-of-adjacent-pads"; "(add (pad ?la ?ha ?ia ?a) (pad ?lb ?hb ?ib ?b))" => { AddOfAdjacentPads::new(["?la", "?ha", "?ia", "?a", "?lb", "?hb", "?ib", "?b"]) }), // pad a + pad b = pad(concat(a, b)) when a's region ends where b's starts
        rewrite!("concat-of-concat-l"; "(concat ?k (concat ?k ?a ?b) ?c)" => "(concat ?k ?a ?b ?c)"), // concat(concat(a, b), c) = concat(a, b, c) along one axis
        rewrite!("concat-of-concat-r"; "(concat ?k ?a (concat ?k ?b ?c))" => "(concat ?k ?a ?b ?c)"), // concat(a, concat(b, c)) = concat(a, b, c)
        // Reductions of broadcasts, over broadcast (new) axes only; n = the reduced elements per result.
        rewrite!("sum-of-broadcast"; "(reduce_sum ?a (broadcast ?s ?d ?x))" => { ReduceOfBroadcast::new(Reduce::Sum, "?a", "?s", "?d", "?x") }), // sum_a(B x) = B'(x n)
        rewrite!("max-of-broadcast"; "(reduce_max ?a (broadcast ?s ?d ?x))" => { ReduceOfBroadcast::new(Reduce::Max, "?a", "?s", "?d", "?x") }), // max_a(B x) = B' x (n > 0)
        rewrite!("min-of-broadcast"; "(reduce_min ?a (broadcast ?s ?d ?x))" => { ReduceOfBroadcast::new(Reduce::Min, "?a", "?s", "?d", "?x") }), // min_a(B x) = B' x (n > 0)
        // Matrix products.
        rewrite!("transpose-matmul"; "(transpose ?p (matmul ?a ?b))" => "(matmul (transpose ?p ?b) (transpose ?p ?a))" if is_swap("?p")), // (AB)^T = B^T A^T (same k-order sum)
        rewrite!("matmul-transposes"; "(matmul (transpose ?p ?a) (transpose ?p ?b))" => "(transpose ?p (matmul ?b ?a))" if is_swap("?p")), // A^T B^T = (BA)^T (same k-order sum)
        rewrite!("matmul-assoc-l"; "(matmul ?a (matmul ?b ?c))" => "(matmul (matmul ?a ?b) ?c)"), // A(BC) = (AB)C; extraction picks by FLOPs
        rewrite!("matmul-assoc-r"; "(matmul (matmul ?a ?b) ?c)" => "(matmul ?a (matmul ?b ?c))"), // (AB)C = A(BC)
    ];
    // Elementwise ops commute with broadcasting (and transposing): the same
    // op on the same values, computed on fewer elements (once, not twice).
    for op in UNARY {
        rules.push(pattern_rule(
            &format!("{op}-of-broadcast"),
            &format!("({op} (broadcast ?s ?d ?x))"),
            &format!("(broadcast ?s ?d ({op} ?x))"),
        )); // f(B x) = B f(x)
    }
    rules.push(pattern_rule(
        "convert-of-broadcast",
        "(convert ?t (broadcast ?s ?d ?x))",
        "(broadcast ?s ?d (convert ?t ?x))",
    )); // convert(B x) = B convert(x)
    for op in BINARY {
        let name = format!("{op}-of-broadcasts");
        let lhs = format!("({op} (broadcast ?s ?d ?x) (broadcast ?s ?d ?y))");
        let rhs: Pattern<Node> = format!("(broadcast ?s ?d ({op} ?x ?y))").parse().expect("pattern");
        let applier = ConditionalApplier { condition: same_shape("?x", "?y"), applier: rhs };
        rules.push(Rewrite::new(name, lhs.parse::<Pattern<Node>>().expect("pattern"), applier).expect("rule"));
        // B x (op) B y = B(x op y), x and y of one shape
    }
    for op in ["add", "sub", "mul", "div", "max", "min"] {
        rules.push(pattern_rule(
            &format!("{op}-of-transposes"),
            &format!("({op} (transpose ?p ?x) (transpose ?p ?y))"),
            &format!("(transpose ?p ({op} ?x ?y))"),
        )); // T x (op) T y = T(x op y)
    }
    rules
}

/// The unary elementwise ops (one `X-of-broadcast` rule each).
const UNARY: &[&str] =
    &["neg", "exp", "log", "tanh", "sqrt", "log1p", "expm1", "logistic", "sin", "cos", "rsqrt", "erf", "abs", "sign"];
/// The binary elementwise ops and comparisons (one `X-of-broadcasts` rule each).
const BINARY: &[&str] = &["add", "sub", "mul", "div", "max", "min", "pow", "lt", "le", "gt", "ge", "eq", "ne"];

fn pattern_rule(name: &str, lhs: &str, rhs: &str) -> Rule {
    let lhs: Pattern<Node> = lhs.parse().expect("pattern");
    let rhs: Pattern<Node> = rhs.parse().expect("pattern");
    Rewrite::new(name, lhs, rhs).expect("rule")
}

// Left out on purpose, as unsound in floating point:
//   x - x = 0 and x * 0 = 0 (false for inf and NaN; x * 0 is -0 for x < 0),
//   sum(sum x) = sum x over the union of axes (reorders the additions),
//   exp(log x) = x (false for x <= 0), x / x = 1 (false for 0, inf, NaN),
//   x / c = x * (1/c) for c not a power of two (1/c rounds: up to 1 ulp off),
//   x^0.5 = sqrt(x) (pow(-0, 0.5) = +0 but sqrt(-0) = -0; pow(-inf, 0.5) = inf).

/// The names of all rules, in table order.
pub fn names() -> Vec<&'static str> {
    rules().iter().map(|rule| rule.name.as_str()).collect()
}

fn var(name: &str) -> Var {
    name.parse().expect("pattern variable")
}

/// Every element of `?c` is known to equal `value` (-0 == +0 here).
fn is_uniform(c: &str, value: f64) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let c = var(c);
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| konst_of(eg, subst[c]) == Some(value)
}

/// Every element of `?c` is known to be +0 exactly (not -0).
fn is_pos_zero(c: &str) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let c = var(c);
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| konst_of(eg, subst[c]).map(f64::to_bits) == Some(0.0f64.to_bits())
}

/// `?x` is not known to be -0. `x + 0` is +0 there, so merging it with
/// `x` would put the constants -0 and +0 in one class, and extraction
/// could pick either (`1 / -(z)` became +inf for z = +0). An `x` not known
/// here takes x + 0 = x "up to the sign of zero", as XLA's simplifier does.
fn not_known_neg_zero(x: &str) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let x = var(x);
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| konst_of(eg, subst[x]).map(f64::to_bits) != Some((-0.0f64).to_bits())
}

/// `?x`'s dtype is the dtype attribute `?d`.
fn has_dtype(x: &str, d: &str) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let (x, d) = (var(x), var(d));
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| match &eg[subst[d]].data {
        super::egraph::Data::Attr(Attr::DType(dt)) => ty_of(eg, subst[x]).dtype == *dt,
        other => panic!("convert's first child is not a dtype: {other:?}"),
    }
}

/// `?x`'s shape is the int-list attribute `?s`.
fn has_shape(x: &str, s: &str) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let (x, s) = (var(x), var(s));
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| ty_of(eg, subst[x]).shape.0 == ints_of(eg, subst[s])
}

/// The permutation (or dims list) `?p` is the identity.
fn is_identity(p: &str) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let p = var(p);
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| ints_of(eg, subst[p]).iter().enumerate().all(|(i, &d)| i == d)
}

/// The permutation `?p` is `[1, 0]` (a matrix transpose).
fn is_swap(p: &str) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let p = var(p);
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| ints_of(eg, subst[p]) == [1, 0]
}

/// `?x` is a scalar (rank 0).
fn is_scalar(x: &str) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let x = var(x);
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| ty_of(eg, subst[x]).shape.rank() == 0
}

/// `?x` and `?y` have one shape.
fn same_shape(x: &str, y: &str) -> impl Fn(&mut IrEGraph, Id, &Subst) -> bool {
    let (x, y) = (var(x), var(y));
    move |eg: &mut IrEGraph, _: Id, subst: &Subst| ty_of(eg, subst[x]).shape == ty_of(eg, subst[y]).shape
}

/// Unions `new` with `eclass` (justified by the rule, for explanations);
/// returns the changed classes.
fn union_with(eg: &mut IrEGraph, eclass: Id, new: Id, rule: Symbol) -> Vec<Id> {
    if eg.union_trusted(eclass, new, rule) {
        vec![new]
    } else {
        vec![]
    }
}

fn add_ints(eg: &mut IrEGraph, v: Vec<usize>) -> Id {
    eg.add(Node::Attr(Attr::Ints(v)))
}

/// `value` (exact in `dtype`) broadcast to `x`'s type.
fn full_like(eg: &mut IrEGraph, value: f64, x: Id) -> Id {
    let ty = ty_of(eg, x).clone();
    let c = eg.add(Node::Const(ConstLeaf::new(value, ty.dtype)));
    if ty.shape.rank() == 0 {
        return c;
    }
    let (shape, dims) = (add_ints(eg, ty.shape.0.clone()), add_ints(eg, vec![]));
    eg.add(Node::Broadcast([shape, dims, c]))
}

/// `transpose_p(transpose_q(x)) = transpose_r(x)` with `r[i] = q[p[i]]`:
/// result dim i is the middle's dim p[i], which is x's dim q[p[i]].
struct ComposeTransposes {
    outer: Var,
    inner: Var,
    x: Var,
}

impl ComposeTransposes {
    fn new(outer: &str, inner: &str, x: &str) -> ComposeTransposes {
        ComposeTransposes { outer: var(outer), inner: var(inner), x: var(x) }
    }
}

impl Applier<Node, IrAnalysis> for ComposeTransposes {
    fn apply_one(
        &self,
        eg: &mut IrEGraph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Node>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (p, q) = (ints_of(eg, subst[self.outer]), ints_of(eg, subst[self.inner]));
        let perm: Vec<usize> = p.iter().map(|&i| q[i]).collect();
        let perm = eg.add(Node::Attr(Attr::Ints(perm)));
        let new = eg.add(Node::Transpose([perm, subst[self.x]]));
        union_with(eg, eclass, new, rule)
    }
}

/// `broadcast_{s,d}(broadcast_{t,e}(x)) = broadcast_{s,d.e}(x)`: x's dim i
/// goes to the middle's dim e[i], which goes to the result's dim d[e[i]].
/// Still valid: a size-1 x dim stays 1; a non-1 x dim equals the middle dim,
/// which (not being 1) equals the result dim. Still strictly increasing.
struct ComposeBroadcasts {
    shape: Var,
    outer: Var,
    inner: Var,
    x: Var,
}

impl ComposeBroadcasts {
    fn new(shape: &str, outer: &str, inner: &str, x: &str) -> ComposeBroadcasts {
        ComposeBroadcasts { shape: var(shape), outer: var(outer), inner: var(inner), x: var(x) }
    }
}

impl Applier<Node, IrAnalysis> for ComposeBroadcasts {
    fn apply_one(
        &self,
        eg: &mut IrEGraph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Node>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (d, e) = (ints_of(eg, subst[self.outer]), ints_of(eg, subst[self.inner]));
        let dims: Vec<usize> = e.iter().map(|&i| d[i]).collect();
        let dims = eg.add(Node::Attr(Attr::Ints(dims)));
        let new = eg.add(Node::Broadcast([subst[self.shape], dims, subst[self.x]]));
        union_with(eg, eclass, new, rule)
    }
}

/// `pad(a) + pad(b) = pad(concat(a, b))` (or `concat(b, a)`): both pads
/// add no interior padding and pad every axis alike but one, `k`, where
/// the block of one ends where the other's begins. Each element of the sum
/// is then one side's element plus a padding zero, or zero plus zero. The
/// outer pad keeps the common padding (none: the concatenation itself).
struct AddOfAdjacentPads {
    vars: [Var; 8],
}

impl AddOfAdjacentPads {
    fn new(names: [&str; 8]) -> AddOfAdjacentPads {
        AddOfAdjacentPads { vars: names.map(var) }
    }
}

impl Applier<Node, IrAnalysis> for AddOfAdjacentPads {
    fn apply_one(
        &self,
        eg: &mut IrEGraph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Node>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let [la, ha, ia, a, lb, hb, ib, b] = self.vars.map(|v| subst[v]);
        let (la, ha, lb, hb) =
            (ints_of(eg, la).to_vec(), ints_of(eg, ha).to_vec(), ints_of(eg, lb).to_vec(), ints_of(eg, hb).to_vec());
        if ints_of(eg, ia).iter().chain(ints_of(eg, ib)).any(|&i| i != 0) {
            return vec![];
        }
        let differing: Vec<usize> = (0..la.len()).filter(|&d| la[d] != lb[d] || ha[d] != hb[d]).collect();
        let &[k] = differing.as_slice() else { return vec![] };
        let n = ty_of(eg, eclass).shape.0[k];
        // a's block is [la, n - ha) on axis k, b's [lb, n - hb).
        let (first, second, low_k, high_k) = if n - ha[k] == lb[k] {
            (a, b, la[k], hb[k])
        } else if n - hb[k] == la[k] {
            (b, a, lb[k], ha[k])
        } else {
            return vec![];
        };
        let axis = add_ints(eg, vec![k]);
        let joined = eg.add(Node::Concat(vec![axis, first, second].into_boxed_slice()));
        let (mut low, mut high) = (la, ha);
        low[k] = low_k;
        high[k] = high_k;
        let new = if low.iter().chain(&high).all(|&p| p == 0) {
            joined
        } else {
            let rank = low.len();
            let (low, high, interior) = (add_ints(eg, low), add_ints(eg, high), add_ints(eg, vec![0; rank]));
            eg.add(Node::Pad([low, high, interior, joined]))
        };
        union_with(eg, eclass, new, rule)
    }
}

/// `x / c = x * r` with `c = ±2^k` and `r = 1/c` exact in the dtype (also
/// subnormal): both sides are the correctly rounded value of the real
/// `x 2^-k`, so they agree bitwise, for every x (0, inf and NaN too).
struct DivByPowerOfTwo {
    x: Var,
    c: Var,
}

impl DivByPowerOfTwo {
    fn new(x: &str, c: &str) -> DivByPowerOfTwo {
        DivByPowerOfTwo { x: var(x), c: var(c) }
    }
}

/// `1/c` when `c` is ±2^k and `1/c` is exact in `dtype` (a float).
fn exact_reciprocal(c: f64, dtype: DType) -> Option<f64> {
    let r = match dtype {
        DType::F32 => (1.0 / c as f32) as f64,
        DType::F64 => 1.0 / c,
        DType::I32 | DType::Bool => return None,
    };
    // Powers of two multiply exactly in f64 (no overflow for f32/f64 ranges' product 1).
    let power_of_two = |v: f64| v != 0.0 && v.is_finite() && v.abs().log2().fract() == 0.0;
    (power_of_two(c) && power_of_two(r) && r * c == 1.0).then_some(r)
}

impl Applier<Node, IrAnalysis> for DivByPowerOfTwo {
    fn apply_one(
        &self,
        eg: &mut IrEGraph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Node>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (x, c) = (subst[self.x], subst[self.c]);
        let Some(r) = konst_of(eg, c).and_then(|c_val| exact_reciprocal(c_val, ty_of(eg, x).dtype)) else {
            return vec![];
        };
        let r = full_like(eg, r, x);
        let new = eg.add(Node::Mul([x, r]));
        union_with(eg, eclass, new, rule)
    }
}

/// `transpose_p(broadcast_{s,d}(x)) = broadcast_{s',d'}(x)` with `s'[i] =
/// s[p[i]]` and `d'[j] = q[d[j]]`, `q` the inverse of `p` (x's dim j went
/// to dim d[j], which the transpose moves to q[d[j]]). Only when `d'` is
/// increasing, as a broadcast's dims must be (p keeps x's dims in order).
struct TransposeBroadcast {
    perm: Var,
    shape: Var,
    dims: Var,
    x: Var,
}

impl TransposeBroadcast {
    fn new(perm: &str, shape: &str, dims: &str, x: &str) -> TransposeBroadcast {
        TransposeBroadcast { perm: var(perm), shape: var(shape), dims: var(dims), x: var(x) }
    }
}

impl Applier<Node, IrAnalysis> for TransposeBroadcast {
    fn apply_one(
        &self,
        eg: &mut IrEGraph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Node>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (p, s, d) = (ints_of(eg, subst[self.perm]), ints_of(eg, subst[self.shape]), ints_of(eg, subst[self.dims]));
        let mut q = vec![0; p.len()];
        for (i, &pi) in p.iter().enumerate() {
            q[pi] = i;
        }
        let new_dims: Vec<usize> = d.iter().map(|&j| q[j]).collect();
        if !new_dims.windows(2).all(|w| w[0] < w[1]) {
            return vec![];
        }
        let new_shape: Vec<usize> = p.iter().map(|&i| s[i]).collect();
        let (shape, dims) = (add_ints(eg, new_shape), add_ints(eg, new_dims));
        let new = eg.add(Node::Broadcast([shape, dims, subst[self.x]]));
        union_with(eg, eclass, new, rule)
    }
}

/// `broadcast_{s,d}(reshape_r(x)) = broadcast_{s,d'}(x)` when x has no
/// size-1 dim and the reshape only inserts size-1 dims: x's dim i is the
/// reshape's i-th non-1 dim, at position j(i), so it goes to `d'[i] =
/// d[j(i)]` (increasing, as d is). The inserted 1s are broadcast anyway.
struct BroadcastUnitReshape {
    shape: Var,
    dims: Var,
    reshape: Var,
    x: Var,
}

impl BroadcastUnitReshape {
    fn new(shape: &str, dims: &str, reshape: &str, x: &str) -> BroadcastUnitReshape {
        BroadcastUnitReshape { shape: var(shape), dims: var(dims), reshape: var(reshape), x: var(x) }
    }
}

impl Applier<Node, IrAnalysis> for BroadcastUnitReshape {
    fn apply_one(
        &self,
        eg: &mut IrEGraph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Node>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (d, r) = (ints_of(eg, subst[self.dims]), ints_of(eg, subst[self.reshape]));
        let xs = &ty_of(eg, subst[self.x]).shape.0;
        let kept: Vec<usize> = (0..r.len()).filter(|&j| r[j] != 1).collect();
        let same = kept.len() == xs.len() && kept.iter().zip(xs).all(|(&j, &n)| r[j] == n);
        if !same || xs.contains(&1) {
            return vec![];
        }
        let new_dims: Vec<usize> = kept.iter().map(|&j| d[j]).collect();
        let dims = add_ints(eg, new_dims);
        let new = eg.add(Node::Broadcast([subst[self.shape], dims, subst[self.x]]));
        union_with(eg, eclass, new, rule)
    }
}

#[derive(Clone, Copy)]
enum Reduce {
    Sum,
    Max,
    Min,
}

/// `reduce_a(broadcast_{s,d}(x))` where no reduced axis holds one of x's
/// dims (`a ∩ d = ∅`): every result element reduces `n = prod(s[a])`
/// copies of one element of x. The result is `broadcast_{s',d'}(y)`, s'
/// the kept dims of s and d' the positions of d among them, with y = x * n
/// for a sum (inexact for floats, see INEXACT) and y = x for max and min
/// (max(-inf, v, v, ...) = v; needs n > 0: the empty max is -inf).
struct ReduceOfBroadcast {
    kind: Reduce,
    axes: Var,
    shape: Var,
    dims: Var,
    x: Var,
}

impl ReduceOfBroadcast {
    fn new(kind: Reduce, axes: &str, shape: &str, dims: &str, x: &str) -> ReduceOfBroadcast {
        ReduceOfBroadcast { kind, axes: var(axes), shape: var(shape), dims: var(dims), x: var(x) }
    }
}

/// Largest copy count for which n is exact in every dtype (f32 has 24 bits).
const MAX_EXACT_COUNT: usize = 1 << 24;

impl Applier<Node, IrAnalysis> for ReduceOfBroadcast {
    fn apply_one(
        &self,
        eg: &mut IrEGraph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Node>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (a, s, d) = (ints_of(eg, subst[self.axes]), ints_of(eg, subst[self.shape]), ints_of(eg, subst[self.dims]));
        if a.iter().any(|axis| d.contains(axis)) {
            return vec![];
        }
        let n: usize = a.iter().map(|&axis| s[axis]).product();
        let kept: Vec<usize> = (0..s.len()).filter(|axis| !a.contains(axis)).collect();
        let new_shape: Vec<usize> = kept.iter().map(|&axis| s[axis]).collect();
        let new_dims: Vec<usize> =
            d.iter().map(|axis| kept.iter().position(|k| k == axis).expect("a kept axis")).collect();
        let x = subst[self.x];
        let y = match self.kind {
            Reduce::Max | Reduce::Min if n == 0 => return vec![],
            Reduce::Max | Reduce::Min => x,
            Reduce::Sum if n == 0 || n > MAX_EXACT_COUNT || ty_of(eg, x).dtype == DType::Bool => return vec![],
            Reduce::Sum => {
                let count = full_like(eg, n as f64, x);
                eg.add(Node::Mul([x, count]))
            }
        };
        let (shape, dims) = (add_ints(eg, new_shape), add_ints(eg, new_dims));
        let new = eg.add(Node::Broadcast([shape, dims, y]));
        union_with(eg, eclass, new, rule)
    }
}
