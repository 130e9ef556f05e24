# stdlib/optim.jl: optimizers. An optimizer is an update function
#   fn NAME_update(p, g, states..., step, hyperparameters...) -> (p', states'...)
# applied to every parameter inside the compiled training step. States start
# at zero; `step` counts from 1. Each update is a pure function of the step,
# so resuming is correct by construction.

# Plain stochastic gradient descent.
fn sgd_update(p, g, step, lr = 0.01) = (p - lr * g,)

fn sgd(lr = 0.01) = optimizer(sgd_update, lr = lr)

# Adam (Kingma and Ba, 2015), with bias correction as in optax and PyTorch.
fn adam_update(p, g, m, v, step, lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-8) {
    let m = b1 * m + (1.0 - b1) * g
    let v = b2 * v + (1.0 - b2) * g * g
    let m_hat = m / (1.0 - b1 ^ step)
    let v_hat = v / (1.0 - b2 ^ step)
    (p - lr * m_hat / (sqrt(v_hat) + eps), m, v)
}

fn adam(lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-8) = optimizer(adam_update, lr = lr, b1 = b1, b2 = b2, eps = eps)
