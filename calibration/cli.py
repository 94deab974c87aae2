"""``palmgate-calibrate``: the factory calibration tool. Steps, run in this order per unit:

    intrinsics    each camera, from a chessboard or ChArUco board
    extrinsics    every camera relative to the reference camera (simultaneous views)
    registration  the X-ray/NIR sensor onto the reference view (homography at the working distance)
    flatfield     gain map and exposure of the transmission channel from a uniform target
    relay         the turnstile relay over its serial protocol
    verify        the unit's signed calibration file, as the gate will load it

Every step prints its checks against stated limits (``--json``: one JSON object), writes its
results into the unit's signed file with ``--calfile/--serial/--key``, and a report with
``--report DIR``. Exit status: 0 all checks pass, 1 a check failed, 2 bad input.
Thin: the math lives in the sibling modules.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from calibration import calfile
from calibration.boards import Board, Charuco, parse_board
from calibration.capture import View, collect_synced, collect_views
from calibration.extrinsics import calibrate_pair, natural_key, plane_homography
from calibration.flatfield import compute_flatfield
from calibration.intrinsics import MODEL_FLAGS, calibrate_intrinsics, outlier_limit
from calibration.limits import check, limits_for, within
from calibration.registration import apply_homography, estimate_homography, undistort_pixels
from calibration import report as rpt
from device import __version__
from device.vision.calibration import CalibrationError, load_calibration, undistort_image
from device.sources.base import FrameError, FolderSource, open_source
from device.store.keys import DeviceKeyError, load_device_key
from device.relays.serial import RelayError, open_relay

PROG = "palmgate-calibrate"


class InputError(ValueError):
    """Bad input: exit status 2."""


# ---------------------------------------------------------------------------------------------
# shared helpers
def _default_subpix(board: Board, n: int | None) -> int | None:
    if n is not None:
        return n if n > 0 else None
    return None if isinstance(board, Charuco) else 5


def _named(items: list[str], prefix: str = "cam") -> list[tuple[str, str]]:
    out = []
    for i, it in enumerate(items):
        m = re.fullmatch(r"([A-Za-z_][\w-]*)=(.+)", it)
        out.append((m.group(1), m.group(2)) if m else (f"{prefix}{i}", it))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise InputError(f"camera names must differ: {names}")
    return out


def _source(spec: str, what: str):
    src = open_source(spec)
    if isinstance(src, FolderSource) and not len(src):
        raise InputError(f"no images match {spec!r} ({what})")
    return src


def _found(views: list[View], spec: str, board: Board, who: str) -> list[View]:
    found = [v for v in views if v.detection is not None]
    if not found:
        hint = ("COLSxROWS counts inner corners" if board.kind == "chessboard"
                else "COLSxROWS counts squares; check the dictionary and marker size")
        raise InputError(f"no {board.kind} board {board.spec()} found in any of the "
                         f"{len(views)} image(s) of {who} ({spec}); is the board spec right? "
                         f"({hint})")
    return found


def _doc_and_key(a):
    if not a.calfile:
        return None, None
    if not a.serial or not a.key:
        raise InputError("--calfile needs --serial (the unit's serial) and --key (device key file)")
    key = load_device_key(a.key, create=a.create_key)
    return calfile.open_document(a.calfile, key, a.serial, fresh=a.fresh), key


def _calfile_intrinsics(doc, name):
    if doc is None:
        return None
    r = doc.get("results", {}).get("intrinsics", {}).get(name)
    if r is None:
        return None
    return np.asarray(r["camera_matrix"], float), np.asarray(r["dist"], float), tuple(r["image_size"])


def _save(a, doc, key, step: str, record: dict, limits: dict, sub: str | None = None):
    if doc is None:
        return None
    calfile.set_step(doc, step, record, limits, sub)
    calfile.write_document(a.calfile, doc, key)
    return str(a.calfile)


def _finish(a, out: dict, human: list[str]) -> int:
    ok = all(c["pass"] for c in out["checks"])
    out["pass"] = ok
    if a.json:
        print(json.dumps(out, indent=1, allow_nan=False))
    if not a.quiet:
        stream = sys.stderr if a.json else sys.stdout
        for ln in human:
            print(ln, file=stream)
        for c in out["checks"]:
            lim = (f"{c['op']} {c['limit']:g}" + (f" ±{100 * c['rel_tol']:g}%" if "rel_tol" in c else ""))
            v = c["value"]
            vs = f"{v:.4g}" if isinstance(v, float) else str(v)
            print(f"  {c['name']:<32} {vs:>10} {c['unit']:<3} {lim:<16} "
                  f"{'PASS' if c['pass'] else 'FAIL'}", file=stream)
        print(f"{out['step']}: {'PASS' if ok else 'FAIL'}", file=stream)
    return 0 if ok else 1


def _dropped_residuals(det, K, dist):
    ok, r, t = cv2.solvePnP(det.object_points, det.image_points, K, dist)
    if not ok:
        return None
    proj, _ = cv2.projectPoints(det.object_points, r, t, K, dist)
    return proj.reshape(-1, 2) - det.image_points


# ---------------------------------------------------------------------------------------------
# intrinsics
def _intrinsics(found: list[View], model: str, drop: bool):
    dets = [v.detection for v in found]
    try:
        return calibrate_intrinsics(dets, [v.name for v in found], model=model, drop_outliers=drop)
    except cv2.error as e:
        raise InputError(f"calibration failed in OpenCV: {e.err or e}") from e


def _intrinsics_report(a, name: str, found: list[View], res) -> list[str]:
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
                        f"{len(res.dropped)} dropped")
    return [str(png)]


def cmd_intrinsics(a) -> int:
    board = parse_board(a.board)
    subpix = _default_subpix(board, a.subpix)
    lim = limits_for("intrinsics", a.limit)
    doc, key = _doc_and_key(a)
    spec = a.images or a.source
    src = _source(spec, f"camera {a.camera}")
    views = collect_views(src, board, subpix, f"{a.camera:>8}", want=a.views,
                          max_frames=a.max_frames, progress=not a.quiet)
    found = _found(views, spec, board, f"camera {a.camera}")
    res = _intrinsics(found, a.model, not a.no_drop)
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
    out["report"] = _intrinsics_report(a, a.camera, found, res)
    if a.report:
        out["report"].append(str(rpt.write_json(Path(a.report) / f"intrinsics_{a.camera}.json", out)))
    out["calfile"] = _save(a, doc, key, "intrinsics", record, lim, sub=a.camera)
    K = res.camera_matrix
    human = [f"intrinsics {a.camera}: board found in {len(found)}/{len(views)} images, "
             f"{len(res.dropped)} outlier view(s) dropped "
             f"{[d['view'] for d in res.dropped] if res.dropped else ''}",
             f"  fx {K[0, 0]:.2f}  fy {K[1, 1]:.2f}  cx {K[0, 2]:.2f}  cy {K[1, 2]:.2f}  "
             f"dist {np.array2string(res.dist, precision=4)}"]
    return _finish(a, out, human)


# ---------------------------------------------------------------------------------------------
# extrinsics
def _sources(items: list[str] | None, sources: list[str] | None) -> list[tuple[str, object, str]]:
    named = _named(items or sources or [])
    return [(n, _source(s, f"camera {n}"), s) for n, s in named]


def cmd_extrinsics(a) -> int:
    board = parse_board(a.board)
    subpix = _default_subpix(board, a.subpix)
    lim = limits_for("extrinsics", a.limit)
    doc, key = _doc_and_key(a)
    cams = _sources(a.images, a.source)
    if len(cams) < 2:
        raise InputError("extrinsics needs at least two cameras (--images [NAME=]GLOB twice or more)")
    names = [n for n, _, _ in cams]
    ref = a.reference or names[0]
    if ref not in names:
        raise InputError(f"reference camera {ref!r} is not among {names}")
    views = collect_synced({n: s for n, s, _ in cams}, board, subpix, want=a.views,
                           max_rounds=a.max_frames, progress=not a.quiet)
    specs = {n: s for n, _, s in cams}
    intr, intr_out = {}, {}
    for n in names:
        found = _found(views[n], specs[n], board, f"camera {n}")
        from_file = None if a.recalibrate_intrinsics else _calfile_intrinsics(doc, n)
        if from_file is not None:
            intr[n] = from_file[:2]
            intr_out[n] = {"source": "calfile"}
        else:
            res = _intrinsics(found, a.model, True)
            intr[n] = (res.camera_matrix, res.dist)
            intr_out[n] = {"source": "these views", "rms": res.rms,
                           "camera_matrix": res.camera_matrix.tolist(),
                           "dist": res.dist.tolist(), "image_size": list(res.image_size),
                           "views_dropped": res.dropped}
    dets = {n: {v.key: v.detection for v in views[n] if v.detection is not None} for n in names}
    size = next(v.detection.image_size for v in views[ref] if v.detection is not None)
    cameras, checks, human, tiles_all = {}, [], [], []
    for n in names:
        if n == ref:
            continue
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
        cameras[n] = rec
        checks.append(check(f"{n}.rms", st.rms, "<=", lim["max_rms"], "px"))
        checks.append(check(f"{n}.pairs_used", len(st.pairs), ">=", lim["min_pairs"]))
        if lim["baseline"] > 0:
            checks.append(within(f"{n}.baseline", st.baseline, lim["baseline"], lim["baseline_tol"]))
        human.append(f"extrinsics {n} -> {ref}: |T| {st.baseline:.4f} board units, rotation "
                     f"{st.angle_deg:.3f} deg, RMS {st.rms:.3f}px over {len(st.pairs)} pairs, "
                     f"{len(st.dropped)} dropped")
        if a.report:
            byk = {v.key: v for v in views[n]}
            for k in st.pairs:
                dr, dc = dets[ref][k], dets[n][k]
                ok, rv, tv = cv2.solvePnP(dr.object_points, dr.image_points, *intr[ref])
                R0 = cv2.Rodrigues(rv)[0]
                rv2 = cv2.Rodrigues(st.R @ R0)[0]
                tv2 = st.R @ tv.reshape(3, 1) + st.T.reshape(3, 1)
                proj, _ = cv2.projectPoints(dc.object_points, rv2, tv2, *intr[n])
                tiles_all.append({"image": byk[k].image, "points": dc.image_points,
                                  "residuals": proj.reshape(-1, 2) - dc.image_points,
                                  "name": f"{n}:{k}"})
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
        per = {t["name"]: float(np.sqrt(np.mean(np.sum(t["residuals"] ** 2, 1)))) for t in tiles_all}
        out["report"].append(str(rpt.views_png(Path(a.report) / "extrinsics.png", tiles_all, per,
                                               None, f"extrinsics vs {ref}: board pose from {ref} "
                                               f"projected through R,T")))
        out["report"].append(str(rpt.write_json(Path(a.report) / "extrinsics.json", out)))
    out["calfile"] = _save(a, doc, key, "extrinsics", record, lim)
    return _finish(a, out, human)


# ---------------------------------------------------------------------------------------------
# registration
def cmd_registration(a) -> int:
    board = parse_board(a.board)
    subpix = _default_subpix(board, a.subpix)
    lim = limits_for("registration", a.limit)
    doc, key = _doc_and_key(a)
    s_spec, r_spec = a.sensor_images or a.sensor_source, a.ref_images or a.ref_source
    if not s_spec or not r_spec:
        raise InputError("registration needs --sensor-images and --ref-images (or --sensor-source "
                         "and --ref-source)")
    views = collect_synced({a.sensor: _source(s_spec, f"sensor {a.sensor}"),
                            a.reference: _source(r_spec, f"camera {a.reference}")},
                           board, subpix, want=a.views, max_rounds=a.max_frames,
                           progress=not a.quiet)
    _found(views[a.sensor], s_spec, board, f"sensor {a.sensor}")
    _found(views[a.reference], r_spec, board, f"camera {a.reference}")
    s_in = None if a.no_undistort else _calfile_intrinsics(doc, a.sensor)
    r_in = None if a.no_undistort else _calfile_intrinsics(doc, a.reference)
    s_in, r_in = (s_in[:2] if s_in else None), (r_in[:2] if r_in else None)
    sd = {v.key: v.detection for v in views[a.sensor] if v.detection is not None}
    rd = {v.key: v.detection for v in views[a.reference] if v.detection is not None}
    if a.mode == "stereo":
        # the board moves through depth; R, T and the working plane give the homography
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
                  "ref_undistorted": True}
        checks = [check("stereo.rms", st.rms, "<=", lim["max_rms"], "px"),
                  check("stereo.pairs_used", len(st.pairs), ">=", 3)]
        points = sum(len(sd[k]) for k in st.pairs)
    else:
        res = estimate_homography(sd, rd, s_in, r_in)
        record = {"sensor": a.sensor, "reference": a.reference, "board": board.spec(),
                  "mode": a.mode, **res.to_json()}
        checks = [check("rms", res.rms, "<=", lim["max_rms"], "px"),
                  check("points", res.points, ">=", lim["min_points"]),
                  check("max_view_disagreement", res.max_view_disagreement_px, "<=",
                        lim["max_view_disagreement_px"], "px")]
        points = res.points
    record["pass"] = all(c["pass"] for c in checks)
    record["checks"] = checks
    out = {"step": "registration", **record, "report": []}
    if a.report:
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
                                               None, f"{a.sensor} on {a.reference} (50% blend)")))
        out["report"].append(str(rpt.write_json(Path(a.report) / "registration.json", out)))
    out["calfile"] = _save(a, doc, key, "registration", record, lim)
    human = [f"registration {a.sensor} -> {a.reference} ({a.mode}): {points} points, "
             f"RMS {record['rms']:.3f}px"]
    return _finish(a, out, human)


# ---------------------------------------------------------------------------------------------
# flatfield
def _read_all(spec: str, what: str, n: int | None, quiet: bool) -> list[np.ndarray]:
    src = _source(spec, what)
    frames = []
    src.start()
    from calibration.capture import Progress
    bar = Progress(len(src) if isinstance(src, FolderSource) else n, f"{what:>8}", enabled=not quiet)
    try:
        while n is None or len(frames) < n:
            try:
                img, _ = src.capture()
            except EOFError:
                break
            frames.append(img)
            bar.update(len(frames), len(frames))
    finally:
        src.stop()
        bar.close()
    return frames


def cmd_flatfield(a) -> int:
    lim = limits_for("flatfield", a.limit)
    doc, key = _doc_and_key(a)
    spec = a.images or a.source
    n = None if a.images else a.frames
    frames = _read_all(spec, "flat", n, a.quiet)
    dark = _read_all(a.dark, "dark", None, a.quiet) if a.dark else None
    try:
        res = compute_flatfield(frames, dark, dark_level=a.dark_level, bit_depth=a.bit_depth)
    except ValueError as e:
        raise InputError(str(e)) from e
    record = {"sensor": a.sensor, **res.to_json()}
    checks = [check("frames", res.frames, ">=", lim["min_frames"]),
              check("mean_level", res.mean_level, ">=", lim["min_mean_level"]),
              check("mean_level", res.mean_level, "<=", lim["max_mean_level"]),
              check("saturated_fraction", res.saturated_fraction, "<=", lim["max_saturated_fraction"]),
              check("uniformity", res.uniformity, ">=", lim["min_uniformity"]),
              check("residual_nonuniformity", res.residual_nonuniformity, "<=",
                    lim["max_residual_nonuniformity"]),
              check("defect_fraction", res.defect_fraction, "<=", lim["max_defect_fraction"])]
    record["pass"] = all(c["pass"] for c in checks)
    record["checks"] = checks
    out = {"step": "flatfield", **record, "report": []}
    if a.report:
        from device.vision.calibration import apply_gain, gain_map
        w, h = res.image_size
        g = gain_map(res.gain_grid, (w, h))
        gv = cv2.applyColorMap(cv2.normalize(g, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8),
                               cv2.COLORMAP_VIRIDIS)
        mean = np.mean([f.astype(np.float32) if f.ndim == 2 else
                        cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32) for f in frames], 0)
        tiles = [{"image": mean, "points": np.zeros((0, 2)), "name": "mean flat"},
                 {"image": gv, "points": np.zeros((0, 2)), "name": f"gain {res.gain_range[0]:.2f}..{res.gain_range[1]:.2f}"},
                 {"image": apply_gain(mean, g, res.dark_level), "points": np.zeros((0, 2)), "name": "corrected"}]
        out["report"].append(str(rpt.views_png(Path(a.report) / "flatfield.png", tiles, {}, None,
                                               f"flat field {a.sensor}")))
        out["report"].append(str(rpt.write_json(Path(a.report) / "flatfield.json", out)))
    out["calfile"] = _save(a, doc, key, "flatfield", record, lim)
    human = [f"flatfield {a.sensor}: {res.frames} frames {w_h(res.image_size)}, mean level "
             f"{100 * res.mean_level:.1f}% of full scale, gain {res.gain_range[0]:.3f}..{res.gain_range[1]:.3f}"]
    return _finish(a, out, human)


def w_h(size) -> str:
    return f"{size[0]}x{size[1]}"


# ---------------------------------------------------------------------------------------------
# relay
def cmd_relay(a) -> int:
    lim = limits_for("relay", a.limit)
    doc, key = _doc_and_key(a)
    kw = {"channels": a.channels, "baudrate": a.baud}
    if a.protocol == "modbus":
        kw.update(unit=a.unit, timeout=a.timeout)
    events, error, ok_cycles = [], None, 0
    t0 = time.monotonic()
    relay = None
    try:
        relay = open_relay(a.protocol, a.port, **kw)
        events.append("opened (all channels off)")
        for i in range(a.cycles):
            relay.pulse(a.channel, a.pulse_ms)
            time.sleep(a.pulse_ms / 1000.0 + 0.15)
            if relay.errors:
                raise relay.errors[-1]
            relay.off(a.channel)                # explicit, verified off after the timed one
            ok_cycles += 1
            events.append(f"cycle {i + 1}: pulse {a.pulse_ms} ms ended by the driver's timer")
    except (RelayError, ValueError) as e:
        error = str(e)
    finally:
        if relay is not None:
            try:
                relay.close()
                events.append("closed (all channels off)")
            except RelayError as e:
                error = error or str(e)
    acknowledged = a.protocol == "modbus"
    checks = [check("cycles_ok", ok_cycles, ">=", max(lim["min_cycles"], a.cycles))]
    record = {"protocol": a.protocol, "port": a.port, "channel": a.channel,
              "pulse_ms": a.pulse_ms, "cycles": a.cycles, "cycles_ok": ok_cycles,
              "acknowledged": acknowledged, "error": error, "events": events,
              "seconds": round(time.monotonic() - t0, 3)}
    if a.confirm and error is None:
        ans = input(f"Did relay channel {a.channel} click {a.cycles} time(s)? [y/N] ")
        checks.append(check("operator_confirmed", int(ans.strip().lower() in ("y", "yes")), ">=", 1))
    record["pass"] = all(c["pass"] for c in checks)
    record["checks"] = checks
    out = {"step": "relay", **record}
    out["calfile"] = _save(a, doc, key, "relay", record, lim)
    human = [f"relay {a.protocol} on {a.port}: {ok_cycles}/{a.cycles} cycles"
             + ("" if acknowledged else " (LCUS boards never acknowledge: only the operator can "
                                        "confirm the click, use --confirm)")
             + (f"; ERROR: {error}" if error else "")]
    return _finish(a, out, human)


# ---------------------------------------------------------------------------------------------
# verify
def cmd_verify(a) -> int:
    if not a.calfile or not a.key:
        raise InputError("verify needs --calfile and --key")
    key = load_device_key(a.key)
    required = tuple(s for s in (a.require or "").split(",") if s)
    max_age = a.max_age_days * 86400 if a.max_age_days else None
    cal = load_calibration(a.calfile, key, unit_serial=a.serial, max_age_s=max_age,
                           required=required)
    res = cal.results
    checks = []
    for step, r in sorted(res.items()):
        recs = r.items() if step == "intrinsics" else [("", r)]
        for sub, rec in recs:
            checks.append(check(f"{step}{'.' + sub if sub else ''}.pass", int(bool(rec.get("pass"))),
                                ">=", 1))
    out = {"step": "verify", "unit_serial": cal.unit_serial, "signed_utc": cal.doc.get("signed_utc"),
           "tool": cal.doc.get("tool"), "steps": sorted(res), "checks": checks}
    human = [f"calibration file {a.calfile}: signature OK, unit {cal.unit_serial}, "
             f"signed {cal.doc.get('signed_utc')}, steps {sorted(res)}"]
    return _finish(a, out, human)


# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="PalmGate factory calibration: run the steps in order "
                                "(intrinsics, extrinsics, registration, flatfield, relay, "
                                "verify) for each unit.",
                                epilog="Exit status: 0 pass, 1 a check failed, 2 bad input.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("output and the unit's file")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g.add_argument("--quiet", action="store_true", help="no progress bar or human summary")
    g.add_argument("--report", metavar="DIR", help="write the report (JSON + PNG) here")
    g.add_argument("--calfile", metavar="PATH", help="the unit's calibration file to update")
    g.add_argument("--serial", help="the unit's serial number")
    g.add_argument("--key", metavar="PATH", help="device key file (32 bytes, mode 0600)")
    g.add_argument("--create-key", action="store_true", help="create the device key if missing")
    g.add_argument("--fresh", action="store_true", help="start a new calibration file")
    g.add_argument("--limit", action="append", metavar="NAME=VALUE",
                   help="override a pass/fail limit of this step (see calibration/limits.py)")
    board = argparse.ArgumentParser(add_help=False)
    b = board.add_argument_group("board")
    b.add_argument("--board", required=True,
                   help="chessboard:COLSxROWS:SQUARE (inner corners) or "
                        "charuco:COLSxROWS:SQUARE:MARKER:DICT (squares), e.g. "
                        "chessboard:9x6:1.0, charuco:7x5:40:30:DICT_5X5_100")
    b.add_argument("--subpix", type=int, metavar="N",
                   help="cornerSubPix window half-size N, i.e. OpenCV winSize (N,N) and a "
                        "(2N+1)-pixel window (default 5 for a chessboard, as OpenCV's test; "
                        "ChArUco: the detector's own refinement; 0 = off)")
    b.add_argument("--views", type=int, default=15, help="views to capture from a live source")
    b.add_argument("--max-frames", type=int, default=None, help="give up after this many frames")
    sub = p.add_subparsers(dest="step", metavar="STEP")

    sp = sub.add_parser("intrinsics", parents=[common, board], help="one camera's intrinsics")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="GLOB", help="images (glob or folder)")
    src.add_argument("--source", metavar="SPEC", help="live camera: opencv:0, opencv:/dev/video2")
    sp.add_argument("--camera", default="cam0", help="camera name in the unit's file")
    sp.add_argument("--model", choices=sorted(MODEL_FLAGS), default="standard")
    sp.add_argument("--no-drop", action="store_true", help="keep outlier views")
    sp.set_defaults(fn=cmd_intrinsics)

    sp = sub.add_parser("extrinsics", parents=[common, board],
                        help="every camera relative to the reference camera")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", action="append", metavar="[NAME=]GLOB",
                     help="one per camera, the reference first; simultaneous frames share the "
                          "last number of their file names")
    src.add_argument("--source", action="append", metavar="[NAME=]SPEC", help="live cameras")
    sp.add_argument("--reference", help="reference camera (default: the first)")
    sp.add_argument("--model", choices=sorted(MODEL_FLAGS), default="standard")
    sp.add_argument("--recalibrate-intrinsics", action="store_true",
                    help="calibrate intrinsics from these views even if the file has them")
    sp.add_argument("--refine-intrinsics", action="store_true",
                    help="let stereo calibration refine the intrinsics (default: fixed)")
    sp.set_defaults(fn=cmd_extrinsics)

    sp = sub.add_parser("registration", parents=[common, board],
                        help="X-ray/NIR sensor onto the reference view")
    sp.add_argument("--sensor-images", metavar="GLOB")
    sp.add_argument("--ref-images", metavar="GLOB")
    sp.add_argument("--sensor-source", metavar="SPEC")
    sp.add_argument("--ref-source", metavar="SPEC")
    sp.add_argument("--sensor", default="ir", help="sensor name (default ir)")
    sp.add_argument("--reference", default="cam0", help="reference camera (default cam0)")
    sp.add_argument("--mode", choices=("homography", "stereo"), default="homography")
    sp.add_argument("--working-distance", type=float, help="stereo mode: plane distance")
    sp.add_argument("--no-undistort", action="store_true",
                    help="ignore intrinsics in the file (register raw images)")
    sp.set_defaults(fn=cmd_registration)

    sp = sub.add_parser("flatfield", parents=[common], help="gain map of the IR/X-ray channel")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="GLOB", help="frames of a uniform target")
    src.add_argument("--source", metavar="SPEC", help="live sensor")
    sp.add_argument("--frames", type=int, default=16, help="frames to take from a live source")
    sp.add_argument("--dark", metavar="GLOB", help="dark frames (source off)")
    sp.add_argument("--dark-level", type=float, help="known dark level instead of dark frames")
    sp.add_argument("--bit-depth", type=int, help="sensor bit depth (default: the image dtype)")
    sp.add_argument("--sensor", default="ir")
    sp.set_defaults(fn=cmd_flatfield)

    sp = sub.add_parser("relay", parents=[common], help="the turnstile relay answers")
    sp.add_argument("--protocol", choices=("lcus", "modbus"), required=True)
    sp.add_argument("--port", required=True, help="serial port or pyserial URL")
    sp.add_argument("--channel", type=int, default=1)
    sp.add_argument("--channels", type=int, default=1)
    sp.add_argument("--unit", type=int, default=1, help="Modbus unit id")
    sp.add_argument("--baud", type=int, default=9600)
    sp.add_argument("--timeout", type=float, default=0.5, help="Modbus answer timeout (s)")
    sp.add_argument("--pulse-ms", type=int, default=200)
    sp.add_argument("--cycles", type=int, default=2)
    sp.add_argument("--confirm", action="store_true", help="ask the operator whether it clicked")
    sp.set_defaults(fn=cmd_relay)

    sp = sub.add_parser("verify", parents=[common], help="check the unit's signed file")
    sp.add_argument("--max-age-days", type=float)
    sp.add_argument("--require", help="comma-separated steps that must be present")
    sp.set_defaults(fn=cmd_verify)
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if not getattr(a, "fn", None):
        p.print_help()
        return 0
    try:
        return a.fn(a)
    except (InputError, ValueError, FrameError, CalibrationError, DeviceKeyError,
            FileNotFoundError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
