"""Audit chain (append-only, hash-chained, MAC'd)."""
import os
import sqlite3

import numpy as np
import pytest

from device.store.audit import AuditError, AuditLog, bucket_score
from device.store.errors import StoreDiskFull, TamperedError
from device.store.store import TemplateStore


@pytest.fixture
def store(tmp_path):
    s = TemplateStore(tmp_path / "t.db", device_key=os.urandom(32))
    yield s
    if s.conn is not None:
        s.close()


def _fill(log, n=6):
    for i in range(n):
        log.append("decision", when=1000.0 + i, decision="accept" if i % 2 else "reject",
                   user_id=f"u{i}", score_bucket=bucket_score(0.99 + i * 1e-3, 0.992),
                   liveness="live", template_version=1)


def test_chain_verifies_and_reads_back(store):
    _fill(store.audit)
    assert store.audit.verify() == 6
    recs = store.audit.records()
    assert [r.seq for r in recs] == list(range(1, 7))
    assert recs[1].payload["decision"] == "accept" and recs[0].ts == 1000.0


def test_update_and_delete_are_refused_by_the_database(store):
    _fill(store.audit)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("UPDATE audit SET payload='{}' WHERE seq=2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("DELETE FROM audit WHERE seq=6")


def _bypass(store):
    store.conn.execute("DROP TRIGGER audit_no_update")
    store.conn.execute("DROP TRIGGER audit_no_delete")


def test_edited_record_is_found(store):
    _fill(store.audit)
    _bypass(store)
    store.conn.execute("""UPDATE audit SET payload='{"decision":"accept"}' WHERE seq=3""")
    with pytest.raises(AuditError, match="record 3 was altered"):
        store.audit.verify()


def test_rechained_forgery_fails_the_mac(store):
    """An attacker who recomputes the hashes still cannot make the MACs."""
    import hashlib
    from device.store.audit import _canonical
    _fill(store.audit)
    _bypass(store)
    rows = store.conn.execute("SELECT seq, ts, kind, payload FROM audit ORDER BY seq").fetchall()
    prev = b"\0" * 32
    for seq, ts, kind, text in rows:
        if seq == 2:
            text = text.replace("accept", "reject")
        h = hashlib.sha256(prev + _canonical(seq, ts, kind, text)).digest()
        store.conn.execute("UPDATE audit SET payload=?, prev=?, hash=? WHERE seq=?",
                           (text, prev, h, seq))
        prev = h
    with pytest.raises(AuditError, match="MAC"):
        store.audit.verify()


def test_cut_tail_and_gap_are_found(store):
    _fill(store.audit)
    _bypass(store)
    store.conn.execute("DELETE FROM audit WHERE seq=6")
    with pytest.raises(AuditError, match="cut off"):
        store.audit.verify()
    store.conn.execute("DELETE FROM audit WHERE seq=3")
    with pytest.raises(AuditError, match="missing"):
        store.audit.verify()
    with pytest.raises(TamperedError):      # the schema changed: the state MAC stops it
        store.audit.append("decision", decision="accept")


def test_other_key_cannot_verify(store):
    _fill(store.audit, 2)
    with pytest.raises(AuditError, match="MAC"):
        AuditLog(store.conn, os.urandom(32)).verify()


def test_payload_never_holds_images_or_features(store):
    with pytest.raises(AuditError, match="not allowed"):
        store.audit.append("decision", feature="...")
    with pytest.raises(AuditError):
        store.audit.append("decision", decision=np.zeros(16))
    with pytest.raises(AuditError, match="scalar"):
        store.audit.append("decision", user_id=[1, 2, 3])
    assert store.audit.verify() == 0


def test_bucket_score():
    assert bucket_score(0.5, 0.5) == "+0"
    assert bucket_score(0.4989, 0.5) == "-1"
    assert bucket_score(0.9, 0.5) == ">=+5" and bucket_score(0.1, 0.5) == "<-5"
    assert bucket_score(float("nan"), 0.5) == "nan"


# attempt limiting: tests/test_attempts.py


def test_full_database_reports_the_real_cause(store):
    _fill(store.audit, 2)
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreDiskFull, match="disk full"):      # typed, never "corrupt"
        for i in range(200):
            store.audit.append("decision", when=2000.0 + i, decision="reject",
                               user_id=f"user-{i:04d}-" + "x" * 180)
    store.conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.audit.verify() >= 2                       # what was committed is intact
