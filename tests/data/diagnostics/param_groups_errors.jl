# A part named in two groups, and a misspelled submodule.
use nn.Linear
use losses.mse
use optim.{adam, sgd}

model Net {
    encoder: Linear(4, 8)
    head: Linear(8, 1)

    fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mse(self.head(self.encoder(x)), y)

    fn configure_optimizers(self) = param_groups(adam(lr = 1e-3), (self.encoder, sgd(lr = 0.1)), ("encodr.bias", sgd()), frozen = self.encoder)
}
trainer { max_epochs = 1 }
