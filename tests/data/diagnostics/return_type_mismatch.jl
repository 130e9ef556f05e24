fn rows(x: f32[B, 8]) -> f32[B, 8] {
    sum(x, axis = 1)
}
