"""Classical palm-cell feature (../shared/FINDINGS.md): soft competitive orientation weights
pooled into a 7x7 grid of cells, each cell projected to 16 dims by a PCA and L2-normalised.

    ROI 128x128 ──6 Gabor filters, sampled every 4 px──► 32x32x6 responses
        ──softmax(-beta * response) over the 6 orientations──► soft orientation weights
        ──central 28x28 window, 4x4 map pixels per cell──► 7x7 cells x 96 raw values
        ──(raw - mean) @ PCA (96 -> 16), L2 per cell──► (G=49, 16) sub-features

The template comes from the centred window; a query from the 25 windows shifted by up to
±2 map pixels (±8 image px), so ``query(roi)[s, g]`` is the cell that lands on template cell
``g`` under shift ``s``. The score of a query against a template is the best, over shifts, of
the importance-weighted mean cell cosine.

Everything the extractor needs (Gabor kernels, PCA, mean, importance, the constants) lives in
one file, ``models/cells_pca.npz``, checked against its sha256 in ``models/manifest.json``.
``FeatureExtractor`` is the seam the learned fusion model will plug into. numpy + OpenCV.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from device.models.model import DEFAULT_MODELS_DIR, ModelError, verified_bytes

from device.recognition.files import CELLS_FILE, UNIT_CELLS_FILE  # noqa: F401
UNIT_EPS = 0.5        # norm floor of unit_orientation (median response norm ~1.6 on Tongji;
#                       0.1..1.0 give the same validation TAR at FAR 1e-4)

# Geometry of the classical cell feature (also stored in the npz and checked on load).
ROI_SIZE = 128
STRIDE = 4            # Gabor responses sampled every STRIDE px -> 32x32 map
OFFSET = 2            # first sampled pixel
MAP = ROI_SIZE // STRIDE
CELL = 4              # map pixels per cell side
GRID = 7              # cells per side -> G = 49
MAX_SHIFT = 2         # map pixels (x STRIDE = ±8 image px) -> 25 query windows
N_ORIENT = 6


class FeatureError(RuntimeError):
    """The feature model file is missing, unlisted or altered, or an ROI has the wrong shape."""


@runtime_checkable
class FeatureExtractor(Protocol):
    """What the template protection and the matcher need from a palm feature.

    ``template(roi) -> (G, D)`` unit sub-features of the centred window; ``query(roi) ->
    (S, G, D)`` the same cells of S shifted windows (``shifts[zero_shift]`` is (0, 0));
    ``importance -> (G,)`` non-negative weights that sum to 1.
    """

    n_cells: int
    dim: int

    @property
    def importance(self) -> np.ndarray: ...

    @property
    def shifts(self) -> np.ndarray: ...

    @property
    def zero_shift(self) -> int: ...

    def template(self, roi: np.ndarray) -> np.ndarray: ...

    def query(self, roi: np.ndarray) -> np.ndarray: ...


def shift_offsets(max_shift: int = MAX_SHIFT) -> np.ndarray:
    """(S, 2) window shifts (dy, dx) in map pixels, row-major; the centre one is (0, 0)."""
    r = np.arange(-max_shift, max_shift + 1)
    return np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)


def orientation_responses(roi: np.ndarray, bank: np.ndarray, stride: int = STRIDE,
                          offset: int = OFFSET) -> np.ndarray:
    """Gabor responses of one ROI at every ``stride``-th pixel: (n_orient, H/stride, W/stride).

    Correlation with each kernel (the kernels are point-symmetric, so it equals convolution),
    image borders mirrored (OpenCV's BORDER_REFLECT), then sampled from ``offset`` on.
    """
    return full_responses(roi, bank)[:, offset::stride, offset::stride]


def full_responses(roi: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Gabor responses of one ROI at every pixel: (n_orient, H, W) float32 (borders mirrored)."""
    img = np.asarray(roi, dtype=np.float32)
    if img.ndim != 2:
        raise FeatureError(f"expected a grey ROI (H, W), got shape {img.shape}")
    return np.stack([cv2.filter2D(img, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)
                     for k in bank])


def soft_orientation(responses: np.ndarray, beta: float) -> np.ndarray:
    """Soft competitive code: softmax over orientations of ``-beta * response`` (palm lines are
    dark, so the most negative response marks the line orientation). Same shape, sums to 1."""
    z = -beta * np.asarray(responses, np.float32)
    z = z - z.max(axis=-3, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-3, keepdims=True)


def unit_orientation(responses: np.ndarray, eps: float = UNIT_EPS,
                     axis: int = -3) -> np.ndarray:
    """Each map pixel's responses divided by their norm, r / sqrt(|r|^2 + eps^2), over the
    orientation ``axis``; float64 stays float64 (split mode's reference), anything else is
    computed in float32.  Unlike the softmax it needs only the norm of a pixel's responses,
    which split mode opens in their place."""
    r = np.asarray(responses)
    if r.dtype != np.float64:
        r = r.astype(np.float32)
    return r / np.sqrt((r * r).sum(axis=axis, keepdims=True) + r.dtype.type(eps) ** 2)


def orientation_weights(responses: np.ndarray, activation: str, beta: float) -> np.ndarray:
    """The feature's first non-linearity: "softmax" (soft competitive code) or "unit"."""
    if activation == "softmax":
        return soft_orientation(responses, beta)
    if activation == "unit":
        return unit_orientation(responses)
    raise FeatureError(f"unknown activation {activation!r}")


def raw_cells(weights: np.ndarray, oy: int, ox: int, grid: int = GRID,
              cell: int = CELL) -> np.ndarray:
    """Cells of the window at map offset (oy, ox): (..., n_orient, map, map) -> (..., G, 96)."""
    w = weights[..., oy:oy + grid * cell, ox:ox + grid * cell]
    lead = w.shape[:-3]
    n = w.shape[-3]
    w = w.reshape(*lead, n, grid, cell, grid, cell)
    nd = len(lead)
    perm = tuple(range(nd)) + (nd + 1, nd + 3, nd, nd + 2, nd + 4)
    return w.transpose(perm).reshape(*lead, grid * grid, n * cell * cell)


def project(raw: np.ndarray, mean: np.ndarray, pca: np.ndarray) -> np.ndarray:
    """(raw - mean) @ pca, L2-normalised over the last axis (float32)."""
    z = (np.asarray(raw, np.float32) - mean) @ pca
    n = np.linalg.norm(z, axis=-1, keepdims=True)
    return (z / np.maximum(n, 1e-12)).astype(np.float32)


def load_cell_params(models_dir: str | Path = DEFAULT_MODELS_DIR, name: str = CELLS_FILE,
                     verify: bool = True) -> dict:
    """The arrays of the cell feature file (Gabor bank, beta, PCA, importance), checked against
    the signed manifest's sha256 unless ``verify`` is false."""
    path = Path(models_dir) / name
    if not path.exists():
        raise FeatureError(f"cell feature file not found: {path} (make it with "
                           f"`python -m tools.fit_cells_pca`)")
    if verify:
        try:
            data, _ = verified_bytes(name, models_dir)
        except ModelError as e:
            raise FeatureError(str(e)) from None
    else:
        data = path.read_bytes()
    with np.load(io.BytesIO(data)) as z:
        return {k: z[k] for k in z.files}


class ShiftGridFeature:
    """What the matchers read from a cell-grid feature: ``importance`` (G,), ``shifts`` (S, 2)
    query-window offsets and the index of the zero shift (set by the subclass as ``_importance``,
    ``_shifts``, ``_zero``)."""

    @property
    def importance(self) -> np.ndarray:
        return self._importance

    @property
    def shifts(self) -> np.ndarray:
        return self._shifts

    @property
    def zero_shift(self) -> int:
        return self._zero

    # the views of one presentation: the subclass gives ``cells(rois) -> (N, S, G, D)`` (each
    # ROI alone) and ``fuse(cells (V, S, G, D)) -> (S, G, D)``
    def query_set(self, rois) -> np.ndarray:
        """(S, G, D) fused query of the views of one presentation."""
        rois = list(rois)
        if not rois:
            raise ValueError("empty view set: a palm feature needs at least one view")
        return self.fuse(self.cells(rois))

    def template_set(self, rois) -> np.ndarray:
        """(G, D) fused template of the views of one presentation (its centred window)."""
        return self.query_set(rois)[self._zero]


class CellExtractor(ShiftGridFeature):
    """The classical cell feature of FINDINGS, loaded from ``models/cells_pca.npz``.

    ``CellExtractor()`` verifies the file against the manifest; ``CellExtractor.from_arrays``
    builds one from in-memory parameters (fitting, tests).
    """

    dim = 16

    def __init__(self, models_dir: str | Path = DEFAULT_MODELS_DIR, name: str = CELLS_FILE,
                 verify: bool = True):
        self._init(load_cell_params(models_dir, name, verify))

    @classmethod
    def from_arrays(cls, **params) -> "CellExtractor":
        obj = cls.__new__(cls)
        obj._init({k: np.asarray(v) for k, v in params.items()})
        return obj

    def _init(self, p: dict) -> None:
        self.bank = p["gabor"].astype(np.float32)
        self.beta = float(p["beta"])
        self.activation = str(p.get("activation", "softmax"))
        if self.activation not in ("softmax", "unit"):
            raise FeatureError(f"cell feature file has an unknown activation {self.activation!r}")
        self.mean = p["mean"].astype(np.float32)
        self.pca = p["pca"].astype(np.float32)
        self.dim = int(self.pca.shape[1])
        self.n_cells = GRID * GRID
        imp = p.get("importance")
        imp = np.full(self.n_cells, 1.0 / self.n_cells) if imp is None else imp.astype(np.float64)
        if imp.shape != (self.n_cells,) or np.any(imp < 0):
            raise FeatureError("importance must be (G,) and non-negative")
        self._importance = (imp / imp.sum()).astype(np.float32)
        self._shifts = shift_offsets(MAX_SHIFT)
        self._zero = int(np.flatnonzero((self._shifts == 0).all(1))[0])
        if self.bank.shape[0] != N_ORIENT or self.pca.shape[0] != N_ORIENT * CELL * CELL:
            raise FeatureError("cell feature file has unexpected shapes")

    def params(self) -> dict:
        return {"gabor": self.bank, "beta": np.float32(self.beta), "mean": self.mean,
                "pca": self.pca, "importance": self._importance,
                "activation": np.str_(self.activation)}


    def weights(self, roi: np.ndarray) -> np.ndarray:
        """Orientation weights of one ROI (soft or unit, see ``activation``): (6, 32, 32)."""
        roi = np.asarray(roi)
        if roi.shape != (ROI_SIZE, ROI_SIZE):
            raise FeatureError(f"expected a {ROI_SIZE}x{ROI_SIZE} grey ROI, got {roi.shape}")
        return orientation_weights(orientation_responses(roi, self.bank), self.activation,
                                   self.beta)

    def _window(self, w: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return project(raw_cells(w, MAX_SHIFT + dy, MAX_SHIFT + dx), self.mean, self.pca)

    def template(self, roi: np.ndarray) -> np.ndarray:
        """(G, D) unit cells of the centred window."""
        return self._window(self.weights(roi), 0, 0)

    def _windows(self, w: np.ndarray) -> np.ndarray:
        """(S, G, D) unit cells of the S shifted windows of orientation weights ``w``."""
        return np.stack([self._window(w, dy, dx) for dy, dx in self._shifts])

    def query(self, roi: np.ndarray) -> np.ndarray:
        """(S, G, D) unit cells of the S shifted windows."""
        return self._windows(self.weights(roi))

    def query_from_responses(self, responses: np.ndarray) -> np.ndarray:
        """``query`` from the ROI's Gabor responses at every pixel (``full_responses`` with
        this feature's bank), for a caller that needs them for something else too."""
        return self._windows(orientation_weights(
            responses[:, OFFSET::STRIDE, OFFSET::STRIDE], self.activation, self.beta))

    # ------------------------------------------------------------------ views of one palm
    def cells(self, rois) -> np.ndarray:
        """(N, S, G, D) unit cells of every ROI at every window shift (no view fusion)."""
        rois = list(rois)
        if not rois:
            return np.zeros((0, len(self._shifts), self.n_cells, self.dim), np.float32)
        return self.queries(rois)

    def fuse(self, cells: np.ndarray) -> np.ndarray:
        """Views (V, S, G, D) of one palm -> (S, G, D): :func:`mean_fusion`."""
        return mean_fusion(cells)

    def templates(self, rois) -> np.ndarray:
        return np.stack([self.template(r) for r in rois])

    def queries(self, rois) -> np.ndarray:
        return np.stack([self.query(r) for r in rois])

    def both(self, rois) -> tuple[np.ndarray, np.ndarray]:
        """Templates (N, G, D) and queries (N, S, G, D) from one pass over the images."""
        T, Q = [], []
        for r in rois:
            q = self._windows(self.weights(r))
            Q.append(q)
            T.append(q[self._zero])
        return np.stack(T), np.stack(Q)


def unit_cells(x: np.ndarray) -> np.ndarray:
    """Each cell (last axis) scaled to unit length (a zero cell stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def mean_fusion(cells: np.ndarray) -> np.ndarray:
    """The views of one palm fused without a learned model: views (V, ..., G, D) of unit cells
    -> (..., G, D), the per-cell mean of the views' unit cells, each cell renormalised to unit
    length. One view gives that view back. Every view's region is rectified to the same palm
    frame, so cell g of window s is the same patch of palm in every view; the mean keeps what
    the views agree on. The classical feature's view fusion (and the hybrid's classical half);
    the learned cells go through the attention fusion (seed 000) instead."""
    c = np.asarray(cells, np.float32)
    if c.ndim < 3 or c.shape[0] < 1:
        raise ValueError("fusion needs at least one view: cells of shape (V>=1, ..., G, D)")
    return unit_cells(c.mean(0)).astype(np.float32)


def weighted_fusion(cells: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Views (V, ..., G, D) of unit cells and per-view per-cell weights (V, ..., G) (a
    distribution over the views, e.g. the attention fusion's, seed 000) -> (..., G, D): each
    cell the weighted sum of the views' cells, renormalised to unit length. Equal weights give
    :func:`mean_fusion`; one view gives that view back."""
    c = np.asarray(cells, np.float32)
    w = np.asarray(weights, np.float32)
    if c.ndim < 3 or c.shape[0] < 1 or w.shape != c.shape[:-1]:
        raise ValueError(f"weighted fusion needs cells (V>=1, ..., G, D) and weights of their "
                         f"shape without D; got {c.shape} and {w.shape}")
    return unit_cells(np.einsum("v...,v...d->...d", w, c)).astype(np.float32)


def shift_max_scores(queries: np.ndarray, templates: np.ndarray,
                     importance: np.ndarray | None = None) -> np.ndarray:
    """Unprotected scores (Nq, Nt): max over shifts of the weighted mean cell cosine."""
    nq, s, g, d = queries.shape
    w = np.full(g, 1.0 / g, np.float32) if importance is None else np.asarray(importance,
                                                                              np.float32)
    t = (templates * w[None, :, None]).reshape(len(templates), g * d).astype(np.float32)
    best = np.full((nq, len(templates)), -np.inf, np.float32)
    for k in range(s):
        best = np.maximum(best, queries[:, k].reshape(nq, g * d).astype(np.float32) @ t.T)
    return best
