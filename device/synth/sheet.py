"""Contact sheet: a grid of images from any data set folder, for people to look at."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.sources.layout import IMAGE_EXTENSIONS


def pick_images(src: Path, max_images: int) -> list[Path]:
    """Up to ``max_images`` images spread over the sub-folders of ``src`` (round robin)."""
    files = sorted(p for p in Path(src).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images under {src}")
    groups: dict[Path, list[Path]] = {}
    for f in files:
        groups.setdefault(f.parent, []).append(f)
    queues = list(groups.values())
    out: list[Path] = []
    k = 0
    while len(out) < max_images and any(queues):
        q = queues[k % len(queues)]
        if q:
            out.append(q.pop(0))
        k += 1
    return out


def contact_sheet(src: Path, out: Path, max_images: int = 48, tile: int = 128) -> int:
    """Write a PNG grid of images of ``src`` with their relative paths; return the count."""
    picks = pick_images(src, max_images)
    images = []
    for p in picks:
        im = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if im is None:
            raise ValueError(f"cannot decode image {p}")
        h, w = im.shape[:2]
        s = tile / max(h, w)
        images.append(cv2.resize(im, (max(1, round(w * s)), max(1, round(h * s))),
                                 interpolation=cv2.INTER_AREA))
    cols = int(np.ceil(np.sqrt(len(picks) * 4 / 3)))
    rows = int(np.ceil(len(picks) / cols))
    th = max(im.shape[0] for im in images) + 14
    sheet = np.full((rows * th, cols * tile, 3), 255, np.uint8)
    for k, (p, im) in enumerate(zip(picks, images)):
        r, c = divmod(k, cols)
        y, x = r * th, c * tile
        sheet[y:y + im.shape[0], x:x + im.shape[1]] = im
        label = f"{p.parent.name}/{p.stem}"[-18:]
        cv2.putText(sheet, label, (x + 2, y + th - 3), cv2.FONT_HERSHEY_PLAIN, 0.8,
                    (0, 0, 0), 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise ValueError(f"cannot write {out}")
    return len(picks)
