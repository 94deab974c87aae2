"""The per-unit report a person looks at: a JSON summary per step, and PNGs of the detected
corners with their reprojection-error vectors (magnified), dropped views framed in red, and a bar
chart of per-view RMS against the outlier limit."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

GREEN, RED, YELLOW, WHITE, GREY = (0, 200, 0), (0, 0, 255), (0, 220, 255), (255, 255, 255), (90, 90, 90)


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img[..., :3].copy()


def view_tile(img: np.ndarray, points: np.ndarray, residuals: np.ndarray | None, title: str,
              dropped: bool = False, gain: float = 50.0, width: int = 320) -> np.ndarray:
    """One view: corners (green), error vectors x``gain`` (yellow), red frame if dropped."""
    t = _bgr(img)
    s = width / t.shape[1]
    t = cv2.resize(t, (width, int(round(t.shape[0] * s))), interpolation=cv2.INTER_AREA)
    for i, p in enumerate(np.asarray(points, float).reshape(-1, 2)):
        c = (int(round(p[0] * s)), int(round(p[1] * s)))
        cv2.circle(t, c, 2, GREEN, -1, cv2.LINE_AA)
        if residuals is not None:
            r = np.asarray(residuals, float).reshape(-1, 2)[i]
            e = (int(round((p[0] + gain * r[0]) * s)), int(round((p[1] + gain * r[1]) * s)))
            cv2.line(t, c, e, YELLOW, 1, cv2.LINE_AA)
    cv2.rectangle(t, (0, 0), (t.shape[1] - 1, 17), (0, 0, 0), -1)
    cv2.putText(t, title, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, RED if dropped else WHITE, 1,
                cv2.LINE_AA)
    if dropped:
        cv2.rectangle(t, (0, 0), (t.shape[1] - 1, t.shape[0] - 1), RED, 3)
    return t


def bar_chart(values: dict[str, float], limit: float | None, dropped: set[str],
              width: int, height: int = 160) -> np.ndarray:
    img = np.full((height, width, 3), 255, np.uint8)
    if not values:
        return img
    top = max(max(values.values()), limit or 0) * 1.15 or 1.0
    n = len(values)
    bw = max(2, (width - 40) // n)
    for i, (k, v) in enumerate(values.items()):
        x0 = 30 + i * bw
        y = int(height - 20 - (height - 40) * v / top)
        cv2.rectangle(img, (x0 + 1, y), (x0 + bw - 2, height - 20), RED if k in dropped else GREEN, -1)
    if limit:
        y = int(height - 20 - (height - 40) * limit / top)
        cv2.line(img, (25, y), (width - 5, y), RED, 1)
        cv2.putText(img, f"outlier limit {limit:.3f}px", (30, max(12, y - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, RED, 1, cv2.LINE_AA)
    cv2.putText(img, f"per-view RMS (px), max {max(values.values()):.3f}", (30, 14),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def mosaic(tiles: list[np.ndarray], cols: int = 4) -> np.ndarray:
    if not tiles:
        return np.full((20, 320, 3), 255, np.uint8)
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = (len(tiles) + cols - 1) // cols
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h:r * h + t.shape[0], c * w:c * w + t.shape[1]] = t
    return out


def stamp_text(stamp: dict) -> str:
    """``unit PG-0001  2026-01-02 10:11 UTC  PASS`` of a report stamp."""
    when = str(stamp.get("utc", ""))[:16].replace("T", " ")
    return f"unit {stamp.get('unit_serial')}  {when} UTC  {stamp.get('verdict')}"


def views_png(path: str | Path, views: list[dict], per_view: dict[str, float],
              limit: float | None, title: str, gain: float = 50.0,
              stamp: dict | None = None) -> Path:
    """``views``: dicts with image, points, residuals, name, dropped. Writes one PNG, its
    header stamped (``stamp``: unit serial, date, PASS/FAIL) when given."""
    tiles = [view_tile(v["image"], v["points"], v.get("residuals"),
                       f"{v['name']}  {per_view.get(v['name'], float('nan')):.3f}px"
                       + ("  DROPPED" if v.get("dropped") else ""),
                       dropped=v.get("dropped", False), gain=gain) for v in views]
    m = mosaic(tiles)
    dropped = {v["name"] for v in views if v.get("dropped")}
    head = np.full((26, m.shape[1], 3), 255, np.uint8)
    cv2.putText(head, f"{title}   (error vectors x{gain:g})", (6, 18), cv2.FONT_HERSHEY_SIMPLEX,
                0.55, (0, 0, 0), 1, cv2.LINE_AA)
    if stamp:
        band = np.full((26, m.shape[1], 3), 255, np.uint8)
        ok = stamp.get("verdict") == "PASS"
        cv2.rectangle(band, (0, 0), (band.shape[1] - 1, 25), (0, 150, 0) if ok else RED, -1)
        cv2.putText(band, stamp_text(stamp), (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, WHITE, 1,
                    cv2.LINE_AA)
        head = np.vstack([band, head])
    img = np.vstack([head, m, bar_chart(per_view, limit, dropped, m.shape[1])])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise RuntimeError(f"cannot write report image {path}")
    return path


def write_json(path: str | Path, obj: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path
