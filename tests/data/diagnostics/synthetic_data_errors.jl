# synthetic(...) takes a known kind and positive counts; `logger` names
# known loggers.
use nn.Linear
use losses.cross_entropy
use optim.adam

model Net {
    l: Linear(2, 2)

    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 = cross_entropy(self.l(x), y)

    fn configure_optimizers(self) = adam(lr = 1e-3)
}

data = synthetic("spirals", n = 0) {
    batch_size = 8
}

trainer {
    logger = "csv,wandb"
}
