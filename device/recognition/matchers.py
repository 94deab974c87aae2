"""Registry of palm matchers that ``palmgate evaluate`` can run on any data set. Each has
``encode(images) -> codes`` and ``scores(gallery_codes, probe_codes) -> (Ng, Np)`` similarities
(higher = more alike)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.recognition.orientation_codes import BOCV, CompCode


@dataclass
class CellCodes:
    templates: np.ndarray  # (N, G, D) centred-window cells
    queries: np.ndarray    # (N, S, G, D) shifted-window cells


class CellMatcher:
    """The gate's own feature: G palm cells of 16 dims with a shift search (device.recognition
    .cells), matched without protection."""

    name = "cells"

    def __init__(self):
        from device.recognition.cells import CellExtractor
        self.extractor = CellExtractor()

    def encode(self, images: np.ndarray) -> CellCodes:
        t, q = self.extractor.both(images)
        return CellCodes(t, q)

    def scores(self, gallery: CellCodes, probes: CellCodes) -> np.ndarray:
        from device.recognition.cells import shift_max_scores
        return shift_max_scores(probes.queries, gallery.templates,
                                self.extractor.importance).T


class ProtectedCellMatcher(CellMatcher):
    """The gate as it runs: every gallery image enrolled as a seed-002 rotate-and-drop template
    under its own fresh key (the shipped protection defaults), every probe matched against it
    with the protected shift search. Scores are not symmetric: rows are the enrolled side."""

    name = "cells-protected"
    symmetric = False

    def __init__(self, config=None):
        super().__init__()
        from device.protect.defaults import DEFAULT_CONFIG
        self.config = config or DEFAULT_CONFIG

    def scores(self, gallery: CellCodes, probes: CellCodes) -> np.ndarray:
        from device.protect.core import secure_rng
        from device.protect.evaluate import protected_block
        s, _, _ = protected_block(self.config, self.extractor.importance, gallery.templates,
                                  probes.queries, secure_rng())
        return s.T


MATCHERS = {"cells": CellMatcher, "cells-protected": ProtectedCellMatcher, "bocv": BOCV,
            "compcode": CompCode}
DEFAULT_MATCHER = "cells"


def get_matcher(name: str):
    if name not in MATCHERS:
        raise ValueError(f"unknown matcher {name!r}; choose one of {sorted(MATCHERS)}")
    return MATCHERS[name]()


def subset(codes, idx):
    """Rows ``idx`` of codes of any matcher."""
    if isinstance(codes, CellCodes):
        return CellCodes(codes.templates[idx], codes.queries[idx])
    return codes[idx]
