# `...` stands for the same leading dims everywhere in one signature.
fn add(x: f32[..., D], y: f32[..., D]) -> f32[..., D] = x + y

# The return type promises the leading dims back; a reduction drops one.
fn pooled(x: f32[..., D]) -> f32[..., D] = sum(x, axis = 0)

# `...` matches leading dims only: the dims written after it must fit.
fn last3(x: f32[..., 3]) = x

fn main() {
    let m = reshape(linspace(0.0, 1.0, 6), (2, 3))
    print(add(m, linspace(0.0, 1.0, 3)))
    print(last3(reshape(m, (3, 2))))
}
