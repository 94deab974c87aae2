"""X-ray phantoms: a material cue? Measures classical soft-tissue cues of the 128x128 X-ray
capture, to see whether any of them tells a radiographic hand phantom
(``skeleton_phantom``, :func:`device.synth.attacks_composite.skeleton_phantom_scene`: donor
bones in one homogeneous resin, a moulded flatter thickness profile, sometimes steel wire at
the joints) from a live hand (docs/results.md, "X-ray phantoms: a material cue"). A
measurement only: nothing here is used by the gate.

The hand and the exposed field are the binding's (:func:`device.gate.binding_silhouette.
sensor_hand_and_field`); the frame is put on a soft-tissue scale by :func:`tissue_scale`
(background 0, the soft tissue's plateau 1). The bones are the frame's narrow bright ridges
(:func:`bone_mask`: a white top-hat wider than a phalanx, narrower than a finger). Cues, each
a pure function of the scaled frame and the masks:

- :func:`edge_rise`: the soft tissue (bones out) 2-3 px inside the outline against the
  plateau 4-7 px in (first 1-2 against 3-6: the silhouette's blurred cut takes in one ring of
  background where the edge is steep, so a steep edge read 0; drawn frames,
  tests/test_xray_material.py): a live finger's rounded section rises slowly from its edge, the moulded
  resin's flatter one quickly (phantom: higher);
- :func:`palm_residual`: the spread (IQR) of the smoothed soft tissue deep inside the hand
  (>= :data:`DEEP_PX` from the outline, bones out), after a plane is taken off: live tissue's
  inhomogeneity against one homogeneous resin (phantom: lower);
- :func:`wire_peak`: the brightest small spot (a 3x3 top-hat) inside the hand: a steel wire
  through a joint (phantom: higher);
- :func:`finger_palm`: the fingers' soft tissue (bones out) over the palm's: a live finger is
  thinner than the palm slab, the moulded resin (``min(3T, palm)`` blended in) brings the
  fingers' thickness up toward the palm's (phantom: higher; added after the first three were
  measured, its side written before its numbers were read).

:func:`refused_at` is the fraction of attacks beyond a threshold that lets at most ``allowed``
bona fide presentations beyond it. Run::

    python -m device.eval.xray_material /tmp/padjoint/margins_xray_9317_int8.json \
        --out /tmp/xmat/cues_9317.json
    python -m device.eval.xray_material SET_FOLDER --classes bona_fide skeleton_phantom \
        --out cues.json             # a set without check_margins: no "passes every check"
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from device.gate.binding_silhouette import sensor_hand_and_field

DEEP_PX = 4
"""Deep inside the hand: at least this far (px) from the outline (the tissue's full
thickness)."""

BONE_OPEN_PX = 9
"""The bone mask's top-hat: an opening this wide (px) removes the bones, keeps the fingers."""

BONE_LEVEL = 0.08
"""A bone pixel stands this far (soft-tissue scale) above the opened frame."""

CUES = {"edge_rise": "high", "palm_residual": "low", "wire_peak": "high", "finger_palm": "high"}
"""Each cue and the side a phantom is expected on (written before the numbers were read)."""


def tissue_scale(g: np.ndarray, hand: np.ndarray, field: np.ndarray) -> np.ndarray | None:
    """The frame (float) on a soft-tissue scale: 0 the background (median of the field more
    than 3 px off the hand), 1 the hand's median. None when either is empty or flat."""
    g = g.astype(np.float32)
    near = cv2.dilate(hand.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    bg_px = g[field & ~near]
    if hand.sum() < 50 or bg_px.size < 50:
        return None
    bg, top = float(np.median(bg_px)), float(np.median(g[hand]))
    if top - bg < 4:
        return None
    return (g - bg) / (top - bg)


def inside_distance(hand: np.ndarray) -> np.ndarray:
    """Distance (px) of each hand pixel to the outline (0 outside)."""
    return cv2.distanceTransform(hand.astype(np.uint8), cv2.DIST_L2, 5)


def bone_mask(s: np.ndarray, hand: np.ndarray) -> np.ndarray:
    """bool: the bones (and one pixel around them) -- where the scaled frame stands
    :data:`BONE_LEVEL` above its opening by a :data:`BONE_OPEN_PX` disc, inside the hand."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (BONE_OPEN_PX, BONE_OPEN_PX))
    th = s - cv2.morphologyEx(s.astype(np.float32), cv2.MORPH_OPEN, k)
    b = ((th > BONE_LEVEL) & hand).astype(np.uint8)
    return cv2.dilate(b, np.ones((3, 3), np.uint8)) > 0


def edge_rise(s: np.ndarray, d: np.ndarray, soft: np.ndarray) -> float:
    """Median soft tissue at 2-3 px inside the outline over the median at 4-7 px (NaN when
    either ring has under 20 pixels)."""
    a, b = s[soft & (d >= 2) & (d < 3)], s[soft & (d >= 4) & (d < 7)]
    if a.size < 20 or b.size < 20 or np.median(b) <= 0:
        return float("nan")
    return float(np.median(a) / np.median(b))


def palm_residual(s: np.ndarray, d: np.ndarray, soft: np.ndarray, sigma: float = 1.5
                  ) -> float:
    """IQR of the soft tissue deep in the hand (``d >= DEEP_PX``, bones out), smoothed by
    ``sigma`` px (quantum noise down; bone pixels filled by the soft tissue's normalised
    blur), after a least-squares plane (the heel ramp) is taken off. NaN under 30 pixels."""
    w = soft.astype(np.float32)
    num = cv2.GaussianBlur(s * w, (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    sm = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0)
    m = soft & (d >= DEEP_PX)
    if m.sum() < 30:
        return float("nan")
    y, x = np.nonzero(m)
    v = sm[m]
    A = np.c_[x, y, np.ones_like(x)].astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, v, rcond=None)
    r = v - A @ coef
    q75, q25 = np.percentile(r, [75, 25])
    return float(q75 - q25)


def wire_peak(s: np.ndarray, hand: np.ndarray) -> float:
    """The 99.9th percentile (the brightest few pixels) of a 3x3 white top-hat inside the
    hand, eroded by one pixel (the outline's step out)."""
    th = s - cv2.morphologyEx(s.astype(np.float32), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    inner = cv2.erode(hand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    v = th[inner]
    return float(np.percentile(v, 99.9)) if v.size else float("nan")


PALM_OPEN_PX = 15
"""The palm: the hand opened by a disc this wide (px) -- wider than a finger."""


def finger_palm(s: np.ndarray, hand: np.ndarray, soft: np.ndarray) -> float:
    """Median soft tissue of the fingers (the hand less its :data:`PALM_OPEN_PX` opening, one
    pixel in from the outline) over that of the palm (the opening, eroded by 2 px); NaN under
    20 pixels either."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (PALM_OPEN_PX, PALM_OPEN_PX))
    h8 = hand.astype(np.uint8)
    palm = cv2.morphologyEx(h8, cv2.MORPH_OPEN, k) > 0
    inner = cv2.erode(h8, np.ones((3, 3), np.uint8)) > 0
    fingers = inner & ~palm & soft
    core = (cv2.erode(palm.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & soft
    if fingers.sum() < 20 or core.sum() < 20 or np.median(s[core]) <= 0:
        return float("nan")
    return float(np.median(s[fingers]) / np.median(s[core]))


def frame_cues(frame: np.ndarray) -> dict:
    """Every cue of one X-ray capture (NaN where the hand cannot be scaled)."""
    hand, field = sensor_hand_and_field(frame, "xray")
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    s = tissue_scale(g, hand, field)
    if s is None:
        return {k: float("nan") for k in CUES}
    d = inside_distance(hand)
    soft = hand & ~bone_mask(s, hand)
    return {"edge_rise": edge_rise(s, d, soft), "palm_residual": palm_residual(s, d, soft),
            "wire_peak": wire_peak(s, hand), "finger_palm": finger_palm(s, hand, soft)}


def deny_threshold(bona: np.ndarray, side: str, allowed: int) -> float:
    """The threshold beyond which at most ``allowed`` of the bona fide values lie (``side``
    "high": values above it are denied; "low": below it). NaN values are ignored."""
    v = np.sort(np.asarray(bona, float)[np.isfinite(bona)])
    if side == "high":
        return float(v[-1 - allowed]) if allowed < v.size else float("-inf")
    return float(v[allowed]) if allowed < v.size else float("inf")


def refused_at(values: np.ndarray, t: float, side: str) -> int:
    """How many of ``values`` lie beyond ``t`` on ``side`` (NaN: not refused)."""
    v = np.asarray(values, float)
    return int(np.sum(v > t) if side == "high" else np.sum(v < t))


def quantiles(v) -> dict:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {}
    q = np.quantile(v, [0, .001, .005, .5, .995, .999, 1])
    return dict(zip(("min", "q0.1", "q0.5", "median", "q99.5", "q99.9", "max"),
                    np.round(q, 4).tolist()))


def summarise(rows: list, others: dict, fixed: dict | None = None) -> dict:
    """Per cue: the bona fide quantiles; the thresholds denying <= 1 and <= 5 of the bona fide
    (``deny1``, ``deny5``; with ``fixed`` -- another set's summary -- that set's thresholds
    instead, to see them carried over); per class the quantiles and how many each refuses
    (the bona fide row: how many live hands it denies), and for ``others`` (name -> indices of
    rows, e.g. the phantoms passing every other check) the same counts."""
    out = {}
    bona = [r for r in rows if r["class"] == "bona_fide"]
    for cue, side in CUES.items():
        bv = np.array([r[cue] for r in bona], float)
        t1, t5 = deny_threshold(bv, side, 1), deny_threshold(bv, side, 5)
        if fixed is not None:
            t1, t5 = fixed[cue]["deny1"], fixed[cue]["deny5"]
        c = {"side": side, "bona_fide": quantiles(bv), "deny1": t1, "deny5": t5,
             "bona_fide_nan": int(np.sum(~np.isfinite(bv))), "classes": {}}
        groups = {k: [r for r in rows if r["class"] == k]
                  for k in dict.fromkeys(r["class"] for r in rows)}
        groups.update({k: [rows[i] for i in ix] for k, ix in others.items()})
        for k, rs in groups.items():
            v = np.array([r[cue] for r in rs], float)
            c["classes"][k] = {"n": len(rs), "q": quantiles(v),
                               "nan": int(np.sum(~np.isfinite(v))),
                               "refused_deny1": refused_at(v, t1, side),
                               "refused_deny5": refused_at(v, t5, side)}
        out[cue] = c
    return out


def set_rows(source: str) -> tuple[list, dict | None]:
    """(rows: class, folder and, from a check_margins file, its row; thresholds or None) of
    ``source``: a :mod:`device.eval.check_margins` output (.json) or a rendered set's folder
    (its manifest's presentations, no check's values)."""
    if source.endswith(".json"):
        m = json.load(open(source))
        return m["rows"], m["thresholds"]
    man = json.load(open(f"{source}/manifest.json"))
    return [{"class": f["class"], "folder": f"{source}/{f['folder']}"}
            for f in man["files"]], None


def main(argv=None) -> None:
    from device.eval.check_margins import passes
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", help="check_margins output of an X-ray set (its rows and "
                    "thresholds; the frames are read from each row's folder) or a set folder")
    ap.add_argument("--classes", nargs="*", help="only these classes (default all)")
    ap.add_argument("--thresholds", help="another run's output: count at its thresholds")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    fixed = json.load(open(a.thresholds))["summary"] if a.thresholds else None
    src, th = set_rows(a.source)
    rows = []
    for r in src:
        if a.classes and r["class"] not in a.classes:
            continue
        f = cv2.imread(f"{r['folder']}/sensor.png", cv2.IMREAD_UNCHANGED)
        row = {"class": r["class"], "folder": r["folder"], **frame_cues(f)}
        if th is not None:
            p = passes(r, th)
            row.update(pass_all=all(p.values()), pass_but_identity=all(
                v for k, v in p.items() if k != "identity"))
        rows.append(row)
    sk = [i for i, r in enumerate(rows) if r["class"] == "skeleton_phantom"]
    others = {} if th is None else {
        "skeleton_phantom_pass_but_identity": [i for i in sk if rows[i]["pass_but_identity"]],
        "skeleton_phantom_pass_all": [i for i in sk if rows[i]["pass_all"]]}
    out = {"source": a.source, "thresholds_from": a.thresholds,
           "summary": summarise(rows, others, fixed), "rows": rows}
    json.dump(out, open(a.out, "w"), indent=1)
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
