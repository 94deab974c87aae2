"""Append-only audit log: each record chained to the previous one by SHA-256 and MAC'd.

    hash_n = SHA256(hash_{n-1} || canonical(seq, ts, kind, payload)),  mac_n = HMAC(k, hash_n)

The table refuses UPDATE and DELETE (triggers; only an archive lifts the DELETE one, inside its
transaction); the head (seq, hash) is also kept, MAC'd, in the store's meta table, so cutting
records off the end is detected too, and the head is part of the store's state MAC and
generation (device.store.integrity): an older copy of the log put back is a rollback.
``verify()`` walks the whole chain (the store does at every open) and
raises ``AuditChainBroken`` naming the first bad record. A record is written in the store's
transaction (``transaction=``): inside a change's transaction it commits with that change
or not at all.

Records may be archived (``device.store.audit_archive``): the oldest ones are written to an
archive file and removed, and the anchor (meta ``audit_anchor``, MAC'd: the sequence number
and hash of the last archived record, and the list of archives made) takes the place of the
genesis: the chain left in the store starts at anchor + 1 and chains to the anchor's hash.

Payloads hold decisions, bucketed scores, liveness verdicts, user ids and template
versions -- never images or features: values must be short scalars, and field names are
checked against ``ALLOWED``.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import sqlite3
import time
from dataclasses import dataclass

from device.store.errors import AuditChainBroken, AuditError

ALLOWED = {"decision", "user_id", "score_bucket", "liveness", "liveness_bucket",
           "template_version", "reason", "failures", "delay_s", "count", "window_s",
           "mode", "terminal", "views", "users", "templates", "config",
           "status", "pending_nodes",      # split-mode deletes: deleted|pending, "0,1"
           "operator",                     # who ran an admin command
           "sensor_templates",             # sensor templates written (enrolment, restore)
           "hand_size",                    # the views' hand against the enrolled size
           "binding_size_term",            # released: the binding's size term, once
           #                                 the identity checks passed
           "binding_identified",           # released: the binding's wider limit, once
           #                                 the identity checks passed
           "sensor_identity_by",           # the identity check that denied: patch, lines,
           #                                 size, lookalike
           "lookalikes",                   # the look-alikes' check: checked | denied |
           #                                 not_listed (device.gate.lookalikes)
           "lookalike_list",               # kept: a site change of the same bones kept
           #                                 the person's list (device.site.client)
           "phantom",                      # X-ray phantom check: refused | passed (no score)
           "second_look",                  # frame 0 unsure, sensor re-captured: opened |
           #                                 denied | failed (no score)
           "sensor_identity_bucket",       # the identity agreement judged, as a band
           #                                 around its limit (bucket_score)
           "sensor_identity_raw_bucket",   # the agreement before the cohort's normalisation
           #                                 (NIR), as a band around the raw limit
           "sensor_identity"}              # the sensor frame against the person's: checked,
#                                            not_enrolled / other_sensor (skipped by the
#                                            site's policy), ...
_GENESIS = b"\0" * 32


def bucket_score(score: float, threshold: float, width: float = 0.002,
                 span: int = 5) -> str:
    """A score as a coarse band around the threshold: "<-5", "-5".."+4", ">=+5" in units of
    ``width`` (never the score itself)."""
    if not math.isfinite(score):
        return "nan"
    k = math.floor((score - threshold) / width)
    if k < -span:
        return f"<-{span}"
    if k >= span:
        return f">=+{span}"
    return f"{k:+d}"


@dataclass
class AuditRecord:
    seq: int
    ts: float
    kind: str
    payload: dict


def _canonical(seq: int, ts: float, kind: str, payload: str) -> bytes:
    return json.dumps([seq, repr(float(ts)), kind, payload], separators=(",", ":")).encode()


def _anchor_text(d: dict) -> bytes:
    return json.dumps({k: d[k] for k in ("seq", "hash", "archives")}, sort_keys=True,
                      separators=(",", ":")).encode()


def _check_payload(payload: dict) -> str:
    for k, v in payload.items():
        if k not in ALLOWED:
            raise AuditError(f"audit field {k!r} is not allowed (the log holds decisions, "
                             f"bucketed scores and verdicts only)")
        if isinstance(v, (list, tuple, dict, bytes, bytearray)) and k != "config":
            raise AuditError(f"audit field {k!r} must be a scalar")
        if isinstance(v, str) and len(v) > 200:
            raise AuditError(f"audit field {k!r} is too long")
        if hasattr(v, "shape"):
            raise AuditError("arrays (images, features) never go into the audit log")
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    if len(text) > 2000:
        raise AuditError("audit record too large")
    return text


class AuditLog:
    """The audit log in the store's database (table ``audit``, schema version >= 2)."""

    def __init__(self, conn: sqlite3.Connection, key: bytes, transaction=None):
        """``transaction``: the store's ``transaction()`` (a record then commits with the
        store's integrity state); without it, a plain BEGIN IMMEDIATE of its own."""
        self.conn = conn
        self._key = bytes(key)
        self._transaction = transaction or self._plain_transaction

    @contextlib.contextmanager
    def _plain_transaction(self):
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def _head(self):
        r = self.conn.execute("SELECT value FROM meta WHERE name='audit_head'").fetchone()
        if r is None:
            return 0, _GENESIS
        v = bytes(r[0])
        seq, h, mac = int.from_bytes(v[:8], "big"), v[8:40], v[40:72]
        if not hmac.compare_digest(mac, self._mac(b"head" + v[:40])):
            raise AuditChainBroken("audit head record fails its MAC")
        return seq, h

    # ------------------------------------------------------------------ the anchor
    def anchor(self) -> dict:
        """{"seq", "hash" (hex), "archives": [...]} of the last archived record (seq 0 and
        the genesis hash when nothing was archived); raises when its MAC fails."""
        r = self.conn.execute("SELECT value FROM meta WHERE name='audit_anchor'").fetchone()
        if r is None:
            return {"seq": 0, "hash": _GENESIS.hex(), "archives": []}
        try:
            d = json.loads(bytes(r[0]))
            mac = bytes.fromhex(d.pop("mac"))
        except (ValueError, KeyError, TypeError):
            raise AuditChainBroken("audit anchor record is malformed") from None
        if not hmac.compare_digest(mac, self._mac(b"anchor" + _anchor_text(d))):
            raise AuditChainBroken("audit anchor record fails its MAC")
        return d

    def set_anchor(self, seq: int, hash_hex: str, archives: list) -> None:
        """Inside a transaction: the new anchor (the archive takes the records up to it)."""
        d = {"seq": int(seq), "hash": str(hash_hex), "archives": list(archives)}
        d["mac"] = self._mac(b"anchor" + _anchor_text(d)).hex()
        self.conn.execute("INSERT INTO meta(name, value) VALUES('audit_anchor', ?) ON "
                          "CONFLICT(name) DO UPDATE SET value=excluded.value",
                          (json.dumps(d, sort_keys=True).encode(),))

    def _start(self) -> tuple[int, bytes]:
        a = self.anchor()
        return int(a["seq"]), bytes.fromhex(a["hash"])

    def append(self, kind: str, when: float | None = None, **payload) -> AuditRecord:
        """Add one record: in the transaction that is open (the change it records), else in
        one of its own."""
        text = _check_payload(payload)
        ts = time.time() if when is None else float(when)
        with self._transaction():
            seq, prev = self._head()
            last = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                                     ).fetchone()
            if last is None and seq:            # every record archived: the anchor ends it
                last = self._start()
            if (last[0] if last else 0) != seq or (last and bytes(last[1]) != prev):
                raise AuditChainBroken("audit log does not end at its recorded head")
            seq += 1
            h = hashlib.sha256(prev + _canonical(seq, ts, kind, text)).digest()
            self.conn.execute("INSERT INTO audit(seq, ts, kind, payload, prev, hash, mac) "
                              "VALUES(?,?,?,?,?,?,?)",
                              (seq, ts, kind, text, prev, h, self._mac(h)))
            head = seq.to_bytes(8, "big") + h
            self.conn.execute("INSERT INTO meta(name, value) VALUES('audit_head', ?) ON "
                              "CONFLICT(name) DO UPDATE SET value=excluded.value",
                              (head + self._mac(b"head" + head),))
        return AuditRecord(seq, ts, kind, payload)

    def records(self, since: int = 0) -> list[AuditRecord]:
        return [AuditRecord(s, t, k, json.loads(p)) for s, t, k, p in self.conn.execute(
            "SELECT seq, ts, kind, payload FROM audit WHERE seq > ? ORDER BY seq", (since,))]

    def verify(self) -> int:
        """Walk the chain in one read snapshot (another process may be appending); returns
        the number of records or raises ``AuditChainBroken`` naming the first bad record."""
        if self.conn.in_transaction:
            return self._verify()
        self.conn.execute("BEGIN")
        try:
            return self._verify()
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")

    def _verify(self) -> int:
        """The records in the store from the anchor on (all of them when nothing was
        archived); returns how many."""
        n, prev = self._start()
        first = n
        for seq, ts, kind, text, p, h, mac in self.conn.execute(
                "SELECT seq, ts, kind, payload, prev, hash, mac FROM audit ORDER BY seq"):
            n += 1
            if seq != n:
                raise AuditChainBroken(f"audit record {n} is missing (found {seq})")
            if bytes(p) != prev:
                raise AuditChainBroken(f"audit record {seq} does not chain to record {seq - 1}")
            want = hashlib.sha256(prev + _canonical(seq, ts, kind, text)).digest()
            if bytes(h) != want:
                raise AuditChainBroken(f"audit record {seq} was altered (hash mismatch)")
            if not hmac.compare_digest(bytes(mac), self._mac(want)):
                raise AuditChainBroken(f"audit record {seq} fails its MAC")
            prev = want
        head_seq, head_hash = self._head()
        if head_seq != n or head_hash != prev:
            raise AuditChainBroken(f"audit log ends at record {n} but its head says "
                                   f"{head_seq}: records were cut off")
        return n - first
