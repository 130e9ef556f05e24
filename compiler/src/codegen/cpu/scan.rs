//! `Op::Scan` on the CPU: the body is compiled once as its own `CpuFunc`, and
//! a `ScanStep` between the parent's compiled chunks loops over the
//! iterations, copying operands into the body's param buffers and results
//! out of its output buffers. Compile time is the body's, whatever the
//! number of iterations.
//!
//! Consumes a verified `Func` and the indices of a run of adjacent sibling
//! scan instructions (one loop, several results: Note [One instruction per
//! result] in `ir/scan.rs`); produces a step that `CpuFunc::run` calls with
//! the parent's buffer table after the instructions before the run's last
//! one. The memory plan keeps operands live through the run's last
//! instruction and every result's buffer is allocated by then, and a result
//! never shares bytes with an operand (`plan.rs`), so the step reads and
//! writes the parent's buffers directly. Results are bitwise the body's, so
//! the loop is bitwise equal to the interpreter wherever the body is.

use super::{compile_with, CodegenError, CpuFunc, Options};
use crate::ir::{Func, Op, Scan};

/// One loop: the compiled body and where its operands and results live.
pub(super) struct ScanStep {
    body: CpuFunc,
    scan: Scan,
    /// Value index of each operand (`consts ++ init ++ xs`) in the parent.
    args: Vec<usize>,
    /// Bytes of each body param (an xs operand's slice); 0 for a param the
    /// body never reads (not copied).
    param_bytes: Vec<usize>,
    /// Bytes of each body output (a y slice for ys).
    out_bytes: Vec<usize>,
    /// The results this step writes: (result index, parent value index).
    results: Vec<(usize, usize)>,
}

/// The runs of adjacent sibling scans of `func`, in order, without the
/// results nothing reads; each run is computed once, at its last member.
/// (A dead result's buffer is live only at its own instruction, so writing
/// it later could clobber another buffer.)
pub(super) fn groups(func: &Func) -> Vec<Vec<usize>> {
    let mut used = vec![false; func.insts.len()];
    for inst in &func.insts {
        for a in &inst.args {
            used[a.index()] = true;
        }
    }
    for o in &func.outputs {
        used[o.index()] = true;
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    // `open`: every instruction since the last group's first member is a
    // sibling of it (so the group can still grow).
    let mut open = false;
    for (index, inst) in func.insts.iter().enumerate() {
        let Op::Scan(s) = &inst.op else { continue };
        let prev = &func.insts[index.saturating_sub(1)];
        let sibling = index > 0 && prev.args == inst.args && matches!(&prev.op, Op::Scan(q) if q.same_loop(s));
        open &= sibling;
        if !used[index] {
            continue;
        }
        match groups.last_mut() {
            Some(group) if open => group.push(index),
            _ => {
                groups.push(vec![index]);
                open = true;
            }
        }
    }
    groups
}

fn bytes(ty: &crate::ir::Type) -> usize {
    ty.shape.num_elements() * ty.dtype.size_bytes()
}

impl ScanStep {
    /// Compiles the body of the scan run `group` (instruction indices of `func`).
    pub(super) fn new(func: &Func, group: &[usize], options: &Options) -> Result<ScanStep, CodegenError> {
        let first = &func.insts[group[0]];
        let Op::Scan(scan) = &first.op else { unreachable!("a scan group holds scans") };
        // The body with the parent's options (inline math or libm alike).
        let body = compile_with(&scan.body, options)?;
        let results = group
            .iter()
            .map(|&index| match &func.insts[index].op {
                Op::Scan(s) => (s.output, index),
                other => unreachable!("a scan group holds {other:?}"),
            })
            .collect();
        let body_fn = &scan.body;
        let mut read = vec![false; body_fn.n_params];
        for a in body_fn.insts.iter().flat_map(|i| &i.args).chain(&body_fn.outputs) {
            if a.index() < body_fn.n_params {
                read[a.index()] = true;
            }
        }
        let param_bytes = body_fn.param_types().iter().zip(&read).map(|(t, &r)| if r { bytes(t) } else { 0 }).collect();
        Ok(ScanStep {
            param_bytes,
            out_bytes: scan.body.output_types().iter().map(bytes).collect(),
            body,
            scan: scan.clone(),
            args: first.args.iter().map(|a| a.index()).collect(),
            results,
        })
    }

    /// Runs the loop on the parent's buffers.
    ///
    /// # Safety
    /// `table` is the parent's buffer table, with every operand of the scan
    /// computed and every result buffer allocated (see the module doc).
    pub(super) unsafe fn run(&mut self, table: &[*mut u8]) {
        let (nc, nh) = (self.scan.n_const, self.scan.n_carry);
        // The arena is never resized, so these stay valid across `execute`.
        let body_base = self.body.arena.as_mut_ptr() as *mut u8;
        let param_ptrs: Vec<*mut u8> = (0..self.args.len()).map(|p| body_base.add(self.body.offsets[p])).collect();
        let out_ptrs: Vec<*const u8> =
            self.body.outputs.iter().map(|o| body_base.add(self.body.offsets[o.index()]) as *const u8).collect();
        let mut carries: Vec<Vec<u8>> = (0..nh)
            // A carry has its body output's type (`verify`), read or not.
            .map(|k| std::slice::from_raw_parts(table[self.args[nc + k]], self.out_bytes[k]).to_vec())
            .collect();
        for i in self.scan.order() {
            for p in 0..self.args.len() {
                let n = self.param_bytes[p];
                if n == 0 {
                    continue;
                }
                let src = match p {
                    p if p < nc => table[self.args[p]] as *const u8,
                    p if p < nc + nh => carries[p - nc].as_ptr(),
                    p => table[self.args[p]].add(i * n) as *const u8,
                };
                std::ptr::copy_nonoverlapping(src, param_ptrs[p], n);
            }
            self.body.execute();
            for (k, carry) in carries.iter_mut().enumerate() {
                std::ptr::copy_nonoverlapping(out_ptrs[k], carry.as_mut_ptr(), self.out_bytes[k]);
            }
            for &(k, value) in &self.results {
                let n = self.out_bytes[k];
                if k >= nh && n > 0 {
                    std::ptr::copy_nonoverlapping(out_ptrs[k], table[value].add(i * n), n);
                }
            }
        }
        for &(k, value) in &self.results {
            if k < nh && self.out_bytes[k] > 0 {
                std::ptr::copy_nonoverlapping(carries[k].as_ptr(), table[value], self.out_bytes[k]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
