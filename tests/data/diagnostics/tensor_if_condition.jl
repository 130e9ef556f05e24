fn relu_wrong(x: f32[4]) -> f32[4] {
    if x > 0.0 { x } else { 0.0 * x }
}
