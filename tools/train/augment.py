"""Batch augmentation on tensors (rotation, scale, shift, contrast, brightness), torch only."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, gen: torch.Generator, rot_deg: float = 8.0,
                  scale: float = 0.06, shift: float = 0.06) -> torch.Tensor:
    """Warp every image of a (B,C,H,W) batch by its own small random similarity transform."""
    b = x.shape[0]
    u = lambda: torch.rand(b, generator=gen) * 2 - 1  # noqa: E731
    ang = u() * math.radians(rot_deg)
    s = 1 + u() * scale
    tx, ty = u() * shift * 2, u() * shift * 2
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_photometric(x: torch.Tensor, gen: torch.Generator, contrast: float = 0.25,
                       brightness: float = 0.1) -> torch.Tensor:
    """Per-image contrast and brightness jitter about the image mean, clipped to [0, 1]."""
    b = x.shape[0]
    c = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * contrast
    o = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * brightness
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - m) * c.to(x) + m + o.to(x)).clamp(0, 1)
