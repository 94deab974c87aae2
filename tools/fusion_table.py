"""``python -m tools.fusion_table DIR``: the multi-view table of docs/results.md ("Several
views") -- ``palmgate evaluate DIR --views 3`` (the gate's feature and precision) with each way
of scoring a capture, on the same captures, degraded views drawn with several seeds and the
scores of the seeds pooled (one seed gives 360 genuine pairs on 40 palms: one miss = 0.28 %).

Rows: ``--fusion attention`` (the gate's), the same without the views aligned on the cell grid
first (ablation: ``align=False``, device/recognition/view_alignment.py), the same with the
classical half fused by the per-cell mean instead of the fusion's view weights (ablation:
``classical_fusion="mean"``),
``--fusion mean``, ``--pair-rule mean``, ``--pair-rule best`` (reference: 9 comparisons a
template); each with the gate's view check (default) and, for the fusion, without it
(``--no-view-check``). Conditions: 3 views with ``--degrade 2`` (seeds pooled), 3 clean views,
1 view. Rates: every comparison (a capture the gate denies -- fewer usable views than
``[gate] min_views`` -- counts as a false reject) and, beside it, ``acquired``: without the
denied captures' comparisons. Writes OUT/table.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

import numpy as np

ROWS = {  # name: evaluate keyword arguments
    "fusion attention": {"fusion": "attention"},
    "fusion attention, views not aligned": {"fusion": "attention", "_align": False},
    "fusion attention, classical half by the mean": {"fusion": "attention",
                                                     "_classical": "mean"},
    "fusion attention, no view check": {"fusion": "attention", "view_check": False},
    "fusion attention, classical half by the mean, no view check": {
        "fusion": "attention", "view_check": False, "_classical": "mean"},
    "fusion mean": {"fusion": "mean"},
    "fusion mean, no view check": {"fusion": "mean", "view_check": False},
    "pair rule mean (9 scores)": {"pair_rule": "mean"},
    "pair rule best (9 scores, reference)": {"pair_rule": "best"},
}


def _scores(root, kw: dict, views: int, degrade: int, seed: int, precision: str, config,
            threads: int, out: Path):
    """(genuine, impostor, genuine kept, impostor kept, report) of one evaluate run."""
    from device.eval.recognition import DENIED_SCORE, evaluate
    from device.recognition import hybrid
    kw = dict(kw)
    # the ablations: HybridExtractor arguments (the earlier classical-half fusion, no alignment)
    feature = {name: kw.pop(key) for key, name in (("_classical", "classical_fusion"),
                                                   ("_align", "align")) if key in kw}
    init = hybrid.HybridExtractor.__init__
    if feature:
        def patched(self, *a, **k):
            for name, value in feature.items():
                k.setdefault(name, value)
            init(self, *a, **k)
        hybrid.HybridExtractor.__init__ = patched
    try:
        rep = evaluate(root, views=views, precision=precision, degrade=degrade, seed=seed,
                       config=config, threads=threads, out=out, **kw)
    finally:
        hybrid.HybridExtractor.__init__ = init
    z = np.load(out / "scores.npz")
    g, i = z["genuine"], z["impostor"]
    return g, i, g[g > DENIED_SCORE], i[i > DENIED_SCORE], rep


def _rates(g, i) -> dict:
    from device.eval.metrics import verification_summary
    s = verification_summary(g, i)
    return {"eer": s["eer"], "frr_1e-4": s["frr"]["1e-4"], "n_genuine": int(len(g)),
            "n_impostor": int(len(i))}


def table(root, seeds=(0, 1, 2, 3, 4), precision: str = "int8", config=None,
          threads: int = 1, work: Path = Path("/tmp/fusion_table"), rows=ROWS,
          log=print) -> dict:
    out = {}
    conds = {"3 views, 2 degraded": (3, 2, seeds), "3 views clean": (3, 0, (0,)),
             "1 view": (1, 0, (0,))}
    for cond, (views, degrade, sd) in conds.items():
        for name, kw in rows.items():
            if views == 1 and name != "fusion attention":
                continue
            if degrade == 0 and "view check" in name:
                continue
            parts, reps = [], []
            t = time.time()
            for s in sd:
                d = work / f"{views}v{degrade}d_s{s}_{zlib.crc32(name.encode()):08x}"
                *p, rep = _scores(root, kw, views, degrade, s, precision, config, threads, d)
                parts.append(p)
                reps.append({k: rep.get(k) for k in ("view_check", "degradations")})
            g, i, gk, ik = (np.concatenate([p[k] for p in parts]) for k in range(4))
            out.setdefault(cond, {})[name] = {
                "all": _rates(g, i), "acquired": _rates(gk, ik), "seeds": list(sd),
                "denied_genuine_pairs": int(len(g) - len(gk)), "runs": reps}
            r = out[cond][name]
            log(f"{cond} | {name}: EER {r['all']['eer']:.3%} FRR@1e-4 "
                f"{r['all']['frr_1e-4']:.2%} | acquired {r['acquired']['eer']:.3%} "
                f"{r['acquired']['frr_1e-4']:.2%} ({time.time() - t:.0f}s)")
    return out


def markdown(t: dict) -> str:
    lines = ["| condition | rule | EER | FRR @ FAR 1e-4 | acquired: EER | acquired: FRR 1e-4 "
             "| genuine / impostor pairs | genuine pairs denied |",
             "|---|---|---|---|---|---|---|---|"]
    for cond, rows in t.items():
        for name, r in rows.items():
            a, q = r["all"], r["acquired"]
            lines.append(f"| {cond} | {name} | {a['eer']:.3%} | {a['frr_1e-4']:.2%} | "
                         f"{q['eer']:.3%} | {q['frr_1e-4']:.2%} | {a['n_genuine']:,} / "
                         f"{a['n_impostor']:,} | {r['denied_genuine_pairs']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fusion_table", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="degradation seeds, pooled")
    ap.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    ap.add_argument("--config", default=None, help="gate configuration ([quality], [gate] "
                                                   "min_views); default: the defaults")
    ap.add_argument("--rows", default=None, help="row names separated by ; (default all)")
    ap.add_argument("--out", default="/tmp/fusion_table")
    a = ap.parse_args(argv)
    rows = ROWS if not a.rows else {k: ROWS[k] for k in a.rows.split(";")}
    out = Path(a.out)
    t = table(a.dir, tuple(int(s) for s in a.seeds.split(",")), a.precision, a.config,
              work=out, rows=rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(t, indent=1))
    print(markdown(t))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
