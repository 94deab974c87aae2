"""The users' sensor templates over the site (the NIR palm patches of
:mod:`device.store.sensor_templates`): their wire record, their sealing and where they sit in
the site's messages (pure functions).

What the palm templates get, the sensor templates get too, under their own AD:

- **Upload** (enrolling gate -> service): per destination gate the record sealed under the
  gate-gate pair key (:func:`device.site.sealing.pair_key`) with :func:`sensor_ad` (site,
  sender, destination, user, enrol id: a blob moved to another user, gate or enrolment does
  not open), plus a copy sealed to the site recovery key (:func:`recovery_sensor_ad`). They
  ride after the palm part of the body as one section whose length the header names
  (``sensor_bytes``): ``u32 recovery length | recovery blob | sealed map``.
- **Change** (service -> gate): the sealed record for that gate after the palm ciphertext;
  the header says how many bytes (``sensor_len``), and the service's tag covers both.
- **Older messages** carry no section (no header key): they still apply, the user then has no
  sensor template (``not_enrolled`` at the gate, as before).

The sensor templates are not re-protected per gate (the comparison searches shifts and turns of
a 2-D patch, which the palm templates' rotate-and-drop does not allow): each gate gets the same
patches, sealed to it alone, and seals them under its own store key when it writes them.

A record is ``PGS1 | u16 header length | header JSON {kind, n} | n x (u32 length | bytes)``.
"""
from __future__ import annotations

import json
import struct

from device.site.messages import MessageError, pack_sealed_map, unpack_sealed_map
from device.site.sealing import seal, seal_to, unseal
from device.store.sensor_templates import KINDS, MAX_BYTES

_MAGIC = b"PGS1"
MAX_TEMPLATES = 64
HEADER_UPLOAD = "sensor_bytes"
HEADER_CHANGE = "sensor_len"


def sensor_ad(site: str, sender: str, dest: str, user_id: str, enrol_id: str) -> bytes:
    return f"palmgate site sensor template|{site}|{sender}|{dest}|{user_id}|{enrol_id}".encode()


def recovery_sensor_ad(site: str, user_id: str, enrol_id: str) -> bytes:
    return f"palmgate site sensor recovery|{site}|{user_id}|{enrol_id}".encode()


def encode(blobs, kind: str = KINDS[0]) -> bytes:
    """The wire record of a user's sensor templates (``blobs``: each template's bytes)."""
    blobs = [bytes(b) for b in blobs]
    if kind not in KINDS:
        raise ValueError(f"sensor template kind {kind!r} is not one of {KINDS}")
    if not 0 < len(blobs) <= MAX_TEMPLATES:
        raise ValueError(f"1 to {MAX_TEMPLATES} sensor templates, not {len(blobs)}")
    if any(not 0 < len(b) <= MAX_BYTES for b in blobs):
        raise ValueError(f"a sensor template is 1 to {MAX_BYTES} bytes")
    head = json.dumps({"kind": kind, "n": len(blobs)}, sort_keys=True,
                      separators=(",", ":")).encode()
    parts = [_MAGIC, struct.pack("<H", len(head)), head]
    for b in blobs:
        parts += [struct.pack("<I", len(b)), b]
    return b"".join(parts)


def decode(record: bytes) -> tuple[str, list[bytes]]:
    """(kind, template bytes) of a wire record; ValueError when it is malformed."""
    try:
        if record[:4] != _MAGIC:
            raise ValueError("not a PalmGate site sensor template record")
        (hn,) = struct.unpack_from("<H", record, 4)
        h = json.loads(record[6:6 + hn])
        kind, n = h["kind"], int(h["n"])
        if kind not in KINDS or not 0 < n <= MAX_TEMPLATES:
            raise ValueError(f"sensor template record of kind {kind!r}, {n} templates")
        off, out = 6 + hn, []
        for _ in range(n):
            (m,) = struct.unpack_from("<I", record, off)
            if not 0 < m <= MAX_BYTES or off + 4 + m > len(record):
                raise ValueError("sensor template record entry runs past its end")
            out.append(bytes(record[off + 4:off + 4 + m]))
            off += 4 + m
    except (struct.error, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("malformed sensor template record") from None
    if off != len(record):
        raise ValueError("sensor template record has trailing bytes")
    return kind, out


# --------------------------------------------------------------------------- upload
def upload_section(site: str, sender: str, user_id: str, enrol_id: str, blobs,
                   gate_keys: dict, recovery_pub: bytes, kind: str = KINDS[0]) -> bytes:
    """The upload's sensor section: the record sealed to each gate of ``gate_keys`` (gate id
    -> the sender's pair key with it) and to the recovery key."""
    rec = encode(blobs, kind)
    sealed = {g: seal(k, rec, sensor_ad(site, sender, g, user_id, enrol_id))
              for g, k in gate_keys.items()}
    r = seal_to(recovery_pub, rec, recovery_sensor_ad(site, user_id, enrol_id))
    return struct.pack("<I", len(r)) + r + pack_sealed_map(sealed)


def split_upload(h: dict, body: bytes) -> tuple[bytes, bytes | None, dict]:
    """(palm body, recovery sensor blob or None, gate id -> sealed sensor record) of an
    upload; an upload without the section gives (body, None, {})."""
    n = h.get(HEADER_UPLOAD)
    if n is None:
        return body, None, {}
    n = int(n)
    if not 0 < n <= len(body):
        raise MessageError(f"upload's sensor section of {n} bytes does not fit its body")
    palm, sec = body[:-n], body[-n:]
    if len(sec) < 4:
        raise MessageError("upload's sensor section is too short")
    (r,) = struct.unpack_from("<I", sec, 0)
    if 4 + r > len(sec):
        raise MessageError("upload's sensor recovery copy runs past its end")
    return palm, bytes(sec[4:4 + r]), unpack_sealed_map(sec[4 + r:])


# --------------------------------------------------------------------------- change
def change_body(h: dict, palm: bytes, sensor: bytes | None) -> tuple[dict, bytes]:
    """The change's header and body with the gate's sealed sensor record after the palm's."""
    if not sensor:
        return h, palm
    return dict(h, **{HEADER_CHANGE: len(sensor)}), palm + bytes(sensor)


def split_change(h: dict, body: bytes) -> tuple[bytes, bytes | None]:
    """(palm ciphertext, sealed sensor record or None) of a change's body."""
    n = h.get(HEADER_CHANGE)
    if n is None:
        return body, None
    n = int(n)
    if not 0 < n < len(body):
        raise MessageError(f"change's sensor record of {n} bytes does not fit its body")
    return body[:-n], body[-n:]


def open_record(key: bytes, sealed: bytes, site: str, sender: str, dest: str, user_id: str,
                enrol_id: str) -> tuple[str, list[bytes]]:
    """The (kind, template bytes) a gate receives; SealError / ValueError when the record
    does not open or is malformed."""
    return decode(unseal(key, sealed, sensor_ad(site, sender, dest, user_id, enrol_id)))
