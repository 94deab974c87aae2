"""A classical baseline beside the learned phantom detector (a measurement only, issue 21;
docs/results.md "A learned X-ray phantom detector"): a few hundred multi-scale texture
statistics of the 128x128 X-ray capture, and a logistic regression over them
(``tools.train.phantom_texture`` fits it; nothing here is used by the gate).

:func:`texture_features` (pure): the frame on the soft-tissue scale of
:mod:`device.eval.xray_material` (background 0, hand median 1; its silhouette, bone mask and
inside distance), then for each band of a difference of Gaussians (sigma
:data:`SIGMAS`, each against twice it) and the gradient magnitude, eight statistics (std,
mean |x|, the 1/10/50/90/99th percentiles, kurtosis) over three regions (the whole hand 1 px
in, the soft tissue without the bones, the deep soft tissue >= 4 px in), the scaled level's
percentiles over the hand and the soft tissue, the four material cues, and the hand's share
of the frame. NaN (a hand that cannot be scaled, a region too small) is the caller's to fill.

    python -m device.eval.phantom_texture /tmp/padjoint/margins_xray_9317_int8.json \
        --weights /tmp/phnet/texture/weights.json --out texture_9317.json
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from device.eval import xray_material as X
from device.gate.binding_silhouette import sensor_hand_and_field

SIGMAS = (0.6, 1.0, 1.6, 2.5, 4.0)
STATS = ("std", "mean_abs", "p1", "p10", "p50", "p90", "p99", "kurt")
REGIONS = ("hand", "soft", "deep")
LEVELS = (1, 5, 10, 25, 50, 75, 90, 95, 99)
MIN_PX = 30


def region_stats(v: np.ndarray) -> list[float]:
    """:data:`STATS` of the values ``v`` (NaN under :data:`MIN_PX`)."""
    if v.size < MIN_PX:
        return [float("nan")] * len(STATS)
    v = v.astype(np.float64)
    sd = float(v.std())
    p = np.percentile(v, [1, 10, 50, 90, 99])
    k = float(np.mean((v - v.mean()) ** 4) / sd ** 4) if sd > 0 else 0.0
    return [sd, float(np.abs(v).mean()), *map(float, p), k]


def feature_names() -> list[str]:
    names = [f"dog{s}_{r}_{t}" for s in SIGMAS for r in REGIONS for t in STATS]
    names += [f"grad_{r}_{t}" for r in REGIONS for t in STATS]
    names += [f"level_{r}_p{q}" for r in ("hand", "soft") for q in LEVELS]
    return names + list(X.CUES) + ["hand_share"]


def texture_features(frame: np.ndarray) -> np.ndarray:
    """The baseline's features of one X-ray capture (uint8 128x128), in
    :func:`feature_names`' order; all NaN but the hand share where the hand cannot be
    scaled."""
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    hand, field = sensor_hand_and_field(g, "xray")
    n = len(feature_names())
    out = np.full(n, np.nan)
    out[-1] = float(hand.mean())
    s = X.tissue_scale(g, hand, field)
    if s is None:
        return out
    d = X.inside_distance(hand)
    soft = hand & ~X.bone_mask(s, hand)
    masks = {"hand": hand & (d >= 1), "soft": soft & (d >= 1), "deep": soft & (d >= X.DEEP_PX)}
    vals: list[float] = []
    for sg in SIGMAS:
        band = cv2.GaussianBlur(s, (0, 0), sg) - cv2.GaussianBlur(s, (0, 0), 2 * sg)
        for r in REGIONS:
            vals += region_stats(band[masks[r]])
    gx, gy = cv2.Sobel(s, cv2.CV_32F, 1, 0), cv2.Sobel(s, cv2.CV_32F, 0, 1)
    gm = np.hypot(gx, gy)
    for r in REGIONS:
        vals += region_stats(gm[masks[r]])
    for r in ("hand", "soft"):
        v = s[masks[r]]
        vals += (np.percentile(v, LEVELS).tolist() if v.size >= MIN_PX
                 else [float("nan")] * len(LEVELS))
    vals += [X.edge_rise(s, d, soft), X.palm_residual(s, d, soft), X.wire_peak(s, hand),
             X.finger_palm(s, hand, soft)]
    out[:-1] = vals
    return out


def standardise(feats: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(features - mean) / scale, NaN -> 0 (the training mean), clipped to +-8."""
    z = (np.asarray(feats, np.float64) - mean) / scale
    return np.clip(np.nan_to_num(z, nan=0.0, posinf=8.0, neginf=-8.0), -8.0, 8.0)


def logistic_score(feats: np.ndarray, weights: dict) -> np.ndarray:
    """p(phantom) of feature rows under a fitted model (``mean``, ``scale``, ``w``, ``b``)."""
    z = standardise(feats, np.asarray(weights["mean"]), np.asarray(weights["scale"]))
    return 1.0 / (1.0 + np.exp(-(z @ np.asarray(weights["w"]) + float(weights["b"]))))


def main(argv=None) -> None:
    from device.eval.phantom_detector import pass_flags
    from device.eval.phantom_detector import summarise, useful
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", help="check_margins output (.json) or a set folder")
    ap.add_argument("--margins", help="with a set folder: a check_margins output of some of it")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--thresholds", help="another run's output: its deny1")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    src, th = X.set_rows(a.source)
    flags = {}
    if a.margins:
        m = json.load(open(a.margins))
        th, flags = m["thresholds"], {r["folder"]: r for r in m["rows"]}
    w = json.load(open(a.weights))
    rows = []
    for r in src:
        row = {"class": r["class"], "folder": r["folder"], **pass_flags(r, flags, th)}
        f = cv2.imread(f"{r['folder']}/sensor.png", cv2.IMREAD_UNCHANGED)
        row["p_texture"] = float(logistic_score(texture_features(f)[None], w)[0])
        rows.append(row)
    fixed = json.load(open(a.thresholds))["summary"]["deny1"] if a.thresholds else None
    s = summarise(rows, "p_texture", fixed)
    s["useful"] = useful(s)
    json.dump({"source": a.source, "weights": a.weights, "summary": s, "rows": rows},
              open(a.out, "w"), indent=1)
    print(json.dumps(s, indent=1))


if __name__ == "__main__":
    main()
