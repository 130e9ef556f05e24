fn good(x: f32[3]) -> f32 {
    sum(x)
}

fn broken(x: f32[3]) -> f32 {
    sum(x +)
}

fn also_checked(x: f32[3]) -> f32 {
    sum(y)
}
