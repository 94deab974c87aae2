"""Align the views of one presentation on the cell grid before they are fused (pure numpy).

Why: every view's palm region is rectified to the same palm frame, but a region step that
placed one view a few pixels off (device/eval/degrade.py "misalignment": 4-10 px, a few
degrees) makes cell g of that view a different patch of palm than cell g of the others, and a
fusion that sums cell g over the views smears them. On the 40 fusion-validation palms (3 views,
2 degraded) leaving out only the misaligned views took the fused feature from EER 0.117 % /
FRR 0.87 % at FAR 1e-4 to 0.058 % / 0.23 %; no other kind of degradation mattered as much
(docs/results.md, "Several views: fusion and pair rules").

How: each view's cells are given at the 25 window shifts (±2 map px = ±8 image px,
device.recognition.cells). The best relative shift of two views is the window of one that
matches the other's centred window best (the matcher's own importance-weighted cell cosine).
The anchor is the view that agrees in placement (the same best window) with the most other
views, ties broken by the summed scores -- with one view placed off, it is one of the others.
Every other view is moved by its shift relative to the anchor: fused window s takes that view's
window s + shift. Windows that fall outside the ±2 range are left out of that view (its weight
there is 0), so no cell is fused from a wrong place. One view, or views that all agree, are
returned unchanged.
"""
from __future__ import annotations

import numpy as np

from device.recognition.cells import MAX_SHIFT, shift_offsets

# two views "agree in placement" when their best relative shift is under this many map px
# (Chebyshev; 1 = the same window). Chosen on the fusion-validation palms from 1 and 2 (1:
# FRR 0.46 % / EER 0.111 %, 2: 0.52 % / 0.106 %; docs/results.md)
AGREE_SHIFT = 1
OFFSETS = shift_offsets(MAX_SHIFT)                   # (S, 2) window shifts, map px
ZERO = int(np.flatnonzero((OFFSETS == 0).all(1))[0])


def relative_shifts(cells: np.ndarray, importance: np.ndarray):
    """Views (V, S, G, D) of unit cells, importance (G,) -> (scores (V, V): the best
    importance-weighted cell cosine of view a's centred window against view b's windows,
    symmetrised, 0 on the diagonal; shift (V, V): the index of view b's best window for view a's centre, the zero
    shift on the diagonal)."""
    c = np.asarray(cells, np.float32)
    v, s = c.shape[:2]
    if s != len(OFFSETS):
        raise ValueError(f"view alignment needs {len(OFFSETS)} window shifts, got {s}")
    t = c[:, ZERO] * np.asarray(importance, np.float32)[None, :, None]      # (V, G, D)
    sc = (t.reshape(v, -1) @ c.reshape(v * s, -1).T).reshape(v, v, s)       # (V, V, S)
    best = sc.argmax(-1)
    best[np.arange(v), np.arange(v)] = ZERO
    top = sc.max(-1)
    top[np.arange(v), np.arange(v)] = 0.0        # a view's agreement with itself says nothing
    return (top + top.T) / 2, best


def placement_anchor(scores: np.ndarray, shift: np.ndarray,
                     agree: int = AGREE_SHIFT) -> int:
    """The view that agrees in placement with the most views (relative shift under ``agree``
    map px either way), ties broken by its summed scores against the others, then by the
    later view (two views that disagree: the second)."""
    d = np.abs(OFFSETS[shift]).max(-1)
    d = np.maximum(d, d.T)
    near = (d < agree).sum(1)
    return int(np.lexsort((np.asarray(scores).sum(1), near))[-1])


def shifted_windows(offset) -> tuple[np.ndarray, np.ndarray]:
    """For a view displaced by ``offset`` (dy, dx) map px: (index (S,) of its window that lands
    on each window of the anchor, clamped to the range; inside (S,) bool, the index is exact)."""
    moved = OFFSETS + np.asarray(offset)[None, :]
    inside = (np.abs(moved) <= MAX_SHIFT).all(1)
    m = np.clip(moved, -MAX_SHIFT, MAX_SHIFT) + MAX_SHIFT
    return m[:, 0] * (2 * MAX_SHIFT + 1) + m[:, 1], inside


def align_views(cells: np.ndarray, importance: np.ndarray, agree: int = AGREE_SHIFT):
    """Views (V, S, G, D) -> (aligned views (V, S, G, D), inside (V, S) bool: the view's
    window s exists after the move; outside windows hold a clamped window and must get no
    weight). One view, or views that all agree, come back as they are (the same array)."""
    c = np.asarray(cells, np.float32)
    if c.ndim != 4 or c.shape[0] < 1:
        raise ValueError("view alignment needs cells of shape (V>=1, S, G, D)")
    inside = np.ones(c.shape[:2], bool)
    if c.shape[0] == 1:
        return c, inside
    scores, shift = relative_shifts(c, importance)
    a = placement_anchor(scores, shift, agree)
    out = c
    for k in range(c.shape[0]):
        off = OFFSETS[shift[a, k]]
        if k == a or not off.any():
            continue
        if out is c:
            out = c.copy()
        idx, inside[k] = shifted_windows(off)
        out[k] = c[k][idx]
    return out, inside


def masked_weights(weights: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per-view per-window per-cell weights (V, S, G) with the outside windows (V, S) at 0,
    renormalised over the views (the anchor is inside everywhere, so no window is empty)."""
    w = np.asarray(weights, np.float32) * np.asarray(inside, np.float32)[:, :, None]
    return w / np.maximum(w.sum(0, keepdims=True), 1e-12)
