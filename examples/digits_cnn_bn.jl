# digits_cnn_bn.jl: a small CNN with batch normalization and dropout on the
# UCI digits (8x8 images, shipped in examples/data). Batch norm keeps running
# statistics in buffers: updated by each training step, used by validation
# (`self.training` is false there), saved in checkpoints and resumed.
# Run: jlc run examples/digits_cnn_bn.jl
use nn.{BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Linear, MaxPool2d, relu}
use losses.cross_entropy
use metrics.accuracy
use optim.adam

model BnCnn {
    conv1: Conv2d(1, 16, 3, padding = 1)
    bn1: BatchNorm2d(16)
    conv2: Conv2d(16, 32, 3, padding = 1)
    bn2: BatchNorm2d(32)
    pool: MaxPool2d(2)
    fc: Linear(32 * 4 * 4, 64, use_bias = false)
    bn3: BatchNorm1d(64)
    drop: Dropout(0.3)
    head: Linear(64, 10)

    # One forward for training and evaluation: batch norm and dropout act
    # by `self.training`; the key is used only while training.
    fn forward(self, x: f32[B, 64], key = 0) -> f32[B, 10] {
        let h = relu(self.bn1(self.conv1(reshape(x, (-1, 1, 8, 8)))))
        let h = self.pool(relu(self.bn2(self.conv2(h))))
        self.head(self.drop(relu(self.bn3(self.fc(flatten(h)))), key))
    }

    fn training_step(self, x: f32[B, 64], y: i32[B], key) -> f32 {
        let logits = self.forward(x, key)
        log("train_acc", accuracy(logits, y), prog_bar = true)
        cross_entropy(logits, y)
    }

    fn validation_step(self, x: f32[B, 64], y: i32[B]) {
        let logits = self.forward(x)
        log("val_loss", cross_entropy(logits, y))
        log("val_acc", accuracy(logits, y), prog_bar = true)
    }

    fn configure_optimizers(self) = adam(lr = 3e-3)
}

data = csv("data/digits.csv.gz", scale = 1.0 / 16.0) {
    batch_size = 64
    val_split = 297
    shuffle = true
}

trainer {
    max_epochs = 10
    seed = 0
}
