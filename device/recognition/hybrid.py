"""The hybrid palm feature: the learned cells beside the classical Gabor cells, one shift search.
``palmgate evaluate``'s default matcher, and the gate's default feature (``[match] feature =
"hybrid"``; docs/recognition.md says why).

    ROI ──classical cells (cells_pca.npz: Gabor soft orientation, 7x7 cells, PCA 16)─► (25, 49, 16)
        ──learned cells (recognition_cells*.onnx, multi-view fusion, seed 000)───────► (25, 49, 16)
    concatenated along the cells ─────────────────────────────────────────────► (25, 98, 16)

G = 98 unit sub-features of 16 dims, so the rotate-and-drop template protection (seed 002) and
the shift-search matcher take it unchanged; importance = (1 - LEARNED_WEIGHT) x the classical
cells' importance beside LEARNED_WEIGHT x the learned cells' importance. Both halves share the
25 window shifts, so the score is one shift search over all 98 cells: the best window is the
one both halves agree on.
Views: the learned half goes through the multi-view attention fusion model (seed 000); the
classical half takes the same per-view, per-cell weights the fusion gave the learned cells of
the same windows (softmax over the views of attention x trust x quality x agreement; seed 000:
"values from all"), so a view the fusion distrusts counts little in both halves
(``cells.weighted_fusion``); ``classical_fusion="mean"`` keeps the per-cell mean of the views
instead (the earlier form, an ablation). Before the fusion the views are aligned on the cell
grid (``view_alignment``: a view placed a few pixels off the others is moved by its best
relative window shift, the windows it cannot fill left out of it); both halves are then the
weighted sums of the aligned views' cells with the fusion's weights (``align=False``: the
views as they come, the form before).

The two halves make different errors (README, "Learned palm feature"): on the Tongji validation
palms the classical cells alone reach EER 0.117 %, the learned cells alone 0.37 %, and the two
in one search 0.067 % (`palmgate evaluate`, one view, fp32).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from device.models.model import DEFAULT_MODELS_DIR
from device.recognition.cells import CellExtractor, full_responses, weighted_fusion
from device.recognition.learned import LearnedExtractor, ViewSetFeature, net_input
from device.recognition.view_alignment import align_views, masked_weights

# share of the score given to the learned half; chosen on the Tongji validation palms from
# 0.1, 0.2, ..., 0.9 as the weight with the highest TAR at FAR 1e-4 in the worse of fp32 and
# int8 (0.3 to 0.5 all meet issue 3's one-view targets there in both precisions; README)
LEARNED_WEIGHT = 0.3
CLASSICAL_FUSIONS = ("weights", "mean")


def hybrid_importance(classical: np.ndarray, learned: np.ndarray,
                      learned_weight: float = LEARNED_WEIGHT) -> np.ndarray:
    """(G1 + G2,) weights summing to 1: each half's own importance scaled to its share."""
    if not 0.0 <= learned_weight <= 1.0:
        raise ValueError(f"learned_weight must be in [0, 1], got {learned_weight}")
    c = np.asarray(classical, np.float64)
    le = np.asarray(learned, np.float64)
    return np.concatenate([(1 - learned_weight) * c / c.sum(),
                           learned_weight * le / le.sum()]).astype(np.float32)


class HybridExtractor(ViewSetFeature):
    """Classical and learned cells side by side, with CellExtractor's interface.

    ``precision``: "fp32" or "int8" (the learned cell network; the classical half is numpy).
    ``fusion``: False combines the learned half's views by their mean, like the classical half.
    ``classical_fusion``: "weights" (default) fuses the classical cells with the learned
    fusion's view weights, "mean" by the per-cell mean of the views.
    ``align``: align the views on the cell grid before the fusion (``view_alignment``).
    """

    dim = 16

    def __init__(self, models_dir: str | Path = DEFAULT_MODELS_DIR, precision: str = "fp32",
                 fusion: bool = True, threads: int = 0, verify: bool = True,
                 learned_weight: float = LEARNED_WEIGHT, classical_fusion: str = "weights",
                 align: bool = True):
        if classical_fusion not in CLASSICAL_FUSIONS:
            raise ValueError(f"classical_fusion must be one of {CLASSICAL_FUSIONS}, got "
                             f"{classical_fusion!r}")
        self.precision = precision
        self.classical_fusion = classical_fusion
        self.align = align
        self.classical = CellExtractor(models_dir, verify=verify)
        self.learned = LearnedExtractor(models_dir, precision, fusion, threads, verify)
        self.split = self.classical.n_cells
        self.n_cells = self.split + self.learned.n_cells
        self.learned_weight = learned_weight
        self._importance = hybrid_importance(self.classical.importance,
                                             self.learned.importance, learned_weight)
        self._shifts = self.classical.shifts       # both: shift_offsets(MAX_SHIFT)
        self._zero = self.classical.zero_shift

    def cells(self, rois) -> np.ndarray:
        """(N, 25, 98, 16) unit cells of every ROI at every window shift (no view fusion)."""
        rois = list(rois)
        if not rois:
            return np.zeros((0, len(self._shifts), self.n_cells, self.dim), np.float32)
        # both halves read the Gabor bank of cells_pca.npz: one filtering of each ROI serves both
        c, x = [], []
        for roi in rois:
            r = full_responses(roi, self.classical.bank)
            c.append(self.classical.query_from_responses(r))
            x.append(net_input(roi, self.learned.bank, self.learned.beta, r))
        return np.concatenate([np.stack(c), self.learned.cells_of_inputs(x)],
                              axis=2).astype(np.float32)

    def fuse(self, cells: np.ndarray) -> np.ndarray:
        """Views (V, 25, 98, 16) of one palm -> (25, 98, 16). V >= 1."""
        cells = np.asarray(cells, np.float32)
        if cells.ndim != 4 or cells.shape[0] < 1 or cells.shape[2] != self.n_cells:
            raise ValueError(f"fusion needs at least one view: cells of shape (V>=1, "
                             f"{len(self._shifts)}, {self.n_cells}, {self.dim})")
        inside = np.ones(cells.shape[:2], bool)
        if self.align and len(cells) > 1:
            cells, inside = align_views(cells, self._importance)
        le, w = self.learned.fuse_weights(cells[:, :, self.split:])
        if not inside.all():       # the fusion's output is its weighted sum of the views
            w = masked_weights(w, inside)
            le = weighted_fusion(cells[:, :, self.split:], w)
        c = cells[:, :, :self.split]
        c = (weighted_fusion(c, w) if self.classical_fusion == "weights"
             else weighted_fusion(c, masked_weights(np.ones_like(w), inside)))
        return np.concatenate([c, le], axis=1).astype(np.float32)
