"""``palmgate-calibrate flatfield``: gain map and exposure of the transmission (IR/X-ray)
channel from frames of a uniform target, with dark frames or a known dark level."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration import report as rpt
from calibration.commands.common import (InputError, doc_and_key, finish, open_checked,
                                         save_step, stamp)
from calibration.flatfield import compute_flatfield
from calibration.limits import check, limits_for
from device.sources.base import FolderSource


def _read_all(spec: str, what: str, n: int | None, quiet: bool) -> list[np.ndarray]:
    src = open_checked(spec, what)
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


def _write_report(a, out: dict, res, frames: list[np.ndarray]) -> None:
    """The report: the mean flat, the gain map and the corrected mean as PNG, the result as
    JSON; their paths go into ``out["report"]``."""
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
                                           f"flat field {a.sensor}", stamp=stamp(a, out))))
    out["report"].append(str(rpt.write_json(Path(a.report) / "flatfield.json", out)))


def cmd_flatfield(a) -> int:
    """Compute the flat field from ``--images`` or a live ``--source``; check frames, level,
    saturation, uniformity, residual non-uniformity and defects against the limits."""
    lim = limits_for("flatfield", a.limit)
    doc, key = doc_and_key(a)
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
        _write_report(a, out, res, frames)
    out["calfile"] = save_step(a, doc, key, "flatfield", record, lim)
    human = [f"flatfield {a.sensor}: {res.frames} frames {w_h(res.image_size)}, mean level "
             f"{100 * res.mean_level:.1f}% of full scale, gain {res.gain_range[0]:.3f}..{res.gain_range[1]:.3f}"]
    return finish(a, out, human)


def w_h(size) -> str:
    return f"{size[0]}x{size[1]}"
