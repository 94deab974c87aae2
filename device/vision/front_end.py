"""The gate's front end for one view: hand landmarks -> palm regions, the quality gate, and
the classical path as the fallback (seed 000, claim 7: feature points -> the preset part).

    view -> landmarks (device.vision.landmarks: first crops, two or more passes)
         -> regions from the landmarks (device.vision.palm_from_landmarks geometry)
         -> landmark checks + region image checks (device.vision.hand_quality)
      or, when no hand is seen or any of that fails,
         -> the classical path (device.vision.regions.extract_regions: segmentation network /
            skin colour / NIR levels, finger valleys) -> its region checks

Grey (NIR) views take the two paths the other way round unless told otherwise
(:data:`NIR_ORDER_NOTE`). If both paths fail, the landmark path's issue is raised when it saw a
hand (its prompt is the better one: "move closer", "open your hand"), the classical one
otherwise. Every
failure is a :class:`~device.vision.quality.QualityIssue` with its prompt. The same object runs
in the gate (:mod:`device.gate.pipeline`), in ``palmgate evaluate --level hand`` and in
``python -m tools.eval_regions``, so FTA by reason is the gate's.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from device.vision.hand_quality import (cut_off_reason, landmark_check, landmark_measures,
                                        region_image_check)
from device.vision.landmark_valleys import landmark_valleys
from device.vision.landmarks import Crop, crop_from_box, frame_crop, mask_box
from device.vision.motion_blur import motion_blur_check
from device.vision.palm_from_landmarks import (LandmarkGeometry, palm_frame, palm_outline,
                                               region_centre, region_corners)
from device.vision.quality import QualityIssue
from device.vision.region_types import FIRST_SIZE, SECOND_SIZE, HandKeypoints, RegionError
from device.vision.regions import HandRegions, extract_regions
from device.vision.roi_geometry import _inside, rectify
from device.vision.segmentation import is_grey, segment_nir_candidates, to_grey

LANDMARK_GEOMETRY = LandmarkGeometry(side=0.94, offset=0.42, along=-0.06)
"""The first region in the landmarks' palm frame: the synthetic hands' own ROI (the Tongji /
classical valley ROI, 1.25 x 0.875 valley spans) expressed in knuckle widths (medians over
60 development views, seed 777). On the NTUST development photos it was within noise of the
best of a 15-geometry grid and better than the square below the knuckle line of FINDINGS
(see docs/palm-regions.md)."""

FIRST_CROP_ROTATIONS = (90.0, -90.0, 180.0)
"""Rotations (degrees) of the whole-frame crop tried after the upright frame and the hand
mask's box found no hand (hands presented sideways or upside down)."""


NIR_ORDER_NOTE = """On PolyU's pegged NIR frames (the fingers cut off by the frame) the
landmark network still saw a hand in 44 of 3,000 frames; those took the landmark path, the
rest the classical one, and the two paths' regions of one palm differ (geometry, scale), so
the hand-level EER went from 0.23 % to 2.42 % (measured). Grey views therefore take the
classical NIR path first (its geometry was chosen on PolyU) and the landmarks where it fails;
a contactless NIR gate that sees whole hands can put the landmarks first ([gate] nir_order)."""


@dataclass
class QualitySettings:
    """The ``[quality]`` settings the front end reads (defaults = the configuration's)."""

    min_mean: float = 25.0
    max_clipped: float = 0.25
    min_sharpness: float = 4.0
    min_gradient_isotropy: float = 0.25
    min_region_quality: float = 0.0
    min_palm_px: float = 64.0
    max_palm_fraction: float = 0.7
    min_openness: float = 1.3
    min_foreshortening: float = 0.4
    max_foreshortening: float = 1.3


class Getter:
    """A zero-argument callable that returns a component or None: the gate's model stages
    re-try a missing or tampered model file this way (see :mod:`device.gate.pipeline`)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self):
        return self.fn()


def _get(x):
    return x() if isinstance(x, Getter) else x


def _grey(image: np.ndarray, cache: dict) -> np.ndarray:
    if "grey" not in cache:
        cache["grey"] = to_grey(image)
    return cache["grey"]


def _motion_blur(grey: np.ndarray, reg: HandRegions, q) -> None:
    """The motion-blur check of a view's regions; a refusal carries the regions
    (``issue.regions``, and ``issue.isotropy`` from the check) so that a measurement of a
    burst-level rule (``python -m tools.eval_burst_motion``) runs the front end once; the
    gate does not use them."""
    try:
        motion_blur_check(grey, reg.roi_corners, q)
    except QualityIssue as e:
        e.regions = reg
        raise


def regions_from_landmarks(image: np.ndarray, lm: np.ndarray, modality: str,
                           geometry: LandmarkGeometry = LANDMARK_GEOMETRY,
                           presence: float = 1.0, q: QualitySettings | None = None,
                           grey: np.ndarray | None = None) -> HandRegions:
    """First and second regions of a view from its (21, 2|3) image landmarks. Raises
    :class:`QualityIssue` (``hand_cut_off`` / ``too_near``) when the first region leaves the
    frame. ``grey``: the view in grey, when already made."""
    grey = to_grey(image) if grey is None else grey
    shape = grey.shape
    f = palm_frame(lm)
    c1 = region_corners(f, geometry, FIRST_SIZE)
    side_px = geometry.side * f.width
    if not _inside(c1, shape, margin=0.02 * side_px):
        reason = cut_off_reason(f.width / min(shape), q or QualitySettings())
        raise QualityIssue(reason, "the palm-centre square leaves the image")
    c2 = region_corners(f, geometry, SECOND_SIZE)
    roi = rectify(grey, c1, FIRST_SIZE)
    second = rectify(grey, c2, SECOND_SIZE)
    # the palm outline in the second region's pixels
    A = cv2.getAffineTransform(np.float32(c2[:3]), np.float32(
        [[0, 0], [SECOND_SIZE - 1, 0], [SECOND_SIZE - 1, SECOND_SIZE - 1]]))
    outline = palm_outline(lm, f)
    on_palm = np.zeros((SECOND_SIZE, SECOND_SIZE), np.uint8)
    cv2.fillPoly(on_palm, [np.round(outline @ A[:, :2].T + A[:, 2]).astype(np.int32)], 1)
    in_img = rectify(np.full(shape, 255, np.uint8), c2, SECOND_SIZE, cv2.INTER_NEAREST) > 0
    second_mask = (on_palm > 0) & in_img
    m0 = (SECOND_SIZE - FIRST_SIZE) // 2
    second_mask[m0:m0 + FIRST_SIZE, m0:m0 + FIRST_SIZE] = False
    hand_mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(hand_mask, [np.round(outline).astype(np.int32)], 1)
    kp = HandKeypoints(landmark_valleys(image, lm, f), region_centre(f, geometry), f.hand)
    exposure = 1.0 - float(((roi >= 250) | (roi <= 5)).mean())
    return HandRegions(kp, roi, c1, second, second_mask, c2, float(presence * exposure),
                       modality, hand_mask, shape, segmentation="landmarks",
                       landmarks=np.asarray(lm, np.float64))


def hand_landmarks(reg: HandRegions) -> np.ndarray | None:
    """The view's hand landmarks (21, 3): those the regions came from, else those found and
    kept (:attr:`HandRegions.found_landmarks`), else None."""
    return reg.landmarks if reg.landmarks is not None else reg.found_landmarks


class FrontEnd:
    """One view -> :class:`HandRegions` or a :class:`QualityIssue`.

    ``landmarker``: a :class:`device.vision.landmarks.Landmarker` (or a :class:`Getter` of
    one, or None: classical only); ``segmenter``: the colour views' hand-mask network (or a
    Getter, or None); ``quality``: the ``[quality]`` settings; ``check_quality``: False skips
    the quality checks (the region steps' own failures still count);
    ``nir_landmarks_first``: grey (NIR) views try the landmarks first too -- by default they
    take the classical NIR path first and the landmarks only when it fails (see
    :data:`NIR_ORDER_NOTE`); ``keep_found_landmarks``: regions from the classical path carry
    the landmarks the landmark path found when only its palm region's image check refused
    them (:attr:`HandRegions.found_landmarks`; the sensor binding places the hand with them,
    :func:`hand_landmarks`). Thread-safe."""

    def __init__(self, quality=None, landmarker=None, segmenter=None,
                 geometry: LandmarkGeometry = LANDMARK_GEOMETRY, check_quality: bool = True,
                 nir_landmarks_first: bool = False, keep_found_landmarks: bool = False):
        self.nir_landmarks_first = bool(nir_landmarks_first)
        self.keep_found_landmarks = bool(keep_found_landmarks)
        self.q = quality or QualitySettings()
        self.landmarker = landmarker
        self.segmenter = segmenter
        self.geometry = geometry
        self.check_quality = check_quality

    # ------------------------------------------------------------------ landmark path
    def first_crops(self, image: np.ndarray, grey: bool, mask_cache: dict):
        """The first crops, most likely first: the whole frame upright; the hand mask's box
        (the segmentation network on colour views, the NIR levels on grey ones); the whole
        frame turned by :data:`FIRST_CROP_ROTATIONS`."""
        fc = frame_crop(image.shape)
        yield fc
        mask = self._mask(image, grey, mask_cache)
        box = mask_box(mask) if mask is not None else None
        if box is not None:
            yield crop_from_box(*box)
        for r in FIRST_CROP_ROTATIONS:
            yield Crop(fc.centre, fc.side, math.radians(r))

    def _mask(self, image, grey, cache):
        if "mask" not in cache:
            seg = _get(self.segmenter)
            if grey:
                cache["mask"] = next(iter(segment_nir_candidates(image)), None)
            else:
                cache["mask"] = seg(image) if seg is not None else None
        return cache["mask"]

    def landmark_regions(self, image: np.ndarray, modality: str, mask_cache: dict):
        """(regions, None) from the landmarks, (None, issue) when they fail, (None, None) when
        no hand is seen or there is no landmark model."""
        lmk = _get(self.landmarker)
        if lmk is None:
            return None, None
        hand = lmk.detect(image, self.first_crops(image, modality == "nir", mask_cache))
        if hand is None:
            return None, None
        checked = None
        try:
            reg = regions_from_landmarks(image, hand.points, modality, self.geometry,
                                         hand.presence, self.q, _grey(image, mask_cache))
            if self.check_quality:
                landmark_check(hand.points, image.shape, self.geometry.side, self.q)
                checked = hand.points          # the landmarks pass; their region's image next
                region_image_check(reg.roi, self.q)
                _motion_blur(_grey(image, mask_cache), reg, self.q)
            return reg, None
        except QualityIssue as e:
            e.found_landmarks = checked
            return None, e

    # ------------------------------------------------------------------ classical path
    def classical_regions(self, image: np.ndarray, modality: str, mask_cache: dict):
        seg = _get(self.segmenter)

        def cached_mask(im):           # the landmark path may have run the network already
            if mask_cache.get("mask") is None:
                mask_cache["mask"] = seg(im)
            return mask_cache["mask"]
        segmenter = cached_mask if seg is not None and modality != "nir" else None
        try:
            reg = extract_regions(image, modality, segmenter=segmenter)
            if self.check_quality:
                if reg.quality < self.q.min_region_quality:
                    raise QualityIssue("low_quality", f"region quality {reg.quality:.2f}")
                region_image_check(reg.roi, self.q)
                _motion_blur(_grey(image, mask_cache), reg, self.q)
            return reg, None
        except RegionError as e:
            return None, QualityIssue(e.reason, str(e))
        except QualityIssue as e:
            return None, e

    # ------------------------------------------------------------------ the view
    def __call__(self, image: np.ndarray) -> HandRegions:
        if image is None or not isinstance(image, np.ndarray) or image.ndim not in (2, 3) \
                or min(image.shape[:2]) < 32:
            raise QualityIssue("bad_input", "expected a grey or BGR image of at least 32x32")
        if image.dtype != np.uint8:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
        if image.ndim == 3 and image.shape[2] == 4:
            image = np.ascontiguousarray(image[..., :3])
        modality = "nir" if is_grey(image) else "visible"
        cache: dict = {}
        steps = [("landmarks", self.landmark_regions), ("classical", self.classical_regions)]
        if modality == "nir" and not self.nir_landmarks_first:
            steps.reverse()
        timings: dict = {}
        issues: dict = {}
        for name, step in steps:
            t0, c0 = time.perf_counter(), time.thread_time()
            reg, issue = step(image, modality, cache)
            timings[name] = (time.perf_counter() - t0) * 1e3
            timings[name + "_cpu"] = (time.thread_time() - c0) * 1e3
            if reg is not None:
                reg.timings_ms = timings
                if self.keep_found_landmarks and reg.landmarks is None:
                    reg.found_landmarks = getattr(issues.get("landmarks"), "found_landmarks",
                                                  None)
                return reg
            issues[name] = issue
        # the landmark path's issue when it saw a hand: its prompt is the better one
        err = issues.get("landmarks") or issues.get("classical") or \
            QualityIssue("no_hand", "no hand found")
        err.timings_ms = timings
        raise err

    def measures(self, reg: HandRegions) -> dict:
        """The landmark measures of regions from the landmark path (for reports)."""
        if reg.landmarks is None:
            return {}
        return landmark_measures(reg.landmarks, reg.image_shape, self.geometry.side)
