"""Palm-print textures for the synthetic hands: subject k of ``hands --seed S`` carries the palm
print of subject k of ``palms --seed S`` (same candidate, same fine skin texture)."""
from __future__ import annotations

import numpy as np

from device.synth.palm_sets import subject_identity
from device.synth.palms import Identity, PalmSynthesizer


def palm_texture_fn(synth: PalmSynthesizer, seed: int):
    """``fn(subject_index, sample_index, rng) -> (128,128) float32`` in [0,1], unposed (the hand
    renderer poses the palm); identities are drawn once per subject."""
    cache: dict[int, Identity] = {}

    def fn(subject: int, sample: int, rng: np.random.Generator) -> np.ndarray:
        if subject not in cache:
            cache.clear()  # subjects are written one after another
            cache[subject] = subject_identity(seed, subject, synth)[0]
        ident = cache[subject]
        return synth.palms(ident, 1, rng)[0]

    return fn
