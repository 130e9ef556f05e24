# Types on bindings and parameters: an annotation names one value, and a
# tensor parameter takes a tensor (or a number), not a string or a tuple.
fn norm(x: f32[N]) -> f32 = sqrt(sum(x * x))

fn main() {
    let x = linspace(0.0, 1.0, 3)
    let (a, b): f32[3] = (x, x)
    print(norm("x"), norm((x, x)), a, b)
}
