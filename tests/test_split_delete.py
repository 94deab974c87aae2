"""Split mode: deleting and re-enrolling users (issue 7). A delete tombstones the user's
slots on both nodes (F3 zeroed, slot dead, durable); a delete that reached one node only, or
none, stays pending in the terminal's store and every presentation is denied until both
nodes have it; slots (and so their masks) are never reused. Protocol-level checks run in one
process; the gate-level ones use two real node processes as tests/test_split_gate.py does."""
import json
import threading

import numpy as np
import pytest
from conftest import gate_config, write_toml
from test_split_gate import provisioned_nodes

from device.cli import main
from device.gate.enrol import enrol_user
from device.gate.gate import Gate
from device.relays.factory import MemoryRelay
from device.split.local import run_pair
from device.split.node import load_gallery, reserve_slots, save_gallery
from device.split.protocol import (Gallery, ProtocolError, check_step, check_sync,
                                   match_offline_term)
from device.split.ring import Prg
from device.split.transport import socket_pair_channels


# ------------------------------------------------------------------ protocol level
def _pair(n_cap=8):
    B = Prg(b"b" * 32).ring((784, n_cap))
    g = [Gallery(0, B), Gallery(1, B.copy())]
    F = Prg(b"f" * 32).ring((784, 4))
    for x in g:
        x.fill_from(F, ["a", "a", "b", "c"])
    return g


def test_check_sync_applies_the_union_of_tombstones_and_never_drops_a_slot():
    g = _pair()
    g[0].kill([0, 1])                          # the delete of "a" reached node 0 only
    g[1].uids.append("d")                      # node 1 saved a slot node 0 never saved
    g[1].F[:, 4] = 7
    ch = socket_pair_channels(b"k" * 32)
    out = run_pair(lambda r, c, x: check_sync(c, 3 + r, 5, x), ch, g)
    assert [o[:2] for o in out] == [(4, 5), (4, 5)]
    assert out[0][2] == {"added": [4], "killed": []}
    assert out[1][2] == {"added": [], "killed": [0, 1, 4]}
    for x in g:                                # same slot count, same tombstones, slot 4
        assert x.n == 5                        # dead (not dropped: its mask is spent)
        assert list(x.dead[:5]) == [True, True, False, False, True]
        assert not x.F[:, [0, 1, 4]].any()
        assert x.live_uids() == ["b", "c"]
    assert g[0].digest() == g[1].digest()
    # galleries that differ in a live slot are still refused
    g[1].uids[2] = "zz"
    g[1]._changed()
    with pytest.raises(ProtocolError):
        run_pair(lambda r, c, x: check_sync(c, 0, 0, x), socket_pair_channels(b"k" * 32), g)


def test_a_job_is_refused_while_one_node_lacks_a_delete():
    g = _pair()
    ch = socket_pair_channels(b"k" * 32)
    run_pair(lambda r, c, x: check_step(c, 1, 1, x), ch, g)        # in step
    g[1].kill(g[1].slots_of("b"))
    with pytest.raises(ProtocolError, match="another gallery"):
        run_pair(lambda r, c, x: check_step(c, 2, 2, x), ch, g)


def test_offline_match_term_is_recomputed_after_a_tombstone():
    g = _pair()[0]
    A3 = Prg(b"a" * 32).ring((841, 16))
    Z3 = Prg(b"z" * 32).ring((25, 8))
    mt = {"A3": A3, "Z3": Z3}
    assert match_offline_term(g, mt).shape == (25, 4)
    g.kill([1])                                # same slot count, one slot fewer to score
    c3 = match_offline_term(g, mt)
    assert c3.shape == (25, 3) and g._W().shape == (784, 3)
    fresh = match_offline_term(g, {"A3": A3, "Z3": Z3})
    assert np.array_equal(c3, fresh)


def test_tombstones_and_reserved_slots_survive_a_restart(tmp_path):
    g = _pair()[1]
    p = tmp_path / "node1_gallery.npz"
    g.kill([2])
    save_gallery(p, g)
    reserve_slots(p, 6)                        # two slots opened, then a power cut
    h = Gallery(1, g.B)
    assert load_gallery(p, h) is True
    assert h.n == 6 and list(h.dead[:6]) == [False, False, True, False, True, True]
    assert not h.F[:, 2].any() and h.live_uids() == ["a", "a", "c"]
    assert not np.load(p)["F"][:, 2].any()               # zeros on disk


# ------------------------------------------------------------------ two node processes
@pytest.fixture
def nodes(tmp_path):
    yield from provisioned_nodes(tmp_path, b"d" * 32)


def _gallery(nodes, role):
    z = np.load(f"{nodes.d}/node{role}_gallery.npz")
    return list(z["uids"]), z["dead"], z["F"]


def _slots(nodes, uid):
    uids, dead, _ = _gallery(nodes, 0)
    return [k for k, u in enumerate(uids) if u == uid]


def _enrol(g, bursts, who=(0, 1), **kw):
    return {i: enrol_user(g.pipeline, g.store, f"person-{i:03d}", bursts["enrol"][i], **kw)
            for i in who}


def _cli(capsys, toml, *args):
    rc = main(["users", "delete", *args, "--config", str(toml), "--wait", "0"])
    out = capsys.readouterr()
    return rc, (json.loads(out.out.strip().splitlines()[-1]) if out.out.strip() else None), \
        out.err


def _until_not_split(g, burst, seconds=30):
    """Present until the nodes answer (a restarted node pairs again within a second or so);
    the relay must never open meanwhile."""
    import time
    end, d = time.monotonic() + seconds, None
    while time.monotonic() < end:
        d = g.present(burst)
        assert not (d.opened and d.user_id == "person-000"), d.summary()
        if not d.reason.startswith("split:"):
            return d
        time.sleep(0.3)
    return d


def test_delete_denies_the_deleted_user_and_keeps_the_other(tmp_path, tiny_models,
                                                             synthetic_bursts, nodes, capsys):
    cfg = gate_config(tmp_path, tiny_models, split=nodes.section())
    toml = write_toml(tmp_path / "p.toml", cfg)
    gen = synthetic_bursts["genuine"]                    # person 0, person 1, person 0
    with Gate(cfg, relay=MemoryRelay()) as g:
        _enrol(g, synthetic_bursts)
        assert g.present(gen[0]).user_id == "person-000"
        old = _slots(nodes, "person-000")
        g.pipeline.split.close()          # the gate lets go of the nodes' links (a running
        #                                   gate keeps them: see the next test)
        rc, r, err = _cli(capsys, toml, "person-000")
        assert rc == 0 and r["status"] == "deleted" and r["pending_nodes"] == [], (r, err)
        assert r["slots"] == old and "deleted on both nodes" in err
        assert [n["killed"] for n in r["nodes"]] == [old, old]
        for role in (0, 1):                               # tombstoned, zeroed, on disk
            uids, dead, F = _gallery(nodes, role)
            assert [k for k in range(len(uids)) if dead[k]] == old
            assert not F[:, old].any() and F[:, ~dead].any()
        d = g.present(gen[0])
        assert d.decision == "deny" and d.reason == "no_match", d.summary()
        d = g.present(gen[1])
        assert d.opened and d.user_id == "person-001", d.summary()
        assert g.store.split_pending() == {}
        rec = [r.payload for r in g.store.audit.records() if r.kind == "user_delete"]
        assert rec[-1]["status"] == "deleted" and rec[-1]["mode"] == "split"
        # a repeat is harmless; an id nobody holds is a clear error
        g.pipeline.split.close()
        rc, r, err = _cli(capsys, toml, "person-000")
        assert rc == 0 and r["status"] == "deleted" and r["nodes"][0]["already"] == old, err
        rc, r, err = _cli(capsys, toml, "nobody")
        assert rc == 2 and "no user 'nobody'" in err and g.store.split_pending() == {}


def test_delete_through_the_running_gate(tmp_path, tiny_models, synthetic_bursts, nodes,
                                         capsys):
    """The running gate holds the nodes' links: ``users delete`` records the delete and the
    gate applies it before its next presentation."""
    cfg = gate_config(tmp_path, tiny_models, split=nodes.section())
    toml = write_toml(tmp_path / "p.toml", cfg)
    gen = synthetic_bursts["genuine"]
    with Gate(cfg, relay=MemoryRelay()) as g:
        _enrol(g, synthetic_bursts, who=(0,))
        assert g.present(gen[0]).opened
        res = {}
        t = threading.Thread(target=lambda: res.update(rc=main(
            ["users", "delete", "person-000", "--config", str(toml), "--wait", "30"])))
        t.start()
        import time
        end = time.monotonic() + 20
        while not g.store.split_pending() and time.monotonic() < end:
            time.sleep(0.05)
        d = g.present(gen[0])                 # applied first, then decided: denied
        t.join(40)
        assert d.decision == "deny" and d.reason == "no_match", d.summary()
        assert res["rc"] == 0 and g.store.split_pending() == {}
        out = capsys.readouterr().out
        assert json.loads(out.strip().splitlines()[-1])["status"] == "deleted"


def test_delete_while_node_1_is_down(tmp_path, tiny_models, synthetic_bursts, nodes, capsys):
    cfg = gate_config(tmp_path, tiny_models, split=nodes.section(reply_timeout_s=20.0))
    toml = write_toml(tmp_path / "p.toml", cfg)
    gen = synthetic_bursts["genuine"]
    relay = MemoryRelay()
    with Gate(cfg, relay=relay) as g:
        _enrol(g, synthetic_bursts)
        n_on = len([e for e in relay.events if e[2]])
        g.pipeline.split.close()
        nodes.kill(1)
        rc, r, err = _cli(capsys, toml, "person-000")
        assert rc == 1 and r["status"] == "pending" and r["pending_nodes"] == [0, 1], r
        assert "NOT yet deleted" in err
        assert g.store.split_pending()["person-000"]["nodes"] == [0, 1]
        rec = [x.payload for x in g.store.audit.records() if x.kind == "user_delete"][-1]
        assert rec["status"] == "pending" and rec["pending_nodes"] == "0,1"
        d = g.present(gen[0])
        assert d.decision == "deny" and d.reason.startswith("split:"), d.summary()
        nodes.start(1)                          # back: the gate sends the delete first
        d = _until_not_split(g, gen[0])
        assert d.decision == "deny" and d.reason == "no_match", d.summary()
        assert g.store.split_pending() == {}
        assert g.present(gen[1]).user_id == "person-001"
        assert len([e for e in relay.events if e[2]]) == n_on + 1     # person 1's only
        g0, g1 = _gallery(nodes, 0), _gallery(nodes, 1)
        assert g0[0] == g1[0] and np.array_equal(g0[1], g1[1])      # counts and tombstones
        assert [k for k in range(len(g0[0])) if g0[1][k]] == _slots(nodes, "person-000")


def test_delete_that_reaches_node_0_only_is_repaired(tmp_path, tiny_models,
                                                     synthetic_bursts, nodes):
    """Node 1 dies between the two halves of a delete: node 0 has it, node 1 not. The user
    is never accepted meanwhile, and after node 1 is back both nodes agree."""
    cfg = gate_config(tmp_path, tiny_models, split=nodes.section(reply_timeout_s=20.0))
    gen = synthetic_bursts["genuine"]
    with Gate(cfg, relay=MemoryRelay()) as g:
        _enrol(g, synthetic_bursts)
        old = _slots(nodes, "person-000")
        nodes.kill(1)                          # the gate's links are open; node 1 is gone
        r = g.pipeline.split.delete("person-000")
        assert r["status"] == "pending" and r["pending_nodes"] == [1], r
        assert r["nodes"][0]["ok"] and r["nodes"][0]["killed"] == old
        assert g.store.split_pending()["person-000"]["nodes"] == [1]
        uids, dead, _ = _gallery(nodes, 1)
        assert not dead.any()                  # node 1 never got it
        d = g.present(gen[0])
        assert d.decision == "deny" and d.reason.startswith("split:"), d.summary()
        nodes.start(1)
        d = _until_not_split(g, gen[0])
        assert d.decision == "deny" and d.reason == "no_match", d.summary()
        assert g.store.split_pending() == {}
        g0, g1 = _gallery(nodes, 0), _gallery(nodes, 1)
        assert g0[0] == g1[0] and np.array_equal(g0[1], g1[1])
        assert [k for k in range(len(g0[0])) if g1[1][k]] == old and not g1[2][:, old].any()
        assert g.present(gen[1]).user_id == "person-001"


def test_re_enrolment_gets_fresh_slots(tmp_path, tiny_models, synthetic_bursts, nodes):
    cfg = gate_config(tmp_path, tiny_models, split=nodes.section())
    gen = synthetic_bursts["genuine"]
    with Gate(cfg, relay=MemoryRelay()) as g:
        first = _enrol(g, synthetic_bursts, who=(0,))[0]["slots"]
        r = g.pipeline.split.delete("person-000")
        assert r["status"] == "deleted" and r["slots"] == first
        assert g.present(gen[0]).reason == "no_match"
        second = _enrol(g, synthetic_bursts, who=(0,))[0]["slots"]
        assert min(second) > max(first) and not set(first) & set(second)
        assert g.present(gen[0]).user_id == "person-000"
        # --replace: the old slots are tombstoned first, the new ones are fresh again
        third = _enrol(g, synthetic_bursts, who=(0,), replace=True)[0]["slots"]
        assert min(third) > max(second)
        for role in (0, 1):
            uids, dead, F = _gallery(nodes, role)
            assert [k for k in range(len(uids)) if dead[k]] == first + second
            assert not F[:, first + second].any() and F[:, third].all(axis=0).any()
        assert g.present(gen[0]).user_id == "person-000"
