"""Transmission-sensor images of a hand: X-ray "skeleton/joint" radiographs and NIR vein images.

Sizes (a documented choice; the liveness design, seed 001, gives none):

* X-ray: the detector sees a 220 mm square (the whole hand: distal radius/ulna, carpals,
  metacarpals, all phalanges), divided by the presentation's geometric magnification (1.0-1.3:
  the palm is held somewhere between source and detector).  Capture 128x128 (1.72 mm/px: a
  shaft is ~5 px, a joint space ~1 px, so joint detail is only barely there -- the reason the
  liveness design (seed 001) adds super-resolution); the x2 SR target is 256x256 (0.86 mm/px).
* NIR: the sensor sees a 120 mm square around the palm centre (/ zoom 0.8-1.25).  Capture
  128x128 (0.94 mm/px), x2 target 256x256.

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

Modules: the sizes, the sensor grid and the hand's path-length maps live in
:mod:`device.synth.sensor_geometry`, the exposure and sensor response (steps 3-4) in
:mod:`device.synth.sensor_exposure`; this module holds the scenes and the rendering, and
re-exports the public names of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from device.synth.hand_geometry import HandGeometry, HandLayout, HandPose, hand_layout
from device.synth.placement import scene_pose
from device.synth.sensor_exposure import (Exposure, auto_gamma, degrade, ramp,  # noqa: F401
                                          sample_exposure, sensor_response)
from device.synth.sensor_geometry import (CAPTURE_SIZE, FOV_MM,  # noqa: F401
                                          NIR_CAPTURE_SIZE, SR_SCALE, XRAY_CAPTURE_SIZE, Grid,
                                          _fix, bone_paths, ellipsoid_paths, hand_mask,
                                          joint_tissue, sample_zoom, sensor_grid,
                                          tissue_thickness)

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
    pose = pose or scene_pose(rng, 0.6)
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


NIR_SURFACE_CONTRAST = (0.3, 0.6)
"""Range of the share of the palm's surface lines' visible-light contrast an NIR frame keeps
(a documented choice: the palm lines are plain in 850 nm palm prints, fainter than in visible
light)."""


def nir_surface_map(geom: HandGeometry, layout: HandLayout, grid: Grid,
                    palm_texture: np.ndarray, wrist_dy: float) -> np.ndarray:
    """The palm's surface lines (:func:`device.synth.hands.palm_surface`: the palm-print
    texture the visible views show, the creases, the fingers' and the wrist's creases) on the
    sensor grid: a luminance map around 1, lines < 1 (1 off the hand)."""
    from device.synth.hands import TEXTURE_SIZE, _canvas_frame, palm_surface
    tex = np.asarray(palm_texture, np.float32)
    if tex.shape != (TEXTURE_SIZE, TEXTURE_SIZE):
        tex = cv2.resize(tex, (TEXTURE_SIZE, TEXTURE_SIZE), interpolation=cv2.INTER_AREA)
    to_hand, w, h = _canvas_frame(layout)
    mod = palm_surface(geom, layout, tex, 1.0, wrist_dy, to_hand, (h, w))
    A = (np.vstack([grid.M, [0.0, 0.0, 1.0]]) @ to_hand)[:2]
    return cv2.warpAffine(mod.astype(np.float32), A, (grid.w, grid.h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)


def nir_surface_draws(rng: np.random.Generator) -> tuple[float, float]:
    """(share of the visible contrast, wrist-crease gap mm) of an NIR frame's palm lines,
    drawn from a generator spawned from ``rng`` (the caller's other draws stay the same)."""
    aside = rng.spawn(1)[0]
    return float(aside.uniform(*NIR_SURFACE_CONTRAST)), float(aside.uniform(4, 7))


def nir_palm_lines(geom: HandGeometry, layout: HandLayout, grid: Grid,
                   palm_texture: np.ndarray, contrast: float, wrist_dy: float,
                   blur_mm: float = 0.0) -> np.ndarray:
    """Multiplicative palm-line luminance (around 1, lines < 1) of an NIR frame: the surface
    lines of :func:`nir_surface_map` at ``contrast`` of their visible-light contrast, blurred
    by ``blur_mm`` (0: as sharp as the sensor draws them)."""
    surf = nir_surface_map(geom, layout, grid, palm_texture, wrist_dy)
    if blur_mm > 0:
        surf = cv2.GaussianBlur(surf, (0, 0), max(blur_mm * grid.px_per_mm, 0.4))
    return 1 + contrast * (surf - 1)


def bona_fide_nir_scene(geom: HandGeometry, rng: np.random.Generator,
                        base: tuple[int, int], pose: HandPose | None = None,
                        zoom: float | None = None,
                        palm_texture: np.ndarray | None = None) -> Scene:
    """Draw a live palm's NIR content (radiance painter, [0, 1]).  ``pose``/``zoom`` default
    to random draws.  With ``palm_texture`` (the palm print the visible views of the same
    hand show) the palm's surface lines are those the views show (:func:`nir_surface_map`, at
    :data:`NIR_SURFACE_CONTRAST` of their contrast, drawn from a spawned generator); without
    it, the layout's creases alone. Every other draw is the same either way, so the two frames
    differ only in the palm's lines."""
    pose = pose or scene_pose(rng, 0.6)
    layout = hand_layout(geom, pose)
    zoom = sample_zoom(rng, "nir") if zoom is None else zoom
    vein_c = rng.uniform(0.22, 0.4)
    crease_c = rng.uniform(0.04, 0.1)
    falloff = rng.uniform(8, 16)
    light = (rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.6))
    bg_level = rng.uniform(0.02, 0.3)
    mottle = smooth_noise(rng, base, 8) * rng.uniform(0.02, 0.05)
    pores = band_noise(rng, base, 0.8) * rng.uniform(0.005, 0.02)
    if palm_texture is not None:                # drawn aside: the other draws stay the same
        surface_c, wrist_dy = nir_surface_draws(rng)

    def paint(shape: tuple[int, int]) -> np.ndarray:
        grid = sensor_grid(layout, pose, "nir", shape, zoom)
        mask, shade = nir_skin(layout, grid, falloff)
        veins = nir_vein_map(layout, grid)
        skin = (0.25 + 0.75 * shade) * (1 + fit(mottle, shape) + fit(pores, shape))
        if palm_texture is None:
            lines = 1 - crease_c * nir_crease_map(layout, grid)
        else:
            lines = nir_palm_lines(geom, layout, grid, palm_texture, surface_c, wrist_dy)
        skin = skin * (1 - vein_c * veins) * lines
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
    return capture(content, rng, sensor, size, scale)[0]


def capture(content: Scene, rng: np.random.Generator, sensor: str, size: tuple[int, int],
            scale: int = 1, exposure: Exposure | None = None) -> tuple[np.ndarray, Exposure]:
    """(frame, its exposure): the frame's own draws of a drawn ``content`` -- the exposure
    (unless ``exposure`` is given), the sensor response and, at ``scale == 1``, the capture's
    degradation -- from ``rng`` (steps 3-4 of the pipeline)."""
    exp = sample_exposure(rng, sensor) if exposure is None else exposure
    base_px = size[0] * SR_SCALE
    s = SR_SCALE if scale == 1 else int(scale)
    shape = (size[0] * s, size[1] * s)
    img = sensor_response(content.paint(shape), exp, rng, sensor, base_px)
    if scale == 1:
        img = degrade(img, rng, SR_SCALE)
    return img, exp


def render_burst(scene: SceneFn, geom: HandGeometry, rng: np.random.Generator, sensor: str,
                 size: tuple[int, int], k: int, frame_seed, keep_exposure: bool = False
                 ) -> list[np.ndarray]:
    """``k + 1`` captures of one content: a burst of the sensor while the palm is held.

    Frame 0 is :func:`render_scene`'s capture and leaves ``rng`` where it leaves it (the content
    and the first frame's draws come from ``rng``); frames 1..k redraw only the frame -- the
    exposure (auto-window, gain, quantum noise's dose), the response's noise and the
    degradation -- from one generator of their own, ``np.random.default_rng(frame_seed)``;
    with ``keep_exposure`` they keep frame 0's exposure settings and redraw the noise, PSF and
    read noise only. The content (pose, placement, anatomy, texture fields) is the same."""
    if sensor not in FOV_MM:
        raise ValueError(f"sensor must be 'xray' or 'nir', not {sensor!r}")
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    base = (size[0] * SR_SCALE, size[1] * SR_SCALE)
    content = scene(geom, rng, base)
    first, exp = capture(content, rng, sensor, size)
    frames = [first]
    fr = np.random.default_rng(frame_seed)
    for _ in range(k):
        frames.append(capture(content, fr, sensor, size,
                              exposure=exp if keep_exposure else None)[0])
    return frames


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
