fn assign_unknown(x: f32[3]) -> f32[3] {
    y = x
    x
}

fn changes_type(x: f32[3]) -> f32[3] {
    let acc = x
    for i in 0..2 {
        acc = acc[0:2]
    }
    x
}

fn dynamic_range(x: f32[3]) -> f32 {
    let acc = 0.0 * x[0]
    for i in 0..sum(x) {
        acc = acc + 1.0
    }
    acc
}

fn destructure(x: f32[3]) -> f32[3] {
    let (a, b) = (x, x, x)
    a
}
