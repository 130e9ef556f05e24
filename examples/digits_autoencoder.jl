# An autoencoder on the shipped 8x8 digits: it trains without targets. The
# encoder compresses the 64 pixels to `code` numbers, the decoder rebuilds
# the image from them; the loss is the reconstruction's mean squared error.
# The file's labels are loaded but unused: the steps take only `x`.
use nn.{Linear, relu, sigmoid}
use losses.mse
use optim.adam

model AutoEncoder(code: int = 8) {
    enc1: Linear(64, 32)
    enc2: Linear(32, code)
    dec1: Linear(code, 32)
    dec2: Linear(32, 64)

    fn encode(self, x: f32[B, 64]) -> f32[B, code] = self.enc2(relu(self.enc1(x)))

    fn decode(self, z: f32[B, code]) -> f32[B, 64] = sigmoid(self.dec2(relu(self.dec1(z))))

    fn training_step(self, x: f32[B, 64]) -> f32 = mse(self.decode(self.encode(x)), x)

    fn validation_step(self, x: f32[B, 64]) {
        log("val_mse", mse(self.decode(self.encode(x)), x), prog_bar = true)
    }

    fn configure_optimizers(self) = adam(lr = 3e-3)

    # The first 16 training digits (top row) and their reconstructions.
    fn on_train_end(self, x: f32[N, 64]) {
        let shown = x[0:16]
        let rebuilt = self.decode(self.encode(shown))
        save_image("reconstructions.png", reshape(concat((shown, rebuilt)), (32, 8, 8)), nrow = 16)
    }
}

data = csv("data/digits.csv.gz", scale = 1.0 / 16.0) {
    batch_size = 64
    val_split = 297
}

trainer {
    max_epochs = 40
}
