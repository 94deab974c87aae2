"""Degraded multi-view cell sets for training and measuring the seed-000 fusion.

The fusion is trained on fixed cells: every Tongji ROI is embedded by the shipped cell network
(models/recognition_cells.onnx, fp32) once clean and ``reps`` times per degradation kind
(device.eval.degrade: blur, occlusion, glare, exposure, misalignment, applied to the ROI before
the cell network), and the cells are cached as int8 (x127) in a git-ignored work folder, so the
fusion trains on a 2-core CPU in minutes.

Versions per ROI: 0 = clean, then kind k, repetition r at 1 + r * len(KINDS) + k.

Captures (``captures``): consecutive samples of one palm and session as views (3 views per
capture, as a gate's burst); a capture with ``n_bad`` degraded views takes a different random
degradation kind for each degraded view and leaves the rest clean.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from device.eval.degrade import KINDS, degrade

SCALE = 127.0


def version_index(kind: int, rep: int) -> int:
    return 1 + rep * len(KINDS) + kind


def precompute(work: Path, ps=None, name: str = "tongji", reps: int = 2, seed: int = 0,
               log=print, batch: int = 64, limit: int | None = None,
               feature: str = "learned") -> Path:
    """Cells of every ROI of ``ps`` (a realdata.PalmSet; default the Tongji ROIs), clean and
    degraded: work/<name>_cells.npy (N, 1 + reps * len(KINDS), 25, 49, 16) int8 and
    work/<name>_meta.npz (labels, sessions). Reused when present. ``feature="classical"``:
    the classical Gabor cells (cells_pca.npz, the hybrid's other half) of the same ROIs under
    the same degradations, work/<name>_classical.npy."""
    from device.recognition.learned import LearnedExtractor, net_input
    from tools.train.realdata import tongji
    work.mkdir(parents=True, exist_ok=True)
    stem = {"learned": "cells", "classical": "classical"}[feature]
    out = work / f"{name}_{stem}.npy"
    meta = work / f"{name}_meta.npz"
    if out.exists() and (meta.exists() or feature == "classical"):
        return out
    ps = tongji() if ps is None else ps
    images = ps.images[:limit] if limit else ps.images
    nv = 1 + reps * len(KINDS)
    if feature == "classical":
        from device.recognition.cells import CellExtractor, full_responses
        cex = CellExtractor()

        def embed(rois):
            return np.stack([cex.query_from_responses(full_responses(x, cex.bank))
                             for x in rois])
    else:
        ex = LearnedExtractor(fusion=False, threads=1)

        def embed(rois):
            return ex.cells_of_inputs([net_input(x, ex.bank, ex.beta) for x in rois])
    tmp = work / f"{name}_{stem}.partial.npy"
    arr = np.lib.format.open_memmap(tmp, "w+", np.int8, (len(images), nv, 25, 49, 16))
    t0 = time.time()
    for k0 in range(0, len(images), batch):
        rois, where = [], []
        for i in range(k0, min(k0 + batch, len(images))):
            rois.append(images[i])
            where.append((i, 0))
            for r in range(reps):
                for k, kind in enumerate(KINDS):
                    rng = np.random.default_rng([seed, i, r, k])
                    rois.append(degrade(images[i], kind, rng))
                    where.append((i, version_index(k, r)))
        c = embed(rois)
        q = np.clip(np.rint(c * SCALE), -127, 127).astype(np.int8)
        for (i, v), x in zip(where, q):
            arr[i, v] = x
        if (k0 // batch) % 10 == 0:
            log(f"{name} cells {k0 + len(rois) // nv}/{len(images)} {time.time() - t0:.0f}s")
    arr.flush()
    del arr
    tmp.rename(out)
    n = len(images)
    if feature == "classical":
        log(f"{name} classical cells: {n} ROIs x {nv} versions in {time.time() - t0:.0f}s")
        return out
    np.savez(meta, labels=ps.labels[:n], sessions=ps.sessions[:n], reps=reps, seed=seed)
    log(f"{name} cells: {n} ROIs x {nv} versions in {time.time() - t0:.0f}s -> {out}")
    return out


def load_cells(work: Path, name: str = "tongji", feature: str = "learned"):
    """(cells int8 memmap (N, versions, 25, 49, 16), labels, sessions, reps)."""
    m = np.load(work / f"{name}_meta.npz")
    stem = {"learned": "cells", "classical": "classical"}[feature]
    return (np.load(work / f"{name}_{stem}.npy", mmap_mode="r"), m["labels"], m["sessions"],
            int(m["reps"]))


def dequant(x: np.ndarray) -> np.ndarray:
    """int8 cells -> float32 unit cells (re-normalised after rounding)."""
    f = x.astype(np.float32) / SCALE
    return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-6)


def view_versions(rng: np.random.Generator, n_sets: int, views: int, n_bad, reps: int):
    """(n_sets, views) version indices: per set ``n_bad`` (an int, or a sequence to draw from)
    random views degraded, each with a random kind and repetition, the others clean (0)."""
    out = np.zeros((n_sets, views), np.int64)
    for s in range(n_sets):
        nb = int(n_bad if np.isscalar(n_bad) else rng.choice(n_bad))
        bad = rng.choice(views, min(nb, views), replace=False)
        kinds = rng.choice(len(KINDS), len(bad), replace=len(bad) > len(KINDS))
        for v, k in zip(bad, kinds):
            out[s, v] = version_index(int(k), int(rng.integers(reps)))
    return out


def captures(labels, sessions, views: int, stride: int | None = None):
    """Index sets (n, views) of consecutive samples within each (palm, session) (windows
    starting every ``stride`` samples, default ``views``: disjoint), their labels, sessions."""
    stride = stride or views
    sets, lab, ses = [], [], []
    for s in np.unique(labels):
        for k in (1, 2):
            idx = np.flatnonzero((labels == s) & (sessions == k))
            for j in range(0, len(idx) - views + 1, stride):
                sets.append(idx[j:j + views])
                lab.append(s)
                ses.append(k)
    return np.array(sets), np.array(lab), np.array(ses)
