# stdlib/nn.jl: layers and activations, written in the language itself so
# that they are differentiated, optimized and compiled with the user's code.

# A fully connected layer, y = x @ weight + bias, initialized as PyTorch's
# nn.Linear: weight and bias uniform in +-1/sqrt(fan_in).
model Linear(fan_in: int, fan_out: int) {
    weight: f32[fan_in, fan_out] = uniform(-1.0 / sqrt(fan_in), 1.0 / sqrt(fan_in))
    bias: f32[fan_out] = uniform(-1.0 / sqrt(fan_in), 1.0 / sqrt(fan_in))

    fn __call__(self, x: f32[B, fan_in]) -> f32[B, fan_out] {
        x @ self.weight + self.bias
    }
}

fn relu(x) = max(x, 0.0)

# The builtin logistic op: stable for large |x| (no exp overflow).
fn sigmoid(x) = logistic(x)

# log(sum(exp(x))) over the last axis, shifted by the maximum for stability.
fn logsumexp(x) {
    let m = max(x, axis = -1, keepdims = true)
    log(sum(exp(x - m), axis = -1, keepdims = true)) + m
}

fn log_softmax(x) = x - logsumexp(x)

fn softmax(x) = exp(log_softmax(x))
