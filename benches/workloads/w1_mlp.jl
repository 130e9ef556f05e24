# w1_mlp.jl: the W1 workload of the performance plan: a 784-256-256-10
# ReLU MLP with softmax cross-entropy and Adam 1e-3 (batch 128 in the
# bench). No logged metrics: the peers compute the loss only. Used by
# `benches/train_step.rs` and by the GPU fusion tests.
use nn.{Linear, relu}
use losses.cross_entropy
use optim.adam

model W1 {
    l1: Linear(784, 256)
    l2: Linear(256, 256)
    head: Linear(256, 10)

    fn training_step(self, x: f32[B, 784], y: i32[B]) -> f32 {
        cross_entropy(self.head(relu(self.l2(relu(self.l1(x))))), y)
    }

    fn configure_optimizers(self) = adam(lr = 1e-3)
}

trainer {
    seed = 0
}
