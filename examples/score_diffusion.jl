# score_diffusion.jl: the seed project's score-based generative model
# (JaxLightning's ScoreBasedGenerativeModelling, after equinox's example):
# an MLP-Mixer learns the score of Fashion-MNIST images noised by an
# Ornstein-Uhlenbeck (variance-preserving) diffusion with int_beta(t) = t
# on [0, t1 = 10], by denoising score matching; after training, the
# probability-flow ODE is integrated from noise at t1 back to t = 0 with a
# `scan` loop of Heun steps (beta(t) = d int_beta / dt by `jvp`, as the seed
# does), and the samples are written as a PNG grid.
# Needs the IDX files: `apt-get install dataset-fashion-mnist`.
# Run: jlc run examples/score_diffusion.jl
# Expected (measured on a shared 2-vCPU VM): loss_epoch 0.074, 0.025,
# 0.022, ..., 0.017 over the 12,000 steps (about 10 minutes); samples.png
# in the run directory: 64 garments on dark backgrounds, most of them
# recognizable shirts, coats, T-shirts, trousers, dresses, sneakers, boots
# and bags, with patchy texture; a few are shapeless patches
# (docs/images/score_diffusion_samples.png).
# Where this departs from the seed, for samples worth looking at after
# minutes rather than the seed's 1M steps (each change was compared on
# the same seed; 3,000 steps of the seed's setup give speckled blobs):
# - the network predicts the noise, and the score is -noise / std (the
#   seed's network outputs the score, whose scale grows as 1 / std near
#   t = 0); the loss is then the seed's weighted loss exactly;
# - the time enters as log(t), which tells small times apart (t / t1 puts
#   t = 0.01 and t = 0.1 0.009 apart);
# - Adam with a warm-up and a cosine decay to 0 (peak 1.5e-3, the seed
#   3e-4 constant);
# - the sampler's steps are geometric in t (dense near 0, where the
#   images form) rather than uniform.
use nn.{Linear, LayerNorm, gelu}
use optim.{adam, warmup_cosine_decay_schedule}

# The diffusion: int_beta(t) = integral of beta over [0, t].
fn int_beta(t) = t

# The noise's standard deviation at time t: sqrt(1 - exp(-int_beta(t))).
fn noise_std(t) = sqrt(max(1.0 - exp(-int_beta(t)), 1e-5))

# An MLP over the last axis: in -> hidden -> in (GELU).
model Mlp(dim: int, hidden: int) {
    up: Linear(dim, hidden)
    down: Linear(hidden, dim)

    fn __call__(self, x) = self.down(gelu(self.up(x)))
}

# One Mixer block (Tolstikhin et al. 2021) on y: [N, P, C] (P patches of C
# channels): mix across patches, then across channels, each pre-normed and
# residual.
model MixerBlock(patches: int, channels: int, mix_patches: int, mix_channels: int) {
    norm1: LayerNorm(channels)
    patch_mix: Mlp(patches, mix_patches)
    norm2: LayerNorm(channels)
    channel_mix: Mlp(channels, mix_channels)

    fn __call__(self, y) {
        let z = transpose(self.norm1(y), (0, 2, 1))
        let y = y + transpose(reshape(self.patch_mix(reshape(z, (-1, patches))), (-1, channels, patches)), (0, 2, 1))
        let z = reshape(self.norm2(y), (-1, channels))
        y + reshape(self.channel_mix(z), (-1, patches, channels))
    }
}

# The noise model for images y: [N, 784] in [-1, 1] and times t: [N, 1]:
# 4x4 patches (49 of 16 pixels) embedded with log(t) as one more input per
# patch (the seed concatenates t as a channel), mixer blocks, and a linear
# map back to the patches' pixels.
# train_steps is the learning rate's decay length: keep it trainer.max_steps.
model ScoreMixer(channels: int = 64, mix_patches: int = 128, mix_channels: int = 256, t1: float = 10.0, sample_steps: int = 100, train_steps: int = 12000) {
    embed: Linear(17, channels)
    blocks: [MixerBlock(49, channels, mix_patches, mix_channels); 2]
    norm: LayerNorm(channels)
    out: Linear(channels, 16)

    # The score s(t, y) = grad log p_t(y): the predicted noise over -std.
    fn __call__(self, t, y) = -self.noise(t, y) / noise_std(t)

    fn noise(self, t, y) {
        let patches = reshape(transpose(reshape(y, (-1, 7, 4, 7, 4)), (0, 1, 3, 2, 4)), (-1, 49, 16))
        let time = reshape(0.25 * log(max(t, 1e-3)), (-1, 1, 1)) + 0.0 * patches[:, :, 0:1]
        let h = reshape(self.embed(reshape(concat((patches, time), axis = 2), (-1, 17))), (-1, 49, channels))
        let h = self.blocks[1](self.blocks[0](h))
        let px = self.out(reshape(self.norm(h), (-1, channels)))
        reshape(transpose(reshape(px, (-1, 7, 7, 4, 4)), (0, 1, 3, 2, 4)), (-1, 784))
    }

    # Denoising score matching with times stratified over [0, t1] (one
    # per batch slot, as the seed's low-discrepancy sampling): y_t =
    # x exp(-int_beta / 2) + std * noise, the target score -noise / std,
    # weighted by std^2 = 1 - exp(-int_beta(t)) as the seed weights it:
    # std^2 |s + noise / std|^2 = |noise - predicted noise|^2.
    fn training_step(self, x: f32[B, 784], labels: i32[B], key) -> f32 {
        let (kt, kn) = split(key)
        let n = size(x, 0)
        let slot = t1 / float(n)
        let t = reshape(uniform(kt, n) * slot + slot * float(arange(n)), (-1, 1))
        let x0 = 2.0 * x - 1.0
        let noise = normal(kn, shape(x0))
        let y = x0 * exp(-0.5 * int_beta(t)) + noise_std(t) * noise
        let err = self.noise(t, y) - noise
        let loss = mean(err * err)
        log("loss", loss, prog_bar = true)
        loss
    }

    fn configure_optimizers(self) = adam(lr = warmup_cosine_decay_schedule(0.0, 1.5e-3, 100, train_steps))

    # The probability-flow ODE dy/dt = -beta(t) / 2 * (y + s(t, y)),
    # integrated backwards from N(0, I) at t1 to t_end by Heun's method in
    # steps that shrink with t (t_next = ratio * t), then one denoising step
    # (Tweedie's formula, E[x0 | y] = (y + var(t) s(t, y)) exp(int_beta(t)
    # / 2), with var(t) s = -std(t) noise) instead of the stiff last stretch
    # to 0.
    fn on_train_end(self, key) {
        let t_end = 0.01
        let ratio = exp(log(t_end / t1) / float(sample_steps))
        let drift = fn(t, y) {
            let (_, beta) = jvp(int_beta, (t,), (1.0,))
            -0.5 * beta * (y + self(t + 0.0 * y[:, 0:1], y))
        }
        let heun = fn(state) {
            let (y, t) = state
            let dt = t - ratio * t
            let d1 = drift(t, y)
            let y_euler = y - dt * d1
            let d2 = drift(t - dt, y_euler)
            ((y - 0.5 * dt * (d1 + d2), t - dt), t)
        }
        let ((y, t), _) = scan(heun, (normal(key, (64, 784)), t1), length = sample_steps)
        let x0 = (y - noise_std(t) * self.noise(t + 0.0 * y[:, 0:1], y)) * exp(0.5 * int_beta(t))
        save_image("samples.png", reshape((x0 + 1.0) / 2.0, (64, 28, 28)), nrow = 8)
    }
}

data = idx("/usr/share/datasets/fashion-mnist", scale = 1.0 / 255.0) {
    batch_size = 64
}

trainer {
    max_steps = 12000
    max_epochs = 20
    seed = 0
    log_every_n_steps = 50
}
