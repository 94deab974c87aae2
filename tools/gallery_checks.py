"""Checks of the gate's protected gallery on real palms (docs/results.md, issue 20):

    python -m tools.gallery_checks storage DIR [--feature hybrid|cells]
        protected scores of every session-1 image (enrolled, fixed seed) against every
        session-2 image, with the gallery kept in float32, float16 and int8: the largest and
        median score differences and the decisions that change at the 1e-4 threshold
    python -m tools.gallery_checks rank DIR --templates N [--feature ...] [--coarse-dims D]
        two session-1 templates per palm among chimera distractors (every cell from a random
        image of DIR at the same grid position) up to N templates; for every session-2 image,
        the rank of its palm's best template in the int8 coarse pass

DIR: the standard layout (e.g. the Tongji validation palms, `python -m tools.fit_cells_pca
--link-val DIR`). Prints JSON.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def _features(d, feature):
    from device.eval.protection import load_features
    if feature == "hybrid":
        from device.recognition.hybrid import HybridExtractor
        ex = HybridExtractor(precision="int8")
    else:
        from device.recognition.cells import CellExtractor
        ex = CellExtractor()
    lab, ses, T, Q, _ = load_features(d, ex)
    return ex.importance, lab, ses, T, Q


def storage(d, feature="hybrid", seed=5) -> dict:
    from device.protect.core import enrol_many
    from device.protect.defaults import DEFAULT_CONFIG, feature_threshold
    from device.protect.gallery import ProtectedGallery
    w, lab, ses, T, Q = _features(d, feature)
    s1 = ses == ses.min()
    arrays = enrol_many(T[s1], DEFAULT_CONFIG, w, np.random.default_rng(seed))
    S = {}
    for st in ("float32", "float16", "int8"):
        g = ProtectedGallery(DEFAULT_CONFIG, w, dim=16, storage=st)
        g.add_arrays(list(lab[s1]), *arrays)
        S[st] = np.stack([g.exact(q).max(1) for q in Q[~s1]])
    thr = feature_threshold(feature, "1e-4")
    gen = lab[~s1][:, None] == lab[s1][None]
    out = {"pairs": int(gen.size), "genuine": int(gen.sum()), "threshold_1e-4": thr}
    for st in ("float16", "int8"):
        dlt = np.abs(S[st] - S["float32"])
        flip = (S[st] >= thr) != (S["float32"] >= thr)
        out[st] = {"max": float(dlt.max()), "median": float(np.median(dlt)),
                   "p99": float(np.percentile(dlt, 99)), "decisions_changed": int(flip.sum()),
                   "genuine_changed": int(flip[gen].sum())}
    return out


def rank(d, templates, feature="hybrid", coarse_dims=None, seed=0) -> dict:
    from device.protect.core import enrol_many
    from device.protect.defaults import DEFAULT_CONFIG
    from device.protect.gallery import ProtectedGallery
    w, lab, ses, T, Q = _features(d, feature)
    rng = np.random.default_rng(seed)
    s1 = ses == ses.min()
    pl = np.concatenate([np.flatnonzero(s1 & (lab == k))[:2] for k in np.unique(lab)])
    gal = ProtectedGallery(DEFAULT_CONFIG, w, dim=16, storage="int8", coarse_dims=coarse_dims)
    gal.add_arrays(list(lab[pl]), *enrol_many(T[pl], DEFAULT_CONFIG, w, rng))
    g = T.shape[1]
    for lo in range(0, templates - len(pl), 5000):
        n = min(5000, templates - len(pl) - lo)
        x = T[rng.integers(0, len(T), (n, g)), np.arange(g)[None]]
        gal.add_arrays([-1] * n, *enrol_many(x, DEFAULT_CONFIG, w, rng))
    own = np.array(gal.owners)
    ranks = []
    for i in np.flatnonzero(~s1):
        s = gal.coarse(Q[i])
        ranks.append(int((s > s[own == lab[i]].max()).sum()))
    r = np.array(ranks)
    return {"templates": len(gal), "coarse_dims": gal.coarse_dims, "queries": len(r),
            "rank_max": int(r.max()), "rank_p99": float(np.percentile(r, 99)),
            "ranked_8th_or_lower": int((r >= 7).sum()), "ranked_17th_or_lower": int((r >= 16).sum())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.gallery_checks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("check", choices=["storage", "rank"])
    p.add_argument("dir")
    p.add_argument("--feature", choices=["hybrid", "cells"], default="hybrid")
    p.add_argument("--templates", type=int, default=20000)
    p.add_argument("--coarse-dims", type=int, default=None)
    a = p.parse_args(argv)
    r = storage(a.dir, a.feature) if a.check == "storage" else \
        rank(a.dir, a.templates, a.feature, a.coarse_dims)
    print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
