# Syntax errors inside statements: each is reported once, the names a
# broken `let` or rebinding binds stay bound (no "unknown name" for a, b, c
# below), an error inside closed parentheses is not a missing `)`, and a
# real unknown name is still reported.
fn f(x: f32[N]) -> f32 {
    let (a, b) = (x, * x)
    let c: f32[N] = x / )
    a = a + * 1.0
    sum(a + b + c + nope)
}
