# einsum: a letter naming two sizes, subscripts that do not fit the
# operand's rank, a diagonal, and an output letter no operand has.
fn main() {
    let a = reshape(linspace(0.0, 1.0, 6), (2, 3))
    let t = reshape(linspace(0.0, 1.0, 24), (2, 3, 4))
    print(einsum("ij,jk->ik", a, a))
    print(einsum("ij,jk->ik", t, a))
    print(einsum("ii->i", a))
    print(einsum("ij->iz", a))
}
