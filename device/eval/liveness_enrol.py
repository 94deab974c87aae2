"""``palmgate evaluate-liveness SET --enrol``: the set's people enrolled first, then every
presentation decided by the gate with 1:N identification, so the decisions, their reasons
(``no_match``, ``not_live``, ``sensor_mismatch``, ``sensor_identity`` ...) and the rates are the
gate's (issue 21, item 4).

The set is a synthetic whole-presentation set (``python -m tools.synth liveness
--presentations [--attack-species]``): its ``manifest.json`` (or ``rig.json``) names the
synthetic gate (``synthetic_seed``, ``views``, ``sensor``) and each presentation's
``burst.json`` its ``person`` -- for an attack the victim, whose replica the views show. Person
``i`` of a set is person ``i`` of :class:`device.synth.source.SyntheticPeople` of that seed
(the same hand geometry and palm-print identity), so the people are enrolled as the gate
enrols them (:mod:`device.eval.synthetic_gate`: the real enrolment path, two fresh enrolment
presentations each, a temporary real store) -- every person ``0..P-1``, P one more than the
largest person or ``other_person`` the manifest names (the set's people, also the attackers
and accomplices). The enrolment renders in the current NIR world
(:data:`device.synth.bound.NIR_PALM_PRINT`, the palm-print world by default): score a set
rendered in the same world.

Then each presentation goes through :meth:`device.gate.pipeline.Pipeline.decide` -- quality,
palm regions, presence -> SR -> liveness, the binding, feature, 1:N, the sensor identity
stage (``[liveness] sensor_identity``, the configuration's default), the access times -- on
the synthetic gate's configuration (the demo's, :func:`device.eval.demo.demo_config`: its match
threshold for synthetic hands, the signed liveness and binding numbers). Rates:
:mod:`device.eval.gate_pad_rates` (APCER = the gate opened; BPCER = it did not open as the
person; FTA = ``quality:*`` before any PAD decision, BPCER over all and over the acquired).
The stage columns of the mode without enrolment (p(live) stage scores, the deny reasons, the
rates at the liveness threshold) are kept.

``per_class``: the first N presentations of each class in folder order (a documented fixed
subset).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from device.eval.synthetic_gate import ENROL_PRESENTATIONS

MANIFEST = "manifest.json"


def read_set(data_dir) -> dict:
    """``{"seed", "views", "sensor", "people"}`` of a synthetic presentation set; ValueError
    when the set does not name its synthetic gate."""
    from device.eval.liveness_presentations import read_rig
    d = Path(data_dir)
    man = {}
    if (d / MANIFEST).is_file():
        try:
            man = json.loads((d / MANIFEST).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{d / MANIFEST}: not valid JSON: {e}") from None
    info = {**read_rig(d), **{k: man[k] for k in ("synthetic_seed", "views", "sensor")
                              if k in man}}
    if "synthetic_seed" not in info:
        raise ValueError(f"{d}: --enrol needs a synthetic set whose {MANIFEST} or rig.json "
                         f"names its synthetic_seed (python -m tools.synth liveness "
                         f"--presentations writes it)")
    persons = [int(f[k]) for f in man.get("files", []) for k in ("person", "other_person")
               if f.get(k) is not None]
    return {"seed": int(info["synthetic_seed"]), "views": int(info.get("views", 3)),
            "sensor": info.get("sensor"), "people": max(persons) + 1 if persons else None}


def presentation_person(folder) -> int:
    """The ``person`` of a presentation's ``burst.json`` (the victim of an attack)."""
    p = Path(folder) / "burst.json"
    try:
        meta = json.loads(p.read_text())
        return int(meta["person"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: cannot read it: {e}") from None
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{p}: names no person (index) -- --enrol needs it") from None


def first_per_class(files: list, per_class: int | None) -> list:
    return list(files) if per_class is None else list(files)[:per_class]


def set_plan(data_dir, classes=None, per_class=None, sensor: str | None = None
             ) -> tuple[dict, list]:
    """(:func:`read_set`'s info with ``people`` filled in, the plan: ``(class, presentation
    folder)`` for the first ``per_class`` presentations of each of ``classes`` in folder
    order) -- what the gate-path measurements of a set decide. ``classes``: None = bona fide
    and every attack species of the set; a class the set lacks is a ValueError.
    ``per_class``: an int or None (all) for every class, or a dict class -> int | None
    (classes it leaves out: all). Every item must be a whole presentation (views and sensor
    frame), else a ValueError. ``people`` is the set's own count, else one more than the
    largest person the plan names. ``sensor``: the set must have been rendered for it (a set
    that does not say is taken)."""
    from device.eval.liveness import scan_liveness_dir
    from device.eval.liveness_presentations import is_presentation
    info = read_set(data_dir)
    if sensor is not None and info["sensor"] not in (None, sensor):
        raise ValueError(f"{data_dir} was rendered for the {info['sensor']} sensor, "
                         f"not {sensor}")
    bona, attacks = scan_liveness_dir(data_dir)
    found = {"bona_fide": bona, **attacks}
    plan = []
    for c in (list(found) if classes is None else classes):
        if c not in found:
            raise ValueError(f"{data_dir}: no class {c!r} (has {sorted(attacks)})")
        n = per_class.get(c) if isinstance(per_class, dict) else per_class
        for f in first_per_class(found[c], n):
            if not is_presentation(f):
                raise ValueError(f"{f}: --enrol takes presentations (view_0.png .. + "
                                 f"sensor.png), not bare sensor frames")
            plan.append((c, f.parent))
    if not info["people"] and plan:
        info = {**info, "people": max(presentation_person(f) for _, f in plan) + 1}
    return info, plan


def _decide(pipe, folder, recapture=None, cls: str | None = None) -> dict:
    """The gate's decision of one presentation folder; ``recapture``
    (:class:`device.eval.second_look_frames.SetRecapture`) gives a folder without recorded
    further sensor frames the lazily re-rendered ones (the second look's re-captures)."""
    from device.eval.second_look_frames import check_mismatches, give_recaptures
    from device.sources.base import FrameError
    from device.sources.replay import read_burst
    try:
        burst = read_burst(folder)
    except FrameError as e:
        raise ValueError(f"presentation {folder}: {e}") from None
    give_recaptures(recapture, burst, cls, folder)
    d = pipe.decide(burst)
    check_mismatches(recapture)
    return {"decision": d.decision, "reason": d.reason, "user_id": d.user_id,
            "p_live": d.p_live, "p_phantom": d.p_phantom, "second_look": d.second_look,
            "binding": d.binding,
            "sensor_identity": d.sensor_identity, "hand_size": d.hand_size,
            "sensor_identity_by": d.sensor_identity_by, "lookalikes": d.lookalikes,
            "identity_by_held": d.identity_by_held,
            "identity_cpu_ms": d.stages_cpu_ms.get("identity"),
            "total_ms": round(d.total_ms, 2), "cpu_ms": round(d.total_cpu_ms, 2)}


def decide_set(data_dir, sensor: str, precision: str = "int8", models_dir=None,
               threads: int = 1, per_class: int | None = None, log=None,
               enrol_presentations: int = ENROL_PRESENTATIONS,
               landmark_precision: str | None = None, recapture: bool = True,
               second_look_band: float | None = None) -> dict:
    """Enrol the set's people, then decide every presentation. Returns the rows (class, live,
    folder, person, expected user and the decision) and the enrolment. ``recapture``: the
    second look's re-captures rendered lazily (:mod:`device.eval.second_look_frames`; the
    sensor stage's time limit is then widened by :data:`RENDER_MS`, the renderer's time, not
    the gate's). ``second_look_band``: evaluation only -- the band (logit) of every score
    measured instead of the signed one (choosing the signed number; never the gate's)."""
    from device.eval.synthetic_gate import enrolled_gate, user_id
    from device.gate.front_end_stage import landmark_precision as landmark_precision_of
    log = log or (lambda m: None)
    info, plan = set_plan(data_dir, per_class=per_class, sensor=sensor)
    folders = [(cls, f, presentation_person(f)) for cls, f in plan]
    rows = []
    t0 = time.time()
    rec = None
    if recapture:
        from device.eval.second_look_frames import SetRecapture
        rec = SetRecapture(data_dir, info, sensor)
    with enrolled_gate(info, sensor, precision, threads, models_dir, "palmgate-livenrol-", log,
                       presentations=enrol_presentations,
                       landmark_precision=landmark_precision) as (pipe, st, enrolled, refused):
        eval_second_look(pipe, rec is not None, second_look_band)
        for n, (cls, folder, person) in enumerate(folders):
            rows.append({"class": cls, "live": cls == "bona_fide", "folder": str(folder),
                         "person": person, "expected_user": user_id(person),
                         **_decide(pipe, folder, rec, cls)})
            if (n + 1) % 50 == 0:
                log(f"decided {n + 1}/{len(folders)} {time.time() - t0:.0f} s")
        policy = pipe.cfg.liveness.sensor_identity
        match_threshold = pipe.threshold
        threshold = pipe.liveness_threshold
        lmk_precision = landmark_precision_of(pipe.cfg)
    return {"rows": rows, "enrolled": enrolled, "enrol_refused": refused,
            "people": info["people"], "enrol_presentations": enrol_presentations,
            "seed": info["seed"], "views": info["views"], "liveness_threshold": threshold,
            "match_threshold": match_threshold, "sensor_identity": policy,
            "landmark_precision": lmk_precision}


RENDER_MS = 30000
"""The sensor stage's time limit is widened by this in an evaluation that renders the second
look's re-captures (rendering a presentation is the evaluation's time, not the gate's)."""


def eval_second_look(pipe, rendering: bool, band: float | None = None) -> None:
    """The evaluation's second look on an enrolled synthetic gate: the sensor limit widened by
    :data:`RENDER_MS` where re-captures are rendered; ``band`` (evaluation only) in place of
    the signed bands of the loaded models."""
    if rendering:
        t = int(pipe.cfg.timeouts["sensor"])
        pipe.cfg = pipe.cfg.replace(timeouts={"sensor": t + RENDER_MS})
    if band is not None:
        br = pipe.sensor.branch if pipe.sensor is not None else None
        if br is None:
            raise ValueError("no sensor branch loaded: the second look's band cannot be set")
        br.second_look_band = float(band)
        if br.phantom is not None:
            br.phantom.second_look_band = float(band)


def report(res: dict, sensor: str, precision: str, data_dir, per_class=None) -> dict:
    """The report: the gate's rates (:func:`device.eval.gate_pad_rates.gate_rates`), the
    deny reasons and the stage columns of the mode without enrolment."""
    from device.eval.gate_pad_rates import gate_rates, stage_score
    from device.eval.liveness import pad_rates
    rows = res["rows"]
    bona = [r for r in rows if r["live"]]
    classes = list(dict.fromkeys(r["class"] for r in rows if not r["live"]))
    attacks = {c: [r for r in rows if r["class"] == c] for c in classes}

    def scores(rs):
        return np.array([stage_score(r["p_live"], r["reason"], r.get("p_phantom"))
                         for r in rs], np.float64)

    thr = res["liveness_threshold"]
    enrolled = set(res["enrolled"])
    cpu = [r["cpu_ms"] for r in rows]
    wall = [r["total_ms"] for r in rows]
    return {"sensor": sensor, "precision": precision, "data": str(data_dir), "mode": "enrol",
            "subset": None if per_class is None else f"first {per_class} of each class in "
                                                     f"folder order",
            "gate": gate_rates(bona, attacks, enrolled, res["people"]),
            "stage": pad_rates(scores(bona), {c: scores(v) for c, v in attacks.items()},
                               thr) if thr is not None else None,
            "n_bona_fide": len(bona), "n_attack": {c: len(v) for c, v in attacks.items()},
            "deny_reasons": {"bona_fide": _outcomes(bona),
                             "attack": {c: _outcomes(v) for c, v in attacks.items()}},
            "second_look": {"bona_fide": _looks(bona),
                            "attack": {c: _looks(v) for c, v in attacks.items()}},
            "enrolment": {"seed": res["seed"], "views": res["views"], "people": res["people"],
                          "presentations": res.get("enrol_presentations",
                                                   ENROL_PRESENTATIONS),
                          "enrolled": len(enrolled), "refused": res["enrol_refused"],
                          "bona_fide_of_people_not_enrolled":
                              sum(r["person"] not in enrolled for r in bona)},
            "gate_config": {"match_threshold": res["match_threshold"],
                            "liveness_threshold": thr,
                            "sensor_identity": res["sensor_identity"],
                            "landmark_precision": res.get("landmark_precision")},
            "ms_per_presentation": {"wall_median": _median(wall), "cpu_median": _median(cpu)},
            "definitions": "every presentation decided by the gate (Pipeline.decide, 1:N) "
                           "after the set's people were enrolled through the real enrolment "
                           "path. gate.attack.<species>.apcer = share of the species' "
                           "presentations the gate opened for (as anyone), over all of them; "
                           "apcer_acquired over those not FTA. gate.bona_fide.bpcer_all = "
                           "share of bona fide presentations not opened as their own person, "
                           "over all; bpcer_acquired over those not FTA; bpcer_pad = those a "
                           "presentation-attack check refused (sensor stage, binding, identity "
                           "checks) over those not FTA (not_opened_by: fta / pad / recognition "
                           "/ other). bpcer_enrolled / bpcer_pad_enrolled: the same over the "
                           "bona fide presentations of the people whose enrolment was kept; "
                           "fte: the people whose enrolment was refused. FTA = denied "
                           "quality:* (views) before any PAD decision. stage = the rates of "
                           "the mode without --enrol: p(live) where every stage up to the "
                           "binding passed; deny_reasons: 'open' where the gate opened"}


def _outcomes(rows) -> dict:
    """Deny reasons of ``rows``, ``open`` for those the gate opened for."""
    out: dict = {}
    for r in rows:
        k = "open" if r["decision"] == "open" else r["reason"]
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _looks(rows) -> dict:
    """How many of ``rows`` took the second look (device.gate.second_look), by its end."""
    out: dict = {}
    for r in rows:
        if r.get("second_look"):
            out[r["second_look"]] = out.get(r["second_look"], 0) + 1
    return {"taken": sum(out.values()), "n": len(rows), **out}


def _median(v) -> float | None:
    return round(float(np.median(v)), 1) if v else None


def evaluate_liveness_enrol(data_dir, sensor: str, out_dir, precision: str = "int8",
                            models_dir=None, threads: int = 1, per_class: int | None = None,
                            log=None, enrol_presentations: int = ENROL_PRESENTATIONS,
                            landmark_precision: str | None = None) -> dict:
    """Write OUT/report.json and OUT/rows.json (every presentation's decision); return the
    report. Each person is enrolled from ``enrol_presentations`` presentations."""
    res = decide_set(data_dir, sensor, precision, models_dir, threads, per_class, log,
                     enrol_presentations, landmark_precision)
    rep = report(res, sensor, precision, data_dir, per_class)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rows.json").write_text(json.dumps(res["rows"], indent=0) + "\n")
    (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
    return rep
