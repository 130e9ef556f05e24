//! Shape rules of the language's operators, over possibly symbolic dims.
//!
//! Each rule returns the result dims or a message saying what does not fit;
//! the caller turns the message into a diagnostic with both operands' spans.

use super::types::Dim;

/// NumPy broadcasting: align trailing dims; each pair must be equal or one of them 1.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = (i + a.len()).checked_sub(rank).map(|k| &a[k]);
        let db = (i + b.len()).checked_sub(rank).map(|k| &b[k]);
        let dim = match (da, db) {
            (None, Some(d)) | (Some(d), None) => d.clone(),
            (Some(x), Some(y)) if x == y => x.clone(),
            (Some(Dim::Known(1)), Some(d)) | (Some(d), Some(Dim::Known(1))) => d.clone(),
            (Some(x), Some(y)) => {
                return Err(format!("dimension {x} does not match dimension {y} (axis {i} of the broadcast result)"))
            }
            (None, None) => unreachable!("axis beyond both ranks"),
        };
        out.push(dim);
    }
    Ok(out)
}

/// `a @ b`: `[..., m, k] @ [k, n] -> [..., m, n]`, `[k] @ [k, n] -> [n]`, `[m, k] @ [k] -> [m]`.
pub fn matmul(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    if a.is_empty() || b.is_empty() {
        return Err("matmul needs operands of rank at least 1".into());
    }
    if b.len() > 2 {
        return Err(format!("the right operand of @ must have rank 1 or 2, not {}", b.len()));
    }
    let k_left = &a[a.len() - 1];
    let k_right = &b[0];
    if k_left != k_right {
        return Err(format!(
            "inner dimensions differ: the left operand's last dim is {k_left}, the right operand's first dim is {k_right}"
        ));
    }
    let mut out: Vec<Dim> = a[..a.len() - 1].to_vec();
    if b.len() == 2 {
        out.push(b[1].clone());
    }
    Ok(out)
}

/// Normalizes a possibly negative axis against `rank`.
pub fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    let norm = if axis < 0 { axis + rank as i64 } else { axis };
    if norm < 0 || norm >= rank as i64 {
        return Err(format!("axis {axis} is out of range for a tensor of rank {rank}"));
    }
    Ok(norm as usize)
}
