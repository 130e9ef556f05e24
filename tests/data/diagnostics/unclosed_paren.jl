# A call whose closing parenthesis is missing.
fn f(x: f32[N]) -> f32 {
    let s = sum(x * (x + 1.0)
    s
}

fn g(x: f32[N]) = [x, x
