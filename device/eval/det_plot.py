"""A DET curve (FNMR against FMR, log-log) drawn with OpenCV: no plotting library on the gate."""
from __future__ import annotations

import cv2
import numpy as np


def det_points(genuine, impostor, n: int = 400):
    """(fmr, fnmr) at ``n`` thresholds spread over the score range."""
    g, i = np.sort(np.asarray(genuine, float)), np.sort(np.asarray(impostor, float))
    thr = np.quantile(np.concatenate([g, i]), np.linspace(0, 1, n))
    fnmr = np.searchsorted(g, thr, side="left") / len(g)
    fmr = 1 - np.searchsorted(i, thr, side="left") / len(i)
    return fmr, fnmr


def draw_det(curves: dict, path, title: str = "DET", size=(640, 480), lo: float = 1e-6) -> None:
    """Write a PNG with one DET curve per ``{label: (genuine, impostor)}``."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    x0, y0, x1, y1 = 70, 30, w - 20, h - 50
    dec = np.log10(lo)
    def px(fmr, fnmr):
        fx = np.clip(np.log10(np.maximum(fmr, lo)), dec, 0)
        fy = np.clip(np.log10(np.maximum(fnmr, lo)), dec, 0)
        return (x0 + (fx - dec) / -dec * (x1 - x0), y1 - (fy - dec) / -dec * (y1 - y0))
    for k in range(int(dec), 1):
        x, _ = px(10.0 ** k, 1)
        _, y = px(1, 10.0 ** k)
        cv2.line(img, (int(x), y0), (int(x), y1), (220, 220, 220), 1)
        cv2.line(img, (x0, int(y)), (x1, int(y)), (220, 220, 220), 1)
        cv2.putText(img, f"1e{k}", (int(x) - 14, y1 + 16), cv2.FONT_HERSHEY_PLAIN, 0.9,
                    (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"1e{k}", (x0 - 42, int(y) + 4), cv2.FONT_HERSHEY_PLAIN, 0.9,
                    (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    colours = [(200, 60, 0), (0, 120, 220), (0, 160, 0), (160, 0, 160)]
    for k, (label, (g, i)) in enumerate(curves.items()):
        xs, ys = px(*det_points(g, i))
        pts = np.stack([xs, ys], 1).round().astype(np.int32)
        cv2.polylines(img, [pts], False, colours[k % 4], 2, cv2.LINE_AA)
        cv2.putText(img, label, (x1 - 220, y0 + 20 + 18 * k), cv2.FONT_HERSHEY_PLAIN, 1.1,
                    colours[k % 4], 1, cv2.LINE_AA)
    cv2.putText(img, "FMR", ((x0 + x1) // 2, h - 12), cv2.FONT_HERSHEY_PLAIN, 1.2, (0, 0, 0), 1)
    cv2.putText(img, "FNMR", (4, y0 - 10), cv2.FONT_HERSHEY_PLAIN, 1.2, (0, 0, 0), 1)
    cv2.putText(img, title, (x0 + 6, y0 - 10), cv2.FONT_HERSHEY_PLAIN, 1.2, (0, 0, 0), 1)
    if not cv2.imwrite(str(path), img):
        raise ValueError(f"cannot write {path}")
