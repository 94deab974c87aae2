"""Write synthetic palm ROI identities in the standard layout and check them."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from device.sources.layout import sample_path
from device.synth.palms import PalmSynthesizer, new_identity


def subject_rng(seed: int, subject: int) -> np.random.Generator:
    """The random stream of one subject: any subset of a set regenerates identically."""
    return np.random.default_rng([seed, subject])


def subject_hand(subject: int) -> str:
    """Even subjects are right palms, odd ones left (as the synthetic hands are)."""
    return "right" if subject % 2 == 0 else "left"


def subject_identity(seed: int, subject: int, synth: PalmSynthesizer):
    """The palm identity of subject ``subject`` of a set made with ``seed``, and its rng."""
    rng = subject_rng(seed, subject)
    return new_identity(rng, subject_hand(subject), synth.config), rng


def write_palms(out: Path, subjects: int, sessions: int, samples: int, seed: int,
                synth: PalmSynthesizer, progress=None, first_subject: int = 0) -> dict:
    """``out/<subject:04d>/<session>_<sample:02d>.png`` plus ``out/identities.json`` (label,
    hand and candidate parameters of every subject)."""
    out = Path(out)
    meta = {"seed": seed, "sessions": sessions, "samples": samples, "identities": {}}
    for k in range(first_subject, first_subject + subjects):
        ident, rng = subject_identity(seed, k, synth)
        imgs = synth.samples(ident, sessions * samples, rng)
        name = f"{k:04d}"
        for j, im in enumerate(imgs):
            p = sample_path(out, name, j // samples + 1, j % samples + 1)
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), im)
        meta["identities"][name] = {"label": ident.label, "hand": ident.candidate.hand,
                                    "candidate": ident.candidate.params().round(6).tolist()}
        if progress:
            progress(k - first_subject + 1, subjects)
    (out / "identities.json").write_text(json.dumps(meta))
    return meta
