"""Load the real research palm sets into memory with subject-disjoint splits."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.sources.layout import by_subject, scan
from tools.paths import real_dir


@dataclass
class PalmSet:
    """Images (N,H,W) uint8, integer subject labels (N,), session numbers (N,), subject names."""

    images: np.ndarray
    labels: np.ndarray
    sessions: np.ndarray
    subjects: list[str]

    def subset(self, subject_ids) -> "PalmSet":
        keep = np.isin(self.labels, np.asarray(list(subject_ids)))
        return PalmSet(self.images[keep], self.labels[keep], self.sessions[keep], self.subjects)


def load_layout(root, size: int = 128, max_subjects: int | None = None) -> PalmSet:
    """Read a standard-layout folder of grey images, resized to ``size`` x ``size``."""
    groups = by_subject(scan(root))
    names = sorted(groups)[:max_subjects] if max_subjects else sorted(groups)
    imgs, labels, sessions = [], [], []
    for k, name in enumerate(names):
        for ref in groups[name]:
            im = cv2.imread(str(ref.path), cv2.IMREAD_GRAYSCALE)
            if im is None:
                raise ValueError(f"cannot decode image {ref.path}")
            if im.shape != (size, size):
                im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
            imgs.append(im)
            labels.append(k)
            sessions.append(ref.session)
    return PalmSet(np.stack(imgs), np.asarray(labels), np.asarray(sessions), names)


def tongji(max_subjects: int | None = None) -> PalmSet:
    """The Tongji ROI set (300 palms x 2 sessions x 10), 128x128."""
    return load_layout(real_dir("tongji"), 128, max_subjects)


def split_subjects(n_subjects: int, val_fraction: float = 0.2, seed: int = 0):
    """Subject-disjoint (train, validation) id arrays, deterministic for a seed."""
    perm = np.random.default_rng(seed).permutation(n_subjects)
    n_val = max(1, int(round(n_subjects * val_fraction)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
