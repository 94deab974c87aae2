"""The data of the sensor-branch training: the synthetic sets the engine writes (liveness sets,
matched photo pairs, SR pairs; deterministic per seed, under ``WORK/../sensor_data``), the real
NIR captures (``../shared/data/real/polyu_nir``) and the real SR pairs made from them, loaded as
the 128x128 captures the gate sees.

* liveness sets: ``python -m tools.synth liveness --sensor S --bona-fide N --per-species M
  --seed {1001.. train, 2002.. validation, 3003.. held-out test}`` (sensor_config.LIVENESS_SEEDS);
* SR pairs: ``python -m tools.synth sr-pairs --sensor S --n N --seed {1101 train, 3103 test}``;
* real NIR (250 palms): subject-disjoint thirds -- validation = ``split_subjects(250, 0.2,
  0)``'s 50 palms, held-out test = 50 of the other 200 (``split_subjects(200, 0.25, 1)``),
  training = the remaining 150.  Real captures are bona fide for NIR liveness (centre-cropped
  and area-resized to the 128x128 capture, as the runtime does) and make real SR pairs: the
  same square frame centre area-resized to 256x256 is the HR image, the engine's sensor
  degradation (area /2, sensor PSF, read noise) of it the LR capture.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from device.eval.liveness import read_grey, scan_liveness_dir
from device.models.sensor_branch import to_capture
from tools.paths import shared_data_dir
from tools.train.sensor_config import LIVENESS_SEEDS, SPLITS, SR_SEEDS, log


def data_root(work: Path) -> Path:
    return Path(work).parent / "sensor_data"


def world_suffix(sensor: str) -> str:
    """``"_palmprint"`` for the sets of a world whose NIR frames show the palm print
    (``device.synth.bound.NIR_PALM_PRINT``), so they never mix with sets of the world without
    it written under the same seed; ``""`` otherwise; then ``"_wide"`` for sets whose hands
    range as widely as at the gate (``device.synth.placement``)."""
    from device.synth.bound import palm_print_on
    from device.synth.placement import placement_suffix
    return ("_palmprint" if palm_print_on(sensor) else "") + placement_suffix()


def liveness_set_dir(root: Path, sensor: str, split: str, spec) -> Path:
    seed, nb, na = spec
    return root / f"liveness_{sensor}_{split}_s{seed}_b{nb}_a{na}{world_suffix(sensor)}"


def liveness_set(root: Path, sensor: str, split: str, spec) -> Path:
    """One synthetic liveness set ``spec = (seed, bona fide, per species)`` of a split,
    written by the engine if not there yet."""
    from device.synth.sensor_sets import write_liveness

    seed, nb, na = spec
    if seed not in LIVENESS_SEEDS[split]:
        raise ValueError(f"seed {seed} is not a {split} seed {LIVENESS_SEEDS[split]}")
    d = liveness_set_dir(root, sensor, split, spec)
    if not _has_every_class(d, sensor):
        t = time.time()
        write_liveness(d, sensor, nb, na, seed)
        log(f"  wrote {d} ({time.time() - t:.0f} s)")
    return d


def _has_every_class(d: Path, sensor: str) -> bool:
    """Whether a set folder was written with every class the engine has now (a set written
    before species were added is written again: the first species' files come out the same,
    their generator seeds do not depend on the classes after them)."""
    import json

    from tools.train.sensor_config import SPECIES

    m = d / "manifest.json"
    if not m.exists():
        return False
    return set(json.loads(m.read_text())["classes"]) >= {"bona_fide", *SPECIES[sensor]}


def pair_set(root: Path, sensor: str, spec) -> Path:
    """A matched-pair training set ``spec = (species, seed, n)`` (see
    :func:`device.synth.sensor_sets.write_matched_pairs`), written by the engine if not there."""
    from device.synth.sensor_sets import write_matched_pairs

    species, seed, n = spec
    if seed not in LIVENESS_SEEDS["train"]:
        raise ValueError(f"seed {seed} is not a train seed {LIVENESS_SEEDS['train']}")
    d = root / f"pairs_{sensor}_{species}_s{seed}_n{n}{world_suffix(sensor)}"
    if not (d / "manifest.json").exists():
        t = time.time()
        write_matched_pairs(d, sensor, species, n, seed)
        log(f"  wrote {d} ({time.time() - t:.0f} s)")
    return d


def pairs_command(sensor: str, spec) -> str:
    return (f"python -m tools.synth pairs --sensor {sensor} --species {spec[0]} --n {spec[2]} "
            f"--seed {spec[1]}")


def synth_command(sensor: str, spec) -> str:
    from device.synth.placement import PLACEMENT
    placed = "" if PLACEMENT == "centred" else f" --placement {PLACEMENT}"
    return (f"python -m tools.synth liveness --sensor {sensor} --bona-fide {spec[1]} "
            f"--per-species {spec[2]} --seed {spec[0]}{placed}")


def load_split(root: Path, sensor: str, split: str, specs):
    """(captures, labels, classes) of every set of a split, concatenated."""
    parts = [load_liveness_dir(liveness_set(root, sensor, split, sp)) for sp in specs]
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def load_sets(root: Path, sensor: str, sizes: dict,
              splits=SPLITS) -> tuple[dict, dict, dict]:
    """Captures, labels and class names of the synthetic liveness sets of every split
    (``sizes``: the profile's ``liveness[sensor]``), each a dict by split; a split not in
    ``splits`` is empty (not written, not read)."""
    caps, labels, cls = {}, {}, {}
    for s in SPLITS:
        if s in splits:
            caps[s], labels[s], cls[s] = load_split(root, sensor, s, sizes[s])
        else:
            caps[s] = np.zeros((0, 128, 128), np.uint8)
            labels[s], cls[s] = np.zeros(0, np.int64), np.zeros(0, "<U32")
    return caps, labels, cls


def training_pool(caps: dict, cls: dict, real_caps: dict):
    """The liveness training captures: the synthetic training sets, then the real training
    captures as bona fide; returns (captures, class names, which ones are real)."""
    train_caps = np.concatenate([caps["train"], real_caps["train"]])
    train_cls = np.concatenate([cls["train"], np.full(len(real_caps["train"]), "bona_fide")])
    real_mask = np.arange(len(train_caps)) >= len(caps["train"])
    return train_caps, train_cls, real_mask


def load_liveness_dir(d: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(captures uint8 (N,128,128), labels 1 live / 0 attack, class names) of a liveness
    folder (any image size: frames are mapped to the capture like the runtime does)."""
    bona, attacks = scan_liveness_dir(d)
    files = [(f, "bona_fide") for f in bona] + [(f, sp) for sp, fs in attacks.items()
                                                for f in fs]
    imgs = np.stack([_capture_u8(read_grey(f)) for f, _ in files])
    cls = np.array([c for _, c in files])
    return imgs, (cls == "bona_fide").astype(np.int64), cls


def _capture_u8(frame: np.ndarray) -> np.ndarray:
    return np.round(to_capture(frame) * 255).astype(np.uint8)


def sr_pair_set(root: Path, sensor: str, split: str, n: int) -> Path:
    from device.synth.sensor_sets import write_sr_pairs

    seed = SR_SEEDS[split]
    d = root / f"sr_{sensor}_{split}_s{seed}_n{n}{world_suffix(sensor)}"
    if not (d / "manifest.json").exists():
        t = time.time()
        write_sr_pairs(d, sensor, n, seed)
        log(f"  wrote {d} ({time.time() - t:.0f} s)")
    return d


def load_pairs(d: Path) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(p.name for p in (d / "lr").glob("*.png"))
    lr = np.stack([read_grey(d / "lr" / n) for n in names])
    hr = np.stack([read_grey(d / "hr" / n) for n in names])
    return lr, hr


def real_nir_dir() -> Path | None:
    d = shared_data_dir() / "real" / "polyu_nir"
    return d if d.is_dir() else None


def real_nir_split() -> dict[str, list[str]]:
    """Subject-disjoint training / validation / held-out test palms of the real NIR set."""
    from tools.train.realdata import split_subjects

    d = real_nir_dir()
    if d is None:
        return {"train": [], "val": [], "test": []}
    names = sorted(p.name for p in d.iterdir() if p.is_dir())
    rest, val = split_subjects(len(names), 0.2, 0)
    rtr, rte = split_subjects(len(rest), 0.25, 1)
    return {"train": [names[i] for i in rest[rtr]], "val": [names[i] for i in val],
            "test": [names[i] for i in rest[rte]]}


def real_nir_files(subjects: list[str]) -> list[Path]:
    d = real_nir_dir()
    return [f for s in subjects for f in sorted((d / s).glob("*.jpg"))] if d else []


def real_pairs(files: list[Path], seed: int, random_crop: bool) -> tuple[np.ndarray, np.ndarray]:
    """Real SR pairs at the gate's scale: HR = the square frame centre (the part the runtime
    maps to the 128x128 capture) area-resized to 256x256; LR = the synthetic engine's sensor
    degradation of it (area /2, sensor PSF, read noise).  ``random_crop``: a random square of
    240-288 px at a random position instead of the centre (training augmentation)."""
    from device.synth.sensor import degrade

    lrs, hrs = [], []
    for i, f in enumerate(files):
        im = read_grey(f)
        rng = np.random.default_rng([seed, i])
        h, w = im.shape
        side = min(h, w)
        if random_crop:
            side = int(rng.integers(240, side + 1))
            r, c = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        else:
            r, c = (h - side) // 2, (w - side) // 2
        hr = cv2.resize(im[r:r + side, c:c + side].astype(np.float32) / 255.0, (256, 256),
                        interpolation=cv2.INTER_AREA)
        lr = degrade(hr, rng)
        hrs.append(np.round(hr * 255).astype(np.uint8))
        lrs.append(np.round(lr * 255).astype(np.uint8))
    return np.stack(lrs), np.stack(hrs)


def write_real_heldout(root: Path, subjects: list[str]) -> tuple[Path, Path]:
    """Folders for the CLI on the held-out real palms (git-ignored work area): a liveness
    layout of symbolic links to the real captures, and the real SR pairs as PNG (rewritten
    when the subject list changes)."""
    import shutil

    files = real_nir_files(subjects)
    stamp = "gate-scale pairs v2\n" + "\n".join(subjects) + "\n"
    suffix = "" if len(subjects) == len(real_nir_split()["test"]) else f"_{len(subjects)}"
    live, pairs = root / f"real_nir_heldout{suffix}", root / f"real_nir_sr_heldout{suffix}"
    for d in (live, pairs):
        if (d / "done").exists() and (d / "done").read_text() != stamp:
            shutil.rmtree(d)
    if not (live / "done").exists():
        (live / "bona_fide").mkdir(parents=True, exist_ok=True)
        for f in files:
            os.symlink(f.resolve(), live / "bona_fide" / f"{f.parent.name}_{f.name}")
        (live / "done").write_text(stamp)
    if not (pairs / "done").exists():
        lr, hr = real_pairs(files, SR_SEEDS["test"], random_crop=False)
        for k, f in enumerate(files):
            for sub, a in (("lr", lr[k]), ("hr", hr[k])):
                (pairs / sub).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(pairs / sub / f"{f.parent.name}_{f.stem}.png"), a)
        (pairs / "done").write_text(stamp)
    return live, pairs


def real_captures(cfg: dict, sensor: str) -> tuple[dict, dict]:
    """The real NIR files of each split (none for X-ray), cut to the profile's
    ``real_subjects``, and their captures (uint8, (N, 128, 128)) per split."""
    split = real_nir_split() if sensor == "nir" else {"train": [], "val": [], "test": []}
    real = {k: real_nir_files(v[:cfg["real_subjects"][k]]) for k, v in split.items()}
    real_caps = {s: (np.stack([_capture_u8(read_grey(f)) for f in fs]) if fs else
                     np.zeros((0, 128, 128), np.uint8)) for s, fs in real.items()}
    return real, real_caps
