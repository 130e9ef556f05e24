# One mistake (`data` without a source) makes its whole `{ ... }` block
# unparseable: one report, not one per line inside it.
use nn.{Linear}
use losses.cross_entropy
use optim.adam

model Tiny {
    l: Linear(4, 2)
    fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 {
        cross_entropy(self.l(x), y)
    }
    fn configure_optimizers(self) = adam()
}


data {
    batch_size = 8
}

# Reported: an independent mistake after the skipped block.
const K = = 3
