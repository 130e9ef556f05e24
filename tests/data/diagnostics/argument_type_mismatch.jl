fn norm(x: f32[B, 8]) -> f32[B] {
    sqrt(sum(x * x, axis = 1))
}

fn main() {
    let x = one_hot(linspace(0.0, 1.0, 4) > 0.5, 8)
    print(norm(x))
}
