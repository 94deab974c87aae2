"""The store's generation, kept outside the database: rollback detection as far as the hardware
allows.

Every write transaction of the store raises its generation by one (``device.store.integrity``).
After the COMMIT the store advances a monotonic counter outside the database to that
generation; at open a database whose generation is below the counter is an older copy
(``StoreRollback``). The counter is advanced only after the database's commit is durable
(``synchronous=FULL``), so a power cut can leave the counter behind the database -- harmless,
it catches up at the next open -- but never ahead of it: a power cut never looks like a
rollback. The store hands the write to a ``CounterWriter`` thread, so the decision path
(audit record, then relay) waits for one sync, SQLite's, not two; closing the store waits
for the counter.

``FileCounter`` (the default): a small file, two slots in separate 512-byte sectors, each
``magic || store id || generation || HMAC``; a write goes to the older slot, is fsync'd, and
a torn write breaks only that slot (the other still holds the previous generation, which is
never above the database). Writers serialise on ``flock`` of this file (never of the database
file: closing a descriptor of the database would drop SQLite's own locks) and never lower it.
Place it where an attacker who can copy the store's folder cannot also put back an old copy
of it: ``[paths] generation_counter`` on another partition (the device key's).

What remains: someone who replaces both the database and the counter file with older copies
(or deletes the counter and puts back a pre-upgrade or an empty store) is not detected by a
file. Only a counter the attacker cannot roll back closes that: a TPM 2.0 NV counter
(``TPMA_NV_COUNTER``: ``tpm2_nvdefine -a "ownerread|ownerwrite|nt=counter"``,
``tpm2_nvincrement``, ``tpm2_nvread``) or an eMMC RPMB partition (``mmc rpmb``), where the
board has one. Any object with ``read() -> int | None`` and ``advance(generation)`` can be
handed to ``TemplateStore(counter=...)``; a hardware counter with limited write endurance
should be advanced on fewer events (user and template changes, lockouts) than every decision.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import logging
import os
import threading
from pathlib import Path

from device.store.errors import StoreRollback

log = logging.getLogger("palmgate.store")

_MAGIC = b"PGGEN\x00v1"
_SLOT = 512                 # each slot in its own sector
_LEN = 8 + 16 + 8 + 32


def encode_slot(key: bytes, store_id: bytes, generation: int) -> bytes:
    body = _MAGIC + store_id.ljust(16, b"\0")[:16] + int(generation).to_bytes(8, "big")
    return body + hmac.new(key, body, hashlib.sha256).digest()


def decode_slot(key: bytes, store_id: bytes, raw: bytes) -> int | None:
    """The generation of one slot, or None when it is empty, torn or not this store's."""
    if len(raw) < _LEN or raw[:8] != _MAGIC:
        return None
    body, mac = raw[:_LEN - 32], raw[_LEN - 32:_LEN]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    if body[8:24] != store_id.ljust(16, b"\0")[:16]:
        return None
    return int.from_bytes(body[24:32], "big")


class FileCounter:
    """A monotonic counter in a file (see the module text). ``key``: a purpose key of the
    device key; ``store_id``: the store's id, so one store's counter never vouches for
    another."""

    def __init__(self, path, key: bytes, store_id: bytes):
        self.path = Path(path)
        self._key, self._id = bytes(key), bytes(store_id)

    def describe(self) -> str:
        return f"file {self.path}"

    def _slots(self, fd) -> list[int | None]:
        raw = os.pread(fd, 2 * _SLOT, 0)
        return [decode_slot(self._key, self._id, raw[i * _SLOT:i * _SLOT + _LEN])
                for i in range(2)]

    def read(self) -> int | None:
        """The counter's generation; None when there is no counter file. A file with no valid
        slot is treated as a rollback (it cannot vouch for anything)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            gens = [g for g in self._slots(fd) if g is not None]
        finally:
            os.close(fd)
        if not gens:
            raise StoreRollback(f"generation counter {self.path} holds no valid record for "
                                f"this store (replaced, damaged, or another store's)")
        return max(gens)

    def advance(self, generation: int) -> None:
        """Raise the counter to ``generation`` (never lowers it), durably."""
        new = not self.path.exists()
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            slots = self._slots(fd)
            cur = max((g for g in slots if g is not None), default=-1)
            if generation <= cur:
                return
            # the slot to overwrite: an invalid one, else the older one
            i = 0 if slots[0] is None else 1 if slots[1] is None else \
                (0 if slots[0] <= slots[1] else 1)
            data = encode_slot(self._key, self._id, generation)
            grows = os.fstat(fd).st_size < i * _SLOT + len(data)
            if os.pwrite(fd, data, i * _SLOT) != len(data):
                raise OSError(errno.ENOSPC, "short write")
            # the size is fixed once both slots exist: only the data has to reach the disk
            # (fdatasync, as SQLite syncs its WAL); a new file also needs its inode
            os.fsync(fd) if grows else _datasync(fd)
        finally:
            os.close(fd)                # the flock goes with it
        if new:
            _fsync_dir(self.path.parent)


class CounterWriter:
    """Advances a counter off the caller's thread: the commit is already durable and the
    counter may lag it (never lead it), so the decision path does not wait for a second
    sync. Submissions coalesce (only the highest generation is written); ``flush()`` waits
    until what was submitted is written (the store calls it at close). A failed write is
    logged: the counter then lags until the next success, which only narrows what the
    rollback check can see."""

    def __init__(self, counter, idle_s: float = 5.0):
        self.counter = counter
        self._want = self._done = 0
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._idle_s = idle_s

    def submit(self, generation: int) -> None:
        with self._cv:
            if generation <= self._want:
                return
            self._want = generation
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="generation-counter",
                                                daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._cv.wait_for(lambda: self._want > self._done, self._idle_s):
                    self._thread = None          # idle: a later submit starts another
                    return
                gen = self._want
            try:
                self.counter.advance(gen)
            except Exception as e:      # noqa: BLE001 - OSError, a hardware counter's error
                log.error("generation counter %s not advanced to %d: %s",
                          self.counter.describe(), gen, e)
            with self._cv:
                self._done = max(self._done, gen)
                self._cv.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._done >= self._want, timeout)


def _datasync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
