# The trained model must have parameters and a `training_step`, and its
# step methods must take the batch as the trainer passes it.
use optim.adam

model Scale(factor: float = 2.0) {
    fn forward(self, x: f32[B, 4]) -> f32[B, 4] = x * self.factor

    fn predict_step(self, x, y) = self.forward(x)

    fn configure_optimizers(self) = adam(lr = 1e-3)
}

data = npz("data.npz") {
    batch_size = 8
}

trainer {
    model = Scale()
}
