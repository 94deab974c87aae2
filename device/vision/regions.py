"""Palm regions: hand keypoints -> the first region (the palm centre, the "preset part") and
the second region (the rest of the palm), rectified to fixed sizes (seed 000, claim 7).

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

Modules: step 2 lives in :mod:`device.vision.valleys`, the palm frame and rectification in
:mod:`device.vision.roi_geometry`, the constants, :class:`RegionError` and the keypoints in
:mod:`device.vision.region_types`; this module puts them together and re-exports their public
names.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np

from device.vision.region_types import (FIRST_SIZE, NIR_GEOMETRY, REASONS,  # noqa: F401
                                        SECOND_SIZE, VALLEY_NAMES, VISIBLE_GEOMETRY,
                                        HandKeypoints, RegionError, RegionGeometry,
                                        default_geometry)
from device.vision.roi_geometry import (_half_pixel_square, _inside, frame_corners,  # noqa: F401
                                        rectify)
from device.vision.segmentation import (is_grey, modality_of, segment_nir_candidates,
                                        segment_visible_candidates, to_grey)
from device.vision.valleys import (NIR_VALLEY_TESTS, THUMB_BONUS,  # noqa: F401
                                   VISIBLE_VALLEY_TESTS, ValleyFit, find_valleys)


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
    """Where the regions came from: "landmarks" (the hand-landmark network,
    :mod:`device.vision.front_end`), "net" (the segmentation network's mask), "classical"
    (skin colour + GrabCut or the NIR levels), "" for ROI-level input."""
    landmarks: np.ndarray | None = field(default=None, repr=False)
    """(21, 3) image landmarks when the regions came from them, else None."""
    found_landmarks: np.ndarray | None = field(default=None, repr=False)
    """(21, 3) image landmarks the landmark network found and their own check passed, when
    the regions came from another path only because the landmark path's palm region failed an
    image check (exposure, sharpness, motion blur) and the front end was asked to keep them
    (:class:`device.vision.front_end.FrontEnd` ``keep_found_landmarks``); else None. The
    regions are not made from them."""
    timings_ms: dict = field(default_factory=dict, repr=False)
    """Time of the front end's steps for this view: wall (``landmarks``, ``classical``) and
    this thread's CPU (``landmarks_cpu``, ``classical_cpu``)."""

    def image_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, second) bool masks at the image's size: the first region's square, and the
        rest of the palm (hand mask -- the palm outline on the landmark path -- minus the first
        region; the whole remainder of the image when there is no hand mask). They are
        disjoint."""
        h, w = self.image_shape
        first = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(first, _half_pixel_square(self.roi_corners, FIRST_SIZE), 1,
                           lineType=cv2.LINE_8)
        first = first.astype(bool)
        rest = self.hand_mask.astype(bool) if self.hand_mask is not None else np.ones((h, w), bool)
        return first, rest & ~first


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
