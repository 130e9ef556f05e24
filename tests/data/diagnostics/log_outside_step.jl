fn helper(x: f32[4]) -> f32 {
    log("x_sum", sum(x))
    sum(x)
}
