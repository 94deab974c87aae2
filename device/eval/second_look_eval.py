"""Choosing the second look's signed bands (device/gate/second_look.py): what each candidate
band does on a synthetic whole-presentation set, measured through the gate
(docs/results.md, "The second look").

The set's people are enrolled as ``palmgate evaluate-liveness SET --enrol`` enrols them
(:func:`device.eval.synthetic_gate.enrolled_gate`), the re-captures are rendered lazily
(:mod:`device.eval.second_look_frames`) and every score's band is set to ``--band`` (the widest
candidate; evaluation only). Then:

* frame 0's sensor stage of every presentation (presence, SR, liveness, X-ray phantom on the
  calibrated frame, what the gate computes) gives its distance, in logit, from the threshold
  that denied it (``d_live`` / ``d_phantom``; None where that score did not deny);
* every bona fide is decided by the gate in full; an attack only where frame 0 lies within
  ``--band`` (only those can decide otherwise; the others are counted from frame 0);
* a presentation the look opened the sensor stage for is decided again with the look off
  (``without``: today's decision; a look that denied raised the same deny as without it), so
  each row holds both decisions;
* ``--identical N``: the first N presentations of each class are decided with the look and
  without it, whatever their frame 0: the decisions must be equal where no look was taken.

A narrower band ``b`` is derived exactly from the same rows (:func:`at_band`): a presentation
takes the look at ``b`` iff its frame-0 distance is within ``b``; the re-captured frames -- hence
the look's outcome -- do not depend on ``b``::

    python -m device.eval.second_look_eval SET --sensor xray --precision int8 --band 3.0 \\
        --identical 30 --out rows.json
    python -m device.eval.second_look_eval rows.json --summarize --bands 1,1.5,2,3
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

DECISION_KEYS = ("decision", "reason", "user_id", "second_look")


def frame0(pipe, burst) -> dict:
    """Frame 0's sensor stage on the calibrated sensor frame: p(live), p(phantom) (X-ray,
    where liveness passed), its reason, the distance in logit from the denying threshold."""
    from device.gate.second_look import logit
    br = pipe.sensor.branch
    s = pipe.calibration.apply(burst, []).sensor
    pres = br.judge([s])[0]
    out = {"f0_reason": pres.reason, "f0_p_live": pres.p_live, "f0_p_phantom": pres.p_phantom,
           "d_live": None, "d_phantom": None}
    if pres.p_live is not None and not pres.p_live > br.threshold:
        out["d_live"] = round(logit(br.threshold) - logit(pres.p_live), 6)
    elif pres.p_phantom is not None and br.phantom is not None \
            and pres.p_phantom > br.phantom.threshold:
        out["d_phantom"] = round(logit(pres.p_phantom) - logit(br.phantom.threshold), 6)
    out["in_band"] = bool(pipe.second_look.wanted(br, pres))
    return out


def _decide(pipe, burst) -> dict:
    d = pipe.decide(burst)
    return {k: getattr(d, k) for k in DECISION_KEYS}


def measure(data_dir, sensor: str, precision: str, band: float, identical: int = 0,
            classes=None, per_class=None, log=print) -> dict:
    import torch
    torch.set_num_threads(1)
    from device.eval.liveness_enrol import eval_second_look, presentation_person, set_plan
    from device.eval.second_look_frames import SetRecapture, check_mismatches, give_recaptures
    from device.eval.synthetic_gate import enrolled_gate, user_id
    from device.gate.second_look import OPENED
    from device.sources.replay import read_burst
    info, plan = set_plan(data_dir, classes=classes, per_class=per_class, sensor=sensor)
    rec = SetRecapture(data_dir, info, sensor)
    rows, seen, t0 = [], {}, time.time()
    with enrolled_gate(info, sensor, precision, 1, None, "palmgate-look2-",
                       log) as (pipe, st, enrolled, refused):
        eval_second_look(pipe, True, band)
        br = pipe.sensor.branch
        th = {"live": br.threshold,
              "phantom": br.phantom.threshold if br.phantom is not None else None}
        for n, (cls, f) in enumerate(plan):
            seen[cls] = seen.get(cls, 0) + 1
            burst = read_burst(f)
            give_recaptures(rec, burst, cls, f)
            person = presentation_person(f)
            row = {"class": cls, "live": cls == "bona_fide", "folder": str(f),
                   "person": person, "expected_user": user_id(person), **frame0(pipe, burst)}
            check_ident = seen[cls] <= identical
            if cls == "bona_fide" or row["in_band"] or check_ident:
                row["with"] = _decide(pipe, burst)
                check_mismatches(rec)
                if row["with"]["second_look"] == OPENED or check_ident:
                    pipe.second_look.enabled = False
                    try:
                        row["without"] = _decide(pipe, burst)
                    finally:
                        pipe.second_look.enabled = True
                else:       # no look, or one that denied: the same deny as without it
                    row["without"] = dict(row["with"], second_look=None)
                row["identical_checked"] = check_ident
            rows.append(row)
            if (n + 1) % 100 == 0:
                log(f"{n + 1}/{len(plan)} {time.time() - t0:.0f} s, looks rendered "
                    f"{rec.calls}")
    return {"data": str(data_dir), "sensor": sensor, "precision": precision, "band": band,
            "thresholds": th, "enrolled": sorted(enrolled), "enrol_refused": refused,
            "people": info["people"], "renders": rec.calls, "rows": rows}


def taken_at(row: dict, b_live: float, b_phantom: float) -> bool:
    """Would the look be taken at these bands (frame 0's distance within its band)?"""
    if row.get("with", {}).get("second_look") is None:
        return False
    if row["d_live"] is not None:
        return row["d_live"] <= b_live + 1e-9
    if row["d_phantom"] is not None:
        return row["d_phantom"] <= b_phantom + 1e-9
    return False


def at_band(row: dict, b_live: float, b_phantom: float) -> dict | None:
    """The row's decision at these bands (None: an attack out of the measured band, not
    decided -- its decision is today's, the look not taken)."""
    if "with" not in row:
        return None
    return row["with"] if taken_at(row, b_live, b_phantom) else row["without"]


def identical_check(rows: list) -> dict:
    """Rows decided both ways without a look taken: how many, how many differ."""
    n = bad = 0
    for r in rows:
        if r.get("identical_checked") and r["with"]["second_look"] is None:
            n += 1
            bad += any(r["with"][k] != r["without"][k] for k in DECISION_KEYS)
    return {"checked": n, "differ": bad}


def summary(res: dict, bands) -> dict:
    """Per band (the same for both scores, and per score alone): per class, the looks taken,
    how they ended, the decisions that changed (bona fide: PAD denials before / after by
    reason; attacks: opened that were denied)."""
    from device.eval.gate_pad_rates import pad_check_reason
    rows = res["rows"]
    out = {"identical": identical_check(rows), "renders": res["renders"], "bands": {}}
    classes = list(dict.fromkeys(r["class"] for r in rows))
    combos = [(b, b) for b in bands]
    if res["sensor"] == "xray":
        combos += [(b, 0.0) for b in bands] + [(0.0, b) for b in bands]
    for bl, bp in combos:
        per = {}
        for c in classes:
            rs = [r for r in rows if r["class"] == c]
            taken = [r for r in rs if taken_at(r, bl, bp)]
            ends: dict = {}
            for r in taken:
                ends[r["with"]["second_look"]] = ends.get(r["with"]["second_look"], 0) + 1
            g = {"n": len(rs), "taken": len(taken), "ended": ends,
                 "frames_per_presentation": round(1 + 2 * len(taken) / max(len(rs), 1), 4)}
            if c == "bona_fide":
                before, after = {}, {}
                for r in rs:
                    for dst, d in ((before, r["without"]), (after, at_band(r, bl, bp))):
                        if d["decision"] != "open" and pad_check_reason(d["reason"]):
                            dst[d["reason"]] = dst.get(d["reason"], 0) + 1
                g["pad_denied_before"], g["pad_denied_after"] = before, after
                g["opened_own"] = sum(
                    at_band(r, bl, bp)["decision"] == "open" and
                    at_band(r, bl, bp)["user_id"] == r["expected_user"] and
                    not (r["without"]["decision"] == "open" and
                         r["without"]["user_id"] == r["expected_user"]) for r in rs)
                g["lost"] = sum(
                    r["without"]["decision"] == "open" and at_band(r, bl, bp)["decision"]
                    != "open" for r in rs)
            else:
                g["newly_opened"] = [r["folder"][-28:] for r in rs if "with" in r and
                                     at_band(r, bl, bp)["decision"] == "open" and
                                     r["without"]["decision"] != "open"]
            per[c] = g
        out["bands"][f"live={bl:g},phantom={bp:g}"] = per
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.second_look_eval",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="a whole-presentation set, or with --summarize an output")
    ap.add_argument("--sensor", choices=("xray", "nir"))
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--band", type=float, default=3.0, help="the widest candidate (logit)")
    ap.add_argument("--identical", type=int, default=0,
                    help="first N of each class decided with and without the look")
    ap.add_argument("--attacks-only", action="store_true", help="no bona fide")
    ap.add_argument("--per-class", type=int, default=None, help="first N of each class")
    ap.add_argument("--summarize", action="store_true")
    ap.add_argument("--bands", default="1,1.5,2,3")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    bands = [float(x) for x in a.bands.split(",")]
    if a.summarize:
        res = json.loads(Path(a.data).read_text())
    else:
        classes = None
        if a.attacks_only:
            from device.eval.liveness import scan_liveness_dir
            classes = sorted(scan_liveness_dir(a.data)[1])
        res = measure(a.data, a.sensor, a.precision, a.band, a.identical, classes,
                      a.per_class)
    res["summary"] = summary(res, [b for b in bands if b <= res["band"] + 1e-9])
    Path(a.out).write_text(json.dumps(res, default=_num))
    print(json.dumps({k: res[k] for k in ("sensor", "precision", "band", "thresholds",
                                          "renders", "summary")}, indent=1))
    return 0


def _num(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return float(x)


if __name__ == "__main__":
    raise SystemExit(main())
