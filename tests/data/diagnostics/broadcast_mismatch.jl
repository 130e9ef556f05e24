fn add_bias(x: f32[B, 64], bias: f32[10]) -> f32[B, 64] {
    x + bias
}
