# Product dims in types: B * T is solved for the one unknown name, and a
# product that does not fit is reported with its value.
fn flat(x: f32[B, T, D]) -> f32[B * T, D] = reshape(x, (-1, size(x, 2)))
fn unflat(y: f32[B * 4, D]) -> f32[B, 4, D] = reshape(y, (-1, 4, size(y, 1)))
fn g(x: f32[B, 4, 8]) {
    let y: f32[B * 4, 8] = flat(x)
    let z: f32[N, 4, 8] = unflat(y)
    let bad: f32[B * 3, 8] = y
    sum(z)
}
