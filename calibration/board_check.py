"""Does the board spec match the board in the images? A chessboard spec smaller than the printed
board is found anyway (OpenCV finds an 8x6 corner grid inside a 9x6 board, at a different offset
in each view), and a wrong ChArUco or too-large chessboard spec finds nothing; both must be
refused with the board the images most likely show.

- :func:`chessboard_extends` -- a cheap test per detected view: is there a further row or
  column of chessboard corners just outside the detected grid? (the four squares around a true
  inner corner alternate, a checkerboard "X"; the board's outer edge shows half that contrast);
- :func:`grow_chessboard` -- the largest corner grid OpenCV finds in a view, from a spec up;
- :func:`likely_board` -- when a spec found nothing: the chessboard (smaller specs) or the
  ChArUco board (from the marker ids seen, or another dictionary) the images show;
- :func:`board_mismatch` -- the message refusing a spec, or None.
"""
from __future__ import annotations

import cv2
import numpy as np

from calibration.boards import Board, Charuco, Chessboard, to_gray8

MAX_CORNERS = 30                   # largest COLS or ROWS probed
X_CONTRAST = 0.7                   # outside row's X-score / inner corners' to count as corners
SIGN_AGREEMENT = 0.8


def _find(gray: np.ndarray, cols: int, rows: int) -> np.ndarray | None:
    """The full ``cols`` x ``rows`` corner grid (N, 2) OpenCV finds, or None."""
    ok, c = cv2.findChessboardCorners(gray, (cols, rows))
    return np.asarray(c, np.float64).reshape(-1, 2) if ok and c is not None else None


def _sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, np.float32).reshape(-1, 1, 2)
    return cv2.remap(img, p[..., 0].copy(), p[..., 1].copy(), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).ravel()


def x_scores(img: np.ndarray, P: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Checkerboard score at points ``P`` (N, 2) with local square sides ``a`` and ``b``:
    (mean of the two squares on one diagonal) - (the other two), about twice the black/white
    contrast at an inner chessboard corner."""
    q = {}
    for sa in (1, -1):
        for sb in (1, -1):
            vals = [_sample(img, P + sa * fa * a + sb * fb * b)
                    for fa in (0.25, 0.4) for fb in (0.25, 0.4)]
            q[sa, sb] = np.mean(vals, axis=0)
    return (q[1, 1] + q[-1, -1]) - (q[1, -1] + q[-1, 1])


def _outside_row(G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corner positions one row past the last row of grid ``G`` (rows, cols, 2), extrapolated
    (quadratically where there are three rows), and their local square sides."""
    P = 3 * G[-1] - 3 * G[-2] + G[-3] if len(G) >= 3 else 2 * G[-1] - G[-2]
    a = np.gradient(P, axis=0) if P.shape[0] > 1 else G[-1, 1:2] - G[-1, 0:1]
    return P, a, P - G[-1]


def chessboard_extends(img: np.ndarray, points: np.ndarray, cols: int, rows: int
                       ) -> list[str]:
    """Sides ("rows", "columns") past which the image shows further chessboard corners in
    line with the detected ``cols`` x ``rows`` grid ``points`` (N, 2)."""
    g = to_gray8(img).astype(np.float32)
    G = np.asarray(points, np.float64).reshape(rows, cols, 2)
    ai, bi = np.gradient(G, axis=1), np.gradient(G, axis=0)
    s_in = x_scores(g, G.reshape(-1, 2), ai.reshape(-1, 2), bi.reshape(-1, 2)).reshape(rows, cols)
    ref = float(np.median(np.abs(s_in)))
    if ref <= 0:
        return []
    h, w = g.shape
    out = []
    sides = {"rows": (G, G[::-1]),
             "columns": (G.transpose(1, 0, 2), G.transpose(1, 0, 2)[::-1])}
    for name, grids in sides.items():
        for Gs in grids:
            if len(Gs) < 2:
                continue
            P, a, b = _outside_row(Gs)
            reach = np.linalg.norm(a, axis=1) + np.linalg.norm(b, axis=1)
            inside = ((P[:, 0] > reach) & (P[:, 0] < w - 1 - reach) & (P[:, 1] > reach)
                      & (P[:, 1] < h - 1 - reach))
            if inside.sum() < max(3, len(P) // 2):
                continue
            s = x_scores(g, P[inside], a[inside], b[inside])
            alt = (-1.0) ** np.arange(len(P))[inside]          # corners alternate along a row
            agree = abs(float(np.mean(np.sign(s) * alt)))
            if float(np.median(np.abs(s))) > X_CONTRAST * ref and agree >= SIGN_AGREEMENT:
                out.append(name)
                break
    return out


def grow_chessboard(img: np.ndarray, cols: int, rows: int, points: np.ndarray
                    ) -> tuple[int, int]:
    """The largest ``(cols, rows)`` grid OpenCV finds in ``img``, grown from the detected one
    (``points``) one column or row at a time wherever :func:`chessboard_extends` sees more
    corners (so a board that ends costs no failed search)."""
    g = to_gray8(img)
    c, r, pts = cols, rows, points
    while True:
        for side in chessboard_extends(g, pts, c, r):
            cand = (c + 1, r) if side == "columns" else (c, r + 1)
            found = _find(g, *cand) if max(cand) <= MAX_CORNERS else None
            if found is not None:
                (c, r), pts = cand, found
                break
        else:
            return c, r


def _shrink_chessboard(img: np.ndarray, board: Chessboard) -> tuple | None:
    """A grid one column and/or row smaller than the spec that OpenCV finds in ``img``, grown
    to the largest it finds; None if none (a failed search takes a few hundred ms, so only
    these three are tried)."""
    g = to_gray8(img)
    for c, r in ((board.cols - 1, board.rows), (board.cols, board.rows - 1),
                 (board.cols - 1, board.rows - 1)):
        if c >= 2 and r >= 2 and c != r:
            pts = _find(g, c, r)
            if pts is not None:
                return grow_chessboard(g, c, r, pts)
    return None


def _charuco_spec(b: Charuco, cols: int, rows: int, dict_name: str, legacy: bool) -> str:
    s = f"charuco:{cols}x{rows}:{b.square:g}:{b.marker:g}:{dict_name}"
    return s + (":legacy" if legacy else "")


def _likely_charuco(board: Charuco, images: list[np.ndarray]) -> str | None:
    """The ChArUco board the images show: the marker ids seen (in this dictionary, else in
    another one) give the number of markers; the sizes with that many are tried."""
    grays = [to_gray8(im) for im in images]
    dict_name, ids = board.dict_name, _marker_ids(board.dictionary, grays)
    if not ids:
        for name in sorted(k for k in dir(cv2.aruco) if k.startswith("DICT_")
                           and not k.startswith("DICT_APRILTAG") and k != "DICT_ARUCO_MIP_36h12"):
            d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))
            found = _marker_ids(d, grays[:1])
            if len(found) >= 4:
                dict_name, ids = name, _marker_ids(d, grays)
                break
    if not ids:
        return None
    need = max(ids) + 1
    best = None
    for c in range(3, MAX_CORNERS + 1):
        for r in range(3, MAX_CORNERS + 1):
            if not need <= (c * r) // 2 <= need + 2:
                continue
            for legacy in ((False, True) if r % 2 == 0 else (False,)):
                try:
                    cand = Charuco(c, r, board.square, board.marker, dict_name, legacy)
                except Exception:       # noqa: BLE001 - dictionary too small for the size
                    continue
                n = sum(len(d) for d in (cand.detect(g) for g in grays) if d is not None)
                key = (n, (c >= r) == (board.cols >= board.rows))
                if n and (best is None or key > best[0]):
                    best = (key, _charuco_spec(board, c, r, dict_name, legacy))
    return best[1] if best else None


def _marker_ids(dictionary, grays) -> list[int]:
    det = cv2.aruco.ArucoDetector(dictionary)
    out: set[int] = set()
    for g in grays:
        _, ids, _ = det.detectMarkers(g)
        if ids is not None:
            out.update(int(i) for i in np.ravel(ids))
    return sorted(out)


def likely_board(board: Board, images: list[np.ndarray], probe: int = 2) -> str | None:
    """The spec of the board the images show, when ``board`` is not found in them (None: no
    idea). Chessboard: one column and/or row fewer than the spec, grown; ChArUco: from the
    marker ids."""
    imgs = list(images)[:probe]
    if isinstance(board, Chessboard):
        for im in imgs:
            cr = _shrink_chessboard(im, board)
            if cr is not None:
                return f"chessboard:{cr[0]}x{cr[1]}:{board.square:g}"
        return None
    return _likely_charuco(board, imgs)


def board_mismatch(board: Board, views, probe: int = 2) -> str | None:
    """Why ``board`` does not match the views where it was found, naming the board they
    show; None when it matches. ``views``: objects with ``image`` and ``detection``. Only a
    chessboard can be found inside a larger one (a ChArUco board's marker ids pin it)."""
    if not isinstance(board, Chessboard):
        return None
    best = None
    n = 0
    for v in views:
        if v.detection is None or n >= probe:
            continue
        if not chessboard_extends(v.image, v.detection.image_points, board.cols, board.rows):
            continue
        n += 1
        cr = grow_chessboard(v.image, board.cols, board.rows, v.detection.image_points)
        if cr != (board.cols, board.rows) and (best is None or cr[0] * cr[1] > best[0] * best[1]):
            best = cr
    if best is None:
        return None
    return (f"the board in the images is larger: OpenCV finds {best[0]}x{best[1]} inner "
            f"corners (likely board chessboard:{best[0]}x{best[1]}:{board.square:g}); a "
            f"smaller spec is found at a different place in each view. COLSxROWS counts "
            f"inner corners")
