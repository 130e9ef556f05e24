# stdlib/losses.jl: loss functions.
use nn.log_softmax

# Mean softmax cross-entropy of logits against integer class labels.
fn cross_entropy(logits: f32[B, C], labels: i32[B]) -> f32 {
    -mean(sum(one_hot(labels, C) * log_softmax(logits), axis = -1))
}

# Mean squared error.
fn mse(pred, target) = mean((pred - target) ^ 2)
