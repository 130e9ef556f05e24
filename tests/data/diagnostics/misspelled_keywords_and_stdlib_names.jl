# Typos get "did you mean": in keyword arguments of builtins and
# transformations (each names the keywords it takes), in names with two
# letters swapped; a stdlib name used without its `use` names its module.
use nn.relu

fn f(x: f32[B, D]) -> f32[B] {
    let v = sum(x, axsi = 1)
    let w = mean(x, axis = 1, keepdim = true)
    v
}

fn g(w: f32[4]) -> f32 {
    sum(w * w)
}

fn h(w: f32[4]) -> f32[4] {
    let dg = grad(g, wtr = w)
    let valeu = 1.0
    dg(w) * value + rleu(w)
}

fn k(logits: f32[B, C], y: i32[B]) -> f32 {
    cross_entropy(logits, y)
}

fn p(x: f32[N, 1, 28, 28], w: f32[8, 1, 3, 3]) -> f32[N, 8, 26, 26] {
    conv2d(x, w, strides = 1)
}
