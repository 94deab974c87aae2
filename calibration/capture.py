"""Getting board views out of frame sources (folders of images or live cameras), with a progress
bar for the operator. Views of several cameras are paired by a frame key: for folders the last
number in the file name (``left07.jpg`` and ``right07.jpg`` -> ``07``), else the order; for live
cameras the capture round."""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from calibration.boards import Board, Detection
from device.sources.base import EndOfFrames, FolderSource, FrameSource


class Progress:
    """``[#####-----]  5/14  found 5  left05.jpg`` on stderr, redrawn in place."""

    def __init__(self, total: int | None, label: str, stream=None, enabled: bool = True,
                 width: int = 30):
        self.total, self.label, self.width, self.enabled = total, label, width, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._line = ""

    def update(self, done: int, found: int, note: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.05 and done != self.total:
            return
        self._last = now
        if self.total:
            k = int(self.width * min(done, self.total) / self.total)
            bar = "#" * k + "-" * (self.width - k)
            counts = f"{done}/{self.total}"
        else:
            bar = "." * (done % (self.width + 1)) + " " * (self.width - done % (self.width + 1))
            counts = f"{done}"
        self._line = f"{self.label} [{bar}] {counts} found {found} {note[:40]:<40}"
        if self.tty:                       # redraw in place; a log file gets only the last line
            self.stream.write("\r" + self._line)
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._line:
            self.stream.write(("\r" if self.tty else "") + self._line.rstrip() + "\n")
            self.stream.flush()


@dataclass
class View:
    key: str
    name: str
    image: np.ndarray
    detection: Detection | None
    meta: dict = field(default_factory=dict)


def assign_keys(names: list[str]) -> list[str]:
    """Frame keys from file names: their last number if that is unique, else the position."""
    nums = []
    for n in names:
        m = re.findall(r"\d+", n.rsplit(".", 1)[0])
        nums.append(str(int(m[-1])) if m else None)
    if all(nums) and len(set(nums)) == len(nums):
        return nums
    return [str(i) for i in range(len(names))]


def _moved_enough(det: Detection, accepted: list[Detection], min_px: float) -> bool:
    for a in accepted:
        ids = np.intersect1d(a.ids, det.ids)
        if len(ids) < 4:
            continue
        pa = a.image_points[np.isin(a.ids, ids)]
        pd = det.image_points[np.isin(det.ids, ids)]
        if float(np.mean(np.linalg.norm(pa - pd, axis=1))) < min_px:
            return False
    return True


def collect_views(source: FrameSource, board: Board, subpix: int | None, label: str,
                  want: int | None = None, max_frames: int | None = None,
                  min_motion_px: float = 20.0, progress: bool = True) -> list[View]:
    """Detect the board in frames of ``source``.

    A folder is read to its end and every image is kept (with ``detection=None`` where the board
    was not found). A live source runs until ``want`` views were accepted (a view is accepted
    only if the board moved ``min_motion_px`` from every accepted view) or ``max_frames``.
    """
    is_folder = isinstance(source, FolderSource)
    total = len(source) if is_folder else want
    if not is_folder and not want:
        raise ValueError("a live source needs the number of views to capture")
    bar = Progress(total, label, enabled=progress)
    views: list[View] = []
    accepted: list[Detection] = []
    n = 0
    source.start()
    try:
        while max_frames is None or n < max_frames:
            try:
                img, meta = source.capture()
            except EndOfFrames:
                break
            n += 1
            det = board.detect(img, subpix)
            name = meta.get("name") or f"frame{meta.get('index', n - 1):04d}"
            if is_folder:
                views.append(View("", name, img, det, meta))
                if det is not None:
                    accepted.append(det)
                bar.update(n, len(accepted), name)
            else:
                if det is not None and _moved_enough(det, accepted, min_motion_px):
                    accepted.append(det)
                    views.append(View(str(len(views)), name, img, det, meta))
                bar.update(len(accepted), len(accepted), f"frame {n}")
                if len(accepted) >= want:
                    break
    finally:
        source.stop()
        bar.close()
    if is_folder:
        for v, k in zip(views, assign_keys([v.name for v in views])):
            v.key = k
    return views


def collect_synced(sources: dict[str, FrameSource], board: Board, subpix: int | None,
                   want: int | None = None, max_rounds: int | None = None,
                   progress: bool = True, boards: dict[str, Board] | None = None
                   ) -> dict[str, list[View]]:
    """Views of several cameras keyed so that simultaneous frames share a key.

    Folders are read one by one (keys from file names). Live sources are captured in lockstep,
    one frame of each per round, until ``want`` rounds showed the board to the first camera and
    to at least one other. ``boards`` may give a camera its own board object (same layout).
    """
    boards = boards or {}
    if all(isinstance(s, FolderSource) for s in sources.values()):
        return {name: collect_views(src, boards.get(name, board), subpix, f"{name:>8}",
                                    progress=progress) for name, src in sources.items()}
    if not want:
        raise ValueError("live sources need the number of views to capture")
    names = list(sources)
    out: dict[str, list[View]] = {n: [] for n in names}
    bar = Progress(want, "synced", enabled=progress)
    for s in sources.values():
        s.start()
    try:
        rounds = good = 0
        while (max_rounds is None or rounds < max_rounds) and good < want:
            frames = {}
            for n in names:
                try:
                    frames[n] = sources[n].capture()
                except EndOfFrames:
                    frames = None
                    break
            if frames is None:
                break
            rounds += 1
            dets = {n: boards.get(n, board).detect(frames[n][0], subpix) for n in names}
            if dets[names[0]] is not None and any(dets[n] is not None for n in names[1:]):
                key = str(good)
                for n in names:
                    img, meta = frames[n]
                    out[n].append(View(key, f"{n}-{key}", img, dets[n], meta))
                good += 1
            bar.update(good, good, f"round {rounds}")
    finally:
        for s in sources.values():
            s.stop()
        bar.close()
    return out


__all__ = ["Progress", "View", "assign_keys", "collect_views", "collect_synced"]
