# take_along_axis(x, indices, axis): indices of x's rank, i32, agreeing off the axis.
fn main() {
    let x = reshape(linspace(0.0, 11.0, 12), (3, 4))
    print(take_along_axis(x, [1, 2, 0]))
    print(take_along_axis(x, [[1, 2], [0, 1]], axis = 1))
    print(take_along_axis(x, [[1.0], [2.0], [0.0]], axis = 1))
    print(take_along_axis(x, [[1], [2], [0]], axis = 2))
}
