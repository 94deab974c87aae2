"""A whole unit's backup: users and templates (the store's own backup), their cards and access
modes, and the audit log with its chain -- one AES-256-GCM file.

    4-byte header length | header JSON | 12-byte nonce | AES-GCM(payload JSON, AD = header)

The key is scrypt(passphrase) (any unit can restore it) or, without a passphrase, this unit's
backup key (only this unit, or one with the same device key). The payload holds the store's
backup file under the same passphrase or key, the cards and modes, and every audit record with
its chain hash.

``restore_unit`` goes into a store whose audit log is empty (a unit just made with ``palmgate
init``): the audit log is append-only, and two histories cannot be merged. It checks the
backup's chain from the first record to the last (every hash recomputed) before it writes
anything, copies the records with their sequence numbers, times and hashes -- the same chain
-- and MACs each under this unit's audit key, then restores users, templates, cards and modes.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = "palmgate-unit-backup"
_GENESIS = b"\0" * 32


class BackupError(RuntimeError):
    """Not a unit backup, a wrong passphrase or key, a broken chain, a non-empty target."""


def _key(st, header: dict, passphrase) -> bytes:
    from device.store.sealing import scrypt_key
    if header["kdf"] == "scrypt":
        if passphrase is None:
            raise BackupError("this backup was made with a passphrase: give "
                              "--passphrase-file FILE")
        return scrypt_key(passphrase, base64.b64decode(header["salt"]), header["n"], header["r"],
                       header["p"])
    return st._k_backup


def _audit_rows(st) -> list:
    return [[seq, ts, kind, text, bytes(prev).hex(), bytes(h).hex()]
            for seq, ts, kind, text, prev, h in st.conn.execute(
                "SELECT seq, ts, kind, payload, prev, hash FROM audit ORDER BY seq")]


def backup_unit(st, path, passphrase=None) -> dict:
    """Write the backup of ``st`` (an open TemplateStore) to ``path`` (mode 0600)."""
    from device.store.credentials import Credentials
    st.audit.verify()                           # never back up a broken chain unnoticed
    with tempfile.TemporaryDirectory() as d:
        inner = Path(d) / "store.bak"
        counts = st.backup(inner, passphrase)
        store_blob = inner.read_bytes()
    rows = _audit_rows(st)
    anchor = st.audit.anchor()      # archived records: the chain starts after them
    payload = {"store": base64.b64encode(store_blob).decode(),
               "credentials": Credentials(st).export(), "audit": rows,
               "audit_anchor": {k: anchor[k] for k in ("seq", "hash", "archives")}}
    header = {"format": FORMAT, "v": 1, "created": time.time()}
    if passphrase is not None:
        salt = os.urandom(16)
        header.update(kdf="scrypt", salt=base64.b64encode(salt).decode(), n=2 ** 15, r=8, p=1)
    else:
        header["kdf"] = "device"
    head = json.dumps(header, sort_keys=True).encode()
    nonce = os.urandom(12)
    body = AESGCM(_key(st, header, passphrase)).encrypt(nonce, json.dumps(payload).encode(),
                                                         head)
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, len(head).to_bytes(4, "big") + head + nonce + body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    return {"out": str(p), **counts, "cards": len(payload["credentials"]["cards"]),
            "audit_records": len(rows), "audit_head": rows[-1][5] if rows else None,
            "kdf": header["kdf"]}


def read_backup(st, path, passphrase=None) -> tuple[dict, dict]:
    blob = Path(path).read_bytes()
    try:
        n = int.from_bytes(blob[:4], "big")
        head = blob[4:4 + n]
        header = json.loads(head)
        nonce, body = blob[4 + n:16 + n], blob[16 + n:]
    except (ValueError, json.JSONDecodeError):
        raise BackupError(f"{path} is not a PalmGate unit backup (palmgate backup)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError(f"{path} is not a PalmGate unit backup (palmgate backup)")
    try:
        payload = json.loads(AESGCM(_key(st, header, passphrase)).decrypt(nonce, body, head))
    except InvalidTag:
        raise BackupError(f"backup {path} failed authentication: wrong passphrase, a backup "
                          f"made without --passphrase-file on another unit, or a changed "
                          f"file") from None
    return header, payload


def check_chain(rows, anchor: dict | None = None) -> str | None:
    """Recompute the backup's audit chain from its anchor (the last archived record; the
    genesis when none was archived); returns the last hash (hex) or None when empty."""
    from device.store.audit import _canonical
    start = int(anchor["seq"]) if anchor else 0
    prev = bytes.fromhex(anchor["hash"]) if anchor else _GENESIS
    for i, (seq, ts, kind, text, p, h) in enumerate(rows, start + 1):
        if seq != i or bytes.fromhex(p) != prev:
            raise BackupError(f"backup audit record {seq}: the chain is broken there")
        want = hashlib.sha256(prev + _canonical(seq, ts, kind, text)).digest()
        if bytes.fromhex(h) != want:
            raise BackupError(f"backup audit record {seq} was altered (hash mismatch)")
        prev = want
    return prev.hex() if rows else None


def restore_unit(st, path, passphrase=None, audit: dict | None = None) -> dict:
    from device.store.credentials import Credentials
    header, payload = read_backup(st, path, passphrase)
    rows = payload["audit"]
    anchor = payload.get("audit_anchor")
    head_hex = check_chain(rows, anchor)
    have = st.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    if have:
        raise BackupError(f"this unit's audit log already holds {have} records: restore into "
                          f"a new unit (palmgate init --dir NEW, then palmgate restore --config "
                          f"NEW/palmgate.toml); an append-only log cannot take another's "
                          f"history")
    c = st.conn
    with st.transaction():          # the rows, the head and the store's state record together
        if anchor and int(anchor["seq"]):
            st.audit.set_anchor(anchor["seq"], anchor["hash"], anchor["archives"])
        for seq, ts, kind, text, p, h in rows:
            hb = bytes.fromhex(h)
            c.execute("INSERT INTO audit(seq, ts, kind, payload, prev, hash, mac) "
                      "VALUES(?,?,?,?,?,?,?)",
                      (seq, ts, kind, text, bytes.fromhex(p), hb, st.audit._mac(hb)))
        if rows:
            head = int(rows[-1][0]).to_bytes(8, "big") + bytes.fromhex(head_hex)
            c.execute("INSERT INTO meta(name, value) VALUES('audit_head', ?) ON "
                      "CONFLICT(name) DO UPDATE SET value=excluded.value",
                      (head + st.audit._mac(b"head" + head),))
    with tempfile.TemporaryDirectory() as d:
        inner = Path(d) / "store.bak"
        inner.write_bytes(base64.b64decode(payload["store"]))
        counts = st.restore(inner, passphrase, audit)
    creds = Credentials(st).load(payload["credentials"])
    n = st.audit.verify()
    return {**counts, "cards": creds["cards"], "modes": creds["modes"],
            "audit_records": len(rows), "audit_head": head_hex, "verified_records": n,
            "backup_created": header.get("created")}
