"""The gate's gallery patched in place after store changes (device/gate/gallery_refresh.py,
device/gate/slot_gallery.py): the same decisions and scores as a fresh full load after any
sequence of changes, and fail secure when a patch fails."""
from __future__ import annotations

import os
import time
from types import SimpleNamespace

import numpy as np
import pytest

from device.gate import gallery_refresh as GR
from device.gate.gallery import fused_search, fused_verify
from device.gate.slot_gallery import GalleryFull, SlotGallery
from device.protect.core import enrol
from device.protect.defaults import DEFAULT_CONFIG as C
from device.store.errors import TamperedError
from device.store.holidays import add_holiday
from device.store.store import TemplateStore

G, D = 49, 16
W = np.linspace(0.5, 1.5, G).astype(np.float32)


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def random_templates(pipe, rng, n):
    """``n`` protected templates of random features for ``pipe``'s extractor."""
    ext = pipe.extractor
    return [enrol(unit(rng.standard_normal((ext.n_cells, ext.dim))), pipe.protect_config,
                  ext.importance, rng) for _ in range(n)]


def blank_burst():
    """A presentation for a gate whose ``decide`` is stubbed: three grey views, a grey frame."""
    from device.sources.replay import Burst
    return Burst([np.full((48, 64, 3), 128, np.uint8)] * 3, np.full((16, 16), 128, np.uint8),
                 {"burst": 0})


def pipe_stub(storage="int8", shortlist=4):
    """What the gallery code reads of a Pipeline, and what it fills."""
    return SimpleNamespace(
        extractor=SimpleNamespace(dim=D, shifts=None, importance=W), protect_config=C,
        cfg=SimpleNamespace(match=SimpleNamespace(shortlist=shortlist, storage=storage)),
        gallery=None, inactive=None, versions={}, users={}, holidays=frozenset(),
        inactive_reason={}, marks=None)


class People:
    """Palms of synthetic identities: a base feature per person, noisy presentations."""

    def __init__(self, rng):
        self.rng, self.base = rng, {}

    def templates(self, uid, n):
        b = self.base.setdefault(uid, unit(self.rng.standard_normal((G, D))))
        return [enrol(unit(b + 0.25 * self.rng.standard_normal((G, D)) / 4), C, W, self.rng)
                for _ in range(n)]

    def query(self, uid, views=2):
        b = self.base.get(uid, None)
        b = unit(self.rng.standard_normal((G, D))) if b is None else b
        return np.stack([unit(b[None] + 0.3 * self.rng.standard_normal((25, G, D)) / 4)
                         for _ in range(views)])


def _owners(gal):
    return sorted(o for o in gal.owners if o is not None) if gal is not None else []


def _best_by_owner(gal, q):
    if gal is None or len(gal) == 0:
        return {}
    idx = gal.live_slots()
    s = gal.exact(q.reshape(-1, G, D), idx).reshape(len(idx), q.shape[0], -1).max(2).mean(1)
    out = {}
    for i, v in zip(idx, s):
        o = gal.owners[int(i)]
        out[o] = max(out.get(o, -np.inf), float(v))
    return out


def assert_same(p, ref, people, rng):
    """The patched pipeline ``p`` and the fresh load ``ref``: same owners, versions, users,
    holidays, inactive reasons; same 1:N and 1:1 decisions and scores."""
    assert _owners(p.gallery) == _owners(ref.gallery)
    assert _owners(p.inactive) == _owners(ref.inactive)
    assert p.versions == ref.versions and p.inactive_reason == ref.inactive_reason
    assert p.users == ref.users and p.holidays == ref.holidays and p.marks == ref.marks
    for uid in list(people.base)[-6:] + ["stranger"]:
        q = people.query(uid)
        for a, b in ((p.gallery, ref.gallery), (p.inactive, ref.inactive)):
            ba, bb = _best_by_owner(a, q), _best_by_owner(b, q)
            assert ba.keys() == bb.keys()
            for o in ba:
                assert abs(ba[o] - bb[o]) < 1e-5
            if b is None or len(b) == 0:
                assert a is None or len(a) == 0 or fused_search(a, q) is None
                continue
            ma, mb = fused_search(a, q), fused_search(b, q)
            assert (ma.owner, ma.candidates) == (mb.owner, mb.candidates)
            assert abs(ma.score - mb.score) < 1e-5
            va, vb = fused_verify(a, q, uid), fused_verify(b, q, uid)
            assert (va is None) == (vb is None)
            if va is not None:
                assert va.owner == vb.owner and abs(va.score - vb.score) < 1e-5


@pytest.mark.parametrize("seed,spare", [(0, None), (1, 3), (2, None)])
def test_patched_gallery_decides_as_a_fresh_full_load(tmp_path, monkeypatch, seed, spare):
    """A random sequence of enrol / re-enrol / templates added / revoke (disable) / enable /
    access-time update / delete / holiday, committed by another connection (another
    process), each batch patched in and compared with a fresh full load of the store.
    ``spare``: free slots of a load (None: the gate's); 3 runs them out now and then."""
    if spare is not None:
        monkeypatch.setattr(GR, "headroom", lambda n: spare)
    rng = np.random.default_rng(seed)
    people = People(rng)
    key = os.urandom(32)
    admin = TemplateStore(tmp_path / "t.db", device_key=key)        # the other process
    gate_st = TemplateStore(tmp_path / "t.db", device_key=key)      # the gate's connection
    for i in range(12):
        admin.enrol(f"u{i:02d}", people.templates(f"u{i:02d}", int(rng.integers(1, 4))))
    admin.set_enabled("u03", False)
    p = pipe_stub()
    GR.load_full(p, gate_st)
    done = []
    next_id = 12
    for step in range(30):
        for _ in range(int(rng.integers(1, 4))):
            have = [u.user_id for u in admin.users()]
            op = rng.choice(["enrol", "re_enrol", "add", "disable", "enable", "update",
                             "delete", "holiday"])
            uid = str(rng.choice(have)) if have else None
            if op == "enrol" or uid is None:
                uid, next_id = f"u{next_id:02d}", next_id + 1
                admin.enrol(uid, people.templates(uid, int(rng.integers(1, 4))))
            elif op == "re_enrol":
                admin.enrol(uid, people.templates(uid, int(rng.integers(1, 4))), replace=True)
            elif op == "add":
                admin.add_templates(uid, people.templates(uid, 1))
            elif op in ("disable", "enable"):
                admin.set_enabled(uid, op == "enable")
            elif op == "update":
                admin.update_user(uid, valid_until=time.time() + float(rng.integers(1, 10 ** 6)),
                                  label=f"l{step}")
            elif op == "delete":
                admin.delete_user(uid)
            else:
                add_holiday(admin, f"2027-01-{int(rng.integers(1, 29)):02d}", "h")
        if rng.random() < 0.2:
            for g in (p.gallery, p.inactive):
                if g is not None:
                    g.compact()
        done.append(GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st)))
        ref = pipe_stub()
        GR.load_full(ref, gate_st)
        assert_same(p, ref, people, rng)
    # the patch did the work: a full load only when the free slots ran out
    assert all(d == "patched" or d.startswith("reloaded: no free slots") for d in done), done
    assert done.count("patched") >= (15 if spare else 30), done
    assert spare is None or len(set(done)) > 1, done
    admin.close()
    gate_st.close()


def test_slots_are_reused_and_compaction_keeps_scores(tmp_path):
    rng = np.random.default_rng(7)
    people = People(rng)
    gal = SlotGallery(C, W, capacity=40, storage="int8", shortlist=4)
    for i in range(10):
        for t in people.templates(f"p{i}", 3):
            gal.add(f"p{i}", t)
    assert (len(gal), gal.hw, gal.free()) == (30, 30, 10)
    q = people.query("p7")
    before = _best_by_owner(gal, q)
    assert gal.remove_owners({"p1", "p2", "p3", "p4", "p5"}) == 15
    assert (len(gal), gal.hw, gal.dead()) == (15, 30, 15)
    c = gal.coarse(q.mean(0))
    assert c.shape == (30,) and np.all(np.isinf(c[3:18])) and np.all(np.isfinite(c[18:]))
    assert np.all(gal._xc[3:18] == 0) and np.all(gal._e[3:18] == 0)    # revoked rows zeroed
    m = fused_search(gal, q, shortlist=4)
    assert m.owner == "p7" and gal.verify(q[0], "p1") is None
    gal.add("p9", people.templates("p9", 1)[0])
    assert gal.slots_of("p9").tolist() == [3, 27, 28, 29]                 # lowest free first
    moved = gal.compact()
    assert moved > 0 and gal.hw == len(gal) == 16 and gal.dead() == 0
    after = _best_by_owner(gal, q)
    for o in before:
        if o not in {"p1", "p2", "p3", "p4", "p5", "p9"}:
            assert abs(after[o] - before[o]) < 1e-5
    assert fused_search(gal, q, shortlist=4).owner == "p7"
    with pytest.raises(GalleryFull):
        gal.add_arrays(["x"] * 25, *[np.zeros((25, G, D))] * 2, np.ones((25, G, D), bool))
    assert len(gal) == 16                      # nothing half-added


def test_failed_patch_falls_back_to_the_full_load_and_never_serves_a_revoked_user(
        tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    people = People(rng)
    key = os.urandom(32)
    admin = TemplateStore(tmp_path / "t.db", device_key=key)
    gate_st = TemplateStore(tmp_path / "t.db", device_key=key)
    for i in range(8):
        admin.enrol(f"u{i}", people.templates(f"u{i}", 2))
    p = pipe_stub(shortlist=16)
    GR.load_full(p, gate_st)
    q = people.query("u4")
    genuine = fused_search(p.gallery, q)
    assert genuine.owner == "u4"
    admin.delete_user("u4")                    # revoked, committed by another process
    admin.enrol("u9", people.templates("u9", 2))
    seen = {}

    def broken(*a, **k):
        raise OSError("disk read error")
    monkeypatch.setattr(GR, "add_user_templates", broken)

    def reload():
        seen["gallery"] = _owners(p.gallery)       # what the loop held when it gave up
        seen["marks"] = p.marks
        GR.load_full(p, gate_st)
    done = GR.refresh(p, gate_st, reload)
    assert done.startswith("reloaded: patch failed: OSError")
    assert "u4" not in seen["gallery"] and seen["marks"] is None
    assert "u4" not in _owners(p.gallery) and "u9" in _owners(p.gallery)
    m = fused_search(p.gallery, q, genuine.score)
    assert m.owner != "u4" and not m.accepted and fused_verify(p.gallery, q, "u4") is None
    # the full load failing too leaves no gallery: the gate denies everyone (no_match)
    admin.set_enabled("u5", False)
    monkeypatch.setattr(GR, "read_marks", lambda conn: 1 / 0)
    monkeypatch.setattr(GR, "changes", lambda conn, old: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st))
    assert p.gallery is None and p.marks is None
    admin.close()
    gate_st.close()


def test_too_many_changes_take_the_full_load(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    people = People(rng)
    key = os.urandom(32)
    admin = TemplateStore(tmp_path / "t.db", device_key=key)
    gate_st = TemplateStore(tmp_path / "t.db", device_key=key)
    for i in range(8):
        admin.enrol(f"u{i}", people.templates(f"u{i}", 1))
    p = pipe_stub()
    GR.load_full(p, gate_st)
    monkeypatch.setattr(GR, "PATCH_MIN", 2)
    for i in range(5):                              # more than half
        admin.set_enabled(f"u{i}", False)
    done = GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st))
    assert done == "reloaded: 5 of 8 users changed"
    assert _owners(p.inactive) == ["u0", "u1", "u2", "u3", "u4"]


def test_gate_patches_its_gallery_at_the_next_presentation(tmp_path, tiny_models):
    """The running gate (its own store connection) sees another process's enrolment and
    revocation at its next presentation, by a patch, not a reload."""
    from conftest import gate_config
    from device.gate.decision import Decision
    from device.gate.gate import Gate
    from device.gate.pipeline import Pipeline
    from device.relays.factory import MemoryRelay
    cfg = gate_config(tmp_path, tiny_models)
    pipe = Pipeline(cfg)
    pipe.decide = lambda burst, claimed=None: Decision(reason="no_match", views_used=3)
    rng = np.random.default_rng(0)

    def templates(n):
        return random_templates(pipe, rng, n)
    burst = blank_burst()
    with Gate(cfg, pipeline=pipe, relay=MemoryRelay()) as gate:
        reloads = []
        inner = gate.reload
        gate.reload = lambda: reloads.append(1) or inner()
        admin = TemplateStore(cfg.paths.store, key_path=cfg.paths.device_key, create=False)
        admin.enrol("alice", templates(2))
        admin.enrol("carol", templates(1))
        gate.present(burst)
        assert pipe.gallery.owner_set() == {"alice", "carol"} and not reloads
        admin.delete_user("alice")                              # revoked
        admin.set_enabled("carol", False)
        admin.enrol("bob", templates(2))
        gate.present(burst)
        assert pipe.gallery.owner_set() == {"bob"} and pipe.inactive.owner_set() == {"carol"}
        assert pipe.versions == {"bob": 1} and "alice" not in pipe.users and not reloads
        gate.present(burst)                                     # no change: nothing to do
        assert gate.refresh() == "patched" and not reloads
        admin.close()


def test_a_change_the_marks_cannot_name_takes_the_full_load(tmp_path):
    """A template row deleted with no write of its user's row (no store method does that):
    the counts do not add up, the whole gallery is read again -- and, the row having been
    deleted outside the store, that load finds the content tag broken: no gallery."""
    rng = np.random.default_rng(5)
    people = People(rng)
    key = os.urandom(32)
    admin = TemplateStore(tmp_path / "t.db", device_key=key)
    gate_st = TemplateStore(tmp_path / "t.db", device_key=key)
    for i in range(4):
        admin.enrol(f"u{i}", people.templates(f"u{i}", 2))
    p = pipe_stub()
    GR.load_full(p, gate_st)
    rid = admin.templates("u2")[0][1]
    admin.conn.execute("DELETE FROM templates WHERE record_id=?", (rid,))
    assert GR.patch(p, gate_st) == "a change the row marks cannot name"
    with pytest.raises(TamperedError):
        GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st))
    assert p.gallery is None and p.marks is None and p.row_tags is None


def test_live_gallery_out_of_slots_raises_with_the_changed_users_out(tmp_path):
    """device.site.livegallery on the slotted gallery: a refresh that needs more slots than
    are free raises GalleryFull (the fleet's gate process then loads the gallery again) and
    has already taken the changed users out."""
    from device.gate.gallery import load_gallery
    from device.site.livegallery import refresh_users
    rng = np.random.default_rng(6)
    people = People(rng)
    st = TemplateStore(tmp_path / "t.db", device_key=os.urandom(32))
    for i in range(4):
        st.enrol(f"u{i}", people.templates(f"u{i}", 1))
    gal = load_gallery(st, C, W, headroom=1)[0]
    st.enrol("u1", people.templates("u1", 4), replace=True)      # 4 templates, 3 free slots
    st.delete_user("u2")
    with pytest.raises(GalleryFull):
        refresh_users(gal, st, {"u1", "u2"}, C)
    assert _owners(gal) == ["u0", "u3"]
    st.close()


def test_fleet_gate_reloads_after_a_failed_catch_up(tmp_path, monkeypatch):
    """device.site.gateproc: a catch-up that fails with anything but GalleryFull (a read
    error) has taken its users out and dropped them from the pending set; the next decision
    loads the gallery whole, so they are matched again (not left out until restart)."""
    from device.site import gateproc as GP
    rng = np.random.default_rng(8)
    people = People(rng)
    st = TemplateStore(tmp_path / "t.db", device_key=os.urandom(32))
    for i in range(3):
        st.enrol(f"u{i}", people.templates(f"u{i}", 1))
    s = SimpleNamespace(store=st, gate="g1")
    ext = SimpleNamespace(importance=W, dim=D, shifts=None)
    monkeypatch.setattr(GP, "_GALLERY", {})
    q = people.query("u1")
    assert GP._identify(s, ext, q, 0.5)["gallery"] == 3
    st.update_user("u1", label="night shift")      # applied by the sync thread
    GP._follow(s, [({"user_id": "u1", "kind": "update"}, "applied", "")])
    real = st.get_user

    def failing(uid):
        raise OSError("disk read error")
    monkeypatch.setattr(st, "get_user", failing)
    with pytest.raises(OSError):
        GP._identify(s, ext, q, 0.5)
    assert "u1" not in GP._GALLERY["gal"].owner_set()        # fail secure meanwhile
    monkeypatch.setattr(st, "get_user", real)
    r = GP._identify(s, ext, q, 0.5)
    assert r["gallery"] == 3 and "u1" in GP._GALLERY["gal"].owner_set()
    st.close()


def test_template_rows_are_never_rewritten_in_place():
    """The row marks see a template change only as a new record id, a count that moved or a
    write of its user's row (device/store/row_marks.py): a template row rewritten in place
    (a re-encryption, a re-keying) would stay in a running gate's gallery. The one in-place
    write is the insert's own, in the insert's transaction."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "device"
    hits = [(p.relative_to(root).as_posix(), m) for p in sorted(root.rglob("*.py"))
            for m in re.findall(r"UPDATE\s+templates\b[^\"]*", p.read_text())]
    assert hits == [("store/store.py", "UPDATE templates SET nonce=?, sealed=? WHERE "
                                       "record_id=?")]


def test_patch_that_compacts_decides_as_a_fresh_full_load(tmp_path):
    """Enough revocations that the patch compacts the gallery (live rows moved down while
    the owners and versions maps point at them), then enrolments, a re-enrolment and
    enabled users into the moved gallery: the same decisions as a fresh full load."""
    rng = np.random.default_rng(9)
    people = People(rng)
    key = os.urandom(32)
    admin = TemplateStore(tmp_path / "t.db", device_key=key)
    gate_st = TemplateStore(tmp_path / "t.db", device_key=key)
    for i in range(120):
        admin.enrol(f"u{i:03d}", people.templates(f"u{i:03d}", 1))
    for i in range(10):
        admin.set_enabled(f"u{i:03d}", False)
    p = pipe_stub()
    GR.load_full(p, gate_st)
    for i in range(10, 90):
        admin.delete_user(f"u{i:03d}")
    assert GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st)) == "patched"
    assert p.gallery.hw == len(p.gallery) == 30 and p.gallery.dead() == 0      # compacted
    for i in range(5):
        admin.set_enabled(f"u{i:03d}", True)
    for i in range(200, 230):
        admin.enrol(f"u{i:03d}", people.templates(f"u{i:03d}", 2))
    admin.enrol("u095", people.templates("u095", 3), replace=True)
    assert GR.refresh(p, gate_st, lambda: GR.load_full(p, gate_st)) == "patched"
    ref = pipe_stub()
    GR.load_full(ref, gate_st)
    assert_same(p, ref, people, rng)
    admin.close()
    gate_st.close()
