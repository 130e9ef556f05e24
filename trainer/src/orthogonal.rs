//! The orthogonal initializer (PyTorch's `nn.init.orthogonal_`): a
//! `rows x cols` matrix with orthonormal columns when `rows >= cols`, else
//! orthonormal rows, times `gain`. As PyTorch: draw a normal matrix, take
//! the Q of its QR factorization of the tall orientation with R's diagonal
//! positive, transpose back. Q comes from modified Gram-Schmidt run twice
//! ("twice is enough": orthogonal to rounding in f64), which gives R's
//! diagonal positive by construction.

/// `rows * cols` values, row-major; `normal` draws the matrix row-major.
pub fn orthogonal(rows: usize, cols: usize, gain: f64, normal: &mut dyn FnMut() -> f64) -> Vec<f64> {
    let drawn: Vec<f64> = (0..rows * cols).map(|_| normal()).collect();
    if rows == 0 || cols == 0 {
        return drawn;
    }
    // The tall orientation, stored as its k columns of length m.
    let (m, k) = (rows.max(cols), rows.min(cols));
    let at = |i: usize, j: usize| if rows >= cols { drawn[i * cols + j] } else { drawn[j * cols + i] };
    let mut q: Vec<Vec<f64>> = (0..k).map(|j| (0..m).map(|i| at(i, j)).collect()).collect();
    for j in 0..k {
        for _pass in 0..2 {
            for p in 0..j {
                let dot: f64 = q[j].iter().zip(&q[p]).map(|(a, b)| a * b).sum();
                let (head, tail) = q.split_at_mut(j);
                for (x, y) in tail[0].iter_mut().zip(&head[p]) {
                    *x -= dot * y;
                }
            }
        }
        let norm = q[j].iter().map(|x| x * x).sum::<f64>().sqrt();
        // A column in the span of the earlier ones has probability zero for
        // a normal draw; keep the result finite anyway.
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        q[j].iter_mut().for_each(|x| *x *= scale);
    }
    let mut out = vec![0.0; rows * cols];
    for (j, col) in q.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            // Column j of the tall Q; transposed back when rows < cols.
            let idx = if rows >= cols { i * cols + j } else { j * cols + i };
            out[idx] = gain * v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::orthogonal;

    /// W^T W (rows >= cols) or W W^T is gain^2 I, for tall, wide and square shapes.
    #[test]
    fn columns_or_rows_are_orthonormal_times_the_gain() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut normal = move || {
            // A Box-Muller normal from a xorshift stream.
            let mut u = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (a, b) = (u(), u());
            (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        };
        for (rows, cols, gain) in [(5, 3, 1.0), (3, 5, 1.0), (4, 4, 2.0), (64, 8, 0.5), (1, 7, 1.0), (7, 1, 1.0)] {
            let w = orthogonal(rows, cols, gain, &mut normal);
            let (k, long) = (rows.min(cols), rows.max(cols));
            let at = |i: usize, j: usize| if rows >= cols { w[i * cols + j] } else { w[j * cols + i] };
            for a in 0..k {
                for b in 0..k {
                    let dot: f64 = (0..long).map(|i| at(i, a) * at(i, b)).sum();
                    let want = if a == b { gain * gain } else { 0.0 };
                    assert!((dot - want).abs() < 1e-12, "{rows}x{cols}: <{a}, {b}> = {dot}");
                }
            }
        }
    }
}
