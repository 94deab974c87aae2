"""Two linked pseudo-terminals made by socat: a serial line with both ends on this machine, for
the demo's access panel and for tests (``socat -d -d pty,raw,echo=0,link=A
pty,raw,echo=0,link=B``; Debian/Raspberry Pi OS: ``apt install socat``)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class PtyPair:
    """``a`` and ``b``: the two ends' paths (open them with pyserial). ``close()`` ends it."""

    def __init__(self, timeout: float = 5.0):
        socat = shutil.which("socat")
        if socat is None:
            raise RuntimeError("socat is not installed (apt install socat): the simulated "
                               "access panel needs a pseudo-terminal pair")
        self._dir = tempfile.mkdtemp(prefix="palmgate-pty-")
        a, b = Path(self._dir) / "a", Path(self._dir) / "b"
        self.proc = subprocess.Popen(
            [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while not (a.exists() and b.exists()):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.close()
                raise RuntimeError("socat did not make the pseudo-terminal pair")
            time.sleep(0.02)
        self.a, self.b = str(a), str(b)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
