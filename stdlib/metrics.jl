# stdlib/metrics.jl: evaluation metrics.

# Fraction of rows whose prediction, argmax(logits) (the first of equal
# maxima), is the label: torchmetrics' multiclass accuracy. Counting ties
# as hits instead would score a model with constant logits 1.0.
fn accuracy(logits: float[B, C], labels: i32[B]) -> f32 = mean(float(argmax(logits, axis = -1) == labels))

# Fraction of rows whose label is among the k largest logits, equal logits
# ranked by index as argmax does (k = 1 is `accuracy`): fewer than k
# logits are larger than the label's or equal to it at a smaller index.
fn top_k_accuracy(logits: float[B, C], labels: i32[B], k = 5) -> f32 {
    let label_logit = sum(where(one_hot(labels, C) > 0.0, logits, 0.0), axis = -1, keepdims = true)
    let earlier = reshape(arange(C), (1, C)) < reshape(labels, (-1, 1))
    let ahead = logits > label_logit || logits == label_logit && earlier
    mean(float(sum(float(ahead), axis = -1) < k))
}
