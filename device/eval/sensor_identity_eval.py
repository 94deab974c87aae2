"""The sensor frame against the enrolled person's: the measurement (a spike; the features are
:mod:`device.eval.sensor_identity`, the write-up docs/results.md "The sensor frame against the
enrolled person's: a measurement").

For one sensor and seed (:class:`device.synth.source.SyntheticPeople`, the gate of
:mod:`device.synth.bound`, the registration perturbed as in :mod:`device.eval.binding_eval`,
every view through the gate's front end):

- **enrolment**: one bona fide presentation of each of ``people`` persons (its sensor frame and
  the views' landmarks carried into it: the template a product would keep);
- **bona fide at the gate**: presentations of random persons (other pose, depth, palm draws):
  genuine against their own enrolment, impostor against every other enrolled person of the
  same side (left/right hand);
- **attacks** against the victim's enrolment: mixed ``other_hand`` of both species
  (:func:`device.synth.mixed.render_mixed`), and the copy over the attacker's live hand
  (X-ray ``print_over_live``, NIR ``vein_film_over_live``,
  :func:`device.synth.species_presentations.render_species`).

Each presentation also gets the binding's decision with the signed thresholds in force
(``binding_score`` over the outline's threshold, NIR also the palm lines under their least
agreement or not compared), so the shares refused can be set side by side.

    python -m device.eval.sensor_identity_eval render --sensor xray --seed 11 \\
        --people 40 --bona-fide 300 --attacks 100 --out xray_11.npz
    python -m device.eval.sensor_identity_eval score --sensor xray --fit xray_11.npz \\
        --test xray_6029.npz --out xray.json

X-ray with ``--xray-feature bones``: the bone patch of :mod:`device.eval.xray_identity` (the
band-passed bones on the palm grid) instead of the phalanx lengths; ``cost_ms`` in the output
is the median wall and thread-CPU time of one feature and one comparison.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

ATTACKS = {"xray": ("mixed_replica_views", "mixed_replica_sensor", "print_over_live"),
           "nir": ("mixed_replica_views", "mixed_replica_sensor", "vein_film_over_live")}


def render(sensor: str, seed: int, n_bona_fide: int, n_attacks: int, people: int = 40,
           views: int = 3, log=None) -> dict:
    """Arrays of every presentation (module docstring): ``kind`` (enrol, bona_fide or the
    attack species), ``person`` (the person the views show: the enrolled one or the victim),
    ``other`` (the accomplice / attacker, -1), ``side`` (0 right, 1 left), ``frame`` (uint8),
    ``lm`` (21, 2) the views' landmarks in the sensor frame (NaN: not placed), ``height`` (mm),
    ``bscore`` the binding score (inf: not placed), ``texture`` (NIR palm lines, NaN)."""
    from device.config import load_config
    from device.eval.binding_eval import perturbed, views_through_front_end
    from device.gate.front_end_stage import front_end_from_config
    from device.gate.sensor_binding import (HomographyRegistration, binding_score, measure,
                                            palm_lines)
    from device.synth.bound import (render_bound, sensor_size, synthetic_cameras,
                                    synthetic_registration)
    from device.synth.mixed import render_mixed
    from device.synth.source import SyntheticPeople
    from device.synth.species_presentations import render_species
    cfg = load_config(None, gate={"views": views}, liveness={"sensor": sensor})
    fe, _, _ = front_end_from_config(cfg)
    synth = SyntheticPeople(seed=seed, views=views, sensor=sensor)
    H, view_hw = synthetic_registration(seed, views, sensor)
    Ks = synthetic_cameras(seed, views, view_hw)
    sh = sensor_size(sensor)
    plan = [("enrol", i) for i in range(people)] + [("bona_fide", -1)] * n_bona_fide
    for k in range(n_attacks):
        plan += [(sp, -1) for sp in ATTACKS[sensor]]
    cols = {c: [] for c in ("kind", "person", "other", "side", "frame", "lm", "height",
                            "bscore", "texture", "views_used")}
    t0 = time.time()
    for j, (kind, who) in enumerate(plan):
        rng = np.random.default_rng([seed, 91, j])
        i = who if who >= 0 else int(rng.integers(people))
        geom, ident = synth._person(i)
        tex = synth.synth.palms(ident, 1, rng)[0]
        other = -1
        if kind in ("enrol", "bona_fide"):
            shot = render_bound(geom, tex, rng, synth.rig, sensor, view_hw)
        else:
            other = (i + 1 + int(rng.integers(people - 1))) % people
            g2, id2 = synth._person(other)
            tex2 = synth.synth.palms(id2, 1, rng)[0]
            if kind.startswith("mixed"):
                shot, _ = render_mixed(kind, geom, tex, g2, tex2, rng, synth.rig, sensor,
                                       view_hw, variant="other_hand")
            else:
                shot, _ = render_species(kind, geom, tex, g2, tex2, rng, synth.rig, sensor,
                                         view_hw)
        frame = np.clip(np.round(shot.sensor * 255.0), 0, 255).astype(np.uint8)
        ok, lms = views_through_front_end(fe, shot.views)
        vs, fs = (view_hw[1], view_hw[0]), (frame.shape[1], frame.shape[0])
        reg = HomographyRegistration(perturbed(H, rng, sh), vs, (sh[1], sh[0]), Ks)
        lm, h, b, tx = np.full((21, 2), np.nan), np.nan, np.inf, np.nan
        if len(ok) >= cfg.gate.min_views:
            plane = {k: reg.to_sensor(p, k, vs, fs) for k, p in lms.items()}
            centres = {k: reg.centre(k, vs, fs) for k in lms}
            m = measure(frame, plane, centres, sensor)
            b = binding_score(m, sensor)
            t = palm_lines(frame, shot.views, lms, m, sensor, plane, centres)
            tx = np.nan if t is None else t
            if m is not None:
                lm, h = m.landmarks, m.height_mm
        for c, v in (("kind", kind), ("person", i), ("other", other),
                     ("side", int(geom.hand != "right")), ("frame", frame), ("lm", lm),
                     ("height", h), ("bscore", b), ("texture", tx), ("views_used", len(ok))):
            cols[c].append(v)
        if log and (j + 1) % 25 == 0:
            log(f"{sensor} {seed}: {j + 1}/{len(plan)} {time.time() - t0:.0f} s")
    return {c: np.array(v) for c, v in cols.items()}


def binding_refuses(d: dict, sensor: str) -> np.ndarray:
    """bool per presentation: the binding with the signed thresholds in force denies it
    (outline and bones over the threshold or not placed; NIR: palm lines under the least
    agreement or not compared)."""
    from device.config import load_config
    from device.gate.binding_numbers import in_force, load_binding_numbers
    lv = load_config(None).liveness
    f = in_force(load_binding_numbers(sensor), lv.binding_max_distance,
                 lv.binding_min_palm_lines)
    deny = ~(d["bscore"] <= f.max_score)
    if f.min_agreement is not None:
        deny |= ~(d["texture"] >= f.min_agreement)
    return deny


def features(d: dict, sensor: str, veins_out: bool = True, xray: str = "lengths",
             **bone_kw) -> list:
    """Each presentation's identity feature (:mod:`device.eval.sensor_identity`; X-ray with
    ``xray="bones"`` the bone patch of :mod:`device.eval.xray_identity`, ``bone_kw`` its
    settings); None where the hand was not placed."""
    from device.eval import xray_identity as X
    from device.eval import sensor_identity as I
    from device.gate.binding_numbers import load_binding_numbers
    from device.gate.binding_silhouette import _grey, sensor_hand_and_field
    from device.synth.bound import depth_magnification, sensor_optics
    mu = None
    if sensor == "xray":
        n = load_binding_numbers(sensor)
        mu = np.asarray(n.stats["joints"]["mu"], np.float64)
    out = []
    for frame, lm, h in zip(d["frame"], d["lm"], d["height"]):
        if not np.all(np.isfinite(lm)):
            out.append(None)
            continue
        px, _ = sensor_optics(sensor, frame.shape[:2])
        px_hand = px * depth_magnification(sensor, float(h) if np.isfinite(h) else 0.0)
        if sensor == "xray":
            hand, field = sensor_hand_and_field(frame, sensor)
            if xray == "bones":
                out.append(X.bone_patch(_grey(frame), hand, field, lm, px_hand, **bone_kw))
                continue
            img = np.where(field, _grey(frame).astype(np.float32), np.float32(np.nan))
            out.append(I.bone_lengths(img, lm, px_hand, mu))
        else:
            out.append(I.palm_patch(frame, lm, px_hand, veins_out))
    return out


def compare(sensor: str, a, b, shift_mm: float = 4.0) -> float:
    """Same-person score of two features: X-ray the bones' distance negated (the bone patch:
    its agreement), NIR the palm patches' agreement (higher is the same person either way;
    NaN: not compared)."""
    from device.eval import sensor_identity as I
    if a is None or b is None:
        return float("nan")
    if sensor == "xray" and not isinstance(a, tuple):
        return -I.bone_distance(a, b)
    return I.patch_agreement(a, b, shift_mm)


def scores(d: dict, feats: list, sensor: str, **kw) -> dict:
    """Genuine, impostor and per-species attack scores against the enrolled templates, and the
    binding's refusals of the attacks. Impostors: every bona fide gate presentation against
    every other enrolled person of its side."""
    kind, person, side = d["kind"], d["person"], d["side"]
    enrol = {int(person[j]): j for j in np.flatnonzero(kind == "enrol")}
    deny = binding_refuses(d, sensor)
    out = {"genuine": [], "impostor": [], "attacks": {}}
    for j in np.flatnonzero(kind == "bona_fide"):
        if d["views_used"][j] < 2:
            continue
        p = int(person[j])
        out["genuine"].append(compare(sensor, feats[enrol[p]], feats[j], **kw))
        for q, e in enrol.items():
            if q != p and side[e] == side[j]:
                out["impostor"].append(compare(sensor, feats[e], feats[j], **kw))
    for sp in ATTACKS[sensor]:
        sel = [j for j in np.flatnonzero(kind == sp) if d["views_used"][j] >= 2]
        out["attacks"][sp] = {
            "score": [compare(sensor, feats[enrol[int(person[j])]], feats[j], **kw)
                      for j in sel],
            "binding_denies": [bool(deny[j]) for j in sel]}
    out["bona_fide_binding_denies"] = [bool(deny[j]) for j in np.flatnonzero(kind == "bona_fide")
                                       if d["views_used"][j] >= 2]
    return out


def threshold_at(genuine: list, frr: float = 0.005) -> float:
    """The score below which ``frr`` of the genuine scores lie (a score not compared, NaN,
    counts as refused and is left out of the quantile)."""
    g = np.asarray(genuine, np.float64)
    g = g[np.isfinite(g)]
    return float(np.quantile(g, frr))


def report(s: dict, thr: float) -> dict:
    """Rates at threshold ``thr`` (a score under it, or NaN, is refused)."""
    def refused(x):
        x = np.asarray(x, np.float64)
        return ~(x >= thr)

    def rate(mask):
        mask = np.asarray(mask, bool)
        return {"n": int(mask.size), "k": int(mask.sum()),
                "rate": round(float(mask.mean()), 4) if mask.size else None}
    g, i = refused(s["genuine"]), refused(s["impostor"])
    out = {"threshold": round(thr, 4), "frr": rate(g), "far": rate(~i),
           "binding_bona_fide_denied": rate(s["bona_fide_binding_denies"]), "attacks": {}}
    for sp, a in s["attacks"].items():
        r, b = refused(a["score"]), np.asarray(a["binding_denies"], bool)
        out["attacks"][sp] = {"identity_refuses": rate(r), "binding_refuses": rate(b),
                              "either_refuses": rate(r | b),
                              "passed_binding_refused_by_identity": rate(r[~b])}
    return out


def cost(d: dict, feats: list, sensor: str, veins_out: bool, fkw: dict, kw: dict,
         n: int = 100) -> dict:
    """Median wall and thread-CPU ms of one presentation's feature (the hand cut included) and
    of one comparison, over the first ``n`` placed presentations of ``d``."""
    idx = [j for j, f in enumerate(feats) if f is not None][:n]
    if not idx:
        return {}
    fw, fc, cw, cc = [], [], [], []
    for j in idx:
        one = {k: v[j:j + 1] for k, v in d.items()}
        w, c = time.perf_counter(), time.thread_time()
        features(one, sensor, veins_out, **fkw)
        fw.append(time.perf_counter() - w)
        fc.append(time.thread_time() - c)
    for j, k in zip(idx, idx[1:] + idx[:1]):
        w, c = time.perf_counter(), time.thread_time()
        compare(sensor, feats[j], feats[k], **kw)
        cw.append(time.perf_counter() - w)
        cc.append(time.thread_time() - c)
    med = lambda x: round(float(np.median(x)) * 1000, 2)  # noqa: E731
    return {"n": len(idx), "feature_wall": med(fw), "feature_cpu": med(fc),
            "compare_wall": med(cw), "compare_cpu": med(cc)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="render and measure presentations into an .npz")
    r.add_argument("--sensor", choices=("xray", "nir"), required=True)
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--people", type=int, default=40)
    r.add_argument("--bona-fide", type=int, default=160)
    r.add_argument("--attacks", type=int, default=60, help="presentations per attack species")
    r.add_argument("--out", required=True)
    s = sub.add_parser("score", help="operating point on --fit, rates on --test")
    s.add_argument("--sensor", choices=("xray", "nir"), required=True)
    s.add_argument("--fit", required=True, help="the validation seed's .npz")
    s.add_argument("--test", default=None, help="the fresh seed's .npz")
    s.add_argument("--frr", type=float, default=0.005)
    s.add_argument("--shift-mm", type=float, default=None,
                   help="largest shift searched (NIR 4 mm; X-ray bones: xray_identity.SHIFT_MM)")
    s.add_argument("--xray-feature", choices=("lengths", "bones"), default="lengths",
                   help="X-ray: the phalanx lengths or the bone patch (device/eval/xray_identity)")
    s.add_argument("--veins", action="store_true", help="NIR: compare the veins too")
    s.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "render":
        d = render(a.sensor, a.seed, a.bona_fide, a.attacks, a.people,
                   log=lambda m: print(m, file=sys.stderr, flush=True))
        np.savez_compressed(a.out, **d)
        return 0
    from device.eval import xray_identity as X
    bones = a.sensor == "xray" and a.xray_feature == "bones"
    kw = {}
    if a.sensor == "nir" or bones:
        kw["shift_mm"] = a.shift_mm if a.shift_mm is not None else \
            (X.SHIFT_MM if bones else 4.0)
    fkw = {"xray": a.xray_feature} if a.sensor == "xray" else {}
    res = {"command": "python -m device.eval.sensor_identity_eval " +
           " ".join(sys.argv[1:] if argv is None else argv)}
    fit = dict(np.load(a.fit))
    ff = features(fit, a.sensor, not a.veins, **fkw)
    sf = scores(fit, ff, a.sensor, **kw)
    thr = threshold_at(sf["genuine"], a.frr)
    res["fit"] = report(sf, thr)
    res["cost_ms"] = cost(fit, ff, a.sensor, not a.veins, fkw, kw)
    if a.test:
        te = dict(np.load(a.test))
        res["test"] = report(scores(te, features(te, a.sensor, not a.veins, **fkw), a.sensor,
                                    **kw), thr)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
