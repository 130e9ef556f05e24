# einsum: float operands only, of one dtype.
fn gram(a: f32[M, K], b: f64[N, K]) = einsum("ik,jk->ij", a, b)

fn main() {
    let a = reshape(linspace(0.0, 1.0, 6), (2, 3))
    let i = reshape(arange(6), (2, 3))
    print(einsum("ij,kj->ik", a, i))
}
