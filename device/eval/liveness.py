"""``palmgate evaluate-liveness`` and ``palmgate evaluate-sr``: presentation-attack detection
test (ISO/IEC 30107-3 names) and the super-resolution stage's PSNR/SSIM against bicubic.

Liveness data layout: ``DIR/bona_fide/**`` and ``DIR/attack/<species>/**`` (either part may be
missing). A sample is either

* a *sensor frame* (an image at any depth): it goes through the sensor stage exactly as the gate
  runs it (:meth:`device.models.sensor_branch.SensorBranch.judge`: presence -> SR -> liveness)
  and is not bound to any views (the report counts these as ``not_bound``); or
* a *presentation*: a folder in the recorded-burst layout (``view_0.png .. view_<K-1>.png``,
  ``sensor.png``; :mod:`device.eval.liveness_presentations`, written by ``python -m tools.synth
  liveness --presentations``): it goes through the gate's own pipeline -- quality, calibration,
  palm regions (the front end's landmarks), presence -> SR -> liveness, then the binding of the
  sensor frame to the views (``sensor_mismatch``) -- and is accepted only when every stage
  accepts.

Every sample gets the gate's deny reason (``no_hand_in_sensor``, ``not_live``,
``sensor_mismatch``, ``quality:<issue>`` ...) or none. A species folder named ``no_hand``
(frames with no hand, e.g. written by ``python -m tools.synth no-hand``) is scored like any
other species. The training and review readers (:func:`scan_liveness_dir`) take a
presentation's ``sensor.png`` as its frame and skip its views.

The *stage score* of a sample is its p(live) when it reached liveness and no stage other than
liveness denied it, and :data:`DENIED` (-1) when another stage denied it (before liveness, or
the binding after it), so a presentation is classified as an attack (non-live) when its stage
score <= threshold, and the rates below are the gate's.

* APCER(species) -- proportion of that species' attack presentations classified bona fide
  (p > threshold); ``apcer_max`` the largest over species.
* BPCER -- proportion of bona fide presentations classified as attacks (p <= threshold).
* BPCER20 / BPCER100 -- BPCER at the most permissive threshold where APCER of *every* species is
  at most 5 % / 1 % (i.e. APCER_max <= 1/20, 1/100; the worst-case reading of 30107-3).

SR pairs layout: ``DIR/lr/<name>`` and ``DIR/hr/<name>`` (same names, hr twice the size).
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm"}
DENIED = -1.0
"""Stage score of a sample denied by a stage other than liveness (no hand, not bound to the
views, no palm regions)."""


# --------------------------------------------------------------------------------------------
# data


def _images_under(d: Path) -> list[Path]:
    """The images under ``d``; of a presentation folder (views + ``sensor.png``) only its
    ``sensor.png``, which stands for the presentation."""
    if not d.is_dir():
        return []
    from device.eval.liveness_presentations import SENSOR_FILE, is_presentation
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    pres = {p.parent for p in files if p.name == SENSOR_FILE and is_presentation(p)}
    return [p for p in files if p.parent not in pres or p.name == SENSOR_FILE]


def scan_liveness_dir(root) -> tuple[list[Path], dict[str, list[Path]]]:
    """(bona fide files, {species: attack files}) of a liveness-layout folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"liveness data folder not found: {root}")
    bona = _images_under(root / "bona_fide")
    attacks = {}
    adir = root / "attack"
    if adir.is_dir():
        for sp in sorted(p for p in adir.iterdir() if p.is_dir()):
            files = _images_under(sp)
            if files:
                attacks[sp.name] = files
    if not bona and not attacks:
        raise ValueError(f"{root} holds no images under bona_fide/ or attack/<species>/")
    return bona, attacks


def read_grey(path) -> np.ndarray:
    im = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if im is None:
        raise ValueError(f"cannot decode image {path}")
    return im


# --------------------------------------------------------------------------------------------
# ISO/IEC 30107-3 rates


def apcer(attack_scores, threshold: float) -> float:
    """Attack presentations classified bona fide: p(live) > threshold."""
    a = np.asarray(attack_scores, np.float64)
    return float(np.mean(a > threshold)) if a.size else float("nan")


def bpcer(bona_scores, threshold: float) -> float:
    """Bona fide presentations classified as attacks: p(live) <= threshold."""
    b = np.asarray(bona_scores, np.float64)
    return float(np.mean(b <= threshold)) if b.size else float("nan")


def threshold_at_apcer(attacks: dict[str, np.ndarray], target: float) -> float:
    """Smallest threshold at which every species' APCER is <= ``target``."""
    thr = -np.inf
    for s in attacks.values():
        s = np.sort(np.asarray(s, np.float64))[::-1]
        if s.size == 0:
            continue
        allowed = int(math.floor(target * s.size + 1e-9))   # may score above the threshold
        t = s[allowed] if allowed < s.size else -np.inf
        thr = max(thr, t)
    return float(thr)


def bpcer_at_apcer(bona, attacks: dict[str, np.ndarray], target: float) -> float:
    if not attacks or len(np.asarray(bona)) == 0:
        return float("nan")
    return bpcer(bona, threshold_at_apcer(attacks, target))


def pad_rates(bona, attacks: dict[str, np.ndarray], threshold: float) -> dict:
    """The report's rates at ``threshold`` (NaN -> None for JSON)."""
    ap = {k: apcer(v, threshold) for k, v in attacks.items()}
    worst = max(ap, key=ap.get) if ap else None

    def j(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else x

    return {"apcer": {k: j(v) for k, v in ap.items()},
            "apcer_max": j(ap[worst]) if worst else None, "apcer_max_species": worst,
            "bpcer": j(bpcer(bona, threshold)),
            "bpcer20": j(bpcer_at_apcer(bona, attacks, 0.05)),
            "bpcer100": j(bpcer_at_apcer(bona, attacks, 0.01)),
            "threshold": float(threshold)}


def choose_threshold(bona, attacks: dict[str, np.ndarray]) -> float:
    """Validation-time choice: the threshold minimising max(APCER_max, BPCER), then
    APCER_max + BPCER; among equally good thresholds the middle of the interval, taken in
    logit space (scores of a softmax pile up near 0 and 1)."""
    b = np.asarray(bona, np.float64)
    allv = np.concatenate([b] + [np.asarray(v, np.float64) for v in attacks.values()])
    eps = 1e-7
    lg = np.log(np.clip(allv, eps, 1 - eps)) - np.log1p(-np.clip(allv, eps, 1 - eps))
    cands = np.unique(np.concatenate([lg, [lg.min() - 1, lg.max() + 1]]))
    mids = np.concatenate([cands, (cands[:-1] + cands[1:]) / 2])
    mids.sort()
    keys = []
    for t in mids:
        p = 1 / (1 + np.exp(-t))
        am = max((apcer(v, p) for v in attacks.values()), default=0.0)
        bp = bpcer(b, p) if b.size else 0.0
        keys.append((max(am, bp), am + bp))
    keys_arr = np.array(keys)
    k0 = min(keys)
    ok = np.where((keys_arr[:, 0] == k0[0]) & (keys_arr[:, 1] == k0[1]))[0]
    # longest run of consecutive optimal candidates, its middle in logit space
    runs, start = [], ok[0]
    for a, b2 in zip(ok[:-1], ok[1:]):
        if b2 != a + 1:
            runs.append((start, a))
            start = b2
    runs.append((start, ok[-1]))
    lo, hi = max(runs, key=lambda r: mids[r[1]] - mids[r[0]])
    t = (mids[lo] + mids[hi]) / 2
    return float(np.clip(1 / (1 + np.exp(-t)), 1e-6, 1 - 1e-6))


# --------------------------------------------------------------------------------------------
# DET plot (OpenCV drawing: the runtime has no plotting library)

_DET_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]
_COLOURS = [(200, 60, 40), (40, 140, 40), (40, 60, 200), (160, 40, 160), (0, 140, 170),
            (120, 120, 0), (90, 90, 90), (0, 90, 200)]


def _probit(p: float) -> float:
    return statistics.NormalDist().inv_cdf(min(max(p, 1e-6), 1 - 1e-6))


def det_png(path, bona, attacks: dict[str, np.ndarray], threshold: float, title: str) -> None:
    """DET curves (BPCER against APCER of each species, normal-deviate axes from 0.1 % to
    40 %; rates of 0 are drawn on the axis) with the operating point at ``threshold``."""
    W, H, m = 560, 520, 70
    img = np.full((H, W, 3), 255, np.uint8)
    lo, hi = _probit(_DET_TICKS[0]), _probit(_DET_TICKS[-1])

    def xy(apc, bpc):
        fx = (_probit(max(apc, _DET_TICKS[0])) - lo) / (hi - lo)
        fy = (_probit(max(bpc, _DET_TICKS[0])) - lo) / (hi - lo)
        return (int(m + min(fx, 1) * (W - m - 20)), int(H - m - min(fy, 1) * (H - m - 40)))

    for t in _DET_TICKS:
        x, _ = xy(t, 0)
        _, y = xy(0, t)
        cv2.line(img, (x, 40), (x, H - m), (225, 225, 225), 1)
        cv2.line(img, (m, y), (W - 20, y), (225, 225, 225), 1)
        lab = f"{t * 100:g}"
        cv2.putText(img, lab, (x - 10, H - m + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(img, lab, (m - 35, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.rectangle(img, (m, 40), (W - 20, H - m), (0, 0, 0), 1)
    cv2.putText(img, "APCER (%)", (W // 2 - 40, H - 25), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1)
    cv2.putText(img, "BPCER (%)", (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(img, title[:60], (m, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    b = np.sort(np.asarray(bona, np.float64))
    for k, (sp, s) in enumerate(sorted(attacks.items())):
        col = _COLOURS[k % len(_COLOURS)]
        s = np.asarray(s, np.float64)
        if b.size and s.size:
            thr = np.unique(np.concatenate([b, s, [-np.inf]]))
            pts = [xy(apcer(s, t), bpcer(b, t)) for t in thr]
            cv2.polylines(img, [np.array(pts, np.int32)], False, col, 2, cv2.LINE_AA)
            cv2.circle(img, xy(apcer(s, threshold), bpcer(b, threshold)), 5, col, -1)
        cv2.putText(img, sp, (W - 200, 60 + 16 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1)
    cv2.putText(img, f"dots: threshold {threshold:.4g}", (m + 8, H - m - 10),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


# --------------------------------------------------------------------------------------------
# commands


def stage_score(p_live, reason, p_phantom=None) -> float:
    """p(live) when liveness ran and no other stage denied, else :data:`DENIED` (the X-ray
    phantom check's ``not_live`` too: ``p_phantom`` known, p(live) passed)."""
    from device.models.sensor_branch import phantom_denied
    if p_live is None or reason not in (None, "not_live") or phantom_denied(p_phantom, reason):
        return DENIED
    return float(p_live)


def stage_scores(branch, frames) -> tuple[np.ndarray, list]:
    """(stage scores, deny reasons (None: passed)) of frames through ``branch.judge`` -- the
    gate's sensor stage."""
    res = branch.judge(frames)
    return (np.array([stage_score(r.p_live, r.reason, getattr(r, "p_phantom", None))
                      for r in res], np.float64),
            [r.reason for r in res])


def _counts(reasons) -> dict:
    out: dict = {}
    for r in reasons:
        k = r or "passed"
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def _bound_counts(kinds) -> dict:
    out = {"presentations": 0, "bound": 0, "not_bound": 0}
    for k in kinds:                       # "frame", "presentation" or "bound"
        out["presentations"] += k != "frame"
        out["bound"] += k == "bound"
        out["not_bound"] += k != "bound"
    return out


def _phantom_models(branch) -> dict:
    """The phantom check the stage ran (file, sha256, signed threshold); {} where none."""
    ph = getattr(branch, "phantom", None)
    if ph is None:
        return {}
    return {"phantom": ph.model.path.name, "phantom_sha256": ph.model.entry["sha256"],
            "phantom_threshold": ph.threshold}


def evaluate_liveness(data_dir, sensor: str, out_dir, precision: str = "fp32",
                      models_dir=None, threads: int = 0, threshold: float | None = None,
                      config=None) -> dict:
    """Score every sample of ``data_dir`` with the shipped sensor stage (and, for
    presentations, the gate's pipeline up to the binding; ``config``: the gate's TOML whose
    calibration gives the registration); write OUT/report.json, OUT/scores.npz
    (``bona_fide``, ``attack``, ``attack_species``, ``bona_fide_files``, ``attack_files``,
    ``bona_fide_reason``, ``attack_reason``, ``bona_fide_kind``, ``attack_kind``: frame /
    presentation / bound, ``bona_fide_binding``, ``attack_binding``: the binding score, NaN
    where the binding did not run) and OUT/det.png.  Returns the report."""
    from device.eval.liveness_presentations import (PresentationStages, is_presentation,
                                                    read_rig, stage_config)
    from device.models.model import DEFAULT_MODELS_DIR
    from device.models.sensor_branch import SensorBranch

    branch = SensorBranch(sensor, precision, models_dir or DEFAULT_MODELS_DIR, threads,
                          threshold=threshold)
    bona_files, attack_files = scan_liveness_dir(data_dir)
    every = bona_files + [f for fs in attack_files.values() for f in fs]
    is_pres = {f: is_presentation(f) for f in every}
    stages = None
    if any(is_pres.values()):
        stages = PresentationStages(stage_config(sensor, precision, models_dir, threads,
                                                 threshold, config, read_rig(data_dir)),
                                    branch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def score(files):
        """(stage scores, reasons, kinds, binding scores (NaN: not bound)) in file order:
        frames in batches, presentations one at a time (as the gate takes them)."""
        ps, why, kind = np.full(len(files), DENIED), [None] * len(files), ["frame"] * len(files)
        bs = np.full(len(files), np.nan)
        frames = [i for i, f in enumerate(files) if not is_pres[f]]
        for k in range(0, len(frames), 64):
            part = frames[k:k + 64]
            p, r = stage_scores(branch, [read_grey(files[i]) for i in part])
            ps[part] = p
            for i, ri in zip(part, r):
                why[i] = ri
        for i, f in enumerate(files):
            if is_pres[f]:
                j = stages(f)
                ps[i], why[i] = stage_score(j.p_live, j.reason, j.p_phantom), j.reason
                kind[i] = "presentation" if j.binding is None else "bound"
                bs[i] = np.nan if j.binding is None else j.binding
        return ps, why, kind, bs

    try:
        bona, bona_why, bona_kind, bona_bs = score(bona_files)
        scored = {sp: score(fs) for sp, fs in attack_files.items()}
    finally:
        if stages is not None:
            stages.close()
    attacks = {sp: v[0] for sp, v in scored.items()}
    why = {sp: v[1] for sp, v in scored.items()}
    thr = branch.threshold
    pres = branch.presence
    binding = stages.binding if stages is not None else None
    report = {"sensor": sensor, "precision": precision, "data": str(data_dir),
              **pad_rates(bona, attacks, thr),
              "n_bona_fide": int(bona.size),
              "n_attack": {k: int(v.size) for k, v in attacks.items()},
              "errors": {"bona_fide_rejected": int(np.sum(bona <= thr)),
                         "attacks_accepted": {k: int(np.sum(v > thr))
                                              for k, v in attacks.items()}},
              "deny_reasons": {"bona_fide": _counts(bona_why),
                               "attack": {k: _counts(v) for k, v in why.items()}},
              "binding": {"bona_fide": _bound_counts(bona_kind),
                          "attack": {k: _bound_counts(v[2]) for k, v in scored.items()},
                          "threshold": None if binding is None else binding.max_score,
                          "min_palm_lines": None if binding is None else binding.min_texture,
                          "registration": None if binding is None else binding.source},
              "models": {"presence": pres.model.path.name,
                         "presence_threshold": pres.threshold,
                         "sr": branch.sr_model.path.name,
                         "liveness": branch.liveness_model.path.name,
                         "liveness_sha256": branch.liveness_model.entry["sha256"],
                         **_phantom_models(branch)},
              "definitions": "a sensor frame goes through the gate's sensor stage (presence "
                             "-> SR -> liveness, then for X-ray the phantom check where the "
                             "signed manifest lists it: a refused frame is denied, not_live) "
                             "and is not bound to views; a presentation "
                             "(views + sensor.png) through the gate's pipeline: quality, "
                             "calibration, palm regions, presence -> SR -> liveness, binding "
                             "to the views' landmarks; APCER(species) = share of that "
                             "species' samples every stage passes (p(live) > threshold); "
                             "BPCER = share of bona fide denied (any reason); BPCER20/100 = "
                             "BPCER where APCER of every species <= 5 % / 1 % (samples denied "
                             "by another stage than liveness stay denied); binding: bound = "
                             "presentations the binding judged, not_bound = frames and "
                             "presentations denied before it"}
    if stages is not None and binding is None:
        report["binding"]["note"] = "[liveness] binding = false: presentations not bound"
    sp_arr = [sp for sp, v in attacks.items() for _ in range(v.size)]
    np.savez(out / "scores.npz", bona_fide=bona,
             attack=np.concatenate(list(attacks.values())) if attacks else np.zeros(0),
             attack_species=np.array(sp_arr, dtype=str),
             bona_fide_files=np.array([str(f) for f in bona_files], dtype=str),
             attack_files=np.array([str(f) for fs in attack_files.values() for f in fs],
                                   dtype=str),
             bona_fide_reason=np.array([r or "" for r in bona_why], dtype=str),
             attack_reason=np.array([r or "" for v in why.values() for r in v], dtype=str),
             bona_fide_kind=np.array(bona_kind, dtype=str),
             attack_kind=np.array([k for v in scored.values() for k in v[2]], dtype=str),
             bona_fide_binding=bona_bs,
             attack_binding=np.concatenate([v[3] for v in scored.values()]) if scored else
             np.zeros(0),
             threshold=np.float64(thr))
    det_png(out / "det.png", bona, attacks, thr,
            f"{sensor} sensor stage ({precision}), {bona.size} bona fide, "
            f"{sum(v.size for v in attacks.values())} attacks")
    report["det_png"] = str(out / "det.png")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) of two
    images in [0, 1]."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def g(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    ma, mb = g(a), g(b)
    va, vb, cab = g(a * a) - ma * ma, g(b * b) - mb * mb, g(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cab + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s[5:-5, 5:-5].mean())


def bicubic_x2(lr: np.ndarray) -> np.ndarray:
    h, w = lr.shape
    return np.clip(cv2.resize(lr.astype(np.float32), (2 * w, 2 * h),
                              interpolation=cv2.INTER_CUBIC), 0, 1)


def sr_quality(lr: np.ndarray, hr: np.ndarray, sr: np.ndarray, border: int = 4) -> dict:
    """PSNR (dB) and SSIM of the SR output and of bicubic x2 against the HR image, all in
    [0, 1], ``border`` HR pixels shaved off each side."""
    s = slice(border, -border) if border else slice(None)
    bc = bicubic_x2(lr)
    return {"psnr_sr": psnr(sr[s, s], hr[s, s]), "psnr_bicubic": psnr(bc[s, s], hr[s, s]),
            "ssim_sr": ssim(sr[s, s], hr[s, s]), "ssim_bicubic": ssim(bc[s, s], hr[s, s])}


def summarise_sr(rows: list[dict]) -> dict:
    keys = ("psnr_sr", "psnr_bicubic", "ssim_sr", "ssim_bicubic")
    out = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}
    out["psnr_gain_db"] = round(out["psnr_sr"] - out["psnr_bicubic"], 3)
    out["ssim_gain"] = round(out["ssim_sr"] - out["ssim_bicubic"], 4)
    out["pairs"] = len(rows)
    out["psnr_gain_min_db"] = round(float(np.min([r["psnr_sr"] - r["psnr_bicubic"]
                                                  for r in rows])), 3)
    return out


def evaluate_sr(data_dir, sensor: str, out_dir=None, precision: str = "fp32",
                models_dir=None, threads: int = 0) -> dict:
    """PSNR/SSIM of the shipped SR model and of bicubic x2 on DIR/lr, DIR/hr pairs."""
    from device.models.model import DEFAULT_MODELS_DIR, Model
    from device.models.sensor_branch import model_names

    d = Path(data_dir)
    lr_files = _images_under(d / "lr")
    if not lr_files:
        raise ValueError(f"{d} holds no images under lr/")
    model = Model(model_names(sensor, precision)[0], models_dir or DEFAULT_MODELS_DIR, threads)
    rows = []
    for f in lr_files:
        hf = d / "hr" / f.relative_to(d / "lr")
        lr = read_grey(f).astype(np.float32) / 255.0
        hr = read_grey(hf).astype(np.float32) / 255.0
        if hr.shape != (2 * lr.shape[0], 2 * lr.shape[1]):
            raise ValueError(f"{hf} is not twice the size of {f}")
        sr = model(capture=lr[None, None])["sr"][0, 0]
        rows.append(sr_quality(lr, hr, sr))
    report = {"sensor": sensor, "precision": precision, "data": str(d),
              "model": model.path.name, **summarise_sr(rows), "border_px": 4}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
