"""What the calibration steps share: the bad-input error, opening image sources, the board
views found, the unit's signed file (open, read intrinsics, save a step) and the step's
printed result."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from calibration import calfile
from calibration.board_check import board_mismatch, likely_board
from calibration.boards import Board, Charuco
from calibration.capture import View
from calibration.intrinsics import calibrate_intrinsics
from calibration.report import stamp_text, write_json
from device.ops.unit_serial import board_serial
from device.sources.base import FolderSource, open_source
from device.store.keys import load_device_key


class InputError(ValueError):
    """Bad input: exit status 2."""


def default_subpix(board: Board, n: int | None) -> int | None:
    if n is not None:
        return n if n > 0 else None
    return None if isinstance(board, Charuco) else 5


def named_specs(items: list[str], prefix: str = "cam") -> list[tuple[str, str]]:
    """(name, spec) of ``[NAME=]SPEC`` arguments; unnamed ones are ``prefix`` + their index."""
    out = []
    for i, it in enumerate(items):
        m = re.fullmatch(r"([A-Za-z_][\w-]*)=(.+)", it)
        out.append((m.group(1), m.group(2)) if m else (f"{prefix}{i}", it))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise InputError(f"camera names must differ: {names}")
    return out


def open_checked(spec: str, what: str):
    """The frame source of ``spec``; an image folder or glob that matches nothing is bad input."""
    src = open_source(spec)
    if isinstance(src, FolderSource) and not len(src):
        raise InputError(f"no images match {spec!r} ({what})")
    return src


def views_with_board(views: list[View], spec: str, board: Board, who: str) -> list[View]:
    """The views where the board was found. None at all, or a board larger than the spec
    (a chessboard spec is found inside a larger board), is bad input naming the likely board."""
    found = [v for v in views if v.detection is not None]
    if not found:
        hint = ("COLSxROWS counts inner corners" if board.kind == "chessboard"
                else "COLSxROWS counts squares; check the dictionary and marker size")
        likely = likely_board(board, [v.image for v in views]) if views else None
        seen = f"; the images look like {likely}" if likely else ""
        raise InputError(f"no {board.kind} board {board.spec()} found in any of the "
                         f"{len(views)} image(s) of {who} ({spec}); is the board spec right? "
                         f"({hint}){seen}")
    missed = [v for v in views if v.detection is None]
    if len(found) < 3 and missed:       # a few chance finds of a spec the board does not have?
        likely = likely_board(board, [v.image for v in missed])
        if likely and likely != board.spec():
            raise InputError(f"board {board.spec()} found in only {len(found)} of the "
                             f"{len(views)} image(s) of {who} ({spec}); the images look like "
                             f"{likely}: is the board spec right?")
    why = board_mismatch(board, found)
    if why:
        raise InputError(f"board spec {board.spec()} does not match the images of {who} "
                         f"({spec}): {why}")
    return found


def intrinsics_of_views(found: list[View], model: str, drop: bool):
    """Intrinsics calibrated from the views with a board; an OpenCV failure is bad input."""
    dets = [v.detection for v in found]
    try:
        return calibrate_intrinsics(dets, [v.name for v in found], model=model, drop_outliers=drop)
    except cv2.error as e:
        raise InputError(f"calibration failed in OpenCV: {e.err or e}") from e


def doc_and_key(a):
    """(document, key) of the unit's file named by ``--calfile``, or (None, None) without it."""
    if not a.calfile:
        return None, None
    if not a.serial or not a.key:
        raise InputError("--calfile needs --serial (the unit's serial) and --key (device key file)")
    key = load_device_key(a.key, create=a.create_key)
    return calfile.open_document(a.calfile, key, a.serial, fresh=a.fresh), key


def calfile_intrinsics(doc, name):
    """(K, dist, image size) of camera ``name`` from the unit's file, or None."""
    if doc is None:
        return None
    r = doc.get("results", {}).get("intrinsics", {}).get(name)
    if r is None:
        return None
    return np.asarray(r["camera_matrix"], float), np.asarray(r["dist"], float), tuple(r["image_size"])


def save_step(a, doc, key, step: str, record: dict, limits: dict, sub: str | None = None):
    """Write a step's record into the unit's signed file; its path, or None without one."""
    if doc is None:
        return None
    calfile.set_step(doc, step, record, limits, sub)
    calfile.write_document(a.calfile, doc, key)
    return str(a.calfile)


def resolve_serial(a) -> None:
    """``--serial auto``: the board's own serial (device tree); ``--report`` needs a serial
    (every report is stamped with it)."""
    if getattr(a, "serial", None) == "auto":
        a.serial = board_serial()
        if a.serial is None:
            raise InputError("--serial auto: this board has no readable serial "
                             "(/proc/device-tree/serial-number); give it")
    if getattr(a, "report", None) and not getattr(a, "serial", None):
        raise InputError("--report needs --serial (the report is stamped with the unit's "
                         "serial, the date and PASS/FAIL)")


def stamp(a, out: dict) -> dict:
    """Stamp ``out`` (the step's report) with the unit's serial, the date (UTC) and the
    verdict of its checks; returns the stamp."""
    ok = all(c["pass"] for c in out.get("checks", []))
    out["stamp"] = {"unit_serial": a.serial, "utc": calfile.utc_now(),
                    "verdict": "PASS" if ok else "FAIL"}
    return out["stamp"]


def finish(a, out: dict, human: list[str]) -> int:
    """Print the step's result (JSON and/or the human summary with its checks); exit status.
    With ``--report`` and no report JSON written by the step, ``DIR/<step>.json`` (stamped)."""
    ok = all(c["pass"] for c in out["checks"])
    out["pass"] = ok
    if getattr(a, "report", None):
        st = stamp(a, out)
        reps = out.setdefault("report", [])
        if not any(str(r).endswith(".json") for r in reps):
            reps.append(str(Path(a.report) / f"{out['step']}.json"))
            write_json(Path(a.report) / f"{out['step']}.json", out)
        human = human + [f"report {a.report}: {stamp_text(st)}"]
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
