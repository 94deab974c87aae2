"""Presentation-attack species for the transmission sensor, and the matching bona fide renders.

X-ray species (seed 001 §3.7): the attack differs from a live hand in its *bones, joints and soft
tissue*, never in a global grey-level cue -- every class goes through the same
:func:`device.synth.sensor.sensor_response` with settings from one distribution, and the
materials are drawn from ranges that overlap live tissue.

* ``hi_precision_model`` -- an exact cast of the hand's outline and thickness (tissue-equivalent,
  homogeneous resin/silicone with casting bubbles) around an articulated anatomical skeleton
  model: bones of template (not the identity's) widths, solid and homogeneous (no cortex/marrow,
  no trabecular texture), joint spaces at the wrong width or fused, no joint soft tissue,
  simplified carpals.
* ``no_bones`` -- the same cast with no bones or joints at all (material density varies).
* ``simple_bones`` -- the cast with straight uniform rods as bones (one or a few per ray, no
  epiphyses, no carpals or one block), no joint soft tissue.
* ``other_material_bones`` -- anatomically placed bones of another material: thin metal wire
  (very dense), wood (less dense than tissue, grain), or 3-D printed plastic (infill lattice);
  hinge pins or glue at the joints, no joint soft tissue.
* ``photo`` -- a printed sheet: a radiograph-like positive of the hand printed with dense ink,
  so the sensor sees a flat copy -- re-sampled, halftoned, on a paper texture, with the
  copy's own noise and blur and possibly the sheet edge.

Composite species (a copy laid over a live hand, a real skeleton in a phantom, a display behind a
diffuser): :mod:`device.synth.attacks_composite`.

NIR species:

* ``printed_photo`` -- a print of an NIR palm image: halftone screen, paper fibre, flat (no
  edge falloff of a curved hand), print tone curve, possibly cut along the outline.
* ``screen_replay`` -- an NIR palm image on a screen: pixel grid and moire, pixelation, glass
  glare, veins all at one (display) depth, possibly the bezel.
* ``silicone_cast`` -- a cast with the hand's outline and surface creases but no veins:
  translucent (softer edges, blurred creases), smooth, with bubbles and a sheen.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from types import MappingProxyType
from typing import Mapping

import cv2
import numpy as np

from device.synth import attacks_composite as C
from device.synth import sensor as S
from device.synth.attack_parts import aliased_grating  # noqa: F401  (re-exported)
from device.synth.attack_parts import bubbles as _bubbles
from device.synth.attack_parts import nir_source as _nir_source
from device.synth.attack_parts import printer as _printer
from device.synth.hand_geometry import (Bone, Ellipse, HandGeometry, HandLayout,
                                       hand_layout, sample_hand_geometry)
from device.synth.placement import scene_pose

# the composite species are appended after the first ones, so a set's per-class generator seeds
# (class index, item) of the first species -- and the demo's attacks -- stay what they were
XRAY_SPECIES: tuple[str, ...] = ("hi_precision_model", "no_bones", "simple_bones",
                                 "other_material_bones", "photo") + C.XRAY_COMPOSITE_SPECIES
NIR_SPECIES: tuple[str, ...] = ("printed_photo", "screen_replay",
                                "silicone_cast") + C.NIR_COMPOSITE_SPECIES
SPECIES: Mapping[str, tuple[str, ...]] = MappingProxyType({"xray": XRAY_SPECIES,
                                                            "nir": NIR_SPECIES})
BONA_FIDE = "bona_fide"


# --------------------------------------------------------------------------------------------
# helpers


def _template_bones(geom: HandGeometry, rng: np.random.Generator) -> HandGeometry:
    """The identity's outline with a *template* skeleton: bone widths, joint spaces, cortex
    and carpal layout of another (generic) hand of the same size."""
    t = sample_hand_geometry(rng, geom.hand, veins=False)
    k = geom.size / t.size
    return replace(geom, bone_widths=tuple(tuple(v * k for v in b) for b in t.bone_widths),
                   joint_spaces=tuple(tuple(v * k for v in j) for j in t.joint_spaces),
                   carpals=t.carpals, sesamoids=False)


def _scene(paint, layout: HandLayout, pose, sensor: str, zoom: float) -> S.Scene:
    return S.Scene(paint, lambda shape: S.sensor_grid(layout, pose, sensor, shape, zoom), layout)


def _cast(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int]):
    """Common part of every hand-model species: pose, outline, homogeneous material."""
    pose = scene_pose(rng, 0.6)
    layout = hand_layout(geom, pose)
    zoom = S.sample_zoom(rng, "xray")
    mu = S.MU_SOFT * rng.uniform(0.85, 1.45)
    thick = rng.uniform(0.9, 1.1)
    inh = S.smooth_noise(rng, base, 6) * rng.uniform(0.0, 0.02)
    bub = _bubbles(rng, base, rng.uniform(0, 8), (0.4, 1.4))
    bub_mm = rng.uniform(0.8, 2.5)
    # a cast is a skin-like shell (1-4 mm) around a filler of another density
    shell = (rng.uniform(1.0, 4.0), rng.uniform(0.6, 1.3))
    return pose, layout, zoom, mu, thick, inh, bub, bub_mm, shell


def _cast_tissue(geom: HandGeometry, layout: HandLayout, grid: S.Grid, mu: float, thick: float,
                 inh: np.ndarray, bub: np.ndarray, bub_mm: float,
                 shell: tuple[float, float]) -> np.ndarray:
    """Log-attenuation of a cast: a shell of ``shell[0]`` mm around a filler whose density is
    ``shell[1]`` times the shell's, with casting bubbles."""
    shape = (grid.h, grid.w)
    mask = S.hand_mask(layout, grid)
    half = geom.palm_thickness / 2 * thick
    d = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5) / grid.px_per_mm
    d = d + 0.5 / grid.px_per_mm
    do = np.minimum(d, half)
    T = 2 * np.sqrt(np.maximum(do * (2 * half - do), 0)) * np.minimum(mask * 2, 1)
    hi = max(half - shell[0], 0.5)
    di = np.clip(d - shell[0], 0, hi)
    Ti = 2 * np.sqrt(np.maximum(di * (2 * hi - di), 0))
    A = mu * (T - Ti + shell[1] * Ti) * (1 + S.fit(inh, shape))
    return A - mu * bub_mm * S.fit(bub, shape) * (mask > 0.5)


# --------------------------------------------------------------------------------------------
# X-ray scenes


def _hi_precision_scene(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int]):
    pose, layout0, zoom, mu, thick, inh, bub, bub_mm, shell = _cast(geom, rng, base)
    tg = _template_bones(geom, rng)
    fused = rng.random() < 0.3
    gap_k = 0.0 if fused else rng.uniform(0.5, 1.6)
    tg = replace(tg, joint_spaces=tuple(tuple(v * gap_k for v in j) for j in tg.joint_spaces))
    layout = hand_layout(tg, pose)
    mu_b = rng.uniform(0.07, 0.13)
    block_carpals = rng.random() < 0.4
    width_k = rng.uniform(0.9, 1.15)

    def paint(shape):
        grid = S.sensor_grid(layout, pose, "xray", shape, zoom)
        A = _cast_tissue(geom, layout0, grid, mu, thick, inh, bub, bub_mm, shell)
        solid, _ = S.bone_paths(layout.bones, grid, 0.0, hollow=False, width_scale=width_k)
        if block_carpals:
            c = np.mean([e.centre for e in layout.carpals], axis=0)
            carp = [Ellipse("block", c, (16.0 * geom.size, 13.0 * geom.size), 0.0)]
        else:
            carp = list(layout.carpals)
        cc, cm = S.ellipsoid_paths(carp, grid, shell=0.0, depth_ratio=0.6)
        A += (mu_b - mu) * (solid + cc + cm)
        return A

    return _scene(paint, layout0, pose, "xray", zoom)


def _no_bones_scene(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int]):
    pose, layout, zoom, mu, thick, inh, bub, bub_mm, shell = _cast(geom, rng, base)
    mu = mu * rng.uniform(1.0, 1.25)                     # a denser filler stands in for bone

    def paint(shape):
        grid = S.sensor_grid(layout, pose, "xray", shape, zoom)
        return _cast_tissue(geom, layout, grid, mu, thick, inh, bub, bub_mm, shell)

    return _scene(paint, layout, pose, "xray", zoom)


def _simple_bones_scene(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int]):
    pose, layout, zoom, mu, thick, inh, bub, bub_mm, shell = _cast(geom, rng, base)
    radius = rng.uniform(2.5, 4.5) * geom.size
    mu_b = rng.uniform(0.08, 0.16)
    segments = int(rng.integers(1, 4))
    gap = rng.uniform(1.0, 3.0)
    plate = rng.random() < 0.5
    rods: list[Bone] = []
    for f in ("thumb", "index", "middle", "ring", "little"):
        mine = [b for b in layout.bones if b.name.startswith(f)]
        a = mine[0].a                                      # metacarpal base
        b = mine[-1].b                                     # distal tip
        u = (b - a) / np.linalg.norm(b - a)
        L = np.linalg.norm(b - a)
        seg = (L - gap * (segments - 1)) / segments
        for s in range(segments):
            p0 = a + u * s * (seg + gap)
            rods.append(Bone(f"{f}_rod{s}", p0, p0 + u * seg, 2 * radius, 0.0, 0.0))

    def paint(shape):
        grid = S.sensor_grid(layout, pose, "xray", shape, zoom)
        A = _cast_tissue(geom, layout, grid, mu, thick, inh, bub, bub_mm, shell)
        solid, _ = S.bone_paths(rods, grid, 0.0, hollow=False, flare=False, end_round=0.3)
        A += (mu_b - mu) * solid
        if plate:
            c = np.mean([e.centre for e in layout.carpals], axis=0)
            pc, pm = S.ellipsoid_paths([Ellipse("plate", c, (15.0 * geom.size, 9.0 * geom.size),
                                                0.0)], grid, shell=0.0, depth_ratio=0.5)
            A += (mu_b - mu) * (pc + pm)
        return A

    return _scene(paint, layout, pose, "xray", zoom)


def _other_material_scene(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int]):
    pose, layout0, zoom, mu, thick, inh, bub, bub_mm, shell = _cast(geom, rng, base)
    tg = _template_bones(geom, rng)
    layout = hand_layout(tg, pose)
    material = ("metal", "wood", "plastic")[int(rng.integers(0, 3))]
    if material == "metal":
        width_k, mu_b = rng.uniform(0.2, 0.4), rng.uniform(0.35, 0.8)
    elif material == "wood":
        width_k, mu_b = rng.uniform(0.8, 1.1), rng.uniform(0.012, 0.022)
    else:
        width_k, mu_b = rng.uniform(0.8, 1.1), rng.uniform(0.03, 0.06)
    grain = S.band_noise(rng, base, 1.0)
    grain_dir = rng.uniform(0, np.pi)
    pitch = rng.uniform(2.0, 4.0)                         # infill lattice pitch, x2-grid px
    pins = rng.random() < 0.5
    carpals = rng.random() < 0.5

    def paint(shape):
        grid = S.sensor_grid(layout, pose, "xray", shape, zoom)
        A = _cast_tissue(geom, layout0, grid, mu, thick, inh, bub, bub_mm, shell)
        solid, _ = S.bone_paths(layout.bones, grid, 0.0, hollow=False, width_scale=width_k)
        if carpals:
            cc, cm = S.ellipsoid_paths(list(layout.carpals), grid, shell=0.0, depth_ratio=0.5)
            solid = solid + (cc + cm) * width_k
        mod = np.ones(shape, np.float32)
        if material == "wood":
            g = S.fit(grain, shape)
            k = cv2.getGaborKernel((9, 9), 2.0, grain_dir, 4.0, 0.3)
            mod = 1 + 0.35 * np.tanh(cv2.filter2D(g, -1, k.astype(np.float32)))
        elif material == "plastic":
            sc = shape[0] / base[0]
            y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32) / (pitch * sc)
            mod = 1 + 0.3 * (np.cos(2 * np.pi * (x + y) / 2) * np.cos(2 * np.pi * (x - y) / 2))
        A += (mu_b * mod - mu) * solid
        if pins:
            ks = 0.8 if material != "metal" else 0.5
            pin = [Ellipse(j.name, j.centre, (1.3 * ks, 1.3 * ks), 0.0) for j in layout.joints]
            pc, pm = S.ellipsoid_paths(pin, grid, shell=0.0, depth_ratio=4.0)
            A += 0.3 * (pc + pm)
        return A

    return _scene(paint, layout0, pose, "xray", zoom)


def _photo_xray_scene(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int]):
    src = S.render_scene(S.bona_fide_xray_scene, geom, rng, "xray",
                         (base[0] // 2, base[1] // 2), 2)          # the copied radiograph
    strength = rng.uniform(0.5, 1.3)        # ink attenuation at full coverage (dense toner)
    paper_mu = rng.uniform(0.02, 0.1)
    parts = _printer(src, rng, base)

    def paint(shape):
        sheet, cov, paper = parts(shape)
        return (sheet * (paper_mu * paper + strength * cov)).astype(np.float32)

    return S.Scene(paint)


# --------------------------------------------------------------------------------------------
# NIR scenes


def _printed_photo_scene(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int],
                         palm_texture: np.ndarray | None = None):
    """A print of an NIR picture of the victim's palm. With ``palm_texture`` (the victim's
    palm print) the picture shows the palm's lines as an 850 nm capture of the live palm
    does, and the print copies them with everything else (resolution loss, tone, halftone)."""
    src, mask = _nir_source(geom, rng, base, palm_texture=palm_texture)
    cut = mask if rng.random() < 0.5 else None
    white = rng.uniform(0.75, 0.95)
    ink_dark = rng.uniform(0.85, 0.97)
    light = (rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.6))
    bg_level = rng.uniform(0.02, 0.3)
    spec = rng.uniform(0.0, 0.15)
    parts = _printer(1 - src, rng, base, cutout=cut)       # ink where the image is dark

    def paint(shape):
        sheet, cov, paper = parts(shape)
        refl = white * paper * (1 - ink_dark * cov)
        rad = refl * S.illumination(shape, *light) \
            + spec * S.illumination(shape, light[0], light[1], 0.15)
        return (sheet * rad + (1 - sheet) * bg_level).astype(np.float32)

    return S.Scene(paint)


def _screen_replay_scene(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int],
                         palm_texture: np.ndarray | None = None):
    """An NIR picture of the victim's palm on a screen. With ``palm_texture`` the picture
    shows the victim's palm lines (an 850 nm capture of the live palm shows them), pixelated
    and seen through the screen's pixel grid like the rest of the picture."""
    src, _ = _nir_source(geom, rng, base, shallow=True, palm_texture=palm_texture)
    pix = rng.uniform(1.2, 3.0)                  # source pixels are this many x2-grid px
    small = cv2.resize(src, (max(int(base[1] / pix), 8), max(int(base[0] / pix), 8)),
                       interpolation=cv2.INTER_AREA)
    img = cv2.resize(small, (base[1], base[0]), interpolation=cv2.INTER_LINEAR)
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.2))))
    black = rng.uniform(0.05, 0.2)
    pitch = rng.uniform(3.0, 9.0)                # screen pixels per x2-grid px (pixel grid)
    grid_ang = rng.uniform(-0.2, 0.2)
    grid_a = rng.uniform(0.5, 0.9)               # contrast of the pixel grid (black matrix)
    glare = rng.uniform(0.05, 0.3)
    gx, gy = rng.uniform(0.2, 0.8, 2)
    bezel = rng.random() < 0.4
    bezel_w = rng.uniform(0.03, 0.12)

    def paint(shape):
        sc = shape[0] / base[0]
        disp = black + (1 - black) * np.power(np.clip(S.fit(img, shape), 0, 1), gamma)
        gr = 1 + grid_a * aliased_grating(shape, pitch / sc, grid_ang)
        rad = disp * gr + glare * S.illumination(shape, gx, gy, 0.2)
        if bezel:
            rad[: int(bezel_w * shape[0])] = 0.03
        return rad.astype(np.float32)

    return S.Scene(paint)


SILICONE_RELIEF = (0.3, 0.7)
"""Share of a live palm's NIR line contrast a silicone cast keeps: the mould copies the lines
as relief, but the cast is translucent and smooth, so the relief's shading is weaker (and
blurred by the light scattered in the silicone, ``crease_blur`` mm)."""


def _silicone_cast_scene(geom: HandGeometry, rng: np.random.Generator, base: tuple[int, int],
                         palm_texture: np.ndarray | None = None):
    """A silicone cast of the victim's hand: outline and surface relief, no veins. With
    ``palm_texture`` (the victim's palm print) the cast carries the victim's palm lines as
    relief -- the lines a live NIR frame shows, at a weaker share (:data:`SILICONE_RELIEF`)
    and blurred by the translucent silicone; without it, the layout's creases alone."""
    if palm_texture is not None:                # drawn aside: the other draws stay the same
        surface_c, wrist_dy = S.nir_surface_draws(rng)
        relief = float(rng.spawn(1)[0].uniform(*SILICONE_RELIEF))
    pose = scene_pose(rng, 0.6)
    layout = hand_layout(geom, pose)
    zoom = S.sample_zoom(rng, "nir")
    crease_c = rng.uniform(0.06, 0.18)
    crease_blur = rng.uniform(0.8, 1.6)
    falloff = rng.uniform(4, 9)
    light = (rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.6))
    bg_level = rng.uniform(0.02, 0.3)
    mottle = S.smooth_noise(rng, base, 5) * rng.uniform(0.0, 0.02)
    bub = _bubbles(rng, base, rng.uniform(2, 15), (0.4, 1.5))
    bub_sign = rng.choice([-1.0, 1.0])
    sheen = rng.uniform(0.0, 0.2)
    sx, sy = rng.uniform(0.3, 0.7, 2)

    def paint(shape):
        grid = S.sensor_grid(layout, pose, "nir", shape, zoom)
        mask, shade = S.nir_skin(layout, grid, falloff)
        spots = 0.3 * bub_sign * S.fit(bub, shape)
        skin = (0.35 + 0.65 * shade) * (1 + S.fit(mottle, shape) + spots)
        if palm_texture is None:
            skin = skin * (1 - crease_c * S.nir_crease_map(layout, grid, blur_mm=crease_blur))
        else:
            skin = skin * S.nir_palm_lines(geom, layout, grid, palm_texture,
                                           relief * surface_c, wrist_dy, blur_mm=crease_blur)
        rad = S.illumination(shape, *light) * skin + sheen * S.illumination(shape, sx, sy, 0.12)
        return (mask * rad + (1 - mask) * bg_level).astype(np.float32)

    return _scene(paint, layout, pose, "nir", zoom)


_SCENES: Mapping[tuple[str, str], S.SceneFn] = MappingProxyType({
    ("xray", BONA_FIDE): S.bona_fide_xray_scene,
    ("xray", "hi_precision_model"): _hi_precision_scene,
    ("xray", "no_bones"): _no_bones_scene,
    ("xray", "simple_bones"): _simple_bones_scene,
    ("xray", "other_material_bones"): _other_material_scene,
    ("xray", "photo"): _photo_xray_scene,
    ("nir", BONA_FIDE): S.bona_fide_nir_scene,
    ("nir", "printed_photo"): _printed_photo_scene,
    ("nir", "screen_replay"): _screen_replay_scene,
    ("nir", "silicone_cast"): _silicone_cast_scene,
    ("xray", "print_over_live"): C.print_over_live_scene,
    ("xray", "skeleton_phantom"): C.skeleton_phantom_scene,
    ("nir", "vein_film_over_live"): C.vein_film_over_live_scene,
    ("nir", "display_behind_diffuser"): C.display_behind_diffuser_scene,
})


def other_palm_print(palm_texture: np.ndarray) -> np.ndarray:
    """A stand-in for another person's palm print when a caller has only the victim's: the
    victim's turned by 180 degrees (the same texture statistics, other lines where the
    frame looks)."""
    return np.ascontiguousarray(np.asarray(palm_texture, np.float32)[::-1, ::-1])


def scene_for(species: str, sensor: str, palm_texture: np.ndarray | None = None,
              attacker_texture: np.ndarray | None = None) -> S.SceneFn:
    """The scene function of a class (``'bona_fide'`` or an attack species) for a sensor.

    ``palm_texture``: the palm print of the hand the scene shows or copies (the victim's, for
    an attack); ``attacker_texture``: the attacker's own palm print (the species that lay a
    copy over the attacker's live palm; default :func:`other_palm_print`). Used only where
    the sensor's frames show the palm print (:func:`device.synth.bound.palm_print_on`);
    ignored otherwise, so the scene is then the same function as without them."""
    try:
        fn = _SCENES[(sensor, species)]
    except KeyError:
        raise ValueError(f"unknown species {species!r} for sensor {sensor!r}; "
                         f"known: {(BONA_FIDE,) + SPECIES.get(sensor, ())}") from None
    from device.synth.bound import palm_print_on
    if palm_texture is None or not palm_print_on(sensor):
        return fn
    if species in C.OVER_LIVE_SPECIES:
        own = other_palm_print(palm_texture) if attacker_texture is None else attacker_texture
        return partial(fn, attacker_texture=own)
    return partial(fn, palm_texture=palm_texture)


def render_attack(species: str, geom: HandGeometry, rng: np.random.Generator, sensor: str,
                  size: tuple[int, int] | None = None, scale: int = 1,
                  palm_texture: np.ndarray | None = None,
                  attacker_texture: np.ndarray | None = None) -> np.ndarray:
    """Image (float32 in [0, 1]) of an attack of ``species`` targeting identity ``geom``.

    ``size`` defaults to the sensor's capture size; ``scale=1`` is the capture, ``scale>=2``
    the ideal image at that scale (see ``sensor.render_scene``). ``palm_texture``,
    ``attacker_texture``: the victim's and the attacker's palm prints (:func:`scene_for`).
    """
    if species == BONA_FIDE:
        raise ValueError("use render_bona_fide for live presentations")
    return S.render_scene(scene_for(species, sensor, palm_texture, attacker_texture), geom, rng,
                          sensor, tuple(size or S.CAPTURE_SIZE[sensor]), scale)


def render_bona_fide(geom: HandGeometry, rng: np.random.Generator, sensor: str,
                     size: tuple[int, int] | None = None, scale: int = 1,
                     palm_texture: np.ndarray | None = None) -> np.ndarray:
    """Image of a live presentation, through the same sensor response as the attacks
    (``palm_texture``: the hand's palm print, :func:`scene_for`)."""
    return S.render_scene(scene_for(BONA_FIDE, sensor, palm_texture), geom, rng, sensor,
                          tuple(size or S.CAPTURE_SIZE[sensor]), scale)


def render_class_pair(species: str, geom: HandGeometry, rng: np.random.Generator, sensor: str,
                      lr_size: tuple[int, int] | None = None,
                      palm_texture: np.ndarray | None = None,
                      attacker_texture: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(lr, hr) super-resolution pair of any class (bona fide or attack species)."""
    return S.render_pair(scene_for(species, sensor, palm_texture, attacker_texture), geom, rng,
                         sensor, lr_size)
