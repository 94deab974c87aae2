"""``palmgate evaluate-protection``: template-protection test in the ISO/IEC 30136 sense.

On a standard-layout folder (``DIR/<subject>/<session>_<sample>.<ext>``):

- accuracy: cross-session (every session-1 image enrolled as a protected template with its own
  fresh key, every session-2 image as a query with the ±8 px shift search; with one session,
  all pairs of different images), protected against unprotected: EER, TAR at FAR 1e-3/1e-4,
  and the protected thresholds (calibrated on protected scores);
- unlinkability D_sys (Gomez-Barrero et al. 2018): linkage scores between protected templates
  of the same palm (different images, different keys) versus of different palms, the
  attacker holding the templates but not the keys (``dsys``), and holding the keys too
  (``dsys_key_known``: both templates key-stripped first); ``dsys_bins`` histogram bins,
  prior omega = 1;
- irreversibility: the share of protected templates inverted to a feature that the
  *unprotected* system accepts, at its FAR 1e-3 threshold, against the enrolment image's own
  feature (``inversion_success_*``) and against the palm's other-session images
  (``impersonation_*``): key unknown (the encrypted template taken as the feature: the key is
  uniform, nothing better is known) and key known (the appendix's key-strip attack);
- 1:N coarse-to-fine against exhaustive: agreement of the best template over the
  session-1 gallery for every session-2 query.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from device.eval.capture_scores import enrol_gallery, gallery_scores
from device.eval.metrics import eer, tar_at_far, threshold_at_far
from device.protect.core import ProtectConfig, enrol_many
from device.protect.gallery import enrol_and_score

DSYS_BINS = 100
FARS = ("1e-3", "1e-4")


# --------------------------------------------------------------------------- data
def load_features(root, extractor, max_subjects: int | None = None):
    """Features of every image of a layout: labels (N,), sessions (N,), templates (N, G, d),
    queries (N, S, G, d), subject names."""
    import cv2

    from device.sources.layout import by_subject, scan

    groups = by_subject(scan(root))
    names = sorted(groups)[:max_subjects] if max_subjects else sorted(groups)
    if not names:
        raise ValueError(f"no images in the standard layout under {root}")
    labels, sessions, T, Q = [], [], [], []
    for k, name in enumerate(names):
        for ref in groups[name]:
            im = cv2.imread(str(ref.path), cv2.IMREAD_GRAYSCALE)
            if im is None:
                raise ValueError(f"cannot decode image {ref.path}")
            if im.shape != (128, 128):
                im = cv2.resize(im, (128, 128), interpolation=cv2.INTER_AREA)
            q = extractor.query(im)
            Q.append(q)
            T.append(q[extractor.zero_shift])
            labels.append(k)
            sessions.append(ref.session)
    return (np.asarray(labels), np.asarray(sessions), np.stack(T), np.stack(Q), names)


def split_protocol(labels, sessions):
    """(enrolment indices, query indices, cross_session?)"""
    s = np.unique(sessions)
    if len(s) >= 2:
        return np.flatnonzero(sessions == s[0]), np.flatnonzero(sessions == s[1]), True
    idx = np.arange(len(labels))
    return idx, idx, False


# --------------------------------------------------------------------------- metrics
def dsys(mated, nonmated, bins: int = DSYS_BINS, omega: float = 1.0) -> float:
    """Global unlinkability D_sys (Gomez-Barrero et al., IEEE TIFS 2018): the mated-score
    weighted mean of D(s) = max(0, 2 LR(s) omega / (1 + LR(s) omega) - 1) on a shared
    histogram of ``bins`` bins; 0 = fully unlinkable, 1 = fully linkable."""
    m = np.asarray(mated, np.float64).ravel()
    n = np.asarray(nonmated, np.float64).ravel()
    lo, hi = min(m.min(), n.min()), max(m.max(), n.max())
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    pm = np.histogram(m, edges)[0] / m.size
    pn = np.histogram(n, edges)[0] / n.size
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.where(pn > 0, pm / np.where(pn > 0, pn, 1), np.inf)
        d = np.where(np.isinf(lr), 1.0, 2 * lr * omega / (1 + lr * omega) - 1)
    d = np.clip(np.nan_to_num(d, nan=0.0), 0.0, 1.0)
    return float(np.sum(pm * d))


def _acc(g, i) -> dict:
    out = {"eer": eer(g, i), "n_genuine": int(g.size), "n_impostor": int(i.size)}
    out["tar"] = {f: tar_at_far(g, i, float(f)) for f in FARS}
    out["threshold"] = {f: threshold_at_far(i, float(f)) for f in FARS}
    return out


def unprotected_scores(Qq, Tt, w):
    from device.recognition.cells import shift_max_scores
    return shift_max_scores(Qq, Tt, w)


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-30)


def _key_strip(data, keys, masks):
    k = np.broadcast_to(keys, data.shape)
    mk = np.where(masks, k, 0.0)
    ev = np.where(masks, data, 0.0)
    u = _unit(mk)
    return _unit(ev - np.sum(ev * u, -1, keepdims=True) * u)


def protected_block(config, w, Tt, Qq, rng, shortlist: int = 64, check_search: bool = False,
                    pick=None, owners=None, same=None):
    """Enrol ``Tt`` under fresh keys, score every query of ``Qq`` against every template
    (blocked, as ``palmgate evaluate --protected``), or with ``pick`` (nq, nt) boolean only
    the picked pairs (one query at a time; the rest are NaN)."""
    if pick is None:
        gal, enrolled = enrol_gallery(Tt, w, config, rng, shortlist=shortlist)
        S = gallery_scores(gal, Qq).T
    else:
        S, gal, enrolled = enrol_and_score(config, w, Tt, Qq, rng, shortlist=shortlist,
                                           pick=pick)
    agree = None
    if check_search:
        # coarse-to-fine against exhaustive: same best template, same score
        found = np.array([gal.search(q).index for q in Qq])
        best = S.argmax(1)
        agree = {"best_template_same": float(np.mean(found == best)),
                 "best_score_same": float(np.mean(
                     np.isclose(S[np.arange(len(Qq)), found], S.max(1), rtol=0, atol=1e-6))),
                 "shortlist": gal.shortlist_size(), "gallery": len(gal)}
        if owners is not None and same is not None:
            own = np.asarray(owners)
            for f in FARS:
                thr = threshold_at_far(S[~same], float(f))
                acc_f = S[np.arange(len(Qq)), found] >= thr
                acc_e = S.max(1) >= thr
                agree[f"same_decision_and_user_far_{f}"] = float(np.mean(
                    (acc_f == acc_e) & (~acc_e | (own[found] == own[best]))))
    return S, enrolled, agree


def evaluate_config(config: ProtectConfig, labels, sessions, T, Q, w, *, seed=None,
                    shortlist: int = 64, check_search: bool = False,
                    unprot: np.ndarray | None = None, impostors_per_query: int | None = None
                    ) -> dict:
    """All metrics of one configuration. ``impostors_per_query`` scores only that many random
    impostor templates per query with the protected matcher (sweeps); None scores all."""
    rng = np.random.default_rng(seed) if seed is not None else None
    ie, iq, cross = split_protocol(labels, sessions)
    same = labels[iq][:, None] == labels[ie][None, :]
    valid = np.ones_like(same) if cross else (iq[:, None] != ie[None, :])
    if unprot is None:
        unprot = unprotected_scores(Q[iq], T[ie], w)
    pick = None
    if impostors_per_query is not None:
        r = np.random.default_rng(12345).random(same.shape)
        r[same | ~valid] = 2.0
        k = min(impostors_per_query, same.shape[1] - 1)
        pick = same.copy()
        pick[np.arange(len(iq))[:, None], np.argsort(r, 1)[:, :k]] = True
        pick &= valid
    Sp, (data, keys, masks, fills), agree = protected_block(config, w, T[ie], Q[iq], rng,
                                                            shortlist, check_search, pick,
                                                            labels[ie], same & valid)
    sel = valid if pick is None else pick
    out = {"config": config.to_dict()}
    out["protected"] = _acc(Sp[same & sel], Sp[~same & sel])
    out["unprotected"] = _acc(unprot[same & valid], unprot[~same & valid])
    if agree is not None:
        out["search_1n"] = agree
    # --- unlinkability: a second, independent enrolment of the query-side images
    d2, k2, m2, _ = enrol_many(T[iq], config, importance=w, rng=rng)
    wv = np.sqrt(w)[None, :, None]
    A = (data * wv).reshape(len(ie), -1)
    B = (d2 * wv).reshape(len(iq), -1)
    L = B @ A.T
    mated, non = L[same & valid], L[~same & valid]
    out["dsys"] = dsys(mated, non)
    As = (_key_strip(data, keys, masks) * wv).reshape(len(ie), -1)
    Bs = (_key_strip(d2, k2, m2) * wv).reshape(len(iq), -1)
    Ls = Bs @ As.T
    out["dsys_key_known"] = dsys(Ls[same & valid], Ls[~same & valid])
    out["dsys_bins"] = DSYS_BINS
    # --- irreversibility against the unprotected system at its FAR 1e-3 threshold
    thr = out["unprotected"]["threshold"]["1e-3"]
    from device.recognition.cells import shift_max_scores
    own_q = Q[ie]
    for name, est in (("key_unknown", _unit(np.where(masks, data, 0.0))),
                      ("key_known", _key_strip(data, keys, masks))):
        own = np.array([shift_max_scores(own_q[j:j + 1], est[j:j + 1], w)[0, 0]
                        for j in range(len(ie))])
        out[f"inversion_success_{name}"] = float(np.mean(own >= thr))
        other = shift_max_scores(Q[iq], est, w)        # attacker's feature vs other images
        out[f"impersonation_{name}"] = float(np.mean(other[same & valid] >= thr))
    return out


def headline(r: dict) -> dict:
    return {"eer_protected": r["protected"]["eer"], "eer_unprotected": r["unprotected"]["eer"],
            "tar_protected": r["protected"]["tar"], "tar_unprotected": r["unprotected"]["tar"],
            "dsys": r["dsys"], "dsys_bins": r["dsys_bins"],
            "dsys_key_known": r["dsys_key_known"],
            "inversion_success_key_unknown": r["inversion_success_key_unknown"],
            "inversion_success_key_known": r["inversion_success_key_known"]}


def meets(r: dict, eer_margin: float = 0.003, dsys_max: float = 0.2,
          inv_max: float = 0.01) -> bool:
    return (r["protected"]["eer"] - r["unprotected"]["eer"] <= eer_margin
            and r["dsys"] <= dsys_max and r["inversion_success_key_unknown"] <= inv_max)


def drop_specs(drops=(), budgets=()) -> list[dict]:
    """The drop axis of a sweep: mode-A counts per sub-feature, then importance-driven drop
    budgets (claim 6)."""
    return ([{"drop_mode": "random", "n_drop": int(n), "drop_total": None} for n in drops]
            + [{"drop_mode": "importance", "drop_total": int(b)} for b in budgets])


def sweep(labels, sessions, T, Q, w, ts, drops, rotations=("fraction", "equal_distance"),
          base: ProtectConfig = ProtectConfig(), seed: int = 0, log=None,
          impostors_per_query: int | None = 100, budgets=()) -> list[dict]:
    """Every (rotation, t, drop): mode-A counts ``drops`` and importance-driven drop budgets
    (claim 6) ``budgets``; the other settings (fill, key mode) from ``base``. The protected
    matcher scores all genuine pairs and ``impostors_per_query`` random impostors per query
    (the unprotected side and D_sys use all pairs)."""
    ie, iq, _ = split_protocol(labels, sessions)
    unprot = unprotected_scores(Q[iq], T[ie], w)
    g = T.shape[1]
    rows = []
    for rot in rotations:
        for t in ts:
            for spec in drop_specs(drops, budgets):
                cfg = replace(base, t=float(t), rotation=rot, **spec)
                t0 = time.time()
                r = evaluate_config(cfg, labels, sessions, T, Q, w, seed=seed, unprot=unprot,
                                    impostors_per_query=impostors_per_query)
                row = {"rotation": rot, "t": float(t), "drop_mode": cfg.drop_mode,
                       "n_drop": int(cfg.n_drop), "drop_total": int(cfg.budget(g)),
                       "fill": cfg.fill, **headline(r), "meets_targets": meets(r),
                       "seconds": round(time.time() - t0, 1)}
                rows.append(row)
                if log:
                    log(row)
    return rows


def frontier(rows: list[dict]) -> list[dict]:
    """Pareto front over (protected EER, D_sys) -- lower is better on both."""
    front = []
    for r in rows:
        if not any(o["eer_protected"] <= r["eer_protected"] and o["dsys"] <= r["dsys"]
                   and (o["eer_protected"] < r["eer_protected"] or o["dsys"] < r["dsys"])
                   for o in rows):
            front.append(r)
    return sorted(front, key=lambda r: r["dsys"])


def choose(rows: list[dict], n_cells: int = 49, min_share: float = 0.5,
           dsys_margin: float = 0.5) -> dict | None:
    """The default rule: among configurations that meet every target, drop at least
    ``min_share`` of a dimension per sub-feature on average (the protection must drop
    elements, claim 1; the shipped budget 25 of 49 cells) and keep D_sys within
    ``dsys_margin`` of its budget (room for other data), the lowest protected EER (ties: lower
    D_sys). None if none. On 200 synthetic palms EER differences under ~0.1 pp are key noise
    (README): the shipped default was checked over several enrolment seeds and both validation
    sets, not one row."""
    ok = [r for r in rows if r["meets_targets"]
          and r.get("drop_total", r["n_drop"] * n_cells) >= min_share * n_cells
          and r["dsys"] <= dsys_margin * 0.2]
    if ok:
        return min(ok, key=lambda r: (round(r["eer_protected"], 5), r["dsys"]))
    return None


def run(root, out, config: ProtectConfig | None = None, seed: int | None = 0,
        do_sweep: bool = False, ts=(0.8, 0.85, 0.9, 0.95, 0.98), drops=(0, 1, 2, 4),
        rotations=("fraction", "orthographic", "equal_distance"), extractor=None,
        max_subjects=None, log=print, budgets=(12, 25)) -> dict:
    """The command: writes OUT/report.json (and OUT/sweep.json with ``do_sweep``)."""
    from device.protect.defaults import DEFAULT_CONFIG
    if extractor is None:
        from device.recognition.cells import CellExtractor
        extractor = CellExtractor()
    config = config or DEFAULT_CONFIG
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    labels, sessions, T, Q, names = load_features(root, extractor, max_subjects)
    w = extractor.importance
    t_feat = time.time() - t0
    r = evaluate_config(config, labels, sessions, T, Q, w, seed=seed, check_search=True)
    ie, iq, cross = split_protocol(labels, sessions)
    report = {**headline(r), "protocol": "cross-session" if cross else "all-pairs",
              "data": str(root), "subjects": len(names), "images": int(len(labels)),
              "config": config.to_dict(), "detail": r,
              "feature": type(extractor).__name__, "seconds_features": round(t_feat, 1),
              "meets_targets": meets(r),
              "targets": {"eer_margin_pp": 0.3, "dsys_max": 0.2,
                          "inversion_key_unknown_max": 0.01}}
    if do_sweep:
        rows = sweep(labels, sessions, T, Q, w, ts, drops, rotations,
                     base=config, seed=seed or 0, budgets=budgets,
                     log=lambda row: log(json.dumps(row)) if log else None)
        best = {rot: choose([x for x in rows if x["rotation"] == rot], n_cells=T.shape[1])
                for rot in rotations}
        sw = {"rows": rows, "frontier": frontier(rows), "best_meeting_targets": best}
        (out / "sweep.json").write_text(json.dumps(sw, indent=2))
        report["sweep"] = {"file": str(out / "sweep.json"), "best_meeting_targets": best,
                           "frontier": sw["frontier"]}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def config_from_args(a) -> ProtectConfig:
    """The shipped default with any of --t/--rotation/--n-drop/--drop-mode/--drop-total/
    --fill/--key-mode replaced (--n-drop alone also resets the importance-driven drop budget
    (claim 6) to n-drop x G)."""
    from device.protect.defaults import DEFAULT_CONFIG
    over = {k: getattr(a, k) for k in ("t", "rotation", "n_drop", "drop_mode", "drop_total",
                                       "fill", "key_mode") if getattr(a, k, None) is not None}
    if "n_drop" in over and "drop_total" not in over:
        over["drop_total"] = None
    return replace(DEFAULT_CONFIG, **over).check()
