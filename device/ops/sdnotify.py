"""The systemd notify protocol (sd_notify(3)), without a dependency.

systemd passes a unix datagram socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the
abstract namespace); each datagram is newline-separated ``KEY=VALUE`` lines: ``READY=1`` once
the service works, ``STATUS=...`` free text for ``systemctl status``, ``WATCHDOG=1`` at least
every ``WatchdogSec`` (``$WATCHDOG_USEC``; pet at half of it), ``STOPPING=1`` on the way out.
Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, so the gate runs the same from a
shell. A failed send is logged, never raised: telling systemd must not stop the gate.
"""
from __future__ import annotations

import logging
import os
import socket
import threading

log = logging.getLogger(__name__)


def watchdog_interval_s(env: dict | None = None, pid: int | None = None) -> float | None:
    """``WatchdogSec`` in seconds for this process (``$WATCHDOG_USEC``, honouring
    ``$WATCHDOG_PID``), or None when systemd expects no watchdog pings."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    wpid = env.get("WATCHDOG_PID")
    if wpid and int(wpid) != (os.getpid() if pid is None else pid):
        return None
    try:
        v = int(usec)
    except ValueError:
        return None
    return v / 1e6 if v > 0 else None


class SystemdNotifier:
    """``SystemdNotifier()`` reads ``$NOTIFY_SOCKET``; ``socket_path=`` overrides it (tests)."""

    def __init__(self, socket_path: str | None = None, env: dict | None = None):
        env = os.environ if env is None else env
        path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET")
        self.path = path or None
        self.watchdog_s = watchdog_interval_s(env)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.sent: list[str] = []           # what went out, newest last (kept short)
        self.errors = 0

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _address(self):
        p = self.path
        if p.startswith("@"):
            return "\0" + p[1:]              # abstract namespace
        return p

    def notify(self, state: str | None = None, **fields) -> bool:
        """Send one datagram: ``notify("READY=1")`` or ``notify(READY=1, STATUS="x")``.
        True when systemd got it; False outside systemd or on a failed send."""
        lines = [state] if state else []
        lines += [f"{k}={v}" for k, v in fields.items()]
        msg = "\n".join(lines)
        if not msg or not self.enabled:
            return False
        if "\0" in msg:
            raise ValueError("sd_notify messages cannot contain NUL")
        with self._lock:
            try:
                if self._sock is None:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    s.setblocking(True)
                    s.settimeout(1.0)
                    self._sock = s
                self._sock.sendto(msg.encode("utf-8"), self._address())
            except OSError as e:
                self.errors += 1
                if self.errors <= 3 or self.errors % 100 == 0:
                    log.warning("sd_notify to %s failed (%d so far): %s", self.path,
                                self.errors, e)
                return False
            self.sent.append(msg)
            del self.sent[:-50]
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text.replace("\n", " "))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_trigger(self) -> bool:
        """Ask systemd to act now as if the watchdog had expired."""
        return self.notify("WATCHDOG=trigger")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", **({"STATUS": status} if status else {}))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
