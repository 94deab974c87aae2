"""The unit's serial number: what ties the factory calibration file to this board.

``[gate] serial`` in the configuration when it is set (a board without a readable serial, or
a unit whose serial is the label on its case); else the board's own serial from the device tree
(``/proc/device-tree/serial-number`` on a Raspberry Pi). The factory tool stamps the same serial
into the calibration file (``palmgate-calibrate --serial``, which defaults to the board's).
"""
from __future__ import annotations

from pathlib import Path

DEVICE_TREE_SERIALS = ("/proc/device-tree/serial-number",
                       "/sys/firmware/devicetree/base/serial-number")


class UnitSerialError(RuntimeError):
    """The unit's serial is not configured and the board has none to read."""


def board_serial(paths=DEVICE_TREE_SERIALS) -> str | None:
    """The board's serial from the device tree (NUL-terminated there), or None."""
    for p in paths:
        try:
            raw = Path(p).read_bytes()
        except OSError:
            continue
        s = raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()
        if s:
            return s
    return None


def unit_serial(configured: str | None, paths=DEVICE_TREE_SERIALS) -> str:
    """``configured`` (``[gate] serial``) if set, else the board's serial; ``UnitSerialError``
    when there is neither."""
    if configured and str(configured).strip():
        return str(configured).strip()
    s = board_serial(paths)
    if s is None:
        raise UnitSerialError("the unit's serial is unknown: set [gate] serial in the "
                              "configuration (this board has no "
                              f"{' or '.join(paths)})")
    return s
