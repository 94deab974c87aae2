"""Sensor templates: each enrolment presentation's sensor feature (the NIR palm patch,
:mod:`device.gate.sensor_identity`), sealed in the template store beside the palm templates.

    sensor_templates(record_id, user_id, version, kind, nonce, sealed)
                          AES-256-GCM under the store's sealing key (the device key's
                          "template store seal", the same primitive and key as the palm
                          templates' rows); AD = user id + record id + template version +
                          kind, so a sealed blob moved to another row or user fails

- **Why encrypted, not protected like the palm templates.** The palm templates are rotated
  toward a random key and partly dropped (seed 002); the sensor comparison searches shifts and
  turns of a 2-D patch, which a slerped, dropped vector does not allow. So the patch is sealed
  under the device key and unsealed only for the one person the views identified (1:1, after
  the match): :func:`read` takes one user id.
- **Integrity.** The rows' keyed tags (kind ``S``, :func:`device.store.sealing.row_tag`) are
  XORed into the meta record ``sensor_tag``, under the store's state MAC and generation like
  every meta record, updated in the transaction that adds or removes a row; checked at every
  open and ``verify()`` (:func:`check_tag`). A row deleted, put back or replayed outside the
  store fails there. (They are kept apart from ``content_tag``, which a running gate's gallery
  re-derives from the palm rows alone: :mod:`device.store.row_tags`.)
- **Life.** Written with the enrolment (:func:`insert`, in the transaction of
  ``TemplateStore.enrol``, whose audit record counts them); removed with the user's palm
  templates (re-enrolment, delete, restore: ``TemplateStore._delete_templates`` calls
  :func:`delete`); carried by backups (``device.store.backup``).
- **Schema step 4** (:func:`create`): the table and an empty tag; the state record rewritten at
  the same generation (the schema is under its MAC).
"""
from __future__ import annotations

from device.store import integrity
from device.store.errors import StoreError, TamperedError
from device.store.sealing import row_tag

TAG = "sensor_tag"
FEATURE_KINDS = ("nir_palm_patch", "xray_bone_patch")
"""The sensor features a row may hold (:mod:`device.gate.sensor_identity`); the only kinds a
site carries between gates (:mod:`device.site.sensor_wire`)."""
KINDS = FEATURE_KINDS + ("nir_palm_lookalikes", "xray_bone_lookalikes")
"""What a row may hold: a sensor feature, or a person's look-alike list of one feature's kind
(:mod:`device.gate.lookalikes`; each gate makes its own)."""
SENSOR_KIND = {"nir": KINDS[0], "xray": KINDS[1]}
"""The template kind each sensor's identity feature is kept as (NIR: the palm patch,
device.gate.sensor_identity; X-ray: the bone patch, device.gate.xray_bone_patch)."""
LIST_KIND = {KINDS[0]: KINDS[2], KINDS[1]: KINDS[3]}
"""The kind of the look-alike list kept beside each feature kind (one row a person, of the
person's template version: :mod:`device.store.lookalike_rows`)."""
MAX_BYTES = 1 << 16
ROWS = "SELECT record_id, user_id, version, kind, nonce, sealed FROM sensor_templates"


def ad_sensor(user_id: str, record_id: int, version: int, kind: str) -> bytes:
    return f"palmgate/sensor-template|{user_id}|{record_id}|{version}|{kind}".encode()


def unseal(store, rid, uid, ver, kind, nonce, sealed) -> bytes:
    """A row's sensor template (the columns of :data:`ROWS`), unsealed under its AD;
    TamperedError when it fails authentication."""
    return store._open(bytes(nonce), bytes(sealed), ad_sensor(uid, rid, ver, kind),
                       f"sensor template record {rid}")


def _tag(store, uid, rid, ver, kind, nonce, sealed) -> int:
    return row_tag(store._k_tag, "S", f"{uid}|{rid}|{kind}", ver, bytes(nonce), bytes(sealed))


def _present(conn) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                        "name='sensor_templates'").fetchone() is not None


def create(c, store) -> None:
    """Schema step 4 (inside its transaction): the table, an empty tag, the state rewritten."""
    if store is None:
        raise StoreError("schema step 4 needs the store's keys")
    gen = integrity.read_generation(c, store._k_state, f"template store {store.path}")
    c.execute("CREATE TABLE IF NOT EXISTS sensor_templates (record_id INTEGER PRIMARY KEY "
              "AUTOINCREMENT, user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE "
              "CASCADE, version INTEGER NOT NULL, kind TEXT NOT NULL, nonce BLOB NOT NULL, "
              "sealed BLOB NOT NULL)")
    c.execute("CREATE INDEX IF NOT EXISTS sensor_templates_user ON sensor_templates(user_id)")
    if store._meta(TAG) is None:
        if c.execute("SELECT COUNT(*) FROM sensor_templates").fetchone()[0]:
            raise TamperedError(f"template store {store.path} has sensor templates but no tag")
        store._set_meta(TAG, bytes(32))
    integrity.write_state(c, store._k_state, gen)


def _tag_update(store, delta: int) -> None:
    cur = int.from_bytes(store._meta(TAG) or bytes(32), "big")
    store._set_meta(TAG, (cur ^ delta).to_bytes(32, "big"))


def check_tag(store) -> int:
    """The XOR of every sensor row's tag against ``sensor_tag`` (TamperedError when they
    differ); returns the rows. Nothing to check before schema step 4."""
    c = store.conn
    if not _present(c):
        return 0
    acc, n = 0, 0
    for rid, uid, ver, kind, nonce, sealed in c.execute(ROWS):
        acc ^= _tag(store, uid, rid, ver, kind, nonce, sealed)
        n += 1
    if acc != int.from_bytes(store._meta(TAG) or bytes(32), "big"):
        raise TamperedError(f"template store {store.path}: the set of sealed sensor templates "
                            f"does not match its tag (rows added, removed, replayed or "
                            f"changed)")
    return n


def insert(store, user_id: str, version: int, blobs: list, kind: str = KINDS[0]) -> list:
    """Inside a store transaction: one sealed row per blob (a sensor feature's bytes);
    returns their record ids. The caller writes the audit record (the enrolment's counts
    them; :func:`add` writes its own)."""
    if not store.conn.in_transaction:
        raise StoreError("sensor templates are written inside a store transaction")
    if kind not in KINDS:
        raise StoreError(f"sensor template kind {kind!r} is not one of {KINDS}")
    rids = []
    for b in blobs:
        if not isinstance(b, (bytes, bytearray)) or not 0 < len(b) <= MAX_BYTES:
            raise StoreError("a sensor template is 1 to 65536 bytes")
        cur = store.conn.execute("INSERT INTO sensor_templates(user_id, version, kind, nonce, "
                                 "sealed) VALUES(?, ?, ?, zeroblob(12), zeroblob(0))",
                                 (user_id, version, kind))
        rid = cur.lastrowid
        nonce, sealed = store._seal(bytes(b), ad_sensor(user_id, rid, version, kind))
        store.conn.execute("UPDATE sensor_templates SET nonce=?, sealed=? WHERE record_id=?",
                           (nonce, sealed, rid))
        _tag_update(store, _tag(store, user_id, rid, version, kind, nonce, sealed))
        rids.append(rid)
    return rids


def add(store, user_id: str, blobs: list, kind: str = KINDS[0],
        audit: dict | None = None) -> list:
    """Sensor templates for an enrolled user under their current version, with the audit
    record ``sensor_templates_added``, in one transaction."""
    with store.transaction():
        user = store.get_user(user_id)
        if user is None:
            raise StoreError(f"no user {user_id!r}")
        rids = insert(store, user_id, user.version, blobs, kind)
        store._record("sensor_templates_added", audit, user_id=user_id,
                      template_version=user.version, sensor_templates=len(rids))
    return rids


def delete(store, user_id: str, kind: str | None = None) -> int:
    """Inside a store transaction: every sensor row of ``user_id`` -- of ``kind`` only, when
    given -- (tags XORed out); returns how many."""
    c = store.conn
    if not _present(c):
        return 0
    where, args = " WHERE user_id=?", [user_id]
    if kind is not None:
        where, args = where + " AND kind=?", args + [kind]
    rows = c.execute(ROWS + where, args).fetchall()
    for rid, uid, ver, k, nonce, sealed in rows:
        _tag_update(store, _tag(store, uid, rid, ver, k, nonce, sealed))
    c.execute("DELETE FROM sensor_templates" + where, args)
    return len(rows)


def read(store, user_id: str, version: int | None = None, kind: str = KINDS[0]) -> list:
    """The unsealed sensor templates (bytes) of ``user_id`` -- of ``version`` when given --
    in record order; only this user's rows are unsealed. TamperedError when one fails
    authentication."""
    c = store.conn
    if not _present(c):
        return []
    q, args = ROWS + " WHERE user_id=? AND kind=?", [user_id, kind]
    if version is not None:
        q += " AND version=?"
        args.append(int(version))
    out = []
    with store.snapshot():
        for row in c.execute(q + " ORDER BY record_id", args):
            out.append(unseal(store, *row))
    return out


def rows(store) -> list:
    """(user_id, version, kind, bytes) of every sensor template, unsealed: the backup's."""
    c = store.conn
    if not _present(c):
        return []
    return [(row[1], row[2], row[3], unseal(store, *row))
            for row in c.execute(ROWS + " ORDER BY record_id")]


def count(store, user_id: str | None = None) -> int:
    """How many sensor templates (feature rows; the look-alike lists not counted) the store
    holds, or ``user_id`` holds."""
    c = store.conn
    if not _present(c):
        return 0
    kinds = ",".join("?" * len(FEATURE_KINDS))
    if user_id is None:
        return c.execute(f"SELECT COUNT(*) FROM sensor_templates WHERE kind IN ({kinds})",
                         FEATURE_KINDS).fetchone()[0]
    return c.execute(f"SELECT COUNT(*) FROM sensor_templates WHERE user_id=? AND kind IN "
                     f"({kinds})", (user_id, *FEATURE_KINDS)).fetchone()[0]


def by_kind(store) -> dict:
    """{kind: (rows, users)} of the sensor templates (``palmgate status``: a gate whose users
    hold the other sensor's templates only)."""
    c = store.conn
    if not _present(c):
        return {}
    return {k: (n, u) for k, n, u in c.execute(
        "SELECT kind, COUNT(*), COUNT(DISTINCT user_id) FROM sensor_templates GROUP BY kind")}


def users_of_other_kinds(store, kind: str) -> int:
    """How many users hold sensor templates, none of them of ``kind``."""
    c = store.conn
    if not _present(c):
        return 0
    return c.execute("SELECT COUNT(DISTINCT user_id) FROM sensor_templates WHERE user_id NOT "
                     "IN (SELECT user_id FROM sensor_templates WHERE kind=?)",
                     (kind,)).fetchone()[0]


def users_without(store) -> int:
    """How many users hold no sensor template (enrolled before the check, or while it was off,
    or in split mode: ``not_enrolled`` at the gate)."""
    c = store.conn
    if not _present(c):
        return c.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    return c.execute("SELECT COUNT(*) FROM users WHERE user_id NOT IN (SELECT user_id FROM "
                     "sensor_templates)").fetchone()[0]
