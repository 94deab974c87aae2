"""The X-ray phantom check: is the live-looking hand under the sensor a radiographic hand
phantom -- a real (donor) skeleton in tissue-equivalent resin (``skeleton_phantom``,
:func:`device.synth.attacks_composite.skeleton_phantom_scene`)?

A phantom built on the victim's outline carries real bone, so the liveness model scores it
live (p(live) >= 0.99), and its bones lie where the victim's lie, so the bone patch agrees
(docs/results.md, "X-ray skeleton phantoms and prints over a live hand"). What sets it apart
is its material: dried marrow, resin joints without capsule density, a moulded flatter
profile. A small CNN (26,605 parameters, ``tools.train.phantom_net``) reads them in the SR
image the liveness model reads -- the gate pays no second SR: ``p(phantom)`` strictly above the
signed ``threshold`` of the file's manifest entry (chosen on validation) is ``not_live``.

What it knows is the synthesis engine's phantom (docs/sensor-branch.md, "The X-ray phantom
check"): an ablation showed it reads the dried marrow, the missing joint capsule and the
flatter profile together; a phantom with filled marrow, a capsule-like joint filler and a
lifelike profile would pass it. Nobody has imaged a real phantom.

Files ``phantom_xray.onnx`` (fp32) and ``phantom_xray_int8.onnx``: image (N, 1, 256, 256) in
[0, 1] -> p_phantom (N,). The check is required wherever the signed manifest lists the file
of the gate's precision (a missing, changed or unsigned file is a :class:`ModelError`: the gate
fails secure); a manifest from before the check lists none and the stage runs without it.
NIR has no phantom check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from device.models.model import (DEFAULT_MODELS_DIR, Model, entry_band, entry_threshold,
                                 load_manifest)

SENSORS = ("xray",)
PHANTOM_DETAIL = "a radiographic hand phantom: p(phantom) above the threshold"


def phantom_model_name(sensor: str, precision: str = "fp32") -> str | None:
    """The phantom file of a sensor and precision; None for a sensor without the check."""
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', not {precision!r}")
    if sensor not in SENSORS:
        return None
    return f"phantom_{sensor}{'_int8' if precision == 'int8' else ''}.onnx"


def listed_phantom(sensor: str, precision: str, manifest: dict) -> str | None:
    """The phantom file the sensor stage needs: the sensor's file of this precision where the
    manifest (a parsed manifest.json) lists it, else None (no check for the sensor, or a
    manifest from before the check)."""
    name = phantom_model_name(sensor, precision)
    return name if name is not None and name in manifest.get("models", {}) else None


def is_phantom(p_phantom, threshold: float):
    """A phantom iff p(phantom) > threshold (strictly); a value that is not a number is a
    phantom too (the check fails secure)."""
    p = np.asarray(p_phantom, np.float64)
    return ~(p <= threshold)


class PhantomCheck:
    """``PhantomCheck('xray', 'int8')(sr_images)`` -> p(phantom) (N,) of SR images (N, H, W)
    in [0, 1]; ``threshold`` is the signed one."""

    def __init__(self, sensor: str, precision: str = "fp32",
                 models_dir: Path | str = DEFAULT_MODELS_DIR, threads: int = 0,
                 batch: int = 16, trusted_keys=None, arena: bool = False):
        name = phantom_model_name(sensor, precision)
        if name is None:
            raise ValueError(f"no phantom check for the {sensor!r} sensor")
        self.name, self.batch = name, batch
        self.model = Model(name, models_dir, threads, trusted_keys=trusted_keys, arena=arena)
        self.threshold = entry_threshold(self.model.entry, name)
        self.second_look_band = entry_band(self.model.entry, name)   # device.gate.second_look

    def __call__(self, images: np.ndarray) -> np.ndarray:
        im = np.asarray(images, np.float32)
        out = [self.model(image=im[i:i + self.batch, None])["p_phantom"].reshape(-1)
               for i in range(0, len(im), self.batch)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def phantom_check(sensor: str, precision: str = "fp32",
                  models_dir: Path | str = DEFAULT_MODELS_DIR, threads: int = 0,
                  trusted_keys=None) -> PhantomCheck | None:
    """The sensor stage's phantom check: None where the sensor has none or the signed
    manifest lists no phantom file of this precision; else :class:`PhantomCheck` (whose
    errors -- the file missing or changed, no threshold -- are :class:`ModelError`s)."""
    if phantom_model_name(sensor, precision) is None:
        return None
    if listed_phantom(sensor, precision, load_manifest(models_dir, trusted_keys)) is None:
        return None
    return PhantomCheck(sensor, precision, models_dir, threads, trusted_keys=trusted_keys)
