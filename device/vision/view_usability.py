"""Is a view's palm region usable for the fused palm feature? A view with no palm texture -- a
flat, saturated, black or heavily under-exposed palm region -- is dropped before the views are
fused; the gate then decides on the views left if there are at least ``[gate] min_views`` of
them, else it denies with the quality prompt (device/gate/pipeline.py). ``palmgate evaluate``
runs the same function on every view (device/eval/recognition.py).

Why: a flat view carries no palm, yet its cells are not random -- two flat views of different
palms have the same cells and score 1.0 against each other (docs/results.md, "Several views").

Measure (pure functions of a grey uint8 region): the palm-line contrast, the standard deviation
of a band-pass of the region (Gaussian sigma 1.5 px minus sigma 6 px, at the 128 px region
size: the scale of the palm lines and creases), in grey levels; and the saturated fraction
(>= 250). Thresholds ([quality] min_texture, max_clipped) were chosen on the Tongji training
palms (docs/recognition.md, "Unusable views").
"""
from __future__ import annotations

import cv2
import numpy as np

from device.vision.quality import QualityIssue, saturated_fraction

# band-pass of the palm-line scale, in px of the 128 px first region
FINE_SIGMA, COARSE_SIGMA = 1.5, 6.0
REGION_SIZE = 128


def line_contrast(roi: np.ndarray) -> float:
    """Standard deviation (grey levels) of the region's band-pass at the palm-line scale; the
    sigmas scale with the region's size (128 px reference). 0 for a flat region."""
    x = np.asarray(roi, np.float32)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"line_contrast: expects a grey (H, W) region, got {x.shape}")
    f = max(x.shape) / REGION_SIZE
    bp = cv2.GaussianBlur(x, (0, 0), FINE_SIGMA * f) - cv2.GaussianBlur(x, (0, 0),
                                                                       COARSE_SIGMA * f)
    return float(bp.std())


def view_check(roi: np.ndarray, q) -> None:
    """Raise :class:`QualityIssue` when the region cannot add palm to the fused feature:
    ``no_texture`` (line contrast under ``q.min_texture``) or ``too_bright`` (more than
    ``q.max_clipped`` of it saturated)."""
    sat = saturated_fraction(roi)
    if sat > q.max_clipped:
        raise QualityIssue("too_bright", f"{sat:.0%} of the palm region saturated")
    c = line_contrast(roi)
    if c < q.min_texture:
        raise QualityIssue("no_texture", f"palm-line contrast {c:.2f} < {q.min_texture:g}")


def usable_views(rois, q) -> tuple[list[int], list[QualityIssue]]:
    """Indices of the usable regions among ``rois`` and the issues of the others."""
    keep, issues = [], []
    for k, r in enumerate(rois):
        try:
            view_check(r, q)
            keep.append(k)
        except QualityIssue as e:
            issues.append(e)
    return keep, issues


def usable_rois(rois, issues, q) -> tuple[list, list]:
    """The gate's step after the palm regions: (the usable ``rois``, ``issues`` plus the
    dropped views' issues, the latter first: they name why too few views are left)."""
    keep, dropped = usable_views(rois, q)
    return [rois[k] for k in keep], dropped + list(issues)
