# One `trainer` section per file: the second is reported, not merged.
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
    max_epochs = 2
}

trainer {
    max_epochs = 3
}
