"""Typed faults of the template store: callers branch on the class, never on message text.

    StoreError                  the store cannot be used (bad argument, missing key, ...)
      WrongKeyError             sealed under another device key (a file copied off another unit)
      TamperedError             changed outside the store, or damaged (alias ``StoreCorrupt``)
        StoreRollback           an older copy of the store (its generation is below the counter)
        AuditChainBroken        the audit chain does not verify (also an ``AuditError``)
      StoreDiskFull             no space left where the store lives (SQLITE_FULL, ENOSPC)
      StoreIOError              the storage fails (I/O error, read-only, cannot open)
      StoreBusy                 another process held the write lock past the busy timeout
    AuditError                  an audit record was refused (bad field) or the chain is broken

``classify(exc, path)`` turns a ``sqlite3.Error`` or ``OSError`` into one of these by SQLite's
error code and errno (and the free space where the store lives: SQLite reports a full disk
met while it maps its shared-memory file as a plain I/O error).
"""
from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path


class StoreError(RuntimeError):
    """The template store cannot be used (missing key, bad file, bad argument)."""


class WrongKeyError(StoreError):
    """The database was sealed under another device key (e.g. copied from another unit)."""


class TamperedError(StoreError):
    """The database (or a backup) was changed outside the store or is corrupted."""


StoreCorrupt = TamperedError


class StoreRollback(TamperedError):
    """The database is an older copy of itself: its generation is below the monotonic
    counter kept outside it (or that counter is missing)."""


class StoreDiskFull(StoreError):
    """No space left on the file system of the store (or its generation counter)."""


class StoreIOError(StoreError):
    """The storage under the store fails: an I/O error, a read-only file, a file that cannot
    be opened."""


class StoreBusy(StoreError):
    """Another process held the store's write lock longer than the busy timeout."""


class AuditError(RuntimeError):
    """An audit record was refused, or the audit chain is broken."""


class AuditChainBroken(AuditError, TamperedError):
    """The audit chain does not verify: a record altered, missing, cut off or forged."""


# SQLite primary result codes (sqlite3.h)
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, \
    14, 26
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
LOW_SPACE_BYTES = 256 * 1024     # an I/O error with less than this free is a full disk


def free_bytes(path) -> int | None:
    """Free bytes (for an unprivileged process) on the file system of ``path`` or its
    nearest existing parent; None if it cannot be told. ``statvfs`` opens nothing."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _full_message(path, detail: str) -> str:
    free = free_bytes(path)
    where = Path(path).absolute().parent
    left = f"{free // 1024} KiB free" if free is not None else "free space unknown"
    return (f"template store {path}: disk full ({detail}; {left} on the file system of "
            f"{where}). Nothing was changed; free space there and start again.")


def classify(exc: BaseException, path, doing: str = "open") -> BaseException:
    """The typed store error for ``exc`` met while ``doing`` something with the store at
    ``path``; ``exc`` itself when it is one already or is not a storage error."""
    if isinstance(exc, (StoreError, AuditError)):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in _NO_SPACE:
            return StoreDiskFull(_full_message(path, f"{exc.strerror} while {doing}"))
        return StoreIOError(f"template store {path}: {exc} while {doing}")
    if not isinstance(exc, sqlite3.Error):
        return exc
    primary = _primary_code(exc)
    text = f"{exc} [{getattr(exc, 'sqlite_errorname', None) or primary}]"
    if primary == _FULL:
        return StoreDiskFull(_full_message(path, f"{text} while {doing}"))
    if primary in (_IOERR, _CANTOPEN, _READONLY, None):
        free = free_bytes(path)
        if free is not None and free < LOW_SPACE_BYTES:
            return StoreDiskFull(_full_message(path, f"{text} while {doing}"))
        return StoreIOError(f"template store {path}: storage error while {doing}: {text} "
                            f"(the file system is failing, read-only or not accessible)")
    if primary in (_BUSY, _LOCKED):
        return StoreBusy(f"template store {path}: another process held the write lock too "
                         f"long while {doing} ({text}); try again")
    if primary in (_CORRUPT, _NOTADB):
        return TamperedError(f"template store {path} is not a readable database (corrupted "
                             f"or not a PalmGate store): {text}")
    return StoreError(f"template store {path}: {text} while {doing}")


# Python 3.10 has no ``sqlite_errorcode``: SQLite's fixed English result strings then
_MESSAGES = {"database or disk is full": _FULL, "disk I/O error": _IOERR,
             "database is locked": _BUSY, "database table is locked": _LOCKED,
             "database disk image is malformed": _CORRUPT,
             "file is not a database": _NOTADB, "unable to open database file": _CANTOPEN,
             "attempt to write a readonly database": _READONLY}


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    msg = str(exc)
    return next((c for m, c in _MESSAGES.items() if m in msg), None)
