# take(table, idx, axis): the axis must be in range and non-empty, and a
# compile-time integer.
fn main() {
    let x = reshape(linspace(0.0, 11.0, 12), (3, 4))
    print(take(x, [1, 2], axis = 2))
    print(take(x, [1, 2], -3))
    print(take(zeros((3, 0)), [0], axis = 1))
    print(take(x, [1, 2], axis = 0.5))
    print(take(x, [1, 2], 1, 2))
}
