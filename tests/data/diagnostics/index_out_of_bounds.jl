fn first_ten(x: f32[B, 5]) -> f32[B, 10] {
    x[:, 0:10]
}

fn last_row(x: f32[3, K]) = x[-4, ...]
