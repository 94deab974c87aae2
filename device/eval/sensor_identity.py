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
- **NIR: the palm's line map in palm coordinates** (:func:`palm_patch`, now the gate's
  :mod:`device.gate.sensor_identity`, re-exported here). The frame's line map
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

import numpy as np

from device.gate import binding_joints as J
# the NIR palm patch is the gate's (the product feature); named here for the measurement
from device.gate.sensor_identity import (MIN_PATCH_AREA, PATCH_MM, TURNS_DEG,  # noqa: F401
                                         palm_frame, palm_patch, patch_agreement, patch_maps)

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
