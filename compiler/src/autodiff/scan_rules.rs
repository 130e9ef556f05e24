//! The derivative and batching rules of `Op::Scan`: each one is a scan of a
//! transformed body, so compile time is linear in the body's size (never in
//! the number of iterations), and the rules compose (grad of grad, vmap of
//! grad) because their output is again scans.
//!
//! Notation: a scan runs `(h', y_i) = f(c, h, x_i)` for `i` in order, with
//! consts `c`, carries `h` (from `h_0`), xs `x` and ys `y`; its results are
//! `h_N` and `ys`. Each rule handles one result (`s.output`, Note [One
//! instruction per result] in `ir/scan.rs`).
//!
//! - JVP: `(h', dh', y_i, dy_i) = jvp(f)(c, dc, h, dh, x_i, dx_i)`, a scan
//!   with the tangent carries beside the primal ones (`dh_0` = the init
//!   tangent, or zero), tangent consts and tangent xs as extra operands.
//! - VJP ("store" strategy): a forward scan whose body also emits its input
//!   carry, stacking `H[i] = h_i`; then a scan in the opposite order whose
//!   body runs `vjp(f)` at `(c, H[i], x_i)`: carries `(ct_h, ct_c)`, with
//!   `ct_h <- d f/d h^T (ct_h, ct_y_i)` and `ct_c <- ct_c + d f/d c^T (ct_h,
//!   ct_y_i)`, ys `ct_x_i = d f/d x^T (ct_h, ct_y_i)`. Its final carries are
//!   the cotangents of `h_0` and `c`, its ys those of `xs`.
//! - vmap: the scan of `vmap(f)`, carries always batched at axis 0 (a shared
//!   init is broadcast), batched consts at 0, batched xs at axis 1 (so each
//!   slice has the batch at 0); ys come out batched at axis 1.

use std::sync::Arc;

use crate::ir::dce::dce;
use crate::ir::{Builder, Func, Scan, Type, ValueId};

/// The tangent of scan result `s.output`, given operand tangents `ts`.
pub(super) fn jvp(b: &mut Builder, s: &Scan, args: &[ValueId], ts: &[Option<ValueId>]) -> Option<ValueId> {
    let body = &s.body;
    let (nc, nh, nx) = (s.n_const, s.n_carry, s.n_xs());
    let params = body.param_types();
    let is_float = |k: usize| params[k].dtype.is_float();
    // Which body params get a tangent: consts and xs that have one, every
    // float carry (a const's tangent reaches the carries after one step).
    let has_t: Vec<bool> =
        (0..body.n_params).map(|k| is_float(k) && (ts[k].is_some() || (nc..nc + nh).contains(&k))).collect();
    let wrt: Vec<usize> = (0..body.n_params).filter(|&k| has_t[k]).collect();
    let jf = super::jvp(body, &wrt);
    let float_outs: Vec<usize> =
        (0..body.outputs.len()).filter(|&k| body.ty(body.outputs[k]).dtype.is_float()).collect();
    let t_of_out = |k: usize| float_outs.iter().position(|&f| f == k).map(|p| body.outputs.len() + p);

    // The new scan's params, group by group: primal then tangent.
    let groups = [0..nc, nc..nc + nh, nc + nh..nc + nh + nx];
    let mut types = Vec::new();
    let mut order = Vec::new(); // for each new param: (is tangent, body param)
    for g in &groups {
        for k in g.clone() {
            types.push(params[k].clone());
            order.push((false, k));
        }
        for k in g.clone().filter(|&k| has_t[k]) {
            types.push(params[k].clone());
            order.push((true, k));
        }
    }
    let mut wb = Builder::new(&format!("{}_jvp", body.name), &types);
    let mut jargs = vec![ValueId(0); jf.n_params];
    for (p, &(tangent, k)) in order.iter().enumerate() {
        let at = if tangent { body.n_params + wrt.iter().position(|&w| w == k).expect("in wrt") } else { k };
        jargs[at] = wb.param(p);
    }
    let outs = super::inline_outputs(&mut wb, &jf, &jargs);
    let mut new_outs: Vec<ValueId> = outs[..nh].to_vec();
    let dh: Vec<usize> = (0..nh).filter(|&k| has_t[nc + k]).collect();
    new_outs.extend(dh.iter().map(|&k| outs[t_of_out(k).expect("a float carry has a tangent output")]));
    let ys: Vec<usize> = (nh..body.outputs.len()).collect();
    new_outs.extend(ys.iter().map(|&k| outs[k]));
    let dys: Vec<usize> = ys.iter().copied().filter(|&k| t_of_out(k).is_some()).collect();
    new_outs.extend(dys.iter().map(|&k| outs[t_of_out(k).expect("float")]));
    let new_body = dce(&wb.finish(new_outs));

    // The operands in the same order; a missing carry tangent is zero.
    let operands: Vec<ValueId> = order
        .iter()
        .map(|&(tangent, k)| match (tangent, ts[k]) {
            (false, _) => args[k],
            (true, Some(t)) => t,
            (true, None) => b.full(0.0, &params[k]),
        })
        .collect();
    let n_dc = groups[0].clone().filter(|&k| has_t[k]).count();
    let new = Scan {
        body: Arc::new(new_body),
        n_const: nc + n_dc,
        n_carry: nh + dh.len(),
        length: s.length,
        reverse: s.reverse,
        output: 0,
    };
    let k = s.output;
    let index = if k < nh {
        nh + dh.iter().position(|&d| d == k)?
    } else {
        nh + dh.len() + ys.len() + dys.iter().position(|&d| d == k)?
    };
    Some(b.scan_output(&new, index, &operands))
}

/// The cotangents of the scan's operands (`needs[k]`: operand `k` wants
/// one), given the cotangents `seeds` of some of its results (`(result,
/// cotangent)`: all siblings of one loop at once, so that one forward scan
/// stores the carries and one reverse scan carries every seed; see Note
/// [Sibling cotangents] in `reverse.rs`).
pub(super) fn vjp(
    b: &mut Builder,
    s: &Scan,
    args: &[ValueId],
    seeds: &[(usize, ValueId)],
    needs: &[bool],
) -> Vec<Option<ValueId>> {
    let body = &s.body;
    let (nc, nh, nx) = (s.n_const, s.n_carry, s.n_xs());
    let n_out = body.outputs.len();
    let params = body.param_types();
    let is_float = |k: usize| params[k].dtype.is_float();

    // Forward, storing the carry each iteration starts from: H[i] = h_i.
    let mut fwd_body = (**body).clone();
    fwd_body.outputs.extend((nc..nc + nh).map(|k| ValueId(k as u32)));
    let fwd = Scan { body: Arc::new(fwd_body), output: 0, ..s.clone() };
    let hs: Vec<ValueId> = (0..nh).map(|j| b.scan_output(&fwd, n_out + j, args)).collect();

    // The body's VJP, w.r.t. every float carry and the consts and xs wanted.
    let const_ct: Vec<usize> = (0..nc).filter(|&k| needs[k] && is_float(k)).collect();
    let carry_ct: Vec<usize> = (nc..nc + nh).filter(|&k| is_float(k)).collect();
    let xs_ct: Vec<usize> = (nc + nh..nc + nh + nx).filter(|&k| needs[k] && is_float(k)).collect();
    let wrt: Vec<usize> = const_ct.iter().chain(&carry_ct).chain(&xs_ct).copied().collect();
    let vf = super::vjp(body, &wrt);
    let float_outs: Vec<usize> = (0..n_out).filter(|&k| body.ty(body.outputs[k]).dtype.is_float()).collect();
    // A result seeded twice (two instructions for it) gets the sum.
    let mut seed_of: Vec<Option<ValueId>> = vec![None; n_out];
    for &(k, ct) in seeds {
        seed_of[k] = Some(match seed_of[k] {
            None => ct,
            Some(prev) => b.add(prev, ct),
        });
    }
    let seeded_ys: Vec<usize> = (nh..n_out).filter(|&k| seed_of[k].is_some()).collect();

    // Backward body params: consts c; carries ct_h (float carries), acc_c
    // (wanted consts); xs H (all carries), x (all xs), ct_y (each seeded y).
    let mut types: Vec<Type> = params[..nc].to_vec();
    types.extend(carry_ct.iter().map(|&k| params[k].clone()));
    types.extend(const_ct.iter().map(|&k| params[k].clone()));
    types.extend(params[nc..].iter().cloned());
    let p_cty = types.len();
    types.extend(seeded_ys.iter().map(|&k| body.ty(body.outputs[k]).clone()));
    let mut wb = Builder::new(&format!("{}_vjp", body.name), &types);
    let (p_cth, p_acc) = (nc, nc + carry_ct.len());
    let p_h = p_acc + const_ct.len();
    let mut vargs: Vec<ValueId> = (0..nc).map(|k| wb.param(k)).collect();
    vargs.extend((0..nh + nx).map(|j| wb.param(p_h + j)));
    for &k in &float_outs {
        let v = if k < nh {
            let j = carry_ct.iter().position(|&c| c == nc + k).expect("a float carry output has a float carry");
            wb.param(p_cth + j)
        } else if let Some(j) = seeded_ys.iter().position(|&y| y == k) {
            wb.param(p_cty + j)
        } else {
            let ty = body.ty(body.outputs[k]).clone();
            wb.full(0.0, &ty)
        };
        vargs.push(v);
    }
    let outs = super::inline_outputs(&mut wb, &vf, &vargs);
    let ct_of = |k: usize| outs[n_out + wrt.iter().position(|&w| w == k).expect("in wrt")];
    let mut new_outs: Vec<ValueId> = carry_ct.iter().map(|&k| ct_of(k)).collect();
    for (j, &k) in const_ct.iter().enumerate() {
        let acc = wb.param(p_acc + j);
        let ck = ct_of(k);
        new_outs.push(wb.add(acc, ck));
    }
    new_outs.extend(xs_ct.iter().map(|&k| ct_of(k)));
    let bwd_body = dce(&wb.finish(new_outs));

    // Operands: the carries' cotangents start at their seeds or zero; the
    // accumulators at zero.
    let mut operands: Vec<ValueId> = args[..nc].to_vec();
    for &k in &carry_ct {
        let v = match seed_of[k - nc] {
            Some(ct) => ct,
            None => b.full(0.0, &params[k]),
        };
        operands.push(v);
    }
    for &k in &const_ct {
        operands.push(b.full(0.0, &params[k]));
    }
    operands.extend(&hs);
    operands.extend(&args[nc + nh..]);
    operands.extend(seeded_ys.iter().map(|&k| seed_of[k].expect("seeded")));
    let bwd = Scan {
        body: Arc::new(bwd_body),
        n_const: nc,
        n_carry: carry_ct.len() + const_ct.len(),
        length: s.length,
        reverse: !s.reverse,
        output: 0,
    };
    let mut res: Vec<Option<ValueId>> = vec![None; args.len()];
    for (j, &k) in carry_ct.iter().enumerate() {
        if needs[k] {
            res[k] = Some(b.scan_output(&bwd, j, &operands));
        }
    }
    for (j, &k) in const_ct.iter().enumerate() {
        res[k] = Some(b.scan_output(&bwd, carry_ct.len() + j, &operands));
    }
    for (j, &k) in xs_ct.iter().enumerate() {
        res[k] = Some(b.scan_output(&bwd, carry_ct.len() + const_ct.len() + j, &operands));
    }
    res
}

/// The batched scan result `s.output` and its batch axis, given operands
/// with their batch axes (at least one batched).
pub(super) fn batch(b: &mut Builder, s: &Scan, args: &[(ValueId, Option<usize>)], size: usize) -> (ValueId, usize) {
    let (nc, nh) = (s.n_const, s.n_carry);
    let mut in_axes = Vec::with_capacity(args.len());
    let mut operands = Vec::with_capacity(args.len());
    for (k, &(v, d)) in args.iter().enumerate() {
        let (axis, to) = match k {
            k if k < nc => (d.map(|_| 0), 0),
            k if k < nc + nh => (Some(0), 0),
            _ => (d.map(|_| 0), 1),
        };
        in_axes.push(axis);
        operands.push(if axis.is_some() { super::vmap::to_axis(b, v, d, to, size) } else { v });
    }
    let body: Func = super::vmap(&s.body, &in_axes, size);
    let new = Scan { body: Arc::new(body), output: 0, ..s.clone() };
    let res = b.scan_output(&new, s.output, &operands);
    (res, if s.output < nh { 0 } else { 1 })
}
