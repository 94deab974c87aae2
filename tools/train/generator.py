"""The palm print generation model of seed 004 (spec §3.12, FIG. 15/16) in PyTorch.

- Encoder f_encoder: 3 conv layers on a real palm image -> 64 feature channels, pooled over
  space to the 64-d "image feature representation" (the condition; spec ambiguity 14 leaves
  open whether 64 is a flat vector or a map: a flat vector carries the real palm's skin and
  light, not its lines, so the identity stays with the candidate).
- Generator f_decoder: 3 downsampling convs on the candidate image -> 64 x H/8 x W/8; fused =
  element-wise product with the condition (broadcast over space, claim 4's "constraint
  adjustment"); 3 transposed convs back to the image size.
- Losses: L1 to the gathered image + identity loss 1 - cos(f(gathered), f(generated)) with the
  frozen palm identity extractor pre-trained on real palms (claims 5-6).

Training pairs (spec §4 item 11): the candidate is the crease map of the gathered real image
(device/synth/creases.py, drawn in the candidate renderer's convention) and the condition is
another image of the same palm, so the L1 target is well defined.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

FEATURES = 64


def _down(cin, cout, act=True):
    layers = [nn.Conv2d(cin, cout, 4, 2, 1)]
    if act:
        layers += [nn.GroupNorm(8, cout), nn.LeakyReLU(0.2)]
    return layers


class StyleEncoder(nn.Module):
    """f_encoder: (B,1,H,W) real palm in [0,1] -> (B,64) condition."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(*_down(1, 32), *_down(32, 64), *_down(64, FEATURES, act=False))

    def forward(self, x):
        return self.convs(x * 2 - 1).mean(dim=(2, 3))


class PalmGenerator(nn.Module):
    """f_decoder: candidate (B,1,H,W) in [0,1] (1 = crease) and condition (B,64) -> palm image."""

    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(*_down(1, 32), *_down(32, 64), *_down(64, FEATURES, act=False))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(FEATURES, 64, 4, 2, 1), nn.GroupNorm(8, 64), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.GroupNorm(8, 32), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid())

    def forward(self, candidate, condition):
        fused = self.down(candidate * 2 - 1) * condition[:, :, None, None]
        return self.up(fused)


class GenerationModel(nn.Module):
    """Encoder + generator, as trained (Mode B: candidate image plus a real image)."""

    def __init__(self):
        super().__init__()
        self.encoder = StyleEncoder()
        self.generator = PalmGenerator()

    def forward(self, candidate, real):
        return self.generator(candidate, self.encoder(real))


def l1_loss(sample, gathered):
    """Spec check 23: mean |sample - gathered|."""
    return (sample - gathered).abs().mean()


def identity_loss(feat_gathered, feat_generated):
    """Spec check 24: 1 - cos(f(gt), f(gen)), in [0, 2], per-batch mean."""
    return (1 - F.cosine_similarity(feat_gathered, feat_generated, dim=1)).mean()
