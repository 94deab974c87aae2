"""Palm regions (seed 000, claim 7): hand keypoints -> the first region (the palm centre, the
"preset part") and the second region (the rest of the palm), rectified to fixed sizes.

Classical and numpy + OpenCV only:

1. segment the hand (``device.vision.segmentation``: two Otsu levels for grey NIR frames, skin
   colour + GrabCut for colour photos; several hypotheses for colour photos, the first one whose
   outline passes the valley test below wins);
2. outline -> convex hull -> convexity defects; among the deep defects pick the three finger
   valleys index-middle, middle-ring, ring-little as the triple that is most evenly spaced and
   collinear with the palm on one side, and the thumb-index valley as a further deep defect beside
   one end of it (that end is index-middle; without a thumb the labels follow the right-hand
   convention and ``hand`` is None);
3. palm frame as in the Zhang/PolyU ROI method: the x-axis through the index-middle and
   ring-little valleys, the palm centre ``offset`` valley spans from their midpoint toward the
   palm, the first region a square of ``side`` spans around it, rectified to 128x128 grey; the
   second region the concentric square 1.5 times as large, rectified to 192x192 at the same scale
   (its central 128x128 is the first region) with a mask of the pixels that belong to it: inside
   the image, on the hand, outside the first region.

The frame is a rotation of the image, never a reflection, so a palm's first region looks the same
whichever valley got which label. Failures raise :class:`RegionError` with a short ``reason``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np

from device.vision.segmentation import (inner_distance, is_grey, modality_of,
                                      segment_nir_candidates, segment_visible_candidates,
                                      to_grey)

FIRST_SIZE = 128
"""Side of the rectified first region (the palm-centre ROI), pixels."""

SECOND_SIZE = 192
"""Side of the rectified second region; at the first region's scale, so its central
FIRST_SIZE x FIRST_SIZE pixels are the first region."""

VALLEY_NAMES = ("index_middle", "middle_ring", "ring_little", "thumb_index")
"""Order of the valleys in :attr:`HandKeypoints.valleys` (the synthetic hands' order)."""

REASONS = ("bad_input", "no_hand", "too_few_valleys", "hand_too_small", "hand_cut_off",
           "roi_off_hand", "low_quality")
"""Every ``RegionError.reason``."""


class RegionError(ValueError):
    """The palm regions could not be acquired; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class RegionGeometry:
    """Where the first region sits in the valley frame, in units of the valley span (distance
    between the index-middle and ring-little valleys)."""

    side: float = 1.25
    """First-region side / span."""
    offset: float = 0.875
    """Distance from the valley line to the first-region centre (the palm centre) / span."""

    def __post_init__(self):
        if not (self.side > 0 and self.offset > 0):
            raise ValueError("side and offset must be positive")


VISIBLE_GEOMETRY = RegionGeometry(1.25, 0.875)
"""Whole hands seen by a camera: the synthetic hands' own ROI (0.25 span below the valley line
to the square's top edge, side 1.25 spans), the usual contactless-palmprint ROI."""

NIR_GEOMETRY = RegionGeometry(0.95, 0.75)
"""Contact NIR sensors with a peg (PolyU-style frames, where the palm fills the frame): the
largest square that stays on the palm of held-out-free training subjects (see README)."""


VISIBLE_VALLEY_TESTS = dict(min_palm_distance=0.7, max_spacing_ratio=1.6, min_outer_finger=0.2,
                            allow_hidden_middle=False)
"""find_valleys settings for whole hands seen by a camera."""

NIR_VALLEY_TESTS = dict(min_palm_distance=0.55, max_spacing_ratio=2.0, min_outer_finger=0.1,
                        allow_hidden_middle=True)
"""find_valleys settings for contact NIR frames: the palm fills the frame (it sits closer to
the valley line), the fingers leave it after a short stub, a peg may hide the middle-ring
valley, and the peg's tip (the middle-ring valley seen) need not lie midway (the thumb, which
the spacing test guards against, is out of view)."""


def default_geometry(modality: str) -> RegionGeometry:
    return NIR_GEOMETRY if modality == "nir" else VISIBLE_GEOMETRY


@dataclass(frozen=True)
class HandKeypoints:
    """Image-pixel keypoints of one hand."""

    valleys: np.ndarray
    """(4, 2) float64 in :data:`VALLEY_NAMES` order; the thumb-index row is NaN when the thumb
    valley was not found (always on NIR frames with a peg, where the thumb is out of view)."""
    palm_centre: np.ndarray
    """(2,) the first region's centre."""
    hand: str | None = None
    """"right" / "left" as the camera sees the palm (thumb on the image right of an upright
    right palm), or None when no thumb valley was found (labels then follow the right-hand
    convention)."""

    names = VALLEY_NAMES

    def as_dict(self) -> dict:
        v = [None if np.isnan(p).any() else [float(p[0]), float(p[1])] for p in self.valleys]
        return {"valleys": dict(zip(VALLEY_NAMES, v)),
                "palm_centre": [float(self.palm_centre[0]), float(self.palm_centre[1])],
                "hand": self.hand}


@dataclass
class HandRegions:
    """The two regions of one palm image."""

    keypoints: HandKeypoints
    roi: np.ndarray
    """First region: (128, 128) uint8 grey, the palm-centre square (the "preset part")."""
    roi_corners: np.ndarray
    """(4, 2) image points of the first region's pixel centres (0,0), (127,0), (127,127),
    (0,127) -- the synthetic hands' ``roi_corners`` convention."""
    second_region: np.ndarray
    """(192, 192) uint8 grey, concentric with the first region at the same scale; pixels outside
    the image are 0."""
    second_mask: np.ndarray
    """(192, 192) bool: the pixels of ``second_region`` that belong to the second region."""
    second_corners: np.ndarray
    """(4, 2) image points of the second region's pixel centres, same order as roi_corners."""
    quality: float
    """In [0, 1]: valley regularity x hand coverage of the first region x exposure."""
    modality: str = "visible"
    hand_mask: np.ndarray | None = field(default=None, repr=False)
    """(H, W) uint8 0/1 segmentation (None for ROI-level input)."""
    image_shape: tuple[int, int] | None = None
    segmentation: str = ""
    """Where the hand mask came from: "net" (the segmentation network), "classical" (skin
    colour + GrabCut or the NIR levels), "" for ROI-level input."""

    def image_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, second) bool masks at the image's size: the first region's square, and the
        rest of the palm (hand mask minus the first region; the whole remainder of the image
        when there is no hand mask). They are disjoint."""
        h, w = self.image_shape
        first = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(first, _half_pixel_square(self.roi_corners, FIRST_SIZE), 1,
                           lineType=cv2.LINE_8)
        first = first.astype(bool)
        rest = self.hand_mask.astype(bool) if self.hand_mask is not None else np.ones((h, w), bool)
        return first, rest & ~first


# --------------------------------------------------------------------------------------------
# valleys


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


def _line_frame(a: np.ndarray, c: np.ndarray, toward: np.ndarray):
    """Unit vectors (t along a->c, n normal to it pointing toward ``toward``) and the span."""
    d = c - a
    span = float(np.hypot(*d))
    t = d / span
    n = np.array([-t[1], t[0]])
    if np.dot(toward - (a + c) / 2, n) < 0:
        n = -n
    return t, n, span


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


# --------------------------------------------------------------------------------------------
# frame and regions


def _half_pixel_square(corners: np.ndarray, size: int) -> np.ndarray:
    """Integer polygon of the area covered by pixel centres ``corners`` of a size x size grid."""
    c = np.asarray(corners, np.float64)
    ctr = c.mean(0)
    grow = size / (size - 1.0)
    return np.round(ctr + (c - ctr) * grow).astype(np.int32)


def frame_corners(v_im: np.ndarray, v_rl: np.ndarray, palm_side: np.ndarray,
                  geometry: RegionGeometry, size: int = FIRST_SIZE, side_scale: float = 1.0):
    """Pixel-centre corners (TL, TR, BR, BL) of a square of ``side_scale`` first-region sides
    around the palm centre, and the centre. ``palm_side`` is any point on the palm side of the
    valley line."""
    _, n, span = _line_frame(v_rl, v_im, palm_side)
    u = np.array([n[1], -n[0]])
    centre = (v_im + v_rl) / 2 + n * geometry.offset * span
    # pixel centres of a size x size grid span (size - 1) pixel steps; the first region's
    # step is side / (FIRST_SIZE - 1)
    half = geometry.side * span / (FIRST_SIZE - 1) * (size - 1) / 2 * side_scale
    corners = np.array([centre - u * half - n * half, centre + u * half - n * half,
                        centre + u * half + n * half, centre - u * half + n * half])
    return corners, centre


def rectify(image: np.ndarray, corners: np.ndarray, size: int, interp=cv2.INTER_LINEAR,
            border_value=0) -> np.ndarray:
    """Warp the square whose pixel centres (0,0), (size-1,0), (size-1,size-1) lie at
    ``corners[:3]`` to a size x size image (pre-blurred when it shrinks the image)."""
    src = np.float32(corners[:3])
    dst = np.float32([[0, 0], [size - 1, 0], [size - 1, size - 1]])
    A = cv2.getAffineTransform(dst, src)
    step = float(np.hypot(*(corners[1] - corners[0]))) / (size - 1)
    im = image
    if step > 1.3 and interp != cv2.INTER_NEAREST:
        im = cv2.GaussianBlur(image, (0, 0), 0.45 * np.sqrt(step * step - 1.0))
    return cv2.warpAffine(im, A, (size, size), flags=interp | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def _inside(corners: np.ndarray, shape, margin: float = 0.0) -> bool:
    h, w = shape
    return bool((corners[:, 0] >= -margin).all() and (corners[:, 1] >= -margin).all()
                and (corners[:, 0] <= w - 1 + margin).all()
                and (corners[:, 1] <= h - 1 + margin).all())


def regions_from_valleys(image: np.ndarray, fit: ValleyFit, mask: np.ndarray | None,
                         geometry: RegionGeometry, modality: str,
                         min_coverage: float = 0.9) -> HandRegions:
    """First and second regions from located valleys. Raises RegionError."""
    grey = to_grey(image)
    shape = grey.shape
    span = float(np.hypot(*(fit.index_middle - fit.ring_little)))
    if span < 16:
        raise RegionError("hand_too_small", f"valley span {span:.0f} px; the palm is too far")
    c1, centre = frame_corners(fit.index_middle, fit.ring_little, fit.palm_point, geometry)
    if not _inside(c1, shape, margin=0.02 * geometry.side * span):
        raise RegionError("hand_cut_off", "the palm-centre square leaves the image")
    c2, _ = frame_corners(fit.index_middle, fit.ring_little, fit.palm_point, geometry,
                          SECOND_SIZE)
    roi = rectify(grey, c1, FIRST_SIZE)
    second = rectify(grey, c2, SECOND_SIZE)
    in_img = rectify(np.full(shape, 255, np.uint8), c2, SECOND_SIZE, cv2.INTER_NEAREST) > 0
    if mask is not None:
        on_hand = rectify(mask.astype(np.uint8), c2, SECOND_SIZE, cv2.INTER_NEAREST) > 0
    else:
        on_hand = in_img
    m0 = (SECOND_SIZE - FIRST_SIZE) // 2
    coverage = float(on_hand[m0:m0 + FIRST_SIZE, m0:m0 + FIRST_SIZE].mean())
    if coverage < min_coverage:
        raise RegionError("roi_off_hand", f"only {coverage:.0%} of the palm-centre square is "
                          "on the hand")
    second_mask = on_hand & in_img
    second_mask[m0:m0 + FIRST_SIZE, m0:m0 + FIRST_SIZE] = False
    valleys = np.full((4, 2), np.nan)
    valleys[0], valleys[1], valleys[2] = fit.index_middle, fit.middle_ring, fit.ring_little
    if fit.thumb_index is not None:
        valleys[3] = fit.thumb_index
    kp = HandKeypoints(valleys, centre, fit.hand)
    exposure = 1.0 - float(((roi >= 250) | (roi <= 5)).mean())
    cov_q = float(np.clip((coverage - min_coverage) / max(1e-6, 1 - min_coverage), 0, 1)) \
        if min_coverage < 1 else 1.0
    quality = float(np.sqrt(max(fit.fit, 0.0)) * (0.5 + 0.5 * cov_q) * exposure)
    return HandRegions(kp, roi, c1, second, second_mask, c2, quality, modality,
                       None if mask is None else mask.astype(np.uint8), shape)


def extract_regions(image: np.ndarray, modality: str = "auto",
                    geometry: RegionGeometry | None = None,
                    min_quality: float = 0.0, segmenter=None) -> HandRegions:
    """First and second palm regions of a hand image (grey NIR frame or BGR photo).

    ``segmenter``: a callable BGR view -> hand mask (e.g.
    :class:`device.vision.segmentation.NetSegmenter`) tried first on colour views; the classical
    hypotheses follow when its mask gives no valid set of finger valleys.

    ``modality``: "auto" (grey -> nir, colour -> visible), "nir" or "visible". ``geometry``
    defaults to :data:`NIR_GEOMETRY` / :data:`VISIBLE_GEOMETRY`. Raises :class:`RegionError`.
    """
    if image is None or not isinstance(image, np.ndarray) or image.ndim not in (2, 3) \
            or min(image.shape[:2]) < 32:
        raise RegionError("bad_input", "expected a grey or BGR image of at least 32x32")
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    if modality == "auto":
        modality = modality_of(image)
    if modality not in ("nir", "visible"):
        raise ValueError(f"unknown modality {modality!r}; use auto, nir or visible")
    if modality == "visible" and is_grey(image):
        modality = "nir"  # a grey frame has no skin colour: use the intensity segmentation
    geometry = geometry or default_geometry(modality)
    if modality == "nir":
        masks = segment_nir_candidates(image)
    elif segmenter is not None:
        masks = itertools.chain((segmenter(image),), segment_visible_candidates(image))
    else:
        masks = segment_visible_candidates(image)
    first_is_net = modality != "nir" and segmenter is not None
    nir = modality == "nir"
    errors: list[RegionError] = []
    best: HandRegions | None = None
    for k, mask in enumerate(masks):
        try:
            fit = find_valleys(mask, **(NIR_VALLEY_TESTS if nir else VISIBLE_VALLEY_TESTS))
            reg = regions_from_valleys(image, fit, mask, geometry, modality)
        except RegionError as e:
            errors.append(e)
            continue
        reg.segmentation = "net" if first_is_net and k == 0 else "classical"
        best = reg  # hypotheses come most likely first: the first that passes wins
        break
    if best is None:
        # report the failure that got furthest along
        order = {r: i for i, r in enumerate(REASONS)}
        raise max(errors, key=lambda e: order[e.reason]) if errors else \
            RegionError("no_hand", "no hand found")
    if best.quality < min_quality:
        raise RegionError("low_quality", f"quality {best.quality:.2f} < {min_quality:.2f}")
    return best


def read_hand_image(path) -> np.ndarray | None:
    """An image file as the region step wants it: 2-D grey when the file is grey (also a grey
    JPEG stored with three equal channels), BGR otherwise; None when it cannot be decoded."""
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None:
        return None
    if im.dtype != np.uint8:
        im = cv2.normalize(im, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    if im.ndim == 3 and im.shape[2] == 4:
        im = im[..., :3]
    if im.ndim == 3 and is_grey(im, tol=1.0):
        im = np.ascontiguousarray(im[..., 1])
    return im


def regions_from_roi(roi: np.ndarray, first_fraction: float = FIRST_SIZE / SECOND_SIZE
                     ) -> HandRegions:
    """Regions of an already cropped palm ROI: the whole crop is the second region's square
    (rectified to 192x192), its central ``first_fraction`` is the first region (rectified to
    128x128), and the second region's mask is everything outside it. With the default fraction
    both share one scale, as at hand level."""
    if roi is None or not isinstance(roi, np.ndarray) or roi.ndim not in (2, 3) \
            or min(roi.shape[:2]) < 8:
        raise RegionError("bad_input", "expected a grey or BGR ROI of at least 8x8")
    if not 0 < first_fraction < 1:
        raise ValueError("first_fraction must be in (0, 1)")
    grey = to_grey(roi if roi.dtype == np.uint8 else
                   cv2.normalize(roi, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U))
    h, w = grey.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    full = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    first = np.array([cx, cy]) + (full - [cx, cy]) * first_fraction
    second = rectify(grey, full, SECOND_SIZE)
    first_img = rectify(grey, first, FIRST_SIZE)
    m = np.ones((SECOND_SIZE, SECOND_SIZE), bool)
    # second-region pixels whose centres fall inside the first square
    ys, xs = np.mgrid[0:SECOND_SIZE, 0:SECOND_SIZE] / (SECOND_SIZE - 1.0)
    lo, hi = (1 - first_fraction) / 2, (1 + first_fraction) / 2
    tolx = 0.5 / (SECOND_SIZE - 1)
    m[(xs >= lo - tolx) & (xs <= hi + tolx) & (ys >= lo - tolx) & (ys <= hi + tolx)] = False
    kp = HandKeypoints(np.full((4, 2), np.nan), np.array([cx, cy]), None)
    exposure = 1.0 - float(((first_img >= 250) | (first_img <= 5)).mean())
    return HandRegions(kp, first_img, first, second, m, full, exposure, "roi", None, (h, w))
