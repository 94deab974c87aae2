"""Re-sign a calibration file made by palmgate-calibrate before the per-purpose keys (its MAC
keyed by the raw device key) under the calibration key (HKDF of the device key), once:

    python -m calibration.resign --calfile /etc/palmgate/calibration.json \\
        --key /etc/palmgate/device.key [--serial PG-000123]

The old signature is checked first (a tampered file stays refused); the content, including
its signing time (so a stale file stays stale), is kept. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from calibration.calfile import write_signed_atomically
from device.store.keys import DeviceKeyError, load_device_key
from device.vision.calibration import (LEGACY_SIG_ALG, SIG_ALG, CalibrationError,
                                        sign_document, verify_document)


def resign(path, key: bytes, unit_serial: str | None = None) -> dict:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CalibrationError(f"cannot read calibration file {p}: {e}") from None
    alg = (doc.get("signature") or {}).get("alg")
    verify_document(doc, key, f"calibration file {p}", allow_legacy=True)
    if unit_serial is not None and doc.get("unit_serial") != unit_serial:
        raise CalibrationError(f"calibration file {p} belongs to unit "
                               f"{doc.get('unit_serial')!r}, not {unit_serial!r}")
    if alg == SIG_ALG:
        return {"calfile": str(p), "resigned": False, "alg": SIG_ALG}
    write_signed_atomically(p, sign_document(doc, key))
    return {"calfile": str(p), "resigned": True, "from": LEGACY_SIG_ALG, "alg": SIG_ALG}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m calibration.resign", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calfile", required=True)
    ap.add_argument("--key", required=True, help="the unit's device key file")
    ap.add_argument("--serial", default=None, help="refuse a file of another unit")
    a = ap.parse_args(argv)
    try:
        print(json.dumps(resign(a.calfile, load_device_key(a.key), a.serial)))
    except (CalibrationError, DeviceKeyError) as e:
        print(f"calibration.resign: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
