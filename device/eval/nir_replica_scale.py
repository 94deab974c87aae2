"""NIR: a larger replica under the sensor -- cues of the sensor hand's size against the views'.

A measurement, not a gate change (docs/results.md, "NIR: a larger replica under the sensor").
The NIR binding's outline score (:func:`device.gate.sensor_binding.binding_score`) is 0 for a
replica of the victim's palm 1.1-1.25 times larger than life under the NIR sensor: the probe
ranges fitted on live hands (whose fingertips fade in the NIR frame) contain the larger hand,
and the size search adds nothing when the score at size 1 is already 0. Two cues of the
sensor hand's size relative to the views' hand, from the binding's own probes and silhouette:

- :func:`best_size` (cue ``size``): the size ``x`` of the views' hand (scaled about its palm,
  :meth:`~device.gate.sensor_binding.HandProbes.at_scale`) that minimises an unclipped,
  untrimmed misfit (:func:`misfit`: the mean absolute difference from the live hands' median
  value) of the probes beyond the palm's sides (``size_tips``: and beyond the fingertips,
  which lie outside the NIR field on live hands, :func:`edge_probes`), on a fine grid
  (:data:`GRID`);
- :func:`chord_ratio` (cue ``width``): the sensor silhouette's width across the palm
  (a chord parallel to the knuckles' line, :data:`CHORD_AT` of the way from the knuckles'
  middle to the wrist) over the views' knuckle span (landmarks 5-17) carried into the frame.

``python -m device.eval.nir_replica_scale SET --out rows.npz`` measures a set (bona fide and
``mixed_replica_sensor``, the views' landmarks found as the gate finds them, no enrolment);
``--summarise rows.npz`` prints the cues' live quantiles and the attacks by variant and scale.
The pure functions are :func:`misfit`, :func:`best_size`, :func:`chord_length`,
:func:`chord_ratio` and :func:`summarise`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

GRID = tuple(float(x) for x in np.exp(np.linspace(np.log(0.6), np.log(1.6), 99)))
"""The sizes (0.6-1.6 times, log-spaced, about 1 % apart) the views' hand is tried at."""

CHORD_AT = (0.15, 0.3, 0.45)
"""Where across the palm the silhouette's width is read: this fraction of the way from the
knuckles' (landmarks 5 and 17) middle toward the wrist (landmark 0)."""

CLASSES = ("bona_fide", "mixed_replica_sensor")


def edge_probes(tips: bool = False) -> np.ndarray:
    """(P + 1,) bool: the probes beyond the palm's sides (``tips``: and beyond the
    fingertips); the last value, the height, is not a probe. The fingertip probes lie outside
    the NIR frame's field (NaN) on nearly every live hand at size 1 and enter it only at
    smaller sizes, so a misfit over them compares different probes at different sizes."""
    from device.gate.binding_geometry import probe_names
    pre = ("tip", "side") if tips else ("side",)
    return np.array([s.startswith(pre) for s in probe_names()] + [False])


def misfit(values: np.ndarray, target: np.ndarray, use: np.ndarray) -> np.ndarray:
    """(..., ) the mean absolute difference (mm, unclipped) of ``values`` (..., P + 1) from
    ``target`` (P + 1,) over the probes ``use`` that are finite in both; NaN where none is."""
    v = np.asarray(values, np.float64)[..., use]
    t = np.asarray(target, np.float64)[use]
    d = np.abs(v - t)
    ok = np.isfinite(d)
    n = ok.sum(-1)
    s = np.where(ok, d, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def best_size(by_size: np.ndarray, grid, target: np.ndarray, use: np.ndarray) -> float:
    """The size of ``grid`` whose probe values (``by_size`` (len(grid), P + 1)) fit ``target``
    best (:func:`misfit`); NaN when no size has a finite misfit. Ties: the first."""
    m = misfit(by_size, target, use)
    if not np.isfinite(m).any():
        return float("nan")
    return float(np.asarray(grid, float)[int(np.nanargmin(m))])


def chord_length(mask: np.ndarray, point, direction, step: float = 0.5) -> float:
    """The length (px) of ``mask``'s run through ``point`` along ``direction`` (both ways,
    ``step`` px steps, nearest pixel); 0 when ``point`` is outside the mask or not finite."""
    p = np.asarray(point, float)
    d = np.asarray(direction, float)
    nd = float(np.hypot(*d))
    if not (np.all(np.isfinite(p)) and np.isfinite(nd) and nd > 0):
        return 0.0
    d = d / nd
    h, w = mask.shape

    def inside(q):
        x, y = int(round(q[0])), int(round(q[1]))
        return 0 <= x < w and 0 <= y < h and bool(mask[y, x])
    if not inside(p):
        return 0.0
    run = 0.0
    for sgn in (1.0, -1.0):
        t = step
        while inside(p + sgn * t * d):
            t += step
        run += t - step
    return run


def chord_ratio(mask: np.ndarray, lm: np.ndarray, at: float) -> float:
    """The silhouette's width across the palm, parallel to the knuckles' line (landmarks 5 ->
    17), ``at`` of the way from their middle toward the wrist (landmark 0), over the knuckles'
    span |17 - 5| (the views' hand carried into the frame); NaN without a span."""
    lm = np.asarray(lm, float)
    a, b, w = lm[5], lm[17], lm[0]
    span = float(np.hypot(*(b - a)))
    if not (np.isfinite(span) and span > 0 and np.all(np.isfinite(w))):
        return float("nan")
    m = (a + b) / 2
    return chord_length(mask, m + at * (w - m), b - a) / span


def quantiles(v) -> dict:
    """n, median and the 0.1 / 0.5 / 99.5 / 99.9 % quantiles of the finite values."""
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"n": 0}
    q = np.quantile(v, [0.001, 0.005, 0.5, 0.995, 0.999])
    return {"n": int(len(v)), **dict(zip(("q0.1", "q0.5", "median", "q99.5", "q99.9"),
                                         np.round(q, 4).tolist()))}


def live_threshold(live, upper: bool = True, allow: int = 1) -> float:
    """The least threshold (``upper``: refuse above it; else below) that refuses at most
    ``allow`` of the live values (a value not measured counts as refused)."""
    v = np.sort(np.asarray(live, float))
    bad = int((~np.isfinite(v)).sum())
    v = v[np.isfinite(v)]
    k = max(0, allow - bad)
    if k >= len(v):
        return float("inf") if upper else float("-inf")
    return float(v[::-1][k]) if upper else float(v[k])


def summarise(rows: dict, cues: dict, allows=(1, 10, 50)) -> dict:
    """Per cue (name -> ((N,) values, ``upper``)): the live quantiles and, for each of
    ``allows`` (live hands of the bona fide rows the threshold may refuse: 1 = at most 1 in
    1,000 of a 1,000-hand set), the least threshold refusing at most that many on the cue's
    side (``upper``: above it), how many live hands it refuses, and per attack group
    (``variant``; the ``scale`` variant split at 1) n and how many it refuses (a value not
    measured is refused); the ``scale`` groups also list (scale, value) of each presentation.
    ``rows``: ``cls``, ``variant``, ``scale`` arrays."""
    cls, var, sc = (np.asarray(rows[k]) for k in ("cls", "variant", "scale"))
    live = cls == "bona_fide"
    out = {}
    for name, (v, upper) in cues.items():
        v = np.asarray(v, float)
        res: dict = {"live": quantiles(v[live]), "side": ">" if upper else "<"}
        for allow in allows:
            t = live_threshold(v[live], upper, allow)
            refused = ~np.isfinite(v) | ((v > t) if upper else (v < t))
            groups = {}
            for g in sorted(set(var[~live].tolist())):
                sel = ~live & (var == g)
                parts = [(g, sel)] if g != "scale" else [("scale<1", sel & (sc < 1)),
                                                          ("scale>1", sel & (sc > 1))]
                for k, s in parts:
                    groups[k] = {"n": int(s.sum()), "refused": int(refused[s].sum())}
            res[f"allow_{allow}"] = {"threshold": round(t, 4),
                                     "live_refused": int(refused[live].sum()),
                                     "attacks": groups}
        for k, s in (("scale<1", ~live & (var == "scale") & (sc < 1)),
                     ("scale>1", ~live & (var == "scale") & (sc > 1))):
            res[k] = [[round(float(a), 3), round(float(b), 4)]
                      for a, b in sorted(zip(sc[s], v[s]))]
        out[name] = res
    return out


# ------------------------------------------------------------------------------ measuring
def measure(data_dir, classes=CLASSES, per_class=None, log=print) -> dict:
    """Per presentation: class, variant, scale, the outline score, the probe values at each
    size of :data:`GRID` (S, P + 1) and the silhouette's palm width ratios (:data:`CHORD_AT`)."""
    import torch
    torch.set_num_threads(1)
    from device.eval.liveness_enrol import set_plan
    from device.eval.synthetic_gate import synthetic_gate
    from device.gate.binding_silhouette import sensor_hand_and_field
    from device.sources.replay import read_burst
    info, plan = set_plan(data_dir, list(classes), per_class)
    rows: dict = {k: [] for k in ("cls", "variant", "scale", "folder", "score", "by_size",
                                  "width")}
    t0 = time.time()
    with synthetic_gate(info["seed"], info["views"], "int8", "nir", 1) as (pipe, _):
        for i, (c, folder) in enumerate(plan):
            meta = json.loads((Path(folder) / "burst.json").read_text())
            b = pipe.calibrate(read_burst(folder))
            lms: dict = {}
            pipe.regions(b.views, None, None, None, lms)
            bd = pipe.binding.score(b.views, b.sensor, lms)
            m = bd.probes
            if m is None or m.sdf is None:
                by = np.full((len(GRID), len(edge_probes())), np.nan)
                wid = [np.nan] * len(CHORD_AT)
            else:
                by = np.stack([m.at_scale(x) for x in GRID])
                sil, _ = sensor_hand_and_field(b.sensor, "nir")
                wid = [chord_ratio(sil, m.landmarks, a) for a in CHORD_AT]
            for k, v in (("cls", c), ("variant", meta.get("variant", "")),
                         ("scale", float(meta.get("scale", 1.0))), ("folder", str(folder)),
                         ("score", float(bd.score)), ("by_size", by), ("width", wid)):
                rows[k].append(v)
            if (i + 1) % 100 == 0:
                log(f"{i + 1}/{len(plan)} {time.time() - t0:.0f} s")
    return {k: np.asarray(v) for k, v in rows.items()}


def cues_of(rows: dict) -> dict:
    """The cues of measured ``rows``: ``size`` (:func:`best_size` over the palm sides' probes;
    ``size_tips``: and the fingertips'; the target the bona fide rows' median probe values at
    size 1) and ``width@f`` (:func:`chord_ratio`), each refused above the live hands'."""
    by = np.asarray(rows["by_size"], float)
    live = np.asarray(rows["cls"]) == "bona_fide"
    one = int(np.argmin(np.abs(np.log(GRID))))
    target = np.nanmedian(by[live, one], axis=0)
    out = {}
    for name, tips in (("size", False), ("size_tips", True)):
        use = edge_probes(tips)
        out[name] = (np.array([best_size(b, GRID, target, use) for b in by]), True)
    for j, a in enumerate(CHORD_AT):
        out[f"width@{a:g}"] = (np.asarray(rows["width"], float)[:, j], True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.nir_replica_scale",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", help="an NIR presentation set")
    ap.add_argument("--out", help="rows (.npz) to write")
    ap.add_argument("--summarise", help="rows (.npz) to summarise")
    ap.add_argument("--per-class", type=int, default=None, help="the first N of each class")
    a = ap.parse_args(argv)
    if a.data:
        if not a.out:
            ap.error("measuring a set needs --out")
        rows = measure(a.data, per_class=a.per_class)
        np.savez_compressed(a.out, **rows)
        a.summarise = a.summarise or a.out
    if not a.summarise:
        ap.error("give a set to measure or --summarise rows.npz")
    rows = dict(np.load(a.summarise))
    print(json.dumps(summarise(rows, cues_of(rows)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
