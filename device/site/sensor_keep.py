"""The site service's copies of the users' sealed sensor templates
(:mod:`device.site.sensor_wire`): kept beside the sealed palm templates, in the same
transaction, and forwarded with them; the service cannot open either.

    sensor_sealed(user_id, gate_id, enrol_id, sender, blob)   one per destination gate, until
                                                              that gate has applied it
    sensor_recovery(user_id, enrol_id, blob)                  sealed to the site recovery key

An enrolment replaces the user's rows (one without sensor templates -- an older gate's
upload -- leaves none, so nothing of an earlier enrolment rides on its change); a revocation
removes them; a gate's applied changes prune them as they prune the palm ciphertexts.
Functions of the service's database connection, called inside the service thread's
transaction.
"""
from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS sensor_sealed (user_id TEXT, gate_id TEXT, enrol_id TEXT,
    sender TEXT, blob BLOB, PRIMARY KEY (user_id, gate_id));
CREATE TABLE IF NOT EXISTS sensor_recovery (user_id TEXT PRIMARY KEY, enrol_id TEXT, blob BLOB);
"""


def keep_upload(db, user_id: str, enrol_id: str, sender: str, recovery: bytes | None,
                sealed: dict) -> int:
    """An enrolment's sensor records (``sealed``: gate id -> blob; ``recovery``: the copy
    sealed to the recovery key, or None) in place of the user's earlier ones; returns how
    many gates got one."""
    forget_user(db, user_id)
    for g, blob in sealed.items():
        db.execute("INSERT INTO sensor_sealed VALUES(?,?,?,?,?)",
                   (user_id, g, enrol_id, sender, bytes(blob)))
    if recovery:
        db.execute("INSERT INTO sensor_recovery VALUES(?,?,?)",
                   (user_id, enrol_id, bytes(recovery)))
    return len(sealed)


def forget_user(db, user_id: str) -> None:
    db.execute("DELETE FROM sensor_sealed WHERE user_id=?", (user_id,))
    db.execute("DELETE FROM sensor_recovery WHERE user_id=?", (user_id,))


def for_change(db, gate: str, user_id: str, enrol_id: str) -> bytes | None:
    """The sealed sensor record of ``user_id``'s enrolment ``enrol_id`` for ``gate``."""
    r = db.execute("SELECT blob FROM sensor_sealed WHERE user_id=? AND gate_id=? AND "
                   "enrol_id=?", (user_id, gate, enrol_id)).fetchone()
    return None if r is None else bytes(r[0])


def prune(db, gate: str, contig: int) -> None:
    """The records of the enrolments ``gate`` has applied (changes up to ``contig``)."""
    db.execute("DELETE FROM sensor_sealed WHERE gate_id=? AND (user_id, enrol_id) IN "
               "(SELECT user_id, json_extract(header, '$.enrol_id') FROM changes "
               "WHERE gate_id=? AND gseq<=? AND kind='enrol')", (gate, gate, contig))


def recovery_blob(db, user_id: str, enrol_id: str) -> str | None:
    """Hex of the recovery copy of the enrolment ``enrol_id`` (None: it had none)."""
    r = db.execute("SELECT blob FROM sensor_recovery WHERE user_id=? AND enrol_id=?",
                   (user_id, enrol_id)).fetchone()
    return None if r is None else bytes(r[0]).hex()


def keep_recovered(db, gate: str, user_id: str, enrol_id: str, sealed_hex: str | None) -> None:
    """What ``recover`` sealed for ``gate`` from the recovery copy (sender "recovery"); none
    (a recovery copy without sensor templates) leaves the gate none of another sender's."""
    db.execute("DELETE FROM sensor_sealed WHERE user_id=? AND gate_id=?", (user_id, gate))
    if sealed_hex:
        db.execute("INSERT INTO sensor_sealed VALUES(?,?,?,?,?)",
                   (user_id, gate, enrol_id, "recovery", bytes.fromhex(sealed_hex)))
