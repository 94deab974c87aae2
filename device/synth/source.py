"""Synthetic presentations for the demo, the tests and the bench (no camera, no torch).

Person ``i`` of seed ``s`` is hand geometry ``device.synth.sensor_sets.identity(s, i)`` with the
palm print of ``device.synth.palm_sets.subject_identity(s, i)`` rendered by the shipped ONNX
generation model; its views come from a fixed camera rig (``device.synth.hands``) and its
transmission-sensor frame from the numpy sensor renderer (``device.synth.sensor`` /
``attacks``). A live hand's sensor frame shows the same hand in the same pose as its views,
through the sensor fixed in the synthetic gate (``device.synth.bound``; the gate's nominal
registration, :meth:`SyntheticPeople.registration`); an attack species lies where the attacker
put it. Kinds of presentation:

- ``genuine``  -- an enrolled person, live;
- ``impostor`` -- a person who was never enrolled, live;
- ``attack``   -- the visible views of an enrolled person's palm (a replica good enough to
  fool the cameras) with an attack species in front of the transmission sensor.

Labels travel in ``Burst.meta`` for the demo's printout and the tests; the gate never reads them.
"""
from __future__ import annotations

import numpy as np

from device.sources.replay import Burst

# Per [match] feature, calibrated on synthetic people of another seed than the demo's (100; 12
# enrolled with 2 bursts, 24 genuine and 24 impostor presentations, K=3), between the best
# impostor and the worst genuine score. cells (per-view templates, views fused at the score):
# genuine 0.9817..0.9875, best impostor 0.9812. hybrid (one fused template per presentation,
# one fused query; 2026-12-06): genuine 0.98368..., best impostor 0.98357 (over 276 impostor
# comparisons). Thin: synthetic palms through hand regions are much weaker than real ROIs.
DEMO_THRESHOLDS = {"cells": 0.9815, "hybrid": 0.9836}
DEMO_THRESHOLD = DEMO_THRESHOLDS["hybrid"]          # the default feature's ([match] feature)

_KIND = {"enrol": 11, "genuine": 12, "impostor": 13, "attack": 14}


class SyntheticPeople:
    """Renders bursts of synthetic people. ``views`` cameras at 640x480, fixed rig."""

    def __init__(self, seed: int = 0, views: int = 3, sensor: str = "nir",
                 size: tuple[int, int] = (480, 640), models_dir=None, threads: int = 1):
        from device.synth.hands import sample_rig
        from device.synth.palms import PalmSynthesizer
        kw = {"threads": threads}
        if models_dir:
            kw["models_dir"] = models_dir
        self.synth = PalmSynthesizer(**kw)
        self.seed, self.views, self.sensor, self.size = seed, views, sensor, size
        self.rig = sample_rig(np.random.default_rng([seed, 4]), views, size)
        self._ids: dict = {}

    def _person(self, i: int):
        if i not in self._ids:
            from device.synth.palm_sets import subject_identity
            from device.synth.sensor_sets import identity
            self._ids[i] = (identity(self.seed, i), subject_identity(self.seed, i, self.synth)[0])
        return self._ids[i]

    def registration(self) -> list:
        """Sensor pixel -> view pixel homographies of this rig (points on the working plane)."""
        from device.synth.bound import nominal_registration
        return nominal_registration(self.rig, self.sensor)

    def _attacker_print(self, person: int, n: int):
        """The attacker's own palm print (another person's: subject ``ATTACKER_BASE + person``)
        for a species laid over the attacker's live palm, where the sensor's frames show the
        palm print; None elsewhere (not drawn)."""
        from device.synth.bound import palm_print_on
        if not palm_print_on(self.sensor):
            return None
        from device.synth.nir_prints import ATTACKER_BASE
        _, ident = self._person(ATTACKER_BASE + person)
        rng = np.random.default_rng([self.seed, _KIND["attack"], person, n, 1])
        return self.synth.palms(ident, 1, rng)[0]

    def species(self) -> tuple:
        from device.synth.attacks import SPECIES
        return SPECIES[self.sensor]

    def burst(self, person: int, kind: str = "genuine", n: int = 0,
              species: str | None = None) -> Burst:
        """Presentation ``n`` of ``person``; ``kind`` in enrol|genuine|impostor|attack."""
        from device.synth.attacks import render_attack
        from device.synth.bound import bona_fide_scene, render_placed, render_views
        from device.synth.hand_geometry import perturb_pose
        geom, ident = self._person(person)
        rng = np.random.default_rng([self.seed, _KIND[kind], person, n])
        tex = self.synth.palms(ident, 1, rng)[0]
        pose = perturb_pose(rng, 0.8)          # the draw render_hand_views would make
        views, depth = render_views(geom, tex, rng, self.rig, pose, self.size)
        if kind == "attack":
            sp = species or self.species()[n % len(self.species())]
            sensor = render_attack(sp, geom, rng, self.sensor, palm_texture=tex,
                                   attacker_texture=self._attacker_print(person, n))
        else:                                  # the same hand, in the same place, below
            sp = None
            sensor = render_placed(bona_fide_scene(self.sensor), geom, rng, self.sensor,
                                   pose, depth, palm_texture=tex)
        sensor = np.clip(np.round(sensor * 255.0), 0, 255).astype(np.uint8)
        label = "genuine" if kind == "enrol" else kind
        meta = {"burst": f"{kind}-p{person:03d}-{n:02d}", "label": label,
                "person": f"person-{person:03d}", "synthetic_seed": self.seed}
        if sp:
            meta["species"] = sp
        return Burst(views, sensor, meta)


def demo_schedule(enrolled: int, impostors: int, per_kind: int, seed: int = 0):
    """(person, kind, n) triples interleaving genuine, impostor and attack presentations."""
    rng = np.random.default_rng(seed)
    items = []
    for n in range(per_kind):
        items.append((int(rng.integers(enrolled)), "genuine", n))
        items.append((enrolled + n % max(1, impostors), "impostor", n))
        items.append((int(rng.integers(enrolled)), "attack", n))
    return items


class SyntheticSource:
    """A finite BurstSource that renders the given (person, kind, n) presentations in order."""

    def __init__(self, people: SyntheticPeople, schedule):
        self.people, self.schedule = people, list(schedule)
        self._i: int | None = None

    def __len__(self) -> int:
        return len(self.schedule)

    def start(self) -> None:
        self._i = 0

    def capture_burst(self) -> Burst:
        from device.sources.base import EndOfFrames, FrameError
        if self._i is None:
            raise FrameError("SyntheticSource.capture_burst() before start()")
        if self._i >= len(self.schedule):
            raise EndOfFrames("synthetic schedule done")
        person, kind, n = self.schedule[self._i]
        self._i += 1
        return self.people.burst(person, kind, n)

    def stop(self) -> None:
        self._i = None


def synthetic_source(cfg, views: int | None = None) -> "SyntheticSource":
    """The synthetic source of ``[source] kind = "synthetic"``: 4 enrolled people, 4 never
    enrolled, 4 presentations of each kind, from ``[source] synthetic_seed``."""
    s = cfg.source
    people = SyntheticPeople(seed=s.synthetic_seed, views=views or cfg.gate.views,
                             sensor=cfg.liveness.sensor)
    return SyntheticSource(people, demo_schedule(4, 4, 4, s.synthetic_seed))
