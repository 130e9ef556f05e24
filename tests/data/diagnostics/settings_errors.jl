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


data = csv(42, shape = 2) {
    batch_size = 8
}

trainer {
    max_epochs = "ten"
    early_stopping_patience = 3
    checkpoint_filename = "ckpt/epoch={epoch}"
    callbacks = [checkpoint(monitor = "val_acc")]
}
