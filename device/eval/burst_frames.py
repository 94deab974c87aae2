"""A presentation's sensor frame drawn as a burst: frame 0 its stored capture, frames 1..k the
same content captured again (:func:`device.synth.sensor.render_burst`). Shared by the burst
measurement (:mod:`device.eval.sensor_bursts`) and the second look's re-captures of a synthetic
set (:mod:`device.eval.second_look_frames`); it depends on neither.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

FRAME_KIND = 7
"""Last element of a burst's frame seed ``[seed, 21, class index, index, FRAME_KIND]``."""


@contextmanager
def sensor_bursts(k: int, frame_seed, keep_exposure: bool = False):
    """While open, the outermost :func:`device.synth.sensor.render_scene` of a presentation
    renders a burst (:func:`~device.synth.sensor.render_burst`) and returns its frame 0 (what
    it returned before); the bursts are appended to the yielded list. Nested calls (a copied
    radiograph inside an attack's scene: content) and ``scale != 1`` pass through."""
    from device.synth import sensor as S
    orig, got, depth = S.render_scene, [], [0]

    def hooked(scene, geom, rng, sensor, size, scale=1):
        if depth[0] or scale != 1:
            return orig(scene, geom, rng, sensor, size, scale)
        depth[0] += 1
        try:
            frames = S.render_burst(scene, geom, rng, sensor, tuple(size), k, frame_seed,
                                    keep_exposure)
        finally:
            depth[0] -= 1
        got.append(frames)
        return frames[0]

    S.render_scene = hooked
    try:
        yield got
    finally:
        S.render_scene = orig


def to_u8(frame: np.ndarray) -> np.ndarray:
    """A float frame as ``write_burst`` stores it (PNG, 8 bits)."""
    from device.sources.replay import sensor_u8
    return sensor_u8(frame)


def presentation_frames(synth, sensor: str, classes: list, cls: str, i: int, seed: int,
                        people: int, k: int, keep_exposure: bool = False) -> list:
    """The k + 1 uint8 sensor frames of presentation ``i`` of ``cls`` (frame 0 = its capture)."""
    from device.synth.presentation_sets import _KIND_PRES, render_presentation
    ci = classes.index(cls)
    with sensor_bursts(k, [seed, _KIND_PRES, ci, i, FRAME_KIND], keep_exposure) as got:
        render_presentation(synth, sensor, cls, ci, i, seed, people)
    if len(got) != 1:
        raise RuntimeError(f"{cls} {i}: {len(got)} sensor captures, one expected")
    return [to_u8(f) for f in got[0]]
