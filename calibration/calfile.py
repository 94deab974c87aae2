"""The unit's calibration file: one signed JSON document per unit, updated step by step.

Layout (``device.vision.calibration.FORMAT``)::

    {"format": "palmgate-calibration/1", "unit_serial": "...", "signed_utc": "...Z",
     "tool": {"name": "palmgate-calibrate", "version": ..., "opencv": ..., "numpy": ...},
     "limits": {step: {...}}, "results": {step: {...}},
     "signature": {"alg": "HMAC-SHA256-HKDF", "key_id": ..., "mac": ...}}

``results.intrinsics`` is keyed by camera name; the other steps hold one record each.
Each step's record carries its ``utc`` time and ``pass`` verdict.
"""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from device import __version__
from device.vision.calibration import (FORMAT, CalibrationError, canonical_json, check_document,
                                        sign_document)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tool_info() -> dict:
    return {"name": "palmgate-calibrate", "version": __version__, "opencv": cv2.__version__,
            "numpy": np.__version__}


def new_document(unit_serial: str) -> dict:
    if not unit_serial or not str(unit_serial).strip():
        raise ValueError("a unit serial is needed for the calibration file (--serial)")
    return {"format": FORMAT, "unit_serial": str(unit_serial), "tool": tool_info(),
            "limits": {}, "results": {}}


def open_document(path: str | os.PathLike, key: bytes, unit_serial: str,
                  fresh: bool = False) -> dict:
    """The unit's document to add a step to: the verified existing file, or a new one if there
    is none (or ``fresh``). A tampered or foreign file is refused, never silently replaced."""
    p = Path(path)
    if fresh or not p.exists():
        return new_document(unit_serial)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CalibrationError(f"cannot read calibration file {p}: {e}; use --fresh to start "
                               f"a new one") from e
    check_document(doc, key, unit_serial=unit_serial, source=f"calibration file {p}")
    return doc


def set_step(doc: dict, step: str, record: dict, limits: dict, sub: str | None = None) -> dict:
    """Put one step's results (and the limits they were judged by) into ``doc``."""
    rec = dict(record, utc=utc_now())
    if sub is None:
        doc["results"][step] = rec
        doc["limits"][step] = limits
    else:
        doc["results"].setdefault(step, {})[sub] = rec
        doc["limits"].setdefault(step, {})[sub] = limits
    doc["tool"] = tool_info()
    return doc


def write_document(path: str | os.PathLike, doc: dict, key: bytes) -> dict:
    """Sign and write atomically (temporary file + rename); returns the signed document."""
    doc = dict(doc, signed_utc=utc_now())
    signed = sign_document(doc, key)
    canonical_json(signed)                      # fail before writing if anything is not JSON
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_signed_atomically(p, signed)
    return signed


def write_signed_atomically(p: Path, signed: dict) -> None:
    """The signed document to ``p`` through a temporary file, fsync and rename (0644:
    calibration data is not secret), so a power cut leaves the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(signed, f, indent=1, sort_keys=True, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
