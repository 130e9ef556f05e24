# A `(` left open at the end of a declaration: the declaration below it
# still parses, so its own mistake is reported too (one report each).
fn g(x: f32[3]) -> f32 = sum(x * (x + 1.0)

fn h(x: f32[2]) -> f32 = sum(x) + undefined_name

const sizes = [1, 2
model M() {
    w: f32[3] = normal(0.1)
}
