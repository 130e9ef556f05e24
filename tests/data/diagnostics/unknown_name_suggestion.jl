fn loss(pred: f32[N], target: f32[N]) -> f32 {
    mean((pred - targte) ^ 2)
}
