"""Finger valleys of a hand mask (classical, numpy + OpenCV only): outline -> convex hull ->
convexity defects; among the deep defects the three finger valleys index-middle, middle-ring,
ring-little as the triple that is most evenly spaced and collinear with the palm on one side,
and the thumb-index valley as a further deep defect beside one end of it (that end is
index-middle; without a thumb the labels follow the right-hand convention and ``hand`` is None).

:func:`find_valleys` is the entry point; :data:`VISIBLE_VALLEY_TESTS` and
:data:`NIR_VALLEY_TESTS` are its settings for whole hands seen by a camera and for contact NIR
frames. Failures raise :class:`~device.vision.region_types.RegionError`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from device.vision.region_types import RegionError
from device.vision.roi_geometry import _line_frame
from device.vision.segmentation import inner_distance

VISIBLE_VALLEY_TESTS = dict(min_palm_distance=0.7, max_spacing_ratio=1.6, min_outer_finger=0.2,
                            allow_hidden_middle=False)
"""find_valleys settings for whole hands seen by a camera."""

NIR_VALLEY_TESTS = dict(min_palm_distance=0.55, max_spacing_ratio=2.0, min_outer_finger=0.1,
                        allow_hidden_middle=True)
"""find_valleys settings for contact NIR frames: the palm fills the frame (it sits closer to
the valley line), the fingers leave it after a short stub, a peg may hide the middle-ring
valley, and the peg's tip (the middle-ring valley seen) need not lie midway (the thumb, which
the spacing test guards against, is out of view)."""


@dataclass
class _Defect:
    start: np.ndarray
    end: np.ndarray
    far: np.ndarray
    depth: float
    idx: int          # index of the far point on the contour
    dense_idx: int = 0  # index of the far point on the dense outline
    p: np.ndarray | None = None  # the valley: middle of the gap's bottom (see _refine)


@dataclass
class ValleyFit:
    """The three finger valleys, the optional thumb valley and how well they fit."""

    index_middle: np.ndarray
    middle_ring: np.ndarray
    ring_little: np.ndarray
    thumb_index: np.ndarray | None
    hand: str | None
    fit: float               # 0..1 regularity of the triple
    palm_point: np.ndarray   # centre of the largest inscribed circle of the hand


def _defects(mask: np.ndarray, min_depth: float = 0.0):
    """(polygon (N, 2), dense outline (M, 2), convexity defects) of the largest outline of
    ``mask``; the polygon simplifies the outline by about a pixel, and each defect knows the
    index of its far point on both."""
    pad = 2
    m = cv2.copyMakeBorder((mask > 0).astype(np.uint8), pad, pad, pad, pad,
                           cv2.BORDER_CONSTANT, value=0)
    cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not cs:
        return None, None, []
    c = max(cs, key=cv2.contourArea)
    dense = c[:, 0, :].astype(np.float64) - pad
    d = None
    for eps in (1.0, 2.5):
        approx = cv2.approxPolyDP(c, eps, True)
        pts = approx[:, 0, :].astype(np.float64) - pad
        if len(approx) < 5:
            return pts, dense, []
        try:
            hull = cv2.convexHull(approx, returnPoints=False)
            d = cv2.convexityDefects(approx, hull)
            break
        except cv2.error:  # self-intersecting polygon: simplify more
            continue
    if d is None:
        return pts, dense, []
    out = []
    k = len(dense)
    for s, e, f, depth in d.reshape(-1, 4):
        if depth / 256.0 < min_depth:
            continue
        # one hull edge may bridge several gaps when the outline touches it between them
        # without making a hull vertex (fingers that reach the image border in one line, as
        # on PolyU frames): split the edge's arc where it comes back to the hull line
        i0 = int(np.argmin(np.hypot(*(dense - pts[s]).T)))
        i1 = int(np.argmin(np.hypot(*(dense - pts[e]).T)))
        idx = _arc(k, i0, i1)
        arc = dense[idx]
        a, b = pts[s], pts[e]
        ab = b - a
        L = float(np.hypot(*ab))
        if L < 1e-6:
            continue
        dep = ((arc - a) @ np.array([ab[1], -ab[0]])) / L
        dep = np.abs(dep)
        touch = dep <= max(1.5, 0.02 * L)
        # runs between touching points
        j = 0
        while j < len(arc):
            if touch[j]:
                j += 1
                continue
            j2 = j
            while j2 < len(arc) and not touch[j2]:
                j2 += 1
            seg = dep[j:j2]
            m = j + int(np.argmax(seg))
            if dep[m] >= min_depth:
                fi = int(np.argmin(np.hypot(*(pts - arc[m]).T)))
                out.append(_Defect(arc[max(j - 1, 0)], arc[min(j2, len(arc) - 1)], arc[m],
                                   float(dep[m]), fi, dense_idx=int(idx[m])))
            j = j2
    return pts, dense, out


def _on_border(p: np.ndarray, shape, tol: float = 2.5) -> bool:
    h, w = shape
    return p[0] < tol or p[1] < tol or p[0] > w - 1 - tol or p[1] > h - 1 - tol


def _arc(n_pts: int, i: int, j: int) -> np.ndarray:
    """Contour indices from i to j (cyclic, forward)."""
    return np.arange(i, i + ((j - i) % n_pts) + 1) % n_pts


def _refine(dense: np.ndarray, d: _Defect, n: np.ndarray, tol: float,
            window: int) -> np.ndarray:
    """The valley as the middle of the outline's deepest stretch toward the palm (``n``) within
    ``window`` outline pixels of the defect's far point: a flat web bottom gives its centre."""
    k = len(dense)
    offs = np.arange(-window, window + 1)
    p = dense[(d.dense_idx + offs) % k]
    s = p @ n
    sel = s >= s.max() - tol
    # the deepest stretch nearest to the far point (not another dip in the window)
    i0 = int(np.argmin(np.where(sel, np.abs(offs), 10 ** 9)))
    lo, hi = i0, i0
    while lo > 0 and sel[lo - 1]:
        lo -= 1
    while hi < len(sel) - 1 and sel[hi + 1]:
        hi += 1
    return p[lo:hi + 1].mean(0)


def _outward_rise(dense: np.ndarray, start: int, stop: int, step: int, valley: np.ndarray,
                  n: np.ndarray, span: float, shape=None) -> float:
    """How far (in spans, toward the fingers, -n) the outline rises above ``valley`` walking
    from dense index ``start`` away from the triple (``step`` -1: backward, +1: forward) up to
    dense index ``stop`` (the next gap) or four spans of outline."""
    k = len(dense)
    n_steps = (stop - start) % k if step > 0 else (start - stop) % k
    if n_steps == 0:
        n_steps = k
    n_steps = min(n_steps, int(4 * span * 1.5) + 2)
    idx = (start + step * np.arange(1, n_steps)) % k
    pts = dense[idx]
    seg = np.hypot(*np.diff(pts, axis=0, prepend=dense[start][None]).T)
    pts = pts[np.cumsum(seg) <= 4 * span]
    if not len(pts):
        return 0.0
    rise = (-(pts - valley) @ n) / span
    if shape is not None:
        # a finger that leaves the image above the valley line counts as a whole finger
        h, w = shape
        edge = (pts[:, 0] <= 0.5) | (pts[:, 1] <= 0.5) | (pts[:, 0] >= w - 1.5) \
            | (pts[:, 1] >= h - 1.5)
        if (edge & (rise > 0.02)).any():
            return max(1.0, float(rise.max()))
    return float(rise.max())


@dataclass
class _Params:
    min_palm_distance: float
    max_spacing_ratio: float
    min_outer_finger: float


def _score_triple(a: _Defect, b: _Defect, c: _Defect, prev_idx: int, next_idx: int,
                  dense: np.ndarray, palm: np.ndarray, r_in: float, scale: float,
                  prm: _Params, shape=None):
    """(score, fit, n, span) when a, b, c (in outline order) look like the index-middle /
    middle-ring / ring-little valleys (either way round), else None."""
    k = len(dense)
    t, n, span = _line_frame(a.p, c.p, palm)
    if span < 0.1 * scale or span > 1.3 * scale:
        return None
    d1 = np.hypot(*(b.p - a.p))
    d2 = np.hypot(*(c.p - b.p))
    if min(d1, d2) < 0.2 * span or d1 + d2 > 1.35 * span:
        return None
    ratio = max(d1, d2) / min(d1, d2)
    mid = (a.p + c.p) / 2
    hdev = abs(float(np.dot(b.p - mid, n))) / span
    if ratio > prm.max_spacing_ratio or hdev > 0.35:
        return None
    # the palm lies well to one side of the valley line ...
    if np.dot(palm - mid, n) < prm.min_palm_distance * span:
        return None
    # ... the arcs a->b and b->c (one finger each) stick out to the other side and keep away
    # from the palm (the arc c->a, the rest of the hand, holds it) ...
    for p, q in ((a, b), (b, c)):
        arc = dense[_arc(k, p.dense_idx, q.dense_idx)]
        if len(arc) < 3 or (-(arc - mid) @ n).max() < 0.12 * span:
            return None
        if np.hypot(*(arc - palm).T).min() < 0.5 * r_in:
            return None
    # ... and beyond each end there is one more finger (index, little): the outline leaving
    # the end valley outward rises toward the fingers before it turns to the wrist. This
    # rejects the gap between the little finger and the palm edge.
    rise = min(_outward_rise(dense, a.dense_idx, prev_idx, -1, a.p, n, span, shape),
               _outward_rise(dense, c.dense_idx, next_idx, +1, c.p, n, span, shape))
    if rise < prm.min_outer_finger:
        return None
    depth = min(a.depth, b.depth, c.depth) / span
    fit = max(0.0, 1.0 - 1.0 * (ratio - 1.0) - 1.5 * hdev)
    return fit + 0.5 * min(depth, 1.0), fit, n, span


def _middle_between(a: _Defect, c: _Defect, dense: np.ndarray, palm: np.ndarray
                    ) -> _Defect | None:
    """The deepest outline point (toward the palm) between two gaps, away from both: the
    middle-ring valley where its gap is closed or hidden (fingers together, a peg)."""
    k = len(dense)
    idx = _arc(k, a.dense_idx, c.dense_idx)
    pts = dense[idx]
    t, n, span = _line_frame(a.p, c.p, palm)
    # in the middle half of the span, between the two gaps
    away = np.abs((pts - (a.p + c.p) / 2) @ t) <= 0.25 * span
    if not away.any():
        return None
    s = np.where(away, pts @ n, -np.inf)
    m = int(np.argmax(s))
    return _Defect(pts[m], pts[m], pts[m], min(a.depth, c.depth), -1, dense_idx=int(idx[m]),
                   p=pts[m].copy())


def _find_thumb(cand: list, ia: int, ic: int, b: _Defect, n: np.ndarray, span: float):
    """(thumb-index gap, the end of the triple beside it) or (None, None): the next deep gap
    along the outline beyond one end of the triple, lying beyond that end across the hand and
    well down toward the wrist (the lower and deeper of two such gaps)."""
    a, c = cand[ia], cand[ic]
    nc = len(cand)
    mid = (a.p + c.p) / 2
    thumb, thumb_end, best_t = None, None, -np.inf
    for q, end, other in (((ic + 1) % nc, c, a), ((ia - 1) % nc, a, c)):
        d = cand[q]
        if d is a or d is c or d is b:
            continue
        lat = float(np.dot(d.p - mid, (end.p - other.p) / span))
        down = float(np.dot(d.p - mid, n)) / span
        dist_end = np.hypot(*(d.p - end.p)) / span
        if lat >= 0.65 and 0.3 <= down <= 1.8 and 0.5 <= dist_end <= 2.2 \
                and d.depth >= 0.3 * span:
            s = d.depth / span - abs(down - 0.9)
            if s > best_t:
                best_t, thumb, thumb_end = s, d, end
    return thumb, thumb_end


THUMB_BONUS = 0.4
"""Score bonus of a valley triple with a thumb-index gap beside it: of two triples one finger
apart (the thumb web taken for the index-middle gap), the right one has the thumb beyond it."""


def find_valleys(mask: np.ndarray, min_palm_distance: float = 0.7,
                 max_spacing_ratio: float = 1.6, min_outer_finger: float = 0.2,
                 allow_hidden_middle: bool = False, fingers_leave_image: bool = True,
                 thumb_bonus: float = THUMB_BONUS) -> ValleyFit:
    """The finger valleys of a hand mask (uint8 0/1). Raises RegionError.

    ``min_palm_distance``: the palm (centre of the largest inscribed circle) lies at least this
    many valley spans from the valley line; ``max_spacing_ratio``: the larger of the two
    neighbouring valley distances over the smaller. Both reject a triple that takes the thumb
    valley for a finger valley (thumb-index-middle spacing ratio is about 2 or more and the
    palm sits close to that tilted line). ``min_outer_finger``: the index and little fingers
    beyond the ends must rise at least this many spans above their valleys.
    ``allow_hidden_middle``: when no three gaps fit, accept two gaps with the middle-ring
    valley taken as the deepest outline point between them (a peg between the middle and ring
    fingers, as on PolyU-style NIR sensors). ``fingers_leave_image``: an index or little finger
    that leaves the image above its valley passes ``min_outer_finger``. ``thumb_bonus``: score
    added to a triple with a thumb-web gap beside it."""
    h, w = mask.shape
    area = float(np.count_nonzero(mask))
    if area < 0.02 * h * w:
        raise RegionError("no_hand", "no hand-sized region in the image")
    if area > 0.97 * h * w:
        raise RegionError("no_hand", "no background around the hand (blank frame?)")
    scale = np.sqrt(area)
    _, r_in, _, pc = cv2.minMaxLoc(inner_distance(mask))
    palm = np.array(pc, np.float64)
    min_depth = 0.05 * scale
    _, dense, defects = _defects(mask, min_depth)
    cand = [d for d in defects if d.depth >= min_depth and not _on_border(d.far, (h, w))]
    cand.sort(key=lambda d: d.dense_idx)
    need = 2 if allow_hidden_middle else 3
    if len(cand) < need:
        raise RegionError("too_few_valleys", f"{len(cand)} finger gaps found, {need} needed "
                          "(fingers closed or cut off?)")
    window = max(3, int(round(0.05 * scale)))
    tol = max(1.0, 0.01 * scale)
    for d in cand:  # the bottom of each gap as seen from the palm
        v = palm - d.far
        d.p = _refine(dense, d, v / max(1e-9, float(np.hypot(*v))), tol, window)
    prm = _Params(min_palm_distance, max_spacing_ratio, min_outer_finger)
    shape = (h, w) if fingers_leave_image else None
    nc = len(cand)
    best = None
    for trip in itertools.combinations(range(nc), 3):
        for rot in range(3):
            ia, ib, ic = (trip[(rot + q) % 3] for q in range(3))
            r = _score_triple(cand[ia], cand[ib], cand[ic], cand[(ia - 1) % nc].dense_idx,
                              cand[(ic + 1) % nc].dense_idx, dense, palm, r_in, scale, prm,
                              shape)
            if r is not None:
                sc = r[0] + thumb_bonus * (_find_thumb(cand, ia, ic, cand[ib], r[2], r[3])[0]
                                           is not None)
                if best is None or sc > best[0]:
                    best = (sc, r[1], ia, cand[ib], ic, r[2], r[3])
    if best is None and allow_hidden_middle:
        for ia in range(nc):
            for ic in range(nc):
                if ia == ic:
                    continue
                b = _middle_between(cand[ia], cand[ic], dense, palm)
                if b is None:
                    continue
                r = _score_triple(cand[ia], b, cand[ic], cand[(ia - 1) % nc].dense_idx,
                                  cand[(ic + 1) % nc].dense_idx, dense, palm, r_in, scale,
                                  prm, shape)
                if r is not None:
                    sc = r[0] + thumb_bonus * (_find_thumb(cand, ia, ic, b, r[2], r[3])[0]
                                               is not None)
                    if best is None or sc > best[0]:
                        best = (sc, r[1], ia, b, ic, r[2], r[3])
    if best is None:
        raise RegionError("too_few_valleys", "no three finger valleys in a row "
                          f"({len(cand)} gaps found, none evenly spaced beside the palm)")
    _, fit, ia, b, ic, n, span = best
    a, c = cand[ia], cand[ic]
    thumb, thumb_end = _find_thumb(cand, ia, ic, b, n, span)
    # refine the valley points to the middle of the web bottom, now seen along the frame
    va, vc = (_refine(dense, d, n, tol, window) for d in (a, c))
    vb = _refine(dense, b, n, tol, window) if b.idx >= 0 else b.p
    vt = _refine(dense, thumb, n, tol, window) if thumb is not None else None
    t = np.array([n[1], -n[0]])          # image-right for an upright palm (u of the frame)
    if thumb is not None:
        im_is_a = thumb_end is a
        hand = "right" if np.dot((va if im_is_a else vc) - (vc if im_is_a else va), t) > 0 \
            else "left"
    else:
        im_is_a = np.dot(va - vc, t) > 0    # right-hand convention: index side on +u
        hand = None
    v_im, v_rl = (va, vc) if im_is_a else (vc, va)
    return ValleyFit(v_im, vb, v_rl, vt, hand, float(fit), palm)
