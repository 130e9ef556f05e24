# Integer settings are 64-bit: an overflow is an error, not a silently
# ignored setting.
use nn.Linear
use losses.cross_entropy
use optim.adam

model Net {
    l: Linear(4, 2)

    fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 = cross_entropy(self.l(x), y)

    fn configure_optimizers(self) = adam(lr = 1e-2)
}

data = csv("train.csv") { batch_size = 9223372036854775807 * 2 }
trainer { max_epochs = -(-9223372036854775807 - 1) }
