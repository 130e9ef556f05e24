fn norm(x: f32[B, 8]) -> f32[B] {
    sqrt(sum(x * x, axis = 1))
}

fn main() {
    print(norm(linspace(0.0, 1.0, 8)))
}
