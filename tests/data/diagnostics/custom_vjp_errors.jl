# custom_vjp(f, fwd, bwd): each mistake in the rule is its own report.
fn norm(x: f32[N]) -> f32 = sqrt(sum(x ^ 2))
fn norm_fwd(x: f32[N]) = (norm(x), x)
fn norm_bwd(x: f32[N], g: f32) = x / norm(x) * g

# fwd must return (result, residuals).
fn no_residuals(x: f32[N]) = norm(x)
# fwd's result must match f's.
fn wrong_result(x: f32[N]) = (x, x)
# an error inside fwd is reported once.
fn broken_fwd(x: f32[N]) = (norm(x), x + ones(4))
# one cotangent per argument: f has one.
fn two_cotangents(x: f32[N], g: f32) = (g, g)

fn main() {
    let x = linspace(1.0, 3.0, 3)
    print(custom_vjp(norm, no_residuals, norm_bwd)(x))
    print(custom_vjp(norm, wrong_result, norm_bwd)(x))
    print(custom_vjp(norm, norm_fwd, two_cotangents)(x))
    print(custom_vjp(norm, broken_fwd, norm_bwd)(x))
    print(custom_vjp(norm, norm_fwd)(x))
    print(custom_vjp(norm, norm_fwd, norm_bwd)(x, key = 1))
    # A function of the rule may not read a tensor from outside its
    # arguments (it would get no gradient): found by `jlc check` too.
    let scale = linspace(1.0, 2.0, 3)
    let scaled = fn(v) = norm(v * scale)
    print(custom_vjp(scaled, fn(v) = (scaled(v), v), norm_bwd)(x))
    # Reading only a captured tensor's shape is fine (no report).
    let width = linspace(1.0, 2.0, 5)
    let by_width = fn(v) = norm(v) * float(shape(width)[0])
    print(custom_vjp(by_width, fn(v) = (by_width(v), v), norm_bwd)(x))
}
