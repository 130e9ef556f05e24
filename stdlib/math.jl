# stdlib/math.jl: array helpers jax.numpy has as functions, written with the
# builtins (so every backend and every transformation has them).

# Each element limited to [lo, hi] (jnp.clip): NaN stays NaN. The gradient
# is 1 inside and 0 outside; at lo or hi it is 1 (a tie of `max`/`min`
# sends its gradient to the left operand; JAX gives 0.5 there).
fn clip(x, lo, hi) = min(max(x, lo), hi)

# Element tests (jnp.isnan, jnp.isinf, jnp.isfinite), as bool tensors: NaN
# is the only value unequal to itself.
fn isnan(x) = x != x

fn isinf(x) = abs(x) == 1.0 / 0.0

fn isfinite(x) = abs(x) < 1.0 / 0.0

# The index of the smallest element along `axis` (the first of equal minima;
# NaN counts as the smallest, as jnp.argmin's): argmax of -x. For an i32
# tensor, -2147483648 has no negation and is the one exception.
fn argmin(x, axis = -1) = argmax(-x, axis = axis)

# The n x n identity matrix (jnp.eye(n)), f32.
fn eye(n: int) = where(reshape(arange(n), (n, 1)) == reshape(arange(n), (1, n)), 1.0, 0.0)

# The lower and upper triangles of the last two axes (jnp.tril, jnp.triu
# with k = 0): the other elements are 0.
fn tril(x) = where(triangle(x, true), x, 0.0)

fn triu(x) = where(triangle(x, false), x, 0.0)

# Where row >= column (lower) or row <= column (upper) for x's last two axes.
fn triangle(x, lower: bool) {
    let rows = reshape(arange(size(x, -2)), (-1, 1))
    let cols = reshape(arange(size(x, -1)), (1, -1))
    if lower {
        rows >= cols
    } else {
        rows <= cols
    }
}

# jax.lax.fori_loop: `body(i, carry)` for i = lower, ..., upper - 1, a loop
# the compiler does not unroll (one `scan` over the indices); the final carry.
fn fori_loop(lower: int, upper: int, body, init) {
    if upper <= lower {
        init
    } else {
        let (carry, _) = scan(fn(c, i) = (body(i, c), ()), init, arange(upper - lower) + lower)
        carry
    }
}

# `jax.lax.while_loop` with a bound: applies `body` to the carry while
# `cond(carry)` (a bool scalar) holds, at most `max_steps` times, and
# returns the final carry. Compiled as one `scan` of `max_steps` steps that
# keeps the carry once `cond` fails (`where` of the two, tuples element by
# element), so it costs `max_steps` bodies whatever the condition says, and,
# unlike JAX's, it has a reverse-mode gradient (equinox's bounded loop).
fn while_loop(cond, body, init, max_steps: int) {
    let (carry, _) = scan(fn(c, i) = (where(cond(c), body(c), c), ()), init, arange(max_steps))
    carry
}

# The indices that sort x along its last axis, a stable sort (NumPy's
# argsort with kind = "stable"): equal elements keep their order, NaN sorts
# last. `descending`: largest first (equal elements still in order, NaN
# still last: np.argsort(-x), without negating, so the smallest i32 stays
# last). Each element's position is the count of elements that sort before
# it, so the work and memory grow with the square of the axis' length: fine
# for a few thousand elements per row.
fn argsort(x, descending: bool = false) = ordering(x, descending, false)

# argsort's order; `nan_first`: NaN before every number (top_k's, as
# jax.lax.top_k ranks NaN above +inf).
fn ordering(x, descending: bool, nan_first: bool) {
    if ndim(x) > 1 {
        vmap(fn(row) = ordering(row, descending, nan_first))(x)
    } else {
        let n = size(x, 0)
        # a: element i down the rows, b: element j across the columns.
        let (a, b) = (reshape(x, (n, 1)), reshape(x, (1, n)))
        let earlier = reshape(arange(n), (1, n)) < reshape(arange(n), (n, 1))
        let (nan_a, nan_b) = (isnan(a), isnan(b))
        let ahead = if descending {
            b > a
        } else {
            b < a
        }
        # j sorts before i: ahead of it among numbers, or a number before NaN
        # (NaN before a number with nan_first), or equal and earlier.
        let by_value = if nan_first {
            nan_b && !nan_a || !nan_a && !nan_b && ahead
        } else {
            !nan_b && (nan_a || ahead)
        }
        let before = by_value || (b == a || nan_a && nan_b) && earlier
        let position = sum(i32(before), axis = -1)
        # The index whose position is k, for each k.
        let at = reshape(position, (1, n)) == reshape(arange(n), (n, 1))
        sum(where(at, reshape(arange(n), (1, n)), 0), axis = -1)
    }
}

# x sorted along its last axis (np.sort; `descending` as argsort's).
fn sort(x, descending: bool = false) = take_along_axis(x, argsort(x, descending), axis = -1)

# The k largest elements along the last axis and their indices, largest
# first, NaN above every number and equal elements by index (-0.0 and 0.0
# count as equal, where jax.lax.top_k puts 0.0 first): `(values, indices)`.
fn top_k(x, k: int) {
    assert(k >= 1, "top_k: k must be at least 1")
    assert(k <= size(x, -1), "top_k: k is more than the last axis holds")
    let indices = ordering(x, true, true)[..., 0:k]
    (take_along_axis(x, indices, axis = -1), indices)
}
