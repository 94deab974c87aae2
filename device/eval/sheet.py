"""Contact sheet of what the gate saw and decided: one row per presentation -- its K views
(downscaled), the palm regions it cut out, the transmission-sensor frame -- framed green for
an open, red for a deny, with the decision, reason, score and p(live) written under it."""
from __future__ import annotations

import cv2
import numpy as np

TILE = 112


def _tile(img, size=TILE):
    if img is None:
        return np.full((size, size, 3), 40, np.uint8)
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    h, w = a.shape[:2]
    s = size / max(h, w)
    a = cv2.resize(a, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    out = np.full((size, size, 3), 24, np.uint8)
    y, x = (size - a.shape[0]) // 2, (size - a.shape[1]) // 2
    out[y:y + a.shape[0], x:x + a.shape[1]] = a
    return out


def contact_sheet(rows, path, views: int = 3) -> str:
    """``rows``: (burst, decision, label) triples. Writes a PNG, returns its path."""
    lines = []
    for burst, d, label in rows:
        tiles = [_tile(v) for v in (burst.views if burst is not None else [])[:views]]
        tiles += [_tile(None)] * (views - len(tiles))
        rois = list(d.rois[:views]) + [None] * (views - len(d.rois[:views]))
        tiles += [_tile(r) for r in rois]
        tiles.append(_tile(burst.sensor if burst is not None else None))
        strip = np.concatenate(tiles, 1)
        colour = (60, 180, 60) if d.opened else (50, 50, 220)
        strip = cv2.copyMakeBorder(strip, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=colour)
        text = np.full((24, strip.shape[1], 3), 255, np.uint8)
        s = f"[{label}] {d.decision.upper()} {d.reason}"
        if d.user_id:
            s += f" {d.user_id}"
        if d.score is not None:
            s += f" score {d.score:.4f}"
        if d.p_live is not None:
            s += f" p(live) {d.p_live:.2f}"
        s += f"  {d.total_ms:.0f} ms"
        cv2.putText(text, s, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        lines.append(np.concatenate([strip, text], 0))
    head = np.full((26, lines[0].shape[1] if lines else 400, 3), 255, np.uint8)
    cv2.putText(head, f"views x{views} | palm regions x{views} | sensor frame", (6, 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    img = np.concatenate([head] + lines, 0)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return str(path)
