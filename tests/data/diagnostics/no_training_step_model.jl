# Without `model = ...`, the trained model is the one with a `training_step`:
# here it is misspelled.
use nn.Linear
use optim.adam

model Net {
    l: Linear(4, 1)

    fn train_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mean((self.l(x) - y) ^ 2)

    fn configure_optimizers(self) = adam(lr = 1e-3)
}

data = npz("data.npz") {
    batch_size = 8
}

trainer {
    max_epochs = 2
}
