# Batched @: the batch dims (all but the last two) must broadcast.
fn scores(q: f32[2, 4, 8], k: f32[3, 8, 4]) -> f32[2, 4, 4] = q @ k
