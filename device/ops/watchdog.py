"""A watchdog between the gate loop and the relay: fail secure when the loop stops.

The loop calls ``pet()`` once per iteration (idle or not). A thread holds a deadline; when
``timeout_s`` passes without a pet, it switches every relay channel off (cancelling any pulse)
and calls ``on_expire``. It stays *tripped* (and keeps retrying the off until the line takes it)
until the loop pets again. A pet also forwards ``WATCHDOG=1`` to systemd (at most every quarter
of ``WatchdogSec``), so systemd's watchdog sees the loop, not merely a live process: a hung loop
first loses the relay, then gets killed and restarted by systemd (``Restart=on-failure``), and
the restarted gate's relay driver switches everything off again when it opens.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

log = logging.getLogger(__name__)


def relay_all_off(relay, channels: Iterable[int] | None = None) -> None:
    """Every channel off: ``relay.all_off()`` where the driver has it, else ``off(ch)``."""
    if channels is None and hasattr(relay, "all_off"):
        relay.all_off()
        return
    chs = list(channels) if channels is not None else list(
        range(1, int(getattr(relay, "channels", 1)) + 1))
    first: BaseException | None = None
    for ch in chs:
        try:
            relay.off(ch)
        except Exception as e:           # try the others, then report the first failure
            first = first or e
    if first is not None:
        raise first


class RelayWatchdog:
    """``RelayWatchdog(relay, timeout_s=2.0, notifier=SystemdNotifier())``; ``start()``, then
    ``pet()`` from the loop; ``stop()`` at the end (does not switch the relay: shutdown does).

    ``channels``: the channels to switch off (default: all). ``on_expire(elapsed_s)``: called
    from the watchdog thread after the relay was switched off (or the attempt failed)."""

    def __init__(self, relay, timeout_s: float = 2.0, *, channels: Iterable[int] | None = None,
                 notifier=None, on_expire: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, name: str = "gate loop"):
        if timeout_s <= 0:
            raise ValueError("watchdog timeout must be > 0")
        self.relay = relay
        self.timeout_s = float(timeout_s)
        self.channels = None if channels is None else list(channels)
        self.notifier = notifier
        self.on_expire = on_expire
        self.clock = clock
        self.name = name
        self.expirations = 0
        self.off_failures = 0
        self.tripped = False
        self.last_error: str | None = None
        self._last_pet = clock()
        self._last_sd = float("-inf")
        self._off_done = False
        self._wake = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- the loop's side ------------------------------------------------------------------
    def start(self) -> "RelayWatchdog":
        if self._thread is not None:
            return self
        self._stop = False
        self._last_pet = self.clock()
        self._thread = threading.Thread(target=self._run, name="relay-watchdog", daemon=True)
        self._thread.start()
        return self

    def pet(self) -> None:
        now = self.clock()
        with self._wake:
            self._last_pet = now
            if self.tripped:
                log.warning("watchdog: %s is petting again after %d expiration(s)", self.name,
                            self.expirations, extra={"event": "watchdog_recovered"})
                self.tripped = False
            self._wake.notify_all()
        n = self.notifier
        if n is not None and getattr(n, "watchdog_s", None):
            # a quarter of WatchdogSec: systemd then hears from a loop whose iterations take
            # up to 3/4 of it (sd_watchdog_enabled(3) asks for at least every half)
            if now - self._last_sd >= n.watchdog_s / 4:
                self._last_sd = now
                n.watchdog()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(max(2.0, self.timeout_s))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def remaining_s(self) -> float:
        return self.timeout_s - (self.clock() - self._last_pet)

    def describe(self) -> dict:
        return {"timeout_s": self.timeout_s, "tripped": self.tripped,
                "expirations": self.expirations, "off_failures": self.off_failures,
                "last_error": self.last_error, "running": self._thread is not None,
                "since_pet_s": round(self.clock() - self._last_pet, 3)}

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stop:
                    return
                left = self.remaining_s
                if left > 0 or (self.tripped and self._off_done):
                    # sleep until the deadline (or, tripped, until the next pet)
                    self._wake.wait(timeout=left if left > 0 else self.timeout_s)
                    continue
                first = not self.tripped
                self.tripped = True
                if first:
                    self.expirations += 1
                    self._off_done = False
                elapsed = self.clock() - self._last_pet
            self._expire(elapsed, first)
            if not self._off_done:            # the line refused: retry after a pause
                with self._wake:
                    if not self._stop:
                        self._wake.wait(timeout=min(0.5, self.timeout_s))

    def _expire(self, elapsed: float, first: bool) -> None:
        try:
            relay_all_off(self.relay, self.channels)
            self._off_done = True
            if first:
                log.critical("watchdog: %s silent for %.2f s (limit %.2f s): relay switched off",
                             self.name, elapsed, self.timeout_s,
                             extra={"event": "watchdog_expired", "silent_s": elapsed})
        except Exception as e:
            self.off_failures += 1
            self.last_error = f"{type(e).__name__}: {e}"
            if first or self.off_failures % 20 == 1:
                log.critical("watchdog: %s silent for %.2f s and the relay did not take the "
                             "off command: %s", self.name, elapsed, e,
                             extra={"event": "watchdog_off_failed"})
        if first and self.on_expire is not None:
            try:
                self.on_expire(elapsed)
            except Exception:
                log.exception("watchdog on_expire callback failed")
