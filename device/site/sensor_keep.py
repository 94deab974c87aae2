"""The site service's copies of the users' sealed sensor templates
(:mod:`device.site.sensor_wire`): kept beside the sealed palm templates, in the same
transaction, and forwarded with them; the service can open neither the record nor its keys.

    sensor_records(user_id, enrol_id, record, recovery_key)   the record sealed once under
                                                              its content key, and that key
                                                              sealed to the recovery key
    sensor_keys(user_id, gate_id, enrol_id, sender, wrapped)  the content key sealed to one
                                                              gate, until that gate applied it

An enrolment replaces the user's rows (one without sensor templates -- an older gate's
upload -- leaves none, so nothing of an earlier enrolment rides on its change); a revocation
removes them; a gate's applied changes prune its wrapped keys as they prune the palm
ciphertexts (the record stays while the user is enrolled: recovery and gates allowed later
need it). Functions of the service's database connection, called inside the service
thread's transaction.
"""
from __future__ import annotations

from device.site import sensor_wire as SW

SCHEMA = """
CREATE TABLE IF NOT EXISTS sensor_records (user_id TEXT PRIMARY KEY, enrol_id TEXT,
    record BLOB, recovery_key BLOB);
CREATE TABLE IF NOT EXISTS sensor_keys (user_id TEXT, gate_id TEXT, enrol_id TEXT,
    sender TEXT, wrapped BLOB, PRIMARY KEY (user_id, gate_id));
"""


def keep_upload(db, user_id: str, enrol_id: str, sender: str, section) -> int:
    """An enrolment's sensor section (``(record, recovery-wrapped key, gate id -> wrapped
    key)``, or None for an upload without one) in place of the user's earlier rows; returns
    how many gates got a key."""
    forget_user(db, user_id)
    if section is None:
        return 0
    record, rec_key, wrapped = section
    db.execute("INSERT INTO sensor_records VALUES(?,?,?,?)",
               (user_id, enrol_id, bytes(record), bytes(rec_key)))
    for g, blob in wrapped.items():
        db.execute("INSERT INTO sensor_keys VALUES(?,?,?,?,?)",
                   (user_id, g, enrol_id, sender, bytes(blob)))
    return len(wrapped)


def forget_user(db, user_id: str) -> None:
    db.execute("DELETE FROM sensor_keys WHERE user_id=?", (user_id,))
    db.execute("DELETE FROM sensor_records WHERE user_id=?", (user_id,))


def for_change(db, gate: str, user_id: str, enrol_id: str) -> tuple:
    """(wrapped key for ``gate``, sealed record) of ``user_id``'s enrolment ``enrol_id``;
    (None, None) when it has none."""
    r = db.execute("SELECT k.wrapped, r.record FROM sensor_keys k JOIN sensor_records r "
                   "USING (user_id, enrol_id) WHERE k.user_id=? AND k.gate_id=? AND "
                   "k.enrol_id=?", (user_id, gate, enrol_id)).fetchone()
    return (None, None) if r is None else (bytes(r[0]), bytes(r[1]))


def prune(db, gate: str, contig: int) -> None:
    """The keys of the enrolments ``gate`` has applied (changes up to ``contig``), unless
    another enrolment change of the user waits for that gate (a re-send: ``set_gates``)."""
    db.execute("DELETE FROM sensor_keys WHERE gate_id=? AND (user_id, enrol_id) IN "
               "(SELECT user_id, json_extract(header, '$.enrol_id') FROM changes "
               "WHERE gate_id=? AND gseq<=? AND kind='enrol') AND NOT EXISTS "
               "(SELECT 1 FROM changes p WHERE p.gate_id=sensor_keys.gate_id AND p.gseq>? AND "
               "p.user_id=sensor_keys.user_id AND p.kind='enrol')",
               (gate, gate, contig, contig))    # kept while a re-send of it waits


def recovery_key(db, user_id: str, enrol_id: str) -> dict:
    """``sensor_key``: hex of the content key of enrolment ``enrol_id`` sealed to the
    recovery key, and ``sensor_digest``: its record's digest, which the recovery copy's AD
    names (both None: the enrolment had no sensor templates)."""
    r = db.execute("SELECT recovery_key, record FROM sensor_records WHERE user_id=? AND "
                   "enrol_id=?", (user_id, enrol_id)).fetchone()
    if r is None:
        return {"sensor_key": None, "sensor_digest": None}
    return {"sensor_key": bytes(r[0]).hex(), "sensor_digest": SW.record_digest(r[1])}


def keep_recovered(db, gate: str, user_id: str, enrol_id: str, wrapped_hex: str | None) -> None:
    """The content key ``recover`` sealed for ``gate`` (sender "recovery"); none (an
    enrolment without sensor templates) leaves the gate no key of another sender's."""
    db.execute("DELETE FROM sensor_keys WHERE user_id=? AND gate_id=?", (user_id, gate))
    if wrapped_hex:
        db.execute("INSERT INTO sensor_keys VALUES(?,?,?,?,?)",
                   (user_id, gate, enrol_id, "recovery", bytes.fromhex(wrapped_hex)))
