fn f(x: f32, y: f32) -> f32 = x * x * y

fn count(n: i32, x: f32) -> f32 = x * 2.0

fn main() {
    print(grad(value_and_grad(f))(1.0, 2.0))
    print(grad(grad(f), wrt = z)(1.0, 2.0))
    print(grad(count)(3, 1.0), grad(count)([3, 4][0], 1.0))
    print(grad(exp)(1.0))
    print(grad(grad(f))(1.0))
}
