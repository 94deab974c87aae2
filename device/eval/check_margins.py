"""Every sensor check's value for each presentation, none skipped: which checks an attack passes
and by how much (docs/results.md, "X-ray skeleton phantoms and prints over a live hand"; NIR:
"The sensor stage's PAD thresholds chosen jointly").

``palmgate evaluate-liveness --enrol`` gives the first check that denies; this gives them all,
each computed whatever the others said, with the set's people enrolled as ``--enrol`` enrols
them (:mod:`device.eval.synthetic_gate`): presence, p(live) (the shipped liveness, int8), the
binding score and its terms (outline = the probes' excess, :func:`device.gate.binding_joints.
bone_term`, :func:`device.gate.binding_size.size_term`, :func:`device.gate.binding_marrow.
marrow_term`), the bone patch's agreement with the presentation's person's enrolled templates
(:mod:`device.gate.xray_bone_patch`, the identity stage's comparison) and the hand size's
distance off the enrolled one (:mod:`device.gate.hand_size`). NIR: presence, p(live), the
binding's outline score and its palm-line agreement (:mod:`device.gate.binding_texture`), the
palm patch's agreement (:mod:`device.gate.sensor_identity`), the lines both ways
(:func:`~device.gate.sensor_identity.lines_sum`) and the hand size. The identity stage's own
methods compute the agreement and the size ratio. The 1:N match is not run (the claimed person
is the presentation's ``person``: for an attack, the victim); with ``--decide`` each row also
gets the gate's own decision and reason (:meth:`device.gate.pipeline.Pipeline.decide`, the set's
people enrolled, 1:N and every check, the second look's re-captures rendered as
``evaluate-liveness --enrol`` renders them), to compare with "passes all" (frame 0's checks;
rows the second look decided are left out of that comparison)::

    python -m device.eval.check_margins SET --classes skeleton_phantom print_over_live \
        bona_fide --out margins.json

:func:`passes` ("passes all" as the gate decides: the X-ray binding's size term released when
the bone patch and the hand size pass, :mod:`device.gate.binding_release`), :func:`raw_passes`
(each check on its own), :func:`binding_released` and :func:`summary` are pure (the thresholds
in force are in the output).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from device.eval.synthetic_gate import (ENROL_PRESENTATIONS, add_enrol_presentations,
                                        check_enrol_presentations)
from device.gate.sensor_identity import least_lines_sum

TERMS = ("p_live", "binding", "outline", "bone", "size", "marrow", "palm_lines", "agreement",
         "lines_sum", "size_off")
CHECKS = ("presence", "live", "binding", "palm_lines", "identity", "lines_sum", "size")
"""Every check's name; :func:`passes` gives those whose threshold ``th`` has (X-ray: no
``palm_lines`` nor ``lines_sum``)."""


def raw_passes(r: dict, th: dict) -> dict:
    """Which checks row ``r`` passes on its own under thresholds ``th`` (``thr``: p(live) must
    be above it; ``max_score``; ``min_agreement``; ``max_off``; where ``th`` has them (NIR),
    ``min_palm_lines`` and ``min_lines_sum``, with ``unsure_below`` / ``min_lines_sum_unsure``
    as the gate asks them, :func:`device.gate.sensor_identity.least_lines_sum`). A value not
    measured fails. The binding is the raw score against ``max_score`` (no release)."""
    def val(k):
        v = r.get(k)
        return None if v is None or not np.isfinite(v) else float(v)
    p, b, a, s = val("p_live"), val("binding"), val("agreement"), val("size_off")
    out = {"presence": r.get("presence") is None,
           "live": p is not None and p > th["thr"] and not r.get("phantom", False),
           "binding": b is not None and b <= th["max_score"]}
    if th.get("min_palm_lines") is not None:
        t = val("palm_lines")
        out["palm_lines"] = t is not None and t >= th["min_palm_lines"]
    out["identity"] = a is not None and a >= th["min_agreement"]
    if th.get("min_lines_sum") is not None:
        j, t = val("lines_sum"), least_lines_sum(th, p)
        out["lines_sum"] = j is not None and j >= t
    out["size"] = s is not None and s <= th["max_off"]
    return out


def _released(r: dict, th: dict, raw: dict) -> bool:
    from device.gate.binding_release import fails_only_by, within_identified
    b = r.get("binding")
    if raw["binding"] or b is None or not raw["identity"] or not raw["size"]:
        return False
    if within_identified(float(b), th["max_score"], th.get("max_score_identified")):
        return True
    if "binding_wo_size" in r:          # a fused row (sensor_bursts): its own score without
        w = r["binding_wo_size"]
        return w is not None and bool(np.isfinite(w)) and w <= th["max_score"]
    return fails_only_by(float(b), r.get("size"), th["max_score"])


def binding_released(r: dict, th: dict) -> bool:
    """Whether the X-ray gate releases row ``r``'s binding (:mod:`device.gate.binding_release`):
    the raw score fails ``max_score``, the score without the size term (``binding_wo_size``
    where the row has it, else ``binding - size``) passes or the whole score is within
    ``max_score_identified`` where ``th`` has it, and the bone patch (``identity``) and the
    hand size (``size``) pass. Rows without the term (NIR) never."""
    return _released(r, th, raw_passes(r, th))


def passes(r: dict, th: dict) -> dict:
    """Which checks row ``r`` passes as the gate decides them: :func:`raw_passes` with the
    binding passing where the gate releases its size term (:func:`binding_released`); "passes
    all" is the gate's rule."""
    out = raw_passes(r, th)
    if _released(r, th, out):
        out["binding"] = True
    return out


def against_gate(rows: list, th: dict) -> dict:
    """"Passes all" against the gate's own decision (rows measured with ``decide``): of the
    rows the gate opened or denied by a PAD check (:func:`device.eval.gate_pad_rates.
    pad_check_reason`; the others -- no_match, quality, timeouts -- never reached every check),
    how many agree; and the reasons of the rows it denied otherwise. Rows the gate decided
    with its second look (three sensor frames, not frame 0 alone) are not compared:
    ``not_compared["second_look:opened|denied|failed"]``."""
    from device.eval.gate_pad_rates import pad_check_reason
    out = {"compared": 0, "agree": 0, "pass_all_gate_denied": 0, "fails_gate_opened": 0,
           "not_compared": {}}
    for r in rows:
        if "decision" not in r:
            continue
        if r.get("second_look"):          # decided on three frames, "passes all" on frame 0
            k = f"second_look:{r['second_look']}"
            out["not_compared"][k] = out["not_compared"].get(k, 0) + 1
            continue
        opened = r["decision"] == "open"
        if not opened and not pad_check_reason(r["reason"]):
            k = r["reason"]
            out["not_compared"][k] = out["not_compared"].get(k, 0) + 1
            continue
        ok = all(passes(r, th).values())
        out["compared"] += 1
        out["agree"] += ok == opened
        out["pass_all_gate_denied"] += ok and not opened
        out["fails_gate_opened"] += opened and not ok
    return out


def summary(rows: list, th: dict) -> dict:
    """Per class: n, how many pass each check (as the gate decides them, :func:`passes`), pass
    all, the one check that stopped those that passed all others, how many pass the raw
    binding score (``binding_raw_pass``) and how many of them the gate releases
    (``binding_released``), and the quantiles of every term."""
    out = {}
    for c in dict.fromkeys(r["class"] for r in rows):
        rs = [r for r in rows if r["class"] == c]
        ps = [passes(r, th) for r in rs]
        checks = [k for k in CHECKS if k in ps[0]]
        last = {}
        for p in ps:
            failed = [k for k in checks if not p[k]]
            if len(failed) == 1:
                last[failed[0]] = last.get(failed[0], 0) + 1
        q = {}
        for t in TERMS:
            v = np.array([r[t] for r in rs if r.get(t) is not None and np.isfinite(r[t])],
                         float)
            if len(v):
                q[t] = dict(zip(("min", "q01", "q05", "q50", "q95", "q99", "max"),
                                np.round(np.quantile(v, [0, .01, .05, .5, .95, .99, 1]),
                                         4).tolist()))
        raw = sum(raw_passes(r, th)["binding"] for r in rs)
        out[c] = {"n": len(rs), "pass": {k: sum(p[k] for p in ps) for k in checks},
                  "pass_all": sum(all(p.values()) for p in ps), "stopped_only_by": last,
                  "binding_raw_pass": raw,
                  "binding_released": sum(binding_released(r, th) for r in rs), "terms": q}
        if any("decision" in r for r in rs):
            out[c]["against_gate"] = against_gate(rs, th)
    return out


def _terms(pipe, joints, folder, person, decide: bool, recapture=None,
           cls: str | None = None) -> dict:
    """One presentation's row: every check's value (whatever the others said) and, with
    ``decide``, the gate's own decision of it -- with its second look: ``recapture``
    (:class:`device.eval.second_look_frames.SetRecapture`) gives a folder without recorded
    re-captures the set's lazily re-rendered ones, as ``evaluate-liveness --enrol`` does."""
    from device.sources.replay import read_burst
    raw = read_burst(folder)
    r = {"folder": str(folder), "person": person, **burst_terms(pipe, joints, raw, person)}
    if decide:
        from device.eval.second_look_frames import give_recaptures
        give_recaptures(recapture, raw, cls, folder)
        d = pipe.decide(raw)
        r["decision"], r["reason"], r["user_id"] = d.decision, d.reason, d.user_id
        r["second_look"] = d.second_look
        for k in ("binding_size_term", "binding_identified"):     # released by the identity
            if getattr(d, k, None):
                r[k] = getattr(d, k)
    return r


def burst_terms(pipe, joints, raw, person, lms: dict | None = None) -> dict:
    """Every check's value of one burst ``raw`` (views + sensor frame); ``lms``: the views'
    landmarks when a dict that has them (the regions are not run again), else they are found
    (and put in it when it is a dict)."""
    from device.eval.synthetic_gate import user_id
    from device.gate import hand_size as H
    from device.gate import sensor_identity as S
    r: dict = {}
    b = pipe.calibrate(raw)
    lms = {} if lms is None else lms
    if not lms:
        pipe.regions(b.views, None, None, None, lms)
    pres = pipe.sensor(b.sensor)
    r["presence"], r["p_live"] = pres.reason if pres.reason != "not_live" else None, \
        pres.p_live
    if getattr(pres, "p_phantom", None) is not None:     # X-ray: the phantom check ran
        r["p_phantom"] = float(pres.p_phantom)
        r["phantom"] = pres.reason == "not_live"         # it refused (liveness had passed)
    bd = pipe.binding.score(b.views, b.sensor, lms)
    m, r["binding"] = bd.probes, float(bd.score)
    if bd.texture is not None:
        r["palm_lines"] = float(bd.texture)
    if joints and m is not None and m.bones is not None and m.sdf is not None:
        from device.gate.binding_joints import bone_term
        from device.gate.binding_marrow import marrow_term
        from device.gate.binding_size import size_term
        r["bone"] = float(bone_term(m.bones, m.landmarks, m.px_mm, joints))
        r["size"] = float(size_term(m.bones, m.landmarks, m.px_mm, joints))
        r["marrow"] = float(marrow_term(m.bones, m.landmarks, m.px_mm, joints))
        r["outline"] = r["binding"] - r["bone"] - r["size"] - r["marrow"]
    ident = pipe.identity
    n = ident.numbers or ident.load()
    tm = ident.templates(user_id(person))
    if tm:
        judged_as_thresholds(n, ident.normalising(n), person)
    if tm and m is not None:
        r["agreement"] = float(ident.agreement(tm, b.sensor, m, n))
        j = S.lines_sum(r["agreement"], bd.texture)
        if j is not None:
            r["lines_sum"] = float(j)
        if ident.sizes:
            r["size_off"] = float(H.size_off(ident.size_ratio(m, n["hand_size"])))
    return r


def judged_as_thresholds(n: dict, normalised: bool, person) -> None:
    """ValueError unless ``person``'s agreement is on the scale of :func:`thresholds_in_force`:
    where the signed numbers ``n`` name a cohort those are the normalised score's limits, so
    every person with sensor templates must carry their cohort pair (``normalised``: the
    stage's :meth:`~device.gate.sensor_identity_stage.SensorIdentityStage.normalising`). The
    gate judges a person without it (templates of an older build, or a pair enrolment could
    not make) on the raw agreement against the raw limits
    (:func:`device.gate.identity_cohort.in_force`); one set of thresholds cannot judge both,
    so the measurement stops and names the person rather than mix the scales."""
    if n.get("cohort") is not None and not normalised:
        raise ValueError(
            f"person {person}: sensor templates without the NIR cohort pair (an older "
            "build's enrolment, or a pair that could not be made): the gate judges them on "
            "the raw agreement and its raw limits, the thresholds here are the cohort's; "
            "re-enrol the set's people with this build")


def thresholds_in_force(pipe, n: dict) -> dict:
    """The thresholds :func:`passes` reads, as the gate ``pipe`` holds them (``n``: its
    identity stage's signed numbers; where they name a cohort, the normalised agreement's
    limits, :func:`device.gate.identity_cohort.in_force`: the people enrolled here carry
    their cohort pair -- :func:`burst_terms` refuses one who does not,
    :func:`judged_as_thresholds` -- and the rows' ``agreement`` is the normalised score)."""
    from device.gate.identity_cohort import in_force
    n = in_force(n, n.get("cohort") is not None)
    th = {"thr": float(pipe.liveness_threshold), "max_score": float(pipe.binding.max_score),
          "min_agreement": float(n["min_agreement"]),
          "max_off": float(n["hand_size"]["max_off"])}
    if pipe.binding.min_texture is not None:
        th["min_palm_lines"] = float(pipe.binding.min_texture)
    if getattr(pipe.binding, "max_identified", None) is not None:
        th["max_score_identified"] = float(pipe.binding.max_identified)
    for k in ("min_lines_sum", "unsure_below", "min_lines_sum_unsure"):
        if n.get(k) is not None:
            th[k] = float(n[k])
    return th


def measure(data_dir, classes, per_class: int | None = None, precision: str = "int8",
            decide: bool = False, models_dir=None, log=print,
            enrol_presentations: int = ENROL_PRESENTATIONS) -> dict:
    """Rows of every check's value for the first ``per_class`` presentations of each class
    (all when None), and the thresholds in force; the sensor is the set's. The set's people
    are enrolled from ``enrol_presentations`` presentations each."""
    import torch
    torch.set_num_threads(1)
    from device.eval.liveness_enrol import presentation_person, set_plan
    from device.eval.synthetic_gate import enrolled_gate

    info, plan = set_plan(data_dir, classes, per_class)
    sensor = info["sensor"] or "xray"
    if sensor not in ("xray", "nir"):
        raise ValueError(f"{data_dir}: an X-ray or NIR set is needed, not {sensor}")
    rows, t0 = [], time.time()
    rec = None
    if decide:
        from device.eval.liveness_enrol import eval_second_look
        from device.eval.second_look_frames import SetRecapture, check_mismatches
        rec = SetRecapture(data_dir, info, sensor)
    with enrolled_gate(info, sensor, precision, 1, models_dir, "palmgate-margins-",
                       presentations=enrol_presentations) as (pipe, st, _, _):
        if rec is not None:
            eval_second_look(pipe, True)
        n = pipe.identity.numbers or pipe.identity.load()
        joints = pipe.binding.numbers.stats.get("joints") if sensor == "xray" else None
        for i, (c, folder) in enumerate(plan):
            rows.append({"class": c, **_terms(pipe, joints, folder,
                                              presentation_person(folder), decide, rec, c)})
            if rec is not None:
                check_mismatches(rec)
            if (i + 1) % 100 == 0:
                log(f"{i + 1}/{len(plan)} {time.time() - t0:.0f} s")
        th = thresholds_in_force(pipe, n)
    return {"data": str(data_dir), "sensor": sensor, "precision": precision,
            "enrol_presentations": enrol_presentations,
            "thresholds": th, "rows": rows, "summary": summary(rows, th)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.check_margins",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="an X-ray or NIR whole-presentation set (tools.synth "
                                 "liveness --presentations --attack-species)")
    ap.add_argument("--classes", nargs="+", required=True,
                    help="bona_fide and/or attack species folder names")
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--decide", action="store_true",
                    help="also the gate's own decision of each presentation (enrolled, 1:N)")
    ap.add_argument("--models", default=None, help="a models folder (default: the shipped)")
    add_enrol_presentations(ap)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    check_enrol_presentations(ap, a)
    res = measure(a.data, a.classes, a.per_class, a.precision, a.decide, a.models,
                  enrol_presentations=a.enrol_presentations)
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(json.dumps({"thresholds": res["thresholds"], "summary": res["summary"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
