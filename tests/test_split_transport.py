"""The node link: AES-GCM, sequence numbers; tampered, replayed and dropped messages abort
(ChannelError -> deny), over a socketpair and over a socat pseudo-terminal pair."""
import shutil
import socket
import threading
import time

import pytest

from device.split.transport import (ChannelError, SecureChannel, SerialLink, SocketLink,
                                    socket_pair_channels)

KEY = bytes(range(32))
needs_socat = pytest.mark.skipif(shutil.which("socat") is None,
                                 reason="socat is not installed (apt-get install socat)")


class Tap:
    """A link that lets the test rewrite, repeat or drop whole frames the sender writes."""

    def __init__(self, link):
        self.link, self.frames = link, []
        self.hold = False

    def write(self, b):
        if self.hold:
            self.frames.append(b)
        else:
            self.link.write(b)

    def read_exact(self, n):
        return self.link.read_exact(n)

    def close(self):
        self.link.close()


def tapped_pair():
    a, b = socket.socketpair()
    tap = Tap(SocketLink(a, timeout=2))
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(1, SecureChannel(SocketLink(b, 2), KEY,
                                                                        1)))
    t.start()
    c0 = SecureChannel(tap, KEY, 0)
    t.join()
    tap.hold = True
    return c0, box[1], tap


def test_roundtrip_and_exchange():
    c0, c1 = socket_pair_channels(KEY)
    c0.send(b"hello")
    assert c1.recv() == b"hello"
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(1, c1.exchange(b"B" * 300_000)))
    t.start()
    assert c0.exchange(b"A" * 300_000) == b"B" * 300_000
    t.join()
    assert out[1] == b"A" * 300_000


def test_ciphertext_hides_payload():
    c0, c1, tap = tapped_pair()
    c0.send(b"palm palm palm palm")
    assert b"palm" not in tap.frames[0]


def test_tampered_message_aborts():
    c0, c1, tap = tapped_pair()
    c0.send(b"x" * 64)
    f = bytearray(tap.frames[0])
    f[20] ^= 1
    tap.link.write(bytes(f))
    with pytest.raises(ChannelError, match="tampered"):
        c1.recv()


def test_replayed_message_aborts():
    c0, c1, tap = tapped_pair()
    c0.send(b"first")
    tap.link.write(tap.frames[0])
    assert c1.recv() == b"first"
    tap.link.write(tap.frames[0])
    with pytest.raises(ChannelError, match="replayed"):
        c1.recv()


def test_dropped_message_aborts():
    c0, c1, tap = tapped_pair()
    c0.send(b"one")
    c0.send(b"two")
    tap.link.write(tap.frames[1])          # "one" never arrives
    with pytest.raises(ChannelError, match="dropped"):
        c1.recv()


def test_frame_from_another_session_does_not_verify():
    c0, c1, tap = tapped_pair()
    c0.send(b"old")
    d0, d1, tap2 = tapped_pair()
    tap2.link.write(tap.frames[0])
    with pytest.raises(ChannelError):
        d1.recv()


def test_silence_is_a_timeout():
    c0, c1, _ = tapped_pair()
    with pytest.raises(ChannelError):
        c1.recv()


@needs_socat
def test_over_socat_serial_pair(pty_pair):
    a, b = pty_pair
    la, lb = SerialLink(a, 921600, 5), SerialLink(b, 921600, 5)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(1, SecureChannel(lb, KEY, 1)))
    t.start()
    c0 = SecureChannel(la, KEY, 0)
    t.join()
    c1 = box[1]
    t = threading.Thread(target=lambda: box.setdefault("x", c1.exchange(b"b" * 50_000)))
    t.start()
    assert c0.exchange(b"a" * 50_000) == b"b" * 50_000
    t.join()
    assert box["x"] == b"a" * 50_000
    la.ser.write(b"\x00\x00\x00\x20" + b"\x00" * 8 + b"\x01" * 32)   # forged frame
    with pytest.raises(ChannelError):
        c1.recv()
    la.close()
    lb.close()


@needs_socat
def test_serial_hello_survives_a_peer_that_opens_late(pty_pair):
    """Opening a port flushes its input: a hello sent before the far end opened is lost, so
    the serial hello repeats until answered."""
    a, b = pty_pair
    box = {}

    def early():
        c = SecureChannel(SerialLink(a, 921600, 5), KEY, 0)
        c.send(b"first frame right after the hello")
        box[0] = c

    t = threading.Thread(target=early)
    t.start()
    time.sleep(0.6)                                       # A has sent hellos into the void
    c1 = SecureChannel(SerialLink(b, 921600, 5), KEY, 1)
    t.join()
    assert c1.recv() == b"first frame right after the hello"
    box[0].link.close()
    c1.link.close()
