"""Seed-000 multi-view fusion over the learned palm cells (../shared/specs/seed-000.md).

Tokens: per view and window shift, one embedding of the first region (the "preset part", the
palm centre: the central 3x3 cells) and one of the second region (the other 40 cells):

* keys K = X_first W_K (first-region embeddings only), queries Q = X_second W_Q (second-region
  embeddings only), values V = X W_V (all), per head;
* similarities (cosine): S_K = key-key, S_Q = query-query, C = key-query; fused into one block
  score matrix M = [[l_K S_K, l_C C], [l_C C^T, l_Q S_Q]] over the 2V tokens, A = softmax_row(
  M / tau) (claim 2); ``mode="content"`` masks the S_K and S_Q blocks (the content-only
  embodiment), ``"key+content"`` / ``"query+content"`` one of them;
* Y = A V (heads concatenated, output projection), residual, then a per-token feed-forward
  stream with BatchNorm and a residual (the "parallel training" streams);
* the fused cell g = the unit weighted sum of the views' cells g, weights a softmax over the
  views of the attention weight of the view's token, a per-cell trust read out of its attended
  stream, the cell's own quality and its agreement with the other views (``Fusion``). All start
  at zero: an untrained fusion is exactly the mean of the views' cells, and one view passes
  through unchanged;
* importance: a learned softmax over the 49 cells (seed 002's sub-feature weights).

Training (claims 1, 4-6): each step takes sets of views of palms; the predicted palm feature of
a set is scored against the "label palm feature" of the same palm (its other session's fused
set) and of the other palms in the batch; the prediction difference is the symmetric
softmax-with-margin loss over the shift-max score matrix. Gradient descent updates W_K through
S_K and C, W_Q through S_Q and C, W_V through A (C); the loop stops when the difference falls to
``stop_loss`` or after ``steps`` (the preset iteration condition). Any V >= 1; V = 0 is an error.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from device.recognition.learned import CENTRE, OTHER

MODES = {"three": (1.0, 1.0, 1.0), "content": (0.0, 0.0, 1.0),
         "key+content": (1.0, 0.0, 1.0), "query+content": (0.0, 1.0, 1.0)}


class Fusion(nn.Module):
    """(B, V, S, G, 16) unit cells -> fused (B, S, G, 16) unit cells, importance (G,).

    Per view and window shift, two region embeddings: the first region (palm centre, 9 cells)
    and the second (the other 40 cells), each a linear map of its concatenated cells + BatchNorm.
    Tokens: V first-region then V second-region embeddings. Per head: keys from the first-region
    tokens, queries from the second-region tokens, values from all; M = [[l_K S_K, l_C C],
    [l_C C^T, l_Q S_Q]] (cosines), A = softmax_row(M / tau). The weight of each content vector
    is the column mean of A (seed 000 §3.5); Y = A V, residual, FF/BN residual stream per token.

    Output (which view to trust, cell by cell): fused cell g = unit(sum_v a_vg c_vg), a_vg a
    softmax over the views of the logit
        gamma * log(V w_v)              the attention weight of view v's token of g's region
      + trust(z_v)[g]                   a read-out of that token's attended stream
      + quality(c_vg)                   what the cell itself looks like (flat, saturated ...)
      + alpha * agreement(c_vg)         its mean cosine with the same cell of the other views.
    All four start at zero, so an untrained fusion is exactly the mean of the views; with one
    view the output is that view's cells (a_vg = 1).
    """

    def __init__(self, n_cells: int = 49, dim: int = 16, d: int = 64, heads: int = 4,
                 mode: str = "three", ff: int = 128, quality_hidden: int = 32):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}")
        self.mode, self.heads, self.d, self.dh = mode, heads, d, d // heads
        centre = torch.as_tensor(CENTRE)
        other = torch.as_tensor(OTHER)
        self.register_buffer("centre", centre, persistent=False)
        self.register_buffer("other", other, persistent=False)
        self.register_buffer("inverse", torch.argsort(torch.cat([centre, other])),
                             persistent=False)
        nf, ns = len(CENTRE), len(OTHER)
        self.emb_f = nn.Linear(nf * dim, d)
        self.emb_s = nn.Linear(ns * dim, d)
        self.bn_f = nn.BatchNorm1d(d)
        self.bn_s = nn.BatchNorm1d(d)
        self.wk = nn.Linear(d, d, bias=False)
        self.wq = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d)
        self.log_tau = nn.Parameter(torch.tensor(float(np.log(0.1))))
        self.bn_ff = nn.BatchNorm1d(d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.ReLU(), nn.Linear(ff, d))
        self.trust_f = nn.Linear(d, nf)                        # per-cell trust of a view
        self.trust_s = nn.Linear(d, ns)
        self.quality = nn.Sequential(nn.Linear(dim, quality_hidden), nn.ReLU(),
                                     nn.Linear(quality_hidden, 1))
        for lin in (self.trust_f, self.trust_s, self.quality[2]):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.gamma = nn.Parameter(torch.tensor(0.0))          # weight of the attention term
        self.alpha = nn.Parameter(torch.tensor(0.0))          # weight of the agreement term
        self.imp_logit = nn.Parameter(torch.zeros(n_cells))
        self.lam = MODES[mode]
        self.dim = dim

    def importance(self) -> torch.Tensor:
        return torch.softmax(self.imp_logit, 0)

    @staticmethod
    def _bn(bn, x):
        return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)

    def attention(self, ef: torch.Tensor, es: torch.Tensor):
        """ef, es: (N, V, d) first / second region embeddings of N sets -> A (N, H, 2V, 2V)
        with rows summing to 1, values (N, H, 2V, dh), tokens X (N, 2V, d)."""
        n = ef.shape[0]
        split = lambda y: y.reshape(n, -1, self.heads, self.dh).transpose(1, 2)  # noqa: E731
        k = F.normalize(split(self.wk(ef)), dim=-1)            # keys: first region only
        q = F.normalize(split(self.wq(es)), dim=-1)            # queries: second region only
        x = torch.cat([ef, es], 1)
        u = torch.cat([k, q], 2)                               # (N, H, 2V, dh)
        m = u @ u.transpose(-1, -2)                            # [[S_K, C], [C^T, S_Q]]
        tf = torch.cat([torch.ones_like(ef[..., 0]), torch.zeros_like(es[..., 0])], 1)
        fi, fj = tf[:, None, :, None], tf[:, None, None, :]    # first-region indicators
        ff_, qq = fi * fj, (1 - fi) * (1 - fj)
        lk, lq, lc = self.lam
        lam = lk * ff_ + lq * qq + lc * (1 - ff_ - qq)
        m = m * lam / self.log_tau.exp()                      # temperature before masking:
        if lk == 0:                                            # -inf / tau has a NaN gradient
            m = m.masked_fill(ff_ > 0, float("-inf"))
        if lq == 0:
            m = m.masked_fill(qq > 0, float("-inf"))
        a = torch.softmax(m, -1)
        return a, split(self.wv(x)), x

    def view_logits(self, c: torch.Tensor, cf, cs):
        """(N, V, G) logits of the views' cells (cell order: first region, then second)."""
        ef = self._bn(self.bn_f, self.emb_f(cf.flatten(2)))    # (N, V, d)
        es = self._bn(self.bn_s, self.emb_s(cs.flatten(2)))
        a, val, x = self.attention(ef, es)
        y = (a @ val).transpose(1, 2).flatten(2)               # (N, 2V, d)
        z = x + self.wo(y)
        z = z + self.ff(self._bn(self.bn_ff, z))               # parallel FF/BN streams
        v = c.shape[1]
        nv = torch.ones_like(ef[..., :1]).sum(1, keepdim=True)  # (N, 1, 1) V as a tensor (ONNX)
        w = a.mean(1).mean(1)[..., None]                       # (N, 2V, 1) one per token
        wf, ws = w[:, :v], w[:, v:]
        lf = self.gamma * torch.log(nv * wf / wf.sum(1, keepdim=True) + 1e-6)
        ls = self.gamma * torch.log(nv * ws / ws.sum(1, keepdim=True) + 1e-6)
        lf = lf + self.trust_f(z[:, :v])                       # (N, V, 9)
        ls = ls + self.trust_s(z[:, v:])                       # (N, V, 40)
        cc = torch.cat([cf, cs], 2)                            # (N, V, G, D)
        agree = ((cc * cc.sum(1, keepdim=True)).sum(-1) - 1.0) / (nv - 1).clamp_min(1)
        return torch.cat([lf, ls], 2) + self.quality(cc)[..., 0] + self.alpha * agree

    def forward(self, cells: torch.Tensor):
        b, v, s, g, dim = cells.shape
        c = cells.transpose(1, 2).reshape(-1, v, g, dim)       # (N = B*S, V, G, D)
        cf = c.index_select(2, self.centre)                    # first region cells
        cs = c.index_select(2, self.other)                     # second region cells
        a = torch.softmax(self.view_logits(c, cf, cs), 1)      # (N, V, G) over the views
        f = (a[..., None] * torch.cat([cf, cs], 2)).sum(1)
        f = f.index_select(1, self.inverse)                    # back to cell order
        f = f / torch.sqrt((f * f).sum(-1, keepdim=True) + 1e-12)
        return f.reshape(b, s, g, dim), self.importance()

    @torch.no_grad()
    def view_weights(self, cells: torch.Tensor) -> torch.Tensor:
        """(B, V, S, G) the weight of each view's cell in the fused cell (cell order)."""
        b, v, s, g, dim = cells.shape
        c = cells.transpose(1, 2).reshape(-1, v, g, dim)
        a = torch.softmax(self.view_logits(c, c.index_select(2, self.centre),
                                           c.index_select(2, self.other)), 1)
        a = a.index_select(2, self.inverse)
        return a.reshape(b, s, v, g).transpose(1, 2)


class FusionExport(nn.Module):
    """ONNX form: cells (V, 25, 49, 16) of one palm -> fused (25, 49, 16), importance (49,)."""

    def __init__(self, fusion: Fusion):
        super().__init__()
        self.fusion = fusion

    def forward(self, cells):
        f, w = self.fusion(cells[None])
        return f[0], w


def sample_sets(labels, sessions, rng, n_palms, views, order):
    """For n_palms distinct palms: index arrays (n_palms, views) of `views` consecutive
    samples of session 1 and of session 2 (``order``: per palm and session, image indices in
    sample order)."""
    subj = rng.choice(np.unique(labels), n_palms, replace=False)
    a, b = [], []
    for s in subj:
        sets = []
        for sess in (1, 2):
            idx = order[(s, sess)]
            st = rng.integers(0, len(idx) - views + 1)
            sets.append(idx[st:st + views])
        if rng.random() < 0.5:
            sets = sets[::-1]
        a.append(sets[0])
        b.append(sets[1])
    return np.array(a), np.array(b)


def session_order(labels, sessions) -> dict:
    return {(s, k): np.flatnonzero((labels == s) & (sessions == k))
            for s in np.unique(labels) for k in (1, 2)}


def train_fusion(pool: np.ndarray, labels, sessions, *, mode="three", steps=300, palms=48,
                 lr=2e-3, scale=32.0, margin=0.2, seed=0, stop_loss=0.0, views=(1, 2, 3),
                 log=print) -> Fusion:
    """``pool``: (A, N, 25, 49, 16) float16 cells of N training images under A augmentations
    (each set draws its views from one random augmentation pass per image)."""
    from tools.train.recognition_cells import pair_loss
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = Fusion(mode=mode)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    order = session_order(labels, sessions)
    zero = pool.shape[2] // 2
    t0 = time.time()
    net.train()
    for step in range(steps):
        v = int(rng.choice(views))
        a, b = sample_sets(labels, sessions, rng, palms, v, order)
        aug_a = rng.integers(0, pool.shape[0], a.shape)
        aug_b = rng.integers(0, pool.shape[0], b.shape)
        ca = torch.from_numpy(pool[aug_a, a].astype(np.float32))   # (P, V, S, G, D)
        cb = torch.from_numpy(pool[aug_b, b].astype(np.float32))
        fa, w = net(ca)
        fb, _ = net(cb)
        loss = pair_loss(fa, fb, zero, scale, margin, w)
        if loss.item() <= stop_loss:                          # the preset iteration condition
            log(f"fusion: prediction difference {loss.item():.4f} <= {stop_loss}, stop")
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            log(f"fusion[{mode}] step {step}/{steps} views {v} loss {loss.item():.3f} "
                f"tau {net.log_tau.exp().item():.3f} {time.time() - t0:.0f}s")
    net.eval()
    return net


@torch.no_grad()
def fuse_sets(net: Fusion | None, cells: np.ndarray, sets: np.ndarray, batch: int = 16):
    """Fused (n_sets, 25, 49, 16) of index sets (n_sets, V); net None: mean of per-view cells."""
    out = []
    for k in range(0, len(sets), batch):
        c = torch.from_numpy(cells[sets[k:k + batch]].astype(np.float32))
        if net is None:
            f = F.normalize(c.mean(1), dim=-1)
        else:
            f, _ = net(c)
        out.append(f.numpy())
    return np.concatenate(out)


def capture_sets(labels, sessions, views: int):
    """Consecutive runs of ``views`` samples within each (palm, session), as palmgate
    evaluate forms captures: index sets (n, views), their labels and sessions."""
    sets, lab, ses = [], [], []
    for (s, k), idx in session_order(labels, sessions).items():
        for j in range(len(idx) // views):
            sets.append(idx[j * views:(j + 1) * views])
            lab.append(s)
            ses.append(k)
    return np.array(sets), np.array(lab), np.array(ses)


def capture_metrics(fused: np.ndarray, lab, ses, importance=None) -> dict:
    from tools.train.recognition_cells import cross_session_eer
    return cross_session_eer(fused, lab, ses, importance)


def score_level(cells: np.ndarray, sets: np.ndarray, lab, ses) -> dict:
    """Reference: per-view cells, capture score = mean of the V x V image scores (what
    ``palmgate evaluate --views V`` does for a single-view matcher)."""
    from device.eval.metrics import eer, tar_at_far
    from device.recognition.cells import shift_max_scores
    zero = cells.shape[1] // 2
    s = shift_max_scores(cells, cells[:, zero]).T
    s = (s + s.T) / 2
    i = np.flatnonzero(ses == 1)
    j = np.flatnonzero(ses == 2)
    v = sets.shape[1]
    sc = np.zeros((len(i), len(j)))
    for a in range(v):
        for b in range(v):
            sc += s[np.ix_(sets[i, a], sets[j, b])]
    sc /= v * v
    gen = lab[i][:, None] == lab[j][None, :]
    return {"eer": float(eer(sc[gen], sc[~gen])),
            "tar_1e-4": float(tar_at_far(sc[gen], sc[~gen], 1e-4))}


def evaluate_fusion(net: Fusion | None, cells, labels, sessions, views=(1, 3)) -> dict:
    """Validation metrics of fused captures of 1 and 3 views (net None: mean of cells)."""
    out = {}
    for v in views:
        sets, lab, ses = capture_sets(labels, sessions, v)
        f = fuse_sets(net, cells, sets)
        w = None if net is None else net.importance().detach().numpy()
        out[f"{v}view"] = capture_metrics(f, lab, ses, w)
    return out


def stage_fusion(profile: dict, work, seed: int = 0, log=print,
                 modes=("three", "content")) -> dict:
    import json

    from tools.train.recognition_data import load_data
    from tools.train.recognition_cells import CellNet, augment, decode, embed
    x, lab, ses, tr, va = load_data(work)
    net = CellNet()
    net.load_state_dict(torch.load(work / "cells.pt"))
    net.eval()
    pool_path = work / "train_pool.npy"
    if pool_path.exists():
        pool = np.load(pool_path)
    else:
        xt = x[tr]
        clean = embed(net, xt).astype(np.float16)
        log("fusion: clean training cells embedded")
        gen = torch.Generator().manual_seed(seed + 1)
        aug = []
        with torch.no_grad():
            for k in range(0, len(xt), 64):
                aug.append(net(augment(decode(xt[k:k + 64]), gen)).numpy().astype(np.float16))
        pool = np.stack([clean, np.concatenate(aug)])
        np.save(pool_path, pool)
        log("fusion: augmented training cells embedded")
    cv = np.load(work / "cells_val_cells.npy")
    lv, sv = lab[va], ses[va]
    res = {"mean_of_cells": evaluate_fusion(None, cv, lv, sv)}
    for v in (1, 3):
        sets, l_, s_ = capture_sets(lv, sv, v)
        res.setdefault("score_level_mean", {})[f"{v}view"] = score_level(cv, sets, l_, s_)
    log(f"fusion: baselines {res}")
    for mode in modes:
        fu = train_fusion(pool, lab[tr], ses[tr], mode=mode, steps=profile["fusion_steps"],
                          palms=profile.get("fusion_palms", 32), seed=seed, log=log)
        torch.save(fu.state_dict(), work / f"fusion_{mode}.pt")
        res[f"fusion_{mode}"] = evaluate_fusion(fu, cv, lv, sv)
        log(f"fusion[{mode}]: validation {res[f'fusion_{mode}']}")
        (work / "fusion_metrics.json").write_text(json.dumps(res, indent=1))
    # the shipped fusion: the trained claim-2 model, unless it is worse on the validation
    # palms than its own initial state (exactly the mean of the views' cells)
    key = lambda r: (r["3view"]["eer"], r["1view"]["eer"])  # noqa: E731
    trained = "fusion_three" in res and key(res["fusion_three"]) <= key(res["mean_of_cells"])
    ship = torch.load(work / "fusion_three.pt") if trained else Fusion(mode="three").state_dict()
    torch.save(ship, work / "fusion_ship.pt")
    res["shipped"] = "fusion_three (trained)" if trained else \
        "fusion at initialisation (= mean of the views' cells): the trained one was worse"
    log(f"fusion: shipped {res['shipped']}")
    (work / "fusion_metrics.json").write_text(json.dumps(res, indent=1))
    return res
