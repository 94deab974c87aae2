"""Process hardening at gate start (best effort, Linux): a private umask, no core dumps.

The gallery in memory is near-plaintext (protected templates with their keys; during a
presentation the plaintext feature), and a core dump or a ptrace attach by another process of
the same user would copy it. ``harden_process()``:

- ``os.umask(0o077)``: files the gate creates are 0600, folders 0700, whatever explicit mode
  a call forgets;
- ``RLIMIT_CORE`` = (0, 0): no core file, and the hard limit stops the process raising it;
- ``prctl(PR_SET_DUMPABLE, 0)`` through ctypes: no core dump even with a core pattern that
  pipes to a handler, and no ptrace attach / ``/proc/<pid>/mem`` read by the same user.

The systemd unit adds ``LimitCORE=0`` and ``UMask=0077`` for the same reasons before the
interpreter even starts. Returns what was done, for the start log.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger("palmgate.gate")

PRIVATE_UMASK = 0o077
PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3


def private_umask() -> int:
    """Set the private umask; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def no_core_dumps() -> bool:
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        return True
    except (ImportError, ValueError, OSError) as e:
        log.warning("could not switch core dumps off (RLIMIT_CORE): %s", e)
        return False


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def not_dumpable() -> bool:
    libc = _libc()
    if libc is None:
        return False
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_DUMPABLE, 0) failed: errno %d", ctypes.get_errno())
        return False
    return True


def dumpable() -> int | None:
    """PR_GET_DUMPABLE (1: dumpable, 0: not), None off Linux."""
    libc = _libc()
    return None if libc is None else int(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def harden_process() -> dict:
    private_umask()
    return {"umask": f"{PRIVATE_UMASK:04o}", "core_limit_zero": no_core_dumps(),
            "not_dumpable": not_dumpable()}
