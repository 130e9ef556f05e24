# fashion_mnist_mlp.jl: a 784-256-256-10 ReLU MLP on Fashion-MNIST (60,000
# 28x28 grayscale images of clothing, 10 classes), the W1 configuration of
# the performance plan: Adam 1e-3, batch 128, 5 epochs.
# Needs the IDX files: `apt-get install dataset-fashion-mnist` puts them in
# /usr/share/datasets/fashion-mnist (train-images-idx3-ubyte.gz, ...).
# Run: jlc run examples/fashion_mnist_mlp.jl
# Expected: val_acc about 0.85 after 1 epoch, about 0.88 after 5. After
# training, test_step runs on the 10,000 t10k test images (the table at the
# end); `jlc test examples/fashion_mnist_mlp.jl --ckpt best` re-runs it.
# Measured on all 60,000 images (`--set data.val_split=0`, as the peers
# train), 5 epochs, seeds 0-2: test_acc 0.879, 0.877, 0.882 (JAX 0.878,
# 0.878, 0.868; PyTorch 0.876, 0.878, 0.868), 1.17 s per epoch against
# JAX's 1.34 s on the 2-vCPU dev VM: benches/fashion_train_compare.sh w1.
use nn.{Linear, relu}
use losses.cross_entropy
use metrics.accuracy
use optim.adam

model Mlp(hidden: int = 256) {
    l1: Linear(784, hidden)
    l2: Linear(hidden, hidden)
    head: Linear(hidden, 10)

    fn forward(self, x: f32[B, 784]) -> f32[B, 10] {
        self.head(relu(self.l2(relu(self.l1(x)))))
    }

    fn training_step(self, x: f32[B, 784], y: i32[B]) -> f32 {
        let logits = self.forward(x)
        log("train_acc", accuracy(logits, y), prog_bar = true)
        cross_entropy(logits, y)
    }

    fn validation_step(self, x: f32[B, 784], y: i32[B]) {
        let logits = self.forward(x)
        log("val_loss", cross_entropy(logits, y))
        log("val_acc", accuracy(logits, y), prog_bar = true)
    }

    fn test_step(self, x: f32[B, 784], y: i32[B]) {
        log("test_acc", accuracy(self.forward(x), y))
    }

    fn configure_optimizers(self) = adam(lr = 1e-3)
}

# Pixels are bytes 0..255 until a batch is formed; scale maps them to [0, 1].
data = idx("/usr/share/datasets/fashion-mnist", scale = 1.0 / 255.0) {
    batch_size = 128
    val_split = 5000
    shuffle = true
}

trainer {
    max_epochs = 5
    seed = 0
    log_every_n_steps = 50
    # Keep the epoch checkpoint with the best validation accuracy (and `last`).
    checkpoint_monitor = "val_acc"
    checkpoint_mode = "max"
}
