"""Authenticated, encrypted, sequenced messages between two parties (node-node,
terminal-node) over a byte stream: TCP or Unix sockets, or a serial line (pyserial).

Frame: ``len (4 B, big endian) | seq (8 B) | AES-256-GCM(payload)``; the 12 header bytes are
the associated data and the nonce is ``direction (4 B) | seq``. Keys: each session opens with
an ephemeral X25519 key exchange (hello: a fresh 16-byte nonce and a fresh X25519 public key
from each side), and the key of each direction is HKDF-SHA256 over the long-term 32-byte link
key provisioned at the factory (``device.split.dealer.link_keys``) *and* the X25519 shared
secret, salted with the whole hello transcript (``session_keys``). The link key authenticates
(a peer without it, or a man in the middle who swapped a public key, derives other keys and
its first frame fails the tag); the ephemeral secrets, dropped when the channel closes, give
forward secrecy (a link key stolen later does not open a recorded session), and a message
recorded in another session never verifies. The receiver expects seq = last + 1: a tampered
frame fails the tag, a replayed or reordered one has the wrong seq, a dropped one makes the
next one arrive with the wrong seq (or the read times out). Each of these raises
``ChannelError``, which the node and the terminal turn into a deny.
"""
from __future__ import annotations

import os
import socket
import struct
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_FRAME = 64 << 20
SERIAL_HELLO = b"PGSPLIT\x03"         # v2 hello (nonce + X25519 key); v1 peers never match
SERIAL_READY = b"PGSPLIT\x04"
HEADER = struct.Struct(">IQ")
NONCE_BYTES, X25519_BYTES = 16, 32
HELLO_BYTES = NONCE_BYTES + X25519_BYTES


class ChannelError(RuntimeError):
    """Tampered, replayed, dropped or timed-out message, or a closed link: deny."""


class SocketLink:
    """A connected stream socket (TCP or Unix)."""

    def __init__(self, sock: socket.socket, timeout: float | None = 30.0):
        self.sock = sock
        sock.settimeout(timeout)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, b: bytes) -> None:
        try:
            self.sock.sendall(b)
        except OSError as e:
            raise ChannelError(f"link write failed: {e}") from None

    def read_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except OSError as e:
                raise ChannelError(f"link read failed: {e}") from None
            if not chunk:
                raise ChannelError("link closed")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class SerialLink:
    """A serial port (pyserial URL or device path) used as a byte stream."""

    def __init__(self, port: str, baudrate: int = 921600, timeout: float = 30.0,
                 pace: bool = False):
        import serial
        self.ser = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout)
        self.timeout = timeout
        self._pending = b""
        # pace: hold writes to the line rate (10 bits a byte), for pseudo-terminals, which
        # pass bytes as fast as they come whatever baud rate is set
        self._rate = baudrate / 10.0 if pace else None
        self._free_at = 0.0

    def _paced(self, b: bytes) -> None:
        import time
        for i in range(0, len(b), 4096):
            chunk = b[i:i + 4096]
            now = time.monotonic()
            start = max(now, self._free_at)
            self._free_at = start + len(chunk) / self._rate
            if start > now:
                time.sleep(start - now)
            self.ser.write(chunk)
        wait = self._free_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def write(self, b: bytes) -> None:
        try:
            if self._rate:
                self._paced(b)
            else:
                self.ser.write(b)
            self.ser.flush()
        except Exception as e:                   # serial.SerialException and OSError
            raise ChannelError(f"serial write failed: {e}") from None

    def read_exact(self, n: int) -> bytes:
        buf = bytearray(self._pending[:n])
        self._pending = self._pending[n:]
        while len(buf) < n:
            try:
                chunk = self.ser.read(n - len(buf))
            except Exception as e:
                raise ChannelError(f"serial read failed: {e}") from None
            if not chunk:
                raise ChannelError("serial read timed out (message dropped?)")
            buf += chunk
        return bytes(buf)

    def hello(self, mine: bytes, timeout: float = 30.0) -> bytes:
        """Exchange the session hellos (``HELLO_BYTES`` each) on a line whose far end may open
        later (opening a port flushes its input, so a lone hello can be lost): send
        HELLO+hello every 0.2 s until the peer's arrives, then READY+hello once; done when
        the peer's READY is in. Bytes before it (repeated HELLOs, a cut one) are skipped;
        frames follow it."""
        import time
        n = len(mine)
        hello, ready = SERIAL_HELLO + mine, SERIAL_READY + mine
        theirs, sent_ready, got_ready = None, False, False
        buf = bytearray()
        deadline = time.monotonic() + timeout
        last = 0.0
        old = self.ser.timeout
        self.ser.timeout = 0.05
        try:
            while not (sent_ready and got_ready):
                if time.monotonic() > deadline:
                    raise ChannelError("serial peer did not answer the hello")
                if theirs is None and time.monotonic() - last > 0.2:
                    self.write(hello)
                    last = time.monotonic()
                elif theirs is not None and not sent_ready:
                    self.write(ready)
                    sent_ready = True
                if got_ready:
                    continue
                buf += self.ser.read(self.ser.in_waiting or 1)
                while True:
                    h, r = buf.find(SERIAL_HELLO), buf.find(SERIAL_READY)
                    cands = [(i, m) for i, m in ((h, "h"), (r, "r")) if i >= 0]
                    if not cands:
                        del buf[:max(0, len(buf) - 7)]
                        break
                    i, m = min(cands)
                    if len(buf) < i + 8 + n:
                        del buf[:i]
                        break
                    theirs = bytes(buf[i + 8:i + 8 + n])
                    del buf[:i + 8 + n]
                    if m == "r":
                        got_ready = True
                        break
            self._pending = bytes(buf)         # the peer's first frame may follow its READY
            return theirs
        finally:
            self.ser.timeout = old

    def close(self) -> None:
        self.ser.close()


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def session_keys(link_key: bytes, shared: bytes, hello0: bytes, hello1: bytes,
                 label: str) -> tuple[bytes, bytes]:
    """(key 0->1, key 1->0) of one session: HKDF-SHA256 of the long-term link key and the
    X25519 shared secret, salted with both hellos (side 0's first). Pure."""
    if len(link_key) != 32 or len(shared) != 32:
        raise ValueError("need a 32-byte link key and a 32-byte shared secret")
    ikm, salt = link_key + shared, hello0 + hello1
    info = b"palmgate-split/2 " + label.encode()
    return _hkdf(ikm, salt, info + b" 0>1"), _hkdf(ikm, salt, info + b" 1>0")


def _shared_secret(private: X25519PrivateKey, theirs: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(theirs))
    except ValueError:          # a low-order point: the exchange gives all zeros
        raise ChannelError("peer sent an invalid X25519 public key") from None


class SecureChannel:
    """AES-GCM channel over a link. ``side`` is 0 or 1 (the two ends must differ); ``key`` is
    the long-term link key, which with a fresh X25519 exchange gives the session's keys."""

    def __init__(self, link, key: bytes, side: int, label: str = "peer"):
        if len(key) != 32 or side not in (0, 1):
            raise ValueError("need a 32-byte key and side 0 or 1")
        self.link, self.side = link, side
        eph = X25519PrivateKey.generate()
        mine = os.urandom(NONCE_BYTES) + eph.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if hasattr(link, "hello"):
            theirs = link.hello(mine)
        else:
            link.write(mine)
            theirs = link.read_exact(HELLO_BYTES)
        shared = _shared_secret(eph, theirs[NONCE_BYTES:])
        del eph                          # the ephemeral secret lives for the hello only
        h0, h1 = (mine, theirs) if side == 0 else (theirs, mine)
        k01, k10 = session_keys(key, shared, h0, h1, label)
        del shared
        self._tx = AESGCM(k01 if side == 0 else k10)
        self._rx = AESGCM(k10 if side == 0 else k01)
        self._dir_tx = struct.pack(">I", side)
        self._dir_rx = struct.pack(">I", 1 - side)
        self._seq_tx = 0
        self._seq_rx = 0
        self.bytes_sent = 2 * HELLO_BYTES   # both hellos count toward the traffic
        self.bytes_received = 0
        self.messages_sent = 0
        self.rounds = 0                # exchanges plus one-way messages sent or awaited

    def frame(self, payload: bytes) -> bytes:
        self._seq_tx += 1
        n = len(payload) + 16
        header = HEADER.pack(n, self._seq_tx)
        ct = self._tx.encrypt(self._dir_tx + struct.pack(">Q", self._seq_tx), payload, header)
        return header + ct

    def send(self, payload: bytes) -> None:
        """One-way message (counts as a round)."""
        self._send(payload)
        self.rounds += 1

    def recv(self) -> bytes:
        """Wait for a one-way message (counts as a round)."""
        out = self._recv()
        self.rounds += 1
        return out

    def _send(self, payload: bytes) -> None:
        f = self.frame(payload)
        self.link.write(f)
        self.bytes_sent += len(f)
        self.messages_sent += 1

    def _recv(self) -> bytes:
        header = self.link.read_exact(HEADER.size)
        n, seq = HEADER.unpack(header)
        if n > MAX_FRAME:
            raise ChannelError("frame too long (tampered length)")
        body = self.link.read_exact(n)
        self.bytes_received += HEADER.size + n
        if seq != self._seq_rx + 1:
            raise ChannelError(f"sequence {seq}, expected {self._seq_rx + 1}: replayed or "
                               f"dropped message")
        try:
            out = self._rx.decrypt(self._dir_rx + struct.pack(">Q", seq), body, header)
        except InvalidTag:
            raise ChannelError("authentication failed: tampered message") from None
        self._seq_rx = seq
        return out

    def exchange(self, payload: bytes) -> bytes:
        """Send and receive at the same time (the link is full duplex): one round."""
        err: list[BaseException] = []

        def tx():
            try:
                self._send(payload)
            except BaseException as e:            # re-raised below
                err.append(e)

        t = threading.Thread(target=tx, daemon=True)
        t.start()
        try:
            got = self._recv()
        finally:
            t.join()
        if err:
            raise err[0]
        self.rounds += 1
        return got

    def close(self) -> None:
        self.link.close()


def socket_pair_channels(key: bytes, label: str = "peer"):
    """Two connected channels in one process (tests, in-process evaluation)."""
    a, b = socket.socketpair()
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(1, SecureChannel(SocketLink(b), key, 1,
                                                                        label)))
    t.start()
    c0 = SecureChannel(SocketLink(a), key, 0, label)
    t.join()
    return c0, box[1]


def parse_address(addr: str):
    """``tcp:HOST:PORT``, ``unix:PATH`` or ``serial:PORT[@BAUD][+pace]`` (+pace: hold writes
    to the line rate, for pseudo-terminal pairs)."""
    kind, _, rest = addr.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return kind, (host or "127.0.0.1", int(port))
    if kind == "unix":
        return kind, rest
    if kind == "serial":
        rest, plus, opt = rest.partition("+")
        if plus and opt != "pace":
            raise ValueError(f"unknown serial option +{opt} (only +pace)")
        port, _, baud = rest.partition("@")
        return kind, (port, int(baud or 921600), bool(plus))
    raise ValueError(f"address must be tcp:HOST:PORT, unix:PATH or serial:PORT[@BAUD]: {addr}")


def listen_socket(kind: str, where) -> socket.socket:
    """A bound socket listening for one connection at a parsed tcp/unix address (TCP: address
    reuse; Unix: a stale socket file is removed first)."""
    srv = socket.socket(socket.AF_INET if kind == "tcp" else socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if kind == "tcp":
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        elif os.path.exists(where):
            os.unlink(where)
        srv.bind(where)
        srv.listen(1)
    except BaseException:
        srv.close()
        raise
    return srv


def open_link(addr: str, listen: bool, timeout: float = 30.0, ready=None):
    """Open a link: listen (accept one connection) or connect; serial ports just open.
    ``ready`` is called once a listening socket is bound."""
    kind, where = parse_address(addr)
    if kind == "serial":
        if ready:
            ready()
        return SerialLink(where[0], where[1], timeout, pace=where[2])
    fam = socket.AF_INET if kind == "tcp" else socket.AF_UNIX
    if listen:
        srv = listen_socket(kind, where)
        srv.settimeout(timeout)
        if ready:
            ready()
        try:
            conn, _ = srv.accept()
        except OSError as e:
            raise ChannelError(f"no connection on {addr}: {e}") from None
        finally:
            srv.close()
        return SocketLink(conn, timeout)
    import time
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.connect(where)
            return SocketLink(s, timeout)
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise ChannelError(f"cannot connect to {addr}") from None
            time.sleep(0.02)
