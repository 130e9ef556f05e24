# stdlib/metrics.jl: evaluation metrics.

# Fraction of rows whose label's logit is the largest (ties count as hits).
fn accuracy(logits: f32[B, C], labels: i32[B]) -> f32 {
    let label_logit = sum(one_hot(labels, C) * logits, axis = -1)
    mean(float(label_logit >= max(logits, axis = -1)))
}
