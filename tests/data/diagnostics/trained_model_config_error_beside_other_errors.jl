# Independent mistakes are all reported: a typo in a method, a misspelled
# data setting, and the trainer's `model = ...` with a config parameter the
# model does not have (it was hidden while anything else was wrong).
use nn.{Linear, relu}
use losses.cross_entropy
use optim.adam

model Net(n_layers: int = 2) {
    blocks: [Linear(4, 4); n_layers]
    head: Linear(4, 2)

    fn forward(self, x: f32[B, 4]) -> f32[B, 2] {
        let h = x
        for i in 0..n_layers {
            h = relu(self.blokcs[i](h))
        }
        self.head(h)
    }

    fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 = cross_entropy(self.forward(x), y)

    fn configure_optimizers(self) = adam(lr = 1e-2)
}

data = npz("train.npz") { batch_sze = 8 }
trainer { max_epochs = 1; model = Net(n_layer = 3) }
