"""Training the seed-000 fusion on degraded multi-view captures (cells precomputed by
tools/train/recognition_fusion_data.py; the cell network is fixed).

Each step takes ``palms`` palms; per palm one capture from each session (``views`` consecutive
samples), each capture with 0, 1 or 2 of its views degraded (a random kind per degraded view).
The predicted palm feature of one capture is scored against the "label palm feature" of the
same palm (its other session's fused capture) and of the other palms in the batch: the
prediction difference is the symmetric softmax-with-margin loss over the shift-max score matrix
(recognition_cells.pair_loss, as the cell network was trained). Claims 4-6: gradient descent
updates W_K through S_K and C, W_Q through S_Q and C, W_V through A; the loop stops when the
difference falls to ``stop_loss`` or after ``steps`` (the preset iteration condition).

Pre-training (seed 004) runs the same loop on synthetic identities (device.synth palms, the
palm generator; samples of a session differ in pose and light, as views from several cameras);
fine-tuning continues from its weights on the real training palms.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from tools.train.recognition_data import log as default_log
from tools.train.recognition_fusion import Fusion
from tools.train.recognition_fusion_data import dequant, view_versions

# training reads 9 of the 25 window shifts (dy, dx in {-2, 0, 2} map px; the fusion works on
# each shift alone, so this only coarsens the shift-max of the loss) -- 2.8x cheaper per step
TRAIN_SHIFTS = np.array([0, 2, 4, 10, 12, 14, 20, 22, 24])


@dataclass
class CellSet:
    """Precomputed cells (N, versions, 25, 49, 16) int8 of one data set and its palms."""

    cells: np.ndarray
    labels: np.ndarray
    sessions: np.ndarray
    reps: int

    def order(self, palms=None) -> dict:
        """{(palm, session): sample indices in order} for the given palms (default all with
        both sessions)."""
        out = {}
        for s in (np.unique(self.labels) if palms is None else palms):
            idx = [np.flatnonzero((self.labels == s) & (self.sessions == k)) for k in (1, 2)]
            if len(idx[0]) and len(idx[1]):
                out[(s, 1)], out[(s, 2)] = idx
        return out

    def batch(self, idx: np.ndarray, ver: np.ndarray) -> torch.Tensor:
        """Float unit cells (n, V, 25, 49, 16) of samples ``idx`` in versions ``ver``."""
        x = self.cells[idx.ravel(), ver.ravel()]
        return torch.from_numpy(dequant(x).reshape(*idx.shape, *x.shape[1:]))


def sample_captures(order: dict, palms: np.ndarray, rng, n: int, views: int):
    """(a, b) index arrays (n, views): for n distinct palms one capture of ``views``
    consecutive samples per session (which session is 'a' at random)."""
    subj = rng.choice(palms, n, replace=False)
    a, b = [], []
    for s in subj:
        sets = []
        for sess in (1, 2):
            idx = order[(s, sess)]
            v = min(views, len(idx))
            st = rng.integers(0, len(idx) - v + 1)
            sets.append(np.resize(idx[st:st + v], views))
        if rng.random() < 0.5:
            sets = sets[::-1]
        a.append(sets[0])
        b.append(sets[1])
    return np.array(a), np.array(b)


def train_fusion(data: CellSet, palms: np.ndarray, *, mode: str = "three", steps: int = 600,
                 batch_palms: int = 48, lr: float = 2e-3, scale: float = 32.0,
                 margin: float = 0.2, seed: int = 0, init: dict | None = None,
                 views=(2, 3, 3, 3), bad=(0, 1, 2, 2), stop_loss: float = 0.0,
                 train_importance: bool = True, shifts=TRAIN_SHIFTS,
                 classical: CellSet | None = None, learned_weight: float = 0.3,
                 log=default_log) -> Fusion:
    """Train (or fine-tune from ``init``) a Fusion on captures of ``palms`` of ``data``;
    ``views`` / ``bad``: what each capture's view count / degraded-view count is drawn from.
    ``classical``: the classical cells of the same samples and versions -- the loss is then on
    the gate's hybrid feature: the classical half fused with the fusion's view weights beside
    the fused learned half, importance (1 - learned_weight) x the classical cells' beside
    learned_weight x the fusion's (device.recognition.hybrid)."""
    from tools.train.recognition_cells import pair_loss
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = Fusion(mode=mode)
    if init is not None:
        net.load_state_dict(init)
    net.imp_logit.requires_grad_(train_importance)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    order = data.order(palms)
    palms = np.array(sorted({s for s, _ in order}))
    n = min(batch_palms, len(palms))
    full_zero = data.cells.shape[2] // 2
    shifts = np.arange(data.cells.shape[2]) if shifts is None else np.asarray(shifts)
    zero = int(np.flatnonzero(shifts == full_zero)[0])
    sel = torch.as_tensor(shifts)
    imp_c = None
    if classical is not None:
        from device.recognition.cells import CellExtractor
        ic = torch.as_tensor(CellExtractor().importance, dtype=torch.float32)
        imp_c = (1 - learned_weight) * ic / ic.sum()

    def feature(idx, ver):
        f, w, a = net.fuse(data.batch(idx, ver).index_select(2, sel))
        if classical is None:
            return f, w
        c = (a[..., None] * classical.batch(idx, ver).index_select(2, sel)).sum(1)
        c = c / torch.sqrt((c * c).sum(-1, keepdim=True) + 1e-12)
        return torch.cat([c, f], 2), torch.cat([imp_c, learned_weight * w])

    t0 = time.time()
    net.train()
    for step in range(steps):
        v = int(rng.choice(views))
        a, b = sample_captures(order, palms, rng, n, v)
        va = view_versions(rng, n, v, bad, data.reps)
        vb = view_versions(rng, n, v, bad, data.reps)
        fa, w = feature(a, va)
        fb, _ = feature(b, vb)
        loss = pair_loss(fa, fb, zero, scale, margin, w)
        if loss.item() <= stop_loss:                          # the preset iteration condition
            log(f"fusion: prediction difference {loss.item():.4f} <= {stop_loss}, stop")
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"fusion[{mode}] step {step}/{steps} views {v} loss {loss.item():.3f} "
                f"gamma {net.gamma.item():.2f} alpha {net.alpha.item():.2f} "
                f"{time.time() - t0:.0f}s")
    net.eval()
    return net
