# concat and stack: an item that is not a tensor, an argument that is not
# a tuple, an axis past the result's rank, and items that do not agree.
fn main() {
    let a = linspace(0.0, 1.0, 4)
    let m = reshape(linspace(0.0, 1.0, 6), (2, 3))
    print(concat((a, 2), axis = 0))
    print(stack(a, axis = 0))
    print(stack((a, a), axis = 2))
    print(concat((m, a), axis = 0))
}
