# Array literals: rows of one shape, items of one type, numbers or tensors.
fn main() {
    let ragged = [[1, 2], [3]]
    let mixed = [linspace(0.0, 1.0, 3), linspace(0.0, 1.0, 2)]
    let text = [[1, 2], "x"]
    let big = [1, 3000000000]
    # A float among i32 tensors would be truncated.
    let cut = [sum(arange(3)), 0.5]
}
