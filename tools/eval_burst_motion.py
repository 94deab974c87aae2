"""Measure a motion-blur burst rule (not shipped: docs/results.md, "Motion blur over the
burst") on presentation bursts.

    python -m tools.eval_burst_motion SET --sensor nir|xray [--limit N] [--bins 4-10,10-20]
                                      [--variants alike,independent] [--still-only]
                                      [--seed 1] [--threads 1] --out OUT.json

For the first ``--limit`` bona fide presentations of a synthetic presentation set (folder
order): the gate's quality and palm-region stages (``Pipeline._quality``, ``calibrate``, the
front end of every view, ``usable_rois``, ``[gate] min_views``) on the views as rendered
("still") and smeared (:func:`tools.eval_motion_blur.motion_blur` on the raw views, before the
quality stage). Per presentation, ``numpy.random.default_rng(seed)`` consumed in folder order:
per bin a length ``L ~ U(bin)`` px and an angle ``theta ~ U(0, pi)``; variant ``alike``: every
view smeared by (L, theta); ``independent``: each view by its own ``theta_k ~ U(0, pi)``, the
same L. The front end runs once per view; the stage outcome is then read under today's gate
(the motion_blur views refused) and under the rule with each floor of ``FLOORS`` (the kept
view's isotropy at least the floor). The rule (:func:`keep_still_views`): the cameras expose
together, so a moving hand smears every view; a view the front end refused only for
``motion_blur`` (the front end carries its regions and isotropy on the issue) is kept when
another view of the burst gave usable regions. Writes per presentation and condition the views'
outcomes (reason or ok, isotropy where the regions were found, usable) and the stage reason
(None: the presentation goes on to the feature / sensor stages), and a summary: per condition
the count refused ``quality:motion_blur`` and refused at all, today and per floor.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from device.vision.motion_blur import motion_blur_measure
from device.vision.view_usability import usable_rois, usable_views
from tools.eval_motion_blur import motion_blur

def blurred_regions(issue):
    """The regions of a view refused only for ``motion_blur`` (None otherwise)."""
    if issue is None or getattr(issue, "reason", None) != "motion_blur":
        return None
    return getattr(issue, "regions", None)


def keep_still_views(results, usable, floor: float = 0.0) -> list:
    """``results``: one (regions | None, issue | None) per view, as the front end gave them;
    ``usable(regions)``: whether a view that gave regions is usable. Returns the list with
    each ``motion_blur`` view whose isotropy is at least ``floor`` turned into (its regions,
    None) when some other view gave usable regions; unchanged otherwise."""
    results = list(results)
    if not any(r is not None and usable(r) for r, _ in results):
        return results
    out = []
    for r, e in results:
        kept = blurred_regions(e) if r is None else None
        if kept is not None and float(getattr(e, "isotropy", 0.0)) >= floor:
            out.append((kept, None))
        else:
            out.append((r, e))
    return out


FLOORS = tuple(round(0.01 * k, 2) for k in range(26))
TODAY = "today"


def smear_plan(rng, bins, variants, views: int) -> dict:
    """{condition: [(length, angle) per view]} for one presentation (rng consumed in order)."""
    plan = {"still": [(0.0, 0.0)] * views}
    for lo, hi in bins:
        length, angle = rng.uniform(lo, hi), rng.uniform(0, math.pi)
        own = [rng.uniform(0, math.pi) for _ in range(views)]
        for v in variants:
            ang = [angle] * views if v == "alike" else own
            plan[f"{lo:g}-{hi:g}/{v}"] = [(length, a) for a in ang]
    return plan


def stage_reason(res, q, min_views: int):
    """The regions stage's deny reason of front-end results ``res`` (None: enough views), as
    ``Pipeline._regions`` decides it."""
    rois = [r.roi for r, _ in res if r is not None]
    issues = [e for _, e in res if e is not None]
    rois, issues = usable_rois(rois, issues, q)
    if len(rois) >= min_views:
        return None
    return f"quality:{issues[0].reason if issues else 'few_views'}"


def view_record(image, reg, issue, q) -> dict:
    from device.vision.segmentation import to_grey
    if reg is not None:
        return {"outcome": "ok", "isotropy": round(motion_blur_measure(
            to_grey(image), reg.roi_corners), 4), "usable": not usable_views([reg.roi], q)[1]}
    rec = {"outcome": issue.reason}
    if getattr(issue, "regions", None) is not None:
        rec.update(isotropy=round(float(issue.isotropy), 4),
                   usable=not usable_views([issue.regions.roi], q)[1])
    return rec


def judge(pipe, burst, plan) -> dict:
    """{condition: {"views": [...], "reason": {today|floor: reason}}} of one burst."""
    from device.gate.decision import Decision, Deny
    cfg, out = pipe.cfg, {}
    for cond, smears in plan.items():
        views = [motion_blur(v, L, a) if L > 0 else v for v, (L, a) in zip(burst.views, smears)]
        b = replace(burst, views=views)
        try:
            ok = pipe._quality(b, Decision())
        except Deny as d:
            out[cond] = {"views": [], "reason": {k: d.reason for k in (TODAY,) + FLOORS}}
            continue
        b = pipe.calibrate(b, ok)
        res = [pipe._one_region(b.views[k]) for k in ok]
        reasons = {TODAY: stage_reason(res, cfg.quality, cfg.gate.min_views)}

        def usable(reg):
            return not usable_views([reg.roi], cfg.quality)[1]
        for f in FLOORS:
            kept = keep_still_views(res, usable, floor=f)
            reasons[f] = stage_reason(kept, cfg.quality, cfg.gate.min_views)
        out[cond] = {"views": [view_record(b.views[k], r, e, cfg.quality)
                               for k, (r, e) in zip(ok, res)], "reason": reasons}
    return out


def summarise(rows: list) -> dict:
    conds = list(rows[0]["conditions"]) if rows else []
    summ = {}
    for c in conds:
        s = {"n": len(rows)}
        for k in (TODAY,) + FLOORS:
            rs = [r["conditions"][c]["reason"][k] for r in rows]
            s[str(k)] = {"motion_blur": sum(x == "quality:motion_blur" for x in rs),
                         "refused": sum(x is not None for x in rs)}
        summ[c] = s
    return summ


def evaluate(set_dir, sensor: str, limit: int | None, bins, variants, seed: int,
             threads: int = 1, progress=None) -> dict:
    from device.eval.liveness_enrol import set_plan
    from device.eval.liveness_presentations import (PresentationStages, read_rig,
                                                    stage_config)
    from device.sources.replay import read_burst
    info, plan = set_plan(set_dir, classes=["bona_fide"], per_class=limit, sensor=sensor)
    cfg = stage_config(sensor, "int8", threads=threads, rig=read_rig(set_dir))
    pipe = PresentationStages(cfg).pipe
    rng = np.random.default_rng(seed)
    rows = []
    try:
        for i, (_, folder) in enumerate(plan):
            burst = read_burst(folder)
            conds = smear_plan(rng, bins, variants, len(burst.views))
            rows.append({"folder": str(folder), "conditions": judge(pipe, burst, conds)})
            if progress and (i + 1) % 25 == 0:
                progress(f"{i + 1}/{len(plan)}")
    finally:
        pipe.close()
    return {"set": str(set_dir), "sensor": sensor, "seed": seed, "bins": bins,
            "variants": variants, "min_views": cfg.gate.min_views,
            "min_gradient_isotropy": cfg.quality.min_gradient_isotropy,
            "summary": summarise(rows), "rows": rows}


def _bins(s: str):
    return [tuple(float(x) for x in b.split("-")) for b in s.split(",") if b] if s else []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.eval_burst_motion", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set")
    ap.add_argument("--sensor", required=True, choices=("nir", "xray"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--bins", default="4-10,10-20")
    ap.add_argument("--variants", default="alike,independent")
    ap.add_argument("--still-only", action="store_true", help="no smeared conditions")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    bins = [] if a.still_only else _bins(a.bins)
    rep = evaluate(a.set, a.sensor, a.limit, bins, a.variants.split(","), a.seed, a.threads,
                   progress=lambda m: print(m, file=sys.stderr, flush=True))
    Path(a.out).write_text(json.dumps(rep, indent=1, default=str))
    print(json.dumps(rep["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
