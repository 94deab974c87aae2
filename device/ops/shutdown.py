"""Graceful shutdown on SIGTERM / SIGINT that leaves the relay off.

::

    with GracefulShutdown(relay=relay, watchdog=wd, notifier=sd) as stop:
        while not stop.requested:
            ...one iteration of the loop...; wd.pet()
    # here: watchdog stopped, every relay channel off, relay closed, STOPPING=1 sent

The signal handler itself only records the signal and starts a short thread that switches the
relay off at once (through the driver's lock, so a frame the loop is sending is never cut in
half); the loop sees ``requested`` and leaves; leaving the ``with`` block stops the watchdog and
closes the relay (off again). A second signal while stopping raises ``SystemExit(128 + signo)``
in the main thread (the ``with`` block's exit still switches the relay off). Handlers can only be
installed from the main thread; elsewhere the object still works through ``request()``.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Callable, Iterable

from device.ops.watchdog import relay_all_off

log = logging.getLogger(__name__)


class GracefulShutdown:
    def __init__(self, relay=None, *, watchdog=None, notifier=None,
                 signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
                 on_request: Callable[[str], None] | None = None, close_relay: bool = True):
        self.relay = relay
        self.watchdog = watchdog
        self.notifier = notifier
        self.signals = tuple(signals)
        self.on_request = on_request
        self.close_relay = close_relay
        self.reason: str | None = None
        self.signum: int | None = None
        self.relay_off: bool | None = None      # outcome of the last off attempt
        self.errors: list[str] = []
        self._event = threading.Event()
        self._previous: dict[int, object] = {}
        self._finished = False
        self._off_thread: threading.Thread | None = None

    # -- state ----------------------------------------------------------------------------
    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` s; True as soon as shutdown is requested (use it instead
        of ``time.sleep`` in the loop's idle waits)."""
        return self._event.wait(timeout)

    def request(self, reason: str = "requested") -> None:
        """Ask for shutdown from code (a fatal fault, a command)."""
        first = not self._event.is_set()
        if first:
            self.reason = reason
            self._event.set()
            log.warning("shutdown requested: %s", reason,
                        extra={"event": "shutdown_requested", "reason": reason})
            if self.notifier is not None:
                self.notifier.stopping(f"stopping: {reason}")
            self._start_off()
            if self.on_request is not None:
                try:
                    self.on_request(reason)
                except Exception:
                    log.exception("shutdown on_request callback failed")

    # -- signals --------------------------------------------------------------------------
    def install(self) -> "GracefulShutdown":
        if threading.current_thread() is not threading.main_thread():
            log.warning("GracefulShutdown: not the main thread, signal handlers not installed")
            return self
        for s in self.signals:
            self._previous[s] = signal.getsignal(s)
            signal.signal(s, self._handler)
        return self

    def restore(self) -> None:
        for s, h in self._previous.items():
            try:
                signal.signal(s, h)
            except (ValueError, TypeError):
                pass
        self._previous.clear()

    def _handler(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self._event.is_set():
            log.error("second %s while stopping: leaving now", name)
            self._start_off()
            raise SystemExit(128 + signum)
        self.signum = signum
        self.request(name)

    # -- relay ----------------------------------------------------------------------------
    def _start_off(self) -> None:
        if self.relay is None:
            return
        t = threading.Thread(target=self._switch_off, name="shutdown-relay-off", daemon=True)
        self._off_thread = t
        t.start()

    def _switch_off(self) -> None:
        self._relay_step(lambda: relay_all_off(self.relay), "relay off",
                         "relay did not take the off command")

    def _relay_step(self, step, what: str, failed: str) -> None:
        """Run ``step`` (switching the relay off): :attr:`relay_off` True, or False with the
        error kept (``what: Type: message``) and logged critical (``shutdown: failed: ...``)."""
        try:
            step()
            self.relay_off = True
        except Exception as e:
            self.relay_off = False
            self.errors.append(f"{what}: {type(e).__name__}: {e}")
            log.critical("shutdown: %s: %s", failed, e)

    def finish(self) -> None:
        """Stop the watchdog, switch the relay off and close it, tell systemd. Idempotent."""
        if self._finished:
            return
        self._finished = True
        if self.watchdog is not None:
            try:
                self.watchdog.stop()
            except Exception as e:
                self.errors.append(f"watchdog stop: {e}")
        if self._off_thread is not None:
            self._off_thread.join(5.0)
        if self.relay is not None:
            def close():
                if self.close_relay and hasattr(self.relay, "close"):
                    self.relay.close()          # the drivers switch every channel off here
                else:
                    relay_all_off(self.relay)
            self._relay_step(close, "relay close", "relay could not be switched off")
        if self.notifier is not None:
            self.notifier.stopping(f"stopped ({self.reason or 'normal exit'})")
        log.info("shutdown complete (%s), relay off: %s", self.reason or "normal exit",
                 self.relay_off, extra={"event": "shutdown_complete",
                                        "relay_off": self.relay_off})

    def __enter__(self) -> "GracefulShutdown":
        return self.install()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and self.reason is None:
                self.reason = f"{exc_type.__name__}: {exc}"
            self.finish()
        finally:
            self.restore()
