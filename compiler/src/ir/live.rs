//! Peak live memory of a `Func`, measured on the IR: the largest total size
//! of the values live at one point of the instruction order, where a value is
//! live from its definition to its last use (params from the start, outputs
//! to the end), and a scan adds its body's own peak while it runs (the
//! iterations reuse one body's buffers; the body's params alias the scan's
//! operands and carries, counted outside). A backend-independent measure of
//! what storing versus recomputing (`checkpoint`) costs in memory; the CPU
//! arena plans a similar size, minus the values fused away.

use super::func::Func;
use super::op::Op;

/// The peak, in bytes (`DType::size_bytes` per element).
pub fn peak_live_bytes(f: &Func) -> usize {
    peak_of(f, true)
}

/// `count_params` false for a scan body: its params are the scan's operands
/// and carries, already counted outside.
fn peak_of(f: &Func, count_params: bool) -> usize {
    let n = f.insts.len();
    let mut last_use: Vec<usize> = (0..n).collect();
    for (i, inst) in f.insts.iter().enumerate() {
        for a in &inst.args {
            last_use[a.0 as usize] = i;
        }
    }
    for o in &f.outputs {
        last_use[o.0 as usize] = n;
    }
    let bytes = |i: usize| {
        if i < f.n_params && !count_params {
            return 0;
        }
        let t = &f.insts[i].ty;
        t.shape.num_elements() * t.dtype.size_bytes()
    };
    // live[i] = sum of the values defined at or before i and used at or after i.
    let mut delta = vec![0isize; n + 2];
    for i in 0..n {
        let start = if i < f.n_params { 0 } else { i };
        delta[start] += bytes(i) as isize;
        delta[last_use[i] + 1] -= bytes(i) as isize;
    }
    let mut live = 0isize;
    let mut peak = 0usize;
    for (i, inst) in f.insts.iter().enumerate() {
        live += delta[i];
        let inner = match &inst.op {
            Op::Scan(s) => peak_of(&s.body, false),
            Op::CustomVjp(c) => peak_of(&c.primal, false),
            _ => 0,
        };
        peak = peak.max(live as usize + inner);
    }
    peak
}

#[cfg(test)]
mod tests;
