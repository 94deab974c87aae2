"""Parts shared by the attack species' scenes (:mod:`device.synth.attacks` and
:mod:`device.synth.attacks_composite`): casting bubbles, the aliased fine grating a box-pixel
sensor makes of a halftone screen or a display's pixel grid, a printer (resolution loss, tone
curve, halftone, paper), and the NIR image of a palm as an attacker has it."""

from __future__ import annotations

import cv2
import numpy as np

from device.synth import sensor as S
from device.synth.hand_geometry import HandGeometry, hand_layout
from device.synth.placement import scene_pose


def bubbles(rng: np.random.Generator, base: tuple[int, int], n_mean: float,
             r_px: tuple[float, float]) -> np.ndarray:
    """Small spherical voids/inclusions: a path-length-like map (px units, >= 0)."""
    out = np.zeros(base, np.float32)
    n = int(rng.poisson(n_mean))
    for _ in range(n):
        cx, cy = rng.uniform(0.15, 0.85) * base[1], rng.uniform(0.15, 0.85) * base[0]
        r = rng.uniform(*r_px)
        cv2.circle(out, (int(cx * 16), int(cy * 16)), int(r * 16), 1.0, -1, cv2.LINE_AA, 4)
    return cv2.GaussianBlur(out, (0, 0), 0.7)


def aliased_grating(shape: tuple[int, int], freq: float, angle: float) -> np.ndarray:
    """A fine 2-D cosine grid (``freq`` cycles/px, possibly far above Nyquist) as a box-pixel
    sensor samples it: each component folds to its alias frequency and is attenuated by the
    pixel's sinc -- this is where halftone and screen moire come from."""
    h, w = shape
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    out = np.zeros(shape, np.float32)
    for a in (angle, angle + np.pi / 2):
        fx, fy = freq * np.cos(a), freq * np.sin(a)
        amp = np.sinc(fx) * np.sinc(fy)                    # np.sinc(t) = sin(pi t)/(pi t)
        ax, ay = fx - np.round(fx), fy - np.round(fy)
        out += 0.5 * float(amp) * np.cos(2 * np.pi * (ax * x + ay * y))
    return out


def printer(src: np.ndarray, rng: np.random.Generator, base: tuple[int, int],
             cutout: np.ndarray | None = None):
    """A printed copy of ``src`` (ink coverage in [0, 1] on the x2 grid) as parts
    ``(sheet, coverage, paper)``: the sheet's support, halftoned ink coverage after resolution
    loss and the print tone curve, and the paper's fibre texture (around 1)."""
    down = rng.uniform(1.2, 3.0)                              # print / copy resolution loss
    tone = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
    freq = rng.uniform(1.2, 3.5)                   # halftone screen, cycles per x2-grid px
    ang = rng.uniform(0, np.pi / 2)
    fibre = S.band_noise(rng, base, 1.2)
    fibre_amp = rng.uniform(0.02, 0.06)
    edge = rng.random() < 0.5
    edge_ang = rng.uniform(0, 2 * np.pi)
    edge_pos = rng.uniform(0.5, 0.95)
    lo, hi = rng.uniform(0.0, 0.15), rng.uniform(0.8, 1.0)   # print levels: clipped ends
    small = cv2.resize(src, (max(int(base[1] / down), 8), max(int(base[0] / down), 8)),
                       interpolation=cv2.INTER_AREA)
    cov = cv2.resize(small, (base[1], base[0]), interpolation=cv2.INTER_CUBIC)
    cov = np.clip((cov - lo) / (hi - lo), 0, 1) ** tone

    def parts(shape):
        c = S.fit(cov, shape)
        sc = shape[0] / base[0]
        screen = aliased_grating(shape, freq / sc, ang)     # what the sensor samples of it
        cov_h = np.clip(c + 2.0 * c * (1 - c) * screen, 0, 1)
        paper = 1 + fibre_amp * S.fit(fibre, shape)
        sheet = np.ones(shape, np.float32)
        if edge:
            sheet = np.clip((edge_pos - S.ramp(shape, edge_ang)) * 8, 0, 1)
        if cutout is not None:
            sheet = sheet * S.fit(cutout, shape)
        return sheet, cov_h, paper

    return parts


def nir_source(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int],
                shallow: bool = False, palm_texture: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """An NIR image of the identity as the attacker has it, and its hand mask (x2 grid).

    ``palm_texture``: the identity's palm print (what its visible views show). The attacker's
    image is an 850 nm picture of the victim's palm, so it shows the palm's lines as a live
    NIR frame does (:func:`device.synth.sensor.nir_palm_lines`, the same share of their
    visible contrast, drawn aside); without it, the layout's creases alone."""
    if palm_texture is not None:                # drawn aside: the other draws stay the same
        surface_c, wrist_dy = S.nir_surface_draws(rng)
    pose = scene_pose(rng, 0.6)
    layout = hand_layout(geom, pose)
    grid = S.sensor_grid(layout, pose, "nir", base, S.sample_zoom(rng, "nir"))
    mask, shade = S.nir_skin(layout, grid, rng.uniform(8, 16))
    veins = S.nir_vein_map(layout, grid, shallow_only=shallow)
    if palm_texture is None:
        lines = 1 - 0.08 * S.nir_crease_map(layout, grid)
    else:
        lines = S.nir_palm_lines(geom, layout, grid, palm_texture, surface_c, wrist_dy)
    vc = rng.uniform(0.25, 0.45)
    img = (0.25 + 0.75 * shade) * (1 - vc * veins) * lines
    # the attacker's copy is flat-fielded (a vein "photo" from another camera or an enhanced
    # capture), so it does not carry a second illumination falloff
    img = img * S.illumination(base, rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6),
                               rng.uniform(0.8, 2.0))
    img = mask * img + (1 - mask) * rng.uniform(0.02, 0.3)
    lo, hi = np.percentile(img, [1, 99.5])
    return np.clip((img - lo) / (hi - lo + 1e-6), 0, 1).astype(np.float32), mask
