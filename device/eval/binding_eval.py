"""Sensor binding measured on synthetic presentations (docs/sensor-branch.md, "Binding").

Bona fide: the views and sensor frame of one live hand (:func:`device.synth.bound.render_bound`:
pose, depth and tilt drawn per presentation), the registration the gate uses perturbed by a
factory registration error (a similarity in the sensor frame: shift ``REG_SHIFT_PX``, rotation
``REG_ROT_DEG``, scale ``REG_SCALE``, normal draws). Attacks: the mixed species of
:mod:`device.synth.mixed`. Every view goes through the gate's front end (landmarks, segmentation
fallback) first, as at the gate, and a presentation with fewer than ``[gate] min_views`` usable
views is a failure to acquire, counted apart; the binding takes the landmarks of the views that
gave them (:func:`device.gate.sensor_binding.measure`, :func:`~device.gate.sensor_binding.
binding_score`). Optionally the shipped liveness model (with its presence check) scores each
sensor frame, so the sensor stage's decision is reported too.

    # the live hands' probe ranges, then the threshold on validation (both into the signed
    # models/binding_nir.json, device/gate/binding_numbers.py), then held-out
    python -m device.eval.binding_eval --sensor nir --seed 5 --bona-fide 400 --mixed 0 \
        --write-stats --out fit_nir.json
    python -m device.eval.binding_eval --sensor nir --seed 11 --bona-fide 400 --mixed 400 \
        --write-threshold --out val_nir.json
    python -m tools.sign_manifest --key KEY models/          # the release step re-signs
    python -m device.eval.binding_eval --sensor nir --seed 5151 --bona-fide 400 --mixed 400 \
        --liveness --out test_nir.json

NIR palm lines (:mod:`device.gate.binding_texture`): in the world where the NIR frames show the
palm print, their least agreement and the outline's threshold with it are chosen on validation
seeds and written as ``palm_lines`` into the signed file (:mod:`device.eval.palm_line_point`)::

    python -m device.eval.binding_eval --sensor nir --seed 11 23 --bona-fide 400 --mixed 400 \
        --liveness --nir-palm-print --write-palm-lines --out val_nir_pp.json

``--cache FILE.npz`` keeps every presentation's binding inputs; :func:`load_inputs` and
:func:`rescore` score them again without rendering (a few seconds for 800), and ``--cached
OUT.json FILE.npz`` runs any of the commands above on an earlier run's rows and inputs instead
of rendering them again: only when that run's command (its ``summary["command"]``) rendered the
same presentations (:data:`RENDER_ARGS`), and what it records (its output's ``command`` and the
signed file's) is that rendering command, then its own, joined by ``&&``: one chain that
renders the cache and scores it, runnable where the cache is not (:func:`load_cached`)::

    python -m device.eval.binding_eval --sensor xray --seed 5 21 31 --bona-fide 1000 700 700 \
        --mixed 0 --cache fit.npz --out fit.json
    python -m device.eval.binding_eval --sensor xray --seed 5 21 31 --bona-fide 1000 700 700 \
        --mixed 0 --write-stats --range-q 0.01 --cached fit.json fit.npz --out fit_xray.json

The bones' marrow (branch ``xover``, :mod:`device.gate.binding_marrow`): its free level
fitted with the bones on 5 + 21 + 31, its gain chosen on 11 + 8117 + 9241 and on the whole
presentations of seed 9317 (``tools.synth liveness --presentations --attack-species``); the
held-out seed is **7393**, fixed in docs/results.md before any presentation of it was
rendered.

Seeds of the landmark binding (issue 21, part 2, second round): the probes' bona fide
statistics are fitted on seed 5, thresholds and every other choice are made on seed 11, and
seed 5151 is the held-out seed, fixed here before any presentation of it was rendered (seed 202,
the first round's held-out seed, has been looked at).

X-ray bone term (third round, branch ``xbind``): fitted on seed 5, chosen on seed 11 as above;
seed 5151 has been looked at, so the held-out seed of this round is **8117**, fixed here before
any presentation of it was rendered. It denied 2.3 % of its bona fide presentations (9 of 399)
against 1.0 % on validation, so the bone term was made steadier (fitted on 1000 bona fide of
seed 5, chosen on 1000 bona fide + 400 mixed of seed 11) and tested again on **9241**, fixed
here before any presentation of it was rendered.

Pooled seeds (fourth round, branch ``xpool``): the X-ray probe ranges and bone statistics are
fitted on the bona fide of seeds 5, 21 and 31 together, and the threshold and the aggregation
are chosen on seeds 11, 8117 and 9241 together (8117 and 9241 have been looked at); the
held-out seed of this round is **6611**, fixed here before any presentation of it was rendered.
Then the X-ray field (``sensor_binding.WIDEST_FIELD``), chosen on the same validation seeds
(6611 has been looked at): its held-out seed is **7127**, fixed here before any presentation
of it was rendered.

NIR palm lines (issue 21, part 2, third round, branch bind3): the NIR frame now shows the palm
print the views show, so the probes are fitted again on seed 5, the palm lines' threshold is
chosen with the outline's on seed 11, and the held-out seed is 6262, fixed here before any
presentation of it was rendered (5151 has been looked at). The palm lines' mapping was then
changed (each view carried through the palm's plane and the registration instead of one affine
map a view from its landmarks) and its thresholds chosen again on seed 11: the held-out seed for
that is 7373, fixed here before any presentation of it was rendered (6262 has been looked at).

NIR palm lines, fourth round (branch ``nirlines``): the veins left out, the best view, the
sizes of a live hand against other sizes (:mod:`device.gate.binding_texture`), chosen on
seeds 11 and 23 (400 + 400 each; 7373 has been looked at), with the attack species drawing the
palm print too (branch ``nirmodels``, "NIR world:"); the point written by
``--write-palm-lines``. The held-out seed is **4747**, fixed here before any presentation of it
was rendered.

The X-ray live-hand tail (branch ``xtail``): the background ramp and the odd view
(``sensor_binding.BACKGROUND_RAMP``, ``ODD_VIEW_MM``), found on the images of the validation
seeds' worst live hands and chosen there (fit 5 + 21 + 31, validation 11 + 8117 + 9241;
7127 has been looked at): its held-out seed is **4409**, fixed here before any presentation of
it was rendered.

The X-ray hand's size and the fingers' directions (branch ``xother``,
:mod:`device.gate.binding_size`): fitted on 5 + 21 + 31, chosen on 11 + 8117 + 9241 as above
(4409 has been looked at): its held-out seed is **7474**, fixed here before any presentation of
it was rendered. On it three live hands were denied by the fingers' directions, every bone off
to the same side (the whole hand placed a few mm off); the hand's common shift is now taken
out (chosen on the validation seeds), so 7474 has been looked at and the held-out seed of the
shift-free directions is **5858**, fixed here before any presentation of it was rendered.
"""
from __future__ import annotations

import argparse
import json
import shlex
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


def views_through_front_end(fe, views) -> tuple[list[int], dict]:
    """(the views the gate's front end ``fe`` accepted, view -> its (21, 2) landmarks for
    those that gave them); a view refused for its quality is left out."""
    from device.vision.front_end import hand_landmarks
    from device.vision.quality import QualityIssue
    ok, lms = [], {}
    for k, v in enumerate(views):
        try:
            r = fe(v)
            ok.append(k)
            lm = hand_landmarks(r)              # as the gate's Pipeline.regions hands them on
            if lm is not None:
                lms[k] = lm[:, :2]
        except QualityIssue:
            pass
    return ok, lms


def evaluate(sensor: str, seed: int, n_bona_fide: int, n_mixed: int, people: int = 40,
             views: int = 3, liveness: bool = False, log=None, inputs: list | None = None,
             variant: str | None = None) -> list[dict]:
    """One row per presentation: kind, species, variant, views used, binding score (None
    when the views gave too few hands), p(live) (with ``liveness``). ``inputs`` (a list)
    gets each scored presentation's binding inputs (sensor frame, the views' landmarks on the
    plane, the camera centres) for :func:`rescore`. ``variant``: every mixed presentation of
    that variant (:data:`device.synth.mixed.VARIANTS`; drawn per presentation when None)."""
    from device.config import load_config
    from device.gate.front_end_stage import front_end_from_config
    from device.gate.sensor_binding import (HomographyRegistration, binding_score, measure,
                                            palm_lines)
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
            shot, meta = render_mixed(sp, geom, tex, g2, tex2, rng, synth.rig, sensor, view_hw,
                                      variant=variant)
            row = {"kind": "attack", "species": sp, "variant": meta["variant"]}
        frame = np.clip(np.round(shot.sensor * 255.0), 0, 255).astype(np.uint8)
        ok, lms = views_through_front_end(fe, shot.views)
        row["views_used"] = len(ok)
        row["views_landmarks"] = len(lms)
        vs = (view_hw[1], view_hw[0])
        fs = (frame.shape[1], frame.shape[0])
        reg = HomographyRegistration(perturbed(H, rng, sh), vs, (sh[1], sh[0]), Ks)
        row["score"] = None
        if len(ok) >= cfg.gate.min_views:
            plane = {k: reg.to_sensor(p, k, vs, fs) for k, p in lms.items()}
            centres = {k: reg.centre(k, vs, fs) for k in lms}
            t1 = time.thread_time()
            m = measure(frame, plane, centres, sensor)
            b = binding_score(m, sensor)
            row["cpu_ms"] = round((time.thread_time() - t1) * 1e3, 2)
            t1 = time.thread_time()
            tx = palm_lines(frame, shot.views, lms, m, sensor, plane, centres)   # NIR
            row["texture_cpu_ms"] = round((time.thread_time() - t1) * 1e3, 2)
            row["score"] = round(b, 4) if np.isfinite(b) else 1e9
            if tx is not None:
                row["texture"] = round(tx, 5) if np.isfinite(tx) else None
            if inputs is not None:
                inputs.append((j, frame, plane, centres))
        if branch is not None:
            pres = branch(frame)                 # p(live) None: refused before liveness
            row["p_live"] = None if pres.p_live is None else round(float(pres.p_live), 5)
            row["sensor_reason"] = pres.reason
        rows.append(row)
        if log and (j + 1) % 50 == 0:
            log(f"{j + 1}/{total} {time.time() - t0:.0f} s")
    return rows


def evaluate_seeds(sensor: str, seeds: list[int], n_bona_fide: list[int], n_mixed: list[int],
                   inputs: list | None = None, **kw) -> list[dict]:
    """:func:`evaluate` of several seeds (several people sets and rigs) pooled: ``n_bona_fide``
    and ``n_mixed`` one count for all seeds or one per seed; each row gets its ``seed``, and
    ``inputs`` the pooled inputs indexed by row."""
    def per_seed(n):
        if len(n) not in (1, len(seeds)):
            raise ValueError(f"{len(n)} counts for {len(seeds)} seeds")
        return list(n) * len(seeds) if len(n) == 1 else list(n)
    rows: list[dict] = []
    for seed, nb, nm in zip(seeds, per_seed(n_bona_fide), per_seed(n_mixed)):
        got: list | None = None if inputs is None else []
        part = evaluate(sensor, seed, nb, nm, inputs=got, **kw)
        if inputs is not None:
            inputs.extend((len(rows) + j, *x) for j, *x in got)
        rows.extend(dict(r, seed=seed) for r in part)
    return rows


def rescore(rows: list[dict], inputs: list, sensor: str, stats: dict | None = None) -> None:
    """Each row's binding score again from its cached inputs (:func:`evaluate`'s
    ``inputs``), with ``stats`` (default the signed models/binding_<sensor>.json's)."""
    from device.gate.sensor_binding import binding_score, measure
    for j, frame, plane, centres in inputs:
        b = binding_score(measure(frame, plane, centres, sensor), sensor, stats)
        rows[j]["score"] = round(b, 4) if np.isfinite(b) else 1e9


def fit_from(rows: list[dict], inputs: list, sensor: str, q: float = 0.005) -> dict:
    """The live hands' probe ranges (:func:`device.gate.sensor_binding.fit_stats`, the ``q``
    and ``1 - q`` quantiles) from the bona fide presentations among ``inputs``; X-ray also the
    bone term's statistics (their own quantile) and the size and finger directions' numbers
    (:func:`device.gate.binding_size.fit_size_stats`, the same ``q``)."""
    from device.gate.sensor_binding import fit_stats, measure
    vals, bones = [], []
    for j, frame, plane, centres in inputs:
        if rows[j]["kind"] != "bona_fide":
            continue
        m = measure(frame, plane, centres, sensor)
        if m is not None and m.sdf is not None:
            vals.append(m.values)
            if m.bones is not None:
                bones.append((m.bones, m.landmarks, m.px_mm))
    stats = fit_stats(np.array(vals), q=q)
    if bones:                                   # X-ray: the bone term's statistics
        from device.gate.binding_joints import fit_bone_stats
        from device.gate.binding_marrow import fit_marrow_stats
        from device.gate.binding_size import fit_size_stats
        stats["joints"] = fit_bone_stats(bones)
        stats["joints"].update(fit_size_stats(bones, stats["joints"], q=q))
        stats["joints"].update(fit_marrow_stats(bones))
    return stats


def write_stats(sensor: str, stats: dict, command: str) -> None:
    """Put the probe ranges ``stats`` of ``sensor`` into the signed models/binding_<sensor>.json
    (its threshold and other numbers kept; :mod:`device.eval.binding_release`)."""
    from device.eval.binding_release import write_numbers
    write_numbers(sensor, {"probe_ranges": stats}, command=command,
                  data=f"{stats['n']} bona fide synthetic bound presentations of seed(s) "
                       f"{stats.get('seed')} through the gate's front end",
                  metrics={"fit": {"n": stats["n"], "q": stats["q"], "seed": stats.get("seed")}})


THRESHOLD_RULE = ("the 99.5th percentile of the binding scores of the bona fide validation "
                  "presentations whose hand could be placed, rounded up to 0.1 mm")
"""How ``--write-threshold`` chooses ``max_score`` (written into the signed file with it). A
hand that cannot be placed (score inf, written 1e9) is denied whatever the threshold, so it
is left out of the percentile; it still counts in the bona fide denied."""


def max_score_at(rows: list[dict], q: float = 0.995) -> float:
    """The binding threshold from validation rows (:data:`THRESHOLD_RULE`): the ``q`` quantile
    of the scores of the bona fide presentations whose hand could be placed, rounded up to
    0.1 mm."""
    s = [r["score"] for r in rows if r["kind"] == "bona_fide" and r["score"] is not None
         and r["score"] < 1e9]
    if not s:
        raise ValueError("no scored bona fide presentation to choose a threshold on")
    return float(np.ceil(np.quantile(s, q) * 10 - 1e-9) / 10)


def save_inputs(path: str, inputs: list, views: int) -> None:
    """The binding inputs of :func:`evaluate` as one .npz: ``j`` (N,), ``frames`` (N, H, W),
    ``plane`` (N, V, 21, 2) and ``centres`` (N, V, 3), NaN for a view without landmarks."""
    n = len(inputs)
    plane = np.full((n, views, 21, 2), np.nan)
    centres = np.full((n, views, 3), np.nan)
    for i, (_, _, p, c) in enumerate(inputs):
        for k in p:
            plane[i, k], centres[i, k] = p[k], c[k]
    np.savez_compressed(path, j=np.array([x[0] for x in inputs]),
                        frames=np.stack([x[1] for x in inputs]) if n else np.zeros((0, 1, 1)),
                        plane=plane, centres=centres)


def load_inputs(path: str) -> list:
    """[(j, frame, plane points {view: (21, 2)}, centres {view: (3,)})] of :func:`save_inputs`."""
    z = np.load(path)
    out = []
    for j, f, p, c in zip(z["j"], z["frames"], z["plane"], z["centres"]):
        ks = [k for k in range(p.shape[0]) if np.isfinite(p[k]).all()]
        out.append((int(j), f, {k: p[k] for k in ks}, {k: c[k] for k in ks}))
    return out


def summarise(rows: list[dict], threshold: float, liveness_threshold: float | None = None,
              texture_threshold: float | None = None) -> dict:
    """BPCER of binding (bona fide over the distance threshold, or, with ``texture_threshold``,
    palm lines below it or not compared) and the share of each attack species and variant
    denied by binding (and by the sensor stage, with p(live))."""
    def rate(sel, deny):
        n = len(sel)
        k = sum(1 for r in sel if deny(r))
        return {"n": n, "denied": k, "rate": round(k / n, 5) if n else None}
    scored = [dict(r) for r in rows if r["score"] is not None]
    if texture_threshold is not None:          # the palm lines' denial folded into the score
        for r in scored:
            t = r.get("texture")
            if t is None or not t >= texture_threshold:
                r["score"] = max(r["score"], 1e9)
    bf = [r for r in scored if r["kind"] == "bona_fide"]
    at = [r for r in scored if r["kind"] == "attack"]
    out = {"threshold": threshold, "texture_threshold": texture_threshold,
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

        def refused(r):                  # no hand in the frame (presence), or not live
            return r["p_live"] is None or r["p_live"] <= lt

        def stage(r):
            return refused(r) or r["score"] > threshold
        out["liveness_threshold"] = lt
        out["bona_fide_denied_by_sensor_stage"] = rate(bf, stage)
        out["attacks_denied_by_liveness_alone"] = rate(at, refused)
        out["attacks_denied_by_sensor_stage"] = rate(at, stage)
    cpu = [r["cpu_ms"] + (r.get("texture_cpu_ms", 0.0) if texture_threshold is not None
                          else 0.0) for r in scored if "cpu_ms" in r]
    if cpu:                 # this thread's CPU time of measure + score (+ the palm lines)
        out["binding_cpu_ms"] = {q: round(float(np.quantile(cpu, q)), 2)
                                 for q in (0.5, 0.95, 1.0)}
    s = sorted(r["score"] for r in bf)
    if s:
        out["bona_fide_score_quantiles"] = {q: round(float(np.quantile(s, q)), 4)
                                            for q in (0.5, 0.95, 0.99, 0.995, 1.0)}
    a = sorted(r["score"] for r in at)
    if a:
        out["attack_score_quantiles"] = {q: round(float(np.quantile(a, q)), 4)
                                         for q in (0.0, 0.005, 0.01, 0.05, 0.5)}
    return out


RENDER_ARGS = ("sensor", "seed", "bona_fide", "mixed", "people", "variant", "views", "liveness",
               "nir_palm_print")
"""What decides the presentations a run renders: a ``--cached`` run must have them all as the
run that wrote its cache had."""


def _rendered(a) -> tuple:
    """:data:`RENDER_ARGS` of parsed arguments, the counts one per seed."""
    def per_seed(n):
        return list(n) * len(a.seed) if len(n) == 1 else list(n)
    return tuple(per_seed(getattr(a, k)) if k in ("bona_fide", "mixed") else getattr(a, k)
                 for k in RENDER_ARGS)


def load_cached(ap, a, out_json: str, cache_npz: str) -> tuple[list, list, str]:
    """(rows, inputs, the command that rendered them) of an earlier run (its ``--out`` and
    ``--cache``) for the run ``a`` parsed by ``ap``; ``ap.error`` when that run's command is
    not recorded or rendered other presentations (:data:`RENDER_ARGS`), or an input has no
    row: numbers fitted on one set must not be recorded as another's."""
    with open(out_json) as f:
        doc = json.load(f)
    rows, earlier = doc["rows"], str(doc.get("summary", {}).get("command") or "")
    first = earlier.split(" && ")[0]           # a --cached run's record starts with the render
    head = "python -m device.eval.binding_eval "
    if not first.startswith(head):
        ap.error(f"--cached: {out_json} does not say which command rendered it")
    try:
        b = ap.parse_args(shlex.split(first[len(head):]))
    except SystemExit:
        ap.error(f"--cached: {out_json}'s command cannot be read: {first}")
    if b.cached or _rendered(b) != _rendered(a):
        ap.error(f"--cached: {out_json} was rendered by another command ({first}); give this "
                 f"one its seeds, counts and options")
    inputs = load_inputs(cache_npz)
    if any(not 0 <= j < len(rows) for j, *_ in inputs):
        ap.error(f"--cached: {cache_npz} has inputs of rows {out_json} does not have")
    return rows, inputs, first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sensor", choices=("nir", "xray"), default="nir")
    ap.add_argument("--seed", type=int, nargs="+", required=True,
                    help="one seed, or several pooled (several people sets and rigs)")
    ap.add_argument("--bona-fide", type=int, nargs="+", default=[300],
                    help="bona fide presentations: one count for every seed, or one per seed")
    ap.add_argument("--mixed", type=int, nargs="+", default=[300],
                    help="mixed presentations: one count for every seed, or one per seed")
    ap.add_argument("--people", type=int, default=40)
    ap.add_argument("--variant", default=None,
                    choices=("offset", "rotation", "scale", "other_hand"),
                    help="every mixed presentation of this variant (both mixed species have "
                         "these); drawn per presentation when not given")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--liveness", action="store_true", help="also score p(live), fp32")
    ap.add_argument("--threshold", type=float, default=None,
                    help="binding threshold to report at (default: the configured one)")
    ap.add_argument("--nir-palm-print", action="store_true",
                    help="render live NIR frames with the palm print the views show "
                         "(device.synth.bound.NIR_PALM_PRINT)")
    ap.add_argument("--texture-threshold", type=float, default=None,
                    help="NIR: least palm-line agreement to report at (default: the one in "
                         "force, from the signed models/binding_nir.json's palm_lines and "
                         "[liveness] binding_min_palm_lines; none where neither has one)")
    ap.add_argument("--cache", default=None,
                    help="also write the binding's inputs of every presentation here (.npz) "
                         "for rescoring without rendering")
    ap.add_argument("--cached", nargs=2, metavar=("OUT.json", "CACHE.npz"), default=None,
                    help="score the presentations of an earlier run of the same command (its "
                         "--out and --cache) instead of rendering them again")
    ap.add_argument("--write-stats", action="store_true",
                    help="fit the live hands' probe ranges on these seeds' bona fide "
                         "presentations and write them to models/binding_<sensor>.json (and "
                         "its manifest entry; re-sign the manifest after)")
    ap.add_argument("--range-q", type=float, default=0.005,
                    help="with --write-stats: the probe ranges are the q and 1 - q quantiles "
                         "(X-ray, pooled seeds: 0.01)")
    ap.add_argument("--finger-cap", type=float, default=None,
                    help="with --write-stats: the most one finger adds to the score, mm "
                         "(X-ray: 20; none for NIR)")
    ap.add_argument("--write-threshold", action="store_true",
                    help="choose the binding threshold on these (validation) seeds, "
                         + THRESHOLD_RULE + ", and write it to "
                         "models/binding_<sensor>.json (re-sign the manifest after)")
    ap.add_argument("--write-palm-lines", action="store_true",
                    help="NIR: choose the palm lines' least agreement and the outline's "
                         "threshold with it on these (validation) seeds (device/eval/"
                         "palm_line_point.py RULE) and write them to models/binding_nir.json "
                         "as palm_lines (re-sign the manifest after)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.write_palm_lines and a.sensor != "nir":
        ap.error("--write-palm-lines: only NIR frames show the palm lines")
    t0 = time.time()
    if a.nir_palm_print:
        from device.synth.bound import use_nir_world
        use_nir_world("palm-print")
    inputs: list = []
    command = "python -m device.eval.binding_eval " + " ".join(
        shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    if a.cached:                # an earlier run's rows and binding inputs: scored again
        rows, inputs, rendered = load_cached(ap, a, *a.cached)
        command = f"{rendered} && {command}"   # what was run: the render, then this
        rescore(rows, inputs, a.sensor)
    else:
        rows = evaluate_seeds(a.sensor, a.seed, a.bona_fide, a.mixed, inputs, people=a.people,
                              views=a.views, liveness=a.liveness, variant=a.variant,
                              log=lambda m: print(m, file=sys.stderr, flush=True))
    seeds = " + ".join(str(x) for x in a.seed)
    if a.cache:
        save_inputs(a.cache, inputs, a.views)
    lt = None                   # both from the signed manifest, before anything is rewritten
    if a.liveness:
        from device.models.model import DEFAULT_MODELS_DIR
        from device.models.sensor_branch import SensorBranch
        lt = SensorBranch(a.sensor, "fp32", DEFAULT_MODELS_DIR, threads=1).threshold
    if not a.write_threshold:          # the thresholds the gate decides with
        from device.config import load_config
        from device.gate.binding_numbers import in_force, load_binding_numbers
        lv = load_config(None).liveness
        f = in_force(load_binding_numbers(a.sensor), lv.binding_max_distance,
                     lv.binding_min_palm_lines)
        if a.threshold is None:
            a.threshold = f.max_score
        if a.texture_threshold is None:
            a.texture_threshold = f.min_agreement
    if a.write_stats:
        stats = fit_from(rows, inputs, a.sensor, q=a.range_q)
        if a.finger_cap is not None:
            stats["finger_cap"] = a.finger_cap
        stats.update(seed=a.seed[0] if len(a.seed) == 1 else a.seed, command=command)
        write_stats(a.sensor, stats, command)
        rescore(rows, inputs, a.sensor, stats)
    if a.write_threshold:
        from device.eval.binding_release import write_numbers
        a.threshold = max_score_at(rows)
        val = summarise(rows, a.threshold)
        write_numbers(a.sensor, {"max_score": a.threshold, "max_score_command": command,
                                 "max_score_rule": THRESHOLD_RULE},
                      command=command, data=f"validation seeds {seeds}: {a.bona_fide} bona fide "
                                            f"+ {a.mixed} mixed synthetic bound presentations",
                      metrics={"validation": {k: val[k] for k in (
                          "bona_fide_denied_by_binding", "attacks_denied_by_binding")},
                          "validation_seed": a.seed, "command": command})
    if a.write_palm_lines:
        from device.eval.palm_line_point import write_palm_lines
        a.threshold, a.texture_threshold = write_palm_lines(
            a.sensor, rows, command,
            f"validation seeds {seeds}: {'/'.join(map(str, a.bona_fide))} bona fide + "
            f"{'/'.join(map(str, a.mixed))} mixed synthetic bound presentations (a seed), "
            f"NIR frames showing the palm print (--nir-palm-print)")
    summary = summarise(rows, a.threshold, lt, a.texture_threshold)
    if a.sensor == "nir" and any("texture" in r for r in rows):
        from device.eval.palm_line_point import operating_points
        summary["palm_line_points"] = operating_points(rows)
    summary.update(sensor=a.sensor, seed=a.seed, seconds=round(time.time() - t0, 1),
                   nir_palm_print=bool(a.nir_palm_print), command=command)
    with open(a.out, "w") as f:
        json.dump({"summary": summary, "rows": rows}, f, indent=1)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
