"""Two node processes over loopback: split_bench's contract, split enrolment through the node
program, and a deny when the peer link breaks."""
import multiprocessing as mp

import numpy as np
import pytest

from device.eval.split_bench import _free_port, drawn_palm, split_bench
from device.split.node import Terminal, pack, serve, unpack
from device.split.provision import provision_dir, terminal_keys


def test_pack_roundtrip():
    m, a = unpack(pack({"op": "x", "n": 1}, {"x": np.arange(6, dtype=np.uint64).reshape(2, 3)}))
    assert m == {"op": "x", "n": 1} and a["x"].shape == (2, 3) and a["x"][1, 2] == 5


def test_split_bench_two_processes():
    r = split_bench(users=50, inferences=2, transport="unix", seed=1)
    assert set(r) >= {"latency_ms", "rounds", "bytes", "cosine_min"}
    assert r["cosine_min"] >= 0.9999 and r["rank1_correct"] == 2
    # the unit feature: 9 rounds (the softmax feature's 7, with the squares' and the
    # product's openings)
    assert r["feature"] == "unit"
    assert r["decision_agreement"] == 1.0 and r["rounds"] == 9 and r["bytes"] > 0


def _node(role, d, peer, term, ev):
    raise SystemExit(serve(role, d, peer, term, threshold=0.3, ready=ev.set, timeout=20))


def test_node_program_enrols_identifies_and_denies_on_a_broken_link(tmp_path):
    provision_dir(tmp_path, mode="plain", capacity=4, inferences=6, matches=6,
                  seed=b"n" * 32)
    peer = f"unix:{tmp_path / 'peer.sock'}"
    term = [f"tcp:127.0.0.1:{_free_port()}" for _ in (0, 1)]
    ctx = mp.get_context("spawn")
    evs = [ctx.Event() for _ in (0, 1)]
    ps = [ctx.Process(target=_node, args=(r, str(tmp_path), peer, term[r], evs[r]), daemon=True)
          for r in (0, 1)]
    for p in ps:
        p.start()
    for e in evs:
        assert e.wait(60)
    t = Terminal(term[0], term[1], *terminal_keys(tmp_path))
    rng = np.random.default_rng(5)
    palms = [drawn_palm(rng) for _ in range(2)]
    for k, im in enumerate(palms):
        assert t.enrol(f"u{k}", im)["slot"] == k
    r = t.identify(np.roll(palms[1], 2, axis=0))
    assert r["accept"] and r["uid"] == "u1"
    g = np.load(tmp_path / "node1_gallery.npz")              # split enrolment persisted
    assert list(g["uids"]) == ["u0", "u1"] and g["F"].shape == (784, 2)
    ps[1].kill()                                   # node 1 dies mid-service
    ps[1].join(5)
    r = t.identify(palms[0])
    assert r["accept"] is False and r.get("deny")
    ps[0].join(10)
    assert ps[0].exitcode == 1


def test_triples_are_never_reused_across_restarts(tmp_path):
    from device.split.node import TripleStock
    provision_dir(tmp_path, mode="plain", capacity=2, inferences=3, matches=1, seed=b"s" * 32)
    a = TripleStock(tmp_path / "node0_triples.npz")
    i0, _ = a.next_inference()
    i1, _ = a.next_inference()
    b = TripleStock(tmp_path / "node0_triples.npz")           # the node restarts
    i2, _ = b.next_inference()
    assert (i0, i1, i2) == (0, 1, 2)
    with pytest.raises(Exception, match="out of inference triples"):
        b.next_inference()
