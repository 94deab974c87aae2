"""The sensor frame against the identified person's own: the NIR palm patch, the same-modality
identity feature of the sensor frame, and its comparison (pure functions).

The binding (:mod:`device.gate.sensor_binding`) compares the sensor frame's hand with the views'
hand, across modalities; another person's live hand under the sensor in the pose of the
victim's replica before the cameras is what it can let through. Here the sensor frame is
compared with the sensor frames of the person the views identified, kept at enrolment (a
protected sensor template, :mod:`device.store.sensor_templates`): the same modality, so the
hand's own identity counts, not only its shape against the views'.

**The NIR palm patch** (:func:`palm_patch`). The frame's line map (the binding's difference of
Gaussians, :func:`device.gate.binding_texture.line_map`) is resampled onto a palm-centred grid
(:data:`PATCH_MM` a side, 1 mm a pixel; origin at the palm's centre, the wrist-to-middle-knuckle
direction up) with the palm area (the palm landmarks' polygon shrunk by
:data:`~device.gate.binding_texture.INSET_MM`) less the frame's veins
(:func:`device.gate.binding_texture.compared_area`). The landmarks are the views' landmarks
carried into the sensor frame by the binding (:attr:`HandProbes.landmarks`), the scale the
sensor's pixels per mm at the working plane corrected by the hand's height the views
triangulated (:func:`hand_px_mm`). Compared by :func:`patch_agreement`: the best normalised
correlation over shifts up to ``shift_mm`` and turns of :data:`TURNS_DEG` (the landmarks'
error), over the area both weigh (higher is the same person); a person's score is the best over
their templates (:func:`best_agreement`).

X-ray's feature is the bones' image on the same palm grid (:mod:`device.gate.xray_bone_patch`,
compared by the same :func:`patch_agreement`; the phalanx lengths measured in
device/eval/sensor_identity.py let 80 % of impostors pass); :data:`IDENTITY_SENSORS` names the
sensors that have one.

The threshold and the comparison's settings are signed numbers: ``sensor_identity`` of
``models/binding_<sensor>.json`` (:func:`identity_numbers`). A template is stored as bytes
(:func:`patch_to_bytes`: float16 line map and the 0/1 weights as bits), sealed by the store.

Chosen on validation seed 11 (branch ``sensorid``: the veins out, shifts of 4 mm against 2
and 6, turns of 6 deg); docs/results.md "The sensor frame against the enrolled person's".
Pure functions of arrays (numpy + OpenCV); no model, no file.
"""
from __future__ import annotations

import math
import struct

import cv2
import numpy as np

from device.gate import binding_texture as T
from device.gate.binding_joints import finite_number
from device.gate.identity_cohort import (STATS_BYTES, cohort_numbers, cohort_stats,
                                         stats_from_bytes, stats_to_bytes)
from device.gate.hand_size import size_from_bytes, size_numbers, size_to_bytes
from device.gate.lookalikes import lookalike_numbers

IDENTITY_SENSORS = ("nir", "xray")
"""The sensors whose frame carries a usable identity feature (NIR: the palm's lines; X-ray: the
mid-hand bones, :mod:`device.gate.xray_bone_patch`)."""

PATCH_MM = 80
"""Side of the palm-centred NIR grid, mm (1 mm a pixel)."""

TURNS_DEG = (-6.0, -3.0, 0.0, 3.0, 6.0)
"""Turns of the gate's palm patch searched (the views' landmarks set the palm's direction
within a few degrees)."""

SHIFT_MM = 4.0
"""The largest shift searched (chosen on seed 11: 2 mm let 30 % of impostors pass; 4 and 6 mm
alike)."""

MIN_PATCH_AREA = 600
"""Fewest mm^2 compared by :func:`patch_agreement` (NaN otherwise)."""

_MAGIC = b"PGSP"
_FORMAT = 1
_FORMAT_SIZED = 2
_FORMAT_COHORT = 3
"""The template bytes' formats: the palm patch; the palm patch and the views' hand size; those
and the enrolment's cohort (mean, sd) (:mod:`device.gate.identity_cohort`)."""


# ------------------------------------------------------------------------------ the patch
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


def grey_float(frame: np.ndarray) -> np.ndarray:
    """A sensor frame (grey or BGR) as grey float32, its levels unchanged."""
    g = np.asarray(frame, np.float32)
    return cv2.cvtColor(g, cv2.COLOR_BGR2GRAY) if g.ndim == 3 else g


def palm_patch(grey: np.ndarray, lm: np.ndarray, px_mm: float, veins_out: bool = True,
               size: int = PATCH_MM, area: np.ndarray | None = None,
               sigma_mm: tuple = T.LINE_SIGMA_MM) -> tuple[np.ndarray, np.ndarray] | None:
    """(line map, weights) float32 (size, size) of an NIR frame's palm on the palm grid
    (:func:`patch_maps`): the binding's line map standardised in the palm area and clipped at
    :data:`~device.gate.binding_texture.CLIP`, the weights 1 on the palm area (less the veins
    with ``veins_out``) inside the frame. ``area`` (bool, the frame's shape): the only pixels
    the palm area may take (a frame that cuts the hand, as a pegged contact sensor's: the
    hand's region less a margin, device/eval/real_nir_identity.py); None: the gate's, the
    whole frame. ``sigma_mm``: the line map's scale (the signed ``line_sigma_mm``,
    :func:`identity_numbers`; by default the binding's). None when the palm cannot be placed."""
    maps = patch_maps(lm, px_mm, size)
    if maps is None:
        return None
    g = grey_float(grey)
    palm = T.palm_mask(np.asarray(lm, np.float64)[list(T.PALM_LANDMARKS)], g.shape, px_mm)
    if area is not None:
        palm = palm & np.asarray(area, bool)
    if palm.sum() < 50:
        return None
    w = T.compared_area(g, palm, px_mm) if veins_out else palm.astype(np.float32)
    lines = np.clip(T._standardised(T.line_map(g, px_mm, tuple(sigma_mm)), palm),
                    -T.CLIP, T.CLIP)
    mx, my = maps
    pl = cv2.remap(lines, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                   borderValue=0.0)
    pw = cv2.remap(w, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                   borderValue=0.0)
    return pl, pw


def hand_px_mm(px_mm: float, sensor: str, height_mm: float) -> float:
    """The sensor's pixels per mm of the hand: ``px_mm`` at the working plane times the
    magnification of a hand ``height_mm`` over it (NaN height: on the plane)."""
    from device.synth.bound import depth_magnification
    h = float(height_mm) if height_mm is not None and math.isfinite(height_mm) else 0.0
    return float(px_mm) * depth_magnification(sensor, h)


def probe_patch(frame: np.ndarray, probes, sensor: str, veins_out: bool = True,
                size: int = PATCH_MM, sigma_mm: tuple = T.LINE_SIGMA_MM
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """The palm patch of a sensor frame where the binding placed the views' hand (``probes``:
    a :class:`~device.gate.sensor_binding.HandProbes`, its landmarks, height and pixels per
    mm); None when the hand was not placed or the sensor is not NIR (X-ray's feature:
    :func:`device.gate.xray_bone_patch.probe_bone_patch`)."""
    if sensor != "nir" or probes is None:
        return None
    lm = np.asarray(probes.landmarks, np.float64)
    if lm.shape != (21, 2) or not np.all(np.isfinite(lm)):
        return None
    return palm_patch(frame, lm, hand_px_mm(probes.px_mm, sensor, probes.height_mm),
                      veins_out, size, sigma_mm=sigma_mm)


# ------------------------------------------------------------------------------ comparison
_turned = T.turned      # a patch's map turned about its centre (the comparison's turns)


def patch_agreement(enrolled: tuple[np.ndarray, np.ndarray], probe: tuple[np.ndarray, np.ndarray],
                    shift_mm: float = SHIFT_MM, turns=TURNS_DEG,
                    min_area: float = MIN_PATCH_AREA, refine=()) -> float:
    """The best normalised correlation (-1..1) of the enrolled palm patch's line map with the
    probe's, turned by each of ``turns`` and shifted up to ``shift_mm`` (1 mm a pixel), over
    the area both weigh (the enrolled patch's weights times the probe's, unshifted); then,
    with ``refine`` (degrees), turned by the best of ``turns`` plus each of ``refine`` (the
    X-ray bone patch's :data:`~device.gate.xray_bone_patch.REFINE_DEG`); NaN when that area is
    under ``min_area`` mm^2 or either is None."""
    if enrolled is None or probe is None:
        return float("nan")
    best, at = _best_turn(enrolled, probe, shift_mm, turns, min_area)
    if refine and at is not None:
        r, _ = _best_turn(enrolled, probe, shift_mm, [at + d for d in refine], min_area)
        if np.isfinite(r) and not r <= best:
            best = r
    return best


def _best_turn(enrolled, probe, shift_mm: float, turns, min_area: float
               ) -> tuple[float, float | None]:
    """(best agreement, its turn) of :func:`patch_agreement` over ``turns`` ((NaN, None):
    none compares)."""
    el, ew = enrolled
    best, at = float("nan"), None
    for a in turns:
        pl, pw = _turned(probe[0], a), _turned(probe[1], a, nearest=True)
        w = ew * (pw > 0)
        if w.sum() < min_area:
            continue
        r = T.line_agreement(el, pl, w, max(0, int(round(shift_mm))))
        if np.isfinite(r) and not r <= best:
            best, at = r, a
    return best, at


def best_agreement(enrolled: list, probe, shift_mm: float = SHIFT_MM, refine=()) -> float:
    """The best :func:`patch_agreement` of ``probe`` over a person's enrolled patches (NaN
    when none compares); ``refine`` as :func:`patch_agreement` takes it."""
    best = float("nan")
    for e in enrolled:
        r = patch_agreement(e, probe, shift_mm, refine=refine)
        if np.isfinite(r) and not r <= best:
            best = r
    return best


def cohort_pair(patches: list, cohort: list, shift_mm: float = SHIFT_MM):
    """A person's cohort (mean, sd): :func:`device.gate.identity_cohort.cohort_stats` of
    their palm ``patches`` over the signed ``cohort`` patches, each compared by the gate's
    :func:`best_agreement` (unrefined: NIR); None when it cannot be made."""
    return cohort_stats(patches, cohort, lambda t, p: best_agreement(t, p, shift_mm))


# ------------------------------------------------------------------------------ bytes
def patch_to_bytes(patch: tuple[np.ndarray, np.ndarray], size: np.ndarray | None = None,
                   cohort=None) -> bytes:
    """A palm patch as bytes (magic, format, side; the line map float16; the 0/1 weights as
    bits): what the store seals. With ``size`` (the views' hand size at that presentation,
    :func:`device.gate.hand_size.hand_size`) the bytes are of format 2, the size after the
    weights (:func:`device.gate.hand_size.size_to_bytes`), sealed with the patch; with
    ``cohort`` too (the enrolment's (mean, sd) over the signed cohort,
    :func:`device.gate.identity_cohort.cohort_stats`) of format 3, the pair after the size."""
    lines, w = patch
    n = int(lines.shape[0])
    if lines.shape != (n, n) or w.shape != (n, n):
        raise ValueError("a palm patch is two square arrays of one size")
    if cohort is not None and size is None:
        raise ValueError("a template's cohort mean and sd go with its hand size")
    fmt = _FORMAT if size is None else _FORMAT_SIZED if cohort is None else _FORMAT_COHORT
    head = _MAGIC + struct.pack(">BH", fmt, n)
    body = np.asarray(lines, ">f2").tobytes() + np.packbits(np.asarray(w) > 0).tobytes()
    tail = b"" if size is None else size_to_bytes(size)
    return head + body + tail + (b"" if cohort is None else stats_to_bytes(cohort))


def template_parts(blob: bytes):
    """(palm patch, hand size or None, cohort (mean, sd) or None) of the bytes
    :func:`patch_to_bytes` wrote (format 1: neither; 2: no cohort pair, a template enrolled
    before the cohort was kept: judged on the raw agreement); ValueError on anything else."""
    blob = bytes(blob)
    if len(blob) < 7 or blob[:4] != _MAGIC:
        raise ValueError("not a sensor palm patch")
    fmt, n = struct.unpack(">BH", blob[4:7])
    nl, nw = 2 * n * n, (n * n + 7) // 8
    end = 7 + nl + nw
    if fmt not in (_FORMAT, _FORMAT_SIZED, _FORMAT_COHORT) or n < 1 or len(blob) < end or \
            (fmt == _FORMAT and len(blob) != end) or (fmt != _FORMAT and len(blob) == end) \
            or (fmt == _FORMAT_COHORT and len(blob) <= end + STATS_BYTES):
        raise ValueError(f"sensor palm patch of format {fmt}, side {n}, {len(blob)} bytes: "
                         f"not readable by this build")
    lines = np.frombuffer(blob, ">f2", n * n, 7).astype(np.float32).reshape(n, n)
    if not np.all(np.isfinite(lines)):
        raise ValueError("sensor palm patch with a non-finite line value")
    w = np.unpackbits(np.frombuffer(blob, np.uint8, nw, 7 + nl))[:n * n]
    size, stats = None, None
    if fmt == _FORMAT_SIZED:
        size = size_from_bytes(blob[end:])
    elif fmt == _FORMAT_COHORT:
        size = size_from_bytes(blob[end:-STATS_BYTES])
        stats = stats_from_bytes(blob[-STATS_BYTES:])
    return (lines, w.reshape(n, n).astype(np.float32)), size, stats


def template_from_bytes(blob: bytes) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None]:
    """(palm patch, hand size or None) of the bytes :func:`patch_to_bytes` wrote (format 1:
    no size, a template enrolled before the size was kept; the cohort pair of format 3 left:
    :func:`template_parts`); ValueError on anything else."""
    return template_parts(blob)[:2]


def patch_from_bytes(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The palm patch :func:`patch_to_bytes` wrote (its size, if any, left:
    :func:`template_from_bytes`); ValueError on anything else."""
    return template_from_bytes(blob)[0]


# ------------------------------------------------------------------------------ numbers
def identity_numbers(doc: dict | None) -> dict | None:
    """The signed ``sensor_identity`` numbers of a binding file's document (None: the file has
    none, so the sensor has no identity check): ``min_agreement`` (below it, or not compared:
    denied), ``shift_mm``, ``veins_out``, ``patch_mm``, ``line_sigma_mm`` (the patch's line
    scale, mm, narrow and wide; absent: the binding's
    :data:`~device.gate.binding_texture.LINE_SIGMA_MM`), ``hand_size`` (the size check's,
    :func:`device.gate.hand_size.size_numbers`; None: the file has none), ``cohort`` (the
    normalised agreement's, :func:`device.gate.identity_cohort.cohort_numbers`; None: the
    file has none, every agreement is judged raw), ``refine_deg`` (X-ray: the turns tried
    around the comparison's best turn, :func:`_refine_turns`; None: the file has none, the
    stage then uses :data:`device.gate.xray_bone_patch.REFINE_DEG`), ``lookalikes`` (the
    look-alikes' check, :func:`device.gate.lookalikes.lookalike_numbers`; None: the file has
    none, no check) and, when the file
    has it, ``min_lines_sum`` (:func:`lines_sum` below it denies) and the pair
    ``unsure_below`` / ``min_lines_sum_unsure`` (:func:`least_lines_sum`). ValueError when
    malformed."""
    si = (doc or {}).get("sensor_identity")
    if si is None:
        return None
    if not isinstance(si, dict):
        raise ValueError("'sensor_identity' is not an object")
    t = si.get("min_agreement")
    if not (finite_number(t) and -1.0 < t < 1.0):
        raise ValueError("'sensor_identity' needs a numeric 'min_agreement' in (-1, 1)")
    s = si.get("shift_mm", SHIFT_MM)
    p = si.get("patch_mm", PATCH_MM)
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= 10:
        raise ValueError("'sensor_identity' 'shift_mm' must be a number in 0..10")
    if isinstance(p, bool) or not isinstance(p, int) or not 20 <= p <= 200:
        raise ValueError("'sensor_identity' 'patch_mm' must be an integer in 20..200")
    v = si.get("veins_out", True)
    if not isinstance(v, bool):
        raise ValueError("'sensor_identity' 'veins_out' must be true or false")
    j = si.get("min_lines_sum")
    if j is not None and not (finite_number(j) and -2.0 < j < 2.0):
        raise ValueError("'sensor_identity' 'min_lines_sum' must be a number in (-2, 2)")
    out = {"min_agreement": float(t), "shift_mm": float(s), "patch_mm": p, "veins_out": v,
           "line_sigma_mm": _line_scale(si), "hand_size": size_numbers(si),
           "cohort": cohort_numbers(si), "refine_deg": _refine_turns(si),
           "lookalikes": lookalike_numbers(si)}
    if j is not None:
        out["min_lines_sum"] = float(j)
    out.update(_unsure_numbers(si, j))
    return out


MAX_REFINE_TURNS = 8
"""The most turns a signed ``refine_deg`` may list (each one more comparison of the patch)."""


def _refine_turns(si: dict) -> tuple[float, ...] | None:
    """The signed ``refine_deg`` of the ``sensor_identity`` block: a list of at most
    :data:`MAX_REFINE_TURNS` finite numbers, each within 10 degrees ([]: no refinement); None
    when absent. ValueError otherwise."""
    v = si.get("refine_deg")
    if v is None:
        return None
    if not (isinstance(v, list) and len(v) <= MAX_REFINE_TURNS
            and all(finite_number(x) and -10.0 <= x <= 10.0 for x in v)):
        raise ValueError(f"'sensor_identity' 'refine_deg' must be a list of at most "
                         f"{MAX_REFINE_TURNS} numbers, each within 10 (degrees)")
    return tuple(float(x) for x in v)


def _line_scale(si: dict) -> tuple[float, float]:
    """The signed ``line_sigma_mm`` (two numbers, 0 < narrow < wide <= 10 mm) of the
    ``sensor_identity`` block; the binding's scale when absent. ValueError otherwise."""
    v = si.get("line_sigma_mm")
    if v is None:
        return tuple(float(x) for x in T.LINE_SIGMA_MM)
    if not (isinstance(v, list) and len(v) == 2 and all(finite_number(x) for x in v)
            and 0.0 < v[0] < v[1] <= 10.0):
        raise ValueError("'sensor_identity' 'line_sigma_mm' must be two numbers, "
                         "0 < narrow < wide <= 10 (mm)")
    return float(v[0]), float(v[1])


def _unsure_numbers(si: dict, min_sum) -> dict:
    """``unsure_below`` (p(live) in (0, 1]) and ``min_lines_sum_unsure`` (in (-2, 2), at least
    ``min_sum``) of the signed ``sensor_identity`` block, both or neither ({}); ValueError
    otherwise."""
    u, k = si.get("unsure_below"), si.get("min_lines_sum_unsure")
    if u is None and k is None:
        return {}
    if u is None or k is None or min_sum is None:
        raise ValueError("'sensor_identity' needs 'unsure_below' and 'min_lines_sum_unsure' "
                         "together, and 'min_lines_sum' with them")
    if not (finite_number(u) and 0.0 < u <= 1.0):
        raise ValueError("'sensor_identity' 'unsure_below' must be a p(live) in (0, 1]")
    if not (finite_number(k) and -2.0 < k < 2.0 and k >= min_sum):
        raise ValueError("'sensor_identity' 'min_lines_sum_unsure' must be a number in (-2, 2) "
                         "not under 'min_lines_sum'")
    return {"unsure_below": float(u), "min_lines_sum_unsure": float(k)}


def least_lines_sum(n: dict, p_live: float | None) -> float | None:
    """The least :func:`lines_sum` the signed numbers ``n`` ask of a presentation of
    ``p_live``: ``min_lines_sum_unsure`` when p(live) is under ``unsure_below`` or not known
    (None, NaN: the strict one), else ``min_lines_sum``; ``min_lines_sum`` alone where ``n``
    has no unsure pair; None where it has no ``min_lines_sum``. A live palm the liveness
    model doubts still shows its own lines well both ways; the copies that get past the
    model show them worse (blurred, lit or printed)."""
    t = n.get("min_lines_sum")
    u = n.get("unsure_below")
    if t is None or u is None:
        return t
    known = p_live is not None and math.isfinite(p_live)
    return t if known and p_live >= u else n["min_lines_sum_unsure"]


def lines_sum(agreement: float, palm_lines: float | None) -> float | None:
    """The palm's lines both ways: the sensor frame's agreement with the person's enrolled
    sensor patch plus the binding's agreement of its lines with the views' palm
    (:func:`device.gate.binding_texture.texture_agreement`); None when the binding compared
    no lines. A live hand's frame shows its own lines to both, independently (correlation
    0.03 over 994 genuine presentations of validation seed 9317), so both near their limits at
    once is rare; a victim's vein film over the attacker's palm lifts the first (its veins
    leak into the line map) while the second sits at its limit."""
    if palm_lines is None:
        return None
    return float(agreement) + float(palm_lines)
