"""The relay watchdog and graceful shutdown: with a recording relay, and end to end with the real
LcusRelay driver against the byte-exact LCUS board simulator on a socat pty pair (SIGTERM sent
to a real gate-like process)."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_relay import LcusSimulator  # noqa: E402

from device.ops.shutdown import GracefulShutdown  # noqa: E402
from device.ops.watchdog import RelayWatchdog, relay_all_off  # noqa: E402
from device.relays.serial import LcusRelay, RelayError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
OFF1, ON1 = bytes.fromhex("A0 01 00 A1"), bytes.fromhex("A0 01 01 A2")


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.01)
    return pred()


class RecordingRelay:
    def __init__(self, channels=2, fail=0):
        self.channels = channels
        self.calls = []
        self.fail = fail               # this many off/all_off calls raise first
        self.closed = False
        self.lock = threading.Lock()

    def _maybe_fail(self):
        if self.fail:
            self.fail -= 1
            raise RelayError("relay line /dev/ttyUSB0 failed: unplugged")

    def on(self, ch):
        with self.lock:
            self.calls.append(("on", ch))

    def off(self, ch):
        with self.lock:
            self._maybe_fail()
            self.calls.append(("off", ch))

    def pulse(self, ch, ms):
        self.calls.append(("pulse", ch, ms))

    def all_off(self):
        with self.lock:
            self._maybe_fail()
            self.calls.append(("all_off",))

    def close(self):
        self.all_off()
        self.closed = True


class Notifier:
    def __init__(self, watchdog_s=None):
        self.watchdog_s = watchdog_s
        self.sent = []

    def watchdog(self):
        self.sent.append("WATCHDOG=1")
        return True

    def stopping(self, status=None):
        self.sent.append("STOPPING=1")
        return True


# -- watchdog ----------------------------------------------------------------------------------
def test_watchdog_switches_relay_off_when_loop_stops():
    relay, expired = RecordingRelay(), []
    wd = RelayWatchdog(relay, timeout_s=0.2, on_expire=expired.append).start()
    try:
        for _ in range(10):                         # a live loop: nothing happens
            wd.pet()
            time.sleep(0.05)
        assert relay.calls == [] and not wd.tripped
        assert wait_for(lambda: relay.calls == [("all_off",)])   # the loop went silent
        assert wd.tripped and wd.expirations == 1 and expired and expired[0] >= 0.2
        time.sleep(0.3)
        assert relay.calls == [("all_off",)]        # once per expiration, not a stream
        wd.pet()                                    # the loop is back
        assert not wd.tripped
        assert wait_for(lambda: wd.expirations == 2)
        assert wd.describe()["expirations"] == 2
    finally:
        wd.stop()


def test_watchdog_retries_an_off_the_line_refused():
    relay = RecordingRelay(fail=2)
    wd = RelayWatchdog(relay, timeout_s=0.1).start()
    try:
        assert wait_for(lambda: relay.calls == [("all_off",)])
        assert wd.off_failures == 2 and "unplugged" in wd.last_error
    finally:
        wd.stop()


def test_watchdog_explicit_channels_and_systemd_ping_rate():
    relay = RecordingRelay()
    relay_all_off(relay, [2])
    assert relay.calls == [("off", 2)]
    t = [100.0]
    n = Notifier(watchdog_s=20.0)
    wd = RelayWatchdog(relay, timeout_s=1.0, notifier=n, clock=lambda: t[0])
    for _ in range(20):                             # 20 pets within 4.75 s: one ping
        wd.pet()
        t[0] += 0.25
    assert n.sent == ["WATCHDOG=1"]
    t[0] += 0.1
    wd.pet()                                        # 5 s (WatchdogSec / 4) later: again
    assert n.sent == ["WATCHDOG=1", "WATCHDOG=1"]
    wd.notifier = Notifier(watchdog_s=None)         # no WatchdogSec: never pings
    wd.pet()
    assert wd.notifier.sent == []
    with pytest.raises(ValueError):
        RelayWatchdog(relay, timeout_s=0)


# -- shutdown ----------------------------------------------------------------------------------
def test_sigterm_in_process_leaves_relay_off():
    relay, n, wd = RecordingRelay(), Notifier(), None
    prev = signal.getsignal(signal.SIGTERM)
    wd = RelayWatchdog(relay, timeout_s=5.0).start()
    with GracefulShutdown(relay=relay, watchdog=wd, notifier=n) as stop:
        relay.on(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5.0) and stop.requested and stop.reason == "SIGTERM"
        assert wait_for(lambda: ("all_off",) in relay.calls)   # off at once, by a thread
    assert relay.closed and stop.relay_off is True
    assert n.sent[0] == "STOPPING=1"
    assert signal.getsignal(signal.SIGTERM) is prev           # handlers restored
    assert wd._thread is None


def test_exception_in_loop_still_switches_off():
    relay = RecordingRelay()
    with pytest.raises(RuntimeError):
        with GracefulShutdown(relay=relay) as stop:
            raise RuntimeError("camera gone")
    assert relay.closed and stop.reason.startswith("RuntimeError")


def test_relay_that_cannot_switch_off_is_reported():
    relay = RecordingRelay(fail=5)
    with GracefulShutdown(relay=relay) as stop:
        stop.request("test")
    assert stop.relay_off is False and any("unplugged" in e for e in stop.errors)


def test_each_relay_step_keeps_its_error_and_logs_it(caplog):
    """The signal's immediate off (its thread) and the close at the end each record a failure
    under their own name and log it critical, as before they shared one helper."""
    class Stuck:
        def all_off(self):
            raise RelayError("unplugged")

        def close(self):
            raise OSError("port gone")
    stop = GracefulShutdown(relay=Stuck())
    with caplog.at_level("CRITICAL", logger="device.ops.shutdown"):
        stop._switch_off()
        assert stop.relay_off is False
        stop.finish()
    assert stop.relay_off is False
    assert stop.errors == ["relay off: RelayError: unplugged", "relay close: OSError: port gone"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "CRITICAL"] == [
        "shutdown: relay did not take the off command: unplugged",
        "shutdown: relay could not be switched off: port gone"]
    ok = GracefulShutdown(relay=RecordingRelay(), close_relay=False)
    ok._switch_off()
    ok.finish()
    assert ok.relay_off is True and ok.errors == []




@needs_socat
def test_watchdog_against_lcus_board(pty_pair):
    host, board = pty_pair
    sim = LcusSimulator(board)
    try:
        r = LcusRelay(host, channels=1)
        sim.wait_frames(1)
        r.on(1)                                      # the loop switches on, then hangs
        wd = RelayWatchdog(r, timeout_s=0.3).start()
        assert wait_for(lambda: len(sim.frames) >= 3)
        assert [f for _, f in sim.frames] == [OFF1, ON1, OFF1] and sim.state[1] is False
        wd.stop()
        r.close()
    finally:
        sim.close()


CHILD = textwrap.dedent("""
    import sys, time
    from device.ops.jsonlog import setup_logging
    from device.ops.shutdown import GracefulShutdown
    from device.ops.watchdog import RelayWatchdog
    from device.relays.serial import LcusRelay
    setup_logging("INFO")
    relay = LcusRelay(sys.argv[1], channels=2)
    wd = RelayWatchdog(relay, timeout_s=30).start()
    with GracefulShutdown(relay=relay, watchdog=wd) as stop:
        relay.pulse(1, 60000)                # a door held by a long pulse
        print("ready", flush=True)
        while not stop.requested:
            wd.pet()
            stop.wait(0.05)
    sys.exit(0)
""")


@needs_socat
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_gate_process_stops_on_signal_with_relay_off(pty_pair, sig):
    host, board = pty_pair
    sim = LcusSimulator(board)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-c", CHILD, host], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert p.stdout.readline().strip() == "ready"
        assert wait_for(lambda: len(sim.frames) >= 3)
        assert sim.state == {1: True, 2: False}
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
        assert wait_for(lambda: sim.state == {1: False, 2: False}), (sim.frames, err)
        assert '"event":"shutdown_complete"' in err and '"relay_off":true' in err
        assert f'"reason":"{signal.Signals(sig).name}"' in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        sim.close()
