# moons_mlp.jl: a small MLP for the two-moons problem. It has no `data`
# section: `examples/fit_from_rust.rs` trains it on points a Rust
# `DataModule` generates (run: `cargo run --release --example fit_from_rust`).
# Expected (seed 0; the example's noise 0.35): val_acc 0.976, test_acc 0.990
# after 20 epochs.
use nn.{Linear, relu}
use losses.cross_entropy
use metrics.accuracy
use optim.adam

model Mlp {
    l1: Linear(2, 32)
    l2: Linear(32, 32)
    head: Linear(32, 2)

    fn forward(self, x: f32[B, 2]) -> f32[B, 2] = self.head(relu(self.l2(relu(self.l1(x)))))

    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {
        let logits = self.forward(x)
        log("train_acc", accuracy(logits, y), prog_bar = true)
        cross_entropy(logits, y)
    }

    fn validation_step(self, x: f32[B, 2], y: i32[B]) {
        let logits = self.forward(x)
        log("val_loss", cross_entropy(logits, y))
        log("val_acc", accuracy(logits, y), prog_bar = true)
    }

    fn test_step(self, x: f32[B, 2], y: i32[B]) {
        log("test_acc", accuracy(self.forward(x), y))
    }

    fn configure_optimizers(self) = adam(lr = 1e-2)
}

trainer {
    max_epochs = 20
    seed = 0
    log_every_n_steps = 10
}
