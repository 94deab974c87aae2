"""Real Gabor filter bank in the Competitive Code form (Lee/Kong), shared by training and
evaluation code. Pure numpy."""
from __future__ import annotations

import numpy as np


def gabor_bank(n_orient: int = 6, sigma: float = 5.5, size: int = 45,
               octaves: float = 1.5) -> np.ndarray:
    """``n_orient`` zero-mean real Gabor kernels, shape (n_orient, size, size), float32.

    kappa = sqrt(2 ln 2) (2^b + 1)/(2^b - 1) for a bandwidth of ``octaves``; omega = kappa/sigma.
    """
    kappa = np.sqrt(2 * np.log(2)) * (2 ** octaves + 1) / (2 ** octaves - 1)
    omega = kappa / sigma
    r = (size - 1) / 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    out = []
    for k in range(n_orient):
        th = np.pi * k / n_orient
        xr = x * np.cos(th) + y * np.sin(th)
        yr = -x * np.sin(th) + y * np.cos(th)
        env = omega / (np.sqrt(2 * np.pi) * kappa) * np.exp(-(omega ** 2) / (8 * kappa ** 2)
                                                          * (4 * xr ** 2 + yr ** 2))
        g = env * (np.cos(omega * xr) - np.exp(-kappa ** 2 / 2))
        g -= g.mean()
        g /= np.abs(g).sum()
        out.append(g)
    return np.stack(out).astype(np.float32)
