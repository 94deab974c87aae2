"""The sensor frame against the enrolled person's own: a same-modality identity feature (a
measurement spike, docs/results.md "The sensor frame against the enrolled person's").

The binding (:mod:`device.gate.sensor_binding`) compares the sensor frame's hand with the
views' hand, across modalities; another person's live hand under the sensor in the pose of the
victim's replica is what it lets through. Here the sensor frame is compared with a sensor frame
of the person the views identified, captured at enrolment -- the same modality, so the hand's
own identity counts, not only its shape against the views'.

Both features are registered by the views' landmarks carried into the sensor frame (the
binding's :attr:`~device.gate.sensor_binding.HandProbes.landmarks`), in millimetres on the
hand (the sensor's pixels per mm at the working plane, corrected by the hand's height the views
triangulated, :func:`device.synth.bound.depth_magnification`):

- **X-ray: the phalanges' lengths** (:func:`bone_lengths`). Along each finger's axis (the
  views' landmarks, :func:`device.gate.binding_joints.finger_profile`) the joint spaces are
  dips of the ridge profile; each joint (index..little MCP, PIP, DIP; thumb CMC, MCP, IP) is
  the deepest dip within :data:`JOINT_WINDOW_MM` of where the landmarks (plus the live hands'
  landmark-to-joint offset ``mu`` of the signed bone statistics) put it. The feature is the
  two lengths between a finger's three joints (proximal and middle phalanx; thumb: first
  metacarpal and proximal phalanx), 10 numbers in mm, NaN where a joint is not found. Pose:
  the lengths are along the finger (rotation, shift, spread drop out), the height corrects the
  magnification; flexion foreshortens by under 4 %. Compared by :func:`bone_distance`: the
  mean absolute difference over the lengths both frames have, the largest
  :data:`TRIM` left out (mm; lower is the same person).
- **NIR: the palm's line map in palm coordinates** (:func:`palm_patch`). The frame's line map
  (the binding's difference of Gaussians, :func:`device.gate.binding_texture.line_map`) is
  resampled onto a palm-centred grid (:data:`PATCH_MM`, 1 mm a pixel; origin at the palm's
  centre, the wrist-to-middle-knuckle direction up) with the palm area (the palm landmarks'
  polygon shrunk by :data:`~device.gate.binding_texture.INSET_MM`), optionally less the
  frame's veins (:func:`device.gate.binding_texture.compared_area`). Compared by
  :func:`patch_agreement`: the best normalised correlation over shifts up to ``shift_mm`` and
  turns of :data:`TURNS_DEG` (the landmarks' error), over the area both have (higher is the
  same person).

Pure functions of arrays (numpy + OpenCV); no model, no file. The measurement (rendering,
scores, operating point) is :mod:`device.eval.sensor_identity_eval`.
"""
from __future__ import annotations

import cv2
import numpy as np

from device.gate import binding_joints as J
from device.gate import binding_texture as T

JOINT_WINDOW_MM = 6.0
"""A joint is the deepest dip this far either side of where the landmarks put it (the live
hands' landmark-to-joint offsets spread 1.5-4 mm; a phalanx is 18-45 mm long)."""

MIN_DIP = 0.0
"""A dip shallower than this (the ridge profile's grey levels, 0..255) is no joint found."""

TRIM = 2
""":func:`bone_distance` leaves out this many of the largest differences (a joint the dip
search got wrong)."""

MIN_LENGTHS = 4
""":func:`bone_distance` needs this many lengths seen in both frames (NaN otherwise)."""

PATCH_MM = 80
"""Side of the palm-centred NIR grid, mm (1 mm a pixel)."""

TURNS_DEG = (-6.0, -3.0, 0.0, 3.0, 6.0)
"""Turns of the gate's palm patch searched (the views' landmarks set the palm's direction
within a few degrees)."""

MIN_PATCH_AREA = 600
"""Fewest mm^2 compared by :func:`patch_agreement` (NaN otherwise)."""


# ------------------------------------------------------------------------------ X-ray
def bone_lengths(img: np.ndarray, lm: np.ndarray, px_mm: float, mu: np.ndarray | None = None
                 ) -> np.ndarray:
    """(10,) mm: each finger's two lengths between its three joints (index, middle, ring,
    little, thumb in :data:`device.gate.binding_joints.CHAINS` order; NaN where a joint is not
    found). ``img`` float32 (H, W) with NaN outside the exposed field (the binding's
    ``HandProbes.bones``), ``lm`` (21, 2) the views' landmarks in its pixels, ``px_mm`` pixels
    per mm of the hand (magnification included), ``mu`` (15,) the live hands' landmark-to-joint
    offsets (mm; zeros when None)."""
    mu = np.zeros(15) if mu is None else np.asarray(mu, np.float64)
    lm = np.asarray(lm, np.float64)
    out = np.full(10, np.nan)
    if lm.shape != (21, 2) or not np.all(np.isfinite(lm)) or not px_mm > 0:
        return out
    for f, chain in enumerate(J.CHAINS):
        t, cum, ridge = J.finger_profile(img, lm[list(chain)], px_mm)
        d = J.dip_response(ridge)
        pos = np.full(3, np.nan)
        for k in range(3):
            tj = cum[k] + mu[3 * f + k]
            sel = (np.abs(t - tj) <= JOINT_WINDOW_MM) & np.isfinite(d)
            if not sel.any():
                continue
            i = np.flatnonzero(sel)[np.argmax(d[sel])]
            if d[i] > MIN_DIP:
                pos[k] = t[i]
        out[2 * f:2 * f + 2] = np.diff(pos)
    return out


def bone_distance(a: np.ndarray, b: np.ndarray, trim: int = TRIM,
                  min_lengths: int = MIN_LENGTHS) -> float:
    """Mean absolute difference (mm) of two :func:`bone_lengths` over the lengths both have,
    the ``trim`` largest left out; NaN with fewer than ``min_lengths`` in both."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    d = np.sort(d[np.isfinite(d)])
    if len(d) < max(min_lengths, trim + 1):
        return float("nan")
    return float(d[:len(d) - trim].mean())


# ------------------------------------------------------------------------------ NIR
def palm_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(origin (2,), up (2,) unit) of the palm in the frame's pixels: the centre of the wrist
    and the four knuckles, the wrist-to-middle-knuckle direction; None when not finite."""
    lm = np.asarray(lm, np.float64)
    if lm.shape != (21, 2) or not np.all(np.isfinite(lm[[0, 5, 9, 13, 17]])):
        return None
    up = lm[9] - lm[0]
    n = float(np.linalg.norm(up))
    if n < 1e-6:
        return None
    return lm[[0, 5, 9, 13, 17]].mean(axis=0), up / n


def patch_maps(lm: np.ndarray, px_mm: float, size: int = PATCH_MM
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """(map_x, map_y) float32 (size, size): the frame's pixel at each point of the palm grid
    (1 mm a pixel, the palm's origin in the middle, up toward the fingers = row 0); None when
    the palm cannot be placed."""
    pf = palm_frame(lm)
    if pf is None or not px_mm > 0:
        return None
    o, up = pf
    right = np.array([-up[1], up[0]])
    c = (np.arange(size) - (size - 1) / 2.0) * px_mm
    gx, gy = np.meshgrid(c, c)                     # gy grows downward: away from the fingers
    X = o[0] + gx * right[0] - gy * up[0]
    Y = o[1] + gx * right[1] - gy * up[1]
    return X.astype(np.float32), Y.astype(np.float32)


def palm_patch(grey: np.ndarray, lm: np.ndarray, px_mm: float, veins_out: bool = True,
               size: int = PATCH_MM) -> tuple[np.ndarray, np.ndarray] | None:
    """(line map, weights) float32 (size, size) of an NIR frame's palm on the palm grid
    (:func:`patch_maps`): the binding's line map standardised in the palm area and clipped at
    :data:`~device.gate.binding_texture.CLIP`, the weights 1 on the palm area (less the veins
    with ``veins_out``) inside the frame. None when the palm cannot be placed."""
    maps = patch_maps(lm, px_mm, size)
    if maps is None:
        return None
    g = np.asarray(grey, np.float32)
    if g.ndim == 3:
        g = cv2.cvtColor(g, cv2.COLOR_BGR2GRAY)
    palm = T.palm_mask(np.asarray(lm, np.float64)[list(T.PALM_LANDMARKS)], g.shape, px_mm)
    if palm.sum() < 50:
        return None
    w = T.compared_area(g, palm, px_mm) if veins_out else palm.astype(np.float32)
    lines = np.clip(T._standardised(T.line_map(g, px_mm), palm), -T.CLIP, T.CLIP)
    mx, my = maps
    pl = cv2.remap(lines, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                   borderValue=0.0)
    pw = cv2.remap(w, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                   borderValue=0.0)
    return pl, pw


def _turned(x: np.ndarray, deg: float, nearest: bool = False) -> np.ndarray:
    if deg == 0:
        return x
    h, w = x.shape
    M = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), deg, 1.0)
    return cv2.warpAffine(x, M, (w, h), flags=cv2.INTER_NEAREST if nearest else
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def patch_agreement(enrolled: tuple[np.ndarray, np.ndarray], probe: tuple[np.ndarray, np.ndarray],
                    shift_mm: float = 4.0, turns=TURNS_DEG,
                    min_area: float = MIN_PATCH_AREA) -> float:
    """The best normalised correlation (-1..1) of the enrolled palm patch's line map with the
    probe's, turned by each of ``turns`` and shifted up to ``shift_mm`` (1 mm a pixel), over
    the area both weigh (the enrolled patch's weights times the probe's, unshifted); NaN when
    that area is under ``min_area`` mm^2 or either is None."""
    if enrolled is None or probe is None:
        return float("nan")
    el, ew = enrolled
    best = float("nan")
    for a in turns:
        pl, pw = _turned(probe[0], a), _turned(probe[1], a, nearest=True)
        w = ew * (pw > 0)
        if w.sum() < min_area:
            continue
        r = T.line_agreement(el, pl, w, max(0, int(round(shift_mm))))
        if np.isfinite(r) and not r <= best:
            best = r
    return best
