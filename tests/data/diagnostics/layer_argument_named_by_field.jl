# A layer's argument that does not fit names the layer as called (`self.head`),
# with its field (`head: Linear(144, 10)`) and the layer's declaration.
use nn.{Conv2d, Linear, relu}
use losses.cross_entropy
use optim.adam

model Cnn {
    conv: Conv2d(1, 4, 3)
    head: Linear(144, 10)

    fn training_step(self, x: f32[B, 1, 8, 8], y: i32[B]) -> f32 = cross_entropy(self.head(relu(self.conv(x))), y)

    fn configure_optimizers(self) = adam(lr = 1e-3)
}

data = npz("data.npz") {
    batch_size = 64
}

trainer {
    max_epochs = 1
}
