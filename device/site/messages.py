"""Topics and the framing of every site message (pure functions).

Topics (``S`` the site, ``G`` a gate id):

    site/S/gate/G/roster   service -> gate, retained: the gates' public keys, the recovery key
    site/S/gate/G/change   service -> gate, QoS 1: enrol / revoke / update, numbered per gate
    site/S/gate/G/ctl      service -> gate: "your audit is received up to seq N"
    site/S/up/G/enrol      gate -> service, QoS 1: an enrolment sealed to each destination gate
    site/S/up/G/audit      gate -> service, QoS 1: audit records in chain order
    site/S/up/G/hello      gate -> service: health, changes applied, gaps

The broker's ACL lets gate G read ``site/S/gate/G/#`` and write ``site/S/up/G/#`` only.

A frame is ``PGM1 | u32 header length | header JSON | body`` and, for what the service sends
to a gate, a 32-byte HMAC under their pair key after it.
"""
from __future__ import annotations

import json
import re
import struct

from device.site.sealing import SealError, check_tag, tag

_MAGIC = b"PGM1"
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class MessageError(ValueError):
    """A message that is not a PalmGate site frame, or is malformed."""


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise MessageError(f"{what} {value!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    return value


def gate_topic(site: str, gate: str, what: str) -> str:
    return f"site/{site}/gate/{gate}/{what}"


def up_topic(site: str, gate: str, what: str) -> str:
    return f"site/{site}/up/{gate}/{what}"


def parse_topic(topic: str) -> tuple[str, str, str, str]:
    """(site, "gate"|"up", gate id, what)."""
    p = topic.split("/")
    if len(p) != 5 or p[0] != "site" or p[2] not in ("gate", "up"):
        raise MessageError(f"not a site topic: {topic!r}")
    return p[1], p[2], p[3], p[4]


def pack(header: dict, body: bytes = b"") -> bytes:
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return _MAGIC + struct.pack("<I", len(h)) + h + bytes(body)


def unpack(data: bytes) -> tuple[dict, bytes]:
    if len(data) < 8 or data[:4] != _MAGIC:
        raise MessageError("not a PalmGate site message")
    (n,) = struct.unpack("<I", data[4:8])
    if 8 + n > len(data):
        raise MessageError("site message header runs past its end")
    try:
        h = json.loads(data[8:8 + n])
    except ValueError:
        raise MessageError("site message header is not JSON") from None
    if not isinstance(h, dict):
        raise MessageError("site message header is not an object")
    return h, bytes(data[8 + n:])


def pack_tagged(key: bytes, header: dict, body: bytes = b"") -> bytes:
    frame = pack(header, body)
    return frame + tag(key, frame)


def unpack_tagged(key: bytes, data: bytes) -> tuple[dict, bytes]:
    if len(data) < 40:
        raise MessageError("site message too short")
    frame, mac = bytes(data[:-32]), bytes(data[-32:])
    try:
        check_tag(key, frame, mac)
    except SealError as e:
        raise MessageError(str(e)) from None
    return unpack(frame)


def template_ad(site: str, sender: str, dest: str, user_id: str, enrol_id: str) -> bytes:
    return f"palmgate site template|{site}|{sender}|{dest}|{user_id}|{enrol_id}".encode()


def recovery_ad(site: str, user_id: str, enrol_id: str) -> bytes:
    return f"palmgate site recovery|{site}|{user_id}|{enrol_id}".encode()


# enrolment upload body: for each destination, u16 id length | id | u32 blob length | blob
def pack_sealed_map(sealed: dict[str, bytes]) -> bytes:
    out = []
    for gid, blob in sealed.items():
        b = gid.encode()
        out += [struct.pack("<H", len(b)), b, struct.pack("<I", len(blob)), blob]
    return b"".join(out)


def unpack_sealed_map(body: bytes) -> dict[str, bytes]:
    out, off = {}, 0
    try:
        while off < len(body):
            (n,) = struct.unpack_from("<H", body, off)
            gid = body[off + 2:off + 2 + n].decode()
            off += 2 + n
            (m,) = struct.unpack_from("<I", body, off)
            if off + 4 + m > len(body):
                raise MessageError("sealed map entry runs past the end")
            out[gid] = body[off + 4:off + 4 + m]
            off += 4 + m
    except (struct.error, UnicodeDecodeError):
        raise MessageError("malformed sealed map") from None
    return out
