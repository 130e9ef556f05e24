//! Shape rules and `Builder` helpers of the windowed ops: `Conv2d`,
//! `ReduceWindowSum`/`ReduceWindowMax` and `Reverse` (see their docs in
//! `op.rs`).
//!
//! Consumes operand types and attributes; produces result dims or a message
//! saying which invariant fails. `verify`, the e-graph's type analysis and
//! the builder all call these, so the rule lives in one place. Arithmetic is
//! checked: the parser hands over arbitrary attribute values.

use super::func::{Builder, ValueId};
use super::op::{Conv, Op, Window};
use super::types::{DType, Type};

/// The number of windows along one dim: `(low + dilated(n) + high - extent) /
/// stride + 1`, where `dilated(n) = (n - 1) * dilation + 1` and the window's
/// `extent = (k - 1) * window_dilation + 1`.
#[allow(clippy::too_many_arguments)]
fn windows_along(
    n: usize,
    dilation: usize,
    low: usize,
    high: usize,
    k: usize,
    window_dilation: usize,
    stride: usize,
) -> Result<usize, String> {
    if n == 0 || k == 0 || dilation == 0 || window_dilation == 0 || stride == 0 {
        return Err("sizes, strides and dilations must be at least 1".into());
    }
    let overflow = || "window geometry overflows".to_string();
    let dilated = (n - 1).checked_mul(dilation).and_then(|d| d.checked_add(1)).ok_or_else(overflow)?;
    let padded = dilated.checked_add(low).and_then(|p| p.checked_add(high)).ok_or_else(overflow)?;
    let extent = (k - 1).checked_mul(window_dilation).and_then(|e| e.checked_add(1)).ok_or_else(overflow)?;
    if padded < extent {
        return Err(format!("the window ({extent}) is larger than the padded operand ({padded})"));
    }
    Ok((padded - extent) / stride + 1)
}

/// Result dims of `Conv2d(attrs)` on `lhs`, `rhs`.
pub fn conv2d_dims(lhs: &Type, rhs: &Type, attrs: &Conv) -> Result<Vec<usize>, String> {
    if lhs.shape.rank() != 4 || rhs.shape.rank() != 4 {
        return Err("conv2d operands are rank 4 (NCHW input, OIHW kernel)".into());
    }
    if !(lhs.dtype.is_float() && rhs.dtype == lhs.dtype) {
        return Err("conv2d operands are floats of one dtype".into());
    }
    let (l, r) = (&lhs.shape.0, &rhs.shape.0);
    let (c, o, g) = (l[1], r[0], attrs.groups);
    if g == 0 || c == 0 || o == 0 || !c.is_multiple_of(g) || !o.is_multiple_of(g) {
        return Err(format!("groups ({g}) must divide the input channels ({c}) and output channels ({o})"));
    }
    if r[1] != c / g {
        return Err(format!("kernel input channels ({}) must be input channels / groups ({})", r[1], c / g));
    }
    let mut dims = vec![l[0], o];
    for d in 0..2 {
        let a = attrs;
        dims.push(windows_along(
            l[2 + d],
            a.lhs_dilation[d],
            a.low[d],
            a.high[d],
            r[2 + d],
            a.rhs_dilation[d],
            a.stride[d],
        )?);
    }
    Ok(dims)
}

/// Result dims of a reduce-window over `x` with `window`.
pub fn reduce_window_dims(x: &Type, window: &Window) -> Result<Vec<usize>, String> {
    let rank = x.shape.rank();
    let w = window;
    if w.size.len() != rank || w.stride.len() != rank || w.low.len() != rank || w.high.len() != rank {
        return Err("one window size, stride, low and high per dim".into());
    }
    if !x.dtype.is_float() {
        return Err("reduce_window needs a float operand".into());
    }
    (0..rank).map(|d| windows_along(x.shape.0[d], 1, w.low[d], w.high[d], w.size[d], 1, w.stride[d])).collect()
}

/// Checks `Reverse { dims }` on an operand of rank `rank`.
pub fn check_reverse(rank: usize, dims: &[usize]) -> Result<(), String> {
    if !dims.windows(2).all(|w| w[0] < w[1]) || dims.iter().any(|&d| d >= rank) {
        return Err("reverse dims must be sorted, unique and in range".into());
    }
    Ok(())
}

impl Builder {
    /// `Conv2d(attrs)` of `lhs` (NCHW) and `rhs` (OIHW); panics on ill-typed operands.
    pub fn conv2d(&mut self, lhs: ValueId, rhs: ValueId, attrs: Conv) -> ValueId {
        let (tl, tr) = (self.ty(lhs).clone(), self.ty(rhs).clone());
        let dims = conv2d_dims(&tl, &tr, &attrs).unwrap_or_else(|e| panic!("conv2d {tl} x {tr}: {e}"));
        self.push(Op::Conv2d(attrs), vec![lhs, rhs], Type::new(tl.dtype, &dims))
    }
    /// Window sum (`is_max == false`) or max of `x`; panics on a bad window.
    pub fn reduce_window(&mut self, x: ValueId, window: Window, is_max: bool) -> ValueId {
        let tx = self.ty(x).clone();
        let dims = reduce_window_dims(&tx, &window).unwrap_or_else(|e| panic!("reduce_window on {tx}: {e}"));
        let op = if is_max { Op::ReduceWindowMax(window) } else { Op::ReduceWindowSum(window) };
        self.push(op, vec![x], Type::new(tx.dtype, &dims))
    }
    /// `SelectAndScatter(window)`: `ct` (one value per window of `x`) added
    /// at each window's first maximum; panics on ill-typed operands.
    pub fn select_and_scatter(&mut self, x: ValueId, ct: ValueId, window: Window) -> ValueId {
        let (tx, tc) = (self.ty(x).clone(), self.ty(ct).clone());
        let dims = reduce_window_dims(&tx, &window).unwrap_or_else(|e| panic!("select_and_scatter on {tx}: {e}"));
        assert_eq!(tc, Type::new(tx.dtype, &dims), "select_and_scatter cotangent of {tx}");
        self.push(Op::SelectAndScatter(window), vec![x, ct], tx)
    }
    /// `x` reversed along `dims` (sorted, unique); `x` itself if `dims` is empty.
    pub fn reverse(&mut self, x: ValueId, dims: Vec<usize>) -> ValueId {
        let ty = self.ty(x).clone();
        check_reverse(ty.shape.rank(), &dims).unwrap_or_else(|e| panic!("reverse of {ty}: {e}"));
        if dims.is_empty() {
            return x;
        }
        self.push(Op::Reverse { dims }, vec![x], ty)
    }
    /// A filled constant of `x`'s shape in `dtype`.
    pub fn full_like(&mut self, value: f64, x: ValueId, dtype: DType) -> ValueId {
        let ty = self.ty(x).with_dtype(dtype);
        self.full(value, &ty)
    }
}

#[cfg(test)]
mod tests;
