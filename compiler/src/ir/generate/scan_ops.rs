//! The generator step for `Op::Scan`: a small loop whose body is itself a
//! random program (a carry update of a fixed form, plus a y from one nested
//! random step, which may be a scan again, two levels at most). Returns a
//! value of the program's float dtype: the final carry or the stacked ys
//! (the other result, when there is one, joins the pool, so siblings of one
//! loop are both used).

use std::sync::Arc;

use super::{Gen, Rng};
use crate::ir::func::{Builder, ValueId};
use crate::ir::op::Op;
use crate::ir::types::{Shape, Type};

/// How deeply generated scans nest.
const MAX_DEPTH: usize = 2;

impl Gen {
    pub(super) fn random_scan(&mut self, x: ValueId) -> ValueId {
        let ty = self.ty(x);
        if self.depth >= MAX_DEPTH {
            return self.b.neg(x);
        }
        // Scan over x's rows, or carry x itself for 1..=4 steps.
        let with_xs = ty.shape.rank() >= 1 && ty.shape.0[0] >= 1 && self.rng.chance(0.6);
        let (length, slice_ty) = match with_xs {
            true => (ty.shape.0[0], Type { dtype: ty.dtype, shape: Shape(ty.shape.0[1..].to_vec()) }),
            false => (1 + self.rng.below(4), ty.clone()),
        };
        let same: Vec<ValueId> = self.pool.iter().copied().filter(|&v| self.b.ty(v) == &slice_ty).collect();
        let konst = (!same.is_empty() && self.rng.chance(0.6)).then(|| self.rng.pick(&same));
        let init = match with_xs {
            false => x,
            true if !same.is_empty() && self.rng.chance(0.5) => self.rng.pick(&same),
            true => {
                let c = self.constant();
                self.b.full(c, &slice_ty)
            }
        };
        let mut args: Vec<ValueId> = konst.into_iter().collect();
        args.push(init);
        if with_xs {
            args.push(x);
        }
        // Every param (const, carry, x slice) has the slice type.
        let param_types: Vec<Type> = vec![slice_ty.clone(); args.len()];

        // The body: h' of a fixed form, y from a nested random step.
        let mut body = Gen {
            rng: Rng(self.rng.next_u64()),
            b: Builder::new("body", &param_types),
            pool: vec![],
            float: self.float,
            opts: self.opts.clone(),
            depth: self.depth + 1,
        };
        body.pool = (0..param_types.len()).map(|i| body.b.param(i)).collect();
        let n_const = usize::from(konst.is_some());
        let h = body.b.param(n_const);
        let other = if with_xs {
            body.b.param(n_const + 1)
        } else if konst.is_some() {
            body.b.param(0)
        } else {
            let c = body.constant();
            body.b.full(c, &slice_ty)
        };
        let new_h = match body.rng.below(4) {
            0 => body.b.add(h, other),
            1 => body.b.binary(Op::Max, h, other),
            2 => {
                let c = if konst.is_some() { body.b.param(0) } else { body.b.full(0.5, &slice_ty) };
                let hc = body.b.mul(h, c);
                let s = body.b.add(hc, other);
                body.b.unary(Op::Tanh, s)
            }
            _ => body.b.mul(h, other),
        };
        body.pool.push(new_h);
        let y = if body.rng.chance(0.7) { body.step() } else { new_h };
        let y_elems = body.b.ty(y).shape.num_elements();
        let mut outputs = vec![new_h];
        if length * y_elems <= self.opts.max_elements && body.b.ty(y).dtype == self.float {
            outputs.push(y);
        }
        let body = body.b.finish(outputs);
        let reverse = self.rng.chance(0.3);
        let results = self.b.scan(Arc::new(body), n_const, 1, length, reverse, &args);
        match results.as_slice() {
            [carry] => *carry,
            [carry, ys] if self.rng.chance(0.5) => {
                self.pool.push(*carry);
                *ys
            }
            [carry, ys] => {
                self.pool.push(*ys);
                *carry
            }
            other => unreachable!("a generated scan has one or two results, not {}", other.len()),
        }
    }
}
