fn main() {
    let x = linspace(0.0, 1.0, 3)
    let g = grad(fn(w) = w * 2.0)(x)
    let (y, t) = jvp(fn(a) = a * a, (x,), (linspace(0.0, 1.0, 4),))
    let (z, pull) = vjp(fn(a) = a * a, x)
    print(pull(linspace(0.0, 1.0, 2)))
}
