# W4 of PERFORMANCE.md: the loss sum(gelu_tanh(x*w + b)^2) and its gradient
# with respect to w and b, tanh-GELU written out as in the peers. N is bound
# by the caller (the bench: 4,194,304; the tests: smaller).

fn gelu_tanh(x) = 0.5 * x * (1.0 + tanh(0.7978845608 * (x + 0.044715 * x ^ 3)))

fn loss(w: f32[N], b: f32[N], x: f32[N]) -> f32 {
    sum(gelu_tanh(x * w + b) ^ 2)
}

fn w4(w: f32[N], b: f32[N], x: f32[N]) = value_and_grad(loss, wrt = (w, b))(w, b, x)
