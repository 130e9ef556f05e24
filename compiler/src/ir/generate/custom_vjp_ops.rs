//! The generator step for `Op::CustomVjp`: a random function of `x` (one
//! nested random step, which may hold a scan or another custom_vjp, two
//! levels at most), `fwd` = the same function also returning `x` as the
//! residual, and a rule that is linear in the cotangent:
//! `bwd(x, ct) = tanh(x) * sum(ct)`. The generated programs test evaluation,
//! the text form, batching and the backends (which inline the function);
//! the rule itself is tested in `ir/custom_vjp/tests.rs`.

use std::sync::Arc;

use super::Gen;
use crate::ir::func::{Builder, Func, ValueId};
use crate::ir::op::Op;

/// How deeply generated custom_vjp functions (and scans) nest.
const MAX_DEPTH: usize = 2;

impl Gen {
    pub(super) fn random_custom_vjp(&mut self, x: ValueId) -> ValueId {
        let ty = self.ty(x);
        if self.depth >= MAX_DEPTH || ty.dtype != self.float || !self.opts.custom_vjp {
            return self.b.neg(x);
        }
        let mut body = Gen {
            rng: super::Rng(self.rng.next_u64()),
            b: Builder::new("f", std::slice::from_ref(&ty)),
            pool: vec![],
            float: self.float,
            opts: self.opts.clone(),
            depth: self.depth + 1,
        };
        let p = body.b.param(0);
        body.pool = vec![p];
        let mut y = body.step();
        if body.b.ty(y).dtype != self.float {
            y = body.b.unary(Op::Tanh, p);
        }
        let y_ty = body.b.ty(y).clone();
        let primal: Func = body.b.finish(vec![y]);
        let fwd = Func { name: "f_fwd".into(), outputs: vec![y, p], ..primal.clone() };
        let bwd = {
            let mut b = Builder::new("f_bwd", &[ty.clone(), y_ty.clone()]);
            let (xp, ct) = (b.param(0), b.param(1));
            let all: Vec<usize> = (0..y_ty.shape.rank()).collect();
            let s = b.reduce_sum(ct, all);
            let s = b.broadcast_to(s, &ty.shape);
            let t = b.unary(Op::Tanh, xp);
            let g = b.mul(t, s);
            b.finish(vec![g])
        };
        self.b.custom_vjp(Arc::new(primal), Arc::new(fwd), Arc::new(bwd), &[x])[0]
    }
}
