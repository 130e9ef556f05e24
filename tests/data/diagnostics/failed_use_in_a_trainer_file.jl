# A failed use is one report: the model check does not then call the model empty; an axis from an int parameter (checked alone) is silent.
use nnn.{Linear}
use optim.adam

model Net {
    l: Linear(1, 1)
    fn training_step(self, x: f32[B, 1], y: f32[B, 1]) -> f32 = mean((self.l(x) - y) ^ 2)
    fn configure_optimizers(self) = adam()
}

fn s(x: f32[4, 3], k: int) = log(sum(exp(x), axis = k))

trainer { max_epochs = 1 }
