# Pictures from `on_train_end`: file names inside the run directory, and
# tensors of the shapes each writer draws.
use nn.Linear
use losses.mse
use optim.adam

model Curve {
    l: Linear(1, 1)

    fn training_step(self, x: f32[B, 1], y: f32[B, 1]) -> f32 = mse(self.l(x), y)

    fn configure_optimizers(self) = adam(lr = 1e-2)

    fn on_train_end(self) {
        let grid = linspace(-2.0, 2.0, 50)
        let fit = self.l(reshape(grid, (50, 1)))[:, 0]
        save_image("../fit.png", reshape(fit, (5, 10)))
        save_image("fit.png", reshape(fit, (1, 2, 5, 5)))
        save_image("labels.png", arange(4))
        save_plot("fit.png", reshape(grid, (5, 10)), fit)
        save_plot("band.png", grid, fit, lower = fit[0:10])
    }
}

data = npz("curve.npz") {
    batch_size = 8
}

trainer {
    max_epochs = 1
}
