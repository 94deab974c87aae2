"""The quality gate for real conditions, from the hand landmarks' geometry and the palm region's
pixels: each check raises a :class:`~device.vision.quality.QualityIssue` whose prompt the person
can act on.

From the landmarks (:func:`landmark_check`, pure numpy):

* ``hand_too_small`` -- the first region spans fewer than ``min_palm_px`` image pixels: "move
  your hand closer";
* ``too_near`` -- the knuckle width is more than ``max_palm_fraction`` of the frame's short
  side: "move your hand a little further away";
* ``not_open`` -- two or more fingers curled (fingertip nearer the wrist than ``min_openness``
  times its knuckle): "open your hand and spread your fingers";
* ``not_flat`` -- the palm tilted away from the camera: its width over its length (wrist to
  middle knuckle) outside ``[min_foreshortening, max_foreshortening]``, a flat palm's range
  widened (a turned palm narrows, a palm tipped back shortens): "hold your palm flat, facing
  the camera".

Partly out of frame is decided where the region is cut (``hand_cut_off``: "centre your palm
over the scanner", or ``too_near`` when the palm is also large), in
:mod:`device.vision.front_end`.

From the first region's pixels (:func:`region_image_check`, both region paths): over-exposure
(``too_bright``, more than ``max_clipped`` of it saturated), under-exposure (``too_dark``, its
mean under ``min_mean``), blur (``blurred``, variance of its Laplacian under
``min_sharpness``: heavy blur of any kind). Motion blur, smear along one direction, is a
separate check on the view's own pixels: :mod:`device.vision.motion_blur` (``motion_blur``).
"""
from __future__ import annotations

import numpy as np

from device.vision.palm_from_landmarks import MIDDLE_MCP, WRIST, PalmFrame, palm_frame
from device.vision.quality import QualityIssue, saturated_fraction, sharpness

FINGERS = ((5, 8), (9, 12), (13, 16), (17, 20))
"""(MCP, tip) of the index, middle, ring and little fingers."""


def finger_openness(lm: np.ndarray) -> np.ndarray:
    """(4,) per finger: |tip - wrist| / |MCP - wrist| in the image (about 1.7-1.9 for an open
    hand, under 1.2 for a curled finger)."""
    lm = np.asarray(lm, np.float64)[:, :2]
    w = lm[WRIST]
    return np.array([np.hypot(*(lm[t] - w)) / max(np.hypot(*(lm[m] - w)), 1e-6)
                     for m, t in FINGERS])


def foreshortening(lm: np.ndarray, frame: PalmFrame | None = None) -> float:
    """Knuckle width / palm length (wrist to middle MCP) in the image: about 0.55-0.95 for a
    palm facing the camera."""
    lm = np.asarray(lm, np.float64)
    f = frame or palm_frame(lm)
    length = float(np.hypot(*(lm[MIDDLE_MCP, :2] - lm[WRIST, :2])))
    return f.width / max(length, 1e-6)


def landmark_measures(lm: np.ndarray, shape, side: float) -> dict:
    """Every landmark measure the checks use (for reports): ``palm_px`` (first-region side in
    image pixels), ``palm_fraction`` (knuckle width / the frame's short side), ``openness``
    (the second-lowest finger openness), ``foreshortening``."""
    f = palm_frame(lm)
    return {"palm_px": side * f.width, "palm_fraction": f.width / min(shape[:2]),
            "openness": float(np.sort(finger_openness(lm))[1]),
            "foreshortening": foreshortening(lm, f)}


def landmark_check(lm: np.ndarray, shape, side: float, q) -> dict:
    """Raise :class:`QualityIssue` for a hand too far, too near, not open or not flat; return
    the measures otherwise. ``side``: the first region's side in knuckle widths; ``q``: the
    ``[quality]`` settings."""
    m = landmark_measures(lm, shape, side)
    if m["palm_px"] < q.min_palm_px:
        raise QualityIssue("hand_too_small", f"palm region {m['palm_px']:.0f} px < "
                           f"{q.min_palm_px:g}")
    if m["palm_fraction"] > q.max_palm_fraction:
        raise QualityIssue("too_near", f"palm width {m['palm_fraction']:.2f} of the frame > "
                           f"{q.max_palm_fraction:g}")
    if m["openness"] < q.min_openness:
        raise QualityIssue("not_open", f"two or more fingers curled (openness "
                           f"{m['openness']:.2f} < {q.min_openness:g})")
    fs = m["foreshortening"]
    if not q.min_foreshortening <= fs <= q.max_foreshortening:
        raise QualityIssue("not_flat", f"palm width/length {fs:.2f} outside "
                           f"[{q.min_foreshortening:g}, {q.max_foreshortening:g}]")
    return m


def region_image_check(roi: np.ndarray, q) -> None:
    """Exposure and blur of the first region (grey uint8)."""
    clipped = saturated_fraction(roi)
    if clipped > q.max_clipped:
        raise QualityIssue("too_bright", f"{clipped:.0%} of the palm region saturated")
    mean = float(roi.mean())
    if mean < q.min_mean:
        raise QualityIssue("too_dark", f"palm region mean {mean:.0f} < {q.min_mean:g}")
    s = sharpness(roi)
    if s < q.min_sharpness:
        raise QualityIssue("blurred", f"sharpness {s:.1f} < {q.min_sharpness:g}")


def cut_off_reason(palm_fraction: float, q) -> str:
    """Why a palm region leaves the frame: ``too_near`` when the palm is large in the frame
    (over 3/4 of ``max_palm_fraction``), else ``hand_cut_off`` (off-centre)."""
    return "too_near" if palm_fraction > 0.75 * q.max_palm_fraction else "hand_cut_off"

