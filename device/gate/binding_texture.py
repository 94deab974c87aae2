"""The palm's lines in both halves: the NIR sensor frame's palm compared with the views' palm.

An 850-940 nm NIR camera below the palm sees the palm's surface lines (the principal and minor
creases) as a visible camera does, at a lower contrast, beside the veins. So the palm the views
show, carried into the sensor frame, must line up with the sensor frame's palm lines: a replica
before the cameras, or under the sensor, shows another hand's lines, or the same lines moved,
turned or scaled.

- **The mapping** (:func:`view_maps`): each pixel of the sensor frame is carried onto the
  palm's plane (fitted through the palm's landmarks placed in 3-D by the views' parallax,
  :func:`palm_plane`: wrist, thumb base, the four knuckles) along the sensor's ray, then onto
  the working plane along view ``k``'s ray (its camera centre), then into the view by the
  registration (the homography of the view's landmarks and their registered plane points,
  :func:`plane_to_view`). So the views' palm lands where the views say the palm is, with the
  registration's accuracy, not each view's landmarks' (one affine map a view fitted to its
  own palm landmarks carried their errors: live hands' median agreement 0.31 against 0.36, on
  120 live presentations of seed 11).
- **The palm area** (:func:`palm_mask`): the polygon of those landmarks in the sensor frame,
  shrunk by :data:`INSET_MM` (the outline and the finger bases stay out).
- **Line maps** (:func:`line_map`): dark thin lines stand out in a difference of Gaussians
  (:data:`LINE_SIGMA_MM`); the maps are standardised inside the palm area, the sensor frame's
  clipped at :data:`CLIP`.
- **The veins left out** (:func:`compared_area`): the NIR frame's veins are wide, blurred and
  deep; where a wider difference of Gaussians (:data:`VEIN_SIGMA_MM`) marks one, the pixels
  are not compared (dense dark veins drowned the lines of the live hands that agreed least).
- **The score** (:func:`line_agreement`, :func:`texture_agreement`): the normalised
  correlation of the sensor frame's line map with each view's warped line map, the best over
  shifts of up to :data:`SHIFT_MM` (the registration and the landmarks are off by a few
  pixels), at every size of
  :data:`SIZES` (:func:`size_curve`); the best view's best at the live sizes
  :data:`LIVE_SIZES` (a view that sees the palm obliquely does not pull a live hand down),
  less how much better every view's map fits at another size (:func:`size_penalty`: a replica
  of another size fits better elsewhere in every view; :func:`sized_agreement`). The gate
  compares only the sizes that can change that number
  (:func:`device.gate.binding_line_search.least_gap_agreement`; the same number to the last
  bit): a live hand's other sizes in one view, not in three.

The constants of the mapping, the line maps and the palm area were chosen on 120 bona fide and
160 mixed presentations of validation seed 11, the veins, the sizes and the views' combination
on 400 + 400 of seeds 11 and 23 each (branch ``nirlines``; the sizes and their weight there
and on seed 9317's 1,000 + 400 whole presentations, branch ``nirscale``; the NIR frames
showing the palm print, ``device.synth.bound.NIR_PALM_PRINT``). The thresholds (the least agreement and the
outline's threshold chosen with it) are signed numbers: ``palm_lines`` of
``models/binding_nir.json`` (:mod:`device.gate.binding_numbers`), written by ``python -m
device.eval.binding_eval --write-palm-lines`` on validation presentations.

Pure functions of arrays (numpy + OpenCV); no model, no file, no camera.
"""
from __future__ import annotations

import cv2
import numpy as np
from numpy.lib.stride_tricks import as_strided

from device.gate.binding_line_search import least_gap_agreement

PALM_LANDMARKS = (0, 1, 5, 9, 13, 17)
"""The landmarks that lie on the palm (MediaPipe order: wrist, thumb base, the four knuckles)."""

LINE_SIGMA_MM = (0.5, 1.5)
"""The difference of Gaussians that keeps the palm's lines (about 1 mm wide) and drops the
shading and most of the wide veins (chosen among 0.4/1.2 to 1.2/3.6 mm)."""

CLIP = 0.7
"""The sensor frame's standardised line map is clipped to +-this: a vein much darker than the
palm's lines counts no more than a line (chosen among 0.4, 0.5, 0.7, 1, 1.5, 2 and none)."""

VEIN_SIGMA_MM = (2.0, 5.0)
"""The wider difference of Gaussians in which the NIR frame's veins (wide, blurred, deep) stand
out and the palm's lines hardly do (among 1.2/3, 1.5/4 and 2/5 mm)."""

VEIN_LEVEL = 0.5
"""Pixels of the palm area where that vein map, standardised there, is above this are left out
of the comparison (the veins drown the lines there; among 0, 0.3, 0.5, 0.7, 1, 1.5)."""

INSET_MM = 5.0
"""The palm area is the palm landmarks' polygon shrunk by this much (chosen among 2-10 mm; the
finger bases taken in, through landmarks 2, 6, 10, 14 and 18, did worse)."""

SHIFT_MM = 2.0
"""The largest shift searched (the registration's error and the palm plane's; among 1-4.5 mm:
with one affine map a view from its landmarks 3 mm was best, with the palm plane 2 mm)."""

SIZE_STEP = 1.02
"""Step between the sizes searched (2 %; live hands' best size on the validation set of seed
9317 fell in 0.94-1.01 of the size the palm plane gives in 95 % of 997 presentations)."""

SIZES = tuple(float(SIZE_STEP ** k) for k in range(-17, 18))
"""Sizes of the views' hand (about its palm centre; 0.714-1.400 in steps of :data:`SIZE_STEP`)
at which every view's lines are compared with the sensor frame's: a replica 10-25 % larger or
smaller, seen through the views' parallax and the palm plane, lands 4-35 % off (its print's
size and the height the views place it at partly cancel); a coarser set (0.8-1.25 in 4-8 %
steps, beside two live sizes) missed the replicas that land 4-8 % off (branch ``nirscale``)."""

LIVE_SIZES = tuple(z for z in SIZES if 0.95 <= z <= 1.0)
"""The sizes of :data:`SIZES` at which a live hand's lines are looked for (0.961, 0.980, 1.0):
live hands fit best at 0.96-1.0 of the size the palm plane gives (chosen with
:data:`SIZE_GAIN` among 0.96-1.0 and 0.94-1.0: with the weight 3 and :data:`NEAR_LIVE`
0.92-1.03 the wider window denied 757 of the 797 mixed validation presentations of seeds
11 + 23 against 763, at the same 4 of 800 bona fide)."""

NEAR_LIVE = (0.92, 1.03)
"""Sizes within this range are not counted as another size (:data:`OTHER_SIZES`): live hands'
lines fit nearly as well next to :data:`LIVE_SIZES` (their best size fell at 0.94 or 1.02 in
about 5 % of them), and a replica that lands there is not told from a live hand by its size.
Chosen with :data:`SIZE_GAIN` (see there) among none, 0.94-1.01 and 0.92-1.03."""

OTHER_SIZES = tuple(z for z in SIZES if not NEAR_LIVE[0] <= z <= NEAR_LIVE[1])
"""The sizes of :data:`SIZES` at which a replica of another size fits the sensor frame's lines
better than at :data:`LIVE_SIZES` (0.714-0.906 and 1.040-1.400)."""

COMPARED_SIZES = tuple(sorted(set(LIVE_SIZES) | set(OTHER_SIZES)))
"""The sizes :func:`texture_agreement` compares at: those of :data:`SIZES` next to a live
hand's (:data:`NEAR_LIVE`, not live) count for nothing, so they are not computed."""

SIZE_GAIN = 3.0
"""Weight of how much better every view's lines fit at another size (:func:`size_penalty`).
Chosen on the validation presentations (binding_eval seeds 11 + 23, 400 + 400 each, the point
of ``device.eval.palm_line_point`` re-chosen for each candidate; then seed 9317's 1,000 + 400
whole presentations at that point) among 1, 2, 3 and 4, live sizes 0.96-1.0 or 0.94-1.0,
:data:`NEAR_LIVE` none, 0.94-1.01 or 0.92-1.03, and the views' gaps pooled as the least, the
median or the gap of their mean curve: the least, with 3, 0.96-1.0 and 0.92-1.03, denied the
most mixed presentations (seeds 11 + 23: 763 of 797 at 4 of 800 bona fide, against 751 with
the sizes of before; seed 9317: 9 of the 363 that reached the binding passed, against 24;
4 did as well on 11 + 23 and let one more through on 9317)."""

MIN_COMPARED_MM2 = 1000.0
"""Fewest mm^2 of compared palm area (:func:`compared_area`) for a comparison; below it the
presentation is not compared (NaN: denied). Unrelated lines agree above the signed least
agreement by chance in a small area (the best of shifts, sizes and views): 12 % of random
line patterns at 640 mm^2, none of 40 at 1,080 mm^2; 16 live presentations of seed 0 (the
palm print on) compared 1,540-2,340 mm^2; on validation seeds 11 + 23 (400 + 400 each) it
changed no bona fide presentation's agreement and made 8 mixed ones (denied before too) not
compared (review rev-lines)."""

MIN_PALM_ON_FRAME = 0.9
"""Least share of the palm area (the landmarks' polygon shrunk by :data:`INSET_MM`) that must
lie on the sensor frame: a palm held mostly off it leaves a strip whose lines agree by chance
(and the outline's probes off the frame count nothing). Live palms of seed 0 lay wholly on
it."""


def palm_plane(points: np.ndarray) -> np.ndarray | None:
    """(a, b, c) of the least-squares plane ``z = a x + b y + c`` through the finite rows of
    ``points`` (N, 3), the palm's landmarks in the sensor-pixel world; None with fewer than 3."""
    P = np.asarray(points, np.float64)
    P = P[np.all(np.isfinite(P), axis=1)]
    if len(P) < 3:
        return None
    A = np.column_stack([P[:, 0], P[:, 1], np.ones(len(P))])
    coef, _, rank, _ = np.linalg.lstsq(A, P[:, 2], rcond=None)
    return coef if rank == 3 else None


def plane_to_view(plane_pts: np.ndarray, view_pts: np.ndarray) -> np.ndarray | None:
    """3x3 homography working-plane point (sensor pixels) -> view pixel, fitted to a view's
    landmarks ``view_pts`` and their registered plane points ``plane_pts`` (N, 2 each; the
    registration's own map, so the fit is exact up to its lens distortion); None with fewer
    than 4 finite pairs."""
    q = np.asarray(plane_pts, np.float64)
    v = np.asarray(view_pts, np.float64)
    ok = np.all(np.isfinite(q), axis=1) & np.all(np.isfinite(v), axis=1)
    if ok.sum() < 4:
        return None
    H, _ = cv2.findHomography(q[ok], v[ok], 0)
    return H


def view_maps(shape: tuple[int, int], plane: np.ndarray, sensor_centre: np.ndarray,
              camera_centre: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y) float32 ``shape``: the view pixel each sensor pixel sees on the palm's
    plane ``z = a x + b y + c`` (:func:`palm_plane`), for :func:`cv2.remap`. The sensor sees a
    point ``P`` at ``E + (P - E) E_z / (E_z - z)`` (its centre of projection ``E``), so ``P``
    follows from the pixel and the plane (three fixed-point steps: the palm is near level);
    the view's ray from its centre ``C`` meets the working plane at ``C + (P - C) C_z / (C_z -
    z)``, which ``H`` (:func:`plane_to_view`) takes into the view."""
    a, b, c = (float(x) for x in plane)
    E = np.asarray(sensor_centre, np.float64)
    C = np.asarray(camera_centre, np.float64)
    h, w = shape
    # computed every STEP pixels (at the centres cv2.resize interpolates from), then resized:
    # the map is projective, smooth at that scale
    n, m = -(-h // _STEP), -(-w // _STEP)
    ys = (_STEP * np.arange(n) + (_STEP - 1) / 2)[:, None] * np.ones((1, m))
    xs = np.ones((n, 1)) * (_STEP * np.arange(m) + (_STEP - 1) / 2)[None, :]
    z = a * xs + b * ys + c
    for _ in range(3):
        f = (E[2] - z) / E[2]
        px, py = E[0] + (xs - E[0]) * f, E[1] + (ys - E[1]) * f
        z = a * px + b * py + c
    g = C[2] / (C[2] - z)
    qx, qy = C[0] + (px - C[0]) * g, C[1] + (py - C[1]) * g
    d = H[2, 0] * qx + H[2, 1] * qy + H[2, 2]
    mx = (H[0, 0] * qx + H[0, 1] * qy + H[0, 2]) / d
    my = (H[1, 0] * qx + H[1, 1] * qy + H[1, 2]) / d
    size = (m * _STEP, n * _STEP)
    mx = cv2.resize(mx.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)[:h, :w]
    my = cv2.resize(my.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)[:h, :w]
    return np.ascontiguousarray(mx), np.ascontiguousarray(my)


_STEP = 4


def palm_mask(sensor_pts: np.ndarray, shape: tuple[int, int], px_per_mm: float
              ) -> np.ndarray:
    """bool (H, W): the convex hull of the palm landmarks ``sensor_pts`` (N, 2) in the sensor
    frame, shrunk by :data:`INSET_MM`."""
    p = np.asarray(sensor_pts, np.float64)
    p = p[np.all(np.isfinite(p), axis=1)]
    m = np.zeros(shape, np.uint8)
    if len(p) < 3:
        return m > 0
    hull = cv2.convexHull(np.round(p * 16).astype(np.int32))
    cv2.fillConvexPoly(m, hull, 1, cv2.LINE_8, 4)
    r = int(round(INSET_MM * px_per_mm))
    if r > 0:
        m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return m > 0


def palm_area_px(sensor_pts: np.ndarray, shape: tuple[int, int], px_per_mm: float) -> float:
    """The pixels of :func:`palm_mask` were the frame unbounded (the part off the frame
    counted too); inf when a point is more than a frame's size off it."""
    p = np.asarray(sensor_pts, np.float64)
    p = p[np.all(np.isfinite(p), axis=1)]
    h, w = shape
    if len(p) and (np.any(p < -np.array([w, h])) or np.any(p > 2 * np.array([w, h]))):
        return float("inf")
    return float(palm_mask(p + [w, h], (3 * h, 3 * w), px_per_mm).sum())


def line_map(grey: np.ndarray, px_per_mm: float, sigma_mm: tuple = LINE_SIGMA_MM
             ) -> np.ndarray:
    """float32: dark thin lines of ``grey`` as positive values (the wide Gaussian minus the
    narrow one, ``sigma_mm``, by default :data:`LINE_SIGMA_MM`), relative to the local level
    (so an image's exposure and shading do not count)."""
    g = np.asarray(grey, np.float32)
    s1, s2 = (max(0.5, s * px_per_mm) for s in sigma_mm)
    wide = cv2.GaussianBlur(g, (0, 0), s2)
    return (wide - cv2.GaussianBlur(g, (0, 0), s1)) / (wide + 1.0)


def _standardised(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    v = x[mask]
    out = np.zeros_like(x, np.float32)
    sd = float(v.std()) if v.size else 0.0
    if sd > 1e-9:
        out[mask] = (v - float(v.mean())) / sd
    return out


def turned(x: np.ndarray, deg: float, nearest: bool = False) -> np.ndarray:
    """``x`` turned by ``deg`` degrees about its centre (same size, 0 outside; nearest
    neighbour for weights): the turns the patch comparisons search
    (:mod:`device.gate.sensor_identity`, :mod:`device.gate.bone_prefilter`)."""
    if deg == 0:
        return x
    h, w = x.shape
    M = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), deg, 1.0)
    return cv2.warpAffine(x, M, (w, h), flags=cv2.INTER_NEAREST if nearest else
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def line_agreement(sensor_lines: np.ndarray, view_lines: np.ndarray, weights: np.ndarray,
                   max_shift: int) -> float:
    """The best normalised correlation (-1..1) of the sensor frame's line map with a view's,
    both inside ``weights`` (the palm area less the veins, :func:`compared_area`), over integer
    shifts of up to ``max_shift`` pixels of the view's map; NaN with too small an area."""
    inside = (np.asarray(weights) > 0).view(np.uint8)
    if cv2.countNonZero(inside) < 50:
        return float("nan")
    x0, y0, bw, bh = cv2.boundingRect(inside)
    y1, x1 = y0 + bh, x0 + bw
    w = np.asarray(weights[y0:y1, x0:x1], np.float32)
    n = float(w.sum())
    t = np.asarray(sensor_lines[y0:y1, x0:x1], np.float32)
    mt = float((t * w).sum()) / n
    st = float(np.sqrt(((t - mt) ** 2 * w).sum() / n))
    s = max_shift
    vl = np.asarray(view_lines, np.float32)
    if y0 >= s and x0 >= s and y1 + s <= vl.shape[0] and x1 + s <= vl.shape[1]:
        img = vl[y0 - s:y1 + s, x0 - s:x1 + s]          # no shift reaches past the frame
    else:
        pad = cv2.copyMakeBorder(vl, s, s, s, s, cv2.BORDER_REFLECT)
        img = pad[y0:y1 + 2 * s, x0:x1 + 2 * s]
    # the sensor's map (centred, weighted) against the view's at every shift, normalised by
    # the view's weighted standard deviation there
    if s <= ROWS_MAX_SHIFT:
        num, s1, s2 = shifted_sums(img, (t - mt) * w, w)
    else:
        num = cv2.matchTemplate(img, (t - mt) * w, cv2.TM_CCORR)
        s1 = cv2.matchTemplate(img, w, cv2.TM_CCORR)
        s2 = cv2.matchTemplate(img * img, w, cv2.TM_CCORR)
    var = np.maximum(s2 / n - (s1 / n) ** 2, 1e-12)
    return float((num / (n * st * np.sqrt(var) + 1e-12)).max())


ROWS_MAX_SHIFT = 2
"""Up to this largest shift :func:`line_agreement` sums by :func:`shifted_sums`, beyond it by
three ``cv2.matchTemplate`` (through the DFT). Measured (branch ``nircoarse``, thread CPU, one
core): the palm lines (shift 2, boxes about 80x45) of 60 captured presentations of seed 9317,
median a presentation, 7.4-7.5 ms with :func:`shifted_sums`, 8.3-8.5 with its windows taken one
row of shifts at a time, 11.8 with ``cv2.matchTemplate``; at shift 4 (81 shifts) of an 80x80
box ``cv2.matchTemplate`` takes 259 us against 1,258."""


def shifted_sums(img: np.ndarray, tw: np.ndarray, w: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At every shift ``d`` of the window ``w.shape`` in ``img`` (``(H - h + 1, W - w + 1)``
    each, as ``cv2.matchTemplate`` with ``TM_CCORR``): ``sum img(p + d) tw(p)``, ``sum img(p +
    d) w(p)`` and ``sum img(p + d)^2 w(p)``. Every shift's window one row of a matrix, times
    ``tw`` and ``w`` (one matrix product; its square times ``w``): the same sums as the DFT's
    to float32 rounding."""
    img = np.asarray(img, np.float32)
    h, wd = w.shape
    ny, nx = img.shape[0] - h + 1, img.shape[1] - wd + 1
    rs, cs = img.strides
    x = as_strided(img, (ny, nx, h, wd), (rs, cs, rs, cs), writeable=False).reshape(ny * nx, -1)
    m = np.stack([np.asarray(tw, np.float32).ravel(), np.asarray(w, np.float32).ravel()], 1)
    num, s1 = (x @ m).T
    s2 = (x * x) @ m[:, 1]
    return num.reshape(ny, nx), s1.reshape(ny, nx), s2.reshape(ny, nx)


def compared_area(grey: np.ndarray, palm: np.ndarray, px_per_mm: float) -> np.ndarray:
    """float32 weights (0/1): the palm area ``palm`` less the NIR frame's veins (where its
    :data:`VEIN_SIGMA_MM` map, standardised in the palm area, is above :data:`VEIN_LEVEL`):
    wide, deep and blurred, they drown the palm's lines and no view shows them."""
    veins = _standardised(line_map(grey, px_per_mm, VEIN_SIGMA_MM), palm)
    return (palm & (veins < VEIN_LEVEL)).astype(np.float32)


def _view_lines(img: np.ndarray, maps: tuple[np.ndarray, np.ndarray], px_per_mm: float
                ) -> np.ndarray:
    """The line map of a view's palm carried into the sensor frame by ``maps``
    (:func:`view_maps`), the view blurred to the sensor's resolution first."""
    mx, my = maps
    r, c = mx.shape[0] // 2, mx.shape[1] // 2
    scale = float(np.hypot(mx[r, c + 1] - mx[r, c], my[r, c + 1] - my[r, c]))
    # only the part of the view the sensor frame sees (plus the blur's reach) is used
    h, w = img.shape[:2]
    x0 = int(np.clip(np.floor(mx.min()) - 8, 0, w - 1))
    x1 = int(np.clip(np.ceil(mx.max()) + 9, x0 + 1, w))
    y0 = int(np.clip(np.floor(my.min()) - 8, 0, h - 1))
    y1 = int(np.clip(np.ceil(my.max()) + 9, y0 + 1, h))
    crop = img[y0:y1, x0:x1]
    vg = (crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)).astype(np.float32)
    if scale > 1.2:
        vg = cv2.GaussianBlur(vg, (0, 0), 0.5 * scale)
    warped = cv2.remap(vg, mx - x0, my - y0, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return line_map(warped, px_per_mm)


def _scaled(x: np.ndarray, centre: np.ndarray, s: float, nearest: bool = False) -> np.ndarray:
    A = np.array([[s, 0.0, (1 - s) * centre[0]], [0.0, s, (1 - s) * centre[1]]])
    return cv2.warpAffine(x, A, (x.shape[1], x.shape[0]),
                          flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


def texture_agreement(frame: np.ndarray, views, maps: dict, sensor_landmarks: np.ndarray,
                      px_per_mm: float) -> float:
    """How well the palm lines of the views agree with the sensor frame's (about -1..1; higher
    is better bound): each view's :func:`size_curve` over :data:`COMPARED_SIZES`, combined
    by :func:`sized_agreement` (the best view's at :data:`LIVE_SIZES`, less :data:`SIZE_GAIN`
    times how much better every view fits at another size), the sizes that cannot change
    that number left uncompared (:func:`~device.gate.binding_line_search.
    least_gap_agreement`). Compared inside :func:`compared_area`. ``frame``: the grey
    sensor frame; ``views``: view -> its image (a list or dict, BGR or grey); ``maps``: view ->
    its (map_x, map_y) (:func:`view_maps`); ``sensor_landmarks``: (21, 2) where the sensor sees
    the landmarks (the palm area). NaN when no view can be compared, the frame has a pixel
    that is NaN or infinite, less than :data:`MIN_PALM_ON_FRAME` of the palm lies on the
    frame, or the compared area is under :data:`MIN_COMPARED_MM2`."""
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if g.dtype.kind == "f" and not np.isfinite(g).all():
        return float("nan")                   # a broken frame agrees with nothing
    s_pts = np.asarray(sensor_landmarks, np.float64)[list(PALM_LANDMARKS)]
    palm = palm_mask(s_pts, g.shape, px_per_mm)
    if palm.sum() < 50 or palm.sum() < MIN_PALM_ON_FRAME * palm_area_px(s_pts, g.shape,
                                                                        px_per_mm):
        return float("nan")                   # (much of) the palm off the frame
    sl = np.clip(_standardised(line_map(g, px_per_mm), palm), -CLIP, CLIP)
    w = compared_area(g, palm, px_per_mm)
    if w.sum() < MIN_COMPARED_MM2 * px_per_mm ** 2:
        return float("nan")                   # too small an area: lines agree by chance
    shift = max(1, int(round(SHIFT_MM * px_per_mm)))
    c = s_pts[np.all(np.isfinite(s_pts), axis=1)].mean(axis=0)
    lines = []
    for k, mp in maps.items():
        img = views.get(k) if isinstance(views, dict) else (
            views[k] if 0 <= k < len(views) else None)
        if img is None or mp is None:
            continue
        lines.append(_standardised(_view_lines(img, mp, px_per_mm), palm))
    inside = w > 0

    def agreement(v: int, z: float) -> float:
        return size_agreement(sl, lines[v], w, c, shift, z, inside)
    return least_gap_agreement(agreement, len(lines), LIVE_SIZES, OTHER_SIZES, SIZE_GAIN)


def size_curve(sensor_lines: np.ndarray, view_lines: np.ndarray, weights: np.ndarray,
               centre: np.ndarray, max_shift: int, sizes=SIZES) -> np.ndarray:
    """(len(sizes),) :func:`line_agreement` of the sensor frame's line map with a view's,
    the view's map (and the compared area with it) scaled by each size of ``sizes`` about
    ``centre`` (the palm's centre in the sensor frame); NaN where too little area is left."""
    inside = weights > 0
    return np.array([size_agreement(sensor_lines, view_lines, weights, centre, max_shift, z,
                                    inside) for z in sizes], np.float64).reshape(len(sizes))


def size_agreement(sensor_lines: np.ndarray, view_lines: np.ndarray, weights: np.ndarray,
                   centre: np.ndarray, max_shift: int, size: float,
                   inside: np.ndarray | None = None) -> float:
    """One size of :func:`size_curve`: :func:`line_agreement` with the view's map (and the
    compared area with it) scaled by ``size`` about ``centre``; ``inside``: ``weights > 0``
    (computed once by a caller comparing many sizes)."""
    if size == 1.0:
        return line_agreement(sensor_lines, view_lines, weights, max_shift)
    if inside is None:
        inside = weights > 0
    ws = _scaled(weights, centre, size, nearest=True) * inside
    return line_agreement(sensor_lines, _scaled(view_lines, centre, size), ws, max_shift)


def _live(sizes) -> np.ndarray:
    return np.array([z in LIVE_SIZES for z in sizes])


def size_penalty(curves: list, sizes=SIZES) -> float:
    """How much better every view's lines fit at another size than at a live hand's: for each
    view's :func:`size_curve` its best agreement over :data:`LIVE_SIZES` and
    :data:`OTHER_SIZES` less its best over :data:`LIVE_SIZES`, the least of the views' (0 when
    one view fits best at a live size or next to one; a replica of another size fits better
    elsewhere in every view). NaN without a view whose curve is finite at a live size."""
    live = _live(sizes)
    counted = live | np.array([z in OTHER_SIZES for z in sizes])
    gaps = [float(np.nanmax(c[counted]) - np.nanmax(c[live])) for c in map(np.asarray, curves)
            if np.isfinite(c[live]).any()]
    return min(gaps) if gaps else float("nan")


def sized_agreement(curves: list, sizes=SIZES) -> float:
    """The palm lines' agreement from the views' :func:`size_curve`: the best view's best
    agreement at :data:`LIVE_SIZES` (a view that sees the palm obliquely or blurred does not
    pull a live hand down), less :data:`SIZE_GAIN` times :func:`size_penalty`. NaN when no
    view's curve is finite at a live size."""
    live = _live(sizes)
    best = [float(np.nanmax(c[live])) for c in map(np.asarray, curves)
            if np.isfinite(c[live]).any()]
    if not best:
        return float("nan")
    return max(best) - SIZE_GAIN * max(0.0, size_penalty(curves, sizes))
