"""The sensor identity check measured through the gate: enrol synthetic people with the real
enrolment path (their sensor templates sealed in a real store), then decide genuine and mixed
``other_hand`` presentations with :meth:`device.gate.pipeline.Pipeline.decide` -- presence,
SR + liveness, the binding, feature, 1:N, then the sensor identity stage
(:mod:`device.gate.sensor_identity_stage`) -- as the gate does.

For one seed (:class:`device.synth.source.SyntheticPeople`, the synthetic gate of that seed,
its nominal registration as in ``palmgate demo``):

- **enrolment**: persons ``0..people-1``, two enrolment presentations each
  (:func:`device.gate.enrol.enrol_user`; a refused enrolment is retried with the next two);
- **genuine**: ``genuine`` presentations of enrolled persons (each in turn);
- **mixed** ``other_hand``: ``mixed`` each of ``mixed_replica_views`` (the victim's replica
  before the cameras, another person's live hand under the sensor) and
  ``mixed_replica_sensor`` (another person's live hand before the cameras, the victim's
  replica under the sensor; :func:`device.synth.mixed.render_mixed`); the victim an enrolled
  person, the other any other person of ``0..2*people-1``.

Every decision's reason is kept. "Binding alone" is what the gate decides without the identity
stage: the identity stage is the last check before the access times, so a presentation it
denies would otherwise have opened. The identity stage's wall and CPU ms are the
presentation's ``stages_ms`` / ``stages_cpu_ms`` ``identity``. ``--choose FRR`` also prints
the genuine agreements' FRR quantile (the threshold's rule, for a re-choice on validation).

    python -m device.eval.sensor_identity_gate --seed 11 --people 40 --genuine 200 \\
        --mixed 100 --out gate_11.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MIXED = ("mixed_replica_views", "mixed_replica_sensor")


def _mixed_burst(people, species: str, j: int, enrolled: list):
    from device.sources.replay import Burst
    from device.synth.mixed import render_mixed
    n = len(enrolled)
    rng = np.random.default_rng([people.seed, 313, MIXED.index(species), j])
    victim = enrolled[int(rng.integers(n))]
    other = int(rng.integers(2 * n - 1))
    other = other + 1 if other >= victim else other
    vg, vi = people._person(victim)
    og, oi = people._person(other)
    vt, ot = people.synth.palms(vi, 1, rng)[0], people.synth.palms(oi, 1, rng)[0]
    shot, _ = render_mixed(species, vg, vt, og, ot, rng, people.rig, people.sensor,
                           people.size, variant="other_hand")
    frame = np.clip(np.round(shot.sensor * 255.0), 0, 255).astype(np.uint8)
    return Burst(shot.views, frame, {"burst": f"{species}-{j:03d}"}), victim, other


def run(seed: int, people: int, genuine: int, mixed: int, precision: str = "int8",
        policy: str = "when_enrolled", log=None) -> dict:
    """Rows of every presentation (kind, person the views claim, reason, user_id, sensor
    identity verdict and agreement, stage ms) and the enrolment's refusals."""
    from device.eval.demo import demo_config
    from device.gate.enrol import EnrolError, enrol_user
    from device.gate.gate import open_store
    from device.gate.pipeline import Pipeline
    from device.synth.source import SyntheticPeople
    log = log or (lambda m: None)
    root = Path(tempfile.mkdtemp(prefix="sensortpl-gate-"))
    cfg = demo_config(root, 3, precision, sensor="nir", seed=seed)
    cfg = cfg.replace(gate={"threads": 1, "model_threads": 1},
                      liveness={"sensor_identity": policy})
    pipe = Pipeline(cfg)
    st = open_store(cfg)
    pipe.attach_store(st)
    synth = SyntheticPeople(seed=seed, views=3, sensor="nir")
    rows, refused, enrolled = [], [], []
    t0 = time.time()
    try:
        for i in range(people):
            for k in (0, 2, 4):
                try:
                    enrol_user(pipe, st, f"p{i:03d}",
                               [synth.burst(i, "enrol", k), synth.burst(i, "enrol", k + 1)])
                    enrolled.append(i)
                    break
                except EnrolError as e:
                    refused.append({"person": i, "try": k // 2, "reason": str(e)[:120]})
            log(f"seed {seed}: enrolled {len(enrolled)}/{i + 1} {time.time() - t0:.0f} s")
        pipe.load_gallery(st)
        plan = [("genuine", j) for j in range(genuine)] + \
            [(sp, j) for j in range(mixed) for sp in MIXED]
        for n, (kind, j) in enumerate(plan):
            if kind == "genuine":
                who, other = enrolled[j % len(enrolled)], -1
                burst = synth.burst(who, "genuine", j // len(enrolled))
            else:
                burst, who, other = _mixed_burst(synth, kind, j, enrolled)
            d = pipe.decide(burst)
            rows.append({"kind": kind, "person": who, "other": other, "reason": d.reason,
                         "decision": d.decision, "user_id": d.user_id,
                         "claimed_person": f"p{who:03d}",
                         "sensor_identity": d.sensor_identity,
                         "agreement": None if d.sensor_identity_score is None
                         else float(d.sensor_identity_score),
                         "identity_ms": d.stages_ms.get("identity"),
                         "identity_cpu_ms": d.stages_cpu_ms.get("identity"),
                         "total_ms": d.total_ms, "total_cpu_ms": d.total_cpu_ms})
            if (n + 1) % 25 == 0:
                log(f"seed {seed}: {n + 1}/{len(plan)} {time.time() - t0:.0f} s")
    finally:
        pipe.close()
        st.close()
    return {"rows": rows, "enrol_refused": refused, "enrolled": len(enrolled)}


def _rate(k: int, n: int) -> dict:
    return {"k": int(k), "n": int(n), "rate": round(k / n, 4) if n else None}


def summary(res: dict, choose: float | None = None) -> dict:
    """FRR of the genuine (every deny, and the identity's own), the mixed denied with and
    without the identity stage, the identity stage's median ms."""
    rows = res["rows"]
    g = [r for r in rows if r["kind"] == "genuine"]
    out = {"enrolled": res["enrolled"], "enrol_refused": len(res["enrol_refused"]),
           "genuine": {"frr": _rate(sum(r["decision"] != "open" for r in g), len(g)),
                       "denied_sensor_identity": _rate(
                           sum(r["reason"] == "sensor_identity" for r in g), len(g)),
                       "reasons": _reasons(g)}}
    for sp in MIXED:
        m = [r for r in rows if r["kind"] == sp]
        opened_as_victim = sum(r["decision"] == "open" and r["user_id"] == r["claimed_person"]
                               for r in m)
        out[sp] = {"denied": _rate(sum(r["decision"] != "open" for r in m), len(m)),
                   "denied_without_identity": _rate(
                       sum(r["decision"] != "open" and r["reason"] != "sensor_identity"
                           for r in m), len(m)),
                   "denied_sensor_identity": _rate(
                       sum(r["reason"] == "sensor_identity" for r in m), len(m)),
                   "opened_as_victim": opened_as_victim, "reasons": _reasons(m)}
    compared = [r for r in rows if r["sensor_identity"] in ("checked", "denied")]
    for k in ("identity_ms", "identity_cpu_ms"):
        v = [r[k] for r in compared if r[k] is not None]
        out[f"{k}_median"] = round(float(np.median(v)), 2) if v else None
    out["compared"] = len(compared)
    out["not_enrolled"] = sum(r["sensor_identity"] == "not_enrolled" for r in rows)
    if choose is not None:
        a = np.array([r["agreement"] for r in g if r["agreement"] is not None], np.float64)
        a = a[np.isfinite(a)]
        out["choose"] = {"frr": choose, "n": int(a.size),
                         "threshold": round(float(np.quantile(a, choose)), 4) if a.size
                         else None}
    return out


def _reasons(rows) -> dict:
    c: dict = {}
    for r in rows:
        c[r["reason"]] = c.get(r["reason"], 0) + 1
    return dict(sorted(c.items(), key=lambda kv: -kv[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--people", type=int, default=40)
    ap.add_argument("--genuine", type=int, default=200)
    ap.add_argument("--mixed", type=int, default=100, help="presentations per mixed species")
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--choose", type=float, default=None, metavar="FRR",
                    help="also print the genuine agreements' FRR quantile")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    res = run(a.seed, a.people, a.genuine, a.mixed, a.precision,
              log=lambda m: print(m, file=sys.stderr, flush=True))
    out = {"command": "python -m device.eval.sensor_identity_gate " +
           " ".join(sys.argv[1:] if argv is None else argv),
           "summary": summary(res, a.choose), **res}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
