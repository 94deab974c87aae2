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

Training (claims 1, 4-6) is ``python -m tools.train fusion``: the step loop in
tools/train/recognition_fusion_train.py on degraded multi-view captures of precomputed cells.
Any V >= 1; V = 0 is an error.
"""
from __future__ import annotations


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

    def fuse(self, cells: torch.Tensor):
        """(B, V, S, G, D) -> fused (B, S, G, D) unit cells, importance (G,), and the weight of
        each view's cell in its fused cell, (B, V, S, G) in cell order (a softmax over V)."""
        b, v, s, g, dim = cells.shape
        c = cells.transpose(1, 2).reshape(-1, v, g, dim)       # (N = B*S, V, G, D)
        cf = c.index_select(2, self.centre)                    # first region cells
        cs = c.index_select(2, self.other)                     # second region cells
        a = torch.softmax(self.view_logits(c, cf, cs), 1)      # (N, V, G) over the views
        f = (a[..., None] * torch.cat([cf, cs], 2)).sum(1)
        f = f.index_select(1, self.inverse)                    # back to cell order
        f = f / torch.sqrt((f * f).sum(-1, keepdim=True) + 1e-12)
        a = a.index_select(2, self.inverse).reshape(b, s, v, g).transpose(1, 2)
        return f.reshape(b, s, g, dim), self.importance(), a

    def forward(self, cells: torch.Tensor):
        f, w, _ = self.fuse(cells)
        return f, w

    @torch.no_grad()
    def view_weights(self, cells: torch.Tensor) -> torch.Tensor:
        """(B, V, S, G) the weight of each view's cell in the fused cell (cell order)."""
        return self.fuse(cells)[2]


class FusionExport(nn.Module):
    """ONNX form: cells (V, 25, 49, 16) of one palm -> fused (25, 49, 16), importance (49,),
    view_weights (V, 25, 49): each view's weight in each fused cell of each window (the gate
    weighs the classical cells of the same windows with them, device.recognition.hybrid)."""

    def __init__(self, fusion: Fusion):
        super().__init__()
        self.fusion = fusion

    def forward(self, cells):
        f, w, a = self.fusion.fuse(cells[None])
        return f[0], w, a[0]
