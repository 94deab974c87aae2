"""Is there a hand in the transmission sensor's frame?  The presence check that runs before
super-resolution and liveness (issue 21): a frame without a hand -- noise, a flat, black or
saturated frame, a gradient, a photo of another scene, a frame of the other sensor, shuffled or
heavily blurred pixels -- is denied ``no_hand_in_sensor`` and never reaches the liveness model,
which was trained only on hands and hand replicas and has no opinion about anything else.

Two tests, both must pass (a hand replica -- an attack -- passes both and is judged by
liveness):

* the classical test of :mod:`device.models.presence_stats` (dynamic range, pixel noise,
  spatial correlation, structure beyond a smooth surface, edges, silhouette), with the limits of
  the signed manifest entry's ``presence_limits``;
* the presence classifier ``presence_<sensor>.onnx`` (``_int8``): a small CNN on the 128x128
  capture, ``capture`` (N, 1, 128, 128) in [0, 1] -> ``probs`` (N, 2); a hand is present when
  p(hand) = probs[:, 1] is strictly greater than the signed entry's ``threshold`` (chosen on
  validation frames by ``python -m tools.train presence``).

One model per sensor kind: the hand of one sensor is a "frame of the other sensor" for the
other, so the two classes differ by sensor, and each file carries its own signed threshold and
limits like the liveness files do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.models.model import DEFAULT_MODELS_DIR, Model, ModelError, entry_threshold
from device.models.presence_stats import check_limits, failures, frame_stats

NO_HAND = "no_hand_in_sensor"
"""The deny reason of a sensor frame with no hand in it."""


def presence_model_name(sensor: str, precision: str = "fp32") -> str:
    """The presence classifier's file for a sensor kind and precision."""
    if sensor not in ("xray", "nir"):
        raise ValueError(f"sensor must be 'xray' or 'nir', not {sensor!r}")
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', not {precision!r}")
    return f"presence_{sensor}{'_int8' if precision == 'int8' else ''}.onnx"


@dataclass
class Presence:
    """The presence verdict of one capture."""

    present: bool
    p_hand: float | None          # None when the classical test already refused the frame
    failed: list[str] = field(default_factory=list)   # classical statistics out of limits

    @property
    def detail(self) -> str:
        if self.present:
            return ""
        if self.failed:
            return "frame statistics out of a hand's range: " + ", ".join(self.failed)
        return "presence classifier: no hand"


class PresenceCheck:
    """``PresenceCheck('nir')(captures)`` -> one :class:`Presence` per capture (float32
    (N, 128, 128) in [0, 1]).  A missing, tampered or unsigned model, or an entry without a
    valid threshold or limits, is a :class:`ModelError` (the gate then fails secure)."""

    def __init__(self, sensor: str, precision: str = "fp32",
                 models_dir: Path | str = DEFAULT_MODELS_DIR, threads: int = 0,
                 batch: int = 64, trusted_keys=None):
        name = presence_model_name(sensor, precision)
        self.sensor, self.precision, self.batch = sensor, precision, batch
        self.model = Model(name, models_dir, threads, trusted_keys=trusted_keys)
        self.threshold = entry_threshold(self.model.entry, name)
        try:
            self.limits = check_limits(self.model.entry.get("presence_limits"))
        except ValueError as e:
            raise ModelError(f"{name}: {e}") from None

    def p_hand(self, captures: np.ndarray) -> np.ndarray:
        """p(hand) of the classifier for captures (N, H, W) in [0, 1]."""
        c = np.asarray(captures, np.float32)
        out = [self.model(capture=c[i:i + self.batch, None])["probs"][:, 1]
               for i in range(0, len(c), self.batch)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def __call__(self, captures) -> list[Presence]:
        caps = np.asarray(captures, np.float32)
        failed = [failures(frame_stats(c), self.limits) for c in caps]
        todo = [i for i, f in enumerate(failed) if not f]
        p = dict(zip(todo, self.p_hand(caps[todo]))) if todo else {}
        return [Presence(False, None, f) if f else
                Presence(bool(p[i] > self.threshold), float(p[i]))
                for i, f in enumerate(failed)]
