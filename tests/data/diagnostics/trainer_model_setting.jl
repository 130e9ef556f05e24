# `model = ...` in the trainer names a model and its arguments.
use nn.Linear
use losses.mse
use optim.adam

model Net {
    l: Linear(4, 1)

    fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mse(self.l(x), y)

    fn configure_optimizers(self) = adam(lr = 1e-3)
}

data = npz("data.npz") {
    batch_size = 8
}

trainer {
    model = 3
}
