"""Re-quantise the shipped fp32 hand-landmark network to int8 without MediaPipe, and measure how
far each int8 file's landmarks lie from the fp32 network's on the gate's own views.

``tools.convert_landmarks`` calibrates on MediaPipe's crops of NTUST photos (it needs the
``landmarks`` extra). Here the fp32 network itself gives the crops: for each calibration image
its whole-frame crop and the crop of the fp32 network's refined landmarks
(:class:`device.vision.landmarks.Landmarker`, the gate's two-pass crop); images are NTUST
ntust-hp (as shipped) and, with ``--synthetic-seed``, colour views of synthetic training people
(:class:`device.synth.source.SyntheticPeople`, the gate's synthetic domain). The quantiser is
:func:`tools.convert_landmarks.quantize` (its ``method`` and ``float_convs`` options)::

    python -m tools.landmarks_requant --out DIR [--synthetic-seed 1001 --synthetic-people 40]
        [--calibrate minmax|percentile|entropy] [--float-convs K] [--check SET ...]

``--check``: presentation sets whose views (view_*.png) are detected by the fp32 file, today's
int8 file and the new one; the report gives the median distance (px of the view) of each int8
file's landmarks to the fp32 ones and the crop latency.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from device.vision.landmarks import Landmarker, crop_from_landmarks, frame_crop, to_rgb_input
from tools.convert_landmarks import (CALIBRATION, crop_cpu_ms, gate_crops, list_images, quantize,
                                     session_fn)
from tools.paths import MODELS_DIR, real_dir


def calibration_crops(images, fp32_path: Path) -> list[np.ndarray]:
    """Each image's whole-frame crop and the crop of the fp32 network's landmarks."""
    lmk = Landmarker(session=session_fn(fp32_path))
    out = []
    for im in images:
        out.append(to_rgb_input(frame_crop(im.shape).warp(im)))
        d = lmk.detect(im, gate_crops(im.shape))
        if d is not None:
            out.append(to_rgb_input(crop_from_landmarks(d.points).warp(im)))
    return out


def synthetic_views(seed: int, people: int, sensor: str = "xray") -> list[np.ndarray]:
    """The colour views of one genuine presentation of each of ``people`` synthetic people."""
    from device.synth.source import SyntheticPeople
    sp = SyntheticPeople(seed=seed, views=3, sensor=sensor)
    return [v for i in range(people) for v in sp.burst(i, "genuine", 0).views]


def view_folders(sets, per_set: int) -> list[Path]:
    """``per_set`` presentations of each set, evenly spaced over all of its presentations
    (every class folder: ``bona_fide/NNNNN``, ``attack/<species>/NNNNN``)."""
    out = []
    for s in sets:
        folders = sorted(p.parent for p in Path(s).rglob("view_0.png"))
        step = max(1, len(folders) // per_set)
        out += folders[::step][:per_set]
    return out


def view_images(sets, per_set: int) -> list[np.ndarray]:
    """The views of :func:`view_folders`' presentations."""
    return [cv2.imread(str(v)) for f in view_folders(sets, per_set)
            for v in sorted(f.glob("view_*.png"))]


def distance_to_fp32(paths: dict, fp32_path: Path, images) -> dict:
    """Per file of ``paths``: median (and q90) over the views of the mean landmark distance
    (view px) to the fp32 network's, both through the gate's two-pass crop; views where only
    one of the two found a hand; median CPU ms per crop (one thread)."""
    ref = Landmarker(session=session_fn(fp32_path))
    refs = [ref.detect(im, gate_crops(im.shape)) for im in images]
    out = {}
    for name, p in paths.items():
        run = session_fn(p)
        lmk = Landmarker(session=run)
        d, one_only = [], 0
        for im, r in zip(images, refs):
            x = lmk.detect(im, gate_crops(im.shape))
            if (x is None) != (r is None):
                one_only += 1
            elif x is not None:
                d.append(float(np.mean(np.hypot(*(x.points[:, :2] - r.points[:, :2]).T))))
        out[name] = {"views": len(images), "median_px": round(float(np.median(d)), 3),
                     "q90_px": round(float(np.quantile(d, 0.9)), 3), "found_by_one": one_only,
                     "cpu_ms_per_crop": crop_cpu_ms(run, 40),
                     "bytes": Path(p).stat().st_size}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.landmarks_requant",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=str(MODELS_DIR))
    ap.add_argument("--out", required=True, help="folder for hand_landmark_int8.onnx")
    ap.add_argument("--calibrate", choices=CALIBRATION, default="minmax")
    ap.add_argument("--float-convs", type=int, default=0)
    ap.add_argument("--synthetic-seed", type=int, default=None)
    ap.add_argument("--synthetic-people", type=int, default=40)
    ap.add_argument("--no-ntust", action="store_true", help="synthetic views only")
    ap.add_argument("--check", nargs="*", default=[])
    ap.add_argument("--check-per-set", type=int, default=150)
    a = ap.parse_args(argv)
    if a.no_ntust and a.synthetic_seed is None:
        ap.error("--no-ntust needs --synthetic-seed: there is nothing to calibrate on")
    if a.check and not view_folders(a.check, a.check_per_set):
        ap.error(f"no presentation views (view_*.png) under {a.check}")
    models, out = Path(a.models), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = models / "hand_landmark.onnx"
    images = [] if a.no_ntust else [cv2.imread(str(p)) for p in
                                    list_images(real_dir("ntust") / "ntust-hp")]
    if a.synthetic_seed is not None:
        images += synthetic_views(a.synthetic_seed, a.synthetic_people)
    t = time.time()
    frames = calibration_crops(images, fp32)
    print(f"{len(frames)} calibration crops of {len(images)} images", file=sys.stderr)
    int8 = out / "hand_landmark_int8.onnx"
    quantize(fp32, int8, frames, a.calibrate, a.float_convs)
    rep = {"calibration_crops": len(frames), "images": len(images),
           "calibrate": a.calibrate, "float_convs": a.float_convs,
           "synthetic_seed": a.synthetic_seed, "seconds": round(time.time() - t, 1)}
    if a.check:
        rep["to_fp32"] = distance_to_fp32({"shipped_int8": models / "hand_landmark_int8.onnx",
                                           "new_int8": int8, "fp32": fp32}, fp32,
                                          view_images(a.check, a.check_per_set))
    (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
    print(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
