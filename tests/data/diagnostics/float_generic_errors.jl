# `float[...]` is one float dtype per call: f32 or f64, as the first such
# argument has it.
fn dot(x: float[N], y: float[N]) -> float = sum(x * y)

fn mixed(a: f64[4], b: f32[4]) = dot(a, b)

fn integers(k: i32[4]) = dot(k, k)

fn fine(a: f64[4]) -> f64 = dot(a, a)

fn fine_too(b: f32[4]) -> f32 = dot(b, b)

# A literal becomes a scalar of its declared dtype only where it fits.
fn scaled(x: f32[4], k: i32) -> f32[4] = x * float(k)

fn literals(x: f32[4]) {
    let lr: f32 = 0.5
    let steps: i32 = 2.5
    scaled(x * lr, 1.5)
}
