# npy(...) reads the inputs and the targets from two files.
use nn.Linear
use losses.mse
use optim.adam

model Net {
    l: Linear(4, 1)

    fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mse(self.l(x), y)

    fn configure_optimizers(self) = adam(lr = 1e-3)
}

data = npy("x.npy") {
    batch_size = 8
}
