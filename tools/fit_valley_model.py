"""Fit the landmark path's valley regression (device.vision.landmark_valleys.VALLEY_REGRESSION)
on synthetic hands with ground-truth valleys.

    python -m tools.fit_valley_model DIR [--regions OUT/regions.json] [--ridge 1e-4]
                                     [--check DIR2 [--check-regions R2]]

DIR: synthetic hands (``python -m tools.synth hands``: each image with its ``.json``). The
landmarks are the gate's front end's (quality checks off), or read from ``--regions`` (the
``regions.json`` that ``python -m tools.eval_regions DIR --kind synthetic --out OUT`` writes).
Prints the fitted table as Python (paste it into device/vision/landmark_valleys.py) and, for DIR
and each ``--check`` set, the finger-valley and thumb-valley error (median / p95, image px) of
the fixed offsets (VALLEY_MODEL), the regression, and the regression refined on the image,
and the thread CPU ms of ``landmark_valleys`` per view.
The shipped table: ``python -m tools.fit_valley_model /tmp/syn4343`` on
``python -m tools.synth hands --out /tmp/syn4343 --subjects 60 --sessions 2 --samples 3
--views 3 --seed 4343`` (with ``--regions`` of an eval_regions run on it: the same
landmarks, faster).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from device.vision.landmark_valleys import (landmark_valleys, regress_valleys,
                                            valley_features)
from device.vision.palm_from_landmarks import estimate_valleys, palm_frame
from device.vision.regions import read_hand_image
from tools.eval_regions import list_images


def collect(root: Path, regions: str | None = None) -> list[tuple]:
    """(image path, (21, 2) landmarks, (4, 2) true valleys, (4,) visible) per acquired view."""
    root = Path(root)
    if regions:
        recs = [(root / r["path"], np.array(r["landmarks"], np.float64))
                for r in json.loads(Path(regions).read_text()) if r.get("landmarks")]
    else:
        from device.config import load_config
        from device.gate.front_end_stage import front_end_from_config
        from device.vision.quality import QualityIssue
        fe = front_end_from_config(load_config(None), check_quality=False)[0]
        recs = []
        for p in list_images(root, "synthetic"):
            try:
                reg = fe(read_hand_image(p))
            except QualityIssue:
                continue
            if reg.landmarks is not None:
                recs.append((p, reg.landmarks[:, :2]))
    out = []
    for p, lm in recs:
        j = p.with_suffix(".json")
        if not j.exists():
            continue
        gt = json.loads(j.read_text())
        vis = gt.get("visible", {}).get("valleys", [True] * 4)
        out.append((p, lm, np.array(gt["valleys"], np.float64), np.array(vis, bool)))
    return out


def fit(data: list[tuple], ridge: float = 1e-4) -> np.ndarray:
    """(4, 13, 2) least squares with a ridge (not on the bias) of each valley's (u, n)."""
    W = []
    for k in range(4):
        A, T = [], []
        for _, lm, gt, vis in data:
            if not vis[k]:
                continue
            f = palm_frame(lm)
            a, origin, R = valley_features(lm, k, f)
            A.append(a)
            T.append((gt[k] - origin) @ R.T / f.width)
        A, T = np.array(A), np.array(T)
        reg = ridge * len(A) * np.eye(A.shape[1])
        reg[0, 0] = 0
        W.append(np.linalg.solve(A.T @ A + reg, A.T @ T))
    return np.array(W)


def errors(data: list[tuple], W: np.ndarray) -> dict:
    res: dict = {}
    cpu: list = []
    for name in ("fixed_offsets", "regression", "regression_refined"):
        fingers, thumb = [], []
        for p, lm, gt, vis in data:
            if name == "fixed_offsets":
                v = estimate_valleys(lm)
            elif name == "regression":
                v = regress_valleys(lm, model=W)
            else:
                import device.vision.landmark_valleys as lv
                saved, lv.VALLEY_REGRESSION = lv.VALLEY_REGRESSION, W
                try:
                    im = read_hand_image(p)
                    c0 = time.thread_time()
                    v = landmark_valleys(im, lm)
                    cpu.append((time.thread_time() - c0) * 1e3)
                finally:
                    lv.VALLEY_REGRESSION = saved
            for k in range(4):
                if vis[k]:
                    (fingers if k < 3 else thumb).append(float(np.hypot(*(v[k] - gt[k]))))
        res[name] = {"finger_valleys": [round(float(np.median(fingers)), 2),
                                        round(float(np.percentile(fingers, 95)), 2)],
                     "thumb_index": [round(float(np.median(thumb)), 2),
                                     round(float(np.percentile(thumb, 95)), 2)]}
    res["landmark_valleys_cpu_ms"] = {"median": round(float(np.median(cpu)), 3),
                                      "p95": round(float(np.percentile(cpu, 95)), 3)}
    return res


def as_python(W: np.ndarray) -> str:
    """The table as Python source, lines under 100 characters."""
    out = ["VALLEY_REGRESSION = ("]
    for w in W:
        pairs = [f"[{a:.4f}, {b:.4f}]" for a, b in w]
        rows = [", ".join(pairs[i:i + 4]) for i in range(0, len(pairs), 4)]
        out.append("    np.array([" + (",\n" + " " * 14).join(rows) + "]),")
    return "\n".join(out + [")"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fit_valley_model", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--regions")
    ap.add_argument("--ridge", type=float, default=1e-4)
    ap.add_argument("--check", action="append", default=[])
    ap.add_argument("--check-regions", action="append", default=[])
    a = ap.parse_args(argv)
    data = collect(Path(a.dir), a.regions)
    if len(data) < 20:
        ap.error(f"only {len(data)} views with landmarks and ground truth under {a.dir}")
    W = fit(data, a.ridge)
    print(as_python(W))
    print(json.dumps({"fit": {"dir": a.dir, "views": len(data), **errors(data, W)}}))
    for i, d in enumerate(a.check):
        r = a.check_regions[i] if i < len(a.check_regions) else None
        cd = collect(Path(d), r)
        print(json.dumps({"check": {"dir": d, "views": len(cd), **errors(cd, W)}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
