"""Fits the polynomial of the CPU backend's f32 exp (compiler/src/codegen/cpu/vmath.rs,
`exp_reduced_f32`): e^r ~ 1 + r + c2 r^2 + ... + c6 r^6 on |r| <= ln2/2, minimizing
the maximum relative error (iteratively reweighted least squares, Lawson's weights,
in extended precision). Prints the error bound and the coefficients.

    python3 benches/tools/fit_exp.py      # needs numpy
"""
import numpy as np

L = np.longdouble
half_ln2 = float(np.log(2) / 2) * 1.0001
r = np.linspace(-half_ln2, half_ln2, 40001).astype(L)
f = np.exp(r)
for degree in [5, 6]:
    V = np.stack([r**k for k in range(2, degree + 1)], 1)
    weights = np.ones_like(r)
    best = None
    for _ in range(80):
        scale = weights / f
        A = (V * scale[:, None]).astype(np.float64)
        b = ((f - 1 - r) * scale).astype(np.float64)
        c, *_ = np.linalg.lstsq(A, b, rcond=None)
        c = c.astype(L)
        err = (1 + r + V @ c - f) / f
        worst = np.max(np.abs(err))
        if best is None or worst < best[0]:
            best = (worst, c.copy())
        weights = weights * np.sqrt(np.abs(err))
        weights /= weights.max()
    print(f"degree {degree}: max relative error {float(best[0]):.3e} "
          f"({float(best[0]) / 2**-24:.3f} half-ulps of 1)")
    print("  c2.. =", [repr(float(v)) for v in best[1]])
