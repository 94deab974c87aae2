"""Measurements of split mode against the plaintext gate (in-process pair of nodes with the
real channel; the arithmetic is that of two processes).

``split_eval``: session-1 images of ``subjects`` palms are enrolled through the split
template path, session-2 images go through the split query path and the split 1:N match
(Beaver scores opened to node 0); every split feature is compared with the plaintext
``CellExtractor`` feature (cosine of the whole (25, 49, 16) query or (49, 16) template), and
every split score and decision with ``shift_max_scores`` on the plaintext features.

``leakage_report``: uniformity of everything node 1 receives (and, as a control that the test
has power, of opened plaintext values), correlation of the first message with the input, and
the least-squares input reconstruction from node 0's view in both modes.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from device.recognition.cells import shift_max_scores
from device.eval.split_bench import _tongji_dir
from device.split.cellnet import DEFAULT_FEATURE, CellNet, feature_extractor, query_from_dense
from device.split.dealer import Dealer
from device.split.local import LocalPair


def _images(data, subjects: int, per_session: int):
    d = Path(data) if data else _tongji_dir()
    if d is None:
        raise FileNotFoundError("no data folder (give --data DIR in the standard layout)")
    subj = sorted(p for p in d.iterdir() if p.is_dir())[:subjects]
    out = {1: [], 2: []}
    for s in subj:
        for sess in (1, 2):
            files = sorted(s.glob(f"{sess}_*"))[:per_session]
            for f in files:
                im = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                out[sess].append((s.name, cv2.resize(im, (128, 128))))
    return out


def _cos(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def split_eval(data=None, inputs: int = 1000, subjects: int = 100, mode: str = "shared",
               log=None, feature: str = DEFAULT_FEATURE) -> dict:
    log = log or (lambda m: None)
    per = max(1, inputs // (2 * subjects))
    ims = _images(data, subjects, per)
    ext = feature_extractor(feature)
    net = CellNet.from_extractor(ext, feature)
    enrol_set, query_set = ims[1], ims[2]
    pair = LocalPair(Dealer(net, mode, capacity=len(enrol_set)))
    t0 = time.perf_counter()
    cos_t, cos_q, T_plain, feat_err = [], [], [], []
    for k, (sid, im) in enumerate(enrol_set):
        t = pair.enrol(sid, im, reveal=True) / net.importance[:, None]
        T_plain.append(ext.template(im))
        cos_t.append(_cos(t, T_plain[-1]))
        feat_err.append(float(np.abs(t - T_plain[-1]).max()))
        if k % 100 == 0:
            log(f"enrolled {k + 1}/{len(enrol_set)}")
    T_plain = np.stack(T_plain)
    split_scores, Q_plain = [], []
    for k, (sid, im) in enumerate(query_set):
        q = ext.query(im)
        Q_plain.append(q)
        res, dense = pair.identify(im, threshold=0.0, reveal=True)
        cos_q.append(_cos(query_from_dense(dense), q))
        feat_err.append(float(np.abs(query_from_dense(dense) - q).max()))
        split_scores.append(res[3])
        if k % 100 == 0:
            log(f"queried {k + 1}/{len(query_set)}")
    elapsed = time.perf_counter() - t0
    S = np.stack(split_scores)
    P = shift_max_scores(np.stack(Q_plain), T_plain, ext.importance).astype(np.float64)
    genuine = np.array([[a == b for b, _ in enrol_set] for a, _ in query_set])
    imp = np.sort(P[~genuine])[::-1]
    # the midpoint between the impostor scores either side of the FAR's rank: a threshold
    # equal to one plaintext score would flip that pair on any error at all
    thresholds = {name: float((imp[int(far * len(imp)) - 1] + imp[int(far * len(imp))]) / 2)
                  for name, far in (("far_1e-3", 1e-3), ("far_1e-2", 1e-2))}
    agree = {}
    for name, th in thresholds.items():
        v = float(((S >= th) == (P >= th)).mean())
        # 1:N outcome: the subject of the best template and accept/reject (a subject has
        # several templates, whose scores can tie within the fixed-point error)
        ident_s = [(enrol_set[int(s.argmax())][0], bool(s.max() >= th)) for s in S]
        ident_p = [(enrol_set[int(p.argmax())][0], bool(p.max() >= th)) for p in P]
        agree[name] = {"threshold": th, "verification_agreement": v,
                       "identification_agreement": float(np.mean([a == b for a, b in
                                                                  zip(ident_s, ident_p)])),
                       "pairs_within_1e-4": int((np.abs(P - th) < 1e-4).sum()),
                       "closest_plain_score": float(np.abs(P - th).min()),
                       "split_tar": float((S[genuine] >= th).mean()),
                       "plain_tar": float((P[genuine] >= th).mean()),
                       "split_far": float((S[~genuine] >= th).mean()),
                       "plain_far": float((P[~genuine] >= th).mean())}
    cos_all = np.array(cos_t + cos_q)
    return {"mode": mode, "feature": feature, "inputs": int(len(cos_all)),
            "templates": len(enrol_set),
            "queries": len(query_set), "pairs": int(S.size),
            "cosine_min": float(cos_all.min()), "cosine_min_template": float(min(cos_t)),
            "cosine_min_query": float(min(cos_q)),
            "score_abs_err_max": float(np.abs(S - P).max()),
            "feature_abs_err_max": float(max(feat_err)),
            "decisions": agree, "seconds": elapsed}


def leakage_report(data=None, images: int = 5, seed: int = 0,
                   features: tuple = ("gabor", "unit"), guesses: dict | None = None,
                   public_subjects: int = 150) -> dict:
    """Transcript uniformity (secret-shared-kernel and plaintext-kernel modes, claims 8 and 9;
    the default feature) and, for every feature in ``features``, reconstructions of each ROI
    from what node 0 opens at the first non-linearity.  "gabor" (node 0 opens the responses at
    its pixels): least squares with the kernels node 0 has or can guess -- its shard
    (plaintext-kernel mode, claim 9: the kernels themselves; secret-shared-kernel mode, claim 8:
    a uniform share), in secret-shared-kernel mode also the textbook Gabor bank
    (``device/vision/gabor.py``) and any ``guesses`` (name -> (6, 45, 45) kernels).  Both
    features: a learned linear inverse (ridge regression from the view to the image, fitted on
    ``public_subjects`` other Tongji palms whose views the attacker computes with the
    published kernels).  "unit" opens squared norms only, so there is no least-squares
    system.  Every reconstruction is judged by the gate's plaintext feature: its cell score
    against the palm's own template."""
    from device.split.cellnet import F_R
    from device.eval.split_leakage import (input_correlation, ls_reconstruct, node1_transcript,
                                      node0_first_layer_view, node0_kernels, node0_unit_view,
                                      psnr_affine, ridge_reconstruct, uniformity_pvalue,
                                      view_map)
    from device.split.ring import encode
    ims = _images(data, images + 1, 1)[1]
    judge = feature_extractor("gabor")
    net = CellNet.shipped(DEFAULT_FEATURE)
    out = {"transcript_feature": DEFAULT_FEATURE}
    for mode in ("shared", "plain"):
        pair = LocalPair(Dealer(net, mode, capacity=4, seed=bytes(32)))
        msgs = node1_transcript(pair, ims[0][1], [im for _, im in ims[1:4]],
                                include_enrol=False)
        per = [uniformity_pvalue(m) for m in msgs]
        words = np.concatenate(msgs)
        first = msgs[0]
        x = ims[1][1].astype(np.float64)
        out[mode] = {"messages": len(msgs), "words": int(words.size),
                     "uniformity_p_min": uniformity_pvalue(words),
                     "per_message_p_min": float(min(per)),
                     "per_message_p_min_bonferroni": float(min(1.0, 8 * len(per) * min(per))),
                     "first_message_input_corr": (input_correlation(first, x)
                                                  if first.size == x.size else None)}
    own, vals = node0_first_layer_view(LocalPair(Dealer(CellNet.shipped("gabor"), "plain",
                                                        capacity=2)), ims[1][1])
    out["control_opened_values_p"] = uniformity_pvalue(encode(vals, F_R))
    guesses = {"public_bank": judge.bank, **(guesses or {})}
    public = _public_palms(data, skip=images + 1, n_subjects=public_subjects)
    out["reconstruction"] = {}
    for feature in features:
        fext = feature_extractor(feature)
        fnet = CellNet.from_extractor(fext, feature)
        unit = fnet.activation == "unit"
        attack, lam = _ridge_attack(fext.bank, unit, public, seed)
        mean_palm = public.mean(0)
        rows = []
        for sid, im in ims[:images]:
            T = judge.template(im)[None]
            r = {"subject": sid, "chance_psnr": 20 * np.log10(255 / im.std()),
                 "mean_palm_psnr": psnr_affine(mean_palm, im)}

            def judged(est):
                e = est - est.min()
                e = (255 * e / max(e.max(), 1e-12)).astype(np.float32)
                return {"psnr": psnr_affine(est, im),
                        "match_score": float(shift_max_scores(judge.query(e)[None], T,
                                                              judge.importance)[0, 0])}

            for mode in ("plain", "shared"):
                pair = LocalPair(Dealer(fnet, mode, capacity=2))
                tag = "claim9" if mode == "plain" else "claim8"
                # unit: node 0 opens squared norms only, so there is no linear system to solve
                own, vals = (node0_unit_view if unit else node0_first_layer_view)(pair, im)
                r[f"{tag}_ridge"] = judged(ridge_reconstruct(attack, view_map(own, vals)))
                if unit:
                    continue
                kernels = [("shard", node0_kernels(pair.shards[0]))]
                if mode == "shared":
                    kernels += list(guesses.items())
                for name, bank in kernels:
                    key = "claim9_ls" if mode == "plain" else f"claim8_ls_{name}"
                    r[key] = judged(ls_reconstruct(bank, own, vals, lam=1e-2, iters=300))
            rows.append(r)
        summary = {key: {"psnr_mean": float(np.mean([r[key]["psnr"] for r in rows])),
                         "match_score_mean": float(np.mean([r[key]["match_score"]
                                                            for r in rows])),
                         "match_score_max": float(max(r[key]["match_score"] for r in rows))}
                   for key in rows[0] if key.startswith("claim")}
        summary["chance_psnr_mean"] = float(np.mean([r["chance_psnr"] for r in rows]))
        # what knowing nothing of this palm gives: the public palms' mean image
        summary["mean_palm_psnr_mean"] = float(np.mean([r["mean_palm_psnr"] for r in rows]))
        summary["ridge_lambda"] = lam
        out["reconstruction"][feature] = {"summary": summary, "per_image": rows}
    return out


def _public_palms(data, skip: int, n_subjects: int) -> np.ndarray:
    """The attacker's public palms: session-1 and -2 images of ``n_subjects`` subjects after
    the first ``skip`` (the evaluated ones)."""
    d = Path(data) if data else _tongji_dir()
    subj = sorted(p for p in d.iterdir() if p.is_dir())[skip:skip + n_subjects]
    out = []
    for s in subj:
        for f in sorted(s.iterdir())[::2]:
            im = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if im is not None:
                out.append(cv2.resize(im, (128, 128)))
    return np.stack(out)


def _ridge_attack(bank: np.ndarray, unit: bool, public: np.ndarray, seed: int):
    """A node's best linear inverse for a feature, fitted on public palms: their first-layer
    openings computed in plaintext with the published kernels (responses at the owned
    pixels, or squared norms for the unit feature) under random ownership masks; the ridge
    strength picked on a fifth of the public palms.  Returns ((mean, scale, W), lambda)."""
    from device.recognition.cells import orientation_responses
    from device.eval.split_leakage import (fit_ridge_attack, psnr_affine, ridge_reconstruct,
                                      view_map)
    rng = np.random.default_rng(seed)
    views = []
    for im in public:
        r = orientation_responses(im, bank).reshape(len(bank), -1).T.astype(np.float64)
        if unit:
            r = (r * r).sum(1, keepdims=True)
        own = rng.random(len(r)) < 0.5
        views.append(view_map(own, r[own]))
    views = np.stack(views)
    n_fit = len(public) * 4 // 5
    best = None
    for lam in (1.0, 10.0, 100.0, 1e3, 1e4, 1e5):
        m = fit_ridge_attack(views[:n_fit], public[:n_fit], lam)
        p = np.mean([psnr_affine(ridge_reconstruct(m, v), im)
                     for v, im in zip(views[n_fit:], public[n_fit:])])
        if best is None or p > best[0]:
            best = (p, lam)
    return fit_ridge_attack(views, public, best[1]), best[1]
