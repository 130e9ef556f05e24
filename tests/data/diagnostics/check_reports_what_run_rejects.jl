# `jlc check` reports what `jlc run` would reject before running: a
# training_step that returns a non-scalar, a `main` with parameters.
use nn.Linear
use optim.adam

model Net {
    l: Linear(4, 1)

    fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32[B, 1] {
        let d = self.l(x) - y
        d * d
    }

    fn configure_optimizers(self) = adam(lr = 1e-2)
}

fn main(x: f32) {
    print(x)
}

trainer { max_epochs = 1 }
