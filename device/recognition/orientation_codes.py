"""Classical palmprint orientation codes, the baselines palmprint researchers measure against
(numpy + OpenCV): Competitive Code (winner-take-all orientation, angular distance) and BOCV
(six sign planes, Hamming distance), both with a small shift search. Settings as measured in
../shared/FINDINGS.md on Tongji ROIs (128x128): CompCode sigma 5.5, 45x45, stride 4, shifts
±3 cells; BOCV sigma 4.6, 39x39, stride 4, shifts ±2 cells."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.vision.gabor import gabor_bank

ROI = 128


def responses(images: np.ndarray, bank: np.ndarray, stride: int) -> np.ndarray:
    """(N, 6, H/stride, W/stride) Gabor responses of grey ROIs (N,128,128) uint8/float."""
    out = []
    for im in images:
        x = np.asarray(im, np.float32)
        if x.shape != (ROI, ROI):
            x = cv2.resize(x, (ROI, ROI), interpolation=cv2.INTER_AREA)
        r = [cv2.filter2D(x, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)[::stride, ::stride]
             for k in bank]
        out.append(np.stack(r))
    return np.stack(out)


def _crop(codes: np.ndarray, dy: int, dx: int, m: int) -> np.ndarray:
    """The window of ``codes`` (N, C, H, W) offset by (dy, dx) inside a margin ``m``."""
    h, w = codes.shape[-2:]
    return codes[..., m + dy:h - m + dy, m + dx:w - m + dx]


def shift_min_distance(a: np.ndarray, b: np.ndarray, metric: np.ndarray | None,
                       max_shift: int) -> np.ndarray:
    """(Na, Nb) smallest mean per-location distance over shifts of ``b`` against ``a``'s
    central window. Codes are one-hot or sign planes (N, C, H, W) float32; per location the
    distance is ``a_c . metric . b_c`` (``metric`` None: Hamming on ±1 planes)."""
    m = max_shift
    ca = _crop(a, 0, 0, m)
    na, c = ca.shape[:2]
    n_loc = ca.shape[2] * ca.shape[3]
    if metric is not None:  # one-hot codes: distance = sum over locations of D[code_a, code_b]
        ca = np.einsum("nchw,cd->ndhw", ca, metric)
    fa = ca.reshape(na, -1)
    best = np.full((na, len(b)), np.inf, np.float32)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            fb = _crop(b, dy, dx, m).reshape(len(b), -1)
            prod = fa @ fb.T
            if metric is None:  # ±1 planes: hamming = (bits - agreement) / 2
                d = (c * n_loc - prod) / (2.0 * c * n_loc)
            else:
                d = prod / n_loc
            best = np.minimum(best, d)
    return best


@dataclass(frozen=True)
class CompCode:
    """Competitive Code: the orientation whose (negated) response wins, angular distance."""

    name: str = "compcode"
    sigma: float = 5.5
    size: int = 45
    stride: int = 4
    max_shift: int = 3

    def encode(self, images: np.ndarray) -> np.ndarray:
        r = responses(images, gabor_bank(6, self.sigma, self.size), self.stride)
        win = np.argmin(r, axis=1)  # dark lines give the most negative response
        return np.eye(6, dtype=np.float32)[win].transpose(0, 3, 1, 2)

    def scores(self, gallery: np.ndarray, probes: np.ndarray) -> np.ndarray:
        k = np.arange(6)
        diff = np.abs(k[:, None] - k[None, :])
        metric = (np.minimum(diff, 6 - diff) / 3.0).astype(np.float32)  # angular, in [0, 1]
        return 1.0 - shift_min_distance(gallery, probes, metric, self.max_shift)


@dataclass(frozen=True)
class BOCV:
    """Binary Orientation Co-occurrence Vector: six sign planes, Hamming distance."""

    name: str = "bocv"
    sigma: float = 4.6
    size: int = 39
    stride: int = 4
    max_shift: int = 2

    def encode(self, images: np.ndarray) -> np.ndarray:
        r = responses(images, gabor_bank(6, self.sigma, self.size), self.stride)
        return np.where(r < 0, 1.0, -1.0).astype(np.float32)

    def scores(self, gallery: np.ndarray, probes: np.ndarray) -> np.ndarray:
        return 1.0 - shift_min_distance(gallery, probes, None, self.max_shift)
