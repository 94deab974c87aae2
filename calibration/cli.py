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
Thin: argument parsing only. Each step's command function lives in a module of
:mod:`calibration.commands` (what they share in ``calibration.commands.common``), the math in
the sibling modules of this package.
"""
from __future__ import annotations

import argparse
import sys

from calibration.commands.common import InputError, resolve_serial
from calibration.commands.extrinsics import cmd_extrinsics
from calibration.commands.flatfield import cmd_flatfield, w_h  # noqa: F401 (re-exported)
from calibration.commands.intrinsics import cmd_intrinsics
from calibration.commands.registration import cmd_registration
from calibration.commands.relay import cmd_relay
from calibration.commands.verify import cmd_verify
from calibration.intrinsics import MODEL_FLAGS
from device import __version__
from device.sources.base import FrameError
from device.store.keys import DeviceKeyError
from device.vision.calibration import CalibrationError

PROG = "palmgate-calibrate"


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
    g.add_argument("--report", metavar="DIR", help="write the report (JSON + PNG) here, "
                   "stamped with the unit's serial, the date and PASS/FAIL")
    g.add_argument("--calfile", metavar="PATH", help="the unit's calibration file to update")
    g.add_argument("--serial", help="the unit's serial number (the gate checks it against "
                   "[gate] serial or the board's); 'auto': this board's "
                   "/proc/device-tree/serial-number. Needed with --calfile and --report")
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
        resolve_serial(a)
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
