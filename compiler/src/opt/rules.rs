//! The rewrite table: `rules()` gives the egg rewrites the optimizer runs,
//! one line per rule with its math in the comment.
//!
//! Every rule is exact (bitwise the same result, NaN payloads aside) unless
//! it is listed in `INEXACT` with the reason. Conditions look only at e-class
//! `Data` (type, known uniform value, attributes), never at the absence of an
//! e-node, which a later union could invalidate (egg#297). Types need no
//! condition: `IrAnalysis::merge` asserts that a rule only equates values of
//! one type, and the shape rules re-check every e-node a rule builds.

use super::egraph::{ints_of, konst_of, ty_of, Attr, IrAnalysis, IrEGraph, Node};
use egg::{rewrite, Applier, Id, PatternAst, Rewrite, Subst, Symbol, Var};

pub type Rule = Rewrite<Node, IrAnalysis>;

/// Rules whose two sides may differ, and why. The differential tests demand
/// bitwise agreement when none of these fired.
pub const INEXACT: &[(&str, &str)] = &[
    ("add-zero-l", "0 + x is +0 for x = -0 (and c + x with c = -0 keeps x exactly)"),
    ("add-zero-r", "x + 0 is +0 for x = -0"),
    ("log-exp", "log(exp x) rounds twice (about 1 ulp of 1 absolute); exp overflows to inf for x > ~709 (f64) / ~88 (f32) and underflows to 0 for very negative x"),
];

/// The rewrite table.
pub fn rules() -> Vec<Rule> {
    vec![
        rewrite!("mul-one-r"; "(mul ?x ?c)" => "?x" if is_uniform("?c", 1.0)), // x * 1 = x
        rewrite!("mul-one-l"; "(mul ?c ?x)" => "?x" if is_uniform("?c", 1.0)), // 1 * x = x
        rewrite!("div-one"; "(div ?x ?c)" => "?x" if is_uniform("?c", 1.0)),   // x / 1 = x
        rewrite!("add-zero-r"; "(add ?x ?c)" => "?x" if is_uniform("?c", 0.0)), // x + 0 = x (up to the sign of zero)
        rewrite!("add-zero-l"; "(add ?c ?x)" => "?x" if is_uniform("?c", 0.0)), // 0 + x = x (up to the sign of zero)
        rewrite!("sub-zero"; "(sub ?x ?c)" => "?x" if is_pos_zero("?c")),      // x - (+0) = x, also for x = -0
        rewrite!("add-comm"; "(add ?a ?b)" => "(add ?b ?a)"),                  // a + b = b + a
        rewrite!("mul-comm"; "(mul ?a ?b)" => "(mul ?b ?a)"),                  // a * b = b * a
        rewrite!("neg-neg"; "(neg (neg ?x))" => "?x"),                         // -(-x) = x
        rewrite!("log-exp"; "(log (exp ?x))" => "?x"),                         // ln(e^x) = x (inexact, see INEXACT)
        rewrite!("select-same"; "(select ?c ?x ?x)" => "?x"),                  // (c ? x : x) = x
        rewrite!("convert-same"; "(convert ?d ?x)" => "?x" if has_dtype("?x", "?d")), // convert_T(x: T) = x
        rewrite!("reshape-reshape"; "(reshape ?s (reshape ?t ?x))" => "(reshape ?s ?x)"), // reshape_s . reshape_t = reshape_s
        rewrite!("reshape-id"; "(reshape ?s ?x)" => "?x" if has_shape("?x", "?s")), // reshape to x's own shape = x
        rewrite!("transpose-transpose"; "(transpose ?p (transpose ?q ?x))" => { ComposeTransposes::new("?p", "?q", "?x") }), // T_p(T_q x) = T_r x, r[i] = q[p[i]]
        rewrite!("transpose-id"; "(transpose ?p ?x)" => "?x" if is_identity("?p")), // T_id x = x
        rewrite!("transpose-matmul"; "(transpose ?p (matmul ?a ?b))" => "(matmul (transpose ?p ?b) (transpose ?p ?a))" if is_swap("?p")), // (AB)^T = B^T A^T (same k-order sum)
        rewrite!("broadcast-broadcast"; "(broadcast ?s ?d (broadcast ?t ?e ?x))" => { ComposeBroadcasts::new("?s", "?d", "?e", "?x") }), // B_{s,d}(B_{t,e} x) = B_{s,d.e} x
        rewrite!("broadcast-id"; "(broadcast ?s ?d ?x)" => "?x" if has_shape("?x", "?s")), // same shape forces dims = identity, so = x
    ]
}

// Left out on purpose, as unsound in floating point:
//   x - x = 0 and x * 0 = 0 (false for inf and NaN; x * 0 is -0 for x < 0),
//   sum(sum x) = sum x over the union of axes (reorders the additions),
//   exp(log x) = x (false for x <= 0), x / x = 1 (false for 0, inf, NaN).

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

/// Adds `new` and unions it with `eclass`; returns the changed classes.
fn union_with(eg: &mut IrEGraph, eclass: Id, new: Id) -> Vec<Id> {
    if eg.union(eclass, new) {
        vec![new]
    } else {
        vec![]
    }
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
        _: Symbol,
    ) -> Vec<Id> {
        let (p, q) = (ints_of(eg, subst[self.outer]), ints_of(eg, subst[self.inner]));
        let perm: Vec<usize> = p.iter().map(|&i| q[i]).collect();
        let perm = eg.add(Node::Attr(Attr::Ints(perm)));
        let new = eg.add(Node::Transpose([perm, subst[self.x]]));
        union_with(eg, eclass, new)
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
        _: Symbol,
    ) -> Vec<Id> {
        let (d, e) = (ints_of(eg, subst[self.outer]), ints_of(eg, subst[self.inner]));
        let dims: Vec<usize> = e.iter().map(|&i| d[i]).collect();
        let dims = eg.add(Node::Attr(Attr::Ints(dims)));
        let new = eg.add(Node::Broadcast([subst[self.shape], dims, subst[self.x]]));
        union_with(eg, eclass, new)
    }
}
