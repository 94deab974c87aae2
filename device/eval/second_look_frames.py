"""The second look's re-captures of a synthetic whole-presentation set, rendered lazily.

``palmgate evaluate-liveness SET --enrol`` decides presentations stored as PNG folders; the
gate's second look (:mod:`device.gate.second_look`) asks the burst for more sensor frames
(``Burst.more_sensor``). A folder with ``sensor_1.png ..`` delivers those
(:func:`device.sources.replay.read_burst`); a folder without them gets :func:`recapture`: the
presentation is re-rendered from its own generator exactly as :mod:`device.eval.sensor_bursts`
does (:func:`~device.eval.burst_frames.presentation_frames`: frame 0 the stored capture, frames
1..k a re-draw of the frame -- exposure, noise, PSF -- of the same content), only when the gate
asks, so existing sets need no re-render. Frame 0 of the re-render must equal the stored
``sensor.png``: where it does not, :class:`Frame0Mismatch` is raised (the gate denies the look:
fail secure) and the mismatch is recorded, and the evaluation refuses the set
(:func:`check_mismatches`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class Frame0Mismatch(RuntimeError):
    """The re-rendered frame 0 differs from the stored sensor.png: the set was not rendered
    by this synthesis engine (or not from this folder's generator)."""


class SetRecapture:
    """``SetRecapture(data_dir, info)(cls, folder, frame0)`` -> a ``more_sensor`` callable for
    the presentation in ``folder`` (class ``cls``; ``frame0`` its stored sensor frame, uint8).
    ``info``: :func:`device.eval.liveness_enrol.read_set`'s (``people`` filled in).
    ``calls`` counts the re-renders, ``mismatches`` the folders whose frame 0 differed."""

    def __init__(self, data_dir, info: dict, sensor: str):
        from device.synth.source import SyntheticPeople
        man = json.loads((Path(data_dir) / "manifest.json").read_text())
        self.classes = list(man["classes"])
        self.sensor, self.seed, self.people = sensor, int(info["seed"]), int(info["people"])
        self.synth = SyntheticPeople(seed=self.seed, views=int(info["views"]), sensor=sensor)
        self.calls, self.mismatches = 0, []

    def __call__(self, cls: str, folder, frame0: np.ndarray):
        folder = Path(folder)
        i = int(folder.name)

        def more(k: int) -> list:
            from device.eval.burst_frames import presentation_frames
            self.calls += 1
            frames = presentation_frames(self.synth, self.sensor, self.classes, cls, i,
                                         self.seed, self.people, k)
            if not np.array_equal(frames[0], frame0):
                self.mismatches.append(str(folder))
                raise Frame0Mismatch(f"{folder}: the re-rendered frame 0 differs from the "
                                     f"stored sensor.png")
            return frames[1:k + 1]
        return more


def give_recaptures(recapture, burst, cls: str, folder) -> None:
    """Give ``burst`` (read from presentation ``folder`` of class ``cls``) the second look's
    lazily re-rendered re-captures (``recapture``: a :class:`SetRecapture`), unless it has
    recorded ones (``sensor_N.png``) or no sensor frame; ``recapture`` None: nothing."""
    if recapture is not None and burst.more_sensor is None and burst.sensor is not None:
        burst.more_sensor = recapture(cls, folder, burst.sensor)


def check_mismatches(rec: SetRecapture | None) -> None:
    """Refuse the evaluation (ValueError) where a re-render's frame 0 differed from the set."""
    if rec is not None and rec.mismatches:
        raise ValueError(f"{len(rec.mismatches)} presentations re-rendered with a frame 0 that "
                         f"differs from their stored sensor.png (first: {rec.mismatches[0]}): "
                         f"the set was not rendered by this synthesis engine; the second "
                         f"look's re-captures cannot be rendered for it")
