"""The frames of the presence check's training, validation and held-out test (issue 21).

Hand frames (the positive class: a hand is there, live or a replica) of a sensor:

* synthetic bona fide and every attack species of that sensor, rendered exactly as
  ``python -m tools.synth liveness`` writes them (:func:`device.synth.sensor_sets.
  write_liveness`'s generators) from the liveness seeds of the split
  (tools/train/sensor_config.LIVENESS_SEEDS: 1001 training, 2002 validation, 3003 held-out);
* for NIR, the real PolyU NIR palms of the split (tools/train/sensor_data.real_nir_split: the
  same subject-disjoint 150 / 50 / 50 palms the liveness training uses).

No-hand frames (:mod:`device.synth.no_hand`): training and validation draw the training kinds
from the training pictures; the held-out test draws every kind, the held-out texture families
included, from pictures no model saw -- OpenCV's ``right*`` chessboard photos (training: the
``left*`` ones), Tongji palms 250-299 and the NTUST ``ntust-ip`` photos (training: Tongji
0-199, validation: 200-249, training also ``ntust-hp``), hand frames of the held-out seed and the
held-out real palms for the shuffled/blurred kinds, and other-sensor frames of the held-out
seed -- and from generator seeds used nowhere else (:data:`NEG_SEEDS`).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.models.sensor_branch import to_capture
from device.synth.attacks import BONA_FIDE, SPECIES
from tools.paths import shared_data_dir

NEG_SEEDS = {"train": 5101, "val": 5202, "test": 5303}
"""Generator seeds of the no-hand frames of each split (no liveness set uses them)."""
POS_SEED = {"train": 1001, "val": 2002, "test": 3003}
"""Liveness seeds (tools/train/sensor_config.LIVENESS_SEEDS) of the synthetic hand frames."""
OTHER = {"xray": "nir", "nir": "xray"}


def synthetic_hands(sensor: str, split: str, n_bona_fide: int, per_species: int):
    """(float32 (N, 128, 128), class names) -- the frames ``write_liveness(sensor, n_bona_fide,
    per_species, POS_SEED[split])`` writes, rendered in memory (before the 8-bit rounding of
    the PNG files, which the gate's to_capture sees again: rounded here too)."""
    from device.synth.nir_prints import set_prints
    from device.synth.sensor import CAPTURE_SIZE
    from device.synth.sensor_sets import identity, liveness_frame

    seed = POS_SEED[split]
    classes = (BONA_FIDE,) + SPECIES[sensor]
    n_ids = max(2, max(n_bona_fide, per_species) // 4)
    prints = set_prints(sensor, seed)
    geoms, imgs, names = {}, [], []
    for ci, cls in enumerate(classes):
        for i in range(n_bona_fide if cls == BONA_FIDE else per_species):
            ident = (i + 7 * ci) % n_ids
            geom = geoms.setdefault(ident, identity(seed, ident))
            img = liveness_frame(sensor, seed, ci, cls, i, ident, geom, CAPTURE_SIZE[sensor],
                                 prints)
            imgs.append(np.round(np.clip(img, 0, 1) * 255) / 255.0)
            names.append(cls)
    return np.stack(imgs).astype(np.float32), names


def real_nir(split: str, max_subjects: int | None = None) -> np.ndarray:
    """The real NIR palms of a split as the gate's captures (float32 (N, 128, 128))."""
    from tools.train.sensor_data import real_nir_files, real_nir_split

    subjects = real_nir_split()[split][:max_subjects]
    files = real_nir_files(subjects)
    if not files:
        return np.zeros((0, 128, 128), np.float32)
    return np.stack([to_capture(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in files])


def _grey(files) -> list[np.ndarray]:
    out = []
    for f in files:
        im = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        if im is not None:
            out.append(im)
    return out


def pictures(split: str) -> dict:
    """The scene photos and visible-light palm photos of a split (see the module doc)."""
    d = shared_data_dir()
    calib = sorted((d / "opencv-calib").glob("*.jpg"))
    tongji = sorted(p for p in (d / "real" / "tongji").iterdir() if p.is_dir()) \
        if (d / "real" / "tongji").is_dir() else []
    ntust = d / "real" / "ntust"
    pick = {"train": (0, 200), "val": (200, 250), "test": (250, 300)}[split]
    tj = [f for s in tongji[pick[0]:pick[1]] for f in sorted(s.glob("*"))[::4]]
    if split == "test":
        photos = [f for f in calib if f.name.startswith("right")]
        nt = sorted((ntust / "ntust-ip").rglob("*.jpg"))
    else:
        photos = [f for f in calib if f.name.startswith("left")]
        nt = sorted((ntust / "ntust-hp").rglob("*.jpg")) if split == "train" else []
    return {"photos": _grey(photos), "visible": _grey(tj) + _grey(nt)}


def sources(split: str, hands: np.ndarray, other: np.ndarray) -> dict:
    """The ``sources`` of :func:`device.synth.no_hand.no_hand_frame` for a split: its pictures,
    ``hands`` (hand frames of this sensor, for the shuffled and blurred kinds) and ``other``
    (frames of the other sensor)."""
    return dict(pictures(split), hands=list(hands), other=list(other))
