fn dot(a: f32[N], b: f32[N]) -> f32 {
    sum(a * b)
}

fn main() {
    print(dot(linspace(0.0, 1.0, 4), linspace(0.0, 1.0, 5)))
}
