"""The look-alike lists' prefilter measured (:mod:`device.gate.bone_prefilter`): on galleries
written by ``python -m device.eval.lookalike_upkeep --keep`` (the enrolled X-ray bone
templates and the lists enrolment made), every pair's 16-cell and 32-cell similarity; the
thresholds chosen on one gallery (the lowest over its listed pairs, less a margin) and, on
every gallery, which listed pairs they would stop, the share of all pairs they pass, and the
cascade's cost against the gate's full comparison (median a pair, this process, one thread).
The turned third stage is computed only for the listed pairs and those the first two pass.

    python -m device.eval.lookalike_prefilter --choose keep_11.json --check keep_9403.json \\
        --out prefilter.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np


def load(path: str) -> tuple[dict, dict]:
    """({user: [patch]}, {frozenset pair: S}) of a ``--keep`` file."""
    from device.gate.lookalike_lists import patches
    d = json.load(open(path))
    pats = {u: patches([bytes.fromhex(h) for h in hs]) for u, hs in d["templates"].items()}
    pairs = {frozenset((u, v)): s for u, e in d["lists"].items() for v, s in e.items()}
    return pats, pairs


def comparer():
    """The gate's X-ray comparison with the signed numbers (as the identity stage's
    ``compare``)."""
    from device.gate import sensor_identity as S
    from device.gate.binding_numbers import load_binding_numbers
    from device.gate.sensor_identity_stage import refine_turns
    n = S.identity_numbers(load_binding_numbers("xray").doc)
    refine = refine_turns("xray", n)
    return lambda t, p: S.best_agreement(t, p, n["shift_mm"], refine=refine)


def measure(path: str, full_sample: int = 40) -> dict:
    """Every pair's first two similarities and their costs on one gallery (the third, turned
    stage only where :func:`third` is asked for it)."""
    from device.gate import bone_prefilter as BP
    from device.gate.lookalikes import pair_agreement
    pats, listed = load(path)
    ids = sorted(pats)
    t0 = time.process_time()
    desc = {u: BP.describe(pats[u]) for u in ids}
    describe_ms = (time.process_time() - t0) / len(ids) * 1e3
    rows, c16, c32 = [], [], []
    s16_, s32_ = BP.STAGES[0], BP.STAGES[1]
    for i, u in enumerate(ids):
        for v in ids[i + 1:]:
            t = time.process_time()
            s16 = BP.stage_similarity(desc[u], desc[v], s16_)
            t1 = time.process_time()
            s32 = BP.stage_similarity(desc[u], desc[v], s32_)
            t2 = time.process_time()
            c16.append(t1 - t)
            c32.append(t2 - t1)
            rows.append([u, v, s16, s32, listed.get(frozenset((u, v))), None])
    agree = comparer()
    rng = np.random.default_rng(0)
    full = []
    for k in rng.choice(len(rows), min(full_sample, len(rows)), replace=False):
        u, v = rows[int(k)][:2]
        t = time.process_time()
        pair_agreement(pats[u], pats[v], agree)
        full.append(time.process_time() - t)
    return {"path": path, "people": len(ids), "pairs": len(rows), "rows": rows, "desc": desc,
            "c32t": [],
            "ms": {"describe_person": round(describe_ms, 3),
                   "grid16": round(float(np.median(c16)) * 1e3, 4),
                   "grid32s": round(float(np.median(c32)) * 1e3, 4),
                   "full": round(float(np.median(full)) * 1e3, 2)}}


def third(m: dict, rows: list) -> None:
    """The turned stage's similarity of ``rows`` (computed once a row)."""
    from device.gate import bone_prefilter as BP
    for r in rows:
        if r[5] is None:
            t = time.process_time()
            r[5] = BP.stage_similarity(m["desc"][r[0]], m["desc"][r[1]], BP.STAGES[2])
            m["c32t"].append(time.process_time() - t)
    if m["c32t"]:
        m["ms"]["grid32st"] = round(float(np.median(m["c32t"])) * 1e3, 4)


def _lowest(rows, k, margin, what):
    vals = [r[k] for r in rows if math.isfinite(r[k])]
    if not vals:
        raise SystemExit(f"no listed pair to choose {what} on")
    return round(min(vals) - margin, 4)


def choose(m: dict, margin: float, floor: float = 0.75) -> dict:
    """The lowest similarity of each stage over the listed pairs (S >= ``floor``), less
    ``margin`` (a NaN similarity passes, so it sets nothing)."""
    listed = [r for r in m["rows"] if r[4] is not None and r[4] >= floor]
    third(m, listed)
    return {"grid16": _lowest(listed, 2, margin, "grid16"),
            "grid32s": _lowest(listed, 3, margin, "grid32s"),
            "grid32st": _lowest(listed, 5, margin, "grid32st")}


def check(m: dict, numbers: dict, check_at: float = 0.80, floor: float = 0.75) -> dict:
    """What ``numbers`` do on one gallery: the listed pairs stopped, the shares passed, the
    cascade's cost a pair."""
    def ok(r, k, name):
        return not r[k] < numbers[name]
    rows = m["rows"]
    listed = [r for r in rows if r[4] is not None and r[4] >= floor]
    two = [r for r in rows if ok(r, 2, "grid16") and ok(r, 3, "grid32s")]
    third(m, two + listed)
    p16 = sum(1 for r in rows if ok(r, 2, "grid16")) / len(rows)
    p2 = len(two) / len(rows)
    allp = sum(1 for r in two if ok(r, 5, "grid32st")) / len(rows)
    lost = [r for r in listed if not (ok(r, 2, "grid16") and ok(r, 3, "grid32s")
                                      and ok(r, 5, "grid32st"))]
    ms = m["ms"]
    cascade = ms["grid16"] + p16 * ms["grid32s"] + p2 * ms.get("grid32st", 0.0)

    def show(r):
        return [r[0], r[1], r[4], *(round(x, 4) for x in (r[2], r[3], r[5]))]
    return {"listed_pairs": len(listed),
            "listed_pairs_at_check": sum(1 for r in listed if r[4] >= check_at),
            "stopped_at_check": [show(r) for r in lost if r[4] >= check_at],
            "stopped_under_check": [show(r) for r in lost if r[4] < check_at],
            "pass_grid16": round(p16, 4), "pass_two": round(p2, 4), "pass_all": round(allp, 4),
            "cascade_ms_a_pair": round(cascade, 4), "full_ms_a_pair": ms["full"],
            "cost_ratio": round(cascade / ms["full"], 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.lookalike_prefilter",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--choose", required=True, help="the gallery the thresholds are chosen on")
    ap.add_argument("--check", nargs="*", default=[], help="galleries they are checked on")
    ap.add_argument("--numbers", default=None, help="JSON: check these numbers instead of "
                    "choosing (--choose is then only checked)")
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--choose-at", type=float, default=0.75,
                    help="the thresholds keep the listed pairs from this S (default: the "
                         "lists' floor)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    ms = {p: measure(p) for p in [a.choose, *a.check]}
    numbers = json.loads(a.numbers) if a.numbers else choose(ms[a.choose], a.margin,
                                                             a.choose_at)
    res = {"chosen_on": a.choose, "margin": a.margin, "chosen_at": a.choose_at,
           "numbers": numbers,
           "galleries": {p: {"people": m["people"], "pairs": m["pairs"],
                             **check(m, numbers), "ms": m["ms"]} for p, m in ms.items()}}
    with open(a.out, "w") as f:
        json.dump({**res, "rows": {p: m["rows"] for p, m in ms.items()}}, f, default=float)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
