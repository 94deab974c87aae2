"""``palmgate-calibrate extrinsics``: every camera's pose relative to the reference camera, from
simultaneous views of one board (stereo calibration per camera pair).

Steps of :func:`cmd_extrinsics`: the cameras and the reference (:func:`_cameras`), the
simultaneous views, each camera's intrinsics (:func:`_camera_intrinsics`), one stereo
calibration per non-reference camera (:func:`_calibrate_camera`, with report tiles from
:func:`_residual_tiles`), then the record, the report (:func:`_write_report`) and the unit's
file.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration import report as rpt
from calibration.boards import parse_board
from calibration.capture import collect_synced
from calibration.commands.common import (InputError, calfile_intrinsics, default_subpix,
                                         doc_and_key, finish, intrinsics_of_views, named_specs,
                                         open_checked, save_step, stamp, views_with_board)
from calibration.extrinsics import calibrate_pair
from calibration.limits import check, limits_for, within


def _sources(items: list[str] | None, sources: list[str] | None) -> list[tuple[str, object, str]]:
    named = named_specs(items or sources or [])
    return [(n, open_checked(s, f"camera {n}"), s) for n, s in named]


def _cameras(a) -> tuple[list[tuple[str, object, str]], list[str], str]:
    """(name, source, spec) of every camera, their names, and the reference camera's name."""
    cams = _sources(a.images, a.source)
    if len(cams) < 2:
        raise InputError("extrinsics needs at least two cameras (--images [NAME=]GLOB twice or more)")
    names = [n for n, _, _ in cams]
    ref = a.reference or names[0]
    if ref not in names:
        raise InputError(f"reference camera {ref!r} is not among {names}")
    return cams, names, ref


def _camera_intrinsics(a, doc, views, specs, board, names):
    """(K, dist) per camera, and what the record says about them: from the unit's file unless
    ``--recalibrate-intrinsics`` (or the file has none), else calibrated from these views."""
    intr, intr_out = {}, {}
    for n in names:
        found = views_with_board(views[n], specs[n], board, f"camera {n}")
        from_file = None if a.recalibrate_intrinsics else calfile_intrinsics(doc, n)
        if from_file is not None:
            intr[n] = from_file[:2]
            intr_out[n] = {"source": "calfile"}
        else:
            res = intrinsics_of_views(found, a.model, True)
            intr[n] = (res.camera_matrix, res.dist)
            intr_out[n] = {"source": "these views", "rms": res.rms,
                           "camera_matrix": res.camera_matrix.tolist(),
                           "dist": res.dist.tolist(), "image_size": list(res.image_size),
                           "views_dropped": res.dropped}
    return intr, intr_out


def _calibrate_camera(a, n, ref, dets, intr, intr_out, size, lim):
    """Stereo calibration of camera ``n`` against ``ref``: (result, record, checks, summary
    line)."""
    try:
        st = calibrate_pair(dets[ref], dets[n], intr[ref], intr[n], size, camera=n,
                            reference=ref, fix_intrinsics=not a.refine_intrinsics)
    except cv2.error as e:
        raise InputError(f"stereo calibration of {n} failed in OpenCV: {e.err or e}") from e
    rec = st.to_json()
    rec["intrinsics"] = intr_out[n]
    if a.refine_intrinsics:
        rec["intrinsics"].update({"refined_camera_matrix": st.K.tolist(),
                                  "refined_dist": st.dist.tolist()})
    checks = [check(f"{n}.rms", st.rms, "<=", lim["max_rms"], "px"),
              check(f"{n}.pairs_used", len(st.pairs), ">=", lim["min_pairs"])]
    if lim["baseline"] > 0:
        checks.append(within(f"{n}.baseline", st.baseline, lim["baseline"], lim["baseline_tol"]))
    line = (f"extrinsics {n} -> {ref}: |T| {st.baseline:.4f} board units, rotation "
            f"{st.angle_deg:.3f} deg, RMS {st.rms:.3f}px over {len(st.pairs)} pairs, "
            f"{len(st.dropped)} dropped")
    return st, rec, checks, line


def _residual_tiles(n, ref, st, views, dets, intr) -> list[dict]:
    """Report tiles of camera ``n``: the board pose seen from ``ref``, carried through R, T and
    projected into ``n``, against the corners ``n`` found."""
    tiles = []
    byk = {v.key: v for v in views[n]}
    for k in st.pairs:
        dr, dc = dets[ref][k], dets[n][k]
        ok, rv, tv = cv2.solvePnP(dr.object_points, dr.image_points, *intr[ref])
        R0 = cv2.Rodrigues(rv)[0]
        rv2 = cv2.Rodrigues(st.R @ R0)[0]
        tv2 = st.R @ tv.reshape(3, 1) + st.T.reshape(3, 1)
        proj, _ = cv2.projectPoints(dc.object_points, rv2, tv2, *intr[n])
        tiles.append({"image": byk[k].image, "points": dc.image_points,
                      "residuals": proj.reshape(-1, 2) - dc.image_points,
                      "name": f"{n}:{k}"})
    return tiles


def _write_report(a, out: dict, tiles: list[dict], ref: str) -> None:
    """The report's PNG and JSON; their paths go into ``out["report"]``."""
    per = {t["name"]: float(np.sqrt(np.mean(np.sum(t["residuals"] ** 2, 1)))) for t in tiles}
    out["report"].append(str(rpt.views_png(Path(a.report) / "extrinsics.png", tiles, per,
                                           None, f"extrinsics vs {ref}: board pose from {ref} "
                                           f"projected through R,T", stamp=stamp(a, out))))
    out["report"].append(str(rpt.write_json(Path(a.report) / "extrinsics.json", out)))


def cmd_extrinsics(a) -> int:
    """Calibrate every camera relative to the reference (default: the first); check RMS, pairs
    used and, with a baseline limit, the baseline."""
    board = parse_board(a.board)
    subpix = default_subpix(board, a.subpix)
    lim = limits_for("extrinsics", a.limit)
    doc, key = doc_and_key(a)
    cams, names, ref = _cameras(a)
    views = collect_synced({n: s for n, s, _ in cams}, board, subpix, want=a.views,
                           max_rounds=a.max_frames, progress=not a.quiet)
    specs = {n: s for n, _, s in cams}
    intr, intr_out = _camera_intrinsics(a, doc, views, specs, board, names)
    dets = {n: {v.key: v.detection for v in views[n] if v.detection is not None} for n in names}
    size = next(v.detection.image_size for v in views[ref] if v.detection is not None)
    cameras, checks, human, tiles_all = {}, [], [], []
    for n in names:
        if n == ref:
            continue
        st, cameras[n], cam_checks, line = _calibrate_camera(a, n, ref, dets, intr, intr_out,
                                                             size, lim)
        checks += cam_checks
        human.append(line)
        if a.report:
            tiles_all += _residual_tiles(n, ref, st, views, dets, intr)
    record = {"reference": ref, "board": board.spec(), "subpix": subpix,
              "cameras": cameras, "intrinsics_used": {ref: intr_out[ref]}}
    record["pass"] = all(c["pass"] for c in checks)
    record["checks"] = checks
    out = {"step": "extrinsics", "rms": max(c["rms"] for c in cameras.values()), **record}
    if len(cameras) == 1:
        only = next(iter(cameras.values()))
        out.update({k: only[k] for k in ("R", "T", "baseline", "angle_deg")})
    out["report"] = []
    if a.report:
        _write_report(a, out, tiles_all, ref)
    out["calfile"] = save_step(a, doc, key, "extrinsics", record, lim)
    return finish(a, out, human)
