"""One capture thread per camera, each call bounded by a timeout, never two threads on one camera.

A driver call that never returns cannot be cancelled from Python. ``CaptureWorker`` runs a
source's ``capture`` on one thread of its own (started at the first call, kept for the next:
drivers that care which thread calls them always see the same one). When a call overruns its
timeout the caller gets ``CaptureTimeout`` and the call is abandoned, not duplicated: a further
call waits (within its own timeout) for the stuck one to return and fails with
``CaptureTimeout`` if it does not -- no second thread is started beside it -- and what the stuck
call finally returns is dropped (a stale frame never reaches a later presentation). The threads
are bounded by the number of cameras, however many faults come.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from device.errors import CaptureTimeout


class CaptureWorker:
    def __init__(self, fn: Callable[[], object], what: str,
                 clock: Callable[[], float] = time.monotonic):
        self._fn, self.what, self.clock = fn, what, clock
        self._cv = threading.Condition()
        self._job: int | None = None          # sequence number of the call asked for
        self._seq = 0
        self._busy_since: float | None = None  # a call is inside the driver since then
        self._result: tuple | None = None     # (seq, exception, value) of the last call
        self._thread: threading.Thread | None = None
        self._stop = False

    @property
    def stuck_s(self) -> float | None:
        """Seconds the current driver call has been running (None: idle)."""
        b = self._busy_since
        return None if b is None else self.clock() - b

    def call(self, timeout_s: float):
        """``fn()`` on the worker thread; ``CaptureTimeout`` after ``timeout_s``, or at once
        while an earlier call is still inside the driver."""
        end = time.monotonic() + timeout_s
        with self._cv:
            # an abandoned call still inside the driver: wait for it within this call's time,
            # never beside it on a second thread
            if not self._cv.wait_for(lambda: self._busy_since is None, timeout_s):
                raise CaptureTimeout(f"{self.what} has not returned from a capture for "
                                     f"{self.clock() - self._busy_since:.1f} s: not called "
                                     f"again until it does")
            if self._thread is None:
                self._stop = False
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"capture-{self.what}")
                self._thread.start()
            self._seq += 1
            seq = self._seq
            self._job, self._result = seq, None
            self._busy_since = self.clock()
            self._cv.notify_all()
            done = self._cv.wait_for(lambda: self._result is not None
                                     and self._result[0] == seq,
                                     max(0.0, end - time.monotonic()))
            if not done:
                raise CaptureTimeout(f"{self.what} delivered no frame within {timeout_s:g} s")
            _, err, value = self._result
            self._result = None
        if err is not None:
            raise err
        return value

    def close(self) -> None:
        """Let the thread end (at once when idle; a stuck one ends when its call returns)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
            t, self._thread = self._thread, None
        if t is not None and self._busy_since is None:
            t.join(1.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._job is not None or self._stop)
                if self._job is None:
                    return                        # stopped while idle
                seq, self._job = self._job, None
            try:
                value, err = self._fn(), None
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                value, err = None, e
            with self._cv:
                self._busy_since = None
                self._result = (seq, err, value)   # dropped if the caller gave up on it
                self._cv.notify_all()
                if self._stop and self._job is None:
                    return
