fn pair(x: f32[3]) = (x, arange(3))

fn f(x: f32[3], n: i32[3]) -> f32[2] = x[0:2] * 2.0

fn main() {
    let x = linspace(0.0, 1.0, 3)
    let n = arange(3)
    print(jacrev(pair)(x))
    print(jacfwd(f, wrt = y)(x, n))
    print(hessian(f, wrt = n)(x, n))
    print(jacrev(f, wrt = x, has_aux = true)(x, n))
    print(jacfwd(exp)(x))
}
