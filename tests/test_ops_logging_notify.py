"""JSON log lines and the sd_notify protocol against a real unix datagram socket."""
import io
import json
import logging
import os
import socket

import numpy as np
import pytest

from device.ops.jsonlog import JsonFormatter, setup_logging
from device.ops.sdnotify import SystemdNotifier, watchdog_interval_s


@pytest.fixture
def log_stream():
    s = io.StringIO()
    h = setup_logging("DEBUG", stream=s, static={"unit": "PG-000123"})
    yield s
    logging.getLogger().removeHandler(h)


def lines(s):
    return [json.loads(x) for x in s.getvalue().splitlines()]


def test_one_json_object_per_line(log_stream):
    log = logging.getLogger("device.gate")
    log.info("decision %s\nsecond line", "deny",
             extra={"decision": "deny", "reason": "liveness", "stages_ms": {"sr": 3.5},
                    "score": np.float32(0.25), "ids": {"a"}, "raw": b"\x01\x02"})
    log.debug("plain")
    got = lines(log_stream)
    assert len(got) == 2 and len(log_stream.getvalue().splitlines()) == 2
    a = got[0]
    assert a["msg"] == "decision deny\nsecond line" and a["level"] == "INFO"
    assert a["logger"] == "device.gate" and a["unit"] == "PG-000123"
    assert a["ts"].endswith("Z") and "T" in a["ts"]
    assert a["decision"] == "deny" and a["stages_ms"] == {"sr": 3.5}
    assert a["score"] == 0.25 and a["ids"] == ["a"] and a["raw"] == "0102"
    assert "args" not in a and "levelno" not in a


def test_exception_fields(log_stream):
    try:
        raise ValueError("bad frame")
    except ValueError:
        logging.getLogger("x").exception("capture failed")
    e = lines(log_stream)[-1]
    assert e["level"] == "ERROR" and e["exc_type"] == "ValueError" and e["exc"] == "bad frame"
    assert "Traceback" in e["traceback"]


def test_setup_logging_replaces_its_own_handler():
    root = logging.getLogger()
    before = list(root.handlers)
    h1 = setup_logging("INFO", stream=io.StringIO())
    h2 = setup_logging("WARNING", stream=io.StringIO(), json_lines=False)
    assert h1 not in root.handlers and h2 in root.handlers and root.level == logging.WARNING
    root.removeHandler(h2)
    assert root.handlers == before
    assert isinstance(h1.formatter, JsonFormatter)


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2.0)
    yield path, s
    s.close()


def test_notify_protocol(notify_socket):
    path, sock = notify_socket
    n = SystemdNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000",
                             "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_s == 10.0
    assert n.ready("gate ready: 3 cameras, 120 users")
    assert sock.recv(4096) == b"READY=1\nSTATUS=gate ready: 3 cameras, 120 users"
    n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    n.status("deny: liveness\n(0.12)")
    assert sock.recv(4096) == b"STATUS=deny: liveness (0.12)"
    n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    n.close()


def test_notify_abstract_socket():
    name = f"palmgate-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2.0)
    try:
        assert SystemdNotifier("@" + name).watchdog()
        assert s.recv(100) == b"WATCHDOG=1"
    finally:
        s.close()


def test_outside_systemd_and_failures_are_quiet(tmp_path):
    n = SystemdNotifier(env={})
    assert not n.enabled and n.ready() is False and n.watchdog_s is None
    gone = SystemdNotifier(str(tmp_path / "nobody-listens.sock"))
    assert gone.ready() is False and gone.errors == 1        # logged, not raised


def test_watchdog_interval_env():
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "5000000"}) == 5.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"},
                               pid=2) is None                # meant for another process
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "x"}) is None
