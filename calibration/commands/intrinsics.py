"""``palmgate-calibrate intrinsics``: one camera's intrinsics (camera matrix and distortion)
from images of a chessboard or ChArUco board, with outlier views dropped."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration import report as rpt
from calibration.boards import parse_board
from calibration.capture import View, collect_views
from calibration.commands.common import (default_subpix, doc_and_key, finish,
                                         intrinsics_of_views, open_checked, save_step,
                                         stamp, views_with_board)
from calibration.intrinsics import outlier_limit
from calibration.limits import check, limits_for


def _dropped_residuals(det, K, dist):
    """Residuals of a dropped view under the final intrinsics (its own pose), or None."""
    ok, r, t = cv2.solvePnP(det.object_points, det.image_points, K, dist)
    if not ok:
        return None
    proj, _ = cv2.projectPoints(det.object_points, r, t, K, dist)
    return proj.reshape(-1, 2) - det.image_points


def _intrinsics_report(a, name: str, found: list[View], res, st: dict | None = None) -> list[str]:
    """With ``--report``: the PNG of every view's corners and residuals (dropped views marked)."""
    if not a.report:
        return []
    byname = {v.name: v for v in found}
    views = []
    for vn, resid in zip(res.views, res.residuals):
        v = byname[vn]
        views.append({"image": v.image, "points": v.detection.image_points, "residuals": resid,
                      "name": vn})
    per_view = dict(zip(res.views, res.per_view_rms))
    for d in res.dropped:
        v = byname[d["view"]]
        views.append({"image": v.image, "points": v.detection.image_points, "dropped": True,
                      "residuals": _dropped_residuals(v.detection, res.camera_matrix, res.dist),
                      "name": d["view"]})
        per_view[d["view"]] = d["rms"]
    limit = outlier_limit(list(res.initial_per_view_rms.values())) if res.initial_per_view_rms else None
    png = rpt.views_png(Path(a.report) / f"intrinsics_{name}.png", views, per_view, limit,
                        f"intrinsics {name}: RMS {res.rms:.3f}px, {len(res.views)} views, "
                        f"{len(res.dropped)} dropped", stamp=st)
    return [str(png)]


def cmd_intrinsics(a) -> int:
    """Calibrate one camera from ``--images`` or a live ``--source``; check RMS, views and
    coverage against the limits."""
    board = parse_board(a.board)
    subpix = default_subpix(board, a.subpix)
    lim = limits_for("intrinsics", a.limit)
    doc, key = doc_and_key(a)
    spec = a.images or a.source
    src = open_checked(spec, f"camera {a.camera}")
    views = collect_views(src, board, subpix, f"{a.camera:>8}", want=a.views,
                          max_frames=a.max_frames, progress=not a.quiet)
    found = views_with_board(views, spec, board, f"camera {a.camera}")
    res = intrinsics_of_views(found, a.model, not a.no_drop)
    record = res.to_json()
    used = sorted({v.detection.subpix for v in found if v.detection.subpix is not None})
    record.update({"camera": a.camera, "board": board.spec(), "subpix": subpix,
                   "subpix_used": used,       # smaller where the squares were too small for N
                   "images": len(views), "images_with_board": len(found),
                   "images_without_board": [v.name for v in views if v.detection is None]})
    checks = [check("rms", res.rms, "<=", lim["max_rms"], "px"),
              check("views_used", len(res.views), ">=", lim["min_views"]),
              check("coverage", res.coverage, ">=", lim["min_coverage"])]
    record["pass"] = all(c["pass"] for c in checks)
    record["checks"] = checks
    out = {"step": "intrinsics", **record}
    st = stamp(a, out) if a.report else None
    out["report"] = _intrinsics_report(a, a.camera, found, res, st)
    if a.report:
        out["report"].append(str(rpt.write_json(Path(a.report) / f"intrinsics_{a.camera}.json", out)))
    out["calfile"] = save_step(a, doc, key, "intrinsics", record, lim, sub=a.camera)
    K = res.camera_matrix
    human = [f"intrinsics {a.camera}: board found in {len(found)}/{len(views)} images, "
             f"{len(res.dropped)} outlier view(s) dropped "
             f"{[d['view'] for d in res.dropped] if res.dropped else ''}",
             f"  fx {K[0, 0]:.2f}  fy {K[1, 1]:.2f}  cx {K[0, 2]:.2f}  cy {K[1, 2]:.2f}  "
             f"dist {np.array2string(res.dist, precision=4)}"]
    return finish(a, out, human)
