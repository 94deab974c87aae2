"""Geometry of the transmission sensors: capture sizes, fields of view and the pixel grid a hand
is placed on (:class:`Grid`, :func:`sensor_grid`), and what a hand puts on it -- silhouette,
soft-tissue thickness, path lengths through long bones, ellipsoidal bones and joint tissue (mm).
Pure numpy + OpenCV; :mod:`device.synth.sensor` paints scenes from these maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import cv2
import numpy as np

from device.synth.hand_geometry import Bone, Ellipse, HandLayout, HandPose, Joint

XRAY_CAPTURE_SIZE: tuple[int, int] = (128, 128)
"""X-ray capture resolution (H, W); the SR target is twice it."""
NIR_CAPTURE_SIZE: tuple[int, int] = (128, 128)
"""NIR capture resolution (H, W); the SR target is twice it."""
CAPTURE_SIZE: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"xray": XRAY_CAPTURE_SIZE, "nir": NIR_CAPTURE_SIZE})
SR_SCALE = 2
FOV_MM: Mapping[str, float] = MappingProxyType({"xray": 220.0, "nir": 120.0})
"""Side of the square field of view of each sensor at magnification 1, mm."""


@dataclass(frozen=True, eq=False)
class Grid:
    """A sensor pixel grid: ``M`` maps hand-frame mm (x, y) to pixel (col, row)."""

    h: int
    w: int
    px_per_mm: float
    M: np.ndarray

    def pts(self, p: np.ndarray) -> np.ndarray:
        """Hand-frame points (..., 2) in mm -> pixel coordinates."""
        p = np.asarray(p, np.float64)
        return p @ self.M[:, :2].T + self.M[:, 2]

    def vec(self, v: np.ndarray) -> np.ndarray:
        """Hand-frame direction -> pixel direction (unit if ``v`` is a unit vector)."""
        return np.asarray(v, np.float64) @ self.M[:, :2].T / self.px_per_mm


def sample_zoom(rng: np.random.Generator, sensor: str) -> float:
    """Magnification of one presentation: the palm is held somewhere in the space between
    source and detector (X-ray: geometric magnification 1.0-1.3) or at a varying distance from
    the NIR camera (0.8-1.25)."""
    return float(rng.uniform(1.0, 1.3) if sensor == "xray" else rng.uniform(0.8, 1.25))


def sensor_grid(layout: HandLayout, pose: HandPose, sensor: str, shape: tuple[int, int],
                zoom: float = 1.0, fov_mm: float | None = None) -> Grid:
    """Grid of ``shape`` pixels over the sensor's square FOV, the hand placed by ``pose`` and
    magnified by ``zoom``.

    The X-ray FOV is centred 12 mm above the palm centre (fingers and wrist fit), the NIR FOV
    5 mm below it; pose rotation/translation move the hand on the plate.
    """
    fov = (fov_mm or FOV_MM[sensor]) / zoom
    h, w = shape
    k = min(h, w) / fov
    centre = layout.palm_centre + (np.array([0.0, 12.0]) if sensor == "xray" else
                                   np.array([0.0, -5.0]))
    a = np.deg2rad(pose.rotation)
    c, s = np.cos(a), np.sin(a)
    R = np.array([[c, -s], [s, c]])
    t = np.asarray(pose.translation, np.float64)
    # pixel = k * F (R (p - centre) + t) + (w/2, h/2), F flips y (rows go down)
    F = np.diag([1.0, -1.0])
    A = k * F @ R
    b = k * F @ (t - R @ centre) + np.array([w / 2, h / 2])
    return Grid(h, w, k, np.column_stack([A, b]))


def _fix(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * 16).astype(np.int32)


def hand_mask(layout: HandLayout, grid: Grid, fingers: bool = True) -> np.ndarray:
    """Anti-aliased silhouette (float32 in [0, 1]) of palm, forearm and fingers."""
    m = np.zeros((grid.h, grid.w), np.uint8)
    cv2.fillPoly(m, [_fix(grid.pts(layout.forearm_polygon))], 255, cv2.LINE_AA, 4)
    cv2.fillPoly(m, [_fix(grid.pts(layout.palm_polygon))], 255, cv2.LINE_AA, 4)
    if fingers:
        for poly in layout.finger_polygons:
            cv2.fillPoly(m, [_fix(grid.pts(poly))], 255, cv2.LINE_AA, 4)
    return m.astype(np.float32) / 255.0


def tissue_thickness(mask: np.ndarray, grid: Grid, half_thickness: float) -> np.ndarray:
    """Soft-tissue path length (mm) from the silhouette: a rounded slab of the given half
    thickness -- a finger is a cylinder, the palm a slab with rounded edges."""
    d = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    d = np.minimum(d / grid.px_per_mm + 0.5 / grid.px_per_mm, half_thickness)
    return 2.0 * np.sqrt(np.maximum(d * (2 * half_thickness - d), 0)) * np.minimum(mask * 2, 1)


def bone_paths(bones: tuple[Bone, ...] | list[Bone], grid: Grid, cortex_fraction: float,
               *, hollow: bool = True, flare: bool = True, width_scale: float = 1.0,
               end_round: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Path lengths (mm) through cortical and medullary bone of every long bone.

    A bone is a solid of revolution around its axis: shaft radius ``width/2``, flaring toward
    base and head (epiphyses), ellipsoidal ends that stay inside [a, b] (so joint spaces stay
    open), a cortical shell thick at mid-shaft and thin at the ends.  ``hollow=False`` gives a
    solid bone (all path counted as "cortical").
    """
    cort = np.zeros((grid.h, grid.w), np.float32)
    marrow = np.zeros((grid.h, grid.w), np.float32)
    k = grid.px_per_mm
    for b in bones:
        a_px, b_px = grid.pts(b.a), grid.pts(b.b)
        L = float(np.linalg.norm(b_px - a_px))
        if L < 1e-3:
            continue
        u = (b_px - a_px) / L
        r = b.width * width_scale / 2 * k
        rmax = r * (1 + (max(b.flare_base, b.flare_head) if flare else 0)) + 1
        x0 = int(max(np.floor(min(a_px[0], b_px[0]) - rmax), 0))
        x1 = int(min(np.ceil(max(a_px[0], b_px[0]) + rmax) + 1, grid.w))
        y0 = int(max(np.floor(min(a_px[1], b_px[1]) - rmax), 0))
        y1 = int(min(np.ceil(max(a_px[1], b_px[1]) + rmax) + 1, grid.h))
        if x0 >= x1 or y0 >= y1:
            continue
        xs = np.arange(x0, x1, dtype=np.float32) - a_px[0]
        ys = np.arange(y0, y1, dtype=np.float32) - a_px[1]
        along = ys[:, None] * u[1] + xs[None, :] * u[0]
        across = ys[:, None] * u[0] - xs[None, :] * u[1]
        if flare:
            sc = -1.0 / (0.9 * r) ** 2
            R = r * (1 + b.flare_base * np.exp(along * along * sc)
                     + b.flare_head * np.exp((L - along) ** 2 * sc))
        else:
            R = r
        # ellipsoidal ends inside [0, L]: e = how far past the straight part, in cap lengths
        c = max(end_round * r, 0.5)
        e = np.maximum(np.abs(along - L / 2) - (L / 2 - c), 0) * (1.0 / c)
        R2 = R * R * np.maximum(1 - e * e, 0)
        d2 = across * across
        outer = 2 * np.sqrt(np.maximum(R2 - d2, 0))
        if hollow:
            t = np.minimum(np.maximum(along * (1.0 / L), 0), 1)
            ct = cortex_fraction * r * (0.35 + 0.65 * np.sin(np.pi * t))
            rin = np.maximum(np.sqrt(R2) - ct, 0)
            inner = 2 * np.sqrt(np.maximum(rin * rin - d2, 0))
        else:
            inner = 0.0
        cort[y0:y1, x0:x1] += (outer - inner) / k
        marrow[y0:y1, x0:x1] += inner / k
    return cort, marrow


def _ellipse_window(grid, c, u, a: float, b: float):
    """The pixel window around an ellipse (centre ``c`` px, major axis along unit ``u``,
    semi-axes ``a`` and ``b`` px) clipped to the grid, and rho = (p/a)^2 + (q/b)^2 over it
    (< 1 inside); None when the window is empty."""
    rr = max(a, b) + 1
    x0, x1 = int(max(c[0] - rr, 0)), int(min(c[0] + rr + 1, grid.w))
    y0, y1 = int(max(c[1] - rr, 0)), int(min(c[1] + rr + 1, grid.h))
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float32) - c[0]
    ys = np.arange(y0, y1, dtype=np.float32) - c[1]
    p = xs[None, :] * u[0] + ys[:, None] * u[1]
    q = -xs[None, :] * u[1] + ys[:, None] * u[0]
    return (y0, y1, x0, x1), (p / a) ** 2 + (q / b) ** 2


def ellipsoid_paths(ellipses: tuple[Ellipse, ...] | list[Ellipse], grid: Grid,
                    shell: float = 0.22, depth_ratio: float = 0.9
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Path lengths (mm) through the cortical shell and the interior of ellipsoidal bones."""
    cort = np.zeros((grid.h, grid.w), np.float32)
    marrow = np.zeros((grid.h, grid.w), np.float32)
    k = grid.px_per_mm
    for e in ellipses:
        c = grid.pts(e.centre)
        ax, by = e.axes[0] * k, e.axes[1] * k
        depth = depth_ratio * (e.axes[0] + e.axes[1]) / 2
        ang = np.deg2rad(e.angle)
        ux = grid.vec(np.array([np.cos(ang), np.sin(ang)]))
        win = _ellipse_window(grid, c, ux, ax, by)
        if win is None:
            continue
        (y0, y1, x0, x1), rho = win
        outer = 2 * depth * np.sqrt(np.clip(1 - rho, 0, 1))
        inner = 2 * depth * (1 - shell) * np.sqrt(np.clip(1 - rho / (1 - shell) ** 2, 0, 1))
        cort[y0:y1, x0:x1] += outer - inner
        marrow[y0:y1, x0:x1] += inner
    return cort, marrow


def joint_tissue(joints: tuple[Joint, ...] | list[Joint], grid: Grid) -> np.ndarray:
    """Path length (mm) through the joint soft tissue (capsule, ligaments, cartilage, synovium)
    of every joint: an ellipsoid a little wider than the bone, as long as the gap plus the
    adjacent epiphyses, scaled by the identity's per-joint tissue factor."""
    out = np.zeros((grid.h, grid.w), np.float32)
    k = grid.px_per_mm
    for j in joints:
        c = grid.pts(j.centre)
        u = grid.vec(j.direction)
        u = u / (np.linalg.norm(u) + 1e-12)
        a = (j.gap / 2 + 0.45 * j.width) * j.tissue * k
        b = 0.78 * j.width * j.tissue * k
        depth = 0.7 * b / k
        win = _ellipse_window(grid, c, u, a, b)
        if win is None:
            continue
        (y0, y1, x0, x1), rho = win
        out[y0:y1, x0:x1] += 2 * depth * np.sqrt(np.clip(1 - rho, 0, 1))
    return out
