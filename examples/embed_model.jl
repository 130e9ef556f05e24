# embed_model.jl: the functions examples/embed.rs calls from Rust: a small
# two-layer regression network, its loss, and nothing else (no trainer: the
# Rust program owns the loop and the data).
fn predict(w1: f32[1, H], b1: f32[H], w2: f32[H, 1], x: f32[N, 1]) -> f32[N, 1] {
    tanh(x @ w1 + b1) @ w2
}

fn loss(w1, b1, w2, x, y) = mean((predict(w1, b1, w2, x) - y) ^ 2)
