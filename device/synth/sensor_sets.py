"""Write synthetic data sets to disk: liveness sets, super-resolution pairs, multi-view hands.

Every item gets its own generator seeded from ``(seed, kind, ...indices)``, so a set is
deterministic for a seed and any item can be regenerated alone.  Images are uint8 PNG.

Layouts:

Where the sensor's frames show the palm print (``device.synth.bound.NIR_PALM_PRINT``, NIR),
identity ``k`` carries the palm print of subject ``k`` of ``tools.synth palms`` with the same
seed (:mod:`device.synth.nir_prints`), and every NIR frame that shows a palm's surface shows
the palm print of the hand it shows or copies.

* :func:`write_liveness` -- ``out/bona_fide/<i>.png`` and ``out/attack/<species>/<i>.png`` at the
  sensor's capture resolution (what ``palmgate evaluate-liveness`` reads), plus
  ``out/manifest.json`` (class and identity of every file).
* :func:`write_sr_pairs` -- ``out/lr/<i>.png`` (capture) and ``out/hr/<i>.png`` (x2, same
  content), bona fide and attacks mixed (seed 001 §3.5: pairs may be live or not).
* :func:`write_hands` -- the standard layout ``out/<subject:04d>/<session>_<sample:02d>.png`` with
  ``<same stem>.json`` keypoints; samples ``k*K+1 .. (k+1)*K`` are the K views of presentation k.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from device.synth.attacks import BONA_FIDE, SPECIES, render_class_pair, scene_for
from device.synth.hand_geometry import HandGeometry, sample_hand_geometry
from device.synth.hands import render_hand_views, sample_rig
from device.synth.nir_prints import set_prints, textures
from device.synth.sensor import CAPTURE_SIZE, render_scene

TextureFn = Callable[[int, int, np.random.Generator], np.ndarray]
"""palm_texture_fn(subject_index, sample_index, rng) -> (128, 128) float32 in [0, 1]."""

_KIND_GEOM, _KIND_LIVE, _KIND_SR, _KIND_RIG, _KIND_HAND, _KIND_PAIR = 1, 2, 3, 4, 5, 6


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(img, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f"could not write {path}")


def identity(seed: int, index: int) -> HandGeometry:
    """Identity ``index`` of a set with ``seed`` (even indices right hands, odd left)."""
    rng = np.random.default_rng([seed, _KIND_GEOM, index])
    return sample_hand_geometry(rng, "left" if index % 2 else "right")


def liveness_frame(sensor: str, seed: int, ci: int, cls: str, i: int, ident: int,
                   geom: HandGeometry, size: tuple[int, int], prints=None) -> np.ndarray:
    """Frame ``i`` of class ``cls`` (index ``ci``) of a liveness set of ``seed``, float32 in
    [0, 1]: identity ``ident``'s hand ``geom``; with ``prints``
    (:func:`device.synth.nir_prints.set_prints`) its NIR frame shows the identity's palm print
    (an attack: the victim's, or the attacker's own under a film)."""
    rng = np.random.default_rng([seed, _KIND_LIVE, ci, i])
    scene = scene_for(cls, sensor, **textures(prints, ident, _KIND_LIVE, ci, i))
    return render_scene(scene, geom, rng, sensor, size, 1)


def write_liveness(out_dir: str | Path, sensor: str, n_bona_fide: int, per_species: int,
                   seed: int, size: tuple[int, int] | None = None) -> dict:
    """Write a liveness set for ``sensor`` ('xray' or 'nir'): ``n_bona_fide`` live captures and
    ``per_species`` captures of every attack species of that sensor, at capture resolution
    (``size``, default the sensor's capture size).  Identities come from a pool of
    ``max(2, n // 4)`` hands shared by live and attack images.  Returns the manifest."""
    if sensor not in SPECIES:
        raise ValueError(f"sensor must be 'xray' or 'nir', not {sensor!r}")
    out = Path(out_dir)
    size = tuple(size or CAPTURE_SIZE[sensor])
    classes = (BONA_FIDE,) + SPECIES[sensor]
    n_ids = max(2, max(n_bona_fide, per_species) // 4)
    geoms: dict[int, HandGeometry] = {}
    prints = set_prints(sensor, seed)
    files = []
    for ci, cls in enumerate(classes):
        n = n_bona_fide if cls == BONA_FIDE else per_species
        for i in range(n):
            ident = (i + 7 * ci) % n_ids
            geom = geoms.setdefault(ident, identity(seed, ident))
            img = liveness_frame(sensor, seed, ci, cls, i, ident, geom, size, prints)
            rel = f"bona_fide/{i:05d}.png" if cls == BONA_FIDE else f"attack/{cls}/{i:05d}.png"
            _png(out / rel, _u8(img))
            files.append({"file": rel, "class": cls, "live": cls == BONA_FIDE,
                          "identity": ident})
    manifest = {"sensor": sensor, "seed": seed, "size": list(size), "classes": list(classes),
                "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def write_matched_pairs(out_dir: str | Path, sensor: str, species: str, n: int,
                        seed: int, size: tuple[int, int] | None = None) -> dict:
    """Write ``n`` matched pairs for training: ``bona_fide/<i>.png`` and
    ``attack/<species>/<i>.png`` drawn from the same generator state, so the attack copies
    *that* live presentation (for the X-ray ``photo``: a print of the very radiograph in
    ``bona_fide/<i>.png``, same hand, pose and exposure of the original) and the pair differs
    only in what the attack changes.  The liveness layout, so any liveness reader takes it;
    the manifest gives each file its ``pair`` index.  Returns the manifest."""
    if sensor not in SPECIES or species not in SPECIES[sensor]:
        raise ValueError(f"unknown species {species!r} for sensor {sensor!r}")
    out = Path(out_dir)
    size = tuple(size or CAPTURE_SIZE[sensor])
    n_ids = max(2, n // 4)
    prints = set_prints(sensor, seed)
    files = []
    for i in range(n):
        ident = i % n_ids
        geom = identity(seed, ident)
        tex = textures(prints, ident, _KIND_PAIR, i)    # one palm print for both frames
        for cls in (BONA_FIDE, species):
            rng = np.random.default_rng([seed, _KIND_PAIR, i])
            img = render_scene(scene_for(cls, sensor, **tex), geom, rng, sensor, size, 1)
            rel = f"bona_fide/{i:05d}.png" if cls == BONA_FIDE else f"attack/{cls}/{i:05d}.png"
            _png(out / rel, _u8(img))
            files.append({"file": rel, "class": cls, "live": cls == BONA_FIDE,
                          "identity": ident, "pair": i})
    manifest = {"sensor": sensor, "seed": seed, "size": list(size),
                "classes": [BONA_FIDE, species], "matched_pairs": n, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def write_sr_pairs(out_dir: str | Path, sensor: str, n: int, seed: int,
                   lr_size: tuple[int, int] | None = None, live_fraction: float = 0.6) -> dict:
    """Write ``n`` super-resolution pairs: ``lr/<i>.png`` at capture resolution and
    ``hr/<i>.png`` at twice it, same content; about ``live_fraction`` bona fide, the rest
    cycling over the sensor's attack species.  Returns the manifest."""
    if sensor not in SPECIES:
        raise ValueError(f"sensor must be 'xray' or 'nir', not {sensor!r}")
    out = Path(out_dir)
    size = tuple(lr_size or CAPTURE_SIZE[sensor])
    species = SPECIES[sensor]
    n_ids = max(2, n // 4)
    files = []
    n_live = int(round(n * live_fraction))
    prints = set_prints(sensor, seed)
    for i in range(n):
        cls = BONA_FIDE if i < n_live else species[(i - n_live) % len(species)]
        ident = i % n_ids
        rng = np.random.default_rng([seed, _KIND_SR, i])
        lr, hr = render_class_pair(cls, identity(seed, ident), rng, sensor, size,
                                   **textures(prints, ident, _KIND_SR, i))
        _png(out / "lr" / f"{i:05d}.png", _u8(lr))
        _png(out / "hr" / f"{i:05d}.png", _u8(hr))
        files.append({"file": f"{i:05d}.png", "class": cls, "identity": ident})
    manifest = {"sensor": sensor, "seed": seed, "lr_size": list(size),
                "hr_size": [2 * size[0], 2 * size[1]], "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def write_hands(out_dir: str | Path, subjects: int, sessions: int, samples: int, views: int,
                seed: int, palm_texture_fn: TextureFn, mode: str = "multi_camera",
                size: tuple[int, int] = (480, 640)) -> dict:
    """Write multi-view hand images in the standard layout with keypoint JSON beside each.

    Subject ``s`` (folder ``f"{s:04d}"``, 0-based) is one HandGeometry (even ``s`` right hand,
    odd left) in every session; each session draws new poses and lighting.  ``samples`` images
    per session; samples ``k*views+1 .. (k+1)*views`` are the ``views`` views of presentation
    ``k`` (the last presentation is cut if ``samples`` is not a multiple of ``views``).  The
    multi-camera rig is fixed for the whole set (a gate's cameras do not move).

    ``palm_texture_fn(subject_index, sample_index, rng)`` is called once per presentation with
    ``sample_index`` = the 0-based running index, over all sessions of the subject, of the
    presentation's first image (``(session-1)*samples + k*views``), and the presentation's rng.
    Returns a summary dict.
    """
    out = Path(out_dir)
    rig = sample_rig(np.random.default_rng([seed, _KIND_RIG]), views if mode == "multi_camera"
                     else 1, size)
    n_pres = math.ceil(samples / views)
    written = 0
    for s in range(subjects):
        geom = identity(seed, s)
        for session in range(1, sessions + 1):
            for k in range(n_pres):
                rng = np.random.default_rng([seed, _KIND_HAND, s, session, k])
                tex = np.asarray(palm_texture_fn(s, (session - 1) * samples + k * views, rng),
                                 np.float32)
                shots = render_hand_views(geom, tex, rng, views=views, mode=mode, size=size,
                                          rig=rig)
                for v, (img, meta) in enumerate(shots):
                    sample = k * views + v + 1
                    if sample > samples:
                        break
                    stem = out / f"{s:04d}" / f"{session}_{sample:02d}"
                    _png(stem.with_suffix(".png"), img)
                    meta = dict(meta, subject=s, session=session, sample=sample,
                                presentation=k, palm_width_mm=round(geom.palm_width, 4),
                                vein_seed=geom.vein_seed)
                    stem.with_suffix(".json").write_text(json.dumps(meta))
                    written += 1
    return {"subjects": subjects, "sessions": sessions, "samples": samples, "views": views,
            "mode": mode, "images": written, "rig": [c.to_dict() for c in rig]}
