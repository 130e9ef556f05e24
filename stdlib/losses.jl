# stdlib/losses.jl: loss functions.
use nn.{log_softmax, softplus}

# Mean softmax cross-entropy of logits against integer class labels. The
# label's log-probability is selected (not multiplied by a one-hot), so a
# masked logit of -inf elsewhere in the row (log-probability -inf) does not
# make 0 * -inf = nan; the gradient is softmax(logits) - one_hot(labels),
# through logsumexp's rule (nn.jl). f32 or f64 logits (`float[...]`): the
# loss has their dtype.
fn cross_entropy(logits: float[B, C], labels: i32[B]) -> float {
    -mean(sum(where(one_hot(labels, C) > 0.0, log_softmax(logits), 0.0), axis = -1))
}

# Mean squared error.
fn mse(pred, target) = mean((pred - target) ^ 2)

# Mean absolute error.
fn l1_loss(pred, target) = mean(abs(pred - target))

# Mean Huber loss (optax.huber_loss): 0.5 e^2 where |e| <= delta, else
# delta (|e| - 0.5 delta), e = pred - target.
fn huber_loss(pred, target, delta = 1.0) {
    let a = abs(pred - target)
    let q = min(a, delta)
    mean(0.5 * q * q + delta * (a - q))
}

# Mean binary cross-entropy of logits against targets in [0, 1] (PyTorch's
# BCEWithLogitsLoss, optax.sigmoid_binary_cross_entropy), in the stable form
# softplus(x) - x z = max(x, 0) - x z + log(1 + exp(-|x|)).
fn binary_cross_entropy_with_logits(logits, targets) = mean(softplus(logits) - logits * targets)

# Mean negative log-likelihood of integer labels under log-probabilities
# (PyTorch's NLLLoss). Selected, not multiplied, as in cross_entropy.
fn nll_loss(log_probs: float[B, C], labels: i32[B]) -> float = -mean(sum(where(one_hot(labels, C) > 0.0, log_probs, 0.0), axis = -1))

# Mean cross-entropy of logits against target probabilities over the last
# axis (optax.softmax_cross_entropy).
fn softmax_cross_entropy(logits, probs) = -mean(sum(probs * log_softmax(logits), axis = -1))

# KL(targets || predictions) over the last axis, averaged over the other axes
# (optax.kl_divergence; PyTorch's kl_div with reduction "batchmean" for 2-D
# inputs). Takes log-predictions and probabilities; 0 log 0 counts as 0.
fn kl_divergence(log_predictions, targets) {
    let safe_log = log(where(targets > 0.0, targets, 1.0))
    mean(sum(targets * (safe_log - log_predictions), axis = -1))
}
