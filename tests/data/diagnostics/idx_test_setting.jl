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


data = idx("mnist") {
    test = "mnist-test.csv"
}
