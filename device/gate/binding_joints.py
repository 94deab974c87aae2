"""X-ray binding by the bones: the views' joints must fall on the joints of the X-ray frame.

An X-ray frame shows the hand's bones, bright, and the joint spaces between them, darker. The
views' landmarks, carried into the sensor frame (:mod:`device.gate.binding_geometry`), say where
each finger's joints are: the knuckle (MCP), the middle joints (PIP, DIP; the thumb's CMC, MCP
and IP). Along each finger's axis the frame's *ridge profile* (the brightest value across the
finger, so a landmark a little off the bone still finds it) shows each joint as a dip between
two bright bones (:func:`dip_response`). A joint's cost (:func:`joint_costs`) is low when a
clear dip lies where the landmarks put the joint, less the offset live hands show between a
landmark and its bone joint (a landmark network marks the skin's knuckle, not the joint space):

    cost = min over t of  ((t - t_pred - mu) / sigma)^2 + cap * max(0, 1 - dip(t) / dip_live)

capped at ``cap`` (no dip near the prediction). ``mu``, ``sigma`` and ``dip_live`` are the live
hands' offset, spread and dip depth per joint (fitted on bona fide presentations:
:func:`fit_bone_stats`, kept in the signed ``models/binding_xray.json``). A replica moved, turned,
scaled, another person's hand, or a species with no bones or other bones, puts the predicted
joints where the frame has none, or far from the ones it has. Joints outside the exposed field
are not scored. :func:`joint_score`: the costs summed without the finger that adds up to the
most (one finger the landmark network got wrong does not deny a live hand), per joint seen.

Pure functions of arrays (numpy + OpenCV), no model, no file.
"""
from __future__ import annotations

import cv2
import numpy as np

CHAINS = ((5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20), (1, 2, 3, 4))
"""Each finger's landmarks base to tip (index, middle, ring, little, thumb; MediaPipe order):
the first three of each are the joints scored (index..little: MCP, PIP, DIP; thumb: CMC, MCP,
IP)."""

JOINT_NAMES = tuple(f"{f}_{j}" for f, js in zip(("index", "middle", "ring", "little", "thumb"),
                                                (("mcp", "pip", "dip"),) * 4
                                                + (("cmc", "mcp", "ip"),)) for j in js)

STEP_MM = 0.5
"""Sampling step along a finger's axis."""

ACROSS_MM = 3.0
"""The ridge profile takes the brightest value within this distance across the axis."""

BACK_MM, FWD_MM = 15.0, 12.0
"""The profile starts this far before the first landmark and ends this far beyond the tip."""

DIP_INNER_MM, DIP_OUTER_MM = 1.0, 3.0
"""A dip at t: the lower of the brightest values 1-3 mm before and 1-3 mm after, less the
value at t (a joint space between two bones; an edge, such as the fingertip's, is no dip)."""

SEARCH_MM = 12.0
"""A joint is looked for this far either side of where the landmarks put it."""

CAP = 9.0
"""A joint's largest cost (no dip near it; 3 sigma away)."""

MIN_SEEN = 0.8
"""A joint is scored when this share of its search window lies in the exposed field."""


def finger_profile(img: np.ndarray, pts: np.ndarray, px_mm: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t (mm along the axis, 0 at the first landmark), the landmarks' t, the ridge profile):
    ``img`` float32 (H, W) with NaN outside the exposed field, ``pts`` (n, 2) a finger's
    landmarks in its pixels, base to tip. The axis runs :data:`BACK_MM` before the first
    landmark to :data:`FWD_MM` beyond the last; NaN where it leaves the field or the frame."""
    pts = np.asarray(pts, np.float64)
    seg = np.diff(pts, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    units = seg / np.maximum(seg_len, 1e-9)[:, None]
    cum = np.concatenate([[0.0], np.cumsum(seg_len / px_mm)])
    t = np.arange(-BACK_MM, cum[-1] + FWD_MM + 1e-9, STEP_MM)
    k = np.clip(np.searchsorted(cum, t) - 1, 0, len(seg) - 1)
    u = units[k]
    xy = pts[k] + u * ((t - cum[k]) * px_mm)[:, None]
    normal = np.stack([-u[:, 1], u[:, 0]], 1)
    offs = np.arange(-ACROSS_MM, ACROSS_MM + 1e-9, 0.75) * px_mm
    X = (xy[:, None, 0] + normal[:, None, 0] * offs[None]).astype(np.float32)
    Y = (xy[:, None, 1] + normal[:, None, 1] * offs[None]).astype(np.float32)
    v = cv2.remap(img, X, Y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                  borderValue=float("nan"))
    with np.errstate(invalid="ignore"):
        bad = np.isnan(v).any(axis=1)
        ridge = np.where(bad, np.nan, np.max(np.nan_to_num(v, nan=-1.0), axis=1))
    return t, cum, ridge


def dip_response(ridge: np.ndarray) -> np.ndarray:
    """(n,) how far each sample lies below both of its sides (:data:`DIP_INNER_MM` to
    :data:`DIP_OUTER_MM` before and after): positive at a joint space between two bright bones;
    NaN where a side is missing."""
    r = np.asarray(ridge, np.float64)
    i0, i1 = int(round(DIP_INNER_MM / STEP_MM)), int(round(DIP_OUTER_MM / STEP_MM))
    n, w = len(r), i1 - i0 + 1
    out = np.full(n, np.nan)
    if n < 2 * i1 + 1:
        return out
    win = np.lib.stride_tricks.sliding_window_view(r, w).max(axis=1)  # NaN propagates
    c = np.arange(i1, n - i1)
    before = win[c - i1]                   # samples c-i1 .. c-i0
    after = win[c + i0]                    # samples c+i0 .. c+i1
    out[c] = np.minimum(before, after) - r[c]
    return out


def joint_offsets(img: np.ndarray, lm: np.ndarray, px_mm: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """For fitting: (offset (mm along the axis) of the deepest dip within :data:`SEARCH_MM`
    of each joint's landmark, its depth), (15,) each in :data:`JOINT_NAMES` order; NaN where
    the window is not seen."""
    off, depth = np.full(15, np.nan), np.full(15, np.nan)
    for f, chain in enumerate(CHAINS):
        t, cum, ridge = finger_profile(img, lm[list(chain)], px_mm)
        d = dip_response(ridge)
        for k in range(3):
            win = np.abs(t - cum[k]) <= SEARCH_MM
            sel = win & np.isfinite(d)
            if sel.sum() < MIN_SEEN * win.sum() or not sel.any():
                continue
            i = np.flatnonzero(sel)[np.argmax(d[sel])]
            off[3 * f + k], depth[3 * f + k] = t[i] - cum[k], d[i]
    return off, depth


def joint_costs(img: np.ndarray, lm: np.ndarray, px_mm: float, stats: dict,
                found: list | None = None) -> tuple[np.ndarray, float]:
    """(costs, stretch): (15,) each joint's cost (module docstring; 0 .. :data:`CAP`), NaN
    where the joint's window is not seen, and :func:`stretch` of the clear dips found (NaN
    when too few). ``img`` float32 with NaN outside the exposed field, ``lm`` (21, 2) the
    views' landmarks in its pixels, ``stats`` the live hands' ``mu``, ``sigma``, ``dip`` (15
    each); ``found`` (a list) gets the dips found, for inspection."""
    mu, sig, dip0 = (np.asarray(stats[k], np.float64) for k in ("mu", "sigma", "dip"))
    out = np.full(15, np.nan)
    lm = np.asarray(lm, np.float64)
    if not np.all(np.isfinite(lm)):
        return out, float("nan")
    centre = lm[[0, 5, 9, 13, 17]].mean(axis=0)
    found = [] if found is None else found   # (offset mm, axis, radius mm, 1/sigma) per dip
    for f, chain in enumerate(CHAINS):
        pts = lm[list(chain)]
        t, cum, ridge = finger_profile(img, pts, px_mm)
        d = dip_response(ridge)
        for k in range(3):
            j = 3 * f + k
            tj = cum[k] + mu[j]
            win = np.abs(t - tj) <= SEARCH_MM
            sel = win & np.isfinite(d)
            if sel.sum() < MIN_SEEN * win.sum() or not sel.any():
                continue
            c = ((t[sel] - tj) / sig[j]) ** 2 + CAP * np.maximum(0.0, 1.0 - d[sel] / dip0[j])
            out[j] = min(CAP, float(c.min()))
            i = np.flatnonzero(sel)[np.argmax(d[sel])]
            if d[i] >= STRONG * dip0[j]:
                u = pts[k + 1] - pts[k]
                u = u / max(float(np.linalg.norm(u)), 1e-9)
                p = pts[k] + u * mu[j] * px_mm      # the predicted joint
                found.append((t[i] - tj, u, float((p - centre) @ u) / px_mm, 1.0 / sig[j]))
    return out, stretch(found)


STRONG = 0.5
"""A dip this deep (times the live hands' depth at that joint) is a joint found, for
:func:`stretch`."""

MIN_FOUND = 5
""":func:`stretch` needs this many joints found."""


def stretch(found: list) -> float:
    """How much longer (+) or shorter (-) the frame's hand is than the views' hand, as a
    fraction: the least-squares ``k`` of ``offset_j = k * radius_j + shift . axis_j`` over the
    joints found (offset: the dip's distance along the finger from where the landmarks put the
    joint; radius: that point's distance from the palm's centre along the finger; a shift of
    the whole hand is free), weighted by 1/sigma, refitted once without the worst fifth. A
    replica 10-25 % larger or smaller stretches every finger alike; live hands stay within a
    few per cent. NaN with fewer than :data:`MIN_FOUND` joints found."""
    if len(found) < MIN_FOUND:
        return float("nan")
    w = np.array([x[3] for x in found])
    A = np.array([[r, u[0], u[1]] for _, u, r, _ in found]) * w[:, None]
    y = np.array([x[0] for x in found]) * w
    x = np.linalg.lstsq(A, y, rcond=None)[0]
    res = np.abs(A @ x - y)
    keep = res <= max(2.5, float(np.quantile(res, 0.8)))
    if keep.sum() >= MIN_FOUND:
        x = np.linalg.lstsq(A[keep], y[keep], rcond=None)[0]
    return float(x[0])


UNSEEN_COST = 3.0
"""A joint out of the field counts this much, up to :data:`MIN_JOINTS` (a live joint's cost:
median 1.3, under 3 for 67 % of the 12,792 joints scored in 1000 bona fide presentations of
seed 5): a frame that shows few joints is judged mostly by its silhouette, neither passed nor
denied by the joints it does not show."""

MIN_JOINTS = 6


def joint_score(costs: np.ndarray) -> float:
    """The mean cost of the joints seen, without the finger whose costs add up to the most
    (one finger the landmark network got wrong does not deny a live hand); with fewer than
    :data:`MIN_JOINTS` seen, the rest up to that many count :data:`UNSEEN_COST`. 0 ..
    :data:`CAP`."""
    c = np.asarray(costs, np.float64).reshape(5, 3)
    per_finger = np.nansum(c, axis=1)
    worst = int(np.argmax(per_finger))
    rest = np.delete(c, worst, axis=0).ravel()
    rest = rest[np.isfinite(rest)]
    n = max(len(rest), MIN_JOINTS)
    return float((rest.sum() + (n - len(rest)) * UNSEEN_COST) / n)


def stretch_excess(k: float, lo: float, hi: float) -> float:
    """How far (per cent) the :func:`stretch` ``k`` lies outside the live hands' range ``[lo,
    hi]``; 0 when it could not be measured (too few joints found: the joint costs speak)."""
    if not np.isfinite(k):
        return 0.0
    return 100.0 * max(0.0, k - hi, lo - k)


def bone_term(img: np.ndarray, lm: np.ndarray, px_mm: float, stats: dict) -> float:
    """What the bones add to the binding score (:mod:`device.gate.sensor_binding`), from the
    live hands' ``stats`` (:func:`fit_bone_stats`): ``joint_gain`` times how far the
    :func:`joint_score` exceeds ``joint_free``, plus ``stretch_gain`` times the
    :func:`stretch_excess`."""
    costs, k = joint_costs(img, lm, px_mm, stats)
    j = joint_score(costs)
    return (float(stats["joint_gain"]) * max(0.0, j - float(stats["joint_free"]))
            + float(stats["stretch_gain"]) * stretch_excess(k, stats["stretch_lo"],
                                                            stats["stretch_hi"]))


JOINT_GAIN, JOINT_FREE, STRETCH_GAIN = 8.0, 4.0, 8.0
"""The bone term's weights, chosen on validation seed 11 (X-ray, 400 bona fide + 400 mixed)
among joint gain 0/2/4/8, free level 2/3/4 and stretch gain 4/8/16, and first again on 1000
bona fide + 400 mixed among joint gain 4/8, free level 4/5/6, stretch gain 4/8
(docs/sensor-branch.md, "Binding"); written into the statistics by :func:`fit_bone_stats`
so that every number of the term is in one place."""


BONE_KEYS = ("mu", "sigma", "dip", "stretch_lo", "stretch_hi", "joint_gain", "joint_free",
             "stretch_gain")
"""The numbers :func:`bone_term` reads (:func:`fit_bone_stats` writes them)."""


def finite_number(x) -> bool:
    """A real number (not a bool), finite."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return bool(np.isfinite(float(x)))
    except OverflowError:                  # an integer beyond float
        return False


def finite_array(x, shape: tuple) -> np.ndarray | None:
    """``x`` (nested lists of numbers) as a float array of ``shape``, all finite; None
    otherwise."""
    flat = np.ravel(np.asarray(x, dtype=object))
    if np.shape(np.asarray(x, dtype=object)) != shape or not all(finite_number(v) for v in flat):
        return None
    return np.asarray(x, np.float64)


def key_group(stats, keys, what: str) -> tuple[str | None, bool]:
    """(what is wrong, whether to check further) of a signed term's numbers ``keys`` in
    ``stats``, all of them or none (a file from before the term): not an object, or some
    missing (named, with ``what`` the term's name); none of them: nothing wrong, nothing to
    check."""
    if not isinstance(stats, dict):
        return "not an object", False
    have = [k for k in keys if k in stats]
    if not have:
        return None, False
    if len(have) < len(keys):
        return (f"the {what} numbers are incomplete: missing "
                f"{', '.join(k for k in keys if k not in stats)}"), False
    return None, True


def bone_numbers_problem(stats) -> str | None:
    """What is wrong with the bone term's numbers (:data:`BONE_KEYS`), or None: 15 finite
    ``mu``, 15 positive ``sigma`` and ``dip``, a finite ``stretch_lo`` <= ``stretch_hi``,
    finite weights, the gains >= 0 (a negative gain would lower the score)."""
    if not isinstance(stats, dict):
        return "not an object"
    missing = [k for k in BONE_KEYS if k not in stats]
    if missing:
        return f"missing {', '.join(missing)}"
    for k in ("mu", "sigma", "dip"):
        a = finite_array(stats[k], (15,))
        if a is None:
            return f"'{k}' is not 15 finite numbers"
        if k != "mu" and not np.all(a > 0):
            return f"'{k}' is not positive"
    for k in BONE_KEYS[3:]:
        if not finite_number(stats[k]):
            return f"'{k}' is not a finite number"
    if not stats["stretch_lo"] <= stats["stretch_hi"]:
        return "'stretch_lo' is above 'stretch_hi'"
    for k in ("joint_gain", "stretch_gain"):
        if stats[k] < 0:
            return f"'{k}' is negative"
    return None


def fit_bone_stats(samples: list, q: float = 0.005) -> dict:
    """The bone term's statistics from bona fide ``samples`` [(img, landmarks, px_mm)]: per
    joint the live offset, spread and dip depth (:func:`fit_joint_stats`), then the live
    range of :func:`stretch` (its ``q`` and ``1 - q`` quantiles), and the weights."""
    offs, deps = zip(*(joint_offsets(img, lm, px) for img, lm, px in samples))
    st = fit_joint_stats(np.array(offs), np.array(deps))
    ks = np.array([joint_costs(img, lm, px, st)[1] for img, lm, px in samples])
    lo, hi = np.nanquantile(ks, [q, 1 - q])
    st.update(stretch_lo=round(float(lo), 4), stretch_hi=round(float(hi), 4),
              joint_gain=JOINT_GAIN, joint_free=JOINT_FREE, stretch_gain=STRETCH_GAIN)
    return st


def fit_joint_stats(offsets: np.ndarray, depths: np.ndarray, min_sigma: float = 1.5) -> dict:
    """The live hands' ``mu`` (median offset), ``sigma`` (interquartile range / 1.35, at least
    ``min_sigma`` mm) and ``dip`` (median depth) per joint from (N, 15) :func:`joint_offsets`
    of bona fide presentations."""
    o = np.asarray(offsets, np.float64)
    q1, q3 = np.nanpercentile(o, 25, axis=0), np.nanpercentile(o, 75, axis=0)

    def r(a):
        return [round(float(x), 2) for x in a]
    return {"mu": r(np.nanmedian(o, axis=0)),
            "sigma": r(np.maximum((q3 - q1) / 1.35, min_sigma)),
            "dip": r(np.nanmedian(np.asarray(depths, np.float64), axis=0))}
