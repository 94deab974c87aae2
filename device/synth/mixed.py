"""Mixed presentations, an attack species for both sensors: a live hand in one place and a
replica in the other, rendered by the bound renderer (:mod:`device.synth.bound`) so that the
live half is exactly what a gate would see of it.

Species:

* ``mixed_replica_views`` -- a live hand under the transmission sensor (it passes liveness) and
  a replica before the cameras (a printed photo of the enrolled person's hand: it passes the
  matcher);
* ``mixed_replica_sensor`` -- the reverse: a live hand before the cameras, a replica under the
  sensor.

How the replica differs from the live hand (``variant``, drawn uniformly unless given):

* ``offset`` -- the same person's hand, moved 10-30 mm in the plane;
* ``rotation`` -- the same person's hand, turned 10-30 deg in the plane;
* ``scale`` -- the same person's hand, 10-25 % larger or smaller (a print at another scale);
* ``other_hand`` -- another person's hand (the live accomplice and the victim's replica), placed
  where the live hand is; the accomplice uses their hand of the victim's side (a person's two
  hands are mirror images: a hand of the other side would be refused for its mirrored shape,
  which an attacker does not offer);
* ``species`` -- (``mixed_replica_sensor`` only) one of the sensor's attack species of the
  enrolled person, placed as an attacker places it (its own pose).

In the first four the replica also has its own finger pose (a photo keeps the fingers as they
were when it was taken). Labels go in the returned ``meta``.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from device.synth.bound import (BoundShot, bona_fide_scene, render_placed, render_views)
from device.synth.hand_geometry import HandGeometry, HandPose, perturb_pose

MIXED_SPECIES: tuple[str, ...] = ("mixed_replica_views", "mixed_replica_sensor")
VARIANTS: tuple[str, ...] = ("offset", "rotation", "scale", "other_hand", "species")
OFFSET_MM = (10.0, 30.0)
ROTATION_DEG = (10.0, 30.0)
SCALE = (0.10, 0.25)


def variants(species: str) -> tuple[str, ...]:
    if species not in MIXED_SPECIES:
        raise ValueError(f"unknown mixed species {species!r}; known: {MIXED_SPECIES}")
    return VARIANTS if species == "mixed_replica_sensor" else VARIANTS[:-1]


def replica_pose(live: HandPose, rng: np.random.Generator, variant: str
                 ) -> tuple[HandPose, float]:
    """(pose, scale) of the replica: its own fingers, placed by ``variant`` from the live
    hand's placement."""
    fingers = perturb_pose(rng, 0.8)
    pose = replace(live, spread=fingers.spread, flexion=fingers.flexion)
    scale = 1.0
    if variant == "offset":
        a, d = rng.uniform(0, 2 * np.pi), rng.uniform(*OFFSET_MM)
        pose = replace(pose, translation=(live.translation[0] + d * np.cos(a),
                                          live.translation[1] + d * np.sin(a)))
    elif variant == "rotation":
        pose = replace(pose, rotation=live.rotation + rng.choice([-1, 1]) *
                       rng.uniform(*ROTATION_DEG))
    elif variant == "scale":
        scale = 1.0 + rng.choice([-1, 1]) * rng.uniform(*SCALE)
    elif variant != "other_hand":
        raise ValueError(f"no replica pose for variant {variant!r}")
    return pose, float(scale)


def _scaled_views(views: list, alphas: list, scale: float) -> list:
    """Each view scaled ``scale`` times about its hand's centroid (a print at another scale)."""
    out = []
    for img, a in zip(views, alphas):
        m = cv2.moments((a > 0.5).astype(np.uint8), binaryImage=True)
        h, w = img.shape[:2]
        c = (m["m10"] / m["m00"], m["m01"] / m["m00"]) if m["m00"] else (w / 2, h / 2)
        M = cv2.getRotationMatrix2D(c, 0.0, scale)
        out.append(cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT))
    return out


def render_mixed(species: str, victim: HandGeometry, victim_tex: np.ndarray,
                 other: HandGeometry, other_tex: np.ndarray, rng: np.random.Generator, rig,
                 sensor: str, size: tuple[int, int] = (480, 640), variant: str | None = None
                 ) -> tuple[BoundShot, dict]:
    """A mixed presentation aimed at ``victim`` (the enrolled person; ``other`` is the live
    accomplice of ``other_hand``). Returns the shot (views, sensor frame float32 in [0, 1],
    the live hand's pose and depth) and its labels."""
    from device.synth.attacks import SPECIES, render_attack
    from device.synth.hands import render_hand_views
    variant = variant or str(rng.choice(variants(species)))
    if variant not in variants(species):
        raise ValueError(f"variant {variant!r} is not one of {variants(species)}")
    live = perturb_pose(rng, 0.8)
    meta = {"species": species, "variant": variant}
    other = replace(other, hand=victim.hand)     # the accomplice's hand of the victim's side
    if species == "mixed_replica_views":
        # live: the accomplice's (other_hand) or the victim's own hand under the sensor
        live_geom = other if variant == "other_hand" else victim
        depth = float(rng.uniform(-15, 15))
        live_tex = other_tex if variant == "other_hand" else victim_tex
        frame = render_placed(bona_fide_scene(sensor), live_geom, rng, sensor, live, depth,
                              palm_texture=live_tex)
        pose, scale = replica_pose(live, rng, variant)
        alphas: list = []
        shots = render_hand_views(victim, victim_tex, rng, views=len(rig), size=size, rig=rig,
                                  pose=pose, alpha_out=alphas)
        views = [img for img, _ in shots]
        if scale != 1.0:
            views = _scaled_views(views, alphas, scale)
        meta["scale"] = scale
        return BoundShot(views, frame, live, depth), meta
    # mixed_replica_sensor: the victim's live hand before the cameras
    views, depth = render_views(victim, victim_tex, rng, rig, live, size)
    if variant == "species":
        sp = str(rng.choice(SPECIES[sensor]))
        meta["attack_species"] = sp
        frame = render_attack(sp, victim, rng, sensor, palm_texture=victim_tex,
                              attacker_texture=other_tex)
    else:
        pose, scale = replica_pose(live, rng, variant)
        geom, tex = (other, other_tex) if variant == "other_hand" else (victim, victim_tex)
        frame = render_placed(bona_fide_scene(sensor), geom, rng, sensor, pose, depth,
                              scale=scale, palm_texture=tex)
        meta["scale"] = scale
    return BoundShot(views, frame, live, depth), meta
