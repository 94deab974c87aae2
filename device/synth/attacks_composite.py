"""Attack species that are *not* variations of a cast, a print or a screen alone: a copy laid
over a live hand, a real skeleton in a radiographic phantom, a display seen through a diffuser.
They came with the leave-one-species-out evaluation (issue 21): species an attacker would try
once the plain casts, prints and screens are refused.

Every scene draws its content from ``rng`` before any pixel and paints the same physical map
as the other species (X-ray: log-attenuation; NIR: reflected radiance), so it goes through the
same :func:`device.synth.sensor.sensor_response` with exposure from one distribution.

X-ray:

* ``print_over_live`` -- the attacker's own live hand with a radiograph of the victim's hand
  printed in dense toner on a transparency laid on it (or under it).  Attenuations add: the
  sensor sees live tissue and the attacker's bones *and* the printed bones, halftoned and
  re-sampled, on a near-transparent polyester film whose edge may cross the frame.
* ``skeleton_phantom`` -- an anthropomorphic radiographic hand phantom: a real human hand
  skeleton (cortex, marrow, trabecular texture -- of the phantom's donor, not the victim) cast
  in tissue-equivalent urethane, either hand-shaped or in a rectangular acrylic block, with
  the joints filled by the resin (no capsule or ligament density), often wired at the joints.

NIR (850-940 nm, reflected light seen from below):

* ``vein_film_over_live`` -- the attacker's own live palm with the victim's vein pattern
  printed in IR-absorbing toner on a transparency held against it.  Light crosses the film
  twice (in and out), so the ink's transmission counts squared; the attacker's own veins still
  show under it; the film adds a specular glint of the illuminator and may end inside the
  frame.
* ``display_behind_diffuser`` -- an NIR image of the victim shown on a backlit display (or a
  backlit transparency) behind a diffusing sheet that blurs the pixel grid away: the image is
  self-luminous (it does not follow the gate's illumination spot), the backlight is uneven
  (edge-lit), the diffuser scatters part of the light into a veil and reflects the gate's own
  illuminator diffusely.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import cv2
import numpy as np

from device.synth import sensor as S
from device.synth.attack_parts import nir_source, printer
from device.synth.hand_geometry import (Bone, HandGeometry, HandPose, hand_layout,
                                       sample_hand_geometry)
from device.synth.placement import scene_pose

XRAY_COMPOSITE_SPECIES: tuple[str, ...] = ("print_over_live", "skeleton_phantom")
NIR_COMPOSITE_SPECIES: tuple[str, ...] = ("vein_film_over_live", "display_behind_diffuser")
PHANTOM_CUES: tuple[str, ...] = ("marrow", "joints", "profile")
"""The skeleton phantom's own physics that a training set may make lifelike (``lifelike`` of
:func:`skeleton_phantom_scene`): ``marrow`` filled to the donor's live density (wax, oil)
instead of dried, ``joints`` a capsule-like filler (``MU_JOINT``) instead of plain resin,
``profile`` the resin following a live hand's thickness profile instead of a flatter one."""
OVER_LIVE_SPECIES: tuple[str, ...] = ("vein_film_over_live",)
"""NIR species laid over the attacker's own live palm: where the frame shows the palm print,
it is the attacker's (``attacker_texture``), not the victim's."""
ON_LIVE_HAND_SPECIES: tuple[str, ...] = ("print_over_live", "vein_film_over_live")
"""The species whose sensor frame shows the attacker's own live hand under a copy (both
sensors): in a whole presentation that hand lies in the gate where the cameras see the
victim's replica laid over it (``placed``, :class:`OverLivePlacement`)."""



@dataclass(frozen=True)
class OverLivePlacement:
    """Where an over-live species lies in the gate, for a whole presentation: the attacker's
    live hand (``attacker``) in ``attacker_pose`` at ``attacker_zoom``, and the copy on the
    film (the victim's bones or veins) in ``copy_pose`` at ``copy_zoom`` -- the scene
    arguments of :func:`device.synth.bound.scene_placement`. The scenes draw everything else
    as they do for a frame alone."""

    attacker: HandGeometry
    attacker_pose: HandPose
    attacker_zoom: float
    copy_pose: HandPose
    copy_zoom: float


MU_URETHANE = S.MU_SOFT          # tissue-equivalent resin, 1/mm (by design of the phantom)
MU_ACRYLIC = 0.032               # PMMA at ~30-35 keV, 1/mm (a little denser than soft tissue)


def _attacker(geom: HandGeometry, rng: np.random.Generator) -> HandGeometry:
    """The attacker's own hand: another identity of the same side (the copy is the victim's)."""
    return sample_hand_geometry(rng, geom.hand)


# --------------------------------------------------------------------------------------------
# X-ray


def print_over_live_scene(geom: HandGeometry, rng: np.random.Generator,
                          base: tuple[int, int],
                          placed: OverLivePlacement | None = None) -> S.Scene:
    """A transparency with the victim's radiograph printed on it, laid on the attacker's live
    hand.

    Physics: log-attenuations add along the beam, so the map is the live hand's (soft tissue,
    cortex, marrow, joints of the *attacker*) plus ``ink_mu x coverage`` of the halftoned print
    plus the film's own thin, uniform attenuation where the sheet is.  Toner on film is a
    fraction of a paper print's ink load (0.15-0.6 at full coverage against 0.5-1.3 for the
    ``photo`` species), because a denser print would black out the live hand the attacker
    needs under it.  The print is a positive (bones dark on film = more toner where the
    radiograph is bright), re-sampled and screened by the printer, aligned by hand (a few mm
    and degrees off the live hand).

    ``placed``: the attacker's hand and the print where they lie in the gate
    (:class:`OverLivePlacement`, a whole presentation); None: both drawn, the hand centred
    (a sensor frame alone)."""
    if placed is None:
        live = S.bona_fide_xray_scene(_attacker(geom, rng), rng, base)
        victim_scene = S.bona_fide_xray_scene
    else:
        live = S.bona_fide_xray_scene(placed.attacker, rng, base, pose=placed.attacker_pose,
                                      zoom=placed.attacker_zoom)
        victim_scene = partial(S.bona_fide_xray_scene, pose=placed.copy_pose,
                               zoom=placed.copy_zoom)
    src = S.render_scene(victim_scene, geom, rng, "xray",
                         (base[0] // 2, base[1] // 2), 2)            # the victim's radiograph
    ink_mu = rng.uniform(0.15, 0.6)
    film_mu = rng.uniform(0.005, 0.03)     # 0.1-0.2 mm polyester: almost transparent
    shift = rng.normal(0, 0.03, 2)         # hand alignment, fraction of the frame
    rot = rng.normal(0, 4.0)
    parts = printer(src, rng, base)

    def paint(shape):
        sheet, cov, _paper = parts(shape)
        h, w = shape
        M = cv2.getRotationMatrix2D((w / 2, h / 2), rot, 1.0)
        M[:, 2] += shift * np.array([w, h])
        ink = cv2.warpAffine((sheet * cov).astype(np.float32), M, (w, h))
        film = cv2.warpAffine(sheet.astype(np.float32), M, (w, h))
        return (live.paint(shape) + ink_mu * ink + film_mu * film).astype(np.float32)

    return S.Scene(paint, live.grid, live.layout)


def skeleton_phantom_scene(geom: HandGeometry, rng: np.random.Generator,
                           base: tuple[int, int],
                           lifelike: frozenset[str] = frozenset()) -> S.Scene:
    """A radiographic hand phantom: a real skeleton of a donor hand in tissue-equivalent resin.

    Physics: the bones are real bone (cortex and marrow path lengths with trabecular texture,
    like a live hand's), but of the donor, sized to the victim's outline; the soft tissue is
    one homogeneous resin -- urethane in the hand's outline with a moulded, flatter thickness
    profile, or a rectangular acrylic block of constant thickness around the whole hand -- so
    there is no tissue inhomogeneity and no joint capsule density (the joints are resin).  A
    dried skeleton loses its marrow fat and water (marrow density drawn lower), and an
    articulated one is often held by thin steel wire through the joints.

    ``lifelike``: cues of :data:`PHANTOM_CUES` rendered as a live hand has them (training data
    only; the species' own frames use none). The random draws are the same whatever it holds."""
    unknown = set(lifelike) - set(PHANTOM_CUES)
    if unknown:
        raise ValueError(f"unknown phantom cues {sorted(unknown)}; known: {PHANTOM_CUES}")
    donor = sample_hand_geometry(rng, geom.hand, veins=False)
    k = geom.size / donor.size
    skel = replace(geom, bone_widths=tuple(tuple(v * k for v in b) for b in donor.bone_widths),
                   joint_spaces=tuple(tuple(v * k * rng.uniform(0.8, 1.4) for v in j)
                                      for j in donor.joint_spaces),
                   carpals=donor.carpals, cortex_fraction=donor.cortex_fraction,
                   sesamoids=donor.sesamoids)
    pose = scene_pose(rng, 0.4)
    layout, outline = hand_layout(skel, pose), hand_layout(geom, pose)
    zoom = S.sample_zoom(rng, "xray")
    mu_c = S.MU_CORTEX * donor.bone_density * rng.uniform(0.9, 1.05)
    mu_m = S.MU_MARROW * rng.uniform(0.4, 0.8)           # dried marrow: fat and water gone
    if "marrow" in lifelike:
        mu_m = S.MU_MARROW * donor.bone_density
    trab_amp = rng.uniform(0.12, 0.3)
    trab = S.band_noise(rng, base, max(0.6 * base[0] / S.FOV_MM["xray"], 0.6))
    block = rng.random() < 0.3                          # most phantoms are hand-shaped
    block_mm = rng.uniform(22.0, 40.0)                   # acrylic block thickness
    block_frac = rng.uniform(0.6, 0.9, 2)                # block side as a fraction of the frame
    block_c = 0.5 + rng.uniform(-0.06, 0.06, 2)
    flat = rng.uniform(0.3, 0.7)          # how much flatter the moulded profile is than tissue
    if "profile" in lifelike:
        flat = 0.0
    wired = rng.random() < 0.5
    wire_mm = rng.uniform(0.3, 0.8)
    mu_wire = rng.uniform(1.5, 3.0)                      # steel

    def paint(shape):
        grid = S.sensor_grid(outline, pose, "xray", shape, zoom)
        mask = S.hand_mask(outline, grid)
        if block:
            h, w = shape
            yy = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h - block_c[1]
            xx = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / w - block_c[0]
            inside = ((np.abs(xx) < block_frac[0] / 2) & (np.abs(yy) < block_frac[1] / 2))
            A = MU_ACRYLIC * block_mm * cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.7)
            mu_s = MU_ACRYLIC
        else:
            T = S.tissue_thickness(mask, grid, geom.palm_thickness / 2)
            half = geom.palm_thickness / 2
            T = (1 - flat) * T + flat * np.minimum(T * 3, 2 * half) * (mask > 0.5)
            A = MU_URETHANE * T
            mu_s = MU_URETHANE
        cort, marrow = S.bone_paths(list(layout.bones), grid, skel.cortex_fraction)
        cc, cm = S.ellipsoid_paths(list(layout.carpals), grid, shell=0.15, depth_ratio=0.6)
        cort, marrow = cort + cc, marrow + cm
        if skel.sesamoids:
            sc, sm = S.ellipsoid_paths(list(layout.sesamoids), grid, shell=0.35)
            cort, marrow = cort + sc, marrow + sm
        A += (mu_c - mu_s) * cort + (mu_m * (1 + trab_amp * S.fit(trab, shape)) - mu_s) * marrow
        if "joints" in lifelike:
            A += S.MU_JOINT * S.joint_tissue(list(layout.joints), grid)
        if wired:
            rods = [Bone(j.name, j.centre - 2.0 * j.direction, j.centre + 2.0 * j.direction, wire_mm,
                         0.0, 0.0) for j in layout.joints]
            solid, _ = S.bone_paths(rods, grid, 0.0, hollow=False, flare=False, end_round=0.3)
            A += (mu_wire - mu_s) * solid
        return A.astype(np.float32)

    return S.Scene(paint, lambda shape: S.sensor_grid(outline, pose, "xray", shape, zoom),
                   outline)


# --------------------------------------------------------------------------------------------
# NIR


def vein_film_over_live_scene(geom: HandGeometry, rng: np.random.Generator,
                              base: tuple[int, int],
                              attacker_texture: np.ndarray | None = None,
                              placed: OverLivePlacement | None = None) -> S.Scene:
    """The victim's vein pattern printed on a transparency held against the attacker's palm.

    Physics (reflectance from below): the illuminator's light crosses the film, is scattered
    back by the attacker's live skin (own veins, creases, pores) and crosses the film again, so
    the radiance is ``live x (T_film (1 - a x coverage))^2`` -- the printed veins are sharp
    (no tissue depth blur), halftoned and re-sampled -- plus the film's specular reflection
    of the illuminator (a smooth sheet: a compact glint) and a step where the sheet ends.  The
    pattern is the victim's vein map extracted from an NIR capture (the attacker prints veins,
    not skin). The palm under the film is the attacker's own live palm, so with
    ``attacker_texture`` (the attacker's palm print) the frame shows the *attacker's* palm
    lines as any live NIR frame does, not the victim's.

    ``placed``: the attacker's hand and the film where they lie in the gate
    (:class:`OverLivePlacement`, a whole presentation); None: both drawn, the hand centred
    (a sensor frame alone)."""
    if placed is None:
        live = S.bona_fide_nir_scene(_attacker(geom, rng), rng, base,
                                     palm_texture=attacker_texture)
        pose = scene_pose(rng, 0.6)
        zoom = S.sample_zoom(rng, "nir")
    else:
        live = S.bona_fide_nir_scene(placed.attacker, rng, base, pose=placed.attacker_pose,
                                     zoom=placed.attacker_zoom, palm_texture=attacker_texture)
        pose, zoom = placed.copy_pose, placed.copy_zoom
    layout = hand_layout(geom, pose)
    grid0 = S.sensor_grid(layout, pose, "nir", base, zoom)
    veins = S.nir_vein_map(layout, grid0)
    src = np.clip(veins * rng.uniform(0.6, 1.3), 0, 1).astype(np.float32)
    # IR absorption of the toner at full coverage: the attacker prints veins about as dark as
    # live veins look (a darker print stands out against the live skin)
    absorb = rng.uniform(0.12, 0.4)
    t_film = rng.uniform(0.88, 0.96)            # one pass through the film (Fresnel losses)
    glint = rng.uniform(0.05, 0.4)
    gx, gy = rng.uniform(0.3, 0.7, 2)
    g_spread = rng.uniform(0.04, 0.1)
    parts = printer(src, rng, base)

    def paint(shape):
        sheet, cov, _paper = parts(shape)
        trans = 1 - (1 - t_film ** 2 * (1 - absorb * cov) ** 2) * sheet
        rad = live.paint(shape) * trans + glint * sheet * S.illumination(shape, gx, gy, g_spread)
        return rad.astype(np.float32)

    return S.Scene(paint, live.grid, live.layout)


def display_behind_diffuser_scene(geom: HandGeometry, rng: np.random.Generator,
                                  base: tuple[int, int],
                                  palm_texture: np.ndarray | None = None) -> S.Scene:
    """An NIR palm image shown on a backlit display behind a diffusing sheet.

    Physics: the display's emitted radiance (the victim's image through the panel's gamma and
    black level) times an uneven backlight (edge-lit: brighter toward one edge, LED hot spots)
    is blurred by the diffuser's point spread (0.4-1.6 mm: the pixel grid and any moire
    vanish, the veins soften as if all at one depth); the diffuser scatters a share of the
    light into a uniform veil and reflects the gate's own illuminator diffusely (a broad spot
    added on top).  Self-luminous: the image does not darken with the gate's illumination.
    The image is an NIR capture of the victim's palm, so with ``palm_texture`` (the victim's
    palm print) it shows the victim's palm lines, softened by the diffuser like the veins."""
    src, _mask = nir_source(geom, rng, base, palm_texture=palm_texture)
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.3))))
    black = rng.uniform(0.03, 0.15)
    psf_mm = rng.uniform(0.4, 1.6)
    veil = rng.uniform(0.05, 0.3)
    edge_ang = rng.uniform(0, 2 * np.pi)
    edge_k = rng.uniform(0.1, 0.5)
    n_led = int(rng.integers(4, 12))
    led_amp = rng.uniform(0.0, 0.1)
    refl = rng.uniform(0.05, 0.3)
    light = (rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.6))
    px_mm = base[0] / S.FOV_MM["nir"]

    def paint(shape):
        sc = shape[0] / base[0]
        disp = black + (1 - black) * np.power(np.clip(S.fit(src, shape), 0, 1), gamma)
        ramp = S.ramp(shape, edge_ang)
        back = 1 - edge_k * ramp
        if led_amp:
            pos = (np.arange(n_led) + 0.5) / n_led
            back = back * (1 + led_amp * sum(S.illumination(shape, p, 0.02, 0.06)
                                             for p in pos))
        emitted = disp * back
        blurred = cv2.GaussianBlur(emitted.astype(np.float32), (0, 0), psf_mm * px_mm * sc)
        rad = (1 - veil) * blurred + veil * float(emitted.mean())
        rad = rad + refl * S.illumination(shape, *light)
        return (rad / (1 + refl)).astype(np.float32)

    return S.Scene(paint)
