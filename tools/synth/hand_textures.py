"""Palm-print textures for the synthetic hands: subject k of ``hands --seed S`` carries the palm
print of subject k of ``palms --seed S`` (same candidate, same fine skin texture)."""
from __future__ import annotations

import numpy as np

from tools.synth.palm_sets import subject_rng
from tools.synth.palms import Identity, PalmSynthesizer, new_identity


def palm_texture_fn(synth: PalmSynthesizer, seed: int):
    """``fn(subject_index, sample_index, rng) -> (128,128) float32`` in [0,1], unposed (the hand
    renderer poses the palm); identities are drawn once per subject."""
    cache: dict[int, Identity] = {}

    def fn(subject: int, sample: int, rng: np.random.Generator) -> np.ndarray:
        if subject not in cache:
            cache.clear()  # subjects are written one after another
            cache[subject] = new_identity(subject_rng(seed, subject), config=synth.config)
        ident = cache[subject]
        palm = synth.generate(synth.candidate_maps(ident, rng, 1), rng)
        return synth.surface(ident, palm)[0]

    return fn
