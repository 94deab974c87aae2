"""A cheap first look at two people's X-ray bone templates before the look-alike lists' full
comparison (:mod:`device.gate.lookalike_lists`): coarse grids of the bone patch, compared in a
fraction of the gate's comparison's time, so that only the pairs that could be look-alikes
are compared in full. Branch ``xpre`` measured such descriptors (docs/results.md "A cheap bone
descriptor to find a person's look-alikes at enrolment"); this module builds its D16 -> D32s
cascade.

- **A grid** (:func:`grid`): the bone patch's line map averaged over square cells, each cell
  weighed by the patch's weights (``n`` cells a side: 16 of 5 mm, 32 of 2.5 mm on the 80 mm
  patch); a cell is kept where at least half its area is weighed; the kept cells z-normalised,
  the others 0.
- **Two people's similarity** (:func:`similarity`): the best, over every pair of their
  templates and every shift of up to ``shift`` cells, of the normalised correlation over the
  cells kept in both (NaN where fewer than :data:`MIN_CELLS` are: such a pair is passed on).
- **The cascade** (:func:`passes`): a pair is compared in full when its 16-cell similarity
  (no shift) reaches the signed ``grid16``, its 32-cell one (shifts of up to 2 cells, 5 mm)
  the signed ``grid32s``, and the 32-cell one with either person's templates also turned
  -3 and +3 deg (xpre's D32st) the signed ``grid32st`` (``sensor_identity.lookalikes.
  prefilter`` of ``models/binding_xray.json``; absent: every pair is compared in full).

Pure functions of arrays (numpy + OpenCV); no model, no file.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from device.gate.binding_joints import finite_number
from device.gate.binding_texture import turned

MIN_CELLS = 20
"""The fewest cells kept in both templates for a similarity (fewer: NaN, passed on)."""

STAGES = (("grid16", 16, 0, ()), ("grid32s", 32, 2, ()), ("grid32st", 32, 2, (-3.0, 3.0)))
"""The cascade: (signed name, cells a side, largest shift in cells, the turns (degrees) of the
other person's templates also tried, both ways round)."""


def prefilter_numbers(la: dict) -> dict | None:
    """The signed ``prefilter`` of a ``lookalikes`` block: a number in [-1, 1] for each stage
    of :data:`STAGES`, and ``for_min_pair_agreement``, the pair agreement from which it was
    chosen to keep every pair (the block's ``min_pair_agreement`` may not be lower: the
    lists would miss pairs a decision compares); None when absent (no prefilter).
    ValueError when malformed."""
    v = la.get("prefilter")
    if v is None:
        return None
    names = [s[0] for s in STAGES]
    if not isinstance(v, dict) or not all(finite_number(v.get(k)) and -1.0 <= v[k] <= 1.0
                                          for k in names):
        raise ValueError(f"'lookalikes' 'prefilter' must give {', '.join(names)}, each a "
                         f"number in [-1, 1]")
    f = v.get("for_min_pair_agreement")
    if not finite_number(f) or not finite_number(la.get("min_pair_agreement")) or \
            la["min_pair_agreement"] < f:
        raise ValueError("'lookalikes' 'prefilter' must give 'for_min_pair_agreement', at "
                         "most the block's 'min_pair_agreement' (it keeps the pairs from it)")
    return {**{k: float(v[k]) for k in names}, "for_min_pair_agreement": float(f)}


def grid(patch, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(cell values z-normalised over the kept cells, 0 elsewhere; kept mask as float) of a
    bone patch ``(lines, weights)`` on ``n`` x ``n`` cells (area averages)."""
    lines, w = patch
    w = np.asarray(w, np.float32)
    lw = cv2.resize(np.asarray(lines, np.float32) * w, (n, n), interpolation=cv2.INTER_AREA)
    ww = cv2.resize(w, (n, n), interpolation=cv2.INTER_AREA)
    keep = ww >= 0.5
    v = np.where(keep, lw / np.maximum(ww, 1e-6), 0.0)
    if keep.sum() >= 2:
        m, s = v[keep].mean(), v[keep].std()
        v = np.where(keep, (v - m) / (s if s > 1e-9 else 1.0), 0.0)
    return v.astype(np.float32), keep.astype(np.float32)


def grids(patches: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`grid` of each template, stacked: ``(values (k, n, n), kept (k, n, n))``."""
    g = [grid(p, n) for p in patches]
    return np.stack([a for a, _ in g]), np.stack([k for _, k in g])


def similarity(a, b, shift: int) -> float:
    """The best normalised correlation of two people's stacked grids (:func:`grids`) over
    every pair of templates and every shift of up to ``shift`` cells, over the cells kept in
    both; NaN when no pair and shift keeps :data:`MIN_CELLS` cells in both."""
    (va, ka), (vb, kb) = a, b
    n = va.shape[1]
    best = -math.inf
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            ya, yb = slice(max(0, dy), n + min(0, dy)), slice(max(0, -dy), n - max(0, dy))
            xa, xb = slice(max(0, dx), n + min(0, dx)), slice(max(0, -dx), n - max(0, dx))
            A, KA = va[:, ya, xa], ka[:, ya, xa]
            B, KB = vb[:, yb, xb], kb[:, yb, xb]
            both = np.einsum("ihw,jhw->ij", KA, KB)
            num = np.einsum("ihw,jhw->ij", A, B)
            aa = np.einsum("ihw,jhw->ij", A * A, KB)
            bb = np.einsum("ihw,jhw->ij", KA, B * B)
            r = np.where(both >= MIN_CELLS, num / np.sqrt(np.maximum(aa * bb, 1e-12)), -np.inf)
            best = max(best, float(r.max()))
    return best if math.isfinite(best) else float("nan")


def describe(patches: list) -> dict:
    """One person's grids of every stage (:data:`STAGES`): what :func:`passes` compares; a
    stage with turns keeps ``(unturned grids, grids of every turn and the unturned)``."""
    out = {}
    for name, n, _, turns in STAGES:
        g = grids(patches, n)
        if turns:
            t = [(turned(p[0], d), turned(p[1], d, nearest=True)) for d in turns
                 for p in patches]
            gt = grids(t, n)
            g = (g, (np.concatenate([g[0], gt[0]]), np.concatenate([g[1], gt[1]])))
        out[name] = g
    return out


def stage_similarity(a: dict, b: dict, stage) -> float:
    """Two people's similarity at one stage of :data:`STAGES` (with turns: the best of each
    one's unturned grids against the other's turned ones, both ways round)."""
    name, _, shift, turns = stage
    if not turns:
        return similarity(a[name], b[name], shift)
    (a0, at), (b0, bt) = a[name], b[name]
    return max(similarity(a0, bt, shift), similarity(b0, at, shift))


def passes(a: dict, b: dict, numbers: dict | None) -> bool:
    """Whether two people (:func:`describe`) go on to the full comparison: no signed
    prefilter, or every stage's similarity at or over its number (a NaN passes)."""
    if numbers is None:
        return True
    for stage in STAGES:
        if stage_similarity(a, b, stage) < numbers[stage[0]]:
            return False
    return True
