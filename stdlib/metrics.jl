# stdlib/metrics.jl: evaluation metrics.

# Fraction of rows whose label's logit is the largest (ties count as hits).
fn accuracy(logits: float[B, C], labels: i32[B]) -> f32 {
    let label_logit = sum(where(one_hot(labels, C) > 0.0, logits, 0.0), axis = -1)
    mean(float(label_logit >= max(logits, axis = -1)))
}

# Fraction of rows whose label is among the k largest logits: fewer than k
# logits are strictly larger than the label's (ties count as hits).
fn top_k_accuracy(logits: float[B, C], labels: i32[B], k = 5) -> f32 {
    let label_logit = sum(where(one_hot(labels, C) > 0.0, logits, 0.0), axis = -1, keepdims = true)
    let larger = sum(float(logits > label_logit), axis = -1)
    mean(float(larger < k))
}
