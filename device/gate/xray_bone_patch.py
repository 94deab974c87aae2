"""The X-ray identity feature: the mid-hand bone patch, the bones' image on the palm grid
(pure functions; the gate's X-ray sensor identity check, :mod:`device.gate.sensor_identity_stage`;
measured as a spike on branch ``xid``, docs/results.md "An X-ray identity feature from the
bones' image", and through the gate on branch ``xidgate``).

The phalanx lengths (:func:`device.eval.sensor_identity.bone_lengths`) let 80 % of impostors
pass. Here the X-ray frame's bones themselves are compared: the frame is band-passed (the
binding's difference of Gaussians, :func:`device.gate.binding_texture.line_map`, negated so
bright bones are positive: the soft tissue's slow thickness and the exposure drop out),
resampled onto the palm-centred grid the NIR patch uses (:func:`device.gate.sensor_identity.
patch_maps`: the views' landmarks carried into the frame, 1 mm a pixel, the wrist-to-middle-
knuckle direction up), the grid's centre moved ``offset_mm`` toward the fingers; weighed inside
the hand (the binding's hand cut, shrunk by :data:`EDGE_MM` so the outline's edge does not
count) and the exposed field. Compared by the NIR patch's comparison
(:func:`device.gate.sensor_identity.patch_agreement`: the best normalised correlation over
shifts and turns).

What it sees in the synthetic frame (device/synth/hand_layout.py, sensor.py): the metacarpals'
and proximal phalanges' positions against the palm, their widths, lengths and the joint spaces
-- per person (:func:`device.synth.hand_geometry.sample_hand_geometry`), as a real radiograph
would show them -- and, redrawn per presentation, the trabecular texture (a band noise under
1 mm, mostly below the 1.5 mm pixel), the soft tissue's inhomogeneity and the finger spread
and flexion (the phalanges move; the metacarpals do not).

Pure functions of arrays (numpy + OpenCV); no model, no file.
"""
from __future__ import annotations

import cv2
import numpy as np

from device.gate import binding_texture as T
from device.gate.sensor_identity import grey_float, hand_px_mm, palm_frame, patch_maps

BONE_SIGMA_MM = (0.7, 4.0)
"""The band kept: narrow and wide Gaussians (mm) of the difference (bones 5-10 mm wide; the
narrow one is held at half a pixel, 0.75 mm at the X-ray's 0.67 px/mm). Chosen on seed 11:
(1, 6) let 24 % of impostors pass at offset 0, edge 4, shift 4; (0.7, 4) 18 %; (1.5, 8) and wider
worse."""

BONE_PATCH_MM = 80
"""Side of the bone patch's grid, mm (1 mm a pixel). Chosen on seed 11: 60, 80, 100."""

OFFSET_MM = -20.0
"""The grid's centre this far from the palm's centre toward the fingers, mm (negative: toward
the wrist; the patch then holds the metacarpals and the distal carpals). Chosen on seed 11: +10,
0, -10, -20, -30 mm."""

EDGE_MM = 7.0
"""The hand cut shrunk by this much before weighing (the outline's edge left out). Chosen on
seed 11: 2, 4, 7, 10 mm."""

SHIFT_MM = 6.0
"""The largest shift the comparison searches, mm (the views' landmarks place the hand within a
few mm). Chosen on seed 11: 2, 4, 6, 8 mm."""

REFINE_DEG = (-1.0, 1.0)
"""Turns tried around the best of the comparison's turns (:data:`device.gate.sensor_identity.
TURNS_DEG`, 3 deg apart), degrees: the bones' image turns with the thumb's spread and the
fingers' pose, and half a 3-deg step moves the patch's edge by 1 mm (development seed 8831,
docs/results.md "The X-ray bone patch's person tail (branch xid)"). The gate takes the signed
``sensor_identity.refine_deg`` of models/binding_xray.json (the same turns); this is what a
signed file without it decides with (:meth:`device.gate.sensor_identity_stage.
SensorIdentityStage.refine`)."""


def bone_patch(grey: np.ndarray, hand: np.ndarray, field: np.ndarray, lm: np.ndarray,
               px_mm: float, size: int = BONE_PATCH_MM, offset_mm: float = OFFSET_MM,
               sigma_mm: tuple = BONE_SIGMA_MM, edge_mm: float = EDGE_MM
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """(bone map, weights) float32 (size, size) of an X-ray frame on the palm grid: the
    band-passed frame standardised inside the weighed area and clipped at
    :data:`~device.gate.binding_texture.CLIP` x 4; weights 1 inside the hand (shrunk by
    ``edge_mm``) and the exposed field. ``hand``/``field`` bool (H, W) (the binding's
    :func:`~device.gate.binding_silhouette.sensor_hand`), ``lm`` (21, 2) the views' landmarks in
    the frame, ``px_mm`` pixels per mm of the hand. None when the palm cannot be placed or too
    little of it is inside."""
    lm = np.asarray(lm, np.float64)
    if lm.shape != (21, 2) or not np.all(np.isfinite(lm)) or not px_mm > 0:
        return None
    palm = palm_frame(lm)
    if palm is None:
        return None
    # the grid's centre moved toward the fingers: every landmark shifted back along "up"
    lm_c = lm + palm[1] * (offset_mm * px_mm)
    maps = patch_maps(lm_c, px_mm, size)
    if maps is None:
        return None
    g = grey_float(grey)
    inside = (np.asarray(hand, bool) & np.asarray(field, bool)).astype(np.uint8)
    r = int(round(edge_mm * px_mm))
    if r > 0:
        inside = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                            (2 * r + 1, 2 * r + 1)))
    if int(inside.sum()) < 50:
        return None
    bones = -T.line_map(g, px_mm, sigma_mm)
    bones = np.clip(T._standardised(bones, inside > 0), -4 * T.CLIP, 4 * T.CLIP)
    mx, my = maps
    pb = cv2.remap(bones, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                   borderValue=0.0)
    pw = cv2.remap(inside.astype(np.float32), mx, my, cv2.INTER_NEAREST,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    if float(pw.sum()) < 0.2 * size * size:
        return None
    return pb, pw


def probe_bone_patch(frame: np.ndarray, probes, size: int = BONE_PATCH_MM
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """The bone patch of an X-ray frame where the binding placed the views' hand (``probes``:
    a :class:`~device.gate.sensor_binding.HandProbes`, its landmarks, height and pixels per
    mm), the hand cut as the binding cuts it (:func:`~device.gate.binding_silhouette.
    sensor_hand_and_field`: the X-ray's settings, its rim band included); None when the hand
    was not placed or too little is inside."""
    from device.gate.binding_silhouette import _grey, sensor_hand_and_field
    if probes is None:
        return None
    lm = np.asarray(probes.landmarks, np.float64)
    if lm.shape != (21, 2) or not np.all(np.isfinite(lm)):
        return None
    hand, field = sensor_hand_and_field(frame, "xray")
    return bone_patch(_grey(frame), hand, field, lm,
                      hand_px_mm(probes.px_mm, "xray", probes.height_mm), size)
