"""Encrypted backups of the template store: one AES-256-GCM file (``device.store.sealing``)
under scrypt(passphrase) -- any unit can restore it -- or under the unit's backup key. The
users, their palm templates and their sensor templates (``device.store.sensor_templates``;
a backup from before them has none, and restores without)."""
from __future__ import annotations

import base64
import os
import time
from dataclasses import asdict
from pathlib import Path

from device.protect.core import ProtectedTemplate
from device.store import sensor_templates
from device.store.errors import StoreError
from device.store.sealing import backup_header, pack_backup, scrypt_key, unpack_backup
from device.store.user import User


def backup(store, path, passphrase: bytes | str | None = None) -> dict:
    header = {"format": "palmgate-template-backup", "v": 1, "created": time.time(),
              "schema": store.schema_version}
    if passphrase is not None:
        salt = os.urandom(16)
        header.update(kdf="scrypt", salt=base64.b64encode(salt).decode(), n=2 ** 15, r=8, p=1)
        key = scrypt_key(passphrase, salt, 2 ** 15, 8, 1)
    else:
        header["kdf"] = "device"
        key = store._k_backup
    with store.snapshot():
        payload = {"users": [asdict(u) for u in store.users()],
                   "templates": [{"user_id": uid, "version": ver,
                                  "template": base64.b64encode(t.to_bytes()).decode()}
                                 for uid, _, ver, t in store.templates()],
                   "sensor_templates": [{"user_id": uid, "version": ver, "kind": k,
                                         "blob": base64.b64encode(b).decode()}
                                        for uid, ver, k, b in sensor_templates.rows(store)]}
    blob = pack_backup(header, payload, key)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return {"users": len(payload["users"]), "templates": len(payload["templates"]),
            "sensor_templates": len(payload["sensor_templates"])}


def restore(store, path, passphrase: bytes | str | None = None,
            audit: dict | None = None) -> dict:
    """Replace the whole content with a backup and write its audit record, in one
    transaction, re-sealed under this unit's device key."""
    header, head, nonce, body = backup_header(Path(path).read_bytes(), str(path))
    if header.get("kdf") == "scrypt":
        if passphrase is None:
            raise StoreError("this backup needs its passphrase")
        key = scrypt_key(passphrase, base64.b64decode(header["salt"]), header["n"],
                         header["r"], header["p"])
    else:
        key = store._k_backup
    payload = unpack_backup(head, nonce, body, key, str(path))
    with store.transaction():
        for uid in [r[0] for r in store.conn.execute("SELECT user_id FROM users")]:
            store._remove_user(uid)
        for u in payload["users"]:
            store._write_user(User(**u))
        for t in payload["templates"]:
            store._insert_template(t["user_id"], t["version"], ProtectedTemplate.from_bytes(
                base64.b64decode(t["template"])))
        sensor = payload.get("sensor_templates", [])
        for t in sensor:
            sensor_templates.insert(store, t["user_id"], t["version"],
                                    [base64.b64decode(t["blob"])], t["kind"])
        n = {"users": len(payload["users"]), "templates": len(payload["templates"]),
             "sensor_templates": len(sensor)}
        store._record("restore", audit, **n)
    store.checkpoint()
    return n
