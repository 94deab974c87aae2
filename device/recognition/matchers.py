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
    """The gate as it runs: every gallery image enrolled as a rotate-and-drop protected
    template (seed 002) under its own fresh key (the shipped protection defaults), every probe
    matched against it with the protected shift search. Scores are not symmetric: rows are the
    enrolled side."""

    name = "cells-protected"
    symmetric = False

    def __init__(self, config=None):
        super().__init__()
        from device.protect.defaults import DEFAULT_CONFIG
        self.config = config or DEFAULT_CONFIG

    def scores(self, gallery: CellCodes, probes: CellCodes) -> np.ndarray:
        from device.protect.core import secure_rng
        from device.protect.gallery import enrol_and_score
        s, _, _ = enrol_and_score(self.config, self.extractor.importance, gallery.templates,
                                  probes.queries, secure_rng())
        return s.T


def _learned(**kw):
    from device.recognition.learned import LearnedExtractor
    return LearnedExtractor(**kw)


def _hybrid(**kw):
    from device.recognition.hybrid import HybridExtractor
    return HybridExtractor(**kw)


class LearnedMatcher(CellMatcher):
    """The learned palm cells with the multi-view attention fusion (seed 000;
    device.recognition.learned, models/recognition_*.onnx). One view: the fused form of that
    view; with ``fuse_views`` ``palmgate evaluate --views N`` fuses the N views of a capture
    into one feature."""

    name = "learned"
    fuse_views = True
    fusion = True

    feature = staticmethod(_learned)

    def __init__(self, precision: str = "fp32"):
        self.extractor = self.feature(precision=precision, fusion=self.fusion)

    def encode_sets(self, images: np.ndarray, sets) -> CellCodes:
        """One fused code per set of image indices (the views of one capture)."""
        c = self.extractor.cells(images)
        q = np.stack([self.extractor.fuse(c[list(s)]) for s in sets])
        return CellCodes(q[:, self.extractor.zero_shift], q)


class LearnedCellsMatcher(LearnedMatcher):
    """The learned cells alone, no fusion (views combined at score level, as for cells)."""

    name = "learned-cells"
    fuse_views = False
    fusion = False


class ProtectedLearnedMatcher(ProtectedCellMatcher):
    """The learned feature under the rotate-and-drop template protection (seed 002), as
    cells-protected."""

    name = "learned-protected"
    fuse_views = True

    def __init__(self, precision: str = "fp32", config=None):
        from device.protect.defaults import DEFAULT_CONFIG
        self.extractor = self.feature(precision=precision)
        self.config = config or DEFAULT_CONFIG

    feature = staticmethod(_learned)
    encode_sets = LearnedMatcher.encode_sets


class HybridMatcher(LearnedMatcher):
    """The classical cells and the learned cells (multi-view attention fusion, seed 000) in
    one shift search (device.recognition.hybrid; the gate's with [match] feature = "hybrid");
    --precision picks the learned net's file."""

    name = "hybrid"
    feature = staticmethod(_hybrid)


class ProtectedHybridMatcher(ProtectedLearnedMatcher):
    """The hybrid feature under the rotate-and-drop template protection (seed 002), as the
    gate stores it."""

    name = "hybrid-protected"
    feature = staticmethod(_hybrid)


MATCHERS = {"cells": CellMatcher, "cells-protected": ProtectedCellMatcher, "bocv": BOCV,
            "compcode": CompCode, "learned": LearnedMatcher,
            "learned-cells": LearnedCellsMatcher, "learned-protected": ProtectedLearnedMatcher,
            "hybrid": HybridMatcher, "hybrid-protected": ProtectedHybridMatcher}
# the matchers with a learned network: they take precision="fp32"|"int8"
LEARNED = ("learned", "learned-cells", "learned-protected", "hybrid", "hybrid-protected")
# each matcher's protected form (palmgate evaluate --protected)
PROTECTED = {"cells": "cells-protected", "cells-protected": "cells-protected",
             "learned": "learned-protected", "learned-protected": "learned-protected",
             "hybrid": "hybrid-protected", "hybrid-protected": "hybrid-protected"}
# palmgate evaluate's default: the most accurate feature the gate offers ([match] feature)
DEFAULT_MATCHER = "hybrid"


def get_matcher(name: str, precision: str = "fp32"):
    if name not in MATCHERS:
        raise ValueError(f"unknown matcher {name!r}; choose one of {sorted(MATCHERS)}")
    if name in LEARNED:
        return MATCHERS[name](precision=precision)
    if precision != "fp32":
        raise ValueError(f"--precision {precision} applies to the learned matchers "
                         f"{list(LEARNED)}; {name!r} is classical and has no int8 form")
    return MATCHERS[name]()


def subset(codes, idx):
    """Rows ``idx`` of codes of any matcher."""
    if isinstance(codes, CellCodes):
        return CellCodes(codes.templates[idx], codes.queries[idx])
    return codes[idx]
