# stdlib/nn.jl: layers and activations, written in the language itself so
# that they are differentiated, optimized and compiled with the user's code.

# A fully connected layer, y = x @ weight + bias, initialized as PyTorch's
# nn.Linear: weight and bias uniform in +-1/sqrt(fan_in). Any leading dims,
# as torch: [B, T, fan_in] maps each of the B * T rows. `use_bias = false`
# (Flax's name; PyTorch's `bias = False`): no bias, y = x @ weight.
model Linear(fan_in: int, fan_out: int, use_bias: bool = true) {
    weight: f32[fan_in, fan_out] = uniform(-1.0 / sqrt(fan_in), 1.0 / sqrt(fan_in))
    bias: f32[fan_out] = if use_bias {
        uniform(-1.0 / sqrt(fan_in), 1.0 / sqrt(fan_in))
    } else {
        absent()
    }

    fn __call__(self, x: f32[..., fan_in]) -> f32[..., fan_out] {
        if use_bias {
            x @ self.weight + self.bias
        } else {
            x @ self.weight
        }
    }
}

# Layer normalization (Ba et al., 2016) over the last axis, with a learned
# elementwise scale (starting at 1) and bias (starting at 0), as PyTorch's
# nn.LayerNorm(dim, eps).
model LayerNorm(dim: int, eps: float = 1e-5) {
    scale: f32[dim] = ones()
    bias: f32[dim]

    fn __call__(self, x) = layer_norm(x, self.scale, self.bias, eps)
}

# (x - mean) / sqrt(var + eps) * scale + bias over the last axis (the biased variance).
fn layer_norm(x, scale, bias, eps = 1e-5) {
    let xc = x - mean(x, axis = -1, keepdims = true)
    let var = mean(xc * xc, axis = -1, keepdims = true)
    xc * rsqrt(var + eps) * scale + bias
}

# Batch normalization (Ioffe & Szegedy, 2015), as PyTorch's BatchNorm1d
# and BatchNorm2d: while training, each feature (channel) is normalized with
# the batch's mean and biased variance, and the running statistics, buffers,
# move toward them: running = (1 - momentum) * running + momentum * batch,
# with the variance unbiased, n / (n - 1), as PyTorch's. In validation, test
# and prediction (`self.training` false) the running statistics normalize.
model BatchNorm1d(num_features: int, eps: float = 1e-5, momentum: float = 0.1) {
    weight: f32[num_features] = ones()
    bias: f32[num_features]
    running_mean: f32[num_features] = buffer(zeros())
    running_var: f32[num_features] = buffer(ones())

    fn __call__(self, x: f32[B, num_features]) -> f32[B, num_features] {
        if self.training {
            let m = mean(x, axis = 0)
            let v = var(x, axis = 0)
            update_running_stats(self, m, v, size(x, 0), momentum)
            (x - m) * rsqrt(v + eps) * self.weight + self.bias
        } else {
            (x - self.running_mean) * rsqrt(self.running_var + eps) * self.weight + self.bias
        }
    }
}

# BatchNorm1d over the channels of images [B, C, H, W]: the statistics of a
# channel are over the batch and the pixels.
model BatchNorm2d(num_features: int, eps: float = 1e-5, momentum: float = 0.1) {
    weight: f32[num_features] = ones()
    bias: f32[num_features]
    running_mean: f32[num_features] = buffer(zeros())
    running_var: f32[num_features] = buffer(ones())

    fn __call__(self, x: f32[B, num_features, H, W]) -> f32[B, num_features, H, W] {
        let per_channel = fn(v) = reshape(v, (1, num_features, 1, 1))
        let scale = per_channel(self.weight)
        if self.training {
            let m = mean(x, axis = (0, 2, 3))
            let v = var(x, axis = (0, 2, 3))
            update_running_stats(self, m, v, size(x, 0) * size(x, 2) * size(x, 3), momentum)
            (x - per_channel(m)) * rsqrt(per_channel(v) + eps) * scale + per_channel(self.bias)
        } else {
            let m = per_channel(self.running_mean)
            (x - m) * rsqrt(per_channel(self.running_var) + eps) * scale + per_channel(self.bias)
        }
    }
}

# The running statistics of a batch norm `bn` after a batch of n values
# per feature with mean m and biased variance v.
fn update_running_stats(bn, m, v, n: int, momentum: float) {
    assert(n > 1, "batch norm needs more than 1 value per channel while training (a batch of 1 has no variance; PyTorch refuses it too)")
    let unbiased = v * (float(n) / float(n - 1))
    let running_mean = (1.0 - momentum) * bn.running_mean + momentum * m
    assign(bn, running_mean = running_mean, running_var = (1.0 - momentum) * bn.running_var + momentum * unbiased)
}

fn relu(x) = max(x, 0.0)

# x where x >= 0, else negative_slope * x (jax.nn.leaky_relu).
fn leaky_relu(x, negative_slope = 0.01) = where(x >= 0.0, x, negative_slope * x)

# x where x > 0, else alpha * (exp(x) - 1). The exp branch sees 0 where x > 0,
# so that its unused value (and gradient) cannot overflow (as jax.nn.elu).
fn elu(x, alpha = 1.0) = where(x > 0.0, x, alpha * expm1(where(x > 0.0, 0.0, x)))

# log(1 + exp(x)), stable for large |x|: x + log1p(exp(-x)) where x > 0,
# else log1p(exp(x)); each branch sees only its own side (the other's
# unused value and gradient cannot overflow, as in `elu`). Its gradient is
# logistic(x), 0.5 at 0 (`max(x, 0) + log1p(exp(-abs(x)))` gave 1 there:
# max sends a tie's gradient to x, abs's is 0).
fn softplus(x) = where(x > 0.0, x + log1p(exp(-max(x, 0.0))), log1p(exp(min(x, 0.0))))

# x * sigmoid(x), also known as swish.
fn silu(x) = x * logistic(x)

# Gaussian error linear unit (Hendrycks and Gimpel, 2016). The default is the
# tanh approximation, 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), as
# jax.nn.gelu; `approximate = false` is exact, 0.5 x (1 + erf(x / sqrt(2))),
# as PyTorch's default.
fn gelu(x, approximate = true) {
    if approximate {
        0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.141592653589793) * (x + 0.044715 * x * x * x)))
    } else {
        0.5 * x * (1.0 + erf(x / sqrt(2.0)))
    }
}

# The builtin logistic op: stable for large |x| (no exp overflow).
fn sigmoid(x) = logistic(x)

# Inverted dropout (Srivastava et al., 2014), as PyTorch's F.dropout in
# training mode: each element is zeroed with probability `rate` and the
# others are scaled by 1 / (1 - rate), so the expected value is unchanged.
# Pass a fresh key per step (a step method's `key` parameter); outside
# training simply do not call it. rate = 1.0 gives zeros with zero
# gradients, as PyTorch: the kept branch divides by at least 1e-30, so its
# gradient, 0 wherever nothing is kept, stays 0 (a division by 0 made it NaN).
fn dropout(x, key, rate = 0.5) = where(uniform(key, shape(x)) >= rate, x / max(1.0 - rate, 1e-30), 0.0 * x)

# Dropout as a layer (PyTorch's nn.Dropout): in a training step it drops
# with the step's key, `self.drop(x, key)`; in validation, test and
# prediction (`self.training` false) it is the identity and needs no key,
# so one `forward` serves both.
model Dropout(rate: float = 0.5) {
    fn __call__(self, x, key = 0) {
        if self.training {
            assert(ndim(key) == 1, "Dropout needs the step's random key while training: `self.drop(x, key)`")
            dropout(x, key, rate)
        } else {
            x
        }
    }
}

# log(sum(exp(x))) over the last axis, shifted by the maximum m for
# stability (as jax.nn.logsumexp). m is a stop_gradient: the result does not
# depend on it, so its derivative through both terms cancels exactly, and
# leaving it out makes autodiff produce the custom rule
#   d logsumexp(x) / dx = exp(x - m) / sum(exp(x - m)) = softmax(x),
# finite for logits of any size and for -inf (masked) entries, and cheaper
# than the forward (a division, a broadcast and a product reusing the
# forward's exp; no max gradient). A row of only -inf (or of +inf) would
# make x - m nan, so a non-finite m shifts by 0 instead.
fn logsumexp(x) {
    let m = row_shift(x)
    log(sum(exp(x - m), axis = -1, keepdims = true)) + m
}

# The stabilizing shift of logsumexp and softmax: the maximum over the last
# axis (keepdims), as a constant for autodiff, or 0 where it is not finite.
fn row_shift(x) {
    let m = stop_gradient(max(x, axis = -1, keepdims = true))
    where(abs(m) <= 3.4028234663852886e38, m, 0.0)
}

# (x - m) - log(sum(exp(x - m))), as jax.nn.log_softmax: subtracting the
# whole logsumexp from x instead rounds it at the logits' magnitude (four
# equal logits of 1e4 gave -1.386719 for log(1/4) = -1.386294). m is
# logsumexp's stop_gradient shift, so the gradient is 1 - softmax(x).
fn log_softmax(x) {
    let shifted = x - row_shift(x)
    shifted - log(sum(exp(shifted), axis = -1, keepdims = true))
}

# exp(x - m) / sum(exp(x - m)) over the last axis (jax.nn.softmax's
# formula): one exp per element, where exp(log_softmax(x)) took two (the
# logsumexp's and the result's). The shift cancels, so autodiff gives
# softmax's usual rule through the quotient; a row of only -inf is nan,
# as through log_softmax.
fn softmax(x) {
    let e = exp(x - row_shift(x))
    e / sum(e, axis = -1, keepdims = true)
}

# 2-D convolution layer over NCHW images, PyTorch's nn.Conv2d(in, out, k,
# stride, padding) with its default initialization (uniform in
# +-1/sqrt(in * k * k) for weights and bias). The bias is [out], as in
# PyTorch (so AdamW's rank mask leaves it undecayed, as any bias), and is
# viewed as [out, 1, 1] to broadcast over the image.
model Conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0) {
    weight: f32[out_channels, in_channels, kernel_size, kernel_size] = uniform(-1.0 / sqrt(in_channels * kernel_size * kernel_size), 1.0 / sqrt(in_channels * kernel_size * kernel_size))
    bias: f32[out_channels] = uniform(-1.0 / sqrt(in_channels * kernel_size * kernel_size), 1.0 / sqrt(in_channels * kernel_size * kernel_size))

    fn __call__(self, x: f32[N, in_channels, H, W]) {
        conv2d(x, self.weight, stride = self.stride, padding = self.padding) + reshape(self.bias, (-1, 1, 1))
    }
}

# nn.ConvTranspose2d: the transpose of a conv (an upsampling layer, as in
# decoders and U-Nets): x: [N, in_channels, H, W] -> [N, out_channels,
# (H - 1) * stride - 2 * padding + kernel_size + output_padding, ...].
# The weight is [in_channels, out_channels, K, K] as in PyTorch, whose rule
# takes the fan-in from the weight's dim 1: uniform in
# +-1/sqrt(out_channels * K * K) for the weight and the bias.
model ConvTranspose2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0) {
    weight: f32[in_channels, out_channels, kernel_size, kernel_size] = uniform(-1.0 / sqrt(out_channels * kernel_size * kernel_size), 1.0 / sqrt(out_channels * kernel_size * kernel_size))
    bias: f32[out_channels] = uniform(-1.0 / sqrt(out_channels * kernel_size * kernel_size), 1.0 / sqrt(out_channels * kernel_size * kernel_size))

    fn __call__(self, x: f32[N, in_channels, H, W]) {
        conv_transpose2d(x, self.weight, stride = self.stride, padding = self.padding, output_padding = self.output_padding) + reshape(self.bias, (-1, 1, 1))
    }
}

# Max pooling over windows of the last two dims of x: [N, C, H, W], as
# PyTorch's nn.MaxPool2d(kernel_size, stride, padding); stride 0 (the
# default) means stride = kernel_size, as PyTorch's None.
model MaxPool2d(kernel_size: int, stride: int = 0, padding: int = 0) {
    fn __call__(self, x) {
        let s = if stride > 0 {
            stride
        } else {
            kernel_size
        }
        max_pool2d(x, kernel_size, stride = s, padding = padding)
    }
}

# Average pooling, as PyTorch's nn.AvgPool2d (padding counts as zeros).
model AvgPool2d(kernel_size: int, stride: int = 0, padding: int = 0) {
    fn __call__(self, x) {
        let s = if stride > 0 {
            stride
        } else {
            kernel_size
        }
        avg_pool2d(x, kernel_size, stride = s, padding = padding)
    }
}

# A two-layer perceptron dim -> hidden -> out with a GELU between (the MLP
# of transformer and mixer blocks).
model Mlp(dim: int, hidden: int, out: int) {
    up: Linear(dim, hidden)
    down: Linear(hidden, out)

    fn __call__(self, x) = self.down(gelu(self.up(x)))
}

# A lookup table of `num` vectors of size `dim`, as PyTorch's nn.Embedding
# (initialized normal(0, 1)): ids i32[...] -> f32[..., dim].
model Embedding(num: int, dim: int, std: float = 1.0) {
    weight: f32[num, dim] = normal(std)

    fn __call__(self, ids) = take(self.weight, ids)
}

# Multi-head self-attention over x: [B, T, d] with the input projection
# w_qkv: [d, 3d] (+ b_qkv: [3d]) split as (q, k, v) and heads within each,
# and the output projection w_out: [d, d] (+ b_out: [d]). Scores are scaled
# by 1/sqrt(d/heads); with `causal`, position i attends to positions j <= i.
fn multi_head_attention(x, w_qkv, b_qkv, w_out, b_out, heads: int, causal = false) {
    let t = size(x, 1)
    let d = size(x, 2)
    assert(d / heads * heads == d, "multi_head_attention: the model width d (x's last dim) must be divisible by heads")
    let hd = d / heads
    let qkv = reshape(reshape(x, (-1, d)) @ w_qkv + b_qkv, (-1, t, 3, heads, hd))
    # [3, B, heads, T, hd]
    let qkv = transpose(qkv, (2, 0, 3, 1, 4))
    let q = reshape(qkv[0], (-1, heads, t, hd))
    let k = reshape(qkv[1], (-1, heads, t, hd))
    let v = reshape(qkv[2], (-1, heads, t, hd))
    let scores = q @ transpose(k, (0, 1, 3, 2)) / sqrt(float(hd))
    let masked = if causal {
        # -inf, not a large negative number: scores below it (a diverging
        # run's) would let a position attend to later ones.
        where(reshape(arange(t), (t, 1)) >= reshape(arange(t), (1, t)), scores, -1.0 / 0.0)
    } else {
        scores
    }
    let att = softmax(masked) @ v
    let merged = reshape(transpose(att, (0, 2, 1, 3)), (-1, d))
    reshape(merged @ w_out + b_out, (-1, t, d))
}

# Causal multi-head self-attention (GPT's): `multi_head_attention` with the mask.
fn causal_self_attention(x, w_qkv, b_qkv, w_out, b_out, heads: int) = multi_head_attention(x, w_qkv, b_qkv, w_out, b_out, heads, causal = true)

# Multi-head self-attention as a layer, PyTorch's nn.MultiheadAttention on
# (x, x, x) with batch_first, its projections initialized as nn.Linear's.
model MultiHeadAttention(d: int, heads: int, causal: bool = false) {
    qkv: Linear(d, 3 * d)
    out: Linear(d, d)

    fn __call__(self, x) = multi_head_attention(x, self.qkv.weight, self.qkv.bias, self.out.weight, self.out.bias, heads, causal = causal)
}

# The attention layer: projections initialized as nn.Linear's.
model CausalSelfAttention(d: int, heads: int) {
    qkv: Linear(d, 3 * d)
    out: Linear(d, d)

    fn __call__(self, x) = causal_self_attention(x, self.qkv.weight, self.qkv.bias, self.out.weight, self.out.bias, heads)
}

# A pre-LN transformer block (GPT-2's): x + attn(ln1(x)), then
# x + mlp(ln2(x)) with a tanh-GELU MLP of width `hidden`, on x: [B, T, d].
model TransformerBlock(d: int, heads: int, hidden: int) {
    ln1: LayerNorm(d)
    attn: CausalSelfAttention(d, heads)
    ln2: LayerNorm(d)
    up: Linear(d, hidden)
    down: Linear(hidden, d)

    fn __call__(self, x) {
        let x = x + self.attn(self.ln1(x))
        let h = gelu(self.up(reshape(self.ln2(x), (-1, d))))
        x + reshape(self.down(h), (-1, size(x, 1), d))
    }
}
