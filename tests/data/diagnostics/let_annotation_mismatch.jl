# A `let` whose declared type does not fit its value; a bound dim's value
# shows in a note.
fn project(x: f32[B, 4], w: f32[4, 3]) -> f32 {
    let h: f32[B, 3] = x @ w
    let wrong: f32[B, 4] = h
    let k: f32[N, N] = transpose(h) @ h
    let again: f32[N, 4] = h
    sum(h)
}
