"""The sensor identity check measured through the gate: enrol synthetic people with the real
enrolment path (their sensor templates sealed in a real store), then decide genuine and mixed
presentations with :meth:`device.gate.pipeline.Pipeline.decide` -- presence,
SR + liveness, the binding, feature, 1:N, then the sensor identity stage
(:mod:`device.gate.sensor_identity_stage`) -- as the gate does.

For one seed (:class:`device.synth.source.SyntheticPeople`, the synthetic gate of that seed,
its nominal registration as in ``palmgate demo``):

- **enrolment**: persons ``0..people-1``, two enrolment presentations each
  (:func:`device.gate.enrol.enrol_user`; a refused enrolment is retried with the next two);
- **genuine**: ``genuine`` presentations of enrolled persons (each in turn);
- **mixed**: ``mixed`` each of ``mixed_replica_views`` (a replica before the cameras, a
  live hand under the sensor) and ``mixed_replica_sensor`` (a live hand before the cameras, a
  replica under the sensor) as :func:`device.synth.mixed.render_mixed` renders them: the
  views always show the victim's hand (an enrolled person), the sensor frame by ``variant``
  another person's hand (``other_hand``; the other any person of ``0..2*people-1`` but the
  victim), the victim's own hand with the replica moved, turned or scaled against the live
  hand (``offset``, ``rotation``, ``scale``), or an attack species of the victim (``species``, ``mixed_replica_sensor``
  only). ``--variant`` (default ``other_hand``) picks one; ``sets`` draws it per
  presentation as the whole-presentation sets do (``tools.synth liveness --presentations``:
  uniform over the species' :func:`~device.synth.mixed.variants`), and each row keeps the
  variant drawn (and the attack species).

``--sensor xray`` measures the X-ray gate the same way, its identity stage the bone patch
(:mod:`device.gate.xray_bone_patch`, templates of kind ``xray_bone_patch``, the signed numbers of
``models/binding_xray.json``); the run sets ``[liveness] sensor_identity = "when_enrolled"``
whatever the sensor's default (X-ray's is when_enrolled too).

Every decision's reason is kept. "Binding alone" is what the gate decides without the identity
stage: the identity stage is the last check before the access times, so a presentation it
denies would otherwise have opened. The identity stage's wall and CPU ms are the
presentation's ``stages_ms`` / ``stages_cpu_ms`` ``identity``. ``--choose FRR`` also prints
the genuine agreements' FRR quantile (the threshold's rule, for a re-choice on validation).

    python -m device.eval.sensor_identity_gate --seed 11 --people 40 --genuine 200 \\
        --mixed 100 --out gate_11.json
    python -m device.eval.sensor_identity_gate --seed 11 --sensor xray --variant sets \\
        --people 40 --genuine 200 --mixed 100 --out gate_11_xray_sets.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from device.eval.synthetic_gate import (ENROL_PRESENTATIONS, add_enrol_presentations,
                                        check_enrol_presentations)

MIXED = ("mixed_replica_views", "mixed_replica_sensor")
SETS = "sets"                  # the variant drawn per presentation, as the sets draw it


def variant_choices() -> tuple[str, ...]:
    from device.synth.mixed import VARIANTS
    return (SETS,) + VARIANTS


def species_for(variant: str) -> tuple[str, ...]:
    """The mixed species that have ``variant`` (``species`` only ``mixed_replica_sensor``)."""
    from device.synth.mixed import variants
    return tuple(sp for sp in MIXED if variant == SETS or variant in variants(sp))


def _mixed_burst(people, species: str, j: int, enrolled: list, variant: str = "other_hand"):
    from device.sources.replay import Burst
    from device.synth.mixed import VARIANTS, render_mixed
    n = len(enrolled)
    # other_hand keeps the stream it was measured with; other choices have their own
    key = [] if variant == "other_hand" else [1 + variant_choices().index(variant)]
    rng = np.random.default_rng([people.seed, 313, MIXED.index(species), j] + key)
    victim = enrolled[int(rng.integers(n))]
    other = int(rng.integers(2 * n - 1))
    other = other + 1 if other >= victim else other
    vg, vi = people._person(victim)
    og, oi = people._person(other)
    vt, ot = people.synth.palms(vi, 1, rng)[0], people.synth.palms(oi, 1, rng)[0]
    shot, meta = render_mixed(species, vg, vt, og, ot, rng, people.rig, people.sensor,
                              people.size, variant=None if variant == SETS else variant)
    assert meta["variant"] in VARIANTS
    frame = np.clip(np.round(shot.sensor * 255.0), 0, 255).astype(np.uint8)
    return Burst(shot.views, frame, {"burst": f"{species}-{j:03d}"}), victim, other, meta


def run(seed: int, people: int, genuine: int, mixed: int, precision: str = "int8",
        policy: str = "when_enrolled", log=None, sensor: str = "nir",
        variant: str = "other_hand", enrol_presentations: int = ENROL_PRESENTATIONS) -> dict:
    """Rows of every presentation (kind, variant, person the views claim, reason, user_id,
    sensor identity verdict and agreement, stage ms) and the enrolment's refusals. Each person
    is enrolled from ``enrol_presentations`` presentations."""
    from device.eval.synthetic_gate import enrol_people, synthetic_gate, user_id
    from device.synth.source import SyntheticPeople
    log = log or (lambda m: None)
    if variant not in variant_choices():
        raise ValueError(f"variant {variant!r} is not one of {variant_choices()}")
    synth = SyntheticPeople(seed=seed, views=3, sensor=sensor)
    rows = []
    t0 = time.time()
    with synthetic_gate(seed, 3, precision, sensor, policy=policy,
                        prefix="sensortpl-gate-") as (pipe, st):
        enrolled, refused = enrol_people(pipe, st, synth, range(people), log,
                                         presentations=enrol_presentations)
        plan = [("genuine", j) for j in range(genuine)] + \
            [(sp, j) for j in range(mixed) for sp in species_for(variant)]
        for n, (kind, j) in enumerate(plan):
            meta = {"variant": None}
            if kind == "genuine":
                who, other = enrolled[j % len(enrolled)], -1
                burst = synth.burst(who, "genuine", j // len(enrolled))
            else:
                burst, who, other, meta = _mixed_burst(synth, kind, j, enrolled, variant)
            d = pipe.decide(burst)
            rows.append({"kind": kind, "variant": meta["variant"],
                         **({"attack_species": meta["attack_species"]}
                            if "attack_species" in meta else {}),
                         "person": who, "other": other, "reason": d.reason,
                         "decision": d.decision, "user_id": d.user_id,
                         "claimed_person": user_id(who),
                         "sensor_identity": d.sensor_identity,
                         "agreement": None if d.sensor_identity_score is None
                         else float(d.sensor_identity_score),
                         "identity_ms": d.stages_ms.get("identity"),
                         "identity_cpu_ms": d.stages_cpu_ms.get("identity"),
                         "total_ms": d.total_ms, "total_cpu_ms": d.total_cpu_ms})
            if (n + 1) % 25 == 0:
                log(f"seed {seed}: {n + 1}/{len(plan)} {time.time() - t0:.0f} s")
    return {"rows": rows, "enrol_refused": refused, "enrolled": len(enrolled),
            "enrol_presentations": enrol_presentations,
            "sensor": sensor, "variant": variant, "species": list(species_for(variant))}


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
    mixed = [r for r in rows if r["kind"] in MIXED]
    for sp in MIXED:
        m = [r for r in mixed if r["kind"] == sp]
        if m or sp in res.get("species", MIXED):
            out[sp] = _mixed_counts(m)
    out["mixed"] = _mixed_counts(mixed)
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


def _mixed_counts(m: list, by_variant: bool = True) -> dict:
    """Mixed presentations ``m`` denied by the gate, without the identity stage (the binding
    and what comes before it) and by the identity stage; those that opened as the victim;
    the reasons; the same by variant (and by attack species within ``species``)."""
    out = {"denied": _rate(sum(r["decision"] != "open" for r in m), len(m)),
           "denied_without_identity": _rate(
               sum(r["decision"] != "open" and r["reason"] != "sensor_identity" for r in m),
               len(m)),
           "denied_sensor_identity": _rate(sum(r["reason"] == "sensor_identity" for r in m),
                                           len(m)),
           "opened_as_victim": sum(r["decision"] == "open" and
                                   r["user_id"] == r["claimed_person"] for r in m),
           "reasons": _reasons(m)}
    if by_variant:
        names = sorted({r.get("variant") for r in m if r.get("variant")})
        if len(names) > 1:
            out["variants"] = {v: _mixed_counts([r for r in m if r.get("variant") == v],
                                                False) for v in names}
        species = sorted({r["attack_species"] for r in m if r.get("attack_species")})
        if species:
            out["attack_species"] = {a: _mixed_counts(
                [r for r in m if r.get("attack_species") == a], False) for a in species}
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
    ap.add_argument("--sensor", choices=("nir", "xray"), default="nir")
    ap.add_argument("--variant", choices=variant_choices(), default="other_hand",
                    help="how the replica differs from the live hand; 'sets': drawn per "
                    "presentation as the whole-presentation sets draw it")
    ap.add_argument("--choose", type=float, default=None, metavar="FRR",
                    help="also print the genuine agreements' FRR quantile")
    add_enrol_presentations(ap)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    check_enrol_presentations(ap, a)
    res = run(a.seed, a.people, a.genuine, a.mixed, a.precision,
              log=lambda m: print(m, file=sys.stderr, flush=True), sensor=a.sensor,
              variant=a.variant, enrol_presentations=a.enrol_presentations)
    out = {"command": "python -m device.eval.sensor_identity_gate " +
           " ".join(sys.argv[1:] if argv is None else argv),
           "summary": summary(res, a.choose), **res}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
