# A compile-time integer carry is an i32 scalar: it must fit i32, and the
# body must keep it i32.
fn main() {
    let step = fn(c, x) = (c + 1, x * 2.0)
    let (n, ys) = scan(step, 3000000000, [1.0, 2.0, 3.0])
    let (k, zs) = scan(fn(c, x) = (c + 0.5, x), 0, [1.0])
    print(ys, zs)
}
