"""Learned dense palm cells (../shared/FINDINGS.md recipe, scaled for a small CPU).

A fully convolutional net reads the ROI plus its six soft Gabor orientation maps (7x128x128,
device.recognition.learned.net_input) and gives a dense 32x32x16 map; 4x4 average pooling at
each of the 25 window offsets (±2 map px = ±8 image px) gives 7x7 cells of 16 dims, L2 per
cell. Training: batches of palms x 2 images (one per session), augmentation (rotation, scale,
shift, contrast), a symmetric softmax loss with a margin over the shift-max score matrix
(template cells of one image against the 25 shifted windows of the other). torch >= 2.11.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from device.recognition.cells import GRID, MAX_SHIFT
from tools.train.augment import random_affine

MAP = 32
CELL = 4


def window_index(grid: int = GRID, cell: int = CELL, max_shift: int = MAX_SHIFT,
                 pooled: int = MAP - CELL + 1) -> torch.Tensor:
    """Flat indices into the (pooled x pooled) stride-1 pooled map of the cell centres of the
    25 shifted windows, row-major shifts (dy, dx), row-major cells: (25 * 49,)."""
    idx = []
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            for gy in range(grid):
                for gx in range(grid):
                    y = max_shift + dy + cell * gy
                    x = max_shift + dx + cell * gx
                    idx.append(y * pooled + x)
    return torch.tensor(idx, dtype=torch.long)


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.PReLU(cout))


class CellNet(nn.Module):
    """(B, 7, 64, 64) -> (B, 25, 49, 16) unit cells of every shifted window."""

    def __init__(self, w1: int = 24, w2: int = 48, dim: int = 16, cin: int = 7):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, w1), conv_bn(w1, w2, 2), conv_bn(w2, w2),
                                  conv_bn(w2, w2), conv_bn(w2, w2), nn.Conv2d(w2, dim, 1))
        self.register_buffer("idx", window_index(), persistent=False)
        self.dim = dim

    def dense(self, x):
        return self.body(x)                                    # (B, 16, 32, 32)

    def forward(self, x):
        m = F.avg_pool2d(self.dense(x), CELL, 1)               # (B, 16, 29, 29)
        b = m.shape[0]
        c = m.flatten(2).index_select(2, self.idx)             # (B, 16, 25*49)
        c = c.reshape(b, self.dim, -1, GRID * GRID).permute(0, 2, 3, 1)
        return c / torch.sqrt((c * c).sum(-1, keepdim=True) + 1e-12)


def shift_max(t: torch.Tensor, q: torch.Tensor, zero: int, w: torch.Tensor | None = None):
    """Scores (Bt, Bq): template cells t[:, zero] of each row against every shifted window
    of q, max over shifts of the (weighted) mean cell cosine."""
    g = t.shape[2]
    tt = t[:, zero]                                            # (Bt, G, D)
    if w is None:
        w = torch.full((g,), 1.0 / g, dtype=t.dtype)
    tt = (tt * w[None, :, None]).flatten(1)                    # (Bt, G*D)
    qq = q.flatten(2)                                          # (Bq, S, G*D)
    s = torch.einsum("td,qsd->tqs", tt, qq)
    return s.max(-1).values


def pair_loss(a: torch.Tensor, b: torch.Tensor, zero: int, scale: float, margin: float,
              w: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric softmax over the shift-max score matrix, margin on the diagonal: both
    directions (a enrolled / b probes and b enrolled / a probes)."""
    n = a.shape[0]
    eye = torch.eye(n, dtype=a.dtype)
    target = torch.arange(n)
    loss = 0
    for s in (shift_max(a, b, zero, w), shift_max(b, a, zero, w)):
        logits = scale * (s - margin * eye)
        loss = loss + F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)
    return loss / 4


def augment(x, gen, contrast=0.25):
    x = random_affine(x, gen)
    c = 1 + (torch.rand(x.shape[0], 1, 1, generator=gen) * 2 - 1) * contrast
    x[:, 0] = x[:, 0] * c
    return x


def inputs_u8(images: np.ndarray, bank, beta, log=None) -> np.ndarray:
    """Network inputs of many ROIs stored compactly: (N, 7, 64, 64) int8 (x 1/32 for the
    standardised ROI, x 1/127 for the orientation maps)."""
    from device.recognition.learned import net_input
    out = np.empty((len(images), 7, images.shape[1] // 2, images.shape[2] // 2), np.int8)
    for k, im in enumerate(images):
        x = net_input(im, bank, beta)
        out[k, 0] = np.clip(np.round(x[0] * 32), -127, 127)
        out[k, 1:] = np.clip(np.round(x[1:] * 127), -127, 127)
        if log and (k + 1) % 2000 == 0:
            log(f"inputs {k + 1}/{len(images)}")
    return out


def decode(u8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(u8).float()
    x[:, 0] /= 32
    x[:, 1:] /= 127
    return x


def sample_pairs(labels, sessions, rng, n_palms):
    """Indices (a, b) of n_palms distinct palms, a from one session and b from the other."""
    subj = rng.choice(np.unique(labels), n_palms, replace=False)
    a, b = [], []
    for s in subj:
        i1 = np.flatnonzero((labels == s) & (sessions == 1))
        i2 = np.flatnonzero((labels == s) & (sessions == 2))
        if len(i1) == 0 or len(i2) == 0:
            i1 = i2 = np.flatnonzero(labels == s)
        x, y = rng.choice(i1), rng.choice(i2)
        if rng.random() < 0.5:
            x, y = y, x
        a.append(x)
        b.append(y)
    return np.array(a), np.array(b)


def train_cells(x_u8: np.ndarray, labels, sessions, *, steps=800, palms=48, lr=2e-3,
                w1=24, w2=48, scale=32.0, margin=0.2, seed=0, init=None, time_budget_s=None,
                stop_at=None, log=print) -> CellNet:
    """Train a CellNet; ``init``: a state dict to start from (pre-training); ``stop_at``:
    leave the ``steps``-long schedule after this many steps (to match a run that was cut by
    its time budget)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = CellNet(w1, w2)
    if init is not None:
        net.load_state_dict(init)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    zero = (2 * MAX_SHIFT + 1) ** 2 // 2
    palms = min(palms, len(np.unique(labels)))
    t0 = time.time()
    net.train()
    for step in range(steps):
        a, b = sample_pairs(labels, sessions, rng, palms)
        x = augment(decode(x_u8[np.concatenate([a, b])]), gen)
        c = net(x)
        loss = pair_loss(c[:palms], c[palms:], zero, scale, margin)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            log(f"cells step {step}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s")
        if time_budget_s and time.time() - t0 > time_budget_s:
            log(f"cells: time budget reached at step {step}")
            break
        if stop_at is not None and step + 1 >= stop_at:
            log(f"cells: stopped at step {step + 1} (stop_at)")
            break
    net.eval()
    return net


@torch.no_grad()
def embed(net: CellNet, x_u8: np.ndarray, batch: int = 64) -> np.ndarray:
    net.eval()
    return np.concatenate([net(decode(x_u8[k:k + batch])).numpy()
                           for k in range(0, len(x_u8), batch)])


def cross_session_eer(cells: np.ndarray, labels, sessions, importance=None) -> dict:
    """One-view cross-session EER and TAR@1e-4 (session-1 templates, session-2 queries,
    symmetrised as palmgate evaluate does)."""
    from device.eval.metrics import eer, tar_at_far
    from device.recognition.cells import shift_max_scores
    zero = cells.shape[1] // 2
    s = shift_max_scores(cells, cells[:, zero], importance).T    # (templates, queries)
    s = (s + s.T) / 2
    i = np.flatnonzero(sessions == 1)
    j = np.flatnonzero(sessions == 2)
    sc = s[np.ix_(i, j)]
    gen = labels[i][:, None] == labels[j][None, :]
    return {"eer": float(eer(sc[gen], sc[~gen])),
            "tar_1e-4": float(tar_at_far(sc[gen], sc[~gen], 1e-4))}
