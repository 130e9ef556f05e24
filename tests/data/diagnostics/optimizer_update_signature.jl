# A custom optimizer's update takes (p, g, states..., step, hyperparameters...):
# this one has no `step`.
use nn.Linear
use losses.mse

fn descend(p, g, lr) = (p - lr * g,)

model Net {
    l: Linear(4, 1)

    fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mse(self.l(x), y)

    fn configure_optimizers(self) = optimizer(descend, lr = 0.1)
}

data = npz("data.npz") {
    batch_size = 8
}

trainer {
    max_epochs = 2
}
