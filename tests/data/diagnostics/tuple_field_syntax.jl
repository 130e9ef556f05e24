use nn.{Linear, relu}
use losses.mse
use optim.sgd

model Net {
    blocks: [Linear(4, 4); 2]

    fn __call__(self, x) = self.blocks.1(relu(self.blocks.0(x)))

    fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 = mse(self(x), float(one_hot(y, 4)))

    fn configure_optimizers(self) = sgd(lr = 0.1)
}
