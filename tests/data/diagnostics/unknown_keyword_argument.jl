fn scale(x: f32[4], factor: float = 2.0) -> f32[4] {
    x * factor
}

fn main() {
    print(scale(linspace(0.0, 1.0, 4), facter = 3.0))
}
