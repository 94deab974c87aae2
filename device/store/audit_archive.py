"""Audit retention: the oldest records written to an archive file, then removed from the store,
with the chain still verifiable on both sides.

An archive is JSON lines:

    {"format": "palmgate-audit-archive", "v": 1, "store_id", "first_seq", "last_seq",
     "prev_hash", "before", "created"}                                   the header
    {"seq", "ts", "kind", "payload", "prev", "hash", "mac"}              one line a record
    {"end": true, "records", "last_hash", "mac"}                         the trailer

``payload`` is the record's canonical JSON text and ``ts`` its exact float, so each hash can be
recomputed from the line alone: ``hash = SHA256(prev || canonical(seq, ts, kind, payload))``,
starting at ``prev_hash`` (the genesis, or the previous archive's last hash). The chain alone
shows any record changed, removed or reordered inside the file; the MACs (each record's, and
the trailer's over every line before it) need the unit's audit key and show a file rewritten
as a whole; and the store keeps, in its MAC'd anchor, each archive's range and last hash.

Archiving (:func:`archive_before`) runs in one store transaction: the records before the date
are read, the file is written and synced (never over an existing file), the anchor moves to
the last archived record, the records are deleted (the append-only trigger is lifted for that
statement only and put back, byte for byte, in the same transaction) and an ``audit_archive``
record is appended. Anything failing rolls all of it back; a file written before a failed
commit only repeats records the store still holds.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path

from device.store.audit import _GENESIS, _canonical
from device.store.errors import AuditChainBroken

FORMAT = "palmgate-audit-archive"


class ArchiveError(ValueError):
    """An archive file that cannot be read, or whose chain or MACs do not hold."""


# --------------------------------------------------------------------------- writing
def _cut(conn, before: float) -> int:
    """The last seq to archive: every record before the first one at or after ``before``
    (a prefix of the chain, whatever a clock step did to the times)."""
    r = conn.execute("SELECT MIN(seq) FROM audit WHERE ts >= ?", (before,)).fetchone()[0]
    if r is not None:
        return int(r) - 1
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0])


def _write_new(path: Path, data: bytes) -> None:
    """``data`` to ``path`` (0600, synced), refusing to replace a file that is there."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise ArchiveError(f"cannot write the archive {path}: {e.strerror or e} (nothing "
                           f"was removed from the store)") from None
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)                  # fails when the file exists: nothing replaced
    except FileExistsError:
        raise ArchiveError(f"--out {path} exists: an archive is never overwritten") from None
    finally:
        os.unlink(tmp)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def archive_before(st, before: float, out=None, out_dir=None,
                   audit: dict | None = None, now: float | None = None) -> dict:
    """Archive the records of ``st`` (an open TemplateStore) older than ``before`` (UNIX
    time) into ``out`` (or a file named by its range in ``out_dir``), then remove them.
    Returns {"records", "first_seq", "last_seq", "out", "last_hash"}; records 0 (and no
    file) when there is nothing to archive."""
    log, c = st.audit, st.conn
    now = time.time() if now is None else now
    with st.transaction():
        st.audit.verify()                   # never archive (or delete) a broken chain
        anchor = log.anchor()
        cut = _cut(c, before)
        rows = c.execute("SELECT seq, ts, kind, payload, prev, hash, mac FROM audit "
                         "WHERE seq <= ? ORDER BY seq", (cut,)).fetchall()
        if not rows:
            return {"records": 0, "out": None, "first_seq": None, "last_seq": None}
        first, last = rows[0][0], rows[-1][0]
        path = Path(out) if out else Path(out_dir) / f"audit-{first:09d}-{last:09d}.jsonl"
        if out is None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        header = {"format": FORMAT, "v": 1, "store_id": (st.read_meta("store_id") or b"").hex(),
                  "first_seq": first, "last_seq": last, "prev_hash": anchor["hash"],
                  "before": before, "created": now}
        lines = [json.dumps(header, sort_keys=True)]
        lines += [json.dumps({"seq": s, "ts": ts, "kind": k, "payload": p,
                              "prev": bytes(pv).hex(), "hash": bytes(h).hex(),
                              "mac": bytes(m).hex()}, sort_keys=True)
                  for s, ts, k, p, pv, h, m in rows]
        last_hash = bytes(rows[-1][5]).hex()
        body = ("\n".join(lines) + "\n").encode()
        trailer = {"end": True, "records": len(rows), "last_hash": last_hash,
                   "mac": log._mac(b"archive" + hashlib.sha256(body).digest()).hex()}
        _write_new(path, body + (json.dumps(trailer, sort_keys=True) + "\n").encode())
        log.set_anchor(last, last_hash, anchor["archives"] + [
            {"first": first, "last": last, "prev": anchor["hash"], "hash": last_hash,
             "file": path.name, "at": now}])
        trig = c.execute("SELECT sql FROM sqlite_master WHERE type='trigger' AND "
                         "name='audit_no_delete'").fetchone()
        if trig is None:
            raise AuditChainBroken("the audit table's append-only trigger is missing")
        c.execute("DROP TRIGGER audit_no_delete")
        c.execute("DELETE FROM audit WHERE seq <= ?", (last,))
        c.execute(trig[0])                  # the same trigger, the same schema text
        day = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(before))
        st._record("audit_archive", audit, count=len(rows),
                   reason=f"records {first}-{last} before {day} to {path.name}"[:200])
    st.checkpoint()                         # the deleted rows leave the WAL too
    return {"records": len(rows), "first_seq": first, "last_seq": last, "out": str(path),
            "last_hash": last_hash}


def prune(st, retention_days: int, archive_dir, audit: dict | None = None,
          now: float | None = None) -> dict:
    """``[audit] retention_days``: archive (into ``archive_dir``) and remove the records
    older than that many days; 0 keeps everything."""
    now = time.time() if now is None else now
    if retention_days <= 0:
        return {"records": 0, "out": None, "retention_days": 0}
    rep = archive_before(st, now - retention_days * 86400.0, out_dir=archive_dir,
                         audit=audit, now=now)
    return {**rep, "retention_days": retention_days}


# --------------------------------------------------------------------------- checking
def read_archive(path) -> tuple[dict, list[dict], dict, bytes]:
    """(header, records, trailer, the bytes the trailer's MAC covers)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ArchiveError(f"--archive {path}: {e.strerror or e}") from None
    body, _, tail = raw.rstrip(b"\n").rpartition(b"\n")
    try:
        lines = [json.loads(x) for x in body.split(b"\n")] if body else []
        trailer = json.loads(tail)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError(f"{path} is not an audit archive (a line is not JSON)") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("format") != FORMAT:
        raise ArchiveError(f"{path} is not an audit archive (palmgate audit archive)")
    if not isinstance(trailer, dict) or trailer.get("end") is not True:
        raise ArchiveError(f"{path}: the archive has no trailer (cut off?)")
    return lines[0], lines[1:], trailer, body + b"\n"


def check_chain(header: dict, records: list[dict], trailer: dict) -> str:
    """Recompute the chain of an archive's records; returns the last hash (hex) or raises
    ArchiveError naming the first bad record."""
    prev, seq = bytes.fromhex(header["prev_hash"]), int(header["first_seq"]) - 1
    for r in records:
        seq += 1
        if r.get("seq") != seq:
            raise ArchiveError(f"archive record {seq} is missing (found {r.get('seq')})")
        if bytes.fromhex(r["prev"]) != prev:
            raise ArchiveError(f"archive record {seq} does not chain to record {seq - 1}")
        want = hashlib.sha256(prev + _canonical(seq, r["ts"], r["kind"], r["payload"])
                              ).digest()
        if bytes.fromhex(r["hash"]) != want:
            raise ArchiveError(f"archive record {seq} was altered (hash mismatch)")
        prev = want
    if seq != header["last_seq"] or trailer.get("records") != len(records):
        raise ArchiveError(f"the archive ends at record {seq} but its header says "
                           f"{header['last_seq']}: records were cut off")
    if trailer.get("last_hash") != prev.hex():
        raise ArchiveError("the archive's trailer does not match its last record")
    return prev.hex()


def verify_archive(path, mac=None, anchor: dict | None = None) -> dict:
    """Check an archive file: its chain always; with ``mac`` (the unit's audit-key HMAC,
    ``AuditLog._mac``) every record's MAC and the trailer's; with ``anchor`` (the store's,
    ``AuditLog.anchor()``) that the store lists this range with the same hashes. Returns a
    report with ``ok``; a broken file raises ArchiveError."""
    header, records, trailer, body = read_archive(path)
    try:
        last = check_chain(header, records, trailer)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ArchiveError):
            raise
        raise ArchiveError(f"{path}: a record is malformed ({e})") from None
    rep = {"ok": True, "records": len(records), "first_seq": header["first_seq"],
           "last_seq": header["last_seq"], "last_hash": last, "mac": "unchecked",
           "store": "unchecked"}
    if anchor is not None:
        listed = [a for a in anchor.get("archives", [])
                  if a["first"] == header["first_seq"] and a["last"] == header["last_seq"]]
        if not listed:
            rep["store"] = "not_listed"
        elif listed[-1]["hash"] != last or listed[-1]["prev"] != header["prev_hash"]:
            raise ArchiveError(f"{path}: records {header['first_seq']}-{header['last_seq']} "
                               f"differ from the ones this store archived")
        else:
            rep["store"] = "listed"
    if mac is not None:
        good = all(hmac.compare_digest(bytes.fromhex(r["mac"]),
                                       mac(bytes.fromhex(r["hash"]))) for r in records) and \
            hmac.compare_digest(bytes.fromhex(trailer.get("mac", "")),
                                mac(b"archive" + hashlib.sha256(body).digest()))
        rep["mac"] = "ok" if good else "mismatch"
        if not good and rep["store"] != "listed":
            # rewritten as a whole, or another unit's (a restored unit's old archives
            # carry the old key's MACs, but its store lists them)
            raise ArchiveError(f"{path}: the MACs do not match this unit's audit key, and "
                               f"the store does not list this archive")
    return rep
