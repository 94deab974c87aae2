"""Files and folders that hold secrets or biometric records: created owner-only (0600 files,
0700 folders) by an explicit mode, whatever the umask, and tightened when found open to
group or others. Only what this process creates or owns is changed: never a folder it did
not make (the working directory, /var/lib/palmgate made by systemd)."""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("palmgate.store")

FILE_MODE, DIR_MODE = 0o600, 0o700


def private_dirs(folder) -> list[Path]:
    """Make ``folder`` and any missing parents 0700; returns the folders made."""
    p = Path(folder)
    missing = []
    q = p
    while not q.exists():
        missing.append(q)
        if q.parent == q:
            break
        q = q.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)
    return list(reversed(missing))


def private_file(path) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist; True if made."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def tighten(path, mode: int = FILE_MODE) -> bool:
    """Drop group/other access from an existing file or folder of ours; True if changed."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_IMODE(st.st_mode) & 0o077:
        return False
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)
    except PermissionError:
        log.warning("%s is readable by group or others (mode %04o) and not ours to change",
                    path, stat.S_IMODE(st.st_mode))
        return False
    log.warning("%s was readable by group or others (mode %04o): now %04o", path,
                stat.S_IMODE(st.st_mode), stat.S_IMODE(st.st_mode) & mode)
    return True


def store_files(db) -> list[Path]:
    """The store's database and the files beside it that SQLite and the seal write."""
    p = Path(db)
    return [p] + [p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal", ".seal")]
