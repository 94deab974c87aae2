"""The chosen look-alike attacker measured through the gate (:mod:`device.gate.lookalikes`).

An enrolled attacker picks the enrolled person whose bones look most like theirs and presents
their own live hand under the sensor with a replica of the victim's palm before the cameras
(``mixed_replica_views``, variant ``other_hand``, :func:`device.synth.mixed.render_mixed`,
with the attacker and the victim chosen, not drawn). For one seed:

- **enrolment**: persons ``0..people-1`` as the product enrols them (``enrol_people``, three
  presentations), which makes the look-alike lists when the signed numbers have
  ``lookalikes`` (required here: the pairs are read from the lists);
- **attacks**: the ``pairs`` closest pairs on the lists (pair agreement ``S``), ``per_pair``
  presentations each, half each way round (each person the victim once);
- **genuine**: ``genuine`` presentations of the people on those pairs (each in turn), the
  genuine cost of the check where it compares most (``--genuine-of all``: of every enrolled
  person in turn); each decided twice, with the check and
  without it (the signed ``lookalikes`` set aside), for the check's added identity-stage CPU
  (paired medians).

A row denied by the look-alikes' check (``sensor_identity_by = "lookalike"``, or
``identity_by_held`` where a held-back binding deny then decided,
:mod:`device.gate.binding_release`, which the identity checks would have released) passed every
other check of the gate (the identity stage is the last before the access times): without the
check it would have opened. So one run gives both.

    python -m device.eval.lookalike_attacks --sensor xray --seed 11 --people 200 \\
        --pairs 5 --per-pair 10 --genuine 50 --models DIR --out la_11.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np


def closest_pairs(store, kind: str, k: int) -> list[tuple[str, str, float]]:
    """The ``k`` closest pairs ``(u, v, S)`` (u < v) on the store's look-alike lists."""
    from device.gate import lookalikes as LA
    from device.store import lookalike_rows as LR
    pairs = {}
    for u, b in LR.gallery(store, kind)[1].items():
        for v, s in LA.list_from_bytes(b).items():
            pairs[tuple(sorted((u, v)))] = s
    return [(u, v, s) for (u, v), s in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
            ][:k]


def attack_burst(people, victim: int, attacker: int, key: list):
    """The attacker's live hand under the sensor, the victim's replica before the cameras."""
    from device.sources.replay import Burst
    from device.synth.mixed import render_mixed
    rng = np.random.default_rng([people.seed, 727] + list(key))
    vg, vi = people._person(victim)
    og, oi = people._person(attacker)
    vt, ot = people.synth.palms(vi, 1, rng)[0], people.synth.palms(oi, 1, rng)[0]
    shot, _ = render_mixed("mixed_replica_views", vg, vt, og, ot, rng, people.rig,
                           people.sensor, people.size, variant="other_hand")
    frame = np.clip(np.round(shot.sensor * 255.0), 0, 255).astype(np.uint8)
    return Burst(shot.views, frame, {"burst": f"lookalike-{victim}-{attacker}-{key[-1]}"})


def _row(d, kind, victim, other, s) -> dict:
    return {"kind": kind, "victim": victim, "attacker": other, "pair_agreement": s,
            "decision": d.decision, "reason": d.reason, "user_id": d.user_id,
            "sensor_identity": d.sensor_identity,
            "by": d.sensor_identity_by or d.identity_by_held,   # held: the binding's deny decided
            "lookalikes": d.lookalikes,
            "agreement": None if d.sensor_identity_raw is None else
            round(float(d.sensor_identity_raw), 4),
            "identity_cpu_ms": d.stages_cpu_ms.get("identity")}


def run(seed: int, people: int, pairs: int, per_pair: int, genuine: int,
        precision: str = "int8", sensor: str = "xray", models=None, log=None,
        genuine_of: str = "pairs") -> dict:
    from device.eval.synthetic_gate import enrol_people, synthetic_gate, user_id
    from device.gate import lookalike_lists as LL
    from device.gate import lookalikes as LA
    from device.store import lookalike_rows as LR
    from device.synth.source import SyntheticPeople
    log = log or (lambda m: None)
    synth = SyntheticPeople(seed=seed, views=3, sensor=sensor)
    rows = []
    with synthetic_gate(seed, 3, precision, sensor, policy="when_enrolled", models=models,
                        prefix="lookalike-gate-") as (pipe, st):
        if (pipe.identity is None or not pipe.identity.numbers
                or pipe.identity.numbers.get("lookalikes") is None):
            raise SystemExit("the models' signed sensor_identity has no 'lookalikes': the "
                             "pairs are read from the lists it makes")
        t0 = time.time()
        enrolled, refused = enrol_people(pipe, st, synth, range(people), log, presentations=3)
        t_enrol = time.time() - t0
        person = {user_id(i): i for i in enrolled}
        lists_report = LL.report(st, pipe.identity.kind, pipe.identity.numbers["lookalikes"])
        top = closest_pairs(st, pipe.identity.kind, pairs)
        for p, (u, v, s) in enumerate(top):
            for j in range(per_pair):
                victim, other = (person[u], person[v]) if j % 2 == 0 else (person[v], person[u])
                d = pipe.decide(attack_burst(synth, victim, other, [p, j]))
                rows.append({**_row(d, "attack", victim, other, s),
                             "claimed_person": user_id(victim)})
            log(f"pair {p + 1}/{len(top)}: S {s:.4f}")
        near = sorted({person[x] for u, v, _ in top for x in (u, v)}) \
            if genuine_of == "pairs" else list(enrolled)
        lists = {u: LA.list_from_bytes(b)
                 for u, b in LR.gallery(st, pipe.identity.kind)[1].items()}
        numbers = pipe.identity.numbers
        for j in range(genuine if near else 0):
            who = near[j % len(near)]
            burst = synth.burst(who, "genuine", j // len(near))
            d = pipe.decide(burst)
            saved, numbers["lookalikes"] = numbers["lookalikes"], None    # paired: unchecked
            try:
                d0 = pipe.decide(burst)
            finally:
                numbers["lookalikes"] = saved
            rows.append({**_row(d, "genuine", who, -1, None), "claimed_person": user_id(who),
                         "compared": len(LA.to_compare(lists.get(d.user_id, {}), saved,
                                                       d.user_id)) if d.user_id else 0,
                         "unchecked_decision": d0.decision,
                         "unchecked_identity_cpu_ms": d0.stages_cpu_ms.get("identity")})
    return {"rows": rows, "pairs": [list(t) for t in top], "enrolled": len(enrolled),
            "lists": lists_report,
            "enrol_refused": refused, "enrol_s": round(t_enrol, 1)}


def summary(res: dict) -> dict:
    rows = res["rows"]
    a = [r for r in rows if r["kind"] == "attack"]
    g = [r for r in rows if r["kind"] == "genuine"]
    opened = sum(r["decision"] == "open" and r["user_id"] == r["claimed_person"] for r in a)
    stopped = sum(r["by"] == "lookalike" for r in a)     # the held-back ones too
    paired = [(r["identity_cpu_ms"] - r["unchecked_identity_cpu_ms"], r["compared"]) for r in g
              if r["lookalikes"] == "checked" and r["identity_cpu_ms"] is not None
              and r["unchecked_identity_cpu_ms"] is not None]
    cost = {k: round(float(np.median([x for x, c in paired if sel(c)])), 2)
            for k, sel in (("all", lambda c: True), ("with_lookalikes", lambda c: c > 0))
            if any(sel(c) for _, c in paired)}
    return {"enrolled": res["enrolled"], "enrol_refused": len(res["enrol_refused"]),
            "enrol_s": res["enrol_s"], "pairs": res["pairs"], "lists": res.get("lists"),
            "attacks": len(a), "opened": opened, "stopped_by_lookalikes": stopped,
            "opened_without_the_check": opened + stopped,
            "attack_reasons": _count(r["reason"] for r in a),
            "genuine": len(g), "genuine_opened": sum(r["decision"] == "open" for r in g),
            "genuine_denied_by_lookalikes": sum(r["by"] == "lookalike" for r in g),
            "genuine_reasons": _count(r["reason"] for r in g),
            "genuine_unchecked_opened": sum(r["unchecked_decision"] == "open" for r in g),
            "lookalikes_compared_per_genuine": _count(r["compared"] for r in g),
            "added_identity_cpu_ms_median_paired": cost}


def _count(xs) -> dict:
    """Counts, the most common first."""
    return dict(Counter(xs).most_common())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--people", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--per-pair", type=int, default=10)
    ap.add_argument("--genuine", type=int, default=50)
    ap.add_argument("--genuine-of", choices=("pairs", "all"), default="pairs",
                    help="whose genuine presentations: the pairs' people (the check's cost "
                         "where it compares most), or every enrolled person in turn")
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--sensor", choices=("nir", "xray"), default="xray")
    ap.add_argument("--models", default=None, help="models folder (default: the shipped one)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    res = run(a.seed, a.people, a.pairs, a.per_pair, a.genuine, a.precision, a.sensor,
              a.models, log=lambda m: print(m, file=sys.stderr, flush=True),
              genuine_of=a.genuine_of)
    out = {"command": "python -m device.eval.lookalike_attacks " +
           " ".join(sys.argv[1:] if argv is None else argv), "summary": summary(res), **res}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
