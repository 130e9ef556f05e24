# Dims a top-level let annotation binds (a name, `...`) hold for the rest
# of the function, the declared return type included.
fn f(x) -> f32[..., 4] {
    let y: f32[..., 4] = x
    sum(y, axis = 0)
}

fn h(x) -> f32[H] {
    let y: f32[N, H] = x
    sum(y, axis = 1)
}

fn main() {
    print(f(reshape(float(arange(24)), (2, 3, 4))))
    print(h(reshape(float(arange(6)), (2, 3))))
}
