# Indexing a tuple: it takes one compile-time integer.
fn pick(x: f32[N]) {
    let pair = (x, x * 2.0)
    let n = shape(x)[0]
    print(pair[0, 1], pair[n - 1])
}

fn main() {
    pick(linspace(0.0, 1.0, 2))
}
