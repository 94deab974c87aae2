"""A genuine older sealed row put back from outside the store (no key needed: it still
unseals) is caught by the gate's gallery patch and by its full load (device/store/row_tags.py,
device/gate/gallery_refresh.py): the gate ends with no gallery, never serving it."""
from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from device.gate import gallery_refresh as GR
from device.gate.gallery import fused_search, fused_verify
from device.store.errors import TamperedError
from device.store.row_tags import baseline
from device.store.store import TemplateStore
from test_gallery_patch import People, _owners, pipe_stub


def _stores(tmp_path, rng):
    people = People(rng)
    key = os.urandom(32)
    admin = TemplateStore(tmp_path / "t.db", device_key=key)        # the other process
    gate_st = TemplateStore(tmp_path / "t.db", device_key=key)      # the gate's connection
    for uid in ("alice", "bob", "carol"):
        admin.enrol(uid, people.templates(uid, 2))
    return people, admin, gate_st


def _raw(path):
    """Someone who can write the file, with no key: another SQLite connection."""
    return sqlite3.connect(path, isolation_level=None)


def _user_row(conn, uid):
    return conn.execute("SELECT rev, nonce, sealed FROM users WHERE user_id=?",
                        (uid,)).fetchone()


@pytest.mark.parametrize("patched_between", [True, False])
def test_replayed_user_row_is_never_served(tmp_path, patched_between):
    """alice's enabled row, copied before an admin disabled her, put back by a raw UPDATE:
    the next refresh raises TamperedError and leaves no gallery (whether or not the gate
    patched the disable in before the row came back)."""
    people, admin, gate_st = _stores(tmp_path, np.random.default_rng(0))
    p = pipe_stub(shortlist=16)
    GR.load_full(p, gate_st)
    q = people.query("alice")
    genuine = fused_search(p.gallery, q)
    assert genuine.owner == "alice"
    old = _user_row(admin.conn, "alice")
    admin.set_enabled("alice", False)
    if patched_between:
        assert GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st)) == "patched"
        assert "alice" not in _owners(p.gallery) and "alice" in _owners(p.inactive)
    raw = _raw(tmp_path / "t.db")
    raw.execute("UPDATE users SET rev=?, nonce=?, sealed=? WHERE user_id='alice'", old)
    raw.close()
    assert admin.get_user("alice").enabled             # genuine: it unseals
    reloads = []

    def reload():
        reloads.append(_owners(p.gallery))             # what the patch left before the load
        GR.load_full(p, gate_st)
    with pytest.raises(TamperedError):
        GR.refresh(p, gate_st, reload)
    assert reloads
    if patched_between:                                 # named by the marks: dropped first
        assert "alice" not in reloads[0]
    # else her row is as the gallery read it: nothing is named, the content tag the
    # disable wrote no longer matches the tags kept
    assert p.gallery is None and p.inactive is None and p.marks is None and p.row_tags is None
    with pytest.raises(TamperedError):                  # and again at every later refresh
        GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st))
    with pytest.raises(TamperedError):
        gate_st.verify()                                # what the next start says
    admin.close()
    gate_st.close()


def test_replayed_template_rows_are_never_served(tmp_path):
    """carol re-enrolled (new template rows, the old deleted); her old user row (version 1)
    and one old template row put back: TamperedError, no gallery."""
    people, admin, gate_st = _stores(tmp_path, np.random.default_rng(1))
    p = pipe_stub(shortlist=16)
    GR.load_full(p, gate_st)
    old_user = _user_row(admin.conn, "carol")
    old_tmpl = admin.conn.execute("SELECT record_id, user_id, version, nonce, sealed FROM "
                                  "templates WHERE user_id='carol'").fetchall()
    admin.enrol("carol", people.templates("carol", 2), replace=True)
    assert GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st)) == "patched"
    assert p.versions["carol"] == 2
    raw = _raw(tmp_path / "t.db")
    raw.execute("INSERT INTO templates(record_id, user_id, version, nonce, sealed) "
                "VALUES(?,?,?,?,?)", old_tmpl[0])
    raw.close()
    with pytest.raises(TamperedError):
        GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st))
    assert p.gallery is None and p.marks is None
    # the same row gone again, and now the old user row and both old templates back
    raw = _raw(tmp_path / "t.db")
    raw.execute("DELETE FROM templates WHERE record_id=?", (old_tmpl[0][0],))
    GR.load_full(p, gate_st)                           # the store is whole again: loads
    assert p.versions["carol"] == 2
    raw.execute("UPDATE users SET rev=?, nonce=?, sealed=? WHERE user_id='carol'", old_user)
    raw.executemany("INSERT INTO templates(record_id, user_id, version, nonce, sealed) "
                    "VALUES(?,?,?,?,?)", old_tmpl)
    raw.close()
    assert admin.get_user("carol").version == 1        # genuine: it unseals
    with pytest.raises(TamperedError):
        GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st))
    assert p.gallery is None and p.inactive is None
    admin.close()
    gate_st.close()


def test_legitimate_changes_still_patch_and_tags_follow(tmp_path):
    """Disable, enable, re-enrol, delete, enrol by another connection: patched, never
    reloaded, and the kept tags are what a fresh read of the store gives."""
    people, admin, gate_st = _stores(tmp_path, np.random.default_rng(2))
    p = pipe_stub(shortlist=16)
    GR.load_full(p, gate_st)
    reloads = []
    steps = [lambda: admin.set_enabled("bob", False),
             lambda: admin.set_enabled("bob", True),
             lambda: admin.enrol("alice", people.templates("alice", 3), replace=True),
             lambda: admin.delete_user("carol"),
             lambda: admin.enrol("dave", people.templates("dave", 1)),
             lambda: None]
    for step in steps:
        step()
        done = GR.refresh(p, gate_st, lambda: reloads.append(1) or GR.load_full(p, gate_st))
        assert done == "patched" and not reloads
        fresh = baseline(gate_st)
        assert p.row_tags.by_user == fresh.by_user and p.row_tags.total == fresh.total
    assert _owners(p.gallery) == ["alice"] * 3 + ["bob"] * 2 + ["dave"]
    q = people.query("dave")
    assert fused_verify(p.gallery, q, "dave").owner == "dave"
    admin.close()
    gate_st.close()


def test_gate_refuses_after_a_replayed_row(tmp_path, tiny_models):
    """The running gate: the presentation after the row came back raises TamperedError
    (the gate stops; its next start's store check refuses too), with no gallery held."""
    from conftest import gate_config
    from device.gate.decision import Decision
    from device.gate.gate import Gate
    from device.gate.pipeline import Pipeline
    from device.relays.factory import MemoryRelay
    from test_gallery_patch import blank_burst, random_templates
    cfg = gate_config(tmp_path, tiny_models)
    pipe = Pipeline(cfg)
    decided = []
    pipe.decide = lambda burst, claimed=None: decided.append(1) or Decision(reason="no_match",
                                                                            views_used=3)
    rng = np.random.default_rng(0)

    def templates(n):
        return random_templates(pipe, rng, n)
    burst = blank_burst()
    relay = MemoryRelay()
    with Gate(cfg, pipeline=pipe, relay=relay) as gate:
        admin = TemplateStore(cfg.paths.store, key_path=cfg.paths.device_key, create=False)
        admin.enrol("alice", templates(2))
        admin.enrol("bob", templates(1))
        gate.present(burst)
        assert pipe.gallery.owner_set() == {"alice", "bob"}
        old = _user_row(admin.conn, "alice")
        admin.set_enabled("alice", False)
        gate.present(burst)
        assert pipe.gallery.owner_set() == {"bob"} and pipe.inactive.owner_set() == {"alice"}
        raw = _raw(cfg.paths.store)
        raw.execute("UPDATE users SET rev=?, nonce=?, sealed=? WHERE user_id='alice'", old)
        raw.close()
        n = len(decided)
        for _ in range(2):
            with pytest.raises(TamperedError):
                gate.present(burst)
        assert len(decided) == n and pipe.gallery is None and pipe.inactive is None
        assert not any(on for _, _, on in relay.events)      # never opened
        admin.close()


@pytest.mark.parametrize("patched_between", [True, False])
def test_whole_older_state_put_back_is_never_served(tmp_path, patched_between):
    """alice's enabled row AND every meta record (content tag, state record: a state
    consistent with itself) from before the disable, put back while the gate runs: its
    generation is below what the gate saw, or below the counter outside the store."""
    people, admin, gate_st = _stores(tmp_path, np.random.default_rng(3))
    p = pipe_stub(shortlist=16)
    GR.load_full(p, gate_st)
    old = _user_row(admin.conn, "alice")
    meta = admin.conn.execute("SELECT name, value FROM meta").fetchall()
    admin.set_enabled("alice", False)
    admin.close()                                       # its counter written
    if patched_between:
        assert GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st)) == "patched"
    raw = _raw(tmp_path / "t.db")
    raw.execute("BEGIN")
    raw.execute("DELETE FROM meta")
    raw.executemany("INSERT INTO meta(name, value) VALUES(?, ?)", meta)
    raw.execute("UPDATE users SET rev=?, nonce=?, sealed=? WHERE user_id='alice'", old)
    raw.execute("COMMIT")
    raw.close()
    for _ in range(2):
        with pytest.raises(TamperedError, match="generation"):
            GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st))
        assert p.gallery is None and p.marks is None
    gate_st.close()
