"""X-ray binding: the frame's hand must have the views' size and finger directions.

Two measurements of the X-ray frame's bones against the views' hand, carried into the frame
(:mod:`device.gate.binding_geometry`); both pure functions of arrays, no model, no file:

- **The hand's size** (:func:`size_interval`). The views triangulate the hand in metric 3-D and
  its height fixes the X-ray magnification, so the frame's hand and the views' hand must be one
  size. Every joint's predicted place is moved ``k * radius`` along its finger (``radius``: its
  distance from the palm's centre along the finger, as in
  :func:`device.gate.binding_joints.stretch`) for each ``k`` of :data:`STRETCH_GRID`, and the
  joint score (:func:`device.gate.binding_joints.joint_score` of the joint costs) is taken at
  each; the sizes that fit are those within ``slack`` of the best. A replica 10-25 % larger or
  smaller, or another person's hand of another size, fits at its own size, away from 0; a live
  hand fits near 0, or (few clear joints) everywhere. :func:`size_excess`: how far (per cent) the
  sizes that fit lie outside the range live hands give. The least-squares stretch of the dips
  found (``binding_joints.stretch``) takes a neighbouring joint for the one it looks for once a
  replica is 15 % off (its search window is 12 mm); the search over sizes does not.
- **The fingers' directions** (:func:`lateral_offsets`). A replica keeps its own finger pose,
  and another person's hand has its own finger angles: the bones of the frame's fingers then
  lie beside the views' finger axes. Across the middle of each finger's first two bones
  (thumb: its metacarpal and first phalanx) the bone's centre is found (the centroid of the
  brightness above the profile's 60th percentile, averaged over 6 mm along the axis) and its
  offset (mm) from the axis taken. :func:`lateral_score`: the mean squared offset, each
  standardised by the live hands' median and spread at that bone, less the common shift of
  the whole hand (a live hand placed a few mm off moves every bone alike; a replica's own
  finger pose moves each finger its own way).

:func:`size_term` is what both add to the binding score, from the numbers fitted on bona fide
presentations (:func:`fit_size_stats`; kept with the bone statistics in ``probe_ranges
["joints"]`` of the signed ``models/binding_xray.json``). Measured: docs/results.md, "X-ray:
the hand's size and the fingers' directions".
"""
from __future__ import annotations

import cv2
import numpy as np

from device.gate import binding_joints as J

STRETCH_GRID = tuple(round(float(x), 3) for x in np.arange(-0.35, 0.4501, 0.01))
"""The sizes searched: the frame's hand ``1 + k`` times the views' (in its joints' distances
from the palm's centre), k from -0.35 to +0.45 in steps of 0.01 (replicas 10-25 % off, with a
margin)."""

SIZE_SLACK = 1.0
"""The sizes that fit: joint score within this of the best (chosen on validation among 0.5,
1.0 and 1.5; docs/results.md)."""

SIZE_GAIN = 4.0
"""Score (mm) per per cent that the sizes that fit lie outside the live range (chosen on
validation among 2-8)."""

LATERAL_FREE, LATERAL_GAIN = 0.5, 48.0
"""The fingers' directions add ``LATERAL_GAIN * max(0, lateral_score - LATERAL_FREE)``, the
score less the hand's common shift (chosen on validation among free 0.25-1, gain 16-64;
without the shift removed, free 1-4, gain 2-16, the best was 1 and 8)."""

LATERAL_HALF_MM = 8.0
"""The profile across a bone reaches this far either side of the axis."""

LATERAL_ALONG_MM = 3.0
"""The profile across a bone is averaged this far either side of the bone's middle."""

LATERAL_LEVEL = 0.6
"""The bone's centre: the centroid of the profile above this quantile of it."""

MIN_LATERAL_SIGMA = 1.0
"""The live spread of a bone's offset is taken at least this (mm)."""


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.zeros_like(v)


def size_curve(img: np.ndarray, lm: np.ndarray, px_mm: float, stats: dict,
               grid=STRETCH_GRID) -> np.ndarray:
    """(len(grid),) the joint score (:func:`device.gate.binding_joints.joint_score`) with every
    joint's predicted place moved ``k * radius`` along its finger, for each ``k`` of ``grid``
    (each joint's cost as in :func:`device.gate.binding_joints.joint_costs`). ``img`` float32
    with NaN outside the exposed field, ``lm`` (21, 2) the views' landmarks in its pixels,
    ``stats`` the live joints' ``mu``, ``sigma``, ``dip``."""
    mu, sig, dip0 = (np.asarray(stats[k], np.float64) for k in ("mu", "sigma", "dip"))
    g = np.asarray(grid, np.float64)
    lm = np.asarray(lm, np.float64)
    costs = np.full((len(g), 15), np.nan)
    if not np.all(np.isfinite(lm)):
        return joint_scores(costs)
    centre = lm[[0, 5, 9, 13, 17]].mean(axis=0)
    for f, chain in enumerate(J.CHAINS):
        pts = lm[list(chain)]
        t, cum, ridge = J.finger_profile(img, pts, px_mm)
        d = J.dip_response(ridge)
        ok = np.isfinite(d)
        n_ok = np.concatenate([[0], np.cumsum(ok)])
        dip = ok & (d > 0)                 # elsewhere a sample costs CAP or more: the cap
        for k in range(3):
            j = 3 * f + k
            u = _unit(pts[k + 1] - pts[k])
            radius = float((pts[k] + u * mu[j] * px_mm - centre) @ u) / px_mm
            tj = cum[k] + mu[j] + g * radius                             # (K,)
            a = np.searchsorted(t, tj - J.SEARCH_MM - 1e-9, side="left")
            b = np.searchsorted(t, tj + J.SEARCH_MM + 1e-9, side="right")
            seen = (b > a) & (n_ok[b] - n_ok[a] >= J.MIN_SEEN * (b - a))
            c = np.full(len(g), J.CAP)
            if dip.any():
                td, pen = t[dip], J.CAP * np.maximum(0.0, 1.0 - d[dip] / dip0[j])
                off = td[None, :] - tj[:, None]                          # (K, m)
                cm = np.where(np.abs(off) <= J.SEARCH_MM, (off / sig[j]) ** 2 + pen[None, :],
                              np.inf).min(axis=1)
                c = np.minimum(c, cm)
            costs[:, j] = np.where(seen, c, np.nan)
    return joint_scores(costs)


def joint_scores(costs: np.ndarray) -> np.ndarray:
    """(K,) :func:`device.gate.binding_joints.joint_score` of each row of ``costs`` (K, 15), at
    once."""
    c = np.asarray(costs, np.float64).reshape(-1, 5, 3)
    worst = np.argmax(np.nansum(c, axis=2), axis=1)
    keep = np.ones(c.shape[:2], bool)
    keep[np.arange(len(c)), worst] = False
    seen = np.isfinite(c) & keep[:, :, None]
    total = np.where(seen, c, 0.0).sum(axis=(1, 2))
    count = seen.sum(axis=(1, 2))
    n = np.maximum(count, J.MIN_JOINTS)
    return (total + (n - count) * J.UNSEEN_COST) / n


def size_interval(curve: np.ndarray, slack: float = SIZE_SLACK, grid=STRETCH_GRID
                  ) -> tuple[float, float]:
    """(smallest, largest) ``k`` of ``grid`` whose joint score (``curve``, :func:`size_curve`)
    is within ``slack`` of the best: the sizes at which the frame's bones fit the views' hand.
    The whole grid when nothing is finite."""
    c = np.asarray(curve, np.float64)
    g = np.asarray(grid, np.float64)
    if not np.isfinite(c).any():
        return float(g[0]), float(g[-1])
    ok = c <= np.nanmin(c) + slack
    return float(g[ok].min()), float(g[ok].max())


def size_excess(interval: tuple[float, float], lo: float, hi: float) -> float:
    """How far (per cent) the sizes that fit, ``interval``, lie outside the live range ``[lo,
    hi]``; 0 where they meet it."""
    a, b = interval
    return 100.0 * max(0.0, a - hi, lo - b)


LATERAL_BONES = ((0, 1), (1, 2))
"""Each finger's bones looked at across (indices into its chain of
:data:`device.gate.binding_joints.CHAINS`): index to little finger the proximal and middle
phalanges, the thumb its metacarpal and proximal phalanx."""


def bone_window(img: np.ndarray, a: np.ndarray, b: np.ndarray, ts: np.ndarray,
                offs: np.ndarray, px_mm: float) -> np.ndarray | None:
    """The frame ``img`` sampled across the bone from landmark ``a`` to ``b`` (frame pixels):
    (len(ts), len(offs)), at ``ts`` pixels along the bone from its middle and ``offs`` mm
    across it (NaN off the frame); None when ``a`` and ``b`` coincide."""
    u = _unit(b - a)
    if not u.any():
        return None
    n = np.array([-u[1], u[0]])
    c = (a + b) / 2
    X = (c[0] + u[0] * ts[:, None] + n[0] * offs[None] * px_mm).astype(np.float32)
    Y = (c[1] + u[1] * ts[:, None] + n[1] * offs[None] * px_mm).astype(np.float32)
    return cv2.remap(img, X, Y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=float("nan"))


def lateral_offsets(img: np.ndarray, lm: np.ndarray, px_mm: float) -> np.ndarray:
    """(5, 2) how far (mm, signed, across the axis) the centre of each finger's bone
    (:data:`LATERAL_BONES`, fingers in :data:`~device.gate.binding_joints.CHAINS` order) lies
    from the views' finger axis at the bone's middle; NaN where the profile leaves the field."""
    out = np.full((5, 2), np.nan)
    lm = np.asarray(lm, np.float64)
    if not np.all(np.isfinite(lm)):
        return out
    ts = np.arange(-LATERAL_ALONG_MM, LATERAL_ALONG_MM + 1e-9, 0.5) * px_mm
    offs = np.arange(-LATERAL_HALF_MM, LATERAL_HALF_MM + 1e-9, 0.5)
    for f, chain in enumerate(J.CHAINS):
        pts = lm[list(chain)]
        for s, (a, b) in enumerate(LATERAL_BONES):
            v = bone_window(img, pts[a], pts[b], ts, offs, px_mm)
            if v is None or np.isnan(v).any():
                continue
            prof = v.mean(axis=0)
            w = np.maximum(0.0, prof - np.quantile(prof, LATERAL_LEVEL))
            if w.sum() > 0:
                out[f, s] = float((w * offs).sum() / w.sum())
    return out


def lateral_normals(lm: np.ndarray) -> np.ndarray:
    """(5, 2, 2) the unit normal of the views' finger axis at each bone of
    :func:`lateral_offsets` (the direction its offset is measured in)."""
    lm = np.asarray(lm, np.float64)
    out = np.zeros((5, 2, 2))
    for f, chain in enumerate(J.CHAINS):
        pts = lm[list(chain)]
        for s, (a, b) in enumerate(LATERAL_BONES):
            u = _unit(pts[b] - pts[a])
            out[f, s] = (-u[1], u[0])
    return out


def lateral_score(offsets: np.ndarray, mu, sigma, normals: np.ndarray | None = None) -> float:
    """The mean of ``z^2``, ``z = (offset - mu) / sigma`` over the bones seen
    (:func:`lateral_offsets`, ``mu`` and ``sigma`` the live hands', (5, 2) each); 0 with none
    seen. With ``normals`` (:func:`lateral_normals`) and four bones or more seen, less the
    common shift of the whole hand that fits the offsets best (least squares, ``z`` against
    ``normals / sigma``): a hand placed a few mm off moves every bone alike (live hands' largest
    part of the offsets: the registration and the placement), a replica's own finger pose moves
    each finger its own way."""
    z = ((np.asarray(offsets, np.float64) - np.asarray(mu, np.float64))
         / np.asarray(sigma, np.float64)).ravel()
    ok = np.isfinite(z)
    if not ok.any():
        return 0.0
    z = z[ok]
    if normals is not None and ok.sum() > 3:
        A = (np.asarray(normals, np.float64).reshape(-1, 2)[ok]
             / np.asarray(sigma, np.float64).ravel()[ok, None])
        z = z - A @ np.linalg.lstsq(A, z, rcond=None)[0]
    return float(np.mean(z ** 2))


SIZE_KEYS = ("size_lo", "size_hi", "size_slack", "size_gain", "lateral_mu", "lateral_sigma",
             "lateral_free", "lateral_gain")
"""The numbers :func:`size_term` reads (:func:`fit_size_stats` writes them, and ``size_q``):
all or none (a file from before the term)."""


def size_numbers_problem(stats) -> str | None:
    """What is wrong with the term's numbers in ``stats``, or None (all :data:`SIZE_KEYS`
    well-formed, or none of them: the binding as before the term). Part of them, a NaN or a
    wrong shape would switch the term off or break it silently (``max(0, x - NaN)`` is 0), a
    negative gain or slack lower the score or fit no size: each is named here."""
    bad, present = J.key_group(stats, SIZE_KEYS, "size and finger directions'")
    if not present:
        return bad
    for k in ("size_lo", "size_hi", "size_slack", "size_gain", "lateral_free",
              "lateral_gain"):
        if not J.finite_number(stats[k]):
            return f"'{k}' is not a finite number"
    if not stats["size_lo"] <= stats["size_hi"]:
        return "'size_lo' is above 'size_hi'"
    for k in ("size_slack", "size_gain", "lateral_free", "lateral_gain"):
        if stats[k] < 0:
            return f"'{k}' is negative"
    mu = J.finite_array(stats["lateral_mu"], (5, 2))
    sig = J.finite_array(stats["lateral_sigma"], (5, 2))
    if mu is None:
        return "'lateral_mu' is not 5 x 2 finite numbers"
    if sig is None or not np.all(sig > 0):
        return "'lateral_sigma' is not 5 x 2 positive finite numbers"
    return None


def size_term(img: np.ndarray, lm: np.ndarray, px_mm: float, stats: dict) -> float:
    """What the hand's size and the fingers' directions add to the binding score, from the
    live hands' numbers in ``stats`` (the bone statistics with :func:`fit_size_stats`'s keys;
    0 where they have none of them, the binding as before the term). A ValueError naming
    what is wrong when they have part of them or a malformed one
    (:func:`size_numbers_problem`; the signed file's are checked when it is loaded)."""
    bad = size_numbers_problem(stats)
    if bad:
        raise ValueError(f"binding size numbers: {bad}")
    if "size_lo" not in stats:
        return 0.0
    iv = size_interval(size_curve(img, lm, px_mm, stats), float(stats["size_slack"]))
    out = float(stats["size_gain"]) * size_excess(iv, float(stats["size_lo"]),
                                                  float(stats["size_hi"]))
    ls = lateral_score(lateral_offsets(img, lm, px_mm), stats["lateral_mu"],
                       stats["lateral_sigma"], lateral_normals(lm))
    return out + float(stats["lateral_gain"]) * max(0.0, ls - float(stats["lateral_free"]))


def fit_size_stats(samples: list, joint_stats: dict, q: float = 0.01) -> dict:
    """The live hands' numbers of :func:`size_term` from bona fide ``samples`` [(img,
    landmarks, px_mm)] and their joint statistics (``mu``, ``sigma``, ``dip``): the size range
    (``size_lo``: the ``q`` quantile of the largest size that fits, ``size_hi``: the ``1 - q``
    quantile of the smallest), each bone's median offset and spread (interquartile range /
    1.35, at least :data:`MIN_LATERAL_SIGMA`), and the weights."""
    ivs = np.array([size_interval(size_curve(img, lm, px, joint_stats))
                    for img, lm, px in samples])
    lat = np.array([lateral_offsets(img, lm, px) for img, lm, px in samples])
    q1, q3 = np.nanpercentile(lat, 25, axis=0), np.nanpercentile(lat, 75, axis=0)

    def r(a):
        return [[round(float(x), 3) for x in row] for row in a]
    return {"size_lo": round(float(np.quantile(ivs[:, 1], q)), 3),
            "size_hi": round(float(np.quantile(ivs[:, 0], 1 - q)), 3),
            "size_q": q, "size_slack": SIZE_SLACK, "size_gain": SIZE_GAIN,
            "lateral_mu": r(np.nanmedian(lat, axis=0)),
            "lateral_sigma": r(np.maximum((q3 - q1) / 1.35, MIN_LATERAL_SIGMA)),
            "lateral_free": LATERAL_FREE, "lateral_gain": LATERAL_GAIN}
