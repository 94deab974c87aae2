"""The NIR sensor identity check on real pegged NIR captures (PolyU's NIR band layout,
``<data>/<palm>/<session>_<sample>.jpg``): a palm enrolled from its session-1 frames, probed
with its session-2 frames (genuine across days), its own other session-1 frames (genuine, same
day, for contrast) and every other palm's (impostor); and the sensor stage's bona fide rate
with presence, liveness and the identity check together (fp32 and int8).

    python -m device.eval.real_nir_identity run --data ../shared/data/real/polyu_nir \\
        --palms test --out real_nir_test.json

**How the gate's patch is mapped onto a frame with no views.** At the gate the palm patch
(:func:`device.gate.sensor_identity.palm_patch`) is placed by the views' hand landmarks carried
into the sensor frame by the binding (wrist, thumb base, the four knuckles); a pegged contact
frame has no views and shows neither the wrist nor the finger tips (the hand-landmark network
finds a hand in 44 of PolyU's 3,000 frames). Here:

- the landmarks come from the frame's own finger valleys (the classical NIR path,
  :func:`device.vision.regions.extract_regions`: index-middle, middle-ring and ring-little
  valleys, the palm on the wrist side), placed by :data:`VALLEY_LANDMARKS`: the median of the
  gate's landmarks in the valley frame (origin between the index-middle and ring-little
  valleys, one valley span a unit, y toward the wrist) over the views of synthetic hands
  (:func:`valley_template`, command :data:`TEMPLATE_COMMAND`). Without a thumb valley the
  classical path cannot tell a left palm from a right one: the valley frame's handedness is
  fixed by the palm's side (:data:`CHIRALITY`), so a left palm's landmarks are mirrored, the
  same way in every frame of that palm;
- the scale is the sensor's, one number (a contact sensor with a peg: no height to correct):
  :data:`PEGGED_PX_MM`, the median valley span of the validation palms' frames in pixels over
  the synthetic hands' median span in mm (:data:`SCALE_RULE`);
- the frame is brought to the gate's NIR sensor resolution (``--resolution gate``, the
  resolution the signed threshold was chosen at: 1.067 px/mm, area resampling), or taken as the
  128x128 capture the liveness model sees (``capture``: the centre square), or at its own
  (``native``);
- the palm area is cut to the hand's region of the frame (its segmentation), less
  :data:`~device.gate.binding_texture.INSET_MM`: at the gate the palm's polygon lies inside the
  hand; here the frame's edge and the peg cut the hand.

Enrolment keeps the first ``--enrol`` session-1 frames (default 2, as every run recorded before
2026-12-07; the product and `palmgate demo` enrol 3: ``--enrol 3``); a
probe's agreement is the best over the palm's templates
(:func:`device.gate.sensor_identity.best_agreement`), as at the gate. The threshold is the
signed ``sensor_identity.min_agreement`` of ``models/binding_nir.json`` unless ``--threshold``.

Palms (``--palms``): the subject-disjoint split of the sensor-branch training
(tools/train/sensor_data.real_nir_split, the same permutation written here: device/ imports
nothing from tools/): ``train`` (150 palms the NIR presence and liveness models trained on),
``val`` (50 their thresholds were chosen on), ``test`` (50 no model trained or was tuned on),
``dev`` (train + val: the validation part of this measurement), ``all``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from device.gate import binding_texture as T
from device.gate import sensor_identity as S

VALLEY_LANDMARKS = {0: (-0.026, 2.270), 1: (0.749, 1.913), 5: (0.718, 0.330),
                    9: (0.234, 0.153), 13: (-0.225, 0.189), 17: (-0.637, 0.399)}
"""The gate's palm landmarks in the valley frame (x from the ring-little toward the
index-middle valley, y toward the wrist, one valley span a unit): medians over 178 views of 60
synthetic hands of seed 11 through the gate's front end (:data:`TEMPLATE_COMMAND`)."""

TEMPLATE_COMMAND = "python -m device.eval.real_nir_identity template --seed 11 --people 60"

PEGGED_PX_MM = 3.80
"""PolyU's NIR frames, pixels per mm: :data:`SCALE_RULE`."""

SCALE_RULE = ("the median valley span (index-middle to ring-little) of the 600 frames of the "
              "50 validation palms, 163.6 px, over the median span of 200 "
              "synthetic hands of seed 11, 43.05 mm")

CHIRALITY = ("Without a thumb valley the classical NIR path names the outer valleys by a guess "
             "that changed between the two sessions of one palm (0145: index-middle at the "
             "top in session 1, at the bottom in session 2), which mirrored the landmarks "
             "(the up direction 14 deg apart, past the comparison's turns; 3 of 1,200 "
             "validation probes not compared). So the valley frame's handedness is fixed by "
             "the palm's side alone: a left palm's landmarks are a right palm's mirrored, the "
             "same way in every frame of that palm.")

RESOLUTIONS = ("gate", "capture", "native")
SPLIT = {"val": (0.2, 0), "test": (0.25, 1)}


# ------------------------------------------------------------------------------ palms
def split_palms(names: list[str]) -> dict[str, list[str]]:
    """train / val / test palms of a sorted list of palm folders, as
    ``tools.train.sensor_data.real_nir_split`` splits them (val: 20 % by permutation seed 0;
    test: 25 % of the rest by seed 1), plus ``dev`` (train + val) and ``all``."""
    def split(n, frac, seed):
        perm = np.random.default_rng(seed).permutation(n)
        k = max(1, int(round(n * frac)))
        return np.sort(perm[k:]), np.sort(perm[:k])
    names = sorted(names)
    rest, val = split(len(names), *SPLIT["val"])
    rtr, rte = split(len(rest), *SPLIT["test"])
    out = {"train": [names[i] for i in rest[rtr]], "val": [names[i] for i in val],
           "test": [names[i] for i in rest[rte]]}
    out["dev"] = sorted(out["train"] + out["val"])
    out["all"] = names
    return out


def palm_files(data: Path, palm: str) -> dict[str, list[Path]]:
    """{session: its frames, sorted} of one palm folder (``<session>_<sample>.<ext>``)."""
    out: dict[str, list[Path]] = {}
    for f in sorted((Path(data) / palm).iterdir()):
        if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") and "_" in f.stem:
            out.setdefault(f.stem.split("_")[0], []).append(f)
    return out


# ------------------------------------------------------------------------------ the mapping
def landmarks_from_valleys(valleys: np.ndarray, palm_centre: np.ndarray,
                           template: dict = VALLEY_LANDMARKS) -> np.ndarray | None:
    """(21, 2) landmarks (NaN but the template's) placed by the valleys (4, 2: index-middle,
    middle-ring, ring-little, thumb-index) and ``template``; y toward ``palm_centre``, x the
    valley line's direction that makes (x, y) the template's handedness whichever outer
    valley was named index-middle (:data:`CHIRALITY`). None when the two outer valleys are
    not found."""
    v = np.asarray(valleys, np.float64)
    vim, vrl = v[0], v[2]
    if not (np.all(np.isfinite(vim)) and np.all(np.isfinite(vrl))):
        return None
    span = float(np.linalg.norm(vim - vrl))
    if span < 1e-6:
        return None
    x = (vim - vrl) / span
    y = np.array([-x[1], x[0]])
    o = (vim + vrl) / 2
    if float(np.dot(np.asarray(palm_centre, np.float64) - o, y)) < 0:
        y = -y
    x = np.array([y[1], -y[0]])         # the handedness fixed by the palm's side (CHIRALITY)
    lm = np.full((21, 2), np.nan)
    for k, (tx, ty) in template.items():
        lm[k] = o + span * (tx * x + ty * y)
    return lm


def frame_geometry(frame: np.ndarray):
    """(valleys, palm centre, hand mask uint8) of a grey NIR frame by the classical NIR path;
    None when it finds no palm (the RegionError's reason in the second item)."""
    from device.vision.region_types import RegionError
    from device.vision.regions import extract_regions
    try:
        r = extract_regions(frame, "nir")
    except RegionError as e:
        return None, e.reason
    return (r.keypoints.valleys, r.keypoints.palm_centre, r.hand_mask), None


def _resized(a: np.ndarray, f: float, nearest: bool = False) -> np.ndarray:
    h, w = a.shape
    return cv2.resize(a, (max(1, int(round(w * f))), max(1, int(round(h * f)))),
                      interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def gate_px_mm() -> float:
    """The gate's NIR sensor, pixels per mm on its working plane (the synthetic sensor the
    signed threshold was chosen with)."""
    from device.synth.bound import sensor_optics
    return float(sensor_optics("nir")[0])


def sensor_view(frame: np.ndarray, lm: np.ndarray, mask: np.ndarray, resolution: str,
                px_mm: float = PEGGED_PX_MM):
    """(grey float32 0..255, landmarks, pixels per mm, hand mask bool) of a frame at
    ``resolution`` (:data:`RESOLUTIONS`)."""
    g = np.asarray(frame, np.float32)
    m = np.asarray(mask, np.uint8)
    lm = np.asarray(lm, np.float64)
    if resolution == "native":
        return g, lm, px_mm, m > 0
    if resolution == "gate":
        f = gate_px_mm() / px_mm
        return _resized(g, f), (lm + 0.5) * f - 0.5, px_mm * f, _resized(m, f, True) > 0
    if resolution == "capture":                      # device.models.sensor_branch.to_capture
        h, w = g.shape
        side = min(h, w)
        r0, c0 = (h - side) // 2, (w - side) // 2
        f = 128.0 / side
        g, m = g[r0:r0 + side, c0:c0 + side], m[r0:r0 + side, c0:c0 + side]
        return (_resized(g, f), (lm - [c0, r0] + 0.5) * f - 0.5, px_mm * f,
                _resized(m, f, True) > 0)
    raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {resolution!r}")


def frame_patch(frame: np.ndarray, resolution: str = "gate", px_mm: float = PEGGED_PX_MM,
                veins_out: bool = True, size: int = S.PATCH_MM):
    """(palm patch or None, why not) of a pegged NIR frame (module docstring)."""
    geo, why = frame_geometry(frame)
    if geo is None:
        return None, why
    valleys, centre, mask = geo
    lm = landmarks_from_valleys(valleys, centre)
    if lm is None or mask is None:
        return None, "no_landmarks"
    g, lm, px, hand = sensor_view(frame, lm, mask, resolution, px_mm)
    r = int(round(T.INSET_MM * px))
    area = cv2.erode(hand.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0 if r > 0 else hand
    p = S.palm_patch(g, lm, px, veins_out, size, area=area)
    return (p, None) if p is not None else (None, "no_patch")


# ------------------------------------------------------------------------------ numbers
def wilson(k: int, n: int, z: float = 1.96) -> list:
    """The Wilson score interval (95 %) of a rate ``k`` of ``n``, percent."""
    if n <= 0:
        return [float("nan"), float("nan")]
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(100 * max(0.0, c - h), 3), round(100 * min(1.0, c + h), 3)]


def spread(x, qs=(0, 1, 5, 50, 95, 99, 99.9, 100)) -> dict:
    """Quantiles (percent -> value, 4 decimals) of the finite ``x`` and their count."""
    x = np.asarray([v for v in x if v is not None and np.isfinite(v)], np.float64)
    out = {"n": int(x.size)}
    if x.size:
        out.update({f"q{q:g}": round(float(np.percentile(x, q)), 4) for q in qs})
    return out


def rate(k: int, n: int) -> dict:
    return {"k": int(k), "n": int(n), "pct": round(100 * k / n, 3) if n else None,
            "wilson95_pct": wilson(k, n)}


# ------------------------------------------------------------------------------ the measurement
def patches_of(files: list[Path], resolution: str, veins_out: bool = True, log=None) -> dict:
    """{file: (patch or None, why not)}."""
    out = {}
    t = time.time()
    for i, f in enumerate(files):
        out[f] = frame_patch(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), resolution,
                             veins_out=veins_out)
        if log and (i + 1) % 200 == 0:
            log(f"  {i + 1}/{len(files)} patches ({time.time() - t:.0f} s)")
    return out


def stage_verdicts(files: list[Path], precision: str, models_dir=None, threads: int = 1
                   ) -> dict:
    """{file: deny reason or None} of the gate's sensor stage (presence, SR, liveness) on the
    raw frames (:class:`device.models.sensor_branch.SensorBranch`, as ``palmgate
    evaluate-liveness`` scores a frame)."""
    from device.eval.liveness import read_grey
    from device.models.model import DEFAULT_MODELS_DIR
    from device.models.sensor_branch import SensorBranch
    branch = SensorBranch("nir", precision, models_dir or DEFAULT_MODELS_DIR, threads)
    out = {}
    for k in range(0, len(files), 64):
        part = files[k:k + 64]
        for f, r in zip(part, branch.judge([read_grey(f) for f in part])):
            out[f] = r.reason
    return out


def _scorer(tmpl: dict, shift: float, cohort: dict | None, models_dir=None):
    """``score(palm, patch)``: the best agreement with the palm's templates, normalised by
    their cohort pair where ``cohort`` (the signed numbers) is given and the pair is made --
    the gate's rule (:func:`device.gate.identity_cohort.judged`), the pair made as enrolment
    makes it (:func:`device.gate.sensor_identity.cohort_pair`)."""
    from device.gate import identity_cohort as IC
    pairs = {}
    if cohort is not None:
        patches = IC.load_cohort(cohort["file"], models_dir)
        pairs = {p: S.cohort_pair(t, patches, shift) for p, t in tmpl.items()}
    return lambda p, x: IC.judged(S.best_agreement(tmpl[p], x, shift), pairs.get(p), cohort)


def measure(data, palms: list[str], resolution: str = "gate", enrol: int = 2,
            impostors: int | None = None, threshold: float | None = None,
            precisions=("fp32", "int8"), models_dir=None, seed: int = 0, log=None,
            at=(), scores: dict | None = None, cohort: bool = False) -> dict:
    """The report (module docstring): agreement spreads, denials at the threshold, impostors
    accepted, and the stage's bona fide rate with the identity check. ``impostors``: each
    palm's probes against that many other palms (chosen by ``seed``), None: all. ``at``:
    other thresholds whose genuine denials and impostor acceptances are reported too;
    ``scores``: gets the agreements (arrays) and the probes' files. ``cohort``: each palm's
    agreements normalised by its templates' cohort (mean, sd) over the signed cohort, as the
    gate judges a user enrolled with the pair (:mod:`device.gate.identity_cohort`; a palm
    whose pair cannot be made stays raw), and the threshold the cohort's ``min_agreement``."""
    data = Path(data)
    n = None
    if threshold is None or cohort:
        from device.gate.binding_numbers import load_binding_numbers
        n = S.identity_numbers(load_binding_numbers("nir", models_dir).doc)
        if cohort and n.get("cohort") is None:
            raise ValueError("--cohort: the signed NIR numbers name no cohort")
        if threshold is None:
            threshold = (n["cohort"] if cohort else n)["min_agreement"]
    shift = n["shift_mm"] if n else S.SHIFT_MM
    files = {p: palm_files(data, p) for p in palms}
    files = {p: fs for p, fs in files.items() if len(fs.get("1", [])) > enrol and fs.get("2")}
    every = [f for fs in files.values() for s in ("1", "2") for f in fs[s]]
    if log:
        log(f"{len(files)} palms, {len(every)} frames, resolution {resolution}")
    pat = patches_of(every, resolution, log=log)
    tmpl = {p: [pat[f][0] for f in fs["1"][:enrol] if pat[f][0] is not None]
            for p, fs in files.items()}
    score = _scorer(tmpl, shift, n["cohort"] if cohort else None, models_dir)
    cross, same, imp = {}, {}, []
    rng = np.random.default_rng(seed)
    names = sorted(files)
    for p, fs in files.items():
        for f in fs["2"]:
            cross[f] = score(p, pat[f][0])
        for f in fs["1"][enrol:]:
            same[f] = score(p, pat[f][0])
        others = [q for q in names if q != p]
        if impostors is not None and impostors < len(others):
            others = sorted(rng.choice(others, impostors, replace=False).tolist())
        for f in fs["2"]:
            imp += [score(q, pat[f][0]) for q in others]
    imp = np.asarray(imp, np.float64)
    cv, sv = np.asarray(list(cross.values())), np.asarray(list(same.values()))
    report = {
        "data": str(data), "palms": len(files), "resolution": resolution,
        "px_mm": {"frame": PEGGED_PX_MM, "gate": round(gate_px_mm(), 4)},
        "enrol": f"the first {enrol} session-1 frames of each palm",
        "threshold": threshold, "shift_mm": shift,
        "patch_failures": {str(f.relative_to(data)): why for f, (p, why) in pat.items()
                           if p is None},
        "palms_without_template": [p for p, t in tmpl.items() if not t],
        "genuine_cross_session": spread(cv),
        "genuine_same_session": spread(sv),
        "impostor": spread(imp),
        "genuine_cross_session_denied": rate(int(np.sum(~(cv >= threshold))), cv.size),
        "genuine_same_session_denied": rate(int(np.sum(~(sv >= threshold))), sv.size),
        "impostor_accepted": rate(int(np.sum(imp >= threshold)), imp.size),
        "genuine_cross_session_lowest": sorted(
            [(round(float(v), 4), str(f.relative_to(data))) for f, v in cross.items()],
            key=lambda x: (np.isfinite(x[0]), x[0]))[:10],
        "at": {f"{t:g}": {"genuine_cross_session_denied": rate(int(np.sum(~(cv >= t))), cv.size),
                          "genuine_same_session_denied": rate(int(np.sum(~(sv >= t))), sv.size),
                          "impostor_accepted": rate(int(np.sum(imp >= t)), imp.size)}
               for t in at},
        "stage": {},
    }
    if scores is not None:
        scores.update(cross=cv, same=sv, impostor=imp,
                      cross_files=np.array([str(f.relative_to(data)) for f in cross]),
                      same_files=np.array([str(f.relative_to(data)) for f in same]))
    probes = sorted(cross)
    enrols = [f for fs in files.values() for f in fs["1"][:enrol]]
    for prec in precisions:
        v = stage_verdicts(probes + enrols, prec, models_dir)
        passed = [f for f in probes if v[f] is None]
        both = [f for f in passed if cross[f] >= threshold]
        reasons: dict = {}
        for f in probes:
            r = v[f] or ("sensor_identity" if not cross[f] >= threshold else "passed")
            reasons[r] = reasons.get(r, 0) + 1
        report["stage"][prec] = {
            "bona_fide_denied_presence_liveness": rate(len(probes) - len(passed), len(probes)),
            "bona_fide_denied_with_identity": rate(len(probes) - len(both), len(probes)),
            "reasons": dict(sorted(reasons.items())),
            "enrolment_frames_refused": rate(sum(v[f] is not None for f in enrols),
                                             len(enrols)),
        }
    return report


# ------------------------------------------------------------------------------ the template
def valley_template(seed: int = 11, people: int = 60, views: int = 3) -> dict:
    """The gate's palm landmarks (the front end's, on the views of synthetic hands of
    ``seed``) in each view's valley frame (:func:`landmarks_from_valleys`'s inverse): medians
    and the count of views."""
    from device.config import load_config
    from device.gate.front_end_stage import front_end_from_config
    from device.synth.hands import render_hand_views
    from device.synth.source import SyntheticPeople
    cfg = load_config(None, gate={"views": views}, liveness={"sensor": "nir"})
    fe, _, _ = front_end_from_config(cfg)
    sp = SyntheticPeople(seed=seed, views=views, sensor="nir")
    rows = []
    for i in range(people):
        geom, ident = sp._person(i)
        rng = np.random.default_rng([seed, 77, i])
        tex = sp.synth.palms(ident, 1, rng)[0]
        for img, meta in render_hand_views(geom, tex, rng, views=views, rig=sp.rig):
            try:
                lm = fe(img).landmarks
            except Exception:       # noqa: BLE001 - a view the front end refuses: not counted
                continue
            if lm is None:
                continue
            v = np.array(meta["valleys"], np.float64)
            vim, vrl = v[0], v[2]
            span = float(np.linalg.norm(vim - vrl))
            x = (vim - vrl) / span
            y = np.array([-x[1], x[0]])
            o = (vim + vrl) / 2
            if float(np.dot(np.array(meta["palm_centre"]) - o, y)) < 0:
                y = -y
            P = np.asarray(lm, np.float64)[:, :2] - o
            rows.append(np.stack([P @ x, P @ y], 1) / span)
    a = np.asarray(rows)
    return {"views": len(rows), "landmarks": {k: [round(float(c), 3) for c in
                                                  np.median(a[:, k], 0)]
                                              for k in VALLEY_LANDMARKS}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.real_nir_identity",
                                 description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="measure on real pegged NIR frames")
    r.add_argument("--data", required=True)
    r.add_argument("--palms", default="test", choices=("train", "val", "test", "dev", "all"))
    r.add_argument("--resolution", default="gate", choices=RESOLUTIONS)
    r.add_argument("--enrol", type=int, default=2)
    r.add_argument("--impostors", type=int, default=None,
                   help="other palms each palm's probes meet (default: all)")
    r.add_argument("--threshold", type=float, default=None,
                   help="default: the signed sensor_identity.min_agreement")
    r.add_argument("--precision", nargs="+", default=["fp32", "int8"])
    r.add_argument("--models", default=None)
    r.add_argument("--at", type=float, nargs="*", default=[],
                   help="other thresholds to report the rates at")
    r.add_argument("--scores", default=None, help="an .npz for the agreements")
    r.add_argument("--cohort", action="store_true",
                   help="each palm's agreements normalised by its templates' cohort pair, as "
                        "the gate judges a user enrolled with it (the signed cohort's limit)")
    r.add_argument("--out", required=True)
    t = sub.add_parser("template", help="the valley-frame landmark template")
    t.add_argument("--seed", type=int, default=11)
    t.add_argument("--people", type=int, default=60)
    a = ap.parse_args(argv)
    if a.cmd == "template":
        print(json.dumps(valley_template(a.seed, a.people), indent=1))
        return 0
    data = Path(a.data)
    palms = split_palms([p.name for p in data.iterdir() if p.is_dir()])[a.palms]
    t0 = time.time()
    sc: dict = {}
    rep = measure(data, palms, a.resolution, a.enrol, a.impostors, a.threshold,
                  tuple(a.precision), a.models,
                  log=lambda m: print(m, file=sys.stderr, flush=True), at=a.at, scores=sc,
                  cohort=a.cohort)
    if a.scores:
        np.savez(a.scores, **sc)
    rep.update({"palm_set": a.palms, "seconds": round(time.time() - t0, 1),
                "command": "python -m device.eval.real_nir_identity " + " ".join(
                    argv if argv is not None else sys.argv[1:])})
    Path(a.out).write_text(json.dumps(rep, indent=1))
    keys = ("genuine_cross_session", "genuine_same_session", "impostor",
            "genuine_cross_session_denied", "impostor_accepted", "at", "stage")
    print(json.dumps({k: rep[k] for k in keys}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
