"""Measure the motion-blur check (device.vision.motion_blur) on a folder of views.

    python -m tools.eval_motion_blur DIR --kind ntust|synthetic|polyu|tongji
                                     [--split all|train|val] [--limit N] [--every K]
                                     [--bins 4-10,10-20] [--seed 0] [--out OUT.json]

For every view: the first region as the gate's front end finds it (landmarks, then the
classical path; quality checks off), or for ``--kind tongji`` (palm ROIs: the view is the
region) the whole view. Then the view itself and, for each length bin, the view smeared by a
straight motion of a random length in the bin (view pixels) along a random direction (one
angle per view, the same for every bin): the isotropy of the palm centre's fine detail
(``gradient_isotropy``) and the variance of the rectified region's Laplacian
(``min_sharpness``'s measure). Prints one JSON object: per set (``sharp``, each bin), the
fraction refused by the motion-blur check alone (``motion_blur``), by the isotropic check
alone (``blurred``), by either (``refused``: the gate's two checks together), the isotropy's
percentiles, and the check's thread CPU ms per view (median, p95).

``--split`` for tongji and polyu: ``tools.train.realdata.split_subjects(N, 0.2, 0)`` on the
sorted subject folders (train: where the threshold was chosen for tongji). Thresholds: the
``[quality]`` defaults (device.config) unless ``--config``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from device.vision.motion_blur import motion_blur_measure
from device.vision.quality import sharpness
from device.vision.regions import read_hand_image
from device.vision.roi_geometry import rectify
from device.vision.segmentation import to_grey
from tools.eval_regions import list_images


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A straight motion-blur kernel: a line of ``length`` px at ``angle`` (radians),
    anti-aliased (bilinear splats), normalised to sum 1."""
    n = int(math.ceil(length)) + 3
    n += (n + 1) % 2
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = math.cos(angle), math.sin(angle)
    for t in np.linspace(-length / 2, length / 2, int(length * 4) + 1):
        x, y = c + t * dx, c + t * dy
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return k / k.sum()


def motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    """``image`` smeared by a straight motion of ``length`` px along ``angle``."""
    if length <= 0:
        return image
    return cv2.filter2D(image, -1, motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)


def _split(paths: list[Path], split: str) -> list[Path]:
    if split == "all":
        return paths
    from tools.train.realdata import split_subjects
    subjects = sorted({p.parent.name for p in paths})
    train, val = split_subjects(len(subjects), 0.2, 0)
    keep = {subjects[i] for i in (val if split == "val" else train)}
    return [p for p in paths if p.parent.name in keep]


def _regions(paths, kind, cfg):
    """(grey view, first-region corners) per acquired view; the count of views not acquired."""
    if kind == "tongji":
        for p in paths:
            g = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            h, w = g.shape
            yield p, g, np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
        return
    from device.gate.front_end_stage import front_end_from_config
    from device.vision.quality import QualityIssue
    fe = front_end_from_config(cfg, check_quality=False)[0]
    for p in paths:
        im = read_hand_image(p)
        try:
            reg = fe(im)
        except QualityIssue:
            yield p, None, None
            continue
        yield p, to_grey(im), reg.roi_corners


def evaluate(root, kind: str, split: str = "all", bins=((4, 10), (10, 20)), seed: int = 0,
             limit: int | None = None, every: int = 1, config: str | None = None) -> dict:
    from device.config import load_config
    cfg = load_config(config)
    q = cfg.quality
    paths = _split(list_images(Path(root), "synthetic" if kind == "tongji" else kind, "all"),
                   split)[::every]
    if limit:
        paths = paths[:limit]
    rng = np.random.default_rng(seed)
    names = ["sharp"] + [f"{lo:g}-{hi:g}" for lo, hi in bins]
    iso: dict = {n: [] for n in names}
    lap: dict = {n: [] for n in names}
    cpu, missed = [], 0
    for p, grey, corners in _regions(paths, kind, cfg):
        if grey is None:
            missed += 1
            continue
        angle = rng.uniform(0, math.pi)
        for n, b in zip(names, [None] + list(bins)):
            g = grey if b is None else motion_blur(grey, rng.uniform(*b), angle)
            c0 = time.thread_time()
            iso[n].append(motion_blur_measure(g, corners))
            cpu.append((time.thread_time() - c0) * 1e3)
            lap[n].append(sharpness(rectify(g, corners, 128) if kind != "tongji" else g))
    out = {"dir": str(root), "kind": kind, "split": split, "views": len(iso["sharp"]),
           "not_acquired": missed, "seed": seed,
           "min_gradient_isotropy": q.min_gradient_isotropy, "min_sharpness": q.min_sharpness,
           "check_cpu_ms": {"median": round(float(np.median(cpu)), 3),
                            "p95": round(float(np.percentile(cpu, 95)), 3)} if cpu else None}
    for n in names:
        a, s = np.array(iso[n]), np.array(lap[n])
        if not len(a):
            continue
        mb, bl = a < q.min_gradient_isotropy, s < q.min_sharpness
        out[n] = {"motion_blur": round(float(mb.mean()), 4), "blurred": round(float(bl.mean()), 4),
                  "refused": round(float((mb | bl).mean()), 4),
                  "isotropy_p01_p50_p99": [round(float(x), 3)
                                           for x in np.percentile(a, [1, 50, 99])]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.eval_motion_blur", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--kind", choices=["ntust", "synthetic", "polyu", "tongji"], required=True)
    ap.add_argument("--split", choices=["all", "train", "val"], default="all")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--every", type=int, default=1, help="every K-th view")
    ap.add_argument("--bins", default="4-10,10-20", help="blur length bins, view pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default=None)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    try:
        bins = tuple(tuple(float(x) for x in b.split("-")) for b in a.bins.split(","))
        if any(len(b) != 2 or not 0 < b[0] <= b[1] for b in bins):
            raise ValueError
    except ValueError:
        ap.error(f"--bins: expected LO-HI[,LO-HI...] with 0 < LO <= HI, got {a.bins!r}")
    rep = evaluate(a.dir, a.kind, a.split, bins, a.seed, a.limit, a.every, a.config)
    text = json.dumps(rep, indent=2)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
