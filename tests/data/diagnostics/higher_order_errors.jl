fn f(x: f32, y: f32) -> f32 = x * x * y

fn count(n: i32, x: f32) -> f32 = x * 2.0

fn main() {
    print(grad(value_and_grad(f))(1.0, 2.0))
    print(grad(grad(f), wrt = z)(1.0, 2.0))
    print(grad(count)(3, 1.0), grad(count)([3, 4][0], 1.0))
    print(grad(exp)(1.0))
    print(grad(grad(f))(1.0))
}

# `has_aux = true` needs f to return a pair (loss, aux).
fn no_pair(w: f32[3]) = sum(w * w)
fn aux_not_a_pair(w: f32[3]) = grad(no_pair, has_aux = true)(w)
fn aux_flag(w: f32[3]) = grad(no_pair, has_aux = 1)(w)

# `wrt` takes parameter names, not positions.
fn by_position(w: f32[3]) = grad(no_pair, wrt = 1)(w)
