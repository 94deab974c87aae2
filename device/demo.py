"""The embedded-default demo (no camera, no relay): synthetic palms through the shipped models."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def run_demo(subjects: int = 8, samples: int = 4, seed: int = 0, out: str | None = None) -> dict:
    from device.metrics import d_prime, eer
    from tools.synth.check import cross_session_scores, embed
    from tools.synth.palm_sets import write_palms
    from tools.synth.palms import PalmSynthesizer
    from tools.synth.sheet import contact_sheet

    root = Path(out) if out else Path(tempfile.mkdtemp(prefix="palmgate-demo-"))
    write_palms(root, subjects, 2, samples, seed, PalmSynthesizer())
    from device.layout import scan
    refs = scan(root)
    import cv2
    imgs = np.stack([cv2.imread(str(r.path), cv2.IMREAD_GRAYSCALE) for r in refs])
    emb = embed(imgs)
    subj = np.array([int(r.subject) for r in refs])
    sess = np.array([r.session for r in refs])
    g, i = cross_session_scores(emb, subj, sess)
    sheet = root / "sheet.png"
    contact_sheet(root, sheet, max_images=32)
    return {"synthetic_palms": str(root), "contact_sheet": str(sheet), "subjects": subjects,
            "genuine_mean_cosine": float(g.mean()), "impostor_mean_cosine": float(i.mean()),
            "eer": eer(g, i), "d_prime": d_prime(g, i)}
