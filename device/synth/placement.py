"""How far the hand of a sensor frame *alone* ranges over the sensor: the pose every sensor
scene draws for itself (the bona fide scenes and every attack species' hand, model or copy)
when no whole presentation places it.

A liveness frame set (``tools.synth liveness`` without ``--presentations``) draws each frame's
pose around a grid centred on the palm (:func:`device.synth.sensor_geometry.sensor_grid`) with
the strength the scene names (0.6 for a hand: rotation +-7.2 deg, shift +-6 mm).  At the gate
the hand lies where the person holds it: a whole presentation draws the pose at strength 0.8
(rotation +-9.6 deg) about the fixed sensor (:mod:`device.synth.bound`), and the liveness
model, trained on the narrower frames, refuses more live hands the more they are turned
(docs/results.md, "Where the live hand lies on the X-ray sensor").

:data:`PLACEMENTS` names the ranges a set can be rendered with: ``centred`` (the frame sets'
own, the default) and ``wide`` (every scene's strength 5/3 times larger: a hand's rotation
+-12 deg, shift +-10 mm, tilt +-10 deg -- beyond the gate's). The same generator state draws
the same content in both (the pose's draws are only scaled), and the scale applies to every
class alike, so placement is no cue to liveness in a set.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import numpy as np

from device.synth.hand_geometry import HandPose, perturb_pose

PLACEMENTS: Mapping[str, float] = MappingProxyType({"centred": 1.0, "wide": 5.0 / 3.0})
"""Name -> the factor on every sensor scene's own pose strength."""

PLACEMENT = "centred"
"""The placement the sensor scenes of this process draw (:func:`use_placement`)."""


def use_placement(name: str) -> None:
    """Render sensor frames alone with placement ``name`` from now on in this process."""
    global PLACEMENT
    if name not in PLACEMENTS:
        raise ValueError(f"unknown placement {name!r}; known: {tuple(PLACEMENTS)}")
    PLACEMENT = name


def placement_suffix() -> str:
    """``""`` for the centred placement, else ``"_<name>"``: the suffix of a set folder, so
    sets of one seed rendered with other placements never mix."""
    return "" if PLACEMENT == "centred" else f"_{PLACEMENT}"


def scene_pose(rng: np.random.Generator, strength: float) -> HandPose:
    """The pose a sensor scene draws for its hand: :func:`perturb_pose` at ``strength`` times
    the placement's factor (read at each call)."""
    return perturb_pose(rng, strength * PLACEMENTS[PLACEMENT])
