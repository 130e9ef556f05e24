# linreg.jl: fit y = 3x + 2 with plain gradient descent, using `grad`.
# Run: jlc run examples/linreg.jl   (prints w close to 3 and b close to 2)

fn loss(w: f32, b: f32, x: f32[N], y: f32[N]) -> f32 {
    mean((w * x + b - y) ^ 2)
}

fn main() {
    let x = linspace(0.0, 1.0, 64)
    let y = 3.0 * x + 2.0
    let (w, b) = (0.0, 0.0)
    for step in 0..200 {  # loop-carried values: w, b
        let (gw, gb) = grad(loss, wrt = (w, b))(w, b, x, y)
        w = w - 0.5 * gw  # rebinding, not mutation
        b = b - 0.5 * gb
    }
    print("w", w, "b", b)
}
