fn loss(w: f32[3], x: f32[3], y: f32) -> f32 = (sum(w * x) - y) ^ 2

fn main() {
    let w = linspace(0.0, 1.0, 3)
    let xs = one_hot([0, 2, 1, 1], 3)
    let ys = linspace(0.0, 3.0, 5)
    print(vmap(grad(loss), in_axes = (None, 0, 0))(w, xs, ys))
}

fn per_example(w: f32[3], xs: f32[B, 3], ys: f32[N]) = vmap(grad(loss), in_axes = (None, 0, 0))(w, xs, ys)
