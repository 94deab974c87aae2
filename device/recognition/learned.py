"""Learned palm-cell feature with the multi-view attention fusion (seed 000); onnxruntime +
numpy + OpenCV.

    ROI 128x128 ──6 Gabor filters (models/cells_pca.npz bank), softmax(-beta r) at every pixel──►
        input (7, 64, 64): the ROI (standardised) + 6 soft orientation maps, averaged 2x2
        ──models/recognition_cells*.onnx (dense conv net -> 32x32x16 map, 4x4 average pooling at
        the 25 window offsets, L2 per cell)──► (25, 49, 16) unit cells of every shifted window
    views (V >= 1) of one palm ──models/recognition_fusion*.onnx (multi-view attention
        fusion, seed 000: keys from the palm-centre cells, queries from the other cells,
        values from all, key-key / query-query / key-query similarities fused into the
        attention weights, FF/BN residual)──►
        (25, 49, 16) fused unit cells + (49,) importance

``LearnedExtractor`` has the CellExtractor interface (template / query / importance / shifts /
both), so the matchers and the rotate-and-drop template protection (seed 002) take it
unchanged; ``fuse(cells)`` is the multi-view entry point. The geometry (32x32 map, 7x7 cells,
±2 map px = ±8 image px shifts) is the classical feature's (device.recognition.cells).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from device.models.model import DEFAULT_MODELS_DIR, Model, ModelError
from device.recognition.cells import (CELLS_FILE, GRID, MAX_SHIFT, ROI_SIZE, FeatureError,
                                      ShiftGridFeature, full_responses, load_cell_params,
                                      shift_offsets, unit_cells)

CELL_MODEL = {"fp32": "recognition_cells.onnx", "int8": "recognition_cells_int8.onnx"}
FUSION_MODEL = {"fp32": "recognition_fusion.onnx", "int8": "recognition_fusion_int8.onnx"}
N_SHIFTS = (2 * MAX_SHIFT + 1) ** 2


def fusion_file(precision: str, models_dir: str | Path = DEFAULT_MODELS_DIR) -> str:
    """The view-fusion file of ``precision``: its int8 file where the manifest lists one,
    else the fp32 file (logged: the gate's precision is int8 by default)."""
    name = FUSION_MODEL[precision]
    if precision != "fp32":
        from device.models.model import load_manifest
        try:
            listed = name in load_manifest(models_dir).get("models", {})
        except Exception:        # noqa: BLE001 - Model() reports a broken manifest
            listed = True
        if name == FUSION_MODEL["fp32"] or not listed:
            logging.getLogger("palmgate.recognition").info(
                "no %s view-fusion file in %s: the fusion runs fp32 (%s)", precision,
                models_dir, FUSION_MODEL["fp32"])
            return FUSION_MODEL["fp32"]
    return name
# first region = the palm centre, the "preset part" of the multi-view attention fusion
# (seed 000): the central 3x3 of the 7x7 cells
CENTRE = np.array([r * GRID + c for r in range(2, 5) for c in range(2, 5)])
OTHER = np.array([g for g in range(GRID * GRID) if g not in set(CENTRE.tolist())])


def finite_cells(c: np.ndarray) -> np.ndarray:
    """Cells with every non-finite (or overflowed, norm > 1.5) cell set to zero (it then adds
    nothing to a cosine). The
    int8 cell network overflowed on a few cells of some views (2 of the 1,225 cells of one
    degraded Tongji validation view gave inf/NaN; fp32 did not): without this a NaN would
    reach the fused feature and every score of the capture."""
    n = np.linalg.norm(c.astype(np.float64), axis=-1)
    bad = ~np.isfinite(n) | (n > 1.5)          # unit cells; an overflow is far off
    if bad.any():
        c = c.copy()
        c[bad] = 0.0
    return c


def load_bank(models_dir: str | Path = DEFAULT_MODELS_DIR, verify: bool = True):
    """The Gabor bank and softmax sharpness of the shipped classical feature file."""
    p = load_cell_params(models_dir, CELLS_FILE, verify)
    return p["gabor"].astype(np.float32), float(p["beta"])


def net_input(roi: np.ndarray, bank: np.ndarray, beta: float,
              responses: np.ndarray | None = None) -> np.ndarray:
    """(7, 64, 64) float32: the standardised ROI and its six soft orientation maps (each minus
    1/6, so a flat area is zero), computed at 128x128 and averaged 2x2. ``responses``: the
    ROI's ``full_responses`` with ``bank`` when the caller has them already."""
    img = np.asarray(roi, np.float32)
    if img.shape != (ROI_SIZE, ROI_SIZE):
        raise FeatureError(f"expected a {ROI_SIZE}x{ROI_SIZE} grey ROI, got {img.shape}")
    r = full_responses(img, bank) if responses is None else responses
    z = -beta * r
    z -= z.max(0, keepdims=True)
    e = np.exp(z)
    soft = e / e.sum(0, keepdims=True) - 1.0 / len(bank)
    g = (img - img.mean()) / (img.std() + 1e-3)
    x = np.concatenate([g[None], soft]).astype(np.float32)
    # 2x2 average: the net reads 64x64 (cells pool 16x16 image px; a 2-core budget)
    return x.reshape(7, ROI_SIZE // 2, 2, ROI_SIZE // 2, 2).mean((2, 4))


class ViewSetFeature(ShiftGridFeature):
    """A cell feature whose views are fused: the subclass gives ``cells(rois) -> (N, S, G, D)``
    (each ROI alone) and ``fuse(cells (V, S, G, D)) -> (S, G, D)``; this gives the
    CellExtractor interface (template / query of one ROI) from the view-set forms
    (:class:`ShiftGridFeature`)."""

    def query(self, roi: np.ndarray) -> np.ndarray:
        return self.query_set([roi])

    def template(self, roi: np.ndarray) -> np.ndarray:
        return self.template_set([roi])

    def both(self, rois) -> tuple[np.ndarray, np.ndarray]:
        """Single-view templates (N, G, D) and queries (N, S, G, D)."""
        c = self.cells(rois)
        q = np.stack([self.fuse(c[k:k + 1]) for k in range(len(c))]) if len(c) else c
        return q[:, self._zero], q

    def templates(self, rois) -> np.ndarray:
        return self.both(rois)[0]

    def queries(self, rois) -> np.ndarray:
        return self.both(rois)[1]


class LearnedExtractor(ViewSetFeature):
    """The learned cells (+ the multi-view attention fusion, seed 000) with CellExtractor's
    interface.

    ``precision``: "fp32" or "int8" (the static-QDQ cell network and fusion).
    ``fusion``: False gives the cell network alone (cells of one view, uniform importance).
    """

    dim = 16
    n_cells = GRID * GRID

    def __init__(self, models_dir: str | Path = DEFAULT_MODELS_DIR, precision: str = "fp32",
                 fusion: bool = True, threads: int = 0, verify: bool = True,
                 arena: bool = False):
        if precision not in CELL_MODEL:
            raise ValueError(f"precision must be fp32 or int8, got {precision!r}")
        self.precision = precision
        self.bank, self.beta = load_bank(models_dir, verify)
        try:
            # no onnxruntime arena (``arena``): it keeps its high-water mark resident
            self.cells_model = Model(CELL_MODEL[precision], models_dir, threads, verify,
                                     arena=arena)
            self.fusion_model = (Model(fusion_file(precision, models_dir), models_dir, threads,
                                       verify, arena=arena)
                                 if fusion else None)
        except ModelError as e:
            raise FeatureError(f"{e} (train it with `python -m tools.train recognition`)") \
                from None
        self._shifts = shift_offsets(MAX_SHIFT)
        self._zero = int(np.flatnonzero((self._shifts == 0).all(1))[0])
        if self.fusion_model is None:
            self._importance = np.full(self.n_cells, 1.0 / self.n_cells, np.float32)
        else:
            _, imp, _ = self._fuse(np.zeros((1, N_SHIFTS, self.n_cells, self.dim), np.float32)
                                + 0.25)
            self._importance = imp


    def cells(self, rois, batch: int = 32) -> np.ndarray:
        """(N, 25, 49, 16) unit cells of every ROI at every window shift (no fusion)."""
        return self.cells_of_inputs([net_input(r, self.bank, self.beta) for r in rois], batch)

    def cells_of_inputs(self, inputs, batch: int = 32) -> np.ndarray:
        """``cells`` from the ROIs' ``net_input`` arrays."""
        out = [self.cells_model(x=np.stack(inputs[k:k + batch]))["cells"]
               for k in range(0, len(inputs), batch)]
        if not out:
            return np.zeros((0, N_SHIFTS, self.n_cells, self.dim), np.float32)
        return finite_cells(np.concatenate(out))

    def _fuse(self, cells: np.ndarray):
        o = self.fusion_model(cells=cells)
        return (o["fused"], (o["importance"] / o["importance"].sum()).astype(np.float32),
                o.get("view_weights"))

    def fuse(self, cells: np.ndarray) -> np.ndarray:
        """Views (V, 25, 49, 16) of one palm -> fused (25, 49, 16) unit cells. V >= 1."""
        return self.fuse_weights(cells)[0]

    def fuse_weights(self, cells: np.ndarray):
        """Views (V, 25, 49, 16) of one palm -> (fused (25, 49, 16) unit cells, the weight of
        each view's cell in each fused cell (V, 25, 49), a distribution over the views). The
        weights are the fusion's (attention x trust x quality x agreement, seed 000); the mean
        of the views (1/V each) without a fusion model or with a file that does not give
        them."""
        cells = np.asarray(cells, np.float32)
        if cells.ndim != 4 or cells.shape[0] < 1:
            raise ValueError("fusion needs at least one view: cells of shape (V>=1, 25, 49, 16)")
        if self.fusion_model is not None:
            fused, _, w = self._fuse(cells)
            if w is not None:
                return fused, np.asarray(w, np.float32)
        else:
            fused = unit_cells(cells.mean(0))
        return fused, np.full(cells.shape[:3], 1.0 / len(cells), np.float32)
