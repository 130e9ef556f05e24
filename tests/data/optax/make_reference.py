"""Writes optax's own trajectories for the optimizers and schedules of
stdlib/optim.jl, the reference that tests/it/stdlib.rs compares against.

Run from the repository root (needs `pip install optax jax`):
    python3 tests/data/optax/make_reference.py
It writes tests/data/optax/optimizers.json and schedules.json, in float64.

Each optimizer case runs 10 updates from fixed parameters (a rank-2 `w`
and a rank-1 `b`, so that AdamW's mask is exercised) with a fixed gradient
sequence (independent of the parameters). `jl` is the matching stdlib
update call's hyperparameters; `schedule` (optional) is an lr schedule,
given to optax as the learning rate and to our update as `lr`. Each schedule
case lists schedule(count) for count = 0..N-1, which our `*_at` functions
see as step = count + 1.
"""

import json
import math
import os

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 10

W0 = [[0.5, -1.25, 2.0], [-0.75, 1.5, 0.25]]
B0 = [0.1, -0.2, 0.3]


def grads(k):
    """Gradient k (0-based): smooth, sign-changing, some exactly zero."""
    w = [[math.sin(1.0 + k + 3 * i + j) * (1.0 + 0.5 * i) for j in range(3)] for i in range(2)]
    b = [math.cos(0.5 * k + j) - 0.5 * j if (k + j) % 4 else 0.0 for j in range(3)]
    return {"w": w, "b": b}


def in_float64(schedule):
    """The schedule on a float64 count: optax passes its int32 step count,
    on which some schedules compute in float32 (JAX's promotion of int32 with
    Python floats), which would put float32 rounding into the reference."""
    return lambda count: schedule(jnp.asarray(count, dtype=jnp.float64))


def rank2_mask(params):
    return jax.tree.map(lambda x: x.ndim >= 2, params)


SCHEDULES = {
    # name: (optax schedule, jl expression, number of arguments after `f`)
    "constant": (optax.constant_schedule(0.05), "constant_schedule(0.05)", 1),
    "piecewise_constant": (
        optax.piecewise_constant_schedule(0.1, {3: 0.5, 6: 0.1}),
        "piecewise_constant_schedule(0.1, 3, 0.5, b2 = 6, s2 = 0.1)",
        7,
    ),
    "exponential_decay": (
        optax.exponential_decay(0.1, transition_steps=3, decay_rate=0.5, transition_begin=2),
        "exponential_decay(0.1, 3, 0.5, transition_begin = 2)",
        5,
    ),
    "exponential_decay_clipped": (
        optax.exponential_decay(0.1, transition_steps=2, decay_rate=0.5, end_value=0.02),
        "exponential_decay(0.1, 2, 0.5, end_value = 0.02)",
        5,
    ),
    "cosine_decay": (
        optax.cosine_decay_schedule(0.1, decay_steps=7, alpha=0.2),
        "cosine_decay_schedule(0.1, 7, alpha = 0.2)",
        4,
    ),
    "cosine_decay_exponent": (
        optax.cosine_decay_schedule(0.1, decay_steps=8, exponent=2.0),
        "cosine_decay_schedule(0.1, 8, exponent = 2.0)",
        4,
    ),
    "linear": (
        optax.linear_schedule(0.0, 0.1, transition_steps=5, transition_begin=2),
        "linear_schedule(0.0, 0.1, 5, transition_begin = 2)",
        4,
    ),
    "warmup_cosine_decay": (
        optax.warmup_cosine_decay_schedule(0.0, 0.1, warmup_steps=3, decay_steps=9, end_value=0.01),
        "warmup_cosine_decay_schedule(0.0, 0.1, 3, 9, end_value = 0.01)",
        6,
    ),
    "cosine_onecycle": (
        optax.cosine_onecycle_schedule(10, 0.1, pct_start=0.3),
        "cosine_onecycle_schedule(10, 0.1, pct_start = 0.3)",
        5,
    ),
}

OPTIMIZERS = {
    # name: (optax optimizer, stdlib update function, states per parameter, its hyperparameters, lr schedule or None)
    "sgd": (optax.sgd(0.1), "sgd_update", 0, "lr = 0.1", None),
    "sgd_momentum": (optax.sgd(0.1, momentum=0.9), "sgd_momentum_update", 1, "lr = 0.1, momentum = 0.9", None),
    "sgd_nesterov": (
        optax.sgd(0.1, momentum=0.8, nesterov=True),
        "sgd_momentum_update",
        1,
        "momentum = 0.8, nesterov = true, lr = 0.1",
        None,
    ),
    "adam": (optax.adam(0.05), "adam_update", 2, "lr = 0.05", None),
    "adam_b": (optax.adam(0.05, b1=0.8, b2=0.95, eps=1e-3), "adam_update", 2, "lr = 0.05, b1 = 0.8, b2 = 0.95, eps = 1e-3", None),
    "adamw": (
        optax.adamw(0.05, weight_decay=0.1, mask=rank2_mask),
        "adamw_update",
        2,
        "lr = 0.05, weight_decay = 0.1",
        None,
    ),
    "adamw_all": (
        optax.adamw(0.05, weight_decay=0.1),
        "adamw_update",
        2,
        "lr = 0.05, weight_decay = 0.1, decay_min_rank = 0",
        None,
    ),
    "rmsprop": (optax.rmsprop(0.01), "rmsprop_update", 1, "lr = 0.01", None),
    "rmsprop_init": (
        optax.rmsprop(0.01, decay=0.8, eps=1e-4, initial_scale=0.5, eps_in_sqrt=False),
        "rmsprop_update",
        1,
        "lr = 0.01, decay = 0.8, eps = 1e-4, initial_scale = 0.5, eps_in_sqrt = false",
        None,
    ),
    "adagrad": (optax.adagrad(0.1), "adagrad_update", 1, "lr = 0.1", None),
    "adagrad_zero_init": (
        optax.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-6),
        "adagrad_update",
        1,
        "lr = 0.1, initial_accumulator_value = 0.0, eps = 1e-6",
        None,
    ),
    "adamw_warmup_cosine": (
        optax.adamw(in_float64(SCHEDULES["warmup_cosine_decay"][0]), weight_decay=0.1, mask=rank2_mask),
        "adamw_update",
        2,
        "weight_decay = 0.1",
        "warmup_cosine_decay",
    ),
    "sgd_momentum_onecycle": (
        optax.sgd(in_float64(SCHEDULES["cosine_onecycle"][0]), momentum=0.9),
        "sgd_momentum_update",
        1,
        "momentum = 0.9",
        "cosine_onecycle",
    ),
}


def flat(x):
    return [float(v) for v in jnp.ravel(jnp.asarray(x, dtype=jnp.float64))]


def run_optimizer(opt):
    params = {"w": jnp.array(W0, dtype=jnp.float64), "b": jnp.array(B0, dtype=jnp.float64)}
    state = opt.init(params)
    out = []
    for k in range(STEPS):
        g = {key: jnp.array(v, dtype=jnp.float64) for key, v in grads(k).items()}
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
        out.append({"w": flat(params["w"]), "b": flat(params["b"])})
    return out


def main():
    optimizers = {
        "w0": flat(W0),
        "b0": flat(B0),
        "w_shape": [2, 3],
        "b_shape": [3],
        "grads": [{"w": flat(g["w"]), "b": flat(g["b"])} for g in map(grads, range(STEPS))],
        "cases": [],
    }
    for name, (opt, update, n_states, hyper, schedule) in OPTIMIZERS.items():
        case = {"name": name, "update": update, "states": n_states, "hyper": hyper, "trajectory": run_optimizer(opt)}
        if schedule is not None:
            case["schedule"] = SCHEDULES[schedule][1]
            case["schedule_args"] = SCHEDULES[schedule][2]
        optimizers["cases"].append(case)
    schedules = {"cases": []}
    for name, (sched, jl, n_args) in SCHEDULES.items():
        values = [float(sched(jnp.asarray(c, dtype=jnp.float64))) for c in range(12)]
        # optax evaluates schedules on an integer count (some then compute in
        # float32): the float64 count must agree with it.
        ints = [float(sched(jnp.asarray(c, dtype=jnp.int32))) for c in range(12)]
        assert all(abs(a - b) <= 1e-6 * max(1e-3, abs(a)) for a, b in zip(values, ints)), (name, values, ints)
        schedules["cases"].append({"name": name, "jl": jl, "args": n_args, "values": values})
    for file, data in [("optimizers.json", optimizers), ("schedules.json", schedules)]:
        with open(os.path.join(HERE, file), "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
