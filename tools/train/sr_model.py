"""Seed 001 super-resolution model (claims 2-4): feature extraction -> feature mapping with MORE
channels -> reconstruction, x2, with a depth-to-space (PixelShuffle) upsampler.

Shape of one forward pass on a capture ``x`` (N, 1, H, W) in [0, 1]:

* ``feature_extraction``: conv 5x5, 1 -> C1 channels, + bias, ReLU  (F1 = max(0, W1*Y + B1))
* ``feature_mapping``: conv 3x3, C1 -> C2 (C2 > C1, claim 2), ReLU, then further 3x3 C2 -> C2
  convs with ReLU  (F2 = max(0, W2*F1 + B2))
* ``reconstruction``: linear conv 3x3, C2 -> s*s sub-pixel channels (F = W3*F2 + B3), plus a
  5x5 sub-pixel conv of the capture initialised to bicubic x2 (engineering choice: the network
  learns the residual over bicubic), clip to [0, 1], depth-to-space -> (N, 1, sH, sW).

The depth-to-space upsampler instead of a transposed convolution is an engineering choice: in
onnxruntime's int8 QDQ graphs DepthToSpace runs in int8 while ConvTranspose stays float
(../shared/FINDINGS.md).  Training: the first loss of claim 4 is the mean squared pixel
difference to the HR sample (L1 optional); Adam; training stops when the iteration count
reaches ``max_iters`` (first threshold) or the loss falls to ``loss_threshold`` (second).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn

SCALE = 2


def _cubic(t: float, a: float = -0.75) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    if t < 2:
        return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return 0.0


def bicubic_subpixel_kernel() -> np.ndarray:
    """(4, 1, 5, 5) conv weights whose depth-to-space(2) output is bicubic x2 upsampling
    (half-pixel centres, a = -0.75, as OpenCV's INTER_CUBIC) away from the border."""
    k0 = [_cubic(1.75), _cubic(0.75), _cubic(0.25), _cubic(1.25), 0.0]   # output phase 0
    k1 = k0[::-1]                                                          # output phase 1
    ks = [np.array(k0), np.array(k1)]
    w = np.zeros((4, 1, 5, 5), np.float32)
    for dy in range(2):
        for dx in range(2):
            w[dy * 2 + dx, 0] = np.outer(ks[dy], ks[dx])
    return w


class Reconstruction(nn.Module):
    """Linear conv of the mapped features to s*s sub-pixel channels, plus a sub-pixel conv of
    the capture initialised to bicubic x2 (so the network learns the residual over bicubic),
    then depth-to-space.  ``clip`` clamps to [0, 1] before depth-to-space (same result, and
    onnxruntime folds the clip into the int8 Add's output range)."""

    def __init__(self, c2: int, scale: int = SCALE, k: int = 3):
        super().__init__()
        if scale != 2:
            raise ValueError("the bicubic base is written for x2")
        self.conv = nn.Conv2d(c2, scale * scale, k, padding=k // 2)
        nn.init.zeros_(self.conv.bias)
        nn.init.normal_(self.conv.weight, std=1e-3)
        self.base = nn.Conv2d(1, scale * scale, 5, padding=2, padding_mode="replicate")
        self.base.weight.data.copy_(torch.from_numpy(bicubic_subpixel_kernel()))
        nn.init.zeros_(self.base.bias)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, f2: torch.Tensor, x: torch.Tensor, clip: bool = False) -> torch.Tensor:
        y = self.conv(f2) + self.base(x)
        if clip:
            y = torch.clamp(y, 0.0, 1.0)
        return self.shuffle(y)


class SRNet(nn.Module):
    """``SRNet(c1, c2, mapping_layers)``; ``forward(x)`` returns the unclipped x2 image."""

    def __init__(self, c1: int = 16, c2: int = 32, mapping_layers: int = 2, scale: int = SCALE):
        super().__init__()
        if c2 <= c1:
            raise ValueError("claim 2: the mapping stage must have more channels than the "
                             "feature-extraction stage")
        self.c1, self.c2, self.scale = c1, c2, scale
        self.feature_extraction = nn.Sequential(nn.Conv2d(1, c1, 5, padding=2), nn.ReLU())
        layers: list[nn.Module] = [nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU()]
        for _ in range(mapping_layers - 1):
            layers += [nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU()]
        self.feature_mapping = nn.Sequential(*layers)
        self.reconstruction = Reconstruction(c2, scale)

    def stages(self, x: torch.Tensor, clip: bool = False):
        f1 = self.feature_extraction(x)
        f2 = self.feature_mapping(f1)
        return f1, f2, self.reconstruction(f2, x, clip)

    def forward(self, x: torch.Tensor, clip: bool = False) -> torch.Tensor:
        return self.stages(x, clip)[2]


class ClippedSR(nn.Module):
    """What is exported: the SR output clipped to the image range [0, 1]."""

    def __init__(self, net: SRNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x, clip=True)


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    if k & 4:
        a = a[..., ::-1]
    return np.rot90(a, k & 3, axes=(-2, -1))


def sample_patches(lr: np.ndarray, hr: np.ndarray, n: int, patch: int, rng, scale: int = SCALE):
    """``n`` random aligned (LR patch, HR patch) pairs with a random dihedral transform each;
    ``lr`` (N, h, w) and ``hr`` (N, sh, sw) uint8 -> float32 tensors (n, 1, p, p), (n, 1, sp,
    sp)."""
    idx = rng.integers(0, len(lr), n)
    xs = np.empty((n, 1, patch, patch), np.float32)
    ys = np.empty((n, 1, patch * scale, patch * scale), np.float32)
    for j, i in enumerate(idx):
        h, w = lr[i].shape
        r, c = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
        k = int(rng.integers(0, 8))
        xs[j, 0] = _dihedral(lr[i, r:r + patch, c:c + patch], k)
        ys[j, 0] = _dihedral(hr[i, r * scale:(r + patch) * scale,
                                c * scale:(c + patch) * scale], k)
    return torch.from_numpy(xs / 255.0), torch.from_numpy(ys / 255.0)


def train_sr(lr: np.ndarray, hr: np.ndarray, *, max_iters: int, seed: int = 0,
             batch: int = 16, patch: int = 48, lr_rate: float = 1e-3, loss: str = "mse",
             loss_threshold: float = 0.0, c1: int = 16, c2: int = 32, mapping_layers: int = 2,
             weights: np.ndarray | None = None, log_every: int = 100, log=print):
    """Train an :class:`SRNet` on uint8 pairs; returns (model, history).  ``weights`` (N,) are
    sampling probabilities of the pairs (e.g. to balance synthetic and real pairs)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SRNet(c1, c2, mapping_layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr_rate)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr_rate, total_steps=max_iters,
                                                pct_start=0.1)
    crit = nn.MSELoss() if loss == "mse" else nn.L1Loss()
    history, t0, run = [], time.time(), 0.0
    for it in range(1, max_iters + 1):
        if weights is not None:
            pick = rng.choice(len(lr), batch, p=weights)
            x, y = sample_patches(lr[pick], hr[pick], batch, patch, rng)
        else:
            x, y = sample_patches(lr, hr, batch, patch, rng)
        out = model(x)
        value = crit(out, y)
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
        run = value.item() if it == 1 else 0.95 * run + 0.05 * value.item()
        if it % log_every == 0 or it == max_iters:
            history.append({"iter": it, "first_loss": round(run, 7),
                            "psnr_train_db": round(-10 * math.log10(max(run, 1e-12)), 2)
                            if loss == "mse" else None, "s": round(time.time() - t0, 1)})
            log(f"  sr iter {it}/{max_iters} {loss} {run:.6f} ({time.time() - t0:.0f} s)")
        if value.item() <= loss_threshold:       # second stopping threshold of §3.5
            history.append({"iter": it, "first_loss": value.item(), "stopped": "loss_threshold"})
            break
    model.eval()
    return model, history


def export_sr_onnx(model: SRNet, path) -> None:
    model.eval()
    x = torch.zeros(1, 1, 128, 128)
    torch.onnx.export(ClippedSR(model), x, str(path), input_names=["capture"],
                      output_names=["sr"],
                      dynamic_axes={"capture": {0: "batch", 2: "h", 3: "w"},
                                    "sr": {0: "batch", 2: "sh", 3: "sw"}},
                      opset_version=17, dynamo=False)
