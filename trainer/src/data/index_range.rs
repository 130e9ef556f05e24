//! Integer data used as indices (class labels in `one_hot`, tokens in an
//! embedding lookup) checked against what the compiled steps index
//! (`compiler::ir::index_bounds`) before training: a label of 15 for a
//! 10-class head trained without a word, to a loss and accuracy of 0
//! (one_hot gives zeros and gather clamps, so nothing faults).
//!
//! Consumes a column and its bound; produces the first offending value and
//! its example, for the error `setup` reports.

use super::{Column, Values};

/// The first value of `col` outside `[0, bound)`: (example, value).
pub fn first_out_of_range(col: &Column, bound: usize) -> Option<(usize, i64)> {
    let per_example = col.example_len().max(1);
    let bad = |v: i64| v < 0 || v >= bound as i64;
    let found = match &col.values {
        Values::U8(v) => v.iter().position(|&x| bad(x as i64)).map(|i| (i, v[i] as i64)),
        Values::I32(v) => v.iter().position(|&x| bad(x as i64)).map(|i| (i, v[i] as i64)),
        // Floats and booleans are not indices (the batch converts only bytes to i32).
        Values::F32(_) | Values::F64(_) | Values::Bool(_) => None,
    };
    found.map(|(i, value)| (i / per_example, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_outside_the_range_and_its_example() {
        let labels = Column::new(Values::I32(vec![0, 9, 3, 10, 12]), vec![], 1.0);
        assert_eq!(first_out_of_range(&labels, 10), Some((3, 10)));
        assert_eq!(first_out_of_range(&labels, 13), None);
        let negative = Column::new(Values::I32(vec![1, -1]), vec![], 1.0);
        assert_eq!(first_out_of_range(&negative, 5), Some((1, -1)));
        // Tokens: two per example, the fifth value is in the third example.
        let tokens = Column::new(Values::U8(vec![1, 2, 3, 4, 200, 5]), vec![2], 1.0);
        assert_eq!(first_out_of_range(&tokens, 100), Some((2, 200)));
        assert_eq!(first_out_of_range(&Column::new(Values::F32(vec![99.0]), vec![], 1.0), 3), None);
    }
}
