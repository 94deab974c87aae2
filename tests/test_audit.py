"""Audit chain (append-only, hash-chained, MAC'd) and attempt limiting."""
import os
import sqlite3

import numpy as np
import pytest

from device.store.attempts import AttemptLimiter
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


def test_attempt_limiting_exponential_delay():
    lim = AttemptLimiter()
    t = 0.0
    for i in range(4):
        assert lim.record(False, now=t).allowed
    d = lim.record(False, now=t)                 # 5th consecutive failure
    assert not d.allowed and d.wait_s == pytest.approx(30)
    assert lim.check(now=t + 29).allowed is False and lim.check(now=t + 30).allowed
    assert lim.record(False, now=t + 30).wait_s == pytest.approx(60)
    assert lim.record(False, now=t + 90).wait_s == pytest.approx(120)
    assert lim.record(True, now=t + 210).allowed and lim.failures == 0
    live = AttemptLimiter(liveness=True)
    for i in range(9):
        assert live.record(False, now=0).allowed
    assert live.record(False, now=0).wait_s == pytest.approx(30)


def test_near_threshold_bursts_and_lockouts_are_logged(store):
    lim = AttemptLimiter(store=store, near_margin=0.002, burst_count=3, burst_window=60)
    for k in range(3):
        lim.record(False, now=100 + k, score=0.9985, threshold=0.9990)
    kinds = [r.kind for r in store.audit.records()]
    assert "near_threshold_burst" in kinds
    for k in range(2):
        lim.record(False, now=200 + k, score=0.5, threshold=0.999)
    assert "lockout" in [r.kind for r in store.audit.records()]
    assert store.audit.verify() >= 2


def test_attempt_state_survives_a_restart_and_resists_forgery(tmp_path):
    key = os.urandom(32)
    with TemplateStore(tmp_path / "t.db", device_key=key) as s:
        lim = AttemptLimiter(store=s)
        for _ in range(5):
            lim.record(False, now=1000)
    with TemplateStore(tmp_path / "t.db", device_key=key) as s:
        lim = AttemptLimiter(store=s)
        assert lim.failures == 5 and not lim.check(now=1010).allowed
        s.conn.execute("""UPDATE meta SET value=? WHERE name='attempts'""",
                       (b'{"failures": 0, "locked_until": 0.0}' + b"\0" * 32,))
        forged = AttemptLimiter(store=s)
        assert not forged.check().allowed          # a forged reset is not honoured



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
