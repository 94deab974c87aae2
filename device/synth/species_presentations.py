"""An attack species of the transmission sensor as a whole presentation: what the cameras see
and what the sensor sees of one attack, so that ``palmgate evaluate-liveness`` measures the
species at the gate (presence, liveness *and* the binding of the sensor frame to the views).

The views show the enrolled person's (the victim's) hand, as the demo's ``attack`` kind does:
a replica good enough for the cameras, drawn as the live renderer draws that hand. The sensor
frame depends on what the species puts under the sensor:

* a **copy or a model on its own** (every first species; X-ray ``skeleton_phantom``, NIR
  ``display_behind_diffuser``): the species' frame as :func:`device.synth.attacks.
  render_attack` draws it -- where the attacker put the object (its own pose and zoom, the
  object centred under the sensor), as the demo's attacks and the ``species`` variant of
  ``mixed_replica_sensor`` place it. Nothing ties it to where the replica before the cameras
  lies.
* a **copy on the attacker's own live hand** (X-ray ``print_over_live``, NIR
  ``vein_film_over_live``, :data:`device.synth.attacks_composite.ON_LIVE_HAND_SPECIES`): a
  live hand is in the gate, and the cameras see what lies over the gate, so they cannot see
  the victim somewhere else than that hand -- they would see the attacker's hand. The
  replica before the cameras is laid over the attacker's hand: the views show the victim's
  hand in the pose and place of the attacker's, and the sensor frame shows the attacker's own
  hand there (its bones, veins and, in the NIR world with palm prints, its palm lines) with
  the copy on the film aligned to the replica (:class:`device.synth.attacks_composite.
  OverLivePlacement`); the attacker uses their hand of the victim's side. This is the
  strongest form of the attack (the replica and the live hand
  line up exactly); what remains for the binding is the two hands' shapes and, in NIR with
  palm prints, the palm lines.

Labels go in the returned ``meta`` (``species``, ``placement``: ``own`` or ``on_live_hand``).
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from device.synth.bound import BoundShot, render_views, scene_placement, sensor_size
from device.synth.hand_geometry import HandGeometry, perturb_pose


def render_species(species: str, victim: HandGeometry, victim_tex: np.ndarray,
                   attacker: HandGeometry, attacker_tex: np.ndarray, rng: np.random.Generator,
                   rig, sensor: str, size: tuple[int, int] = (480, 640)
                   ) -> tuple[BoundShot, dict]:
    """A presentation of attack ``species`` of ``sensor`` aimed at ``victim`` (its palm print
    ``victim_tex``); ``attacker`` (``attacker_tex``) is the attacker's own hand where the
    species lies on one. Returns the shot (views, sensor frame float32 in [0, 1], the pose and
    depth of the hand the views show) and its labels."""
    from device.synth import attacks_composite as C
    from device.synth import sensor as S
    from device.synth.attacks import SPECIES, render_attack, scene_for
    if species not in SPECIES.get(sensor, ()):
        raise ValueError(f"unknown species {species!r} for sensor {sensor!r}; "
                         f"known: {SPECIES.get(sensor, ())}")
    pose = perturb_pose(rng, 0.8)          # the draw render_hand_views would make
    views, depth = render_views(victim, victim_tex, rng, rig, pose, size)
    meta = {"species": species}
    if species not in C.ON_LIVE_HAND_SPECIES:
        frame = render_attack(species, victim, rng, sensor, palm_texture=victim_tex,
                              attacker_texture=attacker_tex)
        meta["placement"] = "own"
        return BoundShot(views, frame, pose, depth), meta
    # the attacker lays the replica on their hand of the victim's side (a person's two hands
    # are mirror images: the same identity's other hand)
    attacker = replace(attacker, hand=victim.hand)
    pa, za = scene_placement(attacker, pose, depth, sensor)
    pv, zv = scene_placement(victim, pose, depth, sensor)
    placed = C.OverLivePlacement(attacker, pa, za, pv, zv)
    scene = partial(scene_for(species, sensor, victim_tex, attacker_tex), placed=placed)
    frame = S.render_scene(scene, victim, rng, sensor, sensor_size(sensor))
    meta["placement"] = "on_live_hand"
    return BoundShot(views, frame, pose, depth), meta
