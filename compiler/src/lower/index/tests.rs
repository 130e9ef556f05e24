//! Indexing against an independent reference: random static indices on
//! random shapes, lowered to IR and run by the interpreter, compared with a
//! direct NumPy-style selection (per axis: the list of picked positions,
//! then their cartesian product). Check mode is compared too: the same
//! index on symbolic dims gives a type of the right rank, and an index past
//! a known dim is an error.

use super::super::elab::{CallArg, Elaborator};
use super::super::value::{FnRef, TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::Code;
use crate::ir::generate::Rng;
use crate::ir::{interp, Builder, DType, Tensor, Type, ValueId};
use crate::span::Span;

/// One random index item: its text and what it selects on an axis of size `d`
/// (`None` for `...`; `Some((positions, keeps_axis))`).
fn random_item(rng: &mut Rng, d: usize) -> (String, Vec<usize>, bool) {
    let d_i = d as i64;
    let signed = |rng: &mut Rng, i: usize| -> String {
        if rng.chance(0.4) {
            format!("{}", i as i64 - d_i)
        } else {
            i.to_string()
        }
    };
    if rng.chance(0.35) {
        let i = rng.below(d);
        return (signed(rng, i), vec![i], false);
    }
    if rng.chance(0.3) {
        // A non-empty slice a:b:-s with -1 <= b < a < d, b = -1 written as a missing end.
        let a = rng.below(d);
        let b = rng.below(a + 1) as i64 - 1;
        let s = 1 + rng.below(3);
        let start = if a == d - 1 && rng.chance(0.5) { String::new() } else { signed(rng, a) };
        let end = if b < 0 { String::new() } else { signed(rng, b as usize) };
        let picked = (0..=a).rev().take_while(|&i| i as i64 > b).step_by(s).collect();
        return (format!("{start}:{end}:-{s}"), picked, true);
    }
    // A non-empty slice a:b:s with 0 <= a < b <= d.
    let a = rng.below(d);
    let b = a + 1 + rng.below(d - a);
    let s = 1 + rng.below(3);
    let start = if a == 0 && rng.chance(0.5) { String::new() } else { signed(rng, a) };
    let end = if b == d && rng.chance(0.5) {
        String::new()
    } else if b < d {
        signed(rng, b)
    } else {
        b.to_string()
    };
    let step = if s == 1 && rng.chance(0.5) { String::new() } else { format!(":{s}") };
    (format!("{start}:{end}{step}"), (a..b).step_by(s).collect(), true)
}

fn program(items: &str) -> super::super::Program {
    let (prog, diags) = super::super::load("t.jl", &format!("fn t(x) = x[{items}]\n"));
    assert!(diags.is_empty(), "{diags:?}");
    prog
}

/// Elaborates `t(x)` with `x` of type `ty`: built (`input` given) or checked.
fn elaborate(
    prog: &super::super::Program,
    ty: Ty,
    build: bool,
) -> (Val, Option<Builder>, Vec<crate::diagnostic::Diagnostic>) {
    let builder = build.then(|| Builder::new("t", &[ty.to_ir().expect("known")]));
    let mut el = Elaborator::new(prog, builder);
    let id = build.then_some(ValueId(0));
    let arg = CallArg { name: None, name_span: None, value: Val::Tensor(TVal { ty, id }), span: Span::default() };
    let out = el.call_fn(FnRef { module: 0, item: 0 }, None, vec![arg], Span::default());
    (out, el.builder.take(), el.diags)
}

#[test]
fn random_static_indices_match_a_reference() {
    for seed in 0..1000u64 {
        let mut rng = Rng(seed);
        let rank = 1 + rng.below(3);
        let dims: Vec<usize> = (0..rank).map(|_| 1 + rng.below(5)).collect();
        // Items for a prefix of the axes, optionally with `...` somewhere.
        let n_items = rng.below(rank + 1);
        let ellipsis_at = rng.chance(0.4).then(|| rng.below(n_items + 1));
        let mut texts = Vec::new();
        let mut picks: Vec<(Vec<usize>, bool)> = Vec::new();
        let mut axis = 0;
        for k in 0..=n_items {
            if ellipsis_at == Some(k) {
                texts.push("...".to_string());
                // `...` covers the axes the items after it do not.
                let after = n_items - k;
                while axis < rank - after {
                    picks.push(((0..dims[axis]).collect(), true));
                    axis += 1;
                }
            }
            if k < n_items {
                let (t, p, keep) = random_item(&mut rng, dims[axis]);
                texts.push(t);
                picks.push((p, keep));
                axis += 1;
            }
        }
        while axis < rank {
            picks.push(((0..dims[axis]).collect(), true));
            axis += 1;
        }
        let items = texts.join(", ");
        let ctx = format!("seed {seed}: x: f32{dims:?}, x[{items}]");
        // The reference: every combination of picked positions, row-major.
        let strides: Vec<usize> = (0..rank).map(|a| dims[a + 1..].iter().product()).collect();
        let mut want = vec![0.0f32];
        let mut flat = vec![0usize];
        for (a, (pos, _)) in picks.iter().enumerate() {
            let mut next = Vec::new();
            for &f in &flat {
                for &p in pos {
                    next.push(f + p * strides[a]);
                }
            }
            flat = next;
        }
        want.clear();
        want.extend(flat.iter().map(|&f| f as f32));
        let want_dims: Vec<usize> = picks.iter().filter(|(_, keep)| *keep).map(|(p, _)| p.len()).collect();

        let prog = program(&items);
        let ty = Ty::known(&Type::new(DType::F32, &dims));
        let (out, builder, diags) = elaborate(&prog, ty, true);
        assert!(diags.is_empty(), "{ctx}: {diags:?}");
        let Val::Tensor(t) = out else { panic!("{ctx}: not a tensor") };
        let func = builder.expect("builder").finish(vec![t.id.expect("built")]);
        crate::ir::verify::assert_valid(&func, "index test");
        let n: usize = dims.iter().product();
        let input = Tensor::f32(&dims, (0..n).map(|i| i as f32).collect());
        let got = interp::run(&func, &[input]);
        assert_eq!(got[0], Tensor::f32(&want_dims, want), "{ctx}\n{}", crate::ir::text::print(&func));

        // Check mode on symbolic dims: no error, the right rank.
        let sym = Ty { dtype: DType::F32, dims: (0..rank).map(|a| Dim::Sym(format!("D{a}"))).collect() };
        let (out, _, diags) = elaborate(&prog, sym, false);
        assert!(diags.is_empty(), "{ctx} (symbolic): {diags:?}");
        let Val::Tensor(t) = out else { panic!("{ctx}: not a tensor") };
        assert_eq!(t.ty.rank(), want_dims.len(), "{ctx} (symbolic): {}", t.ty);
        // A length known without the dims must be the true one.
        for (got, want) in t.ty.dims.iter().zip(&want_dims) {
            if let Dim::Known(n) = got {
                assert_eq!(n, want, "{ctx} (symbolic): {}", t.ty);
            }
        }
    }
}

#[test]
fn indices_past_a_known_dim_are_shape_errors_even_beside_symbolic_dims() {
    for (items, bad) in
        [("0, 5", true), ("0, -6", true), (":, 2:6", true), (":, -5:", false), ("7, 4", false)].into_iter().chain([
            // Negative steps: the start is an element (< d), a written end too; empty is a shape error.
            (":, 5::-1", true),
            (":, :-6:-1", true),
            (":, 4:0:-1", false),
            (":, -1::-2", false),
            (":, 0:4:-1", true),
            (":, 2:2:-1", true),
        ])
    {
        let prog = program(items);
        let ty = Ty { dtype: DType::F32, dims: vec![Dim::Sym("B".into()), Dim::Known(5)] };
        let (_, _, diags) = elaborate(&prog, ty, false);
        assert_eq!(diags.iter().any(|d| d.code == Code::ShapeMismatch), bad, "x[{items}]: {diags:?}");
    }
}

#[test]
fn slices_of_symbolic_dims_keep_the_lengths_they_can_know() {
    for (items, want) in
        [("0:3", "f32[3]"), ("-2:", "f32[2]"), (":", "f32[N]"), ("::1", "f32[N]"), ("1:", "")].into_iter().chain([
            ("::-1", "f32[N]"),
            ("3::-1", "f32[4]"),
            ("3::-2", "f32[2]"),
            (":-3:-1", "f32[2]"),
            ("-1:-4:-2", "f32[2]"),
            ("5:1:-2", "f32[2]"),
            ("::-2", ""),
            ("-2::-1", ""),
        ])
    {
        let prog = program(items);
        let ty = Ty { dtype: DType::F32, dims: vec![Dim::Sym("N".into())] };
        let (out, _, diags) = elaborate(&prog, ty, false);
        assert!(diags.is_empty(), "{diags:?}");
        let Val::Tensor(t) = out else { panic!("not a tensor") };
        if want.is_empty() {
            assert!(matches!(t.ty.dims[0], Dim::Sym(_)), "x[{items}] is {}", t.ty);
        } else {
            assert_eq!(t.ty.to_string(), want, "x[{items}]");
        }
    }
}

#[test]
fn a_zero_step_is_an_error() {
    let prog = program("::0");
    let ty = Ty::known(&Type::new(DType::F32, &[4]));
    let (_, _, diags) = elaborate(&prog, ty, false);
    assert!(diags.iter().any(|d| d.message == "a slice step cannot be 0"), "{diags:?}");
}
