"""Sensor bursts: are the live hands the sensor stage denies denied for the frame or for the
content? (docs/results.md, "Sensor bursts: frame or content").

A presentation of a whole-presentation set (``tools.synth liveness --presentations``) is
re-rendered from its own generator (:func:`device.synth.presentation_sets.render_presentation`)
with the sensor frame drawn as a burst (:func:`device.synth.sensor.render_burst`): frame 0 is
the stored frame (checked: it must equal ``sensor.png``), frames 1..k redraw only the frame --
exposure, response noise, degradation -- of the same content (hand, pose, placement, anatomy;
the views unchanged). Every frame goes through the gate's sensor checks as
:mod:`device.eval.check_margins` computes them (presence, SR + p(live), the binding, the
identity agreement, lines sum, hand size; the views' landmarks from the stored views)::

    python -m device.eval.sensor_bursts SET --margins MARGINS.json --k 4 --bona-fide-sample 300 \
        --precision int8 --out bursts.json

``--margins`` (check_margins' rows of the same set, frame 0) picks the presentations: every bona
fide a check denies, a sample of bona fide that pass all (every n-th, in order), every attack
that fails at most one check (:func:`pick`). Every frame is decided as the gate decides
(:func:`device.eval.check_margins.passes`: its checks and the X-ray release of the binding's
size term).
``--summarize OUT.json`` recomputes the summary of an earlier output. :func:`burst_summary`,
:func:`burst_rules` and :func:`fused` are pure.

Burst rules evaluated (fixed before their result was looked at; shipped thresholds unchanged):

* ``mean_logit_3``: p(live) = sigmoid(mean of the logits of p(live) over frames 0-2); every
  other check on frame 0 (a frame without p(live) -- presence failed -- makes it undefined:
  denied);
* ``median_3``: every check's value the median over frames 0-2 (presence: frame 0).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from device.eval.burst_frames import presentation_frames
from device.eval.check_margins import passes, thresholds_in_force
from device.eval.joint_thresholds import logit
from device.gate.second_look import fused_p

VALUES = ("p_live", "binding", "agreement", "palm_lines", "lines_sum", "size_off")


def pick(rows: list, th: dict, bona_fide_sample: int) -> list:
    """Rows of ``rows`` (check_margins, frame 0) to burst, every check as the gate decides it
    (:func:`device.eval.check_margins.passes`, the X-ray size term released): bona fide a check
    denies, every n-th bona fide that passes all (``bona_fide_sample`` of them), attacks
    failing <= 1 check."""
    out, ok = [], []
    for r in rows:
        if r["class"] == "bona_fide":
            (ok if all(passes(r, th).values()) else out).append(r)
        elif sum(not v for v in passes(r, th).values()) <= 1:
            out.append(r)
    step = max(1, len(ok) // max(bona_fide_sample, 1))
    return out + ok[::step][:bona_fide_sample]


def burst_summary(rows: list, th: dict) -> dict:
    """Per class (bona fide split by frame 0's outcome): how many of the extra frames pass all
    checks (a histogram over presentations; ``denied_on_redraws``: denied on most of the k
    re-draws -- the content -- on half, or on few -- the frame), and for every value the spread
    within a presentation (the median over presentations of the sd over its frames, and the
    root mean within-variance; p(live) as a logit, p clipped to [1e-6, 1 - 1e-6]) against
    across presentations (sd of the presentations' frame means)."""
    groups: dict = {}
    for r in rows:
        f0 = all(passes(r["frames"][0], th).values())
        key = r["class"] if r["class"] != "bona_fide" else \
            ("bona_fide_passed" if f0 else "bona_fide_denied")
        groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in groups.items():
        extra = [sum(all(passes(f, th).values()) for f in r["frames"][1:]) for r in rs]
        k = len(rs[0]["frames"]) - 1
        g = {"n": len(rs), "extra_frames_passing_all": {str(j): extra.count(j)
                                                       for j in range(k + 1)},
             "spread": {}}
        for v in VALUES:
            per = []
            for r in rs:
                x = [f.get(v) for f in r["frames"]]
                if all(y is not None and np.isfinite(y) for y in x):
                    per.append(logit(x) if v == "p_live" else np.asarray(x, float))
            if len(per) >= 2:
                per = np.array(per)
                g["spread"][v] = {"within_sd_median": round(float(np.median(per.std(1))), 4),
                                  "within_sd_rms": round(float(np.sqrt(np.mean(
                                      per.var(1, ddof=1)))), 4),
                                  "across_sd": round(float(per.mean(1).std(ddof=1)), 4)}
        den = [k - e for e in extra]
        g["denied_on_redraws"] = {"most": sum(2 * d > k for d in den),
                                  "half": sum(2 * d == k for d in den),
                                  "few": sum(2 * d < k for d in den)}
        if key == "bona_fide_denied":
            g["per_presentation"] = [_one(r, th, e) for r, e in zip(rs, extra)]
        out[key] = g
    return out


CHECK_VALUE = {"presence": "presence", "live": "p_live", "binding": "binding",
               "palm_lines": "palm_lines", "identity": "agreement", "lines_sum": "lines_sum",
               "size": "size_off"}


def _one(r: dict, th: dict, extra: int) -> dict:
    """A denied presentation: the checks frame 0 fails and their value in every frame."""
    failed = [c for c, ok in passes(r["frames"][0], th).items() if not ok]
    vals = {}
    for c in failed:
        v = [f.get(CHECK_VALUE[c]) for f in r["frames"]]
        vals[c] = [round(float(x), 3) if isinstance(x, (int, float)) else x for x in v]
    return {"folder": r["folder"][-20:], "denied_by_f0": failed, "values": vals,
            "extra_passing": extra}


def fused(frames: list, rule: str, n: int = 3) -> dict:
    """One row of check values from the first ``n`` frames under ``rule``."""
    fs = frames[:n]
    r = dict(frames[0])
    if rule == "mean_logit_3":              # the gate's second look fuses by the same rule
        r["p_live"] = fused_p([f["p_live"] for f in fs])
    elif rule == "median_3":
        for v in VALUES:
            x = [f.get(v) for f in fs]
            if all(y is not None and np.isfinite(y) for y in x):
                r[v] = float(np.median(x))
        w = [f["binding"] - f["size"] if f.get("size") is not None else None for f in fs]
        if all(y is not None and np.isfinite(y) for y in w):
            r["binding_wo_size"] = float(np.median(w))
    elif rule != "single":
        raise ValueError(f"unknown rule {rule!r}")
    return r


def burst_rules(rows: list, th: dict, rules=("single", "mean_logit_3", "median_3")) -> dict:
    """Per rule and class: how many presentations pass all checks (bona fide: denied)."""
    out = {}
    for rule in rules:
        res: dict = {}
        for r in rows:
            ok = all(passes(fused(r["frames"], rule), th).values())
            c = res.setdefault(r["class"], {"n": 0, "pass_all": 0})
            c["n"] += 1
            c["pass_all"] += ok
        for c in res.values():
            c["denied"] = c["n"] - c["pass_all"]
        out[rule] = res
    return out


def measure(data_dir, margins, k: int = 4, bona_fide_sample: int = 300,
            precision: str = "int8", keep_exposure: bool = False, limit: int | None = None,
            log=print) -> dict:
    """Bursts of the picked presentations of ``data_dir`` and every frame's check values."""
    import torch
    torch.set_num_threads(1)
    from device.eval.check_margins import burst_terms
    from device.eval.liveness_enrol import read_set
    from device.eval.synthetic_gate import enrolled_gate
    from device.sources.replay import Burst, read_burst
    from device.synth.source import SyntheticPeople

    info = read_set(data_dir)
    man = json.loads((Path(data_dir) / "manifest.json").read_text())
    sensor, seed, people = info["sensor"], info["seed"], info["people"]
    ref = json.loads(open(margins).read())
    plan = pick(ref["rows"], ref["thresholds"], bona_fide_sample)[:limit]
    synth = SyntheticPeople(seed=seed, views=info["views"], sensor=sensor)   # the renders'
    rows, t0, mism = [], time.time(), 0
    with enrolled_gate(info, sensor, precision, 1, None,
                       "palmgate-burst-") as (pipe, st, _, _):
        n = pipe.identity.numbers or pipe.identity.load()
        joints = pipe.binding.numbers.stats.get("joints") if sensor == "xray" else None
        for j, r in enumerate(plan):
            folder = r["folder"]
            i = int(folder.rstrip("/").split("/")[-1])
            frames = presentation_frames(synth, sensor, man["classes"], r["class"], i, seed,
                                         people, k, keep_exposure)
            raw = read_burst(folder)
            same = bool(np.array_equal(frames[0], raw.sensor))
            mism += not same
            lms: dict = {}
            terms = [burst_terms(pipe, joints, Burst(raw.views, f, raw.meta), r["person"],
                                  lms) for f in frames]
            rows.append({"class": r["class"], "folder": folder, "person": r["person"],
                         "frame0_equal": same, "frames": terms})
            if (j + 1) % 25 == 0:
                log(f"{j + 1}/{len(plan)} {time.time() - t0:.0f} s, frame 0 mismatches {mism}")
        th = thresholds_in_force(pipe, n)
    return {"data": str(data_dir), "sensor": sensor, "precision": precision, "k": k,
            "keep_exposure": keep_exposure, "thresholds": th, "frame0_mismatches": mism,
            "rows": rows, "summary": burst_summary(rows, th), "rules": burst_rules(rows, th)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.sensor_bursts",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="a whole-presentation set (tools.synth liveness "
                                 "--presentations --attack-species), or with --summarize "
                                 "an output of this command")
    ap.add_argument("--summarize", action="store_true",
                    help="the summary and rules of an earlier output, measuring nothing")
    ap.add_argument("--margins", help="check_margins' rows of the same set")
    ap.add_argument("--k", type=int, default=4, help="extra frames a presentation")
    ap.add_argument("--bona-fide-sample", type=int, default=300)
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--keep-exposure", action="store_true",
                    help="extra frames keep frame 0's exposure (noise redrawn only)")
    ap.add_argument("--limit", type=int, default=None, help="first N picked presentations")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.summarize:
        res = json.loads(Path(a.data).read_text())
        res["summary"] = burst_summary(res["rows"], res["thresholds"])
        res["rules"] = burst_rules(res["rows"], res["thresholds"])
        Path(a.out).write_text(json.dumps(res))
        print(json.dumps({"summary": res["summary"], "rules": res["rules"]}, indent=1))
        return 0
    if not a.margins:
        ap.error("--margins is needed to measure")
    res = measure(a.data, a.margins, a.k, a.bona_fide_sample, a.precision, a.keep_exposure,
                  a.limit)
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(json.dumps({"thresholds": res["thresholds"], "frame0_mismatches":
                      res["frame0_mismatches"], "summary": res["summary"],
                      "rules": res["rules"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
