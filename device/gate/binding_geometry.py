"""Pure geometry of the sensor binding: the hand's landmarks seen by two or more calibrated views
placed in 3-D over the working plane, and carried into the transmission sensor's frame.

The world here is the *sensor-pixel world*: x, y are pixels of the sensor frame for points on
the working plane (the plane the factory registration was made on), and the height ``z`` off
the plane is in the same units, positive toward the cameras. Everything a view needs in it is
its camera centre, recovered from the registration homography (sensor pixel -> view pixel, for
points on the plane) and the view's camera matrix (:func:`camera_centre`).

- :func:`camera_centre`: ``K^-1 H`` is ``lambda [r1 r2 t]`` of the camera in the sensor-pixel
  world (Zhang's plane decomposition); its centre is ``-[r1 r2 r3]^T t``, on the cameras' side.
- :func:`triangulate`: plane + parallax. A view sees a point ``P`` (height ``z``) where the ray
  from its centre ``C`` through ``P`` meets the plane, ``q = C + (P - C) C_z / (C_z - z)``,
  which is linear in ``(P_x, P_y, z)``: ``P_xy + (q - C_xy) z / C_z = q``. Two views or more
  fix ``P`` (least squares).
- :func:`project_to_sensor`: the sensor sees the point from its own centre of projection ``E``
  (NIR: the camera below the plane; X-ray: the source above it): ``s = E_xy + (P_xy - E_xy)
  E_z / (E_z - z)``.

No file, no model, no camera: arrays in, arrays out.
"""
from __future__ import annotations

import numpy as np


def camera_centre(K: np.ndarray, H: np.ndarray) -> np.ndarray:
    """(3,) centre of a pinhole camera with matrix ``K`` that sees the working plane through
    ``H`` (sensor pixel on the plane -> view pixel), in the sensor-pixel world (height in
    sensor pixels, positive on the camera's side)."""
    M = np.linalg.solve(np.asarray(K, np.float64), np.asarray(H, np.float64))
    lam = 0.5 * (np.linalg.norm(M[:, 0]) + np.linalg.norm(M[:, 1]))
    r1, r2, t = M[:, 0] / lam, M[:, 1] / lam, M[:, 2] / lam
    if t[2] < 0:                                # the plane lies in front of the camera
        r1, r2, t = -r1, -r2, -t
    r3 = np.cross(r1, r2)
    # C = -R^T t with R = [r1 r2 r3] (columns: the world axes in camera coordinates)
    R = np.column_stack([r1, r2, r3])
    C = -np.linalg.lstsq(R, t, rcond=None)[0]
    if C[2] < 0:                                # a reflected plane frame (rows go down)
        C[2] = -C[2]
    return C


def triangulate(plane_points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N, 3) points ``(x, y, z)`` in the sensor-pixel world from their plane images in ``V >= 2``
    views: ``plane_points`` (V, N, 2), each view's points mapped onto the plane by its
    registration; ``centres`` (V, 3), the views' camera centres. A point seen by fewer than two
    views (NaN) comes out NaN."""
    q = np.asarray(plane_points, np.float64)
    C = np.asarray(centres, np.float64)
    V, N, _ = q.shape
    out = np.full((N, 3), np.nan)
    for i in range(N):
        ok = np.all(np.isfinite(q[:, i]), axis=1)
        if ok.sum() < 2:
            continue
        A, b = [], []
        for v in np.flatnonzero(ok):
            d = (q[v, i] - C[v, :2]) / C[v, 2]
            A += [[1.0, 0.0, d[0]], [0.0, 1.0, d[1]]]
            b += [q[v, i, 0], q[v, i, 1]]
        out[i] = np.linalg.lstsq(np.array(A), np.array(b), rcond=None)[0]
    return out


def project_to_sensor(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(N, 2) sensor pixels of (N, 3) world points seen from the sensor's centre of projection
    ``centre`` (x, y, height; a height below the plane is negative)."""
    P = np.asarray(points, np.float64)
    E = np.asarray(centre, np.float64)
    f = E[2] / (E[2] - P[:, 2])
    return E[:2] + (P[:, :2] - E[:2]) * f[:, None]


def plane_fit_height(points: np.ndarray) -> np.ndarray:
    """(N,) heights of ``points`` (N, 3) replaced by a least-squares plane through the finite
    ones (the palm is near flat; a single point's triangulation noise is smoothed out). With
    fewer than 3 finite points, the median height."""
    P = np.asarray(points, np.float64)
    ok = np.all(np.isfinite(P), axis=1)
    z = np.full(len(P), np.nan)
    if ok.sum() >= 3:
        A = np.column_stack([P[ok, 0], P[ok, 1], np.ones(ok.sum())])
        coef = np.linalg.lstsq(A, P[ok, 2], rcond=None)[0]
        z[ok] = A @ coef
    elif ok.any():
        z[ok] = np.median(P[ok, 2])
    return z


# ------------------------------------------------------------------------------ probes
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
"""The 21 hand landmarks' fingers (MediaPipe order: 0 the wrist, then thumb to little finger,
base to tip)."""

PALM_EDGES = ((0, 1), (0, 5), (0, 17), (5, 9), (9, 13), (13, 17))

TIP_REACH_MM = (4.0, 8.0, 14.0)
"""Probes this far beyond each fingertip landmark, along the last phalanx (at or outside a
live hand's fingertip: a larger replica covers them, a smaller one leaves the landmark
outside)."""

SIDE_REACH_MM = (7.0, 14.0)
"""Probes this far beyond the index and little fingers' knuckles, across the palm (at or
outside the palm's edge)."""


def probe_names() -> tuple[str, ...]:
    """The names of :func:`probe_points`'s points, in order."""
    names = [f"lm{i}" for i in range(21)]
    for f in FINGERS:
        names += [f"mid{a}-{b}" for a, b in zip(f[:-1], f[1:])]
    names += [f"mid{a}-{b}" for a, b in PALM_EDGES]
    names += [f"tip{f[-1]}+{r:g}" for r in TIP_REACH_MM for f in FINGERS]
    names += [f"side{i}+{r:g}" for r in SIDE_REACH_MM for i in (5, 17)]
    names += [f"gap{a}-{b}" for a, b in ((7, 11), (11, 15), (15, 19), (6, 10), (10, 14),
                                         (14, 18))]
    return tuple(names)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else np.zeros_like(v)


def probe_points(lm: np.ndarray, px_per_mm: float) -> np.ndarray:
    """(P, 2) points tied to a hand's 21 landmarks ``lm`` (21, 2) in one image (the sensor
    frame), in :func:`probe_names` order: the landmarks, the middles of the fingers' and the
    palm's bones, points beyond the fingertips and beyond the palm's sides (outside a live
    hand), and points between neighbouring fingers. NaN where a landmark is NaN."""
    lm = np.asarray(lm, np.float64)
    # the same arithmetic, element by element, as a point at a time (each direction once)
    mids = (lm[_MID_A] + lm[_MID_B]) / 2
    tip = lm[[f[-1] for f in FINGERS]]
    along = np.array([_unit(lm[f[-1]] - lm[f[-2]]) for f in FINGERS])
    tips = tip[None] + along[None] * np.array(TIP_REACH_MM)[:, None, None] * px_per_mm
    knuckle = lm[[5, 17]]
    across = np.array([_unit(lm[i] - lm[j]) for i, j in ((5, 9), (17, 13))])
    sides = knuckle[None] + across[None] * np.array(SIDE_REACH_MM)[:, None, None] * px_per_mm
    gaps = (lm[_GAP_A] + lm[_GAP_B]) / 2
    return np.concatenate([lm, mids, tips.reshape(-1, 2), sides.reshape(-1, 2), gaps])


_MIDS = [(a, b) for f in FINGERS for a, b in zip(f[:-1], f[1:])] + list(PALM_EDGES)
_MID_A, _MID_B = [a for a, _ in _MIDS], [b for _, b in _MIDS]
_GAPS = ((7, 11), (11, 15), (15, 19), (6, 10), (10, 14), (14, 18))
_GAP_A, _GAP_B = [a for a, _ in _GAPS], [b for _, b in _GAPS]


def hand_in_sensor(plane_points: dict, centres: dict, sensor_centre: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """(landmarks (21, 2) where the sensor sees them, their 3-D points (21, 3)) from
    ``plane_points`` (view -> (21, 2) landmarks mapped onto the working plane, in sensor
    pixels) and ``centres`` (view -> camera centre); None with fewer than two views."""
    ks = [k for k in plane_points if k in centres]
    if len(ks) < 2:
        return None
    P = triangulate(np.stack([plane_points[k] for k in ks]),
                    np.stack([centres[k] for k in ks]))
    return project_to_sensor(P, sensor_centre), P


def _finger_of(i: int) -> int:
    return 0 if i == 0 else (i - 1) // 4 + 1


def probe_groups() -> np.ndarray:
    """(P + 1,) the finger each probe of :func:`probe_names` (then the height) belongs to:
    1 thumb ... 5 little finger, 0 the palm and the height."""
    out = []
    for n in probe_names():
        if n.startswith("lm"):
            out.append(_finger_of(int(n[2:])))
        elif n.startswith("mid"):
            a, b = (int(x) for x in n[3:].split("-"))
            out.append(0 if (a, b) in PALM_EDGES else _finger_of(b))
        elif n.startswith("tip"):
            out.append(_finger_of(int(n[3:].split("+")[0])))
        elif n.startswith("side"):
            out.append(_finger_of(int(n[4:].split("+")[0])))
        else:                                          # gapA-B: the first finger's
            out.append(_finger_of(int(n[3:].split("-")[0])))
    return np.array(out + [0])


def pair_residual(plane_a: np.ndarray, plane_b: np.ndarray, centre_a: np.ndarray,
                  centre_b: np.ndarray) -> float:
    """How far two views disagree about one hand: the points triangulated from both (as
    :func:`triangulate`, all points at once) seen again by each view (``C + (P - C) C_z /
    (C_z - z)``), the larger distance to that view's own point, median over the points seen
    by both (sensor pixels); NaN with none. Two views of one rigid hand agree up to the
    landmarks' noise."""
    C = np.stack([centre_a, centre_b]).astype(np.float64)
    q = np.stack([plane_a, plane_b]).astype(np.float64)            # (2, N, 2)
    ok = np.all(np.isfinite(q), axis=(0, 2))
    if not ok.any():
        return float("nan")
    q = q[:, ok]
    d = (q - C[:, None, :2]) / C[:, None, 2:3]                      # (2, N, 2)
    # normal equations of P_xy + d_v z = q_v over both views: [[2I, s], [s^T, |d|^2]]
    n = q.shape[1]
    M = np.zeros((n, 3, 3))
    M[:, 0, 0] = M[:, 1, 1] = 2.0
    M[:, :2, 2] = M[:, 2, :2] = d.sum(0)
    M[:, 2, 2] = (d ** 2).sum(axis=(0, 2))
    r = np.concatenate([q.sum(0), (d * q).sum(axis=(0, 2))[:, None]], axis=1)
    P = np.linalg.solve(M, r[..., None])[..., 0]                    # (N, 3)
    out = np.zeros(n)
    for v in range(2):
        f = C[v, 2] / (C[v, 2] - P[:, 2])
        seen = C[v, :2] + (P[:, :2] - C[v, :2]) * f[:, None]
        out = np.maximum(out, np.linalg.norm(seen - q[v], axis=1))
    return float(np.median(out))


def without_odd_view(plane_points: dict, centres: dict, max_px: float) -> dict:
    """``plane_points`` less a view whose landmarks disagree with every other view's by more
    than ``max_px`` (:func:`pair_residual`) while two other views agree within it: one view's
    landmark network gone wrong (a hand folded into its palm) does not place the hand for the
    others. Three views where exactly one pair disagrees while each of that pair agrees with
    the third (a view folded along the line the parallax absorbs): the one of that pair whose
    residual to the third is the larger is left out (the lead's rule, docs/results.md "The
    binding's odd view when two views disagree and both agree with the third"). Two views,
    views that all agree, or no two that agree: unchanged (the binding judges them as they
    are)."""
    ks = [k for k in plane_points if k in centres]
    if len(ks) < 3:
        return plane_points
    r = {}
    for i, a in enumerate(ks):
        for b in ks[i + 1:]:
            r[a, b] = r[b, a] = pair_residual(plane_points[a], plane_points[b], centres[a],
                                              centres[b])
    agree = {(a, b) for (a, b), x in r.items() if x <= max_px}
    if not agree:
        return plane_points
    odd = [k for k in ks if all(r[k, o] > max_px for o in ks if o != k)
           and any(a != k and b != k for a, b in agree)]
    if not odd and len(ks) == 3:
        apart = [(a, b) for i, a in enumerate(ks) for b in ks[i + 1:] if r[a, b] > max_px]
        if len(apart) == 1:                 # one pair apart, each of it agrees with the third
            a, b = apart[0]
            third = next(k for k in ks if k not in (a, b))
            if r[a, third] <= max_px and r[b, third] <= max_px:
                odd = [a if r[a, third] > r[b, third] else b]
    return {k: v for k, v in plane_points.items() if k not in odd}
