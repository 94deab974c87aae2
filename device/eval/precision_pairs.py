"""int8 against fp32, presentation by presentation: where the two precisions of the gate decide
a presentation differently, and which model's quantisation carries it (issue 21's "int8 within
0.2 pp of fp32").

Two synthetic gates of the set's seed (:func:`device.eval.synthetic_gate.synthetic_gate`), one
int8 and one fp32, each with the set's people enrolled through the real enrolment path. Each
presentation is decided by both (:meth:`device.gate.pipeline.Pipeline.decide`, 1:N, every
check) and its sensor frame goes through both sensor stages on its own: presence p(hand), the SR
image's rms against the fp32 SR image, the p(live) logit shift, and p(live) of the int8 liveness
model on the *fp32* SR image (which of SR and liveness moves p(live)); plus the views' landmarks
(median distance in px between the two precisions' landmarks) and the checks' values the
decisions carry (binding score, identity agreement, hand-size ratio).

Where the two decisions differ, the fp32 gate is asked again with one int8 model put in at a
time (the sensor stage, the landmark model, the segmentation model, the palm feature model), all
of them together, and the same presentation decided a second time by each gate unchanged
(is the stage deterministic?)::

    python -m device.eval.precision_pairs SET --out pairs.json

:func:`summary` is pure.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from contextlib import ExitStack

import numpy as np

SWAPS = ("sensor", "landmarks", "segmenter", "features", "all")
"""The int8 parts put one at a time (``all``: together) into the fp32 gate."""


def logit(p) -> float | None:
    if p is None:
        return None
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def _landmark_px(a: dict, b: dict) -> float | None:
    """Median over the views both found of the mean distance (px) between their landmarks."""
    d = [float(np.mean(np.linalg.norm(np.asarray(a[k], float) - np.asarray(b[k], float),
                                      axis=-1)))
         for k in a if k in b and a[k] is not None and b[k] is not None]
    return float(np.median(d)) if d else None


def _outcome(d) -> str:
    return "open" if d.decision == "open" else f"deny:{d.reason}"


def _decision_row(d) -> dict:
    return {"outcome": _outcome(d), "user_id": d.user_id, "p_live": d.p_live,
            "binding": d.binding, "palm_lines": d.palm_lines,
            "identity": d.sensor_identity_score, "hand_size_ratio": d.hand_size_ratio}


def _sensor_pair(bi, bf, frame) -> dict:
    """The sensor stage of one frame at both precisions (``bi``/``bf``: SensorBranch)."""
    from device.models.sensor_branch import to_capture
    cap = to_capture(frame)[None]
    hi, hf = bi.presence.p_hand(cap)[0], bf.presence.p_hand(cap)[0]
    sri, srf = bi.super_resolve(cap), bf.super_resolve(cap)
    pi, pf = bi.liveness(sri)[0], bf.liveness(srf)[0]
    p_mixed = bi.liveness(srf)[0]             # int8 liveness on the fp32 SR image
    return {"p_hand_int8": float(hi), "p_hand_fp32": float(hf),
            "sr_rms": float(np.sqrt(np.mean((sri - srf) ** 2))),
            "logit_int8": logit(pi), "logit_fp32": logit(pf),
            "logit_shift": logit(pi) - logit(pf),
            "logit_shift_liveness_only": logit(p_mixed) - logit(pf)}


class _Swap:
    """The fp32 pipeline with some of the int8 pipeline's models put in (undone on exit)."""

    def __init__(self, pf, pi, parts):
        self.pf, self.pi, self.parts, self.saved = pf, pi, parts, []

    def _set(self, obj, attr, value):
        self.saved.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    def __enter__(self):
        pf, pi = self.pf, self.pi
        if "sensor" in self.parts and pf.sensor is not None:
            self._set(pf.sensor, "branch", pi.sensor.branch or pi.sensor.load())
        if "landmarks" in self.parts and pf.landmarker is not None:
            self._set(pf.landmarker, "model", pi.landmarker.get())
        if "segmenter" in self.parts and pf.segmenter is not None:
            self._set(pf.segmenter, "model", pi.segmenter.get())
        if "features" in self.parts:
            self._set(pf, "extractor", pi.extractor)
        return pf

    def __exit__(self, *exc):
        for obj, attr, v in reversed(self.saved):
            setattr(obj, attr, v)


def attribute(pf, pi, folder) -> dict:
    """The fp32 gate's outcome with each int8 part put in, and both gates again unchanged."""
    from device.sources.replay import read_burst
    out = {"int8_again": _outcome(pi.decide(read_burst(folder))),
           "fp32_again": _outcome(pf.decide(read_burst(folder)))}
    for s in SWAPS:
        parts = ("sensor", "landmarks", "segmenter", "features") if s == "all" else (s,)
        with _Swap(pf, pi, parts) as p:
            out[f"fp32+int8_{s}"] = _outcome(p.decide(read_burst(folder)))
    return out


def measure(data_dir, classes=None, per_class: int | None = None, models_dir=None,
            log=print) -> dict:
    import torch
    torch.set_num_threads(1)
    from device.eval.liveness_enrol import presentation_person, set_plan
    from device.eval.synthetic_gate import enrolled_gate
    from device.sources.replay import read_burst

    info, plan = set_plan(data_dir, classes, per_class)
    sensor = info["sensor"] or "xray"
    rows, enrol, t0 = [], {}, time.time()
    with ExitStack() as es:
        pipes = {}
        for prec in ("int8", "fp32"):
            pipe, st, enrolled, refused = es.enter_context(enrolled_gate(
                info, sensor, prec, 1, models_dir, f"palmgate-pairs-{prec}-"))
            enrol[prec] = {"enrolled": len(enrolled), "refused": refused}
            pipes[prec] = pipe
        pi, pf = pipes["int8"], pipes["fp32"]
        bi, bf = pi.sensor.branch or pi.sensor.load(), pf.sensor.branch or pf.sensor.load()
        for n, (c, folder) in enumerate(plan):
            di, df = pi.decide(read_burst(folder)), pf.decide(read_burst(folder))
            r = {"class": c, "folder": str(folder), "person": presentation_person(folder),
                 "int8": _decision_row(di), "fp32": _decision_row(df),
                 "landmark_px": _landmark_px(di.landmarks or {}, df.landmarks or {})}
            frame = read_burst(folder).sensor
            r.update(_sensor_pair(bi, bf, frame))
            if r["int8"]["outcome"] != r["fp32"]["outcome"]:
                try:
                    r["attribution"] = attribute(pf, pi, folder)
                except Exception as e:     # noqa: BLE001 - a diagnostic: keep the run going
                    r["attribution"] = {"error": f"{type(e).__name__}: {e}"}
            rows.append(r)
            if (n + 1) % 100 == 0:
                log(f"{n + 1}/{len(plan)} {time.time() - t0:.0f} s")
        th = {"liveness_int8": float(pi.liveness_threshold),
              "liveness_fp32": float(pf.liveness_threshold)}
    return {"data": str(data_dir), "sensor": sensor, "seed": info["seed"], "enrol": enrol,
            "thresholds": th, "rows": rows, "summary": summary(rows)}


def _q(v) -> dict | None:
    v = np.asarray([x for x in v if x is not None and np.isfinite(x)], float)
    if not len(v):
        return None
    return dict(zip(("q05", "q50", "q95", "max"),
                    np.round(np.quantile(v, [.05, .5, .95, 1]), 4).tolist()))


def summary(rows: list) -> dict:
    """Counts of differing outcomes (per class, per outcome pair), and which single int8 part
    reproduces the int8 outcome in the fp32 gate; quantiles of the paired values. A differing
    pair without an attribution (it raised) counts in ``attribution_failed`` only."""
    diff = [r for r in rows if r["int8"]["outcome"] != r["fp32"]["outcome"]]
    pairs, carried, unstable, failed = {}, {}, 0, 0
    for r in diff:
        k = f"{r['class']}: fp32 {r['fp32']['outcome']} -> int8 {r['int8']['outcome']}"
        pairs[k] = pairs.get(k, 0) + 1
        a = r.get("attribution") or {}
        if "int8_again" not in a:        # the attribution raised (or was never run)
            failed += 1
            continue
        if a.get("int8_again") != r["int8"]["outcome"] or \
                a.get("fp32_again") != r["fp32"]["outcome"]:
            unstable += 1
        by = [s for s in SWAPS if s != "all"
              and a.get(f"fp32+int8_{s}") == r["int8"]["outcome"]] or \
            (["all only"] if a.get("fp32+int8_all") == r["int8"]["outcome"] else ["none"])
        for s in by:
            carried[s] = carried.get(s, 0) + 1
    bona = [r for r in rows if r["class"] == "bona_fide"]
    abs_ = lambda k, rs: [abs(r[k]) if r.get(k) is not None else None for r in rs]  # noqa: E731
    return {"n": len(rows), "differ": len(diff), "differ_bona_fide": sum(
                r["class"] == "bona_fide" for r in diff),
            "pairs": dict(sorted(pairs.items())), "reproduced_by_int8_part": carried,
            "not_repeatable": unstable, "attribution_failed": failed,
            "abs_logit_shift": _q(abs_("logit_shift", rows)),
            "abs_logit_shift_liveness_only": _q(abs_("logit_shift_liveness_only", rows)),
            "abs_logit_shift_bona_fide": _q(abs_("logit_shift", bona)),
            "sr_rms": _q([r["sr_rms"] for r in rows]),
            "abs_p_hand_diff": _q([abs(r["p_hand_int8"] - r["p_hand_fp32"]) for r in rows]),
            "landmark_px": _q([r["landmark_px"] for r in rows]),
            "abs_binding_diff": _q([abs(r["int8"]["binding"] - r["fp32"]["binding"])
                                    if r["int8"]["binding"] is not None
                                    and r["fp32"]["binding"] is not None else None
                                    for r in rows]),
            "abs_identity_diff": _q([abs(r["int8"]["identity"] - r["fp32"]["identity"])
                                     if r["int8"]["identity"] is not None
                                     and r["fp32"]["identity"] is not None else None
                                     for r in rows])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.precision_pairs",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="an X-ray or NIR whole-presentation set")
    ap.add_argument("--classes", nargs="+", default=None)
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--models", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    res = measure(a.data, a.classes, a.per_class, a.models)
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(json.dumps({"enrol": res["enrol"], "thresholds": res["thresholds"],
                      "summary": res["summary"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
