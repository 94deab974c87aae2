"""Scores of captures for ``palmgate evaluate``: the views of a capture fused into one feature
(the seed-000 attention fusion, or the mean of the views' unit cells), image scores combined
over the N x N view pairs (best or mean), and protected scores of every probe against every
enrolled template through the gate's own protected matcher, in blocks.

Protected scoring: the enrolled side goes into a ``ProtectedGallery`` (the gate's storage of
protected templates, each under its own key), then blocks of its templates
(``batch_scores.TemplateBlock``) meet all probes at once: a probes x templates score matrix
per block with the shift search, so memory stays bounded by the block and the scores are the
exact protected scores the gate computes.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from device.recognition.cells import mean_fusion, unit_cells

FUSIONS = ("attention", "mean")
PAIR_RULES = ("best", "mean")
TEMPLATES_PER_BLOCK = 2048


def fuse_captures(cells: np.ndarray, members: np.ndarray, fusion: str, fuse=None,
                  usable: np.ndarray | None = None) -> np.ndarray:
    """(C, S, G, D) capture features from per-image cells (N, S, G, D) and the (C, V) image
    indices of each capture: ``fusion`` "attention" uses ``fuse`` (the feature's learned
    multi-view fusion, views (V, S, G, D) -> (S, G, D)), "mean" :func:`mean_fusion`.
    ``usable`` (C, V) bool: only those views are fused (the gate drops the others before the
    fusion, device.vision.view_usability); a capture with none fuses all of its views (the
    caller scores it as denied)."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; use {' or '.join(FUSIONS)}")
    if fusion == "attention" and fuse is None:
        raise ValueError("this feature has no learned fusion; use --fusion mean")
    f = fuse if fusion == "attention" else mean_fusion
    members = np.asarray(members)
    if members.shape[1] == 1 and fusion == "mean":
        return unit_cells(cells[members[:, 0]]).astype(np.float32)
    out = np.empty((len(members),) + cells.shape[1:], np.float32)   # no list of C arrays
    for k, m in enumerate(members):
        if usable is not None and usable[k].any():
            m = m[usable[k]]
        out[k] = f(cells[list(m)])
    return out


def combine_view_pairs(s: np.ndarray, rows: np.ndarray, cols: np.ndarray, a_members,
                       b_members, rule: str, a_usable=None, b_usable=None) -> np.ndarray:
    """Capture-pair scores from image scores ``s``: pair k compares capture rows[k] of
    ``a_members`` (its image rows in s) with capture cols[k] of ``b_members`` (its image
    columns); ``rule`` "best" takes the best of the V x V view-pair scores, "mean" their mean;
    ``a_usable`` / ``b_usable`` ((C, V) bool): only the pairs of usable views count (a pair
    with none scores -inf for "best", 0 for "mean")."""
    if rule not in PAIR_RULES:
        raise ValueError(f"unknown pair rule {rule!r}; use {' or '.join(PAIR_RULES)}")
    am, bm = np.asarray(a_members), np.asarray(b_members)
    au = np.ones(am.shape, bool) if a_usable is None else np.asarray(a_usable, bool)
    bu = np.ones(bm.shape, bool) if b_usable is None else np.asarray(b_usable, bool)
    best = np.full(len(rows), -np.inf)
    total, count = np.zeros(len(rows)), np.zeros(len(rows))
    for x in range(am.shape[1]):
        for y in range(bm.shape[1]):
            ok = au[rows, x] & bu[cols, y]
            v = s[am[rows, x], bm[cols, y]].astype(np.float64)
            if rule == "best":
                np.maximum(best, np.where(ok, v, -np.inf), out=best)
            else:
                total += np.where(ok, v, 0.0)
                count += ok
    return best if rule == "best" else total / np.maximum(count, 1)


def enrol_gallery(templates: np.ndarray, weights: np.ndarray, config, rng=None, **kw):
    """Every template (n, G, D) enrolled under its own key into a ``ProtectedGallery`` (the
    gate's storage; ``rng``: a seeded Generator for a reproducible run, default the gate's
    os.urandom). Returns the gallery and the enrolled arrays (data, keys, masks, fills)."""
    from device.protect.core import enrol_many, secure_rng
    from device.protect.gallery import ProtectedGallery
    t = np.asarray(templates, np.float32)
    enrolled = enrol_many(t, config, importance=weights,
                          rng=rng if rng is not None else secure_rng())
    gal = ProtectedGallery(config, weights, dim=t.shape[-1], **kw)
    gal.add_arrays(list(range(len(t))), *enrolled)
    return gal, enrolled


def gallery_scores(gal, probes: np.ndarray, threads: int = 1,
                   templates_per_block: int = TEMPLATES_PER_BLOCK, progress=None) -> np.ndarray:
    """(len(gal), n_probes) exact protected scores of every probe (m, S, G, D) against every
    template of ``gal``, best over the shifts: blocks of templates meet all probes at once,
    ``threads`` parts of the probes at a time; ``progress(what, n)`` after each block."""
    from device.protect.batch_scores import TemplateBlock, best_shift_scores
    n = len(gal)
    out = np.empty((n, len(probes)), np.float32)
    q = np.ascontiguousarray(probes, np.float32)
    chunks = [c for c in np.array_split(np.arange(len(q)), max(1, 4 * threads)) if len(c)]
    with ThreadPoolExecutor(max(1, threads)) as ex:
        for lo in range(0, n, templates_per_block):
            hi = min(lo + templates_per_block, n)
            tb = TemplateBlock.from_gallery(gal, np.arange(lo, hi))

            def part(c, tb=tb, lo=lo, hi=hi):
                out[lo:hi, c[0]:c[-1] + 1] = best_shift_scores(tb, q[c[0]:c[-1] + 1]).T

            list(ex.map(part, chunks))
            if progress:
                progress("matched templates", hi)
    return out


def protected_scores(templates: np.ndarray, probes: np.ndarray, weights: np.ndarray,
                     config, rng=None, threads: int = 1,
                     templates_per_block: int = TEMPLATES_PER_BLOCK, progress=None
                     ) -> np.ndarray:
    """(n_templates, n_probes) protected scores: :func:`enrol_gallery` then
    :func:`gallery_scores`."""
    gal, _ = enrol_gallery(templates, weights, config, rng)
    return gallery_scores(gal, probes, threads, templates_per_block, progress)
