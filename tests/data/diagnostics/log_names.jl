# log: the trainer's own `train_loss`, a name logged twice, and settings log does not take.
use nn.Linear
use losses.cross_entropy
use optim.adam

model M {
    l: Linear(4, 3)

    fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 {
        let loss = cross_entropy(self.l(x), y)
        log("train_loss", loss)
        log("norm", sum(self.l.weight))
        log("norm", mean(self.l.weight))
        loss
    }

    fn validation_step(self, x: f32[B, 4], y: i32[B]) {
        log("val_loss", cross_entropy(self.l(x), y), on_epoch = true)
        log("val_max", max(self.l(x)), reduce = "max")
    }

    fn configure_optimizers(self) = adam()
}
