"""Leakage checks of split mode, on transcripts and on one node's view.

``uniformity_pvalue``: every byte position of the 64-bit words of a transcript against the
uniform distribution (chi-square, 255 degrees of freedom, Wilson-Hilferty p-value); the
smallest of the eight p-values. ``input_correlation``: |corr| of the words' top 16 bits with
the input pixels (for messages shaped like the input).

``ls_reconstruct``: the known attack on the split feature's first layer (the Gabor
convolution). A node sees the plaintext Gabor responses at its owned map pixels (the softmax
mask recovery opens them); with the kernels it solves regularised least squares
min ||M (G x) - r||^2 + lam ||grad x||^2  for the image x by conjugate gradients (zero border
in the attacker's model). In plaintext-kernel mode (claim 9) the node holds the kernels; in
secret-shared-kernel mode (claim 8) its shard holds only a uniform share of them.
``psnr_affine`` scores an estimate after the best gain and offset (the Gabor kernels are
zero-mean, so brightness and contrast are not observable): an upper bound on what the
attacker gets.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from device.split.cellnet import MAP, OFFSET, STRIDE


class Recorder:
    """Wraps a channel and keeps every payload this end receives."""

    def __init__(self, ch):
        self.ch = ch
        self.received: list[bytes] = []

    def exchange(self, payload: bytes) -> bytes:
        got = self.ch.exchange(payload)
        self.received.append(got)
        return got

    def send(self, payload: bytes) -> None:
        self.ch.send(payload)

    def recv(self) -> bytes:
        got = self.ch.recv()
        self.received.append(got)
        return got


def node1_transcript(pair, enrol_roi, query_rois, include_enrol: bool = True,
                     threshold: float = 0.5) -> list[np.ndarray]:
    """Every payload node 1 of a ``LocalPair`` receives (as ring words, frames of more than
    two words) while ``enrol_roi`` is enrolled and ``query_rois`` are identified."""
    rec = Recorder(pair.ch[1])
    pair.ch = (pair.ch[0], rec)
    pair.enrol("a", enrol_roi)
    if not include_enrol:
        rec.received.clear()
    for roi in query_rois:
        pair.identify(roi, threshold)
    return [np.frombuffer(m, np.uint64) for m in rec.received if len(m) > 16]


def _chi2_sf(x: float, df: int) -> float:
    z = ((x / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))


def uniformity_pvalue(words: np.ndarray) -> float:
    b = np.ascontiguousarray(words, np.uint64).view(np.uint8).reshape(-1, 8)
    ps = []
    for k in range(8):
        c = np.bincount(b[:, k], minlength=256).astype(np.float64)
        e = len(b) / 256
        ps.append(_chi2_sf(float(((c - e) ** 2 / e).sum()), 255))
    return float(min(ps))


def input_correlation(words: np.ndarray, x: np.ndarray) -> float:
    top = (np.asarray(words, np.uint64) >> np.uint64(48)).astype(np.float64).ravel()
    return float(abs(np.corrcoef(top, np.asarray(x, np.float64).ravel())[0, 1]))


def _forward(x, bank, own):
    r = np.stack([cv2.filter2D(x, cv2.CV_64F, k, borderType=cv2.BORDER_CONSTANT)
                  [OFFSET::STRIDE, OFFSET::STRIDE][:MAP, :MAP] for k in bank], -1)
    return r.reshape(-1, len(bank))[own]


def _adjoint(r, bank, own, shape):
    out = np.zeros(shape)
    full = np.zeros((MAP * MAP, len(bank)))
    full[own] = r
    full = full.reshape(MAP, MAP, -1)
    for j, k in enumerate(bank):
        up = np.zeros(shape)
        up[OFFSET::STRIDE, OFFSET::STRIDE][:MAP, :MAP] = full[..., j]
        out += cv2.filter2D(up, cv2.CV_64F, k[::-1, ::-1].copy(),
                            borderType=cv2.BORDER_CONSTANT)
    return out


def _grad_pen(x):
    lap = cv2.Laplacian(x, cv2.CV_64F, borderType=cv2.BORDER_REPLICATE)
    return -lap


def ls_reconstruct(bank: np.ndarray, own: np.ndarray, resp: np.ndarray, lam: float = 1e-3,
                   iters: int = 150, shape=(128, 128)) -> np.ndarray:
    """Least-squares image from the responses ``resp`` (n_own, 6) at pixels ``own`` (1024,)."""
    bank = np.asarray(bank, np.float64)

    def A(x):
        return _adjoint(_forward(x, bank, own), bank, own, shape) + lam * _grad_pen(x)

    b = _adjoint(resp, bank, own, shape)
    x = np.zeros(shape)
    r = b - A(x)
    p = r.copy()
    rs = float((r * r).sum())
    for _ in range(iters):
        Ap = A(p)
        alpha = rs / max(float((p * Ap).sum()), 1e-300)
        x += alpha * p
        r -= alpha * Ap
        rs_new = float((r * r).sum())
        if rs_new < 1e-20:
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


def psnr_affine(est: np.ndarray, truth: np.ndarray) -> float:
    """PSNR (peak 255) of the estimate after the least-squares gain and offset."""
    e, t = np.asarray(est, np.float64).ravel(), np.asarray(truth, np.float64).ravel()
    A = np.stack([e, np.ones_like(e)], 1)
    coef, *_ = np.linalg.lstsq(A, t, rcond=None)
    mse = float(((A @ coef - t) ** 2).mean())
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-12))


def _node0_opening(pair, roi, opening) -> tuple[np.ndarray, np.ndarray]:
    """Run the first layer of one inference on a ``LocalPair`` and return node 0's part of
    ``opening(role, ch, shard, triple, responses)``: (own groups, values)."""
    from device.split.local import run_pair, split_input
    from device.split.protocol import gabor_layer
    tri = pair.dealer.inference_triples()
    x = split_input(roi, pair.prg)

    def node(role, ch, shard, t, xs):
        return opening(role, ch, shard, t, gabor_layer(role, ch, shard, t, xs))

    (mine, vals), _ = run_pair(node, pair.ch, pair.shards, tri, x)
    return mine, vals


def node0_first_layer_view(pair, roi) -> tuple[np.ndarray, np.ndarray]:
    """What node 0 opens at the softmax mask recovery: (own pixels (1024,), responses
    (n_own, 6))."""
    from device.split.cellnet import F_R
    from device.split.protocol import mask_recover, ownership

    def opening(role, ch, shard, t, r):
        return mask_recover(role, ch, r, ownership(t["seed"], "softmax", len(r)), F_R)

    return _node0_opening(pair, roi, opening)


def node0_unit_view(pair, roi) -> tuple[np.ndarray, np.ndarray]:
    """What node 0 opens at the first non-linearity of the unit feature: (own pixels
    (1024,), squared response norms (n_own, 1)); the other openings of that layer are
    masked by fresh dealer randomness."""
    from device.split.cellnet import F_N
    from device.split.protocol import mask_recover, ownership, squared_norms

    def opening(role, ch, shard, t, r):
        n2, _ = squared_norms(role, ch, t, r)
        return mask_recover(role, ch, n2, ownership(t["seed"], "norm", len(n2)), F_N)

    return _node0_opening(pair, roi, opening)


def view_map(own: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """A node's opened values as a full (1024 * width + 1024) vector: the values at its own
    pixels, 0 elsewhere, then its ownership mask (what a regression attack reads)."""
    full = np.zeros((len(own), vals.shape[1]))
    full[own] = vals
    return np.concatenate([full.ravel(), own.astype(np.float64)])


def fit_ridge_attack(views: np.ndarray, images: np.ndarray, lam: float = 1.0,
                     size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A learned linear inverse from views (n, d) to images (n, 128, 128), fitted on public
    palms: ridge regression onto ``size`` x ``size`` images (standardised inputs).  Returns
    (mean, scale, weights)."""
    mu, sd = views.mean(0), views.std(0) + 1e-9
    X = np.concatenate([(views - mu) / sd, np.ones((len(views), 1))], 1)
    Y = np.stack([cv2.resize(np.asarray(im, np.float32), (size, size),
                             interpolation=cv2.INTER_AREA) for im in images])
    Y = Y.reshape(len(images), -1)
    W = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ Y)
    return mu, sd, W


def ridge_reconstruct(model, view: np.ndarray, shape=(128, 128)) -> np.ndarray:
    mu, sd, W = model
    size = int(round(math.sqrt(W.shape[1])))
    y = np.concatenate([(view - mu) / sd, [1.0]]) @ W
    return cv2.resize(y.reshape(size, size).astype(np.float32), shape[::-1],
                      interpolation=cv2.INTER_CUBIC).astype(np.float64)


def node0_kernels(shard: dict) -> np.ndarray:
    """The kernels as node 0's shard alone gives them: plaintext (plaintext-kernel mode,
    claim 9) or, in secret-shared-kernel mode (claim 8), its best guess F + B0 (a uniform ring
    matrix that decodes to noise)."""
    from device.split.cellnet import F_K, KSIZE
    from device.split.ring import decode
    K = shard["gab_K"] if shard["mode"] == "plain" else shard["gab_F"] + shard["gab_B"]
    k = decode(K, F_K)
    k = np.clip(k, -1e3, 1e3)
    return k.T.reshape(-1, KSIZE, KSIZE)
