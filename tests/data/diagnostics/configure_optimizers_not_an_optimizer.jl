# `configure_optimizers` returns an optimizer, not a learning rate.
use nn.Linear
use losses.mse

model Net {
    l: Linear(4, 1)

    fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mse(self.l(x), y)

    fn configure_optimizers(self) = 1e-3
}

data = npz("data.npz") {
    batch_size = 8
}

trainer {
    max_epochs = 2
}
