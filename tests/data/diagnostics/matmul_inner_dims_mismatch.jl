# The classic mistake: a weight matrix stored the wrong way round.
fn predict(x: f32[B, 784], w: f32[10, 784]) -> f32[B, 10] {
    x @ w
}
