"""Palm prints for the sensor sets' identities (the liveness, matched-pair and SR set writers
and the presence check's frames), so that an NIR frame shows the palm print of the hand it
shows or copies when the world draws it (:func:`device.synth.bound.palm_print_on`).

Identity ``k`` of a set of seed ``s`` carries the palm print of subject ``k`` of ``python -m
tools.synth palms --seed s`` (:func:`device.synth.palm_sets.subject_identity`, the same
generator the visible views use); each frame draws its own sample of that identity (the lines
jitter within the identity's tolerance, as between two captures) from a generator of its own,
so the scene's draws are those of the world without the palm print. The attacker of a species
laid over the attacker's own live palm is another person: identity ``ATTACKER_BASE + k``, which
no set of fewer identities uses.
"""
from __future__ import annotations

import numpy as np

ATTACKER_BASE = 1_000_000
"""Subject index of the attacker of identity ``k``: ``ATTACKER_BASE + k``."""
_KIND_PRINT = 7                     # after sensor_sets' _KIND_* (1-6)


class SetPalmPrints:
    """Palm prints of the identities of one set (``seed``); the palm generator loads once."""

    def __init__(self, seed: int, synth=None):
        self.seed = int(seed)
        self._synth = synth
        self._ids: dict = {}

    @property
    def synth(self):
        if self._synth is None:
            from device.synth.palms import PalmSynthesizer
            self._synth = PalmSynthesizer(threads=1)
        return self._synth

    def _identity(self, subject: int):
        if subject not in self._ids:
            from device.synth.palm_sets import subject_identity
            self._ids[subject] = subject_identity(self.seed, subject, self.synth)[0]
        return self._ids[subject]

    def texture(self, subject: int, *key: int) -> np.ndarray:
        """A palm-print sample (128x128 float32 in [0, 1]) of ``subject``, drawn from a
        generator seeded by ``(seed, kind, subject, *key)``."""
        rng = np.random.default_rng([self.seed, _KIND_PRINT, int(subject), *map(int, key)])
        return self.synth.palms(self._identity(subject), 1, rng)[0]

    def pair(self, subject: int, *key: int) -> tuple[np.ndarray, np.ndarray]:
        """(the victim's print, the attacker's own print) for one frame of ``subject``."""
        return self.texture(subject, *key), self.texture(ATTACKER_BASE + subject, *key)


def set_prints(sensor: str, seed: int) -> SetPalmPrints | None:
    """The palm prints of a set of ``sensor`` where its frames show the palm print, else None
    (the set is then rendered as without them and the palm generator is not loaded)."""
    from device.synth.bound import palm_print_on
    return SetPalmPrints(seed) if palm_print_on(sensor) else None


def textures(prints: SetPalmPrints | None, subject: int, *key: int) -> dict:
    """``{"palm_texture": ..., "attacker_texture": ...}`` for :func:`device.synth.attacks.
    scene_for` (empty without prints)."""
    if prints is None:
        return {}
    tex, own = prints.pair(subject, *key)
    return {"palm_texture": tex, "attacker_texture": own}
