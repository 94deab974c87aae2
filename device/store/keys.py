"""The unit's device key: 32 random bytes in a file only its owner can read.

It signs the factory calibration file (HMAC-SHA256) and seals stored templates; it never leaves
the unit. ``load_device_key(path, create=True)`` makes it on first use.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32


class DeviceKeyError(RuntimeError):
    """The device key is missing, unsafe to use, or malformed."""


def load_device_key(path: str | os.PathLike, create: bool = False) -> bytes:
    """Return the 32-byte device key stored raw at ``path``.

    With ``create=True`` a missing key is made from ``secrets.token_bytes`` (file mode 0600,
    created exclusively, so two processes racing on first use still end with one key). A key file
    readable or writable by group or others is refused, as is one of the wrong length.
    """
    p = Path(path)
    if create and not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Write a private temporary file, then link it into place: the link fails if another
        # process made the key first, and no reader ever sees a half-written key.
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, p)
        except FileExistsError:
            pass                                    # another process made it first: use theirs
        finally:
            tmp.unlink()
    try:
        fd = os.open(p, os.O_RDONLY)
    except FileNotFoundError:
        raise DeviceKeyError(f"device key not found at {p} (make one with `palmgate init "
                             f"--dir DIR`, or set paths.create_key = true in the "
                             f"configuration; `palmgate-calibrate ... --create-key` at the "
                             f"factory)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DeviceKeyError(f"device key {p} is not a regular file")
        if st.st_mode & 0o077:
            raise DeviceKeyError(
                f"device key {p} is accessible by group/others (mode {stat.S_IMODE(st.st_mode):04o});"
                f" refusing to use it: run `chmod 600 {p}` if it was never exposed, else replace "
                f"the key and recalibrate the unit")
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise DeviceKeyError(f"device key {p} holds {len(data)} bytes, expected {KEY_BYTES}")
    return data
