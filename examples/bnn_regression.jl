# bnn_regression.jl: the seed project's Bayesian neural network
# (JaxLightning's BNN/JaxLightning_BNN.py): 1-D regression with uncertainty.
# Every weight has a mean-field Gaussian posterior q = N(mu, softplus(rho)^2)
# (Blundell et al. 2015, "Weight Uncertainty in Neural Networks"); each step
# draws 5 networks from q with `vmap` over 5 random keys and minimizes the
# negative ELBO per example: the Gaussian negative log-likelihood of the
# batch, averaged over the samples, plus kl_weight * KL(q || N(0, 1)) / N.
# kl_weight = 1 is the exact ELBO; with about 8,000 weights and 200 points
# its KL term dominates and the network underfits (noise std near 1), so,
# as the seed (which scales its likelihood by the dataset size), the KL is
# down-weighted: a tempered posterior.
# Data: examples/data/bnn_regression.npz (200 points, made by
# examples/data/make_bnn_regression.py, as the seed's RegressionDataModule).
# Run: jlc run examples/bnn_regression.jl
# Expected: nll_epoch about -0.9, noise_std about 0.25 and coverage_2sd
# about 0.95 after 4,000 steps (30 s here); writes predictive.png into the run directory: the
# predictive mean, a band of +-2 standard deviations, 30 sampled networks
# and the data, over x in [-4, 4] (the data span about [-1.7, 1.7]), as
# docs/images/bnn_regression_predictive.png.
use nn.{gelu, softplus}
use optim.adam

# A linear layer with Gaussian weights: w = mu + softplus(rho) * eps,
# eps ~ N(0, 1) drawn from `key` at every call (the reparameterization trick).
model BayesLinear(fan_in: int, fan_out: int) {
    w_mu: f32[fan_in, fan_out] = normal(1.0 / sqrt(fan_in + fan_out))
    w_rho: f32[fan_in, fan_out] = full(-3.0)
    b_mu: f32[fan_out] = normal(0.1)
    b_rho: f32[fan_out] = full(-3.0)

    fn __call__(self, x, key) {
        let (kw, kb) = split(key)
        let w = self.w_mu + softplus(self.w_rho) * normal(kw, (fan_in, fan_out))
        let b = self.b_mu + softplus(self.b_rho) * normal(kb, fan_out)
        x @ w + b
    }

    fn kl(self) = kl_std_normal(self.w_mu, softplus(self.w_rho)) + kl_std_normal(self.b_mu, softplus(self.b_rho))
}

# KL(N(mu, s^2) || N(0, 1)), summed over the elements.
fn kl_std_normal(mu, s) = sum(0.5 * (s * s + mu * mu) - log(s) - 0.5)

model Bnn(hidden: int = 51, samples: int = 5, n_train: int = 200, kl_weight: float = 0.01) {
    l1: BayesLinear(1, hidden)
    l2: BayesLinear(hidden, hidden)
    l3: BayesLinear(hidden, hidden)
    l4: BayesLinear(hidden, hidden)
    out: BayesLinear(hidden, 1)
    # The observation noise's log standard deviation, learned.
    log_noise: f32[1] = full(-1.0)

    # One network drawn from q, applied to x: [B, 1].
    fn sample(self, x, key) {
        let (k1, k2, k3, k4, k5) = split(key, 5)
        let h = gelu(self.l1(x, k1))
        let h = gelu(self.l2(h, k2))
        let h = gelu(self.l3(h, k3))
        let h = gelu(self.l4(h, k4))
        self.out(h, k5)
    }

    # n networks drawn from q: [n, B, 1].
    fn predict(self, x, key, n: int) = vmap(fn(k) = self.sample(x, k))(stack(split(key, n)))

    fn kl(self) = self.l1.kl() + self.l2.kl() + self.l3.kl() + self.l4.kl() + self.out.kl()

    fn training_step(self, x: f32[B, 1], y: f32[B, 1], key) -> f32 {
        let preds = self.predict(x, key, samples)
        let z = (preds - y) * exp(-self.log_noise)
        let nll = mean(0.5 * z * z) + mean(self.log_noise)
        let kl = kl_weight * self.kl() / float(n_train)
        log("nll", nll, prog_bar = true)
        log("kl", kl)
        log("noise_std", mean(exp(self.log_noise)))
        nll + kl
    }

    fn configure_optimizers(self) = adam(lr = 1e-3)

    # After training: how often the data fall inside the predictive mean
    # +- 2 standard deviations (noise included), and the picture.
    fn on_train_end(self, x, y, key) {
        let (k1, k2) = split(key)
        let noise_var = exp(2.0 * self.log_noise)
        let p = self.predict(x, k1, 200)
        let m = mean(p, axis = 0)
        let sd = sqrt(mean((p - m) ^ 2, axis = 0) + noise_var)
        log("coverage_2sd", mean(float(abs(y - m) <= 2.0 * sd)))
        let grid = reshape(linspace(-4.0, 4.0, 200), (200, 1))
        let q = self.predict(grid, k2, 200)[:, :, 0]
        let qm = mean(q, axis = 0)
        let qsd = sqrt(mean((q - qm) ^ 2, axis = 0) + noise_var)
        let (lo, hi) = (qm - 2.0 * qsd, qm + 2.0 * qsd)
        let title = "BNN predictive mean +- 2 sd, 30 sampled networks, data"
        save_plot("predictive.png", grid[:, 0], qm, lower = lo, upper = hi, samples = q[0:30], scatter_x = x[:, 0], scatter_y = y[:, 0], title = title)
    }
}

data = npz("data/bnn_regression.npz") {
    batch_size = 16
}

trainer {
    max_steps = 4000
    max_epochs = 1000
    seed = 1
    log_every_n_steps = 50
}
