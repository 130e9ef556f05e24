"""Writes bnn_regression.npz: the seed project's 1-D regression data
(JaxLightning's BNN/JaxLightning_BNN.py, RegressionDataModule): 200 points,
x in [-0.35, 0.55] with input noise 0.01, y = x + 0.3 sin(2 pi x') +
0.3 sin(4 pi x') plus noise whose std grows linearly from 0 to 0.2, then x
and y standardized. Arrays "x" and "y", float32, shape [200, 1].
Run: python3 make_bnn_regression.py (needs numpy)."""
import numpy as np

rng = np.random.default_rng(0)
n = 200
x = np.linspace(-0.35, 0.55, n)
x_noise = rng.normal(0.0, 0.01, size=n)
y_noise = rng.normal(0.0, np.linspace(0.0, 0.2, n))
y = x + 0.3 * np.sin(2 * np.pi * (x + x_noise)) + 0.3 * np.sin(4 * np.pi * (x + x_noise)) + y_noise
x = (x - x.mean()) / x.std()
y = (y - y.mean()) / y.std()
np.savez_compressed("bnn_regression.npz", x=x.reshape(-1, 1).astype(np.float32), y=y.reshape(-1, 1).astype(np.float32))
