"""``palmgate-calibrate registration``: the X-ray/NIR sensor onto the reference camera's view,
as a homography at the working distance.

Two modes: ``homography`` fits it to the board corners both saw (the board held on the working
plane, :func:`_fitted_homography`); ``stereo`` calibrates the pair while the board moves through
depth and derives it from R, T and the working plane (:func:`_stereo_homography`). Both work
on undistorted pixels where the unit's file has the intrinsics.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration import report as rpt
from calibration.boards import parse_board
from calibration.capture import collect_synced
from calibration.commands.common import (InputError, calfile_intrinsics, default_subpix,
                                         doc_and_key, finish, open_checked, save_step,
                                         stamp, views_with_board)
from calibration.extrinsics import calibrate_pair, natural_key, plane_homography
from calibration.limits import check, limits_for
from calibration.registration import (apply_homography, board_plane, estimate_homography,
                                      undistort_pixels)
from device.vision.calibration import undistort_image


def _registration_views(a, board, subpix):
    """Simultaneous views of the sensor and the reference camera; each must show the board."""
    s_spec, r_spec = a.sensor_images or a.sensor_source, a.ref_images or a.ref_source
    if not s_spec or not r_spec:
        raise InputError("registration needs --sensor-images and --ref-images (or --sensor-source "
                         "and --ref-source)")
    views = collect_synced({a.sensor: open_checked(s_spec, f"sensor {a.sensor}"),
                            a.reference: open_checked(r_spec, f"camera {a.reference}")},
                           board, subpix, want=a.views, max_rounds=a.max_frames,
                           progress=not a.quiet)
    views_with_board(views[a.sensor], s_spec, board, f"sensor {a.sensor}")
    views_with_board(views[a.reference], r_spec, board, f"camera {a.reference}")
    return views


def _stereo_homography(a, board, sd, rd, s_in, r_in, lim):
    """(record, checks, points) of stereo mode: the board moves through depth; R, T and the
    working plane give the homography."""
    if s_in is None or r_in is None:
        raise InputError("--mode stereo needs the intrinsics of both the sensor and the "
                         "reference camera in --calfile")
    if not a.working_distance:
        raise InputError("--mode stereo needs --working-distance (board units, along the "
                         "reference camera's axis)")
    sensor_size = next(iter(sd.values())).image_size
    ref_size = next(iter(rd.values())).image_size
    st = calibrate_pair(rd, sd, r_in, s_in, ref_size, camera=a.sensor, reference=a.reference)
    H = np.linalg.inv(plane_homography(r_in[0], s_in[0], st.R, st.T, (0, 0, 1),
                                       a.working_distance))
    H /= H[2, 2]
    record = {"sensor": a.sensor, "reference": a.reference, "board": board.spec(),
              "mode": a.mode, "H": H.tolist(), "rms": st.rms, "stereo": st.to_json(),
              "working_distance": a.working_distance, "sensor_size": list(sensor_size),
              "ref_size": list(ref_size), "sensor_undistorted": True,
              "ref_undistorted": True,
              "plane": {"normal": [0.0, 0.0, 1.0], "distance": float(a.working_distance)}}
    checks = [check("stereo.rms", st.rms, "<=", lim["max_rms"], "px"),
              check("stereo.pairs_used", len(st.pairs), ">=", 3)]
    points = sum(len(sd[k]) for k in st.pairs)
    return record, checks, points


def _fitted_homography(a, board, sd, rd, s_in, r_in, lim):
    """(record, checks, points) of homography mode: fitted to the corners both views saw."""
    res = estimate_homography(sd, rd, s_in, r_in)
    record = {"sensor": a.sensor, "reference": a.reference, "board": board.spec(),
              "mode": a.mode, **res.to_json()}
    if r_in is not None:           # the working plane ties the sensor to the other views
        keys = sorted(set(sd) & set(rd), key=natural_key)
        record["plane"] = board_plane([rd[k] for k in keys], *r_in)
    checks = [check("rms", res.rms, "<=", lim["max_rms"], "px"),
              check("points", res.points, ">=", lim["min_points"]),
              check("max_view_disagreement", res.max_view_disagreement_px, "<=",
                    lim["max_view_disagreement_px"], "px")]
    return record, checks, res.points


def _write_report(a, out: dict, record: dict, views, sd, rd, s_in, r_in) -> None:
    """The report: every pair's sensor view warped onto the (undistorted) reference view as a
    50% blend with the corner residuals, as PNG, and the result as JSON."""
    H = np.asarray(record["H"])
    tiles, per = [], {}
    byk = {v.key: v for v in views[a.reference]}
    for k in sorted(set(sd) & set(rd), key=natural_key):
        ids = np.intersect1d(sd[k].ids, rd[k].ids)
        ps = undistort_pixels(sd[k].image_points[np.isin(sd[k].ids, ids)], *(s_in or (None, None)))
        pr = undistort_pixels(rd[k].image_points[np.isin(rd[k].ids, ids)], *(r_in or (None, None)))
        resid = apply_homography(H, ps) - pr
        sens = views[a.sensor][[v.key for v in views[a.sensor]].index(k)].image
        ref_img = byk[k].image
        if s_in:                           # show what the runtime shows: undistorted views
            sens = undistort_image(sens, *s_in)
        if r_in:
            ref_img = undistort_image(ref_img, *r_in)
        warped = cv2.warpPerspective(rpt._bgr(sens), H, tuple(record["ref_size"]))
        blend = cv2.addWeighted(rpt._bgr(ref_img), 0.5, warped, 0.5, 0)
        tiles.append({"image": blend, "points": pr, "residuals": resid, "name": k})
        per[k] = float(np.sqrt(np.mean(np.sum(resid ** 2, 1))))
    out["report"].append(str(rpt.views_png(Path(a.report) / "registration.png", tiles, per,
                                           None, f"{a.sensor} on {a.reference} (50% blend)",
                                           stamp=stamp(a, out))))
    out["report"].append(str(rpt.write_json(Path(a.report) / "registration.json", out)))


def cmd_registration(a) -> int:
    """Register the sensor onto the reference view; check RMS and (homography mode) points and
    the agreement between views."""
    board = parse_board(a.board)
    subpix = default_subpix(board, a.subpix)
    lim = limits_for("registration", a.limit)
    doc, key = doc_and_key(a)
    views = _registration_views(a, board, subpix)
    s_in = None if a.no_undistort else calfile_intrinsics(doc, a.sensor)
    r_in = None if a.no_undistort else calfile_intrinsics(doc, a.reference)
    s_in, r_in = (s_in[:2] if s_in else None), (r_in[:2] if r_in else None)
    sd = {v.key: v.detection for v in views[a.sensor] if v.detection is not None}
    rd = {v.key: v.detection for v in views[a.reference] if v.detection is not None}
    fit = _stereo_homography if a.mode == "stereo" else _fitted_homography
    record, checks, points = fit(a, board, sd, rd, s_in, r_in, lim)
    record["pass"] = all(c["pass"] for c in checks)
    record["checks"] = checks
    out = {"step": "registration", **record, "report": []}
    if a.report:
        _write_report(a, out, record, views, sd, rd, s_in, r_in)
    out["calfile"] = save_step(a, doc, key, "registration", record, lim)
    human = [f"registration {a.sensor} -> {a.reference} ({a.mode}): {points} points, "
             f"RMS {record['rms']:.3f}px"]
    return finish(a, out, human)
