"""Per-view readings of the motion-blur measure and of a capped variant, still and smeared.

    python -m tools.eval_blur_candidates DIR --kind liveness|ntust|polyu|tongji
                                         [--split all|train|val] [--every K] --out OUT.json

For every view (``--kind liveness``: the ``bona_fide/*/view_*.png`` of a liveness set, the
synthetic gate's front end; the other kinds as ``tools.eval_motion_blur``, whose views, regions,
smear bins 4-10 and 10-20 px and seed 0 draws it repeats) the still view and each bin's smeared
view: ``f`` the shipped measure (:func:`device.vision.motion_blur.gradient_isotropy`) and
``c25`` / ``c50`` the same structure tensor with each pixel's fine gradient energy capped at
the patch's 25 % / 50 % quantile (:func:`capped_isotropy`: a crease cannot outweigh the skin
texture around it). Writes one JSON object (``rows``: per view ``sharp``, ``4-10``,
``10-20`` -> readings). The study of branch ``blur`` (docs/results.md, "Motion blur of still
one-directional palms") chose and checked thresholds on these files; neither variant shipped.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from device.vision.motion_blur import (FINE_SIGMA, fine_gradients, gradient_isotropy, palm_patch,
                                       tensor_isotropy)

BINS = ((4.0, 10.0), (10.0, 20.0))


def capped_isotropy(patch: np.ndarray, quantile: float, sigma: float = FINE_SIGMA) -> float:
    """Smallest over largest eigenvalue of the fine band's structure tensor with each pixel's
    gradient energy capped at its ``quantile`` (weight min(1, E_q / E)); 1.0 where the shipped
    measure does not measure (tiny or flat patch)."""
    g = fine_gradients(patch, sigma)
    if g is None:
        return 1.0
    gx, gy = g
    e = gx * gx + gy * gy
    w = np.minimum(1.0, float(np.quantile(e, quantile)) / np.maximum(e, 1e-12))
    return tensor_isotropy(float((w * gx * gx).mean()), float((w * gy * gy).mean()),
                           float((w * gx * gy).mean()))


def readings(patch: np.ndarray) -> dict:
    return {"f": gradient_isotropy(patch), "c25": capped_isotropy(patch, 0.25),
            "c50": capped_isotropy(patch, 0.50)}


def _views(root: Path, kind: str, split: str, every: int):
    from device.config import load_config
    from tools.eval_motion_blur import _regions, _split
    from tools.eval_regions import list_images
    if kind == "liveness":
        paths, kind = sorted(root.glob("bona_fide/*/view_*.png")), "synthetic"
    else:
        paths = _split(list_images(root, "synthetic" if kind == "tongji" else kind, "all"),
                       split)
    return _regions(paths[::every], kind, load_config(None))


def evaluate(root, kind: str, split: str = "all", every: int = 1) -> dict:
    from tools.eval_motion_blur import motion_blur
    rng = np.random.default_rng(0)
    rows, missed = [], 0
    for p, grey, corners in _views(Path(root), kind, split, every):
        if grey is None:
            missed += 1
            continue
        angle = rng.uniform(0, math.pi)
        r = {"view": str(p), "sharp": readings(palm_patch(grey, corners))}
        for lo, hi in BINS:
            r[f"{lo:g}-{hi:g}"] = readings(palm_patch(
                motion_blur(grey, rng.uniform(lo, hi), angle), corners))
        rows.append(r)
    return {"root": str(root), "kind": kind, "split": split, "every": every,
            "not_acquired": missed, "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.eval_blur_candidates", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--kind", choices=["liveness", "ntust", "polyu", "tongji"], required=True)
    ap.add_argument("--split", choices=["all", "train", "val"], default="all")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    rep = evaluate(a.dir, a.kind, a.split, a.every)
    Path(a.out).write_text(json.dumps(rep) + "\n")
    print(f"{a.out}: {len(rep['rows'])} views, {rep['not_acquired']} not acquired")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
