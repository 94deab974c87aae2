"""X-ray binding: the frame's bones must be live bones, filled with marrow, not hollow shells.

Across the shaft of a live finger bone the radiograph peaks in the middle: the path through the
cortex (two walls seen edge-on at the sides) and the path through the marrow (fat, water, red
marrow) add up to the most in the middle, and at the sensor's 1.5 mm a pixel the profile has one
rounded top. A dried skeleton -- the donor bones of a radiographic hand phantom
(``skeleton_phantom``, :mod:`device.synth.attacks_composite`: the marrow's fat and water gone,
its density 0.4-0.8 of a live marrow's) -- is a shell: the two cortical walls stand out as a
brighter rim either side of a darker middle (in about a quarter of seed 9317's phantoms
enough to tell them from every live hand but one in 200). What the views cannot tell (the phantom has the
victim's outline and a real skeleton where the victim's bones would be) the bone's cross-section
does:

- :func:`cross_sections`: across the middle of each finger's first two bones (those of
  :data:`device.gate.binding_size.LATERAL_BONES`: index to little finger the proximal and middle
  phalanges, the thumb its metacarpal and proximal phalanx; at the views' landmarks carried into
  the frame), the frame's profile, averaged :data:`ALONG_MM` either side of the bone's middle;
- :func:`hollowness`: on one profile, centred on the bone (the centroid of the brightness above
  the profile's 60th percentile within :data:`CENTRE_MM`), how far the lower of the two rims
  (the brightest value :data:`RIM_MM` from the centre on each side) stands above the middle
  (the mean within :data:`MIDDLE_MM`), as a fraction of the profile's range within
  :data:`SPAN_MM`: <= 0 for a filled bone, > 0 for a shell;
- :func:`marrow_score`: the mean over the bones seen of the hollowness where it is positive
  (a bone seen as filled counts 0): one hollow-looking bone of a live hand (a landmark off the
  bone) adds a tenth of a shell's whole hand;
- :func:`marrow_term`: what it adds to the binding score, ``marrow_gain`` times how far the
  score lies above ``marrow_free`` (the 99.5th percentile of the bona fide presentations it was
  fitted on), from the signed ``models/binding_xray.json``
  (``probe_ranges["joints"]``, with the bones' numbers; :func:`fit_marrow_stats`).

Measured: docs/results.md, "X-ray composite species against the binding". Pure functions of
arrays (numpy + OpenCV), no model, no file.
"""
from __future__ import annotations

import numpy as np

from device.gate import binding_joints as J
from device.gate.binding_size import LATERAL_BONES, bone_window

HALF_MM = 14.0
"""The cross-section reaches this far either side of the views' finger axis."""

STEP_MM = 0.5
"""Sampling step across the finger (and along it, for the average)."""

ALONG_MM = 3.0
"""The cross-section is averaged this far either side of the bone's middle."""

CENTRE_MM = 8.0
"""The bone's centre is looked for within this distance of the views' axis."""

MIDDLE_MM = 1.0
"""The bone's middle: the samples within this distance of its centre."""

RIM_MM = (1.5, 4.5)
"""A rim: the brightest sample this far (from, to) from the bone's centre on one side."""

SPAN_MM = 10.0
"""The profile's range (bone top to background between fingers) within this distance of the
bone's centre normalises the hollowness."""

MARROW_GAIN = 2000.0
"""Score (mm) per unit of marrow score above the free level: a phantom's whole hand of shells
(the quarter of seed 9317's phantoms with the most: marrow score 0.027-0.17, against live
hands' 99.5th percentile 0.03) adds up to 280 (the binding threshold is about 30). Chosen on validation among 0, 250, 500, 1000, 2000 and 4000
(seed 9317's whole presentations and binding_eval's X-ray validation seeds 11 + 8117 + 9241:
the skeleton phantoms that passed the binding 27, 25, 23, 20, 19, 18, the bona fide denied
and the threshold the same at each; docs/results.md, "X-ray composite species against the
binding")."""

MARROW_Q = 0.005
"""``marrow_free`` is the ``1 - MARROW_Q`` quantile of the fitted bona fide presentations'
marrow scores (their largest, 0.060 on the fit seeds 5 + 21 + 31, is one live hand's
outlier; with it as the free level the term refused 2 of the 27 phantoms)."""


def offsets() -> np.ndarray:
    """(n,) the cross-section's sample offsets (mm) across the axis, -HALF_MM .. HALF_MM."""
    return np.arange(-HALF_MM, HALF_MM + 1e-9, STEP_MM)


def cross_sections(img: np.ndarray, lm: np.ndarray, px_mm: float) -> np.ndarray:
    """(5, 2, n) the frame's profile across each finger bone of :data:`LATERAL_BONES`
    (fingers in :data:`~device.gate.binding_joints.CHAINS` order) at :func:`offsets`, averaged
    :data:`ALONG_MM` either side of the bone's middle; NaN rows where the profile leaves the
    exposed field or the landmarks are not finite. ``img`` float32 (H, W) with NaN outside the
    exposed field, ``lm`` (21, 2) the views' landmarks in its pixels."""
    offs = offsets()
    out = np.full((5, 2, len(offs)), np.nan)
    lm = np.asarray(lm, np.float64)
    if not np.all(np.isfinite(lm)):
        return out
    ts = np.arange(-ALONG_MM, ALONG_MM + 1e-9, STEP_MM) * px_mm
    grey = np.asarray(img, np.float32)
    for f, chain in enumerate(J.CHAINS):
        pts = lm[list(chain)]
        for s, (a, b) in enumerate(LATERAL_BONES):
            v = bone_window(grey, pts[a], pts[b], ts, offs, px_mm)
            if v is not None and not np.isnan(v).any():
                out[f, s] = v.mean(axis=0)
    return out


def hollowness(profile: np.ndarray, offs: np.ndarray | None = None) -> float:
    """How hollow the bone of one cross-section looks (module docstring): the lower of its two
    rims less its middle, over the profile's range; <= 0 filled, > 0 a shell. NaN for a
    profile with a NaN or no range."""
    p = np.asarray(profile, np.float64)
    o = offsets() if offs is None else np.asarray(offs, np.float64)
    if p.shape != o.shape or not np.isfinite(p).all():
        return float("nan")
    inner = np.abs(o) <= CENTRE_MM
    q = p[inner]
    w = np.maximum(0.0, q - np.quantile(q, 0.6))
    c = float((w * o[inner]).sum() / w.sum()) if w.sum() > 0 else 0.0
    d = o - c
    span_sel = np.abs(d) <= SPAN_MM
    span = float(p[span_sel].max() - p[span_sel].min())
    if span <= 1e-6:
        return float("nan")
    middle = float(p[np.abs(d) <= MIDDLE_MM].mean())
    left = p[(d >= -RIM_MM[1]) & (d <= -RIM_MM[0])]
    right = p[(d >= RIM_MM[0]) & (d <= RIM_MM[1])]
    if not len(left) or not len(right):
        return float("nan")
    return (min(float(left.max()), float(right.max())) - middle) / span


def marrow_score(img: np.ndarray, lm: np.ndarray, px_mm: float) -> float:
    """The mean over the bones seen (:func:`cross_sections`) of their :func:`hollowness` where
    it is positive (0 for a filled bone); 0 when no bone is seen (the other terms speak)."""
    secs = cross_sections(img, lm, px_mm)
    offs = offsets()
    h = np.array([hollowness(p, offs) for p in secs.reshape(-1, secs.shape[-1])])
    h = h[np.isfinite(h)]
    return float(np.maximum(h, 0.0).mean()) if len(h) else 0.0


MARROW_KEYS = ("marrow_free", "marrow_gain")
"""The numbers :func:`marrow_term` reads (:func:`fit_marrow_stats` writes them): both or none
(a file from before the term)."""


def marrow_numbers_problem(stats) -> str | None:
    """What is wrong with the term's numbers in ``stats``, or None (both of
    :data:`MARROW_KEYS` finite and not negative, ``marrow_free`` below 1 -- a
    :func:`hollowness` is at most 1, so a free level of 1 or more would switch the term off
    unseen -- or neither: the binding as before the term)."""
    bad, present = J.key_group(stats, MARROW_KEYS, "marrow")
    if not present:
        return bad
    for k in MARROW_KEYS:
        if not J.finite_number(stats[k]):
            return f"'{k}' is not a finite number"
        if stats[k] < 0:
            return f"'{k}' is negative"
    if stats["marrow_free"] >= 1.0:          # no marrow score reaches it: the term silently off
        return "'marrow_free' is not below 1 (the most a marrow score can be)"
    return None


def marrow_term(img: np.ndarray, lm: np.ndarray, px_mm: float, stats: dict) -> float:
    """What the bones' marrow adds to the binding score: ``marrow_gain`` times how far the
    :func:`marrow_score` lies above ``marrow_free`` (``stats``: the bone statistics of the
    signed file); 0 where they have neither number (the binding as before the term). A
    ValueError naming what is wrong when they have one of them or a malformed one."""
    bad = marrow_numbers_problem(stats)
    if bad:
        raise ValueError(f"binding marrow numbers: {bad}")
    if "marrow_free" not in stats:
        return 0.0
    return float(stats["marrow_gain"]) * max(0.0, marrow_score(img, lm, px_mm)
                                             - float(stats["marrow_free"]))


def fit_marrow_stats(samples: list, q: float = MARROW_Q) -> dict:
    """The term's numbers from bona fide ``samples`` [(img, landmarks, px_mm)]: ``marrow_free``
    the ``1 - q`` quantile of their :func:`marrow_score` (rounded up to 0.001), ``marrow_q``,
    and ``marrow_gain`` :data:`MARROW_GAIN`."""
    s = [marrow_score(img, lm, px) for img, lm, px in samples]
    free = float(np.ceil(np.quantile(s, 1 - q) * 1000 - 1e-9) / 1000) if s else 0.0
    return {"marrow_free": free, "marrow_q": q, "marrow_gain": MARROW_GAIN}
