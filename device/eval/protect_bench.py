"""``palmgate bench-match``: 1:N protected search time over a large gallery.

A gallery of ``users`` x ``templates`` protected templates is built in memory. Distractors are
random unit cells, or -- with ``--distractors DIR`` -- "chimera" palms whose every cell comes
from a random image of DIR at the same grid position (realistic per-cell statistics, no real
identity). With ``--plant DIR`` the palms of DIR become real users (their session-1 images as
templates) and their session-2 images are the queries; otherwise the queries are noisy copies
of enrolled features. Prints ``match_ms`` (median, p95) of the coarse-to-fine search, the
split between the coarse pass and the exact shortlist search, the gallery's memory, and --
on the first ``--check`` queries -- whether the exhaustive exact search picks the same template.
"""
from __future__ import annotations

import os
import resource
import time

import numpy as np

from device.protect.core import ProtectConfig, enrol_many
from device.protect.gallery import ProtectedGallery


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _ms(ts) -> dict:
    a = np.asarray(ts) * 1e3
    return {"median": round(float(np.median(a)), 2), "p95": round(float(np.percentile(a, 95)), 2)}


def bench_match(users: int = 10000, templates: int = 3, queries: int = 50,
                config: ProtectConfig | None = None, seed: int = 0, distractors=None,
                plant=None, check: int = 5, extractor=None, shortlist: int = 64) -> dict:
    from device.protect.defaults import DEFAULT_CONFIG
    config = config or DEFAULT_CONFIG
    rng = np.random.default_rng(seed)
    if extractor is None and (distractors or plant):
        from device.recognition.cells import CellExtractor
        extractor = CellExtractor()
    w = extractor.importance if extractor is not None else np.full(49, 1 / 49)
    g, d = len(w), 16
    gal = ProtectedGallery(config, w, dim=d, shortlist=shortlist)
    t_build = time.time()
    planted_q, planted_owner = [], []
    n_real = 0
    if plant:
        from device.eval.protection import load_features
        lab, ses, T, Q, names = load_features(plant, extractor)
        for k in np.unique(lab):
            e = np.flatnonzero((lab == k) & (ses == ses.min()))[:templates]
            q = np.flatnonzero((lab == k) & (ses != ses.min()))
            dat, key, msk, fil = enrol_many(T[e], config, w, rng)
            gal.add_arrays([f"real:{names[k]}"] * len(e), dat, key, msk, fil)
            planted_q += [Q[i] for i in q]
            planted_owner += [f"real:{names[k]}"] * len(q)
            n_real += 1
    pool = None
    if distractors:
        from device.eval.protection import load_features
        pool = load_features(distractors, extractor)[2]          # (N, G, d) templates
    todo = users - n_real
    kept_plain = (np.zeros((0, g, d), np.float32), 0)
    step = 20000 // templates
    for lo in range(0, max(todo, 0), step):
        n = min(step, todo - lo)
        if pool is not None:
            pick = rng.integers(0, len(pool), (n * templates, g))
            x = pool[pick, np.arange(g)[None, :]]
        else:
            base = _unit(rng.standard_normal((n, 1, g, d)))
            x = _unit(base + 0.6 * rng.standard_normal((n, templates, g, d)) / np.sqrt(d))
            x = x.reshape(n * templates, g, d)
        if lo == 0:
            kept_plain = (x[:queries * templates:templates].copy(), len(gal))
        dat, key, msk, fil = enrol_many(x.astype(np.float32), config, w, rng)
        gal.add_arrays(np.repeat(np.arange(lo, lo + n), templates).tolist(), dat, key, msk,
                       fil)
    len(gal)
    t_build = time.time() - t_build
    # queries
    if planted_q:
        sel = rng.permutation(len(planted_q))[:queries]
        qs = [planted_q[i] for i in sel]
        owners = [planted_owner[i] for i in sel]
    else:
        # fresh noisy views of the first users' plaintext features (kept aside, never in
        # the gallery), at every shift
        plain, first = kept_plain
        qs, owners = [], []
        for i in range(min(queries, len(plain))):
            qs.append(_unit(plain[i][None] + 0.5 * rng.standard_normal((25, g, d)) / np.sqrt(d)))
            owners.append(gal.owners[first + i * templates])
    for q in qs[:3]:                                   # warm-up
        gal.search(q)
    total, coarse, exact, hits, agree = [], [], [], [], []
    k = gal.shortlist_size()
    for n, q in enumerate(qs):
        t0 = time.perf_counter()
        m = gal.search(q)
        total.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s0 = gal.coarse(q)
        idx = np.argpartition(-s0, k - 1)[:k]
        coarse.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gal.exact(q, idx)
        exact.append(time.perf_counter() - t0)
        hits.append(m.owner == owners[n])
        if n < check:
            agree.append(gal.search(q, exhaustive=True).index == m.index)
    mem = gal.nbytes()
    return {"match_ms": _ms(total), "coarse_ms": _ms(coarse), "exact_shortlist_ms": _ms(exact),
            "users": users, "templates_per_user": templates, "templates": len(gal),
            "real_users": n_real, "queries": len(qs), "shortlist": k,
            "rank1_hit_rate": float(np.mean(hits)),
            "exhaustive_agreement": {"checked": len(agree),
                                     "same_template": float(np.mean(agree)) if agree else None},
            "gallery_mb": {k_: round(v / 2 ** 20, 1) for k_, v in mem.items()},
            "gallery_bytes_per_template": round(sum(mem.values()) / max(1, len(gal)), 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "build_s": round(t_build, 1), "config": config.to_dict(),
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "distractors": "chimera palms of " + str(distractors) if distractors
            else "random unit cells"}
