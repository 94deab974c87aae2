"""The users' sensor templates over the site (the NIR palm patches of
:mod:`device.store.sensor_templates`): their wire record, their sealing and where they sit in
the site's messages (pure functions).

- **Sealed once, its key wrapped per gate.** The record is the same for every gate (the
  sensor templates are not re-protected per gate: the comparison searches shifts and turns of
  a 2-D patch, which the palm templates' rotate-and-drop does not allow), and 13.6 kB a
  template, so the enrolling gate seals it once under a fresh 32-byte content key
  (AES-256-GCM, AD :func:`record_ad`: site, user, enrolment) and seals that key to each gate
  of the roster under their pair key (:func:`device.site.sealing.pair_key`; AD
  :func:`key_ad`: site, sender, addressee, user, enrolment -- the sender is authenticated, and
  a key moved to another user, gate or enrolment does not open) and once to the site recovery
  key (:func:`recovery_key_ad`). An upload to 200 gates grows by one record and 200 wrapped
  keys (~90 B each), not 200 records: the broker's packet limit (4 MiB) would otherwise end a
  site's uploads at about a hundred gates.
- **Upload** (enrolling gate -> service): after the palm part of the body one section whose
  length the header names (``sensor_bytes``): ``u32 record length | sealed record | u32
  length | recovery-wrapped key | sealed map of the gates' wrapped keys``.
- **Change** (service -> gate): ``u32 length | wrapped key | sealed record`` after the palm
  ciphertext; the header says how many bytes (``sensor_len``), and the service's tag covers
  both. The gate opens its key, then the record, and seals the templates under its own store
  key when it writes them.
- **Older messages** carry no section (no header key): they still apply, the user then has no
  sensor template (``not_enrolled`` at the gate, as before).

- **Bound to the palm part.** The palm ciphertexts of an enrolment with sensor templates,
  and its recovery copy, are sealed under AD that ends with the sealed record's SHA-256
  (:func:`bind`): the upload is not authenticated to the service, so without it the broker
  could strip the section (the user ``not_enrolled`` at every gate, unchecked under
  ``sensor_identity = "when_enrolled"``, the palm templates applied), and a gate holding the
  content key could make another record under it. A change stripped of its sensor part, or
  carrying another record, does not open; an older upload (no section) is sealed under the
  plain AD and still applies.

Who can read a record: the gates it was wrapped to and the recovery key's holder, as for the
palm templates.

A record is ``PGS1 | u16 header length | header JSON {kind, n} | n x (u32 length | bytes)``.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

from device.site.messages import MessageError, pack_sealed_map, unpack_sealed_map
from device.site.sealing import KEY, seal, seal_to, unseal
from device.store.sensor_templates import FEATURE_KINDS as KINDS, MAX_BYTES

_MAGIC = b"PGS1"
MAX_TEMPLATES = 64
HEADER_UPLOAD = "sensor_bytes"
HEADER_CHANGE = "sensor_len"


def record_ad(site: str, user_id: str, enrol_id: str) -> bytes:
    return f"palmgate site sensor templates|{site}|{user_id}|{enrol_id}".encode()


def key_ad(site: str, sender: str, dest: str, user_id: str, enrol_id: str) -> bytes:
    return f"palmgate site sensor key|{site}|{sender}|{dest}|{user_id}|{enrol_id}".encode()


def recovery_key_ad(site: str, user_id: str, enrol_id: str) -> bytes:
    return f"palmgate site sensor recovery|{site}|{user_id}|{enrol_id}".encode()


def record_digest(record: bytes) -> str:
    """Hex SHA-256 of a sealed record (what the palm part's AD names)."""
    return hashlib.sha256(bytes(record)).hexdigest()


def bind(ad: bytes, digest: str | None) -> bytes:
    """The AD of an enrolment's palm ciphertexts and recovery copy: ``ad`` as before when it
    has no sensor templates (``digest`` None), else naming its sealed record's digest."""
    if digest is None:
        return ad
    if not isinstance(digest, str) or len(digest) != 64:
        raise ValueError("a sensor record digest is 64 hex digits")
    return ad + b"|sensor record|" + digest.encode()


def section_digest(section: bytes) -> str:
    """The digest of the sealed record at the head of an upload's sensor section."""
    return record_digest(_chunks(section, 1, "upload's sensor section")[0])


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
    except (struct.error, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError,
            OverflowError, RecursionError):     # "n": Infinity; a header nested without end
        raise ValueError("malformed sensor template record") from None
    if off != len(record):
        raise ValueError("sensor template record has trailing bytes")
    return kind, out


def _chunks(data: bytes, n: int, what: str) -> list[bytes]:
    """``n`` u32-length-prefixed parts of ``data`` and the rest."""
    out, off = [], 0
    for _ in range(n):
        if off + 4 > len(data):
            raise MessageError(f"{what} is too short")
        (m,) = struct.unpack_from("<I", data, off)
        if off + 4 + m > len(data):
            raise MessageError(f"{what} runs past its end")
        out.append(bytes(data[off + 4:off + 4 + m]))
        off += 4 + m
    return out + [bytes(data[off:])]


def _length(h: dict, key: str, limit: int, what: str) -> int | None:
    """The byte count ``h[key]`` names (None: no such key), 1 to ``limit``; MessageError for
    anything else (a float, a string, Infinity, a bool)."""
    n = h.get(key)
    if n is None:
        return None
    if type(n) is not int or not 0 < n <= limit:
        raise MessageError(f"{what} of {n!r} bytes does not fit its body")
    return n


def _u32(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + b


# --------------------------------------------------------------------------- upload
def upload_section(site: str, sender: str, user_id: str, enrol_id: str, blobs,
                   gate_keys: dict, recovery_pub: bytes, kind: str = KINDS[0]) -> bytes:
    """The upload's sensor section: the record sealed once under a fresh content key, that
    key sealed to each gate of ``gate_keys`` (gate id -> the sender's pair key with it) and
    to the recovery key."""
    ck = os.urandom(KEY)
    record = seal(ck, encode(blobs, kind), record_ad(site, user_id, enrol_id))
    wrapped = {g: seal(k, ck, key_ad(site, sender, g, user_id, enrol_id))
               for g, k in gate_keys.items()}
    rec_key = seal_to(recovery_pub, ck, recovery_key_ad(site, user_id, enrol_id))
    return _u32(record) + _u32(rec_key) + pack_sealed_map(wrapped)


def split_upload(h: dict, body: bytes) -> tuple[bytes, tuple | None]:
    """(palm body, (sealed record, recovery-wrapped key, gate id -> wrapped key) or None):
    an upload without the section gives (body, None)."""
    n = _length(h, HEADER_UPLOAD, len(body), "upload's sensor section")
    if n is None:
        return body, None
    record, rec_key, rest = _chunks(body[-n:], 2, "upload's sensor section")
    return body[:-n], (record, rec_key, unpack_sealed_map(rest))


# --------------------------------------------------------------------------- change
def change_body(h: dict, palm: bytes, wrapped: bytes | None,
                record: bytes | None) -> tuple[dict, bytes]:
    """The change's header and body: the gate's wrapped key and the sealed record after the
    palm ciphertext (none of them: the change as before)."""
    if not wrapped or not record:
        return h, palm
    sec = _u32(wrapped) + record
    return dict(h, **{HEADER_CHANGE: len(sec)}), palm + sec


def split_change(h: dict, body: bytes) -> tuple[bytes, tuple | None]:
    """(palm ciphertext, (wrapped key, sealed record) or None) of a change's body."""
    n = _length(h, HEADER_CHANGE, len(body) - 1, "change's sensor part")
    if n is None:
        return body, None
    wrapped, record = _chunks(body[-n:], 1, "change's sensor part")
    return body[:-n], (wrapped, record)


def open_record(pair: bytes, wrapped: bytes, record: bytes, site: str, sender: str, dest: str,
                user_id: str, enrol_id: str) -> tuple[str, list[bytes]]:
    """The (kind, template bytes) a gate receives: its wrapped key opened under its pair key
    with ``sender``, then the record; SealError / ValueError when either does not open or
    the record is malformed."""
    ck = unseal(pair, wrapped, key_ad(site, sender, dest, user_id, enrol_id))
    return decode(unseal(ck, record, record_ad(site, user_id, enrol_id)))
