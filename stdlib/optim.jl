# stdlib/optim.jl: optimizers and learning-rate schedules. An optimizer is an
# update function
#   fn NAME_update(p, g, states..., step, hyperparameters...) -> (p', states'...)
# applied to every parameter inside the compiled training step. States start
# at zero; `step` counts from 1. Each update is a pure function of the step,
# so resuming is correct by construction.
#
# The formulas are optax's (0.2.8), term for term: optax chains a direction
# (scale_by_adam, trace, ...) with scale_by_learning_rate, so every update
# below is p - lr * direction. tests/data/optax/ holds optax's own
# trajectories, which tests/it/stdlib.rs compares against in float64.
#
# A hyperparameter may be a schedule instead of a number: a named function of
# the step, `f`, or a tuple `(f, args...)` that stands for `f(step, args...)`
# (what the `*_schedule` functions below return). The training step evaluates
# it once per step and passes the value to the update.

# Plain stochastic gradient descent.
fn sgd_update(p, g, step, lr = 0.01) = (p - lr * g,)

# SGD with momentum (optax.sgd with momentum: `trace`, then the step):
#   v' = g + momentum * v,  p' = p - lr * v'  (Nesterov: p - lr * (g + momentum * v')).
fn sgd_momentum_update(p, g, v, step, lr = 0.01, momentum = 0.9, nesterov = false) {
    let v = g + momentum * v
    let u = if nesterov {
        g + momentum * v
    } else {
        v
    }
    (p - lr * u, v)
}

# Momentum 0 (the default) is plain SGD, which keeps no state.
fn sgd(lr = 0.01, momentum = 0.0, nesterov = false) {
    if momentum == 0.0 && !nesterov {
        optimizer(sgd_update, lr = lr)
    } else {
        optimizer(sgd_momentum_update, lr = lr, momentum = momentum, nesterov = nesterov)
    }
}

# Adam (Kingma and Ba, 2015), with bias correction as in optax and PyTorch.
fn adam_update(p, g, m, v, step, lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-8) {
    let m = b1 * m + (1.0 - b1) * g
    let v = b2 * v + (1.0 - b2) * g * g
    let m_hat = m / (1.0 - b1 ^ step)
    let v_hat = v / (1.0 - b2 ^ step)
    (p - lr * m_hat / (sqrt(v_hat) + eps), m, v)
}

fn adam(lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-8) = optimizer(adam_update, lr = lr, b1 = b1, b2 = b2, eps = eps)

# AdamW (Loshchilov and Hutter, 2019) as optax.adamw: the Adam direction plus
# weight_decay * p, both scaled by lr. Parameters of rank below
# `decay_min_rank` (biases, norm scales) are not decayed: optax's `mask`
# as it is usually set (optax's own default decays everything; pass
# `decay_min_rank = 0` for that).
fn adamw_update(p, g, m, v, step, lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-8, weight_decay = 1e-4, decay_min_rank = 2) {
    let m = b1 * m + (1.0 - b1) * g
    let v = b2 * v + (1.0 - b2) * g * g
    let u = m / (1.0 - b1 ^ step) / (sqrt(v / (1.0 - b2 ^ step)) + eps)
    let u = if ndim(p) >= decay_min_rank {
        u + weight_decay * p
    } else {
        u
    }
    (p - lr * u, m, v)
}

fn adamw(lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-8, weight_decay = 1e-4, decay_min_rank = 2) {
    optimizer(adamw_update, lr = lr, b1 = b1, b2 = b2, eps = eps, weight_decay = weight_decay, decay_min_rank = decay_min_rank)
}

# RMSProp as optax.rmsprop (not centered, no momentum):
#   nu' = decay * nu + (1 - decay) * g^2,  p' = p - lr * g / sqrt(nu' + eps)
# (eps inside the square root, optax's default; `eps_in_sqrt = false` gives
# g / (sqrt(nu') + eps)). nu starts at `initial_scale`: the state holds
# nu - initial_scale, so that it starts at zero like every state.
fn rmsprop_update(p, g, s, step, lr = 0.01, decay = 0.9, eps = 1e-8, initial_scale = 0.0, eps_in_sqrt = true) {
    let nu = decay * (s + initial_scale) + (1.0 - decay) * g * g
    let scale = if eps_in_sqrt {
        rsqrt(nu + eps)
    } else {
        1.0 / (sqrt(nu) + eps)
    }
    (p - lr * scale * g, nu - initial_scale)
}

fn rmsprop(lr = 0.01, decay = 0.9, eps = 1e-8, initial_scale = 0.0, eps_in_sqrt = true) {
    optimizer(rmsprop_update, lr = lr, decay = decay, eps = eps, initial_scale = initial_scale, eps_in_sqrt = eps_in_sqrt)
}

# Adagrad as optax.adagrad:
#   a' = a + g^2 (a starts at initial_accumulator_value),
#   p' = p - lr * g / sqrt(a' + eps) (0 where a' = 0).
# The state holds a - initial_accumulator_value, so that it starts at zero.
fn adagrad_update(p, g, s, step, lr = 0.01, initial_accumulator_value = 0.1, eps = 1e-7) {
    let s = s + g * g
    let a = s + initial_accumulator_value
    (p - lr * where(a > 0.0, rsqrt(a + eps), 0.0) * g, s)
}

fn adagrad(lr = 0.01, initial_accumulator_value = 0.1, eps = 1e-7) {
    optimizer(adagrad_update, lr = lr, initial_accumulator_value = initial_accumulator_value, eps = eps)
}

# ---- Learning-rate schedules ----
#
# Each `NAME(...)` returns `(NAME_at, args...)`; `NAME_at(step, args...)` is
# optax's `NAME(args...)(count)` with count = step - 1: optax counts the
# updates done before this one (0 on the first step), our steps count from 1.
# So `adam(lr = cosine_decay_schedule(1e-3, 1000))` uses the same learning
# rate at each step as `optax.adam(optax.cosine_decay_schedule(1e-3, 1000))`.

fn constant_schedule(value) = (constant_schedule_at, value)

fn constant_schedule_at(step, value) = 0.0 * step + value

# Multiplies the value by `scale_i` from step `boundary_i` on (optax's
# `boundaries_and_scales = {b1: s1, b2: s2, b3: s3}`; up to three).
fn piecewise_constant_schedule(init_value, b1, s1, b2 = 0, s2 = 1.0, b3 = 0, s3 = 1.0) {
    (piecewise_constant_schedule_at, init_value, b1, s1, b2, s2, b3, s3)
}

fn piecewise_constant_schedule_at(step, init_value, b1, s1, b2, s2, b3, s3) {
    let t = step - 1.0
    let v = 0.0 * t + init_value
    let v = where(t < b1, v, s1 * v)
    let v = where(t < b2, v, s2 * v)
    where(t < b3, v, s3 * v)
}

# init_value * decay_rate ^ ((count - transition_begin) / transition_steps)
# after transition_begin; a non-negative `end_value` bounds it (from below
# when decaying). The staircase variant is not supported (it needs floor).
fn exponential_decay(init_value, transition_steps, decay_rate, transition_begin = 0, end_value = -1.0) {
    (exponential_decay_at, init_value, transition_steps, decay_rate, transition_begin, end_value)
}

fn exponential_decay_at(step, init_value, transition_steps, decay_rate, transition_begin, end_value) {
    let t = step - 1.0 - max(transition_begin, 0)
    if transition_steps <= 0 || decay_rate == 0.0 {
        0.0 * t + init_value
    } else {
        let v = where(t <= 0.0, init_value, init_value * decay_rate ^ (t / transition_steps))
        if end_value < 0.0 {
            v
        } else {
            if decay_rate < 1.0 {
                max(v, end_value)
            } else {
                min(v, end_value)
            }
        }
    }
}

# init_value * ((1 - alpha) * c ^ exponent + alpha), c = (1 + cos(pi * min(count, decay_steps) / decay_steps)) / 2.
fn cosine_decay_schedule(init_value, decay_steps, alpha = 0.0, exponent = 1.0) {
    (cosine_decay_schedule_at, init_value, decay_steps, alpha, exponent)
}

fn cosine_decay_schedule_at(step, init_value, decay_steps, alpha, exponent) = cosine_decay_from(step - 1.0, init_value, decay_steps, alpha, exponent)

fn cosine_decay_from(t, init_value, decay_steps, alpha, exponent) {
    let c = 0.5 * (1.0 + cos(3.141592653589793 * min(t, decay_steps) / decay_steps))
    init_value * ((1.0 - alpha) * c ^ exponent + alpha)
}

# From init_value to end_value linearly over transition_steps, starting at transition_begin.
fn linear_schedule(init_value, end_value, transition_steps, transition_begin = 0) {
    (linear_schedule_at, init_value, end_value, transition_steps, transition_begin)
}

fn linear_schedule_at(step, init_value, end_value, transition_steps, transition_begin) = linear_from(step - 1.0, init_value, end_value, transition_steps, transition_begin)

fn linear_from(t, init_value, end_value, transition_steps, transition_begin) {
    if transition_steps <= 0 {
        0.0 * t + init_value
    } else {
        let c = min(max(t - max(transition_begin, 0), 0.0), transition_steps)
        (init_value - end_value) * (1.0 - c / transition_steps) + end_value
    }
}

# Linear warm-up from init_value to peak_value over warmup_steps, then cosine
# decay to end_value at decay_steps (counted from the start, as in optax).
fn warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps, end_value = 0.0, exponent = 1.0) {
    (warmup_cosine_decay_schedule_at, init_value, peak_value, warmup_steps, decay_steps, end_value, exponent)
}

fn warmup_cosine_decay_schedule_at(step, init_value, peak_value, warmup_steps, decay_steps, end_value, exponent) {
    let t = step - 1.0
    let alpha = if peak_value == 0.0 {
        0.0
    } else {
        end_value / peak_value
    }
    let warm = linear_from(t, init_value, peak_value, warmup_steps, 0)
    let decay = cosine_decay_from(t - warmup_steps, peak_value, decay_steps - warmup_steps, alpha, exponent)
    where(t < warmup_steps, warm, decay)
}

# One cycle (Smith and Topin, 2018) as optax.cosine_onecycle_schedule: cosine
# from peak_value / div_factor up to peak_value over the first
# pct_start * transition_steps steps, then cosine down to
# peak_value / (div_factor * final_div_factor) at transition_steps. optax
# truncates pct_start * transition_steps to an integer; this does not, so the
# two agree when it is one (e.g. 0.3 * 1000).
fn cosine_onecycle_schedule(transition_steps, peak_value, pct_start = 0.3, div_factor = 25.0, final_div_factor = 1e4) {
    (cosine_onecycle_schedule_at, transition_steps, peak_value, pct_start, div_factor, final_div_factor)
}

fn cosine_onecycle_schedule_at(step, transition_steps, peak_value, pct_start, div_factor, final_div_factor) {
    let t = step - 1.0
    let b = pct_start * transition_steps
    # optax's cumulative products of the values at the boundaries.
    let v0 = peak_value / div_factor
    let v1 = v0 * div_factor
    let v2 = v1 * (1.0 / (div_factor * final_div_factor))
    let up = cosine_interpolate(v0, v1, t / max(b, 1.0))
    let down = cosine_interpolate(v1, v2, (t - b) / max(transition_steps - b, 1.0))
    where(t < b, up, where(t < transition_steps, down, 0.0 * t + v2))
}

fn cosine_interpolate(start, end, pct) = end + (start - end) / 2.0 * (cos(3.141592653589793 * pct) + 1.0)
