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

data = csv("train.csv") {
    batch_size = 8
    batch_size = 16
    shuffle = "yes" == "no"
}

data = csv("other.csv") {
    batch_size = 8
}

trainer {
    max_epochs = 3
    save_top_k = "all"
}
