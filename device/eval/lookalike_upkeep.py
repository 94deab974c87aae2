"""The look-alike lists' upkeep measured (:mod:`device.gate.lookalike_upkeep`): the lists a
gate makes between presentations for people it received from another gate are the lists
enrolment makes, and how long each slice and the whole catch-up take.

For one seed: persons ``0..people-1`` enrolled as the product enrols them (the lists made at
each enrolment, both ways: the reference); then for each ``--received K``: the last ``K``
people made "received" (their lists removed and their entries taken off everyone else's,
the state of a gate that applied them from the site), and the upkeep run as ``palmgate run``
runs it, :meth:`~device.gate.lookalike_upkeep.ListUpkeep.tick` slices of
:data:`~device.gate.lookalike_upkeep.SLICE_S` one after another, until no one is without a
list. Prints and writes: whether every list equals the reference, the slices' wall times
(median, 95th percentile, largest: the wait a slice can add before the next capture), the
catch-up's wall and CPU seconds and the pairs compared. ``K = people`` is a store whose
people were all enrolled before the lists were kept. ``--from-keep`` starts from a gallery a
``--keep`` run wrote (its sensor templates and the lists its enrolments made; a random palm
template each) instead of enrolling again.

    python -m device.eval.lookalike_upkeep --seed 9403 --people 120 --received 20 120 \\
        --out upkeep.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def lists_now(st, kind: str) -> dict:
    from device.gate import lookalikes as LA
    from device.store import lookalike_rows as LR
    return {u: LA.list_from_bytes(b) for u, b in LR.gallery(st, kind)[1].items()}


def make_received(st, kind: str, received: list) -> None:
    """``received`` as a gate that applied them from the site holds them: no list of theirs,
    on no one's list (one transaction; the evaluation's own temporary store)."""
    from device.gate import lookalikes as LA
    from device.store import lookalike_rows as LR
    from device.store import sensor_templates as ST
    gone = set(received)
    with st.transaction():
        stamps, lists = LR.gallery(st, kind)
        for u in received:
            ST.delete(st, u, ST.LIST_KIND[kind])
        for v, b in lists.items():
            if v in gone:
                continue
            old = LA.list_from_bytes(b)
            new = {x: s for x, s in old.items() if x not in gone}
            if new != old:
                LR.write_list(st, v, stamps[v][0], kind, LA.list_to_bytes(new))


def catch_up(pipe, st) -> dict:
    """The upkeep in slices until done: the slices' wall ms, wall and CPU seconds."""
    from device.gate.lookalike_upkeep import SLICE_S, ListUpkeep
    up = ListUpkeep(pipe.identity, st, {"operator": "lookalike_upkeep evaluation"})
    ms = []
    w0, c0 = time.perf_counter(), time.process_time()
    while True:
        t = time.perf_counter()
        more = up.step(SLICE_S)
        ms.append((time.perf_counter() - t) * 1e3)
        if not more:
            break
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    a = np.asarray(ms)
    return {"slices": len(ms), "slice_ms_median": round(float(np.median(a)), 1),
            "slice_ms_p95": round(float(np.percentile(a, 95)), 1),
            "slice_ms_max": round(float(a.max()), 1), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), **up.stats}


def load_keep(pipe, st, path: str) -> dict:
    """A gallery written by ``--keep`` put into the store ``st`` as enrolment left it: each
    person with one palm template (a random one: the lists do not look at them), their
    sensor templates and the list enrolment made; returns the lists."""
    from device.gate import lookalikes as LA
    from device.protect.core import enrol as protect
    from device.store import lookalike_rows as LR
    from device.store import sensor_templates as ST
    d = json.load(open(path))
    kind = pipe.identity.kind
    rng = np.random.default_rng(0)
    with st.transaction():
        for u in sorted(d["templates"]):
            x = rng.standard_normal((49, 16))
            v = st.enrol(u, [protect(x / np.linalg.norm(x, axis=-1, keepdims=True),
                                     pipe.protect_config)])
            ST.insert(st, u, v, [bytes.fromhex(h) for h in d["templates"][u]], kind)
            LR.write_list(st, u, v, kind, LA.list_to_bytes(d["lists"][u]))
    return {u: {k: float(s) for k, s in e.items()} for u, e in d["lists"].items()}


def run(seed: int, people: int, received: list, precision: str = "int8", models=None,
        log=None, keep: str | None = None, from_keep: str | None = None) -> dict:
    from device.eval.synthetic_gate import enrol_people, synthetic_gate
    from device.synth.source import SyntheticPeople
    log = log or (lambda m: None)
    synth = SyntheticPeople(seed=seed, views=3, sensor="xray")
    out = {"seed": seed, "people": people, "precision": precision, "runs": []}
    with synthetic_gate(seed, 3, precision, "xray", policy="when_enrolled", models=models,
                        prefix="lookalike-upkeep-") as (pipe, st):
        if pipe.identity is None or not (pipe.identity.numbers or {}).get("lookalikes"):
            raise SystemExit("the models' signed sensor_identity has no 'lookalikes'")
        kind = pipe.identity.kind
        t0 = time.time()
        if from_keep:
            load_keep(pipe, st, from_keep)
            out.update(from_keep=from_keep, people=len(lists_now(st, kind)))
        else:
            enrolled, refused = enrol_people(pipe, st, synth, range(people), log,
                                             presentations=3)
            out.update(enrolled=len(enrolled), enrol_refused=len(refused),
                       enrol_s=round(time.time() - t0, 1))
        ref = lists_now(st, kind)
        ids = sorted(ref)
        if keep:        # the enrolled templates and the lists, for measurements of the lists
            from device.store import lookalike_rows as LR
            dump = {u: [bytes(b) for b in LR.templates(st, u, kind)[1]] for u in ids}
            with open(keep, "w") as f:
                json.dump({"seed": seed, "precision": precision, "lists": ref,
                           "templates": {u: [b.hex() for b in bs] for u, bs in dump.items()}},
                          f)
        for k in received:
            k = min(k, len(ids))            # a gallery with refused enrolments has fewer
            make_received(st, kind, ids[len(ids) - k:])
            r = catch_up(pipe, st)
            now = lists_now(st, kind)
            r.update(received=k, lists_equal_enrolments=now == ref,
                     lists_differing=sum(1 for u in ids if now.get(u) != ref.get(u)))
            out["runs"].append(r)
            log(json.dumps(r))
            st.verify()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.lookalike_upkeep",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--people", type=int, default=120)
    ap.add_argument("--received", type=int, nargs="+", default=[20])
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--models", default=None, help="models folder (default: the shipped one)")
    ap.add_argument("--keep", default=None, help="also write the enrolled sensor templates "
                    "(plaintext hex: synthetic people only) and the lists to this JSON file")
    ap.add_argument("--from-keep", default=None, help="start from a gallery written by --keep "
                    "(its lists the reference) instead of enrolling")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if any(not 0 < k <= a.people for k in a.received) and not a.from_keep:
        ap.error("--received takes counts from 1 to --people")
    res = run(a.seed, a.people, a.received, a.precision, a.models,
              log=lambda m: print(m, file=sys.stderr, flush=True), keep=a.keep,
              from_keep=a.from_keep)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
