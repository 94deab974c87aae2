"""Write liveness sets of whole presentations -- the K views and the sensor frame of one
presentation together -- so ``palmgate evaluate-liveness`` runs the binding too.

Layout (the recorded-burst layout, one folder per presentation, in the liveness layout)::

    out/rig.json                                   {"synthetic_seed", "views", "sensor"}
    out/bona_fide/<p:05d>/view_0.png .. view_<K-1>.png, sensor.png, burst.json
    out/attack/mixed_replica_views/<p:05d>/...     (device.synth.mixed)
    out/attack/mixed_replica_sensor/<p:05d>/...
    out/attack/<species>/<p:05d>/...               (species=True: every attack species of the
                                                   sensor, device.synth.species_presentations)
    out/manifest.json                              class, person, variant of every presentation

Bona fide: one live hand's views and sensor frame in one pose (:func:`device.synth.bound.
render_bound`). Mixed: a live hand in one place and a replica in the other
(:func:`device.synth.mixed.render_mixed`, variant drawn per presentation). With
``species``, every attack species of the sensor too: the victim's replica before the cameras,
the species under the sensor (:func:`device.synth.species_presentations.render_species`);
their classes come after the mixed ones, so the bona fide and mixed presentations of a seed
are the same with or without them. The rig is the
synthetic gate of ``seed`` (:class:`device.synth.source.SyntheticPeople`), so the binding's
nominal registration for that seed is exact; ``rig.json`` names it for the evaluation.
Every presentation has its own generator seeded from ``(seed, kind, class, index)``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from device.sources.replay import Burst, write_burst

RIG_FILE = "rig.json"
_KIND_PRES = 21


def write_presentations(out_dir: str | Path, sensor: str, n_bona_fide: int, per_species: int,
                        seed: int, views: int = 3, people: int = 40, progress=None,
                        species: bool = False) -> dict:
    """Write ``n_bona_fide`` bona fide presentations and ``per_species`` of each mixed species
    (and, with ``species``, of each attack species of the sensor) for ``sensor`` of the
    synthetic gate of ``seed`` with ``views`` cameras, the persons drawn from ``people``;
    returns the manifest."""
    from device.synth.attacks import SPECIES
    from device.synth.mixed import MIXED_SPECIES
    from device.synth.source import SyntheticPeople
    if sensor not in ("xray", "nir"):
        raise ValueError(f"sensor must be 'xray' or 'nir', not {sensor!r}")
    if people < 2:
        raise ValueError("people must be at least 2 (a mixed presentation has two hands)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    synth = SyntheticPeople(seed=seed, views=views, sensor=sensor)
    classes = [("bona_fide", n_bona_fide)] + [(sp, per_species) for sp in MIXED_SPECIES]
    if species:
        classes += [(sp, per_species) for sp in SPECIES[sensor]]
    total = sum(n for _, n in classes)
    files, done = [], 0
    for ci, (cls, n) in enumerate(classes):
        for i in range(n):
            shot, meta = render_presentation(synth, sensor, cls, ci, i, seed, people)
            rel = f"bona_fide/{i:05d}" if cls == "bona_fide" else f"attack/{cls}/{i:05d}"
            write_burst(out / rel, Burst(list(shot.views), np.asarray(shot.sensor), meta))
            files.append(dict(meta, folder=rel, live=cls == "bona_fide"))
            done += 1
            if progress:
                progress(done, total)
    rig = {"synthetic_seed": seed, "views": views, "sensor": sensor}
    (out / RIG_FILE).write_text(json.dumps(rig, indent=1) + "\n")
    manifest = {**rig, "seed": seed, "classes": [c for c, _ in classes], "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    return manifest


def render_presentation(synth, sensor: str, cls: str, ci: int, i: int, seed: int,
                        people: int = 40):
    """(shot, meta) of presentation ``i`` of class ``cls`` (the ``ci``-th class of the set) of
    the synthetic gate ``synth`` (:class:`device.synth.source.SyntheticPeople` of ``seed``):
    its own generator, seeded from ``(seed, kind, ci, i)``, draws the person, the palm print
    and the presentation -- what :func:`write_presentations` writes at ``i``."""
    from device.synth.bound import render_bound
    from device.synth.mixed import MIXED_SPECIES, render_mixed
    from device.synth.species_presentations import render_species
    rng = np.random.default_rng([seed, _KIND_PRES, ci, i])
    p = int(rng.integers(people))
    geom, ident = synth._person(p)
    tex = synth.synth.palms(ident, 1, rng)[0]
    meta = {"class": cls, "person": p, "sensor": sensor}
    if cls == "bona_fide":
        return render_bound(geom, tex, rng, synth.rig, sensor, synth.size), meta
    p2 = (p + 1 + int(rng.integers(people - 1))) % people
    g2, id2 = synth._person(p2)
    tex2 = synth.synth.palms(id2, 1, rng)[0]
    render = render_mixed if cls in MIXED_SPECIES else render_species
    shot, m = render(cls, geom, tex, g2, tex2, rng, synth.rig, sensor, synth.size)
    meta.update(m, other_person=p2)
    return shot, meta
