"""Hand landmarks on real images: MediaPipe's hand-landmark network (converted to ONNX, run by
onnxruntime) on a rotated square crop, and the crop rules around it (seed 000, claim 7: the
feature points from which the palm centre is found).

The network (``models/hand_landmark{,_lite}{,_int8}.onnx``, converted from mediapipe 0.10.21's
``hand_landmark_{full,lite}.tflite`` by ``python -m tools.convert_landmarks``) takes a
1x3x224x224 RGB crop in [0, 1] and gives 21 landmarks (x, y, z in crop pixels; MediaPipe's
order: 0 wrist, 1-4 thumb, 5-8 index, 9-12 middle, 13-16 ring, 17-20 little, each finger MCP,
PIP, DIP, tip), the hand presence (a probability) and a handedness score.

It was trained on MediaPipe's own crops, so the crop decides the error (FINDINGS: 1.6 px of 224
with MediaPipe's crop, 12.6 px with a plain square). The gate has no palm detector, so:

1. a first crop from a box around the hand (the segmentation mask's box, or the whole frame);
2. the network on it; from its landmarks MediaPipe's crop rule (:func:`crop_from_landmarks`):
   rotate so the wrist -> middle-of-the-palm direction points up, the box of the palm
   landmarks (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18) in that frame, shifted by -0.1 of its
   height toward the fingers, squared on its long side and scaled 2.0;
3. the network again on that crop (the refined landmarks).

Geometry is pure numpy (:class:`Crop`, :func:`crop_from_landmarks`, :func:`crop_from_box`);
:class:`Landmarker` runs the model. Nothing here decides about regions or quality.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = 224
"""Side of the network's input crop."""

PALM_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
"""The landmarks whose box MediaPipe's crop rule squares (wrist, thumb base, the finger
MCPs and PIPs)."""

WRIST, THUMB_CMC, THUMB_MCP, INDEX_MCP, MIDDLE_MCP, RING_MCP, LITTLE_MCP = 0, 1, 2, 5, 9, 13, 17
FINGER_TIPS = (4, 8, 12, 16, 20)

CROP_SCALE = 2.0
CROP_SHIFT = -0.1

LANDMARK_FILES = {("full", "fp32"): "hand_landmark.onnx",
                  ("full", "int8"): "hand_landmark_int8.onnx",
                  ("lite", "fp32"): "hand_landmark_lite.onnx",
                  ("lite", "int8"): "hand_landmark_lite_int8.onnx"}
"""(model, precision) -> shipped file."""


@dataclass(frozen=True)
class Crop:
    """A rotated square in the image: ``centre`` (x, y) px, ``side`` px, ``rotation`` radians
    (MediaPipe's convention: a crop vector (u, v) is the image vector R(rotation) (u, v); 0 is
    an upright, unrotated square)."""

    centre: tuple[float, float]
    side: float
    rotation: float = 0.0

    def to_image(self, size: int = INPUT_SIZE) -> np.ndarray:
        """2x3 affine: crop pixel (of a ``size`` x ``size`` crop) -> image pixel; both in
        pixel-index coordinates (the centre of pixel (0, 0) is (0, 0), as OpenCV's)."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        k = self.side / size
        R = np.array([[c, -s], [s, c]]) * k
        half = (size - 1) / 2
        t = np.asarray(self.centre, np.float64) - R @ np.array([half, half])
        return np.hstack([R, t[:, None]])

    def points_to_image(self, pts: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
        """(N, 2|3) crop points -> image points (a third column, depth, is scaled alike)."""
        pts = np.asarray(pts, np.float64)
        A = self.to_image(size)
        out = pts.copy()
        out[:, :2] = pts[:, :2] @ A[:, :2].T + A[:, 2]
        if pts.shape[1] > 2:
            out[:, 2] = pts[:, 2] * self.side / size
        return out

    def warp(self, image: np.ndarray, size: int = INPUT_SIZE,
             border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
        """The crop as a ``size`` x ``size`` image (outside the frame: the edge pixels
        repeated, as MediaPipe's ImageToTensorCalculator does by default)."""
        return cv2.warpAffine(image, self.to_image(size), (size, size),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=border, borderValue=0)


def normalize_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def hand_rotation(lm: np.ndarray) -> float:
    """MediaPipe's rotation of a hand (HandLandmarksToRectCalculator): the direction from the
    wrist to the mean of the middle MCP and the index/ring MCP midpoint, turned to point up."""
    p0 = lm[WRIST, :2]
    p1 = ((lm[INDEX_MCP, :2] + lm[RING_MCP, :2]) / 2 + lm[MIDDLE_MCP, :2]) / 2
    return normalize_radians(math.pi / 2 - math.atan2(-(p1[1] - p0[1]), p1[0] - p0[0]))


def crop_from_landmarks(lm: np.ndarray, scale: float = CROP_SCALE,
                        shift: float = CROP_SHIFT) -> Crop:
    """MediaPipe's next crop from 21 image landmarks (x, y[, z]): the palm landmarks' box in
    the hand's rotated frame, shifted ``shift`` of its height along the hand's up direction
    (negative = toward the fingers), squared on its long side, scaled by ``scale``."""
    lm = np.asarray(lm, np.float64)
    r = hand_rotation(lm)
    pts = lm[list(PALM_LANDMARKS), :2]
    lo, hi = pts.min(0), pts.max(0)
    axis_centre = (lo + hi) / 2
    c, s = math.cos(-r), math.sin(-r)
    rel = (pts - axis_centre) @ np.array([[c, -s], [s, c]]).T      # into the hand's frame
    plo, phi = rel.min(0), rel.max(0)
    pc = (plo + phi) / 2
    w, h = phi - plo
    c, s = math.cos(r), math.sin(r)
    R = np.array([[c, -s], [s, c]])
    centre = axis_centre + R @ pc + R @ np.array([0.0, h * shift])
    side = max(w, h) * scale
    return Crop((float(centre[0]), float(centre[1])), float(side), r)


def crop_from_box(x0: float, y0: float, x1: float, y1: float, scale: float = 1.25,
                  rotation: float = 0.0) -> Crop:
    """A square crop around a box (e.g. a hand mask's bounding box): centred on the box,
    ``scale`` times its long side."""
    side = max(x1 - x0, y1 - y0, 1.0) * scale
    return Crop(((x0 + x1) / 2, (y0 + y1) / 2), float(side), rotation)


def crop_change(a: Crop, b: Crop) -> float:
    """How far crop ``b`` is from crop ``a``: the largest of the centre shift and the side
    change (fractions of ``a``'s side) and the rotation change (radians)."""
    shift = math.hypot(b.centre[0] - a.centre[0], b.centre[1] - a.centre[1]) / a.side
    return max(shift, abs(b.side / a.side - 1.0),
               abs(normalize_radians(b.rotation - a.rotation)))


def mask_box(mask: np.ndarray, min_area: float = 0.005) -> tuple[float, float, float, float] | None:
    """Bounding box (x0, y0, x1, y1) of a 0/1 hand mask, None when it covers under
    ``min_area`` of the frame."""
    m = np.asarray(mask) > 0
    if m.mean() < min_area:
        return None
    ys = np.flatnonzero(m.any(1))
    xs = np.flatnonzero(m.any(0))
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


def frame_crop(shape) -> Crop:
    """The whole frame as a square crop (its long side)."""
    h, w = shape[:2]
    return Crop(((w - 1) / 2, (h - 1) / 2), float(max(h, w)), 0.0)


@dataclass
class HandLandmarks:
    """One hand's landmarks in image pixels."""

    points: np.ndarray
    """(21, 3) float64: x, y in image pixels, z (relative depth, image-pixel scale; smaller =
    nearer the camera, MediaPipe's convention, the wrist at 0)."""
    presence: float
    """The network's hand-presence probability on the crop."""
    handedness: float
    """The network's handedness score (MediaPipe: > 0.5 "right" on a mirrored selfie image)."""
    crop: Crop
    """The crop the network saw last."""
    passes: int = 1


def to_rgb_input(crop_img: np.ndarray) -> np.ndarray:
    """1x3xSxS float32 in [0, 1], RGB, from a grey or BGR crop."""
    if crop_img.ndim == 2:
        rgb = np.repeat(crop_img[..., None], 3, axis=2)
    else:
        rgb = crop_img[..., 2::-1]
    return (rgb.astype(np.float32) * (1.0 / 255.0)).transpose(2, 0, 1)[None]


class Landmarker:
    """The hand-landmark network and its two-pass crop.

    ``model``: "full" or "lite"; ``precision``: "fp32" or "int8"; the file is checked against
    models/manifest.json. ``session``: an already made onnxruntime-like callable (tests,
    conversion checks) -- ``session(x) -> (landmarks (1, 63), presence, handedness)``.
    Thread-safe (one onnxruntime session)."""

    def __init__(self, model: str = "full", precision: str = "int8", models_dir=None,
                 threads: int = 1, session=None, min_presence: float = 0.5,
                 refine_passes: int = 3, converged: float = 0.05):
        self.model_name, self.precision = model, precision
        self.min_presence = float(min_presence)
        self.refine_passes = int(refine_passes)
        self.converged = float(converged)
        if session is not None:
            self._run = session
            self.file = None
            return
        if (model, precision) not in LANDMARK_FILES:
            raise ValueError(f"unknown landmark model {model!r}/{precision!r}; use full|lite "
                             f"and fp32|int8")
        from device.models.model import DEFAULT_MODELS_DIR, Model
        self.file = LANDMARK_FILES[(model, precision)]
        m = Model(self.file, models_dir or DEFAULT_MODELS_DIR, threads, arena=False)
        name = m.inputs[0]
        outs = m.outputs

        def run(x):
            o = m.session.run(outs[:3], {name: x})
            return o[0], o[1], o[2]
        self._model = m
        self._run = run

    def run_crop(self, image: np.ndarray, crop: Crop) -> HandLandmarks:
        """The network on one crop of ``image`` (grey or BGR uint8)."""
        x = to_rgb_input(crop.warp(image))
        lm, presence, hand = self._run(x)
        pts = np.asarray(lm, np.float64).reshape(21, 3)
        pts[:, :2] -= 0.5            # the network answers in continuous crop coordinates
        return HandLandmarks(crop.points_to_image(pts), float(np.ravel(presence)[0]),
                             float(np.ravel(hand)[0]), crop)

    def refine(self, image: np.ndarray, first: HandLandmarks) -> HandLandmarks:
        """MediaPipe's crop from ``first``'s landmarks and the network on it, again while the
        crop still moves (:func:`crop_change` over ``converged``), at most ``refine_passes``
        times."""
        cur = first
        for k in range(self.refine_passes):
            crop = crop_from_landmarks(cur.points)
            if k and crop_change(cur.crop, crop) < self.converged:
                break
            nxt = self.run_crop(image, crop)
            nxt.passes = cur.passes + 1
            cur = nxt
        return cur

    def detect(self, image: np.ndarray, crops) -> HandLandmarks | None:
        """The first of ``crops`` (an iterable of :class:`Crop`) on which the network sees a
        hand (presence >= ``min_presence``), refined; None when none does."""
        best = None
        for crop in crops:
            first = self.run_crop(image, crop)
            if first.presence < self.min_presence:
                if best is None or first.presence > best.presence:
                    best = first
                continue
            out = self.refine(image, first)
            if out.presence >= self.min_presence:
                return out
        return None
