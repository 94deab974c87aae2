"""Transmission-sensor images of a hand: X-ray "skeleton/joint" radiographs and NIR vein images.

Sizes (documented choice; seed 001 gives none):

* X-ray: the detector sees a 220 mm square (the whole hand: distal radius/ulna, carpals,
  metacarpals, all phalanges), divided by the presentation's geometric magnification (1.0-1.3:
  the palm is held somewhere between source and detector).  Capture 128x128 (1.72 mm/px: a shaft is ~5 px, a joint space
  ~1 px, so joint detail is only barely there -- the reason seed 001 adds super-resolution);
  the x2 SR target is 256x256 (0.86 mm/px).
* NIR: the sensor sees a 120 mm square around the palm centre (/ zoom 0.8-1.25).  Capture 128x128 (0.94 mm/px),
  x2 target 256x256.

Pipeline of one capture (same for bona fide and every attack species, see ``attacks.py``):

1. a *scene* draws every content parameter from ``rng`` (pose, materials, exposure, texture
   fields at the x2 grid) before any pixel is drawn, so the same ``rng`` state gives the same
   content at any scale;
2. the scene is painted as a physical map on the render grid: log-attenuation for X-ray
   (soft tissue thickness x mu, cortical/medullary bone path lengths, joint spaces, joint soft
   tissue), reflected radiance for NIR (illumination x skin x vein absorption x creases);
3. :func:`sensor_response` -- exposure (quantum noise), heel/illumination gradient, scatter,
   auto-window at random percentiles, auto-brightness (a tone-curve gamma that brings the image
   mean to a random target), gain and offset -- drawn from one distribution for every class, so
   that global grey levels carry no class information;
4. ``scale == 1`` returns the *capture*: the ideal x2 image area-downsampled, blurred by the
   sensor PSF and noised (:func:`degrade`); ``scale >= 2`` returns the ideal image at that scale.

All images are float32 in [0, 1], single channel; bones are bright on darker soft tissue on a
dark background (radiograph convention); in NIR veins are dark on bright skin.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import cv2
import numpy as np

from device.synth.hand_geometry import (Bone, Ellipse, HandGeometry, HandLayout, HandPose, Joint,
                                       hand_layout, perturb_pose)

XRAY_CAPTURE_SIZE: tuple[int, int] = (128, 128)
"""X-ray capture resolution (H, W); the SR target is twice it."""
NIR_CAPTURE_SIZE: tuple[int, int] = (128, 128)
"""NIR capture resolution (H, W); the SR target is twice it."""
CAPTURE_SIZE: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"xray": XRAY_CAPTURE_SIZE, "nir": NIR_CAPTURE_SIZE})
SR_SCALE = 2
FOV_MM: Mapping[str, float] = MappingProxyType({"xray": 220.0, "nir": 120.0})
"""Side of the square field of view of each sensor at magnification 1, mm."""

# linear attenuation coefficients, 1/mm (hand radiography, ~50-55 kVp, ~30-35 keV effective)
MU_SOFT = 0.028
MU_CORTEX = 0.16
MU_MARROW = 0.06
MU_JOINT = 0.012            # extra density of joint capsule/ligaments/synovium over soft tissue

Painter = Callable[[tuple[int, int]], np.ndarray]
"""A scene painter: render-grid shape (H, W) -> physical map at that shape."""


@dataclass(frozen=True, eq=False)
class Scene:
    """Content of one capture, drawn before any pixel: ``paint(shape)`` gives the physical map
    on a render grid of that shape, ``grid(shape)`` the hand-to-pixel mapping (None for flat
    copies such as prints), ``layout`` the hand as presented (None for flat copies)."""

    paint: Painter
    grid: Callable[[tuple[int, int]], "Grid"] | None = None
    layout: HandLayout | None = None


# --------------------------------------------------------------------------------------------
# geometry on the sensor grid


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


# --------------------------------------------------------------------------------------------
# random fields (drawn on the x2 base grid, resized to the render grid)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise, unit std, with about ``cells`` blobs across the image."""
    small = rng.normal(0, 1, (cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(small, (shape[1] + 2 * shape[1] // cells, shape[0] + 2 * shape[0] // cells),
                     interpolation=cv2.INTER_CUBIC)
    oy, ox = shape[0] // cells, shape[1] // cells
    out = big[oy:oy + shape[0], ox:ox + shape[1]]
    return (out - out.mean()) / (out.std() + 1e-6)


def band_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Band-pass (difference-of-Gaussians) noise, unit std, feature size ~``sigma`` px."""
    n = rng.standard_normal(shape, dtype=np.float32)
    out = cv2.GaussianBlur(n, (0, 0), sigma) - cv2.GaussianBlur(n, (0, 0), 2.5 * sigma)
    return out / (out.std() + 1e-6)


def fit(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a base-grid field to the render grid (identity when the shapes match)."""
    if field.shape[:2] == tuple(shape):
        return field
    interp = cv2.INTER_AREA if field.shape[0] > shape[0] else cv2.INTER_LINEAR
    return cv2.resize(field, (shape[1], shape[0]), interpolation=interp)


# --------------------------------------------------------------------------------------------
# sensor response, shared by every class


@dataclass(frozen=True)
class Exposure:
    """Per-image sensor settings, drawn by :func:`sample_exposure` from one distribution for
    every class (bona fide and attacks alike)."""

    photons: float          # quanta per x2-grid pixel behind no absorber (X-ray) / full well
    gradient: float         # heel effect / illumination gradient amplitude
    gradient_angle: float
    scatter: float          # fraction of scattered / stray signal
    q_lo: float             # auto-window low percentile
    q_hi: float             # auto-window high percentile
    headroom: float         # window top above that percentile (x range)
    black: float            # black point above the low percentile (x range)
    collimation: tuple[float, float, float, float]   # X-ray field margins (top, bottom, l, r)
    target_mean: float      # auto-brightness target of the tone curve
    gain: float
    offset: float


def sample_exposure(rng: np.random.Generator, sensor: str) -> Exposure:
    """Draw the sensor settings of one image (same distribution for every class)."""
    xr = sensor == "xray"
    return Exposure(
        photons=float(np.exp(rng.uniform(np.log(600), np.log(8000)))),
        gradient=float(rng.uniform(0.0, 0.25)),
        gradient_angle=float(rng.uniform(0, 2 * np.pi)),
        scatter=float(rng.uniform(0.0, 0.25)),
        q_lo=float(rng.uniform(0.5, 15.0) if xr else rng.uniform(0.5, 10.0)),
        q_hi=float(rng.uniform(96.5, 99.9)),
        headroom=float(rng.uniform(1.0, 1.5)),
        black=float(rng.uniform(0.0, 0.1) if xr else rng.uniform(0.0, 0.05)),
        collimation=tuple(float(v) for v in (rng.uniform(0, 0.12, 4) * (rng.random() < 0.6)
                                              if xr else np.zeros(4))),
        target_mean=float(rng.uniform(0.15, 0.35) if xr else rng.uniform(0.3, 0.52)),
        gain=float(rng.uniform(0.8, 1.0)),
        offset=float(rng.uniform(0.0, 0.1)),
    )


_GAMMAS = np.exp(np.linspace(np.log(0.33), np.log(3.0), 97))
_CENTRES = (np.arange(256) + 0.5) / 256
_POWERS = _CENTRES[None, :] ** _GAMMAS[:, None]
for _a in (_GAMMAS, _CENTRES, _POWERS):
    _a.flags.writeable = False                     # read-only lookup tables
del _a


def auto_gamma(x: np.ndarray, target: float) -> float:
    """Gamma of the tone curve ``x ** gamma`` that brings the mean of ``x`` (in [0, 1]) to
    ``target`` -- the sensor's auto-brightness (clamped to [0.33, 3])."""
    v = x.ravel()
    n = max(v.size, 1)
    ones = float(np.count_nonzero(v >= 1.0))
    inner = v[(v > 0.0) & (v < 1.0)]
    p = np.bincount(np.minimum((inner * 256).astype(np.int32), 255), minlength=256)
    means = (_POWERS @ p + ones) / n
    return float(_GAMMAS[int(np.argmin(np.abs(means - target)))])


def ramp(shape: tuple[int, int], angle: float) -> np.ndarray:
    """Linear ramp in [-1, 1] (about the image centre) along direction ``angle``."""
    h, w = shape
    x = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
    y = (np.arange(h, dtype=np.float32) - h / 2) / (h / 2)
    return np.cos(angle) * x[None, :] + np.sin(angle) * y[:, None]


def sensor_response(phys: np.ndarray, exp: Exposure, rng: np.random.Generator, sensor: str,
                    base_px: int) -> np.ndarray:
    """Physical map -> displayed image in [0, 1] with exposure, noise and auto-window.

    X-ray: ``phys`` is log-attenuation; transmitted quanta ``N = photons * gradient *
    exp(-phys)`` (+ scatter), Poisson-like noise, flat-field, log, window.  NIR: ``phys`` is
    radiance in [0, 1]; signal-dependent noise, then window.  ``base_px`` is the side of the x2
    grid, used to keep the noise per physical area the same at any render scale.
    """
    shape = phys.shape
    area = (base_px / shape[0]) ** 2               # render pixels are smaller at larger scales
    grad = ramp(shape, exp.gradient_angle)
    heel = 1 + exp.gradient * grad
    if sensor == "xray":
        I = np.exp(-phys) * heel
        small = cv2.resize(I, (max(shape[1] // 8, 1), max(shape[0] // 8, 1)),
                           interpolation=cv2.INTER_AREA)
        I = (1 - exp.scatter) * I + exp.scatter * cv2.resize(
            cv2.GaussianBlur(small, (0, 0), 2.0), (shape[1], shape[0]),
            interpolation=cv2.INTER_LINEAR)
        n = exp.photons * area
        I = I + rng.standard_normal(shape, dtype=np.float32) * np.sqrt(np.maximum(I, 1e-6) / n)
        flat = 1 + exp.gradient * 0.85 * grad         # imperfect flat-field correction
        sig = -np.log(np.maximum(I / flat, 1e-3))
    else:
        I = phys * heel * (1 - exp.scatter) + exp.scatter * 0.2
        n = exp.photons * area
        sig = I + rng.standard_normal(shape, dtype=np.float32) * np.sqrt(np.maximum(I, 1e-6) / n)
    # the window is set on a noise-free preview of the exposed field (the console's
    # auto-window), with headroom above and a black point above the direct-exposure level
    h, w = shape
    t, b, l, r = (int(round(c * n)) for c, n in zip(exp.collimation, (h, h, w, w)))
    field = sig[t:h - b, l:w - r]
    prev = cv2.resize(field, (max(field.shape[1] // 4, 1), max(field.shape[0] // 4, 1)),
                      interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(prev, [exp.q_lo, exp.q_hi])
    hi = lo + (hi - lo) * exp.headroom
    lo = lo + (hi - lo) * exp.black
    x = np.clip((sig - lo) / max(hi - lo, 1e-4), 0, 1)
    gamma = auto_gamma(x[t:h - b:2, l:w - r:2], exp.target_mean)
    if t or b or l or r:                            # collimated (unexposed) border shows white
        x[:t] = 1.0
        x[h - b:] = 1.0
        x[:, :l] = 1.0
        x[:, w - r:] = 1.0
    y = exp.offset + exp.gain * np.power(x, gamma)
    return np.clip(y, 0, 1).astype(np.float32)


def degrade(hr: np.ndarray, rng: np.random.Generator, factor: int = SR_SCALE) -> np.ndarray:
    """Capture-resolution version of an ideal image: area downsample by ``factor``, sensor PSF
    (Gaussian, sigma 0.3-0.7 capture px) and read noise (sigma 0.3-1.2 % of full scale)."""
    h, w = hr.shape[:2]
    lr = cv2.resize(hr, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    lr = cv2.GaussianBlur(lr, (0, 0), rng.uniform(0.3, 0.7))
    sigma = rng.uniform(0.003, 0.012)
    lr = lr + rng.standard_normal(lr.shape, dtype=np.float32) * sigma
    return np.clip(lr, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# scenes


def xray_tissue(geom: HandGeometry, layout: HandLayout, grid: Grid, mu: float,
                inhomogeneity: np.ndarray | None) -> np.ndarray:
    """Soft-tissue log-attenuation: thickness x mu (x (1 + inhomogeneity)), thenar bulge."""
    mask = hand_mask(layout, grid)
    T = tissue_thickness(mask, grid, geom.palm_thickness / 2)
    A = mu * T
    if inhomogeneity is not None:
        A = A * (1 + inhomogeneity)
    return A


def bona_fide_xray_scene(geom: HandGeometry, rng: np.random.Generator,
                         base: tuple[int, int], pose: HandPose | None = None,
                         zoom: float | None = None) -> Scene:
    """Draw a live hand's radiograph content (log-attenuation painter).  ``pose``/``zoom``
    default to random draws."""
    pose = pose or perturb_pose(rng, 0.6)
    layout = hand_layout(geom, pose)
    zoom = sample_zoom(rng, "xray") if zoom is None else zoom
    mu_s = MU_SOFT * geom.tissue_density * rng.uniform(0.95, 1.05)
    mu_c = MU_CORTEX * geom.bone_density
    mu_m = MU_MARROW * geom.bone_density
    trab_amp = rng.uniform(0.12, 0.25)
    px_mm = base[0] / FOV_MM["xray"]
    trab = band_noise(rng, base, max(0.6 * px_mm, 0.6))
    inh = smooth_noise(rng, base, 10) * rng.uniform(0.02, 0.06)

    def paint(shape: tuple[int, int]) -> np.ndarray:
        grid = sensor_grid(layout, pose, "xray", shape, zoom)
        A = xray_tissue(geom, layout, grid, mu_s, fit(inh, shape))
        bones = list(layout.bones)
        cort, marrow = bone_paths(bones, grid, geom.cortex_fraction)
        cc, cm = ellipsoid_paths(list(layout.carpals), grid, shell=0.15, depth_ratio=0.6)
        sc, sm = ellipsoid_paths(list(layout.sesamoids), grid, shell=0.35)
        cort += cc + sc
        marrow += cm + sm
        tr = fit(trab, shape)
        A += (mu_c - mu_s) * cort + (mu_m * (1 + trab_amp * tr) - mu_s) * marrow
        A += MU_JOINT * joint_tissue(list(layout.joints), grid)
        return A

    return Scene(paint, lambda shape: sensor_grid(layout, pose, "xray", shape, zoom), layout)


def nir_vein_map(layout: HandLayout, grid: Grid, shallow_only: bool = False) -> np.ndarray:
    """Vein absorption (0 = none) blurred by each vein's depth (deeper = wider, fainter)."""
    k = grid.px_per_mm
    layers = {}
    for v in layout.veins_mm:
        key = 0 if (shallow_only or v.depth < 2.2) else 1
        if key not in layers:
            layers[key] = np.zeros((grid.h, grid.w), np.float32)
        strength = min(1.0, 0.45 * v.width) * (1.6 / (1 + 0.35 * v.depth))
        cv2.polylines(layers[key], [_fix(grid.pts(v.points))], False, float(strength),
                      max(1, int(round(v.width * k))), cv2.LINE_AA, 4)
    out = np.zeros((grid.h, grid.w), np.float32)
    for key, lay in layers.items():
        sigma = (0.9 if key == 0 else 1.8) * k
        out += cv2.GaussianBlur(lay, (0, 0), max(sigma, 0.4))
    return out


def nir_crease_map(layout: HandLayout, grid: Grid, blur_mm: float = 0.5) -> np.ndarray:
    """Principal/minor palm creases as a darkness map (0 = none)."""
    k = grid.px_per_mm
    out = np.zeros((grid.h, grid.w), np.float32)
    for c in layout.creases_mm:
        cv2.polylines(out, [_fix(grid.pts(c.points))], False, float(c.depth),
                      max(1, int(round(c.width * k))), cv2.LINE_AA, 4)
    return cv2.GaussianBlur(out, (0, 0), max(blur_mm * k, 0.4))


def nir_skin(layout: HandLayout, grid: Grid, falloff_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Palm silhouette and its diffuse-skin shading (dark toward the edges of a curved hand)."""
    mask = hand_mask(layout, grid)
    d = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5) / grid.px_per_mm
    shade = np.sqrt(np.clip(d / falloff_mm, 0, 1)) * np.minimum(mask * 1.5, 1)
    return mask, shade


def illumination(shape: tuple[int, int], cx: float, cy: float, spread: float) -> np.ndarray:
    """Active NIR illumination spot (separable Gaussian falloff), 1 at its centre."""
    h, w = shape
    x = (np.arange(w, dtype=np.float32) + 0.5) / w - cx
    y = (np.arange(h, dtype=np.float32) + 0.5) / h - cy
    return np.exp(-(y[:, None] ** 2) / (2 * spread ** 2)) * np.exp(-(x[None, :] ** 2) /
                                                                  (2 * spread ** 2))


def bona_fide_nir_scene(geom: HandGeometry, rng: np.random.Generator,
                        base: tuple[int, int], pose: HandPose | None = None,
                        zoom: float | None = None) -> Scene:
    """Draw a live palm's NIR content (radiance painter, [0, 1]).  ``pose``/``zoom`` default
    to random draws."""
    pose = pose or perturb_pose(rng, 0.6)
    layout = hand_layout(geom, pose)
    zoom = sample_zoom(rng, "nir") if zoom is None else zoom
    vein_c = rng.uniform(0.22, 0.4)
    crease_c = rng.uniform(0.04, 0.1)
    falloff = rng.uniform(8, 16)
    light = (rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.6))
    bg_level = rng.uniform(0.02, 0.3)
    mottle = smooth_noise(rng, base, 8) * rng.uniform(0.02, 0.05)
    pores = band_noise(rng, base, 0.8) * rng.uniform(0.005, 0.02)

    def paint(shape: tuple[int, int]) -> np.ndarray:
        grid = sensor_grid(layout, pose, "nir", shape, zoom)
        mask, shade = nir_skin(layout, grid, falloff)
        veins = nir_vein_map(layout, grid)
        creases = nir_crease_map(layout, grid)
        skin = (0.25 + 0.75 * shade) * (1 + fit(mottle, shape) + fit(pores, shape))
        skin = skin * (1 - vein_c * veins) * (1 - crease_c * creases)
        rad = illumination(shape, *light) * skin
        return (mask * rad + (1 - mask) * bg_level).astype(np.float32)

    return Scene(paint, lambda shape: sensor_grid(layout, pose, "nir", shape, zoom), layout)


# --------------------------------------------------------------------------------------------
# rendering


SceneFn = Callable[[HandGeometry, np.random.Generator, tuple[int, int]], Scene]


def render_scene(scene: SceneFn, geom: HandGeometry, rng: np.random.Generator, sensor: str,
                 size: tuple[int, int], scale: int = 1) -> np.ndarray:
    """Draw a scene (content first), paint it, pass it through the sensor response.

    ``scale == 1``: the capture (ideal x2 image degraded to ``size``); ``scale >= 2``: the
    ideal image at ``size * scale``.  The same ``rng`` state gives the same content at every
    scale, and the capture equals ``degrade`` of the x2 ideal image.
    """
    if sensor not in FOV_MM:
        raise ValueError(f"sensor must be 'xray' or 'nir', not {sensor!r}")
    base = (size[0] * SR_SCALE, size[1] * SR_SCALE)
    content = scene(geom, rng, base)
    exp = sample_exposure(rng, sensor)
    s = SR_SCALE if scale == 1 else int(scale)
    shape = (size[0] * s, size[1] * s)
    img = sensor_response(content.paint(shape), exp, rng, sensor, base[0])
    if scale == 1:
        img = degrade(img, rng, SR_SCALE)
    return img


def render_xray(geom: HandGeometry, rng: np.random.Generator,
                size: tuple[int, int] = XRAY_CAPTURE_SIZE, scale: int = 1) -> np.ndarray:
    """Radiograph of a live hand: float32 (H*scale, W*scale) in [0, 1], bones bright.

    ``scale=1`` is the sensor capture; ``scale>=2`` the ideal image ``scale`` times finer.
    """
    return render_scene(bona_fide_xray_scene, geom, rng, "xray", size, scale)


def render_nir(geom: HandGeometry, rng: np.random.Generator,
               size: tuple[int, int] = NIR_CAPTURE_SIZE, scale: int = 1) -> np.ndarray:
    """NIR image of a live palm: diffuse skin, dark per-identity veins, faint creases."""
    return render_scene(bona_fide_nir_scene, geom, rng, "nir", size, scale)


def render_pair(scene: SceneFn, geom: HandGeometry, rng: np.random.Generator, sensor: str,
                lr_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lr, hr) for any scene: hr is the ideal image at x2, lr its capture (area downsample +
    sensor blur + noise) -- identical to ``render_scene(..., scale=1)`` from the same state."""
    size = tuple(lr_size or CAPTURE_SIZE[sensor])
    base = (size[0] * SR_SCALE, size[1] * SR_SCALE)
    content = scene(geom, rng, base)
    exp = sample_exposure(rng, sensor)
    hr = sensor_response(content.paint(base), exp, rng, sensor, base[0])
    lr = degrade(hr, rng, SR_SCALE)
    return lr, hr


def render_sensor_pair(geom: HandGeometry, rng: np.random.Generator, sensor: str = "xray",
                       lr_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Super-resolution pair of a live hand: ``lr`` at ``lr_size`` (default: the sensor's
    capture size, 128x128) and ``hr`` at twice it, same content."""
    scene = bona_fide_xray_scene if sensor == "xray" else bona_fide_nir_scene
    if sensor not in FOV_MM:
        raise ValueError(f"sensor must be 'xray' or 'nir', not {sensor!r}")
    return render_pair(scene, geom, rng, sensor, lr_size)
