"""Is a synthetic palm set usable? Identity separation under the real-trained palm identity
extractor (EER, d') and pixel/frequency statistics against real ROIs."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.sources.layout import by_subject, scan
from device.eval.metrics import d_prime, eer
from device.models.model import Model
from device.synth.stats import compare_stats, image_stats

IDNET = "palm_idnet.onnx"


def load_grey(paths, size: int = 128) -> np.ndarray:
    out = []
    for p in paths:
        im = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if im is None:
            raise ValueError(f"cannot decode image {p}")
        out.append(cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
                   if im.shape != (size, size) else im)
    return np.stack(out)


def embed(images: np.ndarray, model: Model | None = None) -> np.ndarray:
    model = model or Model(IDNET)
    x = images.astype(np.float32)[:, None] / 255.0
    return np.concatenate([model(roi=x[k:k + 128])["embedding"] for k in range(0, len(x), 128)])


def cross_session_scores(emb: np.ndarray, subjects: np.ndarray, sessions: np.ndarray):
    """Genuine and impostor cosines of every session-1 sample against every session-2 one."""
    a, b = sessions == 1, sessions == 2
    s = emb[a] @ emb[b].T
    same = subjects[a][:, None] == subjects[b][None, :]
    return s[same], s[~same]


def identity_separation(root: Path, max_subjects: int = 1000) -> dict:
    groups = by_subject(scan(root))
    names = sorted(groups)[:max_subjects]
    refs = [r for n in names for r in groups[n]]
    emb = embed(load_grey([r.path for r in refs]))
    subj = np.array([names.index(r.subject) for r in refs])
    sess = np.array([r.session for r in refs])
    g, i = cross_session_scores(emb, subj, sess)
    return {"subjects": len(names), "eer": eer(g, i), "d_prime": d_prime(g, i),
            "genuine_mean": float(g.mean()), "impostor_mean": float(i.mean()),
            "n_genuine": int(g.size), "n_impostor": int(i.size)}


def check_palm_set(src: Path, real: Path | None = None, max_subjects: int = 1000,
                   stats_images: int = 2000) -> dict:
    report = {"identity": identity_separation(src, max_subjects)}
    rng = np.random.default_rng(0)
    def sample_stats(root):
        refs = scan(root)
        pick = rng.choice(len(refs), min(stats_images, len(refs)), replace=False)
        return image_stats(load_grey([refs[k].path for k in pick]))
    report["stats"] = {"synthetic": sample_stats(src)}
    if real is not None:
        report["stats"]["real"] = sample_stats(real)
        report["stats"]["comparison"] = compare_stats(report["stats"]["synthetic"],
                                                      report["stats"]["real"])
    return report
