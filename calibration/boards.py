"""Calibration targets: parse a board spec, detect it in an image, render it.

Specs (the CLI's ``--board``):
- ``chessboard:COLSxROWS:SQUARE`` — COLS x ROWS *inner corners* (OpenCV's patternSize), e.g.
  ``chessboard:9x6:1.0`` for OpenCV's samples;
- ``charuco:COLSxROWS:SQUARE:MARKER:DICT[:legacy]`` — COLS x ROWS *squares* (OpenCV's
  CharucoBoard size), marker side, an aruco dictionary such as ``DICT_5X5_100`` (or ``5X5_100``);
  ``legacy`` selects OpenCV's pre-4.6 layout for boards with an even number of rows.
SQUARE and MARKER are in any unit; extrinsic translations come out in the same unit.

OpenCV 5 notes: ``findChessboardCorners``/``cornerSubPix`` return (N, 2); ChArUco uses
``CharucoDetector.detectBoard`` + ``board.matchImagePoints`` (the old
``aruco.interpolateCornersCharuco``/``calibrateCameraCharuco`` are gone).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import cv2
import numpy as np

SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 30, 0.1)


class BoardSpecError(ValueError):
    """A ``--board`` spec that cannot be parsed."""


@dataclass
class Detection:
    """One view of a board: matched image points (N, 2), board points (N, 3), corner ids (N,)."""
    image_points: np.ndarray
    object_points: np.ndarray
    ids: np.ndarray
    image_size: tuple[int, int]                       # (w, h)
    subpix: int | None = None                         # window half-size actually used
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, ids: np.ndarray) -> "Detection":
        keep = np.isin(self.ids, ids)
        return Detection(self.image_points[keep], self.object_points[keep], self.ids[keep],
                         self.image_size, self.subpix, self.extra)


def to_gray8(img: np.ndarray) -> np.ndarray:
    """8-bit single-channel view of any capture (BGR, BGRA, 16-bit NIR...)."""
    if img is None or img.size == 0:
        raise ValueError("empty image")
    g = img
    if g.ndim == 3:
        g = cv2.cvtColor(g, cv2.COLOR_BGRA2GRAY if g.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if g.dtype != np.uint8:
        g = g.astype(np.float32)
        lo, hi = float(g.min()), float(g.max())
        g = np.zeros(g.shape, np.uint8) if hi <= lo else \
            np.clip((g - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return g


def _min_spacing(pts: np.ndarray, cols: int, rows: int) -> float:
    grid = pts.reshape(rows, cols, 2)
    d = [np.linalg.norm(np.diff(grid, axis=1), axis=2).ravel(),
         np.linalg.norm(np.diff(grid, axis=0), axis=2).ravel()]
    d = np.concatenate([x for x in d if x.size])
    return float(d.min()) if d.size else np.inf


@dataclass(frozen=True)
class Chessboard:
    cols: int
    rows: int
    square: float
    kind: str = "chessboard"

    @property
    def n_corners(self) -> int:
        return self.cols * self.rows

    def object_points(self) -> np.ndarray:
        xy = np.indices((self.cols, self.rows)).T.reshape(-1, 2).astype(np.float32)
        return np.hstack([xy * self.square, np.zeros((len(xy), 1), np.float32)])

    def spec(self) -> str:
        return f"chessboard:{self.cols}x{self.rows}:{self.square:g}"

    def detect(self, img: np.ndarray, subpix: int | None = 5) -> Detection | None:
        """The full board or None. ``subpix``: cornerSubPix window half-size (OpenCV's
        ``winSize=(N, N)``, a (2N+1)-pixel window); shrunk if the squares are too small for it."""
        g = to_gray8(img)
        ok, c = cv2.findChessboardCorners(g, (self.cols, self.rows))
        if not ok or c is None:
            return None
        c = np.asarray(c, np.float32).reshape(-1, 2)
        used = None
        if subpix:
            # A window reaching the neighbouring corners biases the fit: keep it inside.
            used = int(max(1, min(subpix, np.floor(_min_spacing(c, self.cols, self.rows) / 2) - 1)))
            c = cv2.cornerSubPix(g, c.reshape(-1, 1, 2), (used, used), (-1, -1), SUBPIX_CRITERIA)
            c = np.asarray(c, np.float32).reshape(-1, 2)
        h, w = g.shape[:2]
        return Detection(c, self.object_points(), np.arange(self.n_corners, dtype=np.int32),
                         (w, h), used)

    def generate_image(self, px_per_unit: float, margin_units: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """The board as an image, and the 3x3 map from board units to its pixels."""
        sq = px_per_unit * self.square
        m = int(round(margin_units * px_per_unit))
        nx, ny = self.cols + 1, self.rows + 1
        img = np.full((int(round(ny * sq)) + 2 * m, int(round(nx * sq)) + 2 * m), 255, np.uint8)
        for j in range(ny):
            for i in range(nx):
                if (i + j) % 2 == 0:
                    x0, y0 = m + int(round(i * sq)), m + int(round(j * sq))
                    img[y0:m + int(round((j + 1) * sq)), x0:m + int(round((i + 1) * sq))] = 0
        # inner corner (0,0) of the object points sits at one square from the board's edge
        S = np.array([[px_per_unit, 0, m + sq - 0.5], [0, px_per_unit, m + sq - 0.5], [0, 0, 1]])
        return img, S


def _dictionary(name: str):
    n = name.upper()
    if not n.startswith("DICT_"):
        n = "DICT_" + n
    if not hasattr(cv2.aruco, n):
        known = sorted(k for k in dir(cv2.aruco) if k.startswith("DICT_"))
        raise BoardSpecError(f"unknown aruco dictionary {name!r}; known: {', '.join(known)}")
    return n, cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, n))


class Charuco:
    kind = "charuco"

    def __init__(self, cols: int, rows: int, square: float, marker: float, dict_name: str,
                 legacy: bool = False):
        if not 0 < marker < square:
            raise BoardSpecError(f"ChArUco marker side {marker} must be smaller than the "
                                 f"square {square}")
        self.cols, self.rows, self.square, self.marker, self.legacy = cols, rows, square, marker, legacy
        self.dict_name, self.dictionary = _dictionary(dict_name)
        self.board = cv2.aruco.CharucoBoard((cols, rows), square, marker, self.dictionary)
        if legacy:
            self.board.setLegacyPattern(True)
        n_markers = (cols * rows) // 2
        if n_markers > self.dictionary.bytesList.shape[0]:
            raise BoardSpecError(f"{self.dict_name} holds {self.dictionary.bytesList.shape[0]} "
                                 f"markers; a {cols}x{rows} board needs {n_markers}")
        self._detector = None

    @property
    def n_corners(self) -> int:
        return (self.cols - 1) * (self.rows - 1)

    def spec(self) -> str:
        s = f"charuco:{self.cols}x{self.rows}:{self.square:g}:{self.marker:g}:{self.dict_name}"
        return s + (":legacy" if self.legacy else "")

    def object_points(self) -> np.ndarray:
        return np.asarray(self.board.getChessboardCorners(), np.float32).reshape(-1, 3)

    @property
    def detector(self):
        if self._detector is None:
            self._detector = cv2.aruco.CharucoDetector(self.board)
        return self._detector

    def detect(self, img: np.ndarray, subpix: int | None = None, min_corners: int = 6
               ) -> Detection | None:
        """The ChArUco corners seen (at least ``min_corners``, not all on one line) or None.
        The detector refines corners itself; ``subpix`` adds a cornerSubPix pass."""
        g = to_gray8(img)
        cc, ci, mc, mi = self.detector.detectBoard(g)
        if cc is None or ci is None or len(ci) < min_corners:
            return None
        ids = np.asarray(ci, np.int32).ravel()
        if self.board.checkCharucoCornersCollinear(ids.reshape(-1, 1)):
            return None
        pts = np.asarray(cc, np.float32).reshape(-1, 2)
        if subpix:
            pts = cv2.cornerSubPix(g, pts.reshape(-1, 1, 2), (subpix, subpix), (-1, -1),
                                   SUBPIX_CRITERIA).reshape(-1, 2)
        obj, imgp = self.board.matchImagePoints(pts.reshape(-1, 1, 2), ids.reshape(-1, 1))
        h, w = g.shape[:2]
        return Detection(np.asarray(imgp, np.float32).reshape(-1, 2),
                         np.asarray(obj, np.float32).reshape(-1, 3), ids, (w, h), subpix,
                         {"markers": len(mi) if mi is not None else 0})

    def generate_image(self, px_per_unit: float, margin_units: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        m = int(round(margin_units * px_per_unit))
        w = int(round(self.cols * self.square * px_per_unit)) + 2 * m
        h = int(round(self.rows * self.square * px_per_unit)) + 2 * m
        img = self.board.generateImage((w, h), marginSize=m, borderBits=1)
        # generateImage fits the board into (w - 2m, h - 2m); board (0,0) at the pixel edge
        S = np.array([[px_per_unit, 0, m - 0.5], [0, px_per_unit, m - 0.5], [0, 0, 1]])
        return img, S


Board = Chessboard | Charuco

def parse_board(spec: str) -> Board:
    """Parse a ``--board`` spec (see the module docstring); ``BoardSpecError`` says what is wrong."""
    parts = spec.strip().split(":")
    kind = parts[0].lower()
    usage = ("expected chessboard:COLSxROWS:SQUARE (inner corners) or "
             "charuco:COLSxROWS:SQUARE:MARKER:DICT (squares)")
    if kind not in ("chessboard", "charuco"):
        raise BoardSpecError(f"bad board spec {spec!r}: unknown kind {parts[0]!r}; {usage}")
    m = re.fullmatch(r"(\d+)[xX](\d+)", parts[1]) if len(parts) > 1 else None
    if not m:
        raise BoardSpecError(f"bad board spec {spec!r}: size must be COLSxROWS; {usage}")
    cols, rows = int(m.group(1)), int(m.group(2))

    def num(s: str, what: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise BoardSpecError(f"bad board spec {spec!r}: {what} {s!r} is not a number") from None
        if not (v > 0 and np.isfinite(v)):
            raise BoardSpecError(f"bad board spec {spec!r}: {what} must be positive")
        return v

    if kind == "chessboard":
        if len(parts) != 3:
            raise BoardSpecError(f"bad board spec {spec!r}: {usage}")
        if cols < 2 or rows < 2:
            raise BoardSpecError(f"bad board spec {spec!r}: need at least 2x2 inner corners")
        if cols == rows:
            raise BoardSpecError(f"bad board spec {spec!r}: a square chessboard ({cols}x{rows}) "
                                 f"is ambiguous under rotation; use one with COLS != ROWS")
        return Chessboard(cols, rows, num(parts[2], "square size"))
    if len(parts) not in (5, 6) or (len(parts) == 6 and parts[5].lower() != "legacy"):
        raise BoardSpecError(f"bad board spec {spec!r}: {usage}")
    if cols < 3 or rows < 3:
        raise BoardSpecError(f"bad board spec {spec!r}: need at least 3x3 squares")
    return Charuco(cols, rows, num(parts[2], "square size"), num(parts[3], "marker size"),
                   parts[4], legacy=len(parts) == 6)
