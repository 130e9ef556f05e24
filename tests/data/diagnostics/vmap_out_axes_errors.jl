fn f(x: f32[3]) = (x * 2.0, sum(x))

fn main() {
    let xs = reshape(linspace(0.0, 5.0, 6), (2, 3))
    print(vmap(f, out_axes = (1, 0, 2))(xs))
    print(vmap(fn(r) = r * 2.0, out_axes = 2)(xs))
    print(vmap(fn(r) = r * 2.0, out_axes = None)(xs))
    print(vmap(fn(r) = r * 2.0, out_axis = 1)(xs))
}
