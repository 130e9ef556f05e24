# scan: the function comes first, and its carry keeps one type.
fn flip(c: f32, x: f32) = (c > x, c)

fn main() {
    let xs = linspace(0.0, 1.0, 5)
    let (total, _) = scan(1.0, 0.0, xs)
    let (last, ys) = scan(flip, 0.0, xs)
    print(total, last, ys)
}
