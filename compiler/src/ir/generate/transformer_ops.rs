//! Generator steps for the gather/scatter, batched-matmul, reduce-min and
//! random ops: each returns a value of the program's float dtype.
//!
//! Indices come from float data converted to i32, so they are often out of
//! range or negative, which exercises the clamping rule. Random keys are
//! built from constants (`[c, c + 1]`), so they are exact under any rewrite.

use super::Gen;
use crate::ir::func::ValueId;
use crate::ir::types::{DType, Shape, Type};

impl Gen {
    pub(super) fn transformer_step(&mut self, x: ValueId) -> ValueId {
        let ty = self.ty(x);
        let (rank, n) = (ty.shape.rank(), ty.shape.num_elements());
        let max = self.opts.max_elements;
        match self.rng.below(5) {
            0 if rank >= 1 => {
                let axes: Vec<usize> = (0..rank).filter(|_| self.rng.chance(0.5)).collect();
                let axes = if axes.is_empty() { vec![self.rng.below(rank)] } else { axes };
                self.b.reduce_min(x, axes)
            }
            // Rows of x at indices made from another pool value.
            1 if rank >= 1 && ty.shape.0[0] >= 1 => {
                let row: usize = ty.shape.0[1..].iter().product();
                let idx_src = self.pick();
                let idx_ty = self.ty(idx_src);
                if idx_ty.shape.num_elements() * row > max {
                    return self.b.neg(x);
                }
                let scale = self.full(2.0, idx_src);
                let scaled = self.b.mul(idx_src, scale);
                let idx = self.b.convert(scaled, DType::I32);
                self.b.gather(x, idx)
            }
            // x's rows added into 1..=4 rows at indices made from x itself.
            2 if rank >= 1 => {
                let rows = 1 + self.rng.below(4);
                let row: usize = ty.shape.0[1..].iter().product();
                if rows * row > max {
                    return self.b.neg(x);
                }
                let summed = self.b.reduce_sum(x, (1..rank).collect());
                let idx = self.b.convert(summed, DType::I32);
                self.b.scatter_add(x, idx, rows)
            }
            // x (rank >= 2) times its own batched transpose: [b.., m, m].
            3 if self.opts.matmul && rank >= 2 => {
                let m = ty.shape.0[rank - 2];
                if n / ty.shape.0[rank - 1].max(1) * m > max {
                    return self.b.neg(x);
                }
                let t = self.b.transpose_last2(x);
                self.b.batch_matmul(x, t)
            }
            _ => self.random_step(x),
        }
    }

    /// uniform(key) + x, or bits / split of a constant key scaled to about
    /// [-2, 2]; sometimes from a stack of keys, one per row of x (the form
    /// vmap's batching rule makes).
    fn random_step(&mut self, x: ValueId) -> ValueId {
        let ty = self.ty(x);
        let stack: Vec<usize> = match ty.shape.0.first() {
            Some(&rows) if self.rng.chance(0.3) => vec![rows],
            _ => vec![],
        };
        let key_ty = Type::new(DType::I32, &[&stack[..], &[2]].concat());
        let iota = self.b.iota(key_ty.clone(), stack.len());
        let c = (self.rng.next_u64() as i32) as f64;
        let base = self.b.full(c, &key_ty);
        let mut key = self.b.add(iota, base);
        if !stack.is_empty() {
            let row = self.b.iota(key_ty.clone(), 0);
            key = self.b.add(key, row);
        }
        let scale_bits = |g: &mut Gen, bits: ValueId| {
            let f = g.b.convert(bits, g.float);
            let t = g.ty(f);
            let s = g.b.full(1e-9, &t);
            g.b.mul(f, s)
        };
        match self.rng.below(3) {
            0 => {
                let u = self.b.random_uniform(key, &ty);
                self.b.add(x, u)
            }
            1 => {
                let bits = self.b.random_bits(key, &ty.shape);
                scale_bits(self, bits)
            }
            _ => {
                let k = 1 + self.rng.below(3);
                let keys = self.b.random_split(key, &Shape([&stack[..], &[k]].concat()));
                scale_bits(self, keys)
            }
        }
    }
}
