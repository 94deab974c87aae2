"""The cell features of split mode written as small networks whose linear layers run on
shares.  Two features (``FEATURE_FILES``):

"gabor", the gate's plaintext feature (``cells_pca.npz``), exactly:

    ROI (128x128, grey 0..255)                                  input,   F_X = 0 fraction bits
    ─ conv 45x45, 6 Gabor kernels, stride 4, reflect border ─►  (1024, 6) at F_X + F_K = 48
    ─ softmax(-beta * r) over the 6 orientations of a pixel ─►  (6, 32, 32)   at F_S = 28
          (mask recovery, masks aligned to pixels: all 6 orientations of a map pixel
           belong to one node, so the softmax is exact)
    ─ conv 4x4, 6 -> 16 channels, stride 1 = the PCA of every
      4x4 block of map pixels, minus mean @ PCA ─►              (841, 16) dense cells at 56
    ─ L2 per cell (x importance for a template) ─►              (841, 16) at F_U = 28
          (mask recovery, masks aligned to cells)

"unit" (``cells_unit.npz``, the default of ``palmgate split provision``): the same
layers with the kernels centred over the orientations and r / sqrt(|r|^2 + eps^2) per map
pixel in place of the softmax (same validation TAR at FAR 1e-4 on Tongji).  The softmax's
mask recovery hands a pixel's owner its 6 responses, a public linear function of the palm
(the kernels are a textbook Gabor bank), so one node rebuilds the palm by least squares even
in secret-shared-kernel mode (claim 8; device/eval/split_leakage.py).  The unit activation
needs only each pixel's squared norm in the clear: the nodes square the responses on shares
(Beaver), the owner opens |r|^2, computes 1/norm and re-shares it, and a Beaver product gives
r / norm (``protocol.unit_layer``; two more rounds).  Every product stays inside the ring (bounds
below), so nothing is truncated on shares.

The 7x7 grid of any of the 25 shifted windows is a set of rows of the dense 29x29 cell map
(``window_rows``), so the query (25, 49, 16) and the template (49, 16, its zero shift) are
gathers of one dense map, and the shift-search score of a template is one matrix product.

The L2 per cell is a mask recovery in both features: each node sees about half of the dense
unit cells of every inference in plaintext, which is the seed's own leakage class (it opens
about half of every intermediate map). A secure reciprocal square root would keep the cells
hidden but needs truncation on shares, which fails with probability ~|x|/2^64 per element at
the scales needed here (see README, Split mode).

Scales keep every opened ring value below 2^62: |response| <= 255 * sum|g| = 255 (kernels
have unit L1 norm) -> 2^56; |cell| <= ||raw - mean|| <= 4 -> 2^58; |score| <= 1 -> 2^56.
The input has no fraction bits: a uint8 ROI is exact (the terminal rounds a float ROI).
(With 16/24/20/20/24 bits the split cells were off by up to 6e-4, mostly from the rounding
of the 2,025 kernel taps; with these, by 7e-9.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from device.recognition.files import SPLIT_DEFAULT_FEATURE, SPLIT_FEATURE_FILES
from device.recognition.cells import (CELL, GRID, MAX_SHIFT, OFFSET, ROI_SIZE, STRIDE,
                                      CellExtractor, shift_offsets,
                                      unit_orientation)

F_X = 0       # input pixels: integer grey levels (a uint8 ROI is exact; the terminal rounds
#               a float ROI), which leaves the unit feature's squares room in the ring
F_K = 48      # Gabor kernels
F_S = 28      # soft orientation weights
F_P = 28      # PCA matrix
F_U = 28      # unit cells (query and template)
F_R = F_X + F_K       # Gabor responses
F_Y = F_S + F_P       # projected cells
F_SCORE = 2 * F_U     # match scores
# the unit feature (activation "unit"): responses twice, at F_KM for the product and at F_KL
# for the squares, from kernels rounded to sum to exactly zero (``encode_kernels``: the image's
# mean grey level then adds nothing); squared norms at F_N; the owner's 1/norm at F_SC; unit
# vectors at F_SU; PCA at F_PU; projected cells at F_YU.  Bounds: a zero-sum kernel k on
# pixels in [0, 255] gives |r| <= 127.5 |k|_1, and the centred kernels have |k|_1 = 0.9, so
# |r|^2 summed over the 6 < 2^16.3 -> 2^62.3 at F_N (non-negative, below 2^63); 1/norm <= 2;
# |u| <= 1; |cell| <= 8 -> 2^62 at F_YU.  (The split of F_YU's bits between the three chosen
# on 12 Tongji ROIs against float64: largest cell error 1.1e-5, mean 1.5e-6.)
F_KM = 25
F_KL = 23
F_N = 2 * F_KL
F_SC = 16
F_SU = F_KM + F_SC
F_PU = 18
F_YU = F_SU + F_PU       # 59

# the cell features split mode can run: "gabor" is the gate's plaintext feature; its softmax
# is computed by opening the responses of the public Gabor bank at a node's pixels, so a node
# rebuilds the palm by least squares even in secret-shared-kernel mode (claim 8).  "unit"
# (cells_unit.npz) divides each pixel's (centred) response vector by its norm instead: the
# nodes square the responses on shares and open only the squared norm to the pixel's owner
# (``unit_layer``)
FEATURE_FILES = SPLIT_FEATURE_FILES
DEFAULT_FEATURE = SPLIT_DEFAULT_FEATURE

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
    ``pca`` (96, 16), ``bias`` (16,) = -mean @ pca, ``importance`` (49,); ``feature`` names
    the file (a key of ``FEATURE_FILES``), ``activation`` its first non-linearity ("softmax"
    or "unit")."""

    gabor: np.ndarray
    beta: float
    pca: np.ndarray
    bias: np.ndarray
    importance: np.ndarray
    feature: str = "gabor"
    activation: str = "softmax"

    @classmethod
    def from_extractor(cls, ext: CellExtractor, feature: str = "gabor") -> "CellNet":
        bank = ext.bank.astype(np.float64)
        pca = ext.pca.astype(np.float64)
        return cls(gabor=bank.reshape(len(bank), -1).T.copy(), beta=float(ext.beta), pca=pca,
                   bias=-(ext.mean.astype(np.float64) @ pca),
                   importance=ext.importance.astype(np.float64), feature=feature,
                   activation=ext.activation)

    @classmethod
    def shipped(cls, feature: str = "gabor") -> "CellNet":
        return cls.from_extractor(feature_extractor(feature), feature)


def encode_kernels(g: np.ndarray, frac: int) -> np.ndarray:
    """Kernels (taps, n) to the ring at ``frac`` bits, each column rounded to nearest and then
    moved by one unit at the taps whose rounding went furthest the same way until it sums to
    exactly zero like the real kernel (so a flat image gives exactly 0)."""
    s = np.asarray(g, np.float64) * float(2 ** frac)
    k = np.round(s)
    for j in range(k.shape[1]):
        res = int(k[:, j].sum())
        if res:
            step = np.sign(res)
            idx = np.argsort(-(k[:, j] - s[:, j]) * step)[:abs(res)]
            k[idx, j] -= step
    return k.astype(np.int64).view(np.uint64)


def feature_extractor(feature: str = "gabor") -> CellExtractor:
    """The plaintext extractor of a split feature (checked against the manifest)."""
    if feature not in FEATURE_FILES:
        raise ValueError(f"split feature must be one of {sorted(FEATURE_FILES)}, not {feature!r}")
    return CellExtractor(name=FEATURE_FILES[feature])


def softmax_orient(r: np.ndarray, beta: float) -> np.ndarray:
    """Soft orientation weights of responses (..., 6): softmax(-beta r) over the last axis."""
    z = -beta * r
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def orient_activation(r: np.ndarray, activation: str, beta: float) -> np.ndarray:
    """The first non-linearity on responses (..., 6) at the owner of a map pixel."""
    if activation == "unit":
        return unit_orientation(np.asarray(r, np.float64), axis=-1)
    if activation == "softmax":
        return softmax_orient(r, beta)
    raise ValueError(f"unknown activation {activation!r}")


def unit_cells(y: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(y, axis=-1, keepdims=True)
    return y / np.maximum(n, 1e-12)


def plain_dense(net: CellNet, roi: np.ndarray) -> np.ndarray:
    """Float64 reference of the dense unit-cell map (841, 16) through the same layers."""
    r = gabor_patches(np.asarray(roi, np.float64)) @ net.gabor             # (1024, 6)
    s = orient_activation(r, net.activation, net.beta).T.reshape(-1, MAP, MAP)  # (6, 32, 32)
    return unit_cells(cell_patches(s) @ net.pca + net.bias)


def query_from_dense(dense: np.ndarray) -> np.ndarray:
    """(841, 16) -> (25, 49, 16), the layout of ``CellExtractor.query``."""
    return dense[WINDOW_ROWS]


def template_from_dense(dense: np.ndarray) -> np.ndarray:
    return dense[TEMPLATE_ROWS]
