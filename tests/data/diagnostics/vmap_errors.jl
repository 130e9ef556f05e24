fn main() {
    let xs = one_hot([0, 2, 1, 1], 3)
    print(vmap(fn(x) = x * 2.0, in_axes = 2)(xs))
    print(vmap(fn(x) = x * 2.0, in_axes = None)(xs))
    print(vmap(fn(x) = x * 2.0, in_axes = (0, 1.5))(xs))
    print(vmap(fn(x, n) = x * 2.0, in_axes = (0, 0))(xs, "n"))
    print(vmap(3))
}
