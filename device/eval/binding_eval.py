"""Sensor binding measured on synthetic presentations (docs/sensor-branch.md, "Binding").

Bona fide: the views and sensor frame of one live hand (:func:`device.synth.bound.render_bound`:
pose, depth and tilt drawn per presentation), the registration the gate uses perturbed by a
factory registration error (a similarity in the sensor frame: shift ``REG_SHIFT_PX``, rotation
``REG_ROT_DEG``, scale ``REG_SCALE``, normal draws). Attacks: the mixed species of
:mod:`device.synth.mixed`. Every view goes through the gate's front end (landmarks, segmentation
fallback) first, as at the gate, and a presentation with fewer than ``[gate] min_views`` usable
views is a failure to acquire, counted apart; the binding itself compares the hand segmentation
network's masks of the views with the sensor frame's hand. Optionally the shipped liveness model scores each sensor frame, so the
sensor stage's decision (liveness, then binding) is reported too.

    python -m device.eval.binding_eval --sensor nir --seed 101 --bona-fide 300 --mixed 300 \
        --out val.json
    python -m device.eval.binding_eval --sensor nir --seed 202 ... --threshold 0.03 --out test.json

Seeds of the landmark binding (issue 21, part 2, second round): the probes' bona fide
statistics are fitted on seed 5, thresholds and every other choice are made on seed 11, and
seed 5151 is the held-out seed, fixed here before any presentation of it was rendered (seed 202,
the first round's held-out seed, has been looked at).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

REG_SHIFT_PX = 1.0
REG_ROT_DEG = 0.75
REG_SCALE = 0.01


def perturbed(H: list, rng: np.random.Generator, sensor_hw: tuple[int, int]) -> list:
    """``H`` (sensor -> view) after a random registration error in the sensor frame."""
    h, w = sensor_hw
    a = np.deg2rad(rng.normal(0, REG_ROT_DEG))
    s = 1.0 + rng.normal(0, REG_SCALE)
    t = rng.normal(0, REG_SHIFT_PX, 2)
    c = np.array([w / 2, h / 2])
    R = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    E = np.eye(3)
    E[:2, :2] = R
    E[:2, 2] = c - R @ c + t
    return [Hk @ E for Hk in H]


def evaluate(sensor: str, seed: int, n_bona_fide: int, n_mixed: int, people: int = 40,
             views: int = 3, liveness: bool = False, log=None) -> list[dict]:
    """One row per presentation: kind, species, variant, views used, binding score (None
    when the views gave too few hands), p(live) (with ``liveness``)."""
    from device.config import load_config
    from device.gate.front_end_stage import front_end_from_config
    from device.gate.sensor_binding import HomographyRegistration, measure
    from device.vision.quality import QualityIssue
    from device.synth.bound import (render_bound, sensor_size, synthetic_cameras,
                                    synthetic_registration)
    from device.synth.mixed import MIXED_SPECIES, render_mixed
    from device.synth.source import SyntheticPeople
    cfg = load_config(None, gate={"views": views}, liveness={"sensor": sensor})
    fe, _, _ = front_end_from_config(cfg)
    branch = None
    if liveness:
        from device.models.model import DEFAULT_MODELS_DIR
        from device.models.sensor_branch import SensorBranch
        branch = SensorBranch(sensor, "fp32", DEFAULT_MODELS_DIR, threads=1)
    synth = SyntheticPeople(seed=seed, views=views, sensor=sensor)
    H, view_hw = synthetic_registration(seed, views, sensor)
    Ks = synthetic_cameras(seed, views, view_hw)
    sh = sensor_size(sensor)
    rows = []
    t0 = time.time()
    total = n_bona_fide + n_mixed
    for j in range(total):
        rng = np.random.default_rng([seed, 77, j])
        i = int(rng.integers(people))
        geom, ident = synth._person(i)
        tex = synth.synth.palms(ident, 1, rng)[0]
        if j < n_bona_fide:
            shot = render_bound(geom, tex, rng, synth.rig, sensor, view_hw)
            row = {"kind": "bona_fide", "species": "bona_fide", "variant": ""}
        else:
            i2 = (i + 1 + int(rng.integers(people - 1))) % people
            g2, id2 = synth._person(i2)
            tex2 = synth.synth.palms(id2, 1, rng)[0]
            sp = MIXED_SPECIES[j % len(MIXED_SPECIES)]
            shot, meta = render_mixed(sp, geom, tex, g2, tex2, rng, synth.rig, sensor, view_hw)
            row = {"kind": "attack", "species": sp, "variant": meta["variant"]}
        frame = np.clip(np.round(shot.sensor * 255.0), 0, 255).astype(np.uint8)
        ok, lms = [], {}
        for k, v in enumerate(shot.views):
            try:
                r = fe(v)
                ok.append(k)
                if r.landmarks is not None:
                    lms[k] = r.landmarks[:, :2]
            except QualityIssue:
                pass
        row["views_used"] = len(ok)
        row["views_landmarks"] = len(lms)
        vs = (view_hw[1], view_hw[0])
        fs = (frame.shape[1], frame.shape[0])
        reg = HomographyRegistration(perturbed(H, rng, sh), vs, (sh[1], sh[0]), Ks)
        row["probes"] = None
        if len(ok) >= cfg.gate.min_views:
            t1 = time.thread_time()
            m = measure(frame, {k: reg.to_sensor(p, k, vs, fs) for k, p in lms.items()},
                        {k: reg.centre(k, vs, fs) for k in lms}, sensor)
            row["cpu_ms"] = round((time.thread_time() - t1) * 1e3, 2)
            if m is not None:
                row["probes"] = [None if not np.isfinite(x) else round(float(x), 2)
                                 for x in m.values]
                row["height_mm"] = round(m.height_mm, 2)
        row["score"] = None if len(ok) < cfg.gate.min_views else 1e9
        if branch is not None:
            row["p_live"] = round(float(branch(frame).p_live), 5)
        rows.append(row)
        if log and (j + 1) % 50 == 0:
            log(f"{j + 1}/{total} {time.time() - t0:.0f} s")
    return rows


def summarise(rows: list[dict], threshold: float, liveness_threshold: float | None = None
              ) -> dict:
    """BPCER of binding (bona fide over the distance threshold) and the share of each attack species
    and variant denied by binding (and by the sensor stage, with p(live))."""
    def rate(sel, deny):
        n = len(sel)
        k = sum(1 for r in sel if deny(r))
        return {"n": n, "denied": k, "rate": round(k / n, 5) if n else None}
    scored = [r for r in rows if r["score"] is not None]
    bf = [r for r in scored if r["kind"] == "bona_fide"]
    at = [r for r in scored if r["kind"] == "attack"]
    out = {"threshold": threshold,
           "fta": {"bona_fide": sum(1 for r in rows if r["kind"] == "bona_fide"
                                    and r["score"] is None),
                   "attack": sum(1 for r in rows if r["kind"] == "attack"
                                 and r["score"] is None)},
           "bona_fide_denied_by_binding": rate(bf, lambda r: r["score"] > threshold),
           "attacks_denied_by_binding": rate(at, lambda r: r["score"] > threshold),
           "by_species": {}}
    for sp in sorted({r["species"] for r in at}):
        sel = [r for r in at if r["species"] == sp]
        out["by_species"][sp] = {"all": rate(sel, lambda r: r["score"] > threshold)}
        for v in sorted({r["variant"] for r in sel}):
            out["by_species"][sp][v] = rate([r for r in sel if r["variant"] == v],
                                            lambda r: r["score"] > threshold)
    if liveness_threshold is not None and all("p_live" in r for r in scored):
        lt = liveness_threshold

        def stage(r):
            return r["p_live"] <= lt or r["score"] > threshold
        out["liveness_threshold"] = lt
        out["bona_fide_denied_by_sensor_stage"] = rate(bf, stage)
        out["attacks_denied_by_liveness_alone"] = rate(at, lambda r: r["p_live"] <= lt)
        out["attacks_denied_by_sensor_stage"] = rate(at, stage)
    s = sorted(r["score"] for r in bf)
    if s:
        out["bona_fide_score_quantiles"] = {q: round(float(np.quantile(s, q)), 4)
                                            for q in (0.5, 0.95, 0.99, 0.995, 1.0)}
    a = sorted(r["score"] for r in at)
    if a:
        out["attack_score_quantiles"] = {q: round(float(np.quantile(a, q)), 4)
                                         for q in (0.0, 0.005, 0.01, 0.05, 0.5)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sensor", choices=("nir", "xray"), default="nir")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--bona-fide", type=int, default=300)
    ap.add_argument("--mixed", type=int, default=300)
    ap.add_argument("--people", type=int, default=40)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--liveness", action="store_true", help="also score p(live), fp32")
    ap.add_argument("--threshold", type=float, default=None,
                    help="binding threshold to report at (default: the configured one)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    t0 = time.time()
    rows = evaluate(a.sensor, a.seed, a.bona_fide, a.mixed, a.people, a.views, a.liveness,
                    log=lambda m: print(m, file=sys.stderr, flush=True))
    if a.threshold is None:
        from device.config import load_config
        a.threshold = load_config(None).liveness.binding_max_distance
    lt = None
    if a.liveness:
        from device.models.model import DEFAULT_MODELS_DIR
        from device.models.sensor_branch import SensorBranch
        lt = SensorBranch(a.sensor, "fp32", DEFAULT_MODELS_DIR, threads=1).threshold
    summary = summarise(rows, a.threshold, lt)
    summary.update(sensor=a.sensor, seed=a.seed, seconds=round(time.time() - t0, 1),
                   command="python -m device.eval.binding_eval " + " ".join(sys.argv[1:]
                                                                            if argv is None
                                                                            else argv))
    with open(a.out, "w") as f:
        json.dump({"summary": summary, "rows": rows}, f, indent=1)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
