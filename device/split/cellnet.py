"""The shipped cell feature (``device/recognition/cells.py``) written as a small network whose
linear layers run on shares. This is the exact feature, not a split-friendly variant:

    ROI (128x128, grey 0..255)                                  input,   F_X = 8 fraction bits
    ─ conv 45x45, 6 Gabor kernels, stride 4, reflect border ─►  (1024, 6) at F_X + F_K = 48
    ─ softmax(-beta * r) over the 6 orientations of a pixel ─►  (6, 32, 32)   at F_S = 28
          (mask recovery, masks aligned to pixels: all 6 orientations of a map pixel
           belong to one node, so the softmax is exact)
    ─ conv 4x4, 6 -> 16 channels, stride 1 = the PCA of every
      4x4 block of map pixels, minus mean @ PCA ─►              (841, 16) dense cells at 56
    ─ L2 per cell (x importance for a template) ─►              (841, 16) at F_U = 28
          (mask recovery, masks aligned to cells)

The 7x7 grid of any of the 25 shifted windows is a set of rows of the dense 29x29 cell map
(``window_rows``), so the query (25, 49, 16) and the template (49, 16, its zero shift) are
gathers of one dense map, and the shift-search score of a template is one matrix product.

Why the exact feature: its non-linear steps are both functions of a small group of values
(6 orientations of a map pixel; 16 dims of a cell), so the seed's mask recovery computes them
exactly once the masks are aligned to those groups; everything else is linear. A retrained
variant would buy nothing in accuracy and would break the decision agreement with the
plaintext gate. The cost is one more opening (the normalisation): each node sees about half
of the dense unit cells of every inference in plaintext, which is the seed's own leakage
class (it opens about half of every intermediate map). A secure reciprocal square root
would keep the cells hidden but needs truncation on shares, which fails with probability
~|x|/2^64 per element at the scales needed here (see README, Split mode).

Scales keep every opened ring value below 2^62: |response| <= 255 * sum|g| = 255 (kernels
have unit L1 norm) -> 2^56; |cell| <= ||raw - mean|| <= 4 -> 2^58; |score| <= 1 -> 2^56.
(With 16/24/20/20/24 bits the split cells were off by up to 6e-4, mostly from the rounding
of the 2,025 kernel taps; with these, by 7e-9.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from device.recognition.cells import (CELL, GRID, MAX_SHIFT, OFFSET, ROI_SIZE, STRIDE,
                                      CellExtractor, shift_offsets)

F_X = 8       # input pixels (a uint8 ROI is exact; a float ROI keeps 8 bits)
F_K = 40      # Gabor kernels
F_S = 28      # soft orientation weights
F_P = 28      # PCA matrix
F_U = 28      # unit cells (query and template)
F_R = F_X + F_K       # Gabor responses
F_Y = F_S + F_P       # projected cells
F_SCORE = 2 * F_U     # match scores

MAP = ROI_SIZE // STRIDE                       # 32
DENSE = MAP - CELL + 1                         # 29 cell origins per side
N_DENSE = DENSE * DENSE                        # 841
KSIZE = 45
PAD = KSIZE // 2


def window_rows(max_shift: int = MAX_SHIFT) -> np.ndarray:
    """(S, G) rows of the dense cell map that form the 7x7 grid of each shifted window."""
    g = np.arange(GRID) * CELL
    rows = []
    for dy, dx in shift_offsets(max_shift):
        oy, ox = max_shift + dy, max_shift + dx
        rows.append(((oy + g)[:, None] * DENSE + (ox + g)[None, :]).ravel())
    return np.stack(rows)


WINDOW_ROWS = window_rows()                    # (25, 49)
ZERO_SHIFT = int(np.flatnonzero((shift_offsets(MAX_SHIFT) == 0).all(1))[0])
TEMPLATE_ROWS = WINDOW_ROWS[ZERO_SHIFT]        # (49,)


def gabor_patches(x: np.ndarray) -> np.ndarray:
    """im2col of the strided Gabor layer: (128, 128) -> (1024, 2025). Linear (reflect padding
    copies pixels), so it applies to shares in the ring as well as to real images."""
    p = np.pad(x, PAD, mode="symmetric")       # OpenCV BORDER_REFLECT
    w = sliding_window_view(p, (KSIZE, KSIZE))[OFFSET::STRIDE, OFFSET::STRIDE][:MAP, :MAP]
    return w.reshape(MAP * MAP, KSIZE * KSIZE)


def cell_patches(s: np.ndarray) -> np.ndarray:
    """im2col of the cell layer: (6, 32, 32) -> (841, 96), columns in the order of
    ``raw_cells`` (orientation, row, column)."""
    w = sliding_window_view(s, (CELL, CELL), axis=(1, 2))     # (6, 29, 29, 4, 4)
    return w.transpose(1, 2, 0, 3, 4).reshape(N_DENSE, -1)


@dataclass(frozen=True)
class CellNet:
    """Real-valued parameters of the feature as layers: ``gabor`` (2025, 6), ``beta``,
    ``pca`` (96, 16), ``bias`` (16,) = -mean @ pca, ``importance`` (49,)."""

    gabor: np.ndarray
    beta: float
    pca: np.ndarray
    bias: np.ndarray
    importance: np.ndarray

    @classmethod
    def from_extractor(cls, ext: CellExtractor) -> "CellNet":
        bank = ext.bank.astype(np.float64)
        pca = ext.pca.astype(np.float64)
        return cls(gabor=bank.reshape(len(bank), -1).T.copy(), beta=float(ext.beta), pca=pca,
                   bias=-(ext.mean.astype(np.float64) @ pca),
                   importance=ext.importance.astype(np.float64))

    @classmethod
    def shipped(cls) -> "CellNet":
        return cls.from_extractor(CellExtractor())


def softmax_orient(r: np.ndarray, beta: float) -> np.ndarray:
    """Soft orientation weights of responses (..., 6): softmax(-beta r) over the last axis."""
    z = -beta * r
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def unit_cells(y: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(y, axis=-1, keepdims=True)
    return y / np.maximum(n, 1e-12)


def plain_dense(net: CellNet, roi: np.ndarray) -> np.ndarray:
    """Float64 reference of the dense unit-cell map (841, 16) through the same layers."""
    r = gabor_patches(np.asarray(roi, np.float64)) @ net.gabor             # (1024, 6)
    s = softmax_orient(r, net.beta).T.reshape(-1, MAP, MAP)                 # (6, 32, 32)
    return unit_cells(cell_patches(s) @ net.pca + net.bias)


def query_from_dense(dense: np.ndarray) -> np.ndarray:
    """(841, 16) -> (25, 49, 16), the layout of ``CellExtractor.query``."""
    return dense[WINDOW_ROWS]


def template_from_dense(dense: np.ndarray) -> np.ndarray:
    return dense[TEMPLATE_ROWS]
