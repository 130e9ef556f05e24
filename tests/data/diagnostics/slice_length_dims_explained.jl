# A slice of a symbolic dim whose length depends on it gets a made-up dim
# (`S1`); an error that shows one says what it stands for.
fn shifted_sum(x: f32[B, 4], y: f32[B]) -> f32[B] {
    let z = x[:, 0] + y
    z[1:] + y
}
