"""``python -m tools.fit_cells_pca``: fit the classical cell feature's PCA on real palms and ship
it as models/cells_pca.npz (with its manifest entry).

Data: ../shared/data/real/tongji, subject-disjoint split ``split_subjects(300, 0.2, 0)``; the
PCA (96 -> 16 per cell, shared by all cells) and the per-cell importance (d' of genuine vs
impostor cell cosines at the best shift) are fitted on the 240 training palms only; the 60
validation palms are scored cross-session (every session-1 image against every session-2
image, query shifted ±8 px) and the numbers go into the manifest.

``--link-val DIR`` also writes DIR/<subject> symlinks to the held-out palms (a standard-layout
folder for ``palmgate evaluate-protection``; nothing is copied).

The constants (Gabor sigma 5.5, 45x45, 1.5 octaves; softmax beta 8) were chosen on a split of
the training palms (160 fit / 80 tune), never on the validation palms.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from device.eval.metrics import d_prime, eer, tar_at_far
from device.recognition import cells as C
from device.vision.gabor import gabor_bank

SIGMA, KSIZE, OCTAVES, BETA, DIM = 5.5, 45, 1.5, 8.0, 16


def soft_maps(images: np.ndarray, bank: np.ndarray, beta: float,
              activation: str = "softmax") -> np.ndarray:
    return np.stack([C.orientation_weights(C.orientation_responses(im, bank), activation, beta)
                     for im in images])


def centred_bank(bank: np.ndarray) -> np.ndarray:
    """Each kernel minus the mean kernel: responses centred over the orientations (the part
    of a pixel's response vector the softmax depends on)."""
    return (bank - bank.mean(axis=0, keepdims=True)).astype(np.float32)


def fit_pca(maps: np.ndarray, dim: int = DIM) -> tuple[np.ndarray, np.ndarray]:
    raw = C.raw_cells(maps, C.MAX_SHIFT, C.MAX_SHIFT).reshape(-1, maps.shape[1] * C.CELL ** 2)
    raw = raw.astype(np.float64)
    mu = raw.mean(0)
    ev, vec = np.linalg.eigh(np.cov((raw - mu).T))
    vec = vec[:, ::-1][:, :dim]
    vec *= np.sign(vec[np.abs(vec).argmax(0), np.arange(dim)])   # deterministic signs
    return mu.astype(np.float32), vec.astype(np.float32)


def all_windows(maps: np.ndarray, mu, pca) -> np.ndarray:
    return np.stack([C.project(C.raw_cells(maps, C.MAX_SHIFT + dy, C.MAX_SHIFT + dx), mu, pca)
                     for dy, dx in C.shift_offsets()], 1)


def cross_session(feats: np.ndarray, labels, sessions, importance=None):
    """Session-1 templates (zero shift) vs session-2 queries (all shifts)."""
    zero = int(np.flatnonzero((C.shift_offsets() == 0).all(1))[0])
    t, q = sessions == 1, sessions == 2
    sc = C.shift_max_scores(feats[q], feats[t][:, zero], importance)
    same = labels[q][:, None] == labels[t][None, :]
    return sc, same


def cell_importance(feats, labels, sessions, seed=0) -> np.ndarray:
    """Per-cell d' between genuine and impostor cell cosines at each pair's best shift."""
    zero = int(np.flatnonzero((C.shift_offsets() == 0).all(1))[0])
    qf, tf = feats[sessions == 2], feats[sessions == 1][:, zero]
    ql, tl = labels[sessions == 2], labels[sessions == 1]
    nq, s, g, d = qf.shape
    best = np.zeros((nq, len(tf)), np.int64)
    bs = np.full((nq, len(tf)), -np.inf, np.float32)
    for k in range(s):
        v = qf[:, k].reshape(nq, -1) @ tf.reshape(len(tf), -1).T
        m = v > bs
        bs[m], best[m] = v[m], k
    same = ql[:, None] == tl[None, :]
    gi = np.argwhere(same)
    ii = np.argwhere(~same)
    ii = ii[np.random.default_rng(seed).choice(len(ii), min(len(ii), 50000), replace=False)]

    def cellcos(p):
        return np.einsum("ngd,ngd->ng", qf[p[:, 0], best[p[:, 0], p[:, 1]]], tf[p[:, 1]])

    gc, ic = cellcos(gi), cellcos(ii)
    dp = (gc.mean(0) - ic.mean(0)) / np.sqrt((gc.var(0) + ic.var(0)) / 2)
    dp = np.clip(dp, 1e-3, None)
    return (dp / dp.sum()).astype(np.float32)


def link_val(root: Path, names: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for n in names:
        link = out / n
        if not link.exists():
            os.symlink((root / n).resolve(), link)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.fit_cells_pca", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="where to write cells_pca.npz (default models/)")
    p.add_argument("--link-val", default=None, help="also write symlinks to the held-out palms")
    p.add_argument("--max-subjects", type=int, default=None, help="(smoke tests only)")
    p.add_argument("--activation", choices=["softmax", "unit"], default="softmax",
                   help="softmax: the gate's feature (cells_pca.npz); unit: centred kernels "
                        "and unit response vectors, the split-mode feature (cells_unit.npz)")
    a = p.parse_args(argv)

    from tools.manifest import update_entry
    from tools.paths import MODELS_DIR, real_dir
    from tools.train.realdata import split_subjects, tongji

    ps = tongji(a.max_subjects)
    n = len(ps.subjects)
    train, val = split_subjects(n, 0.2, 0)
    if a.link_val:
        link_val(real_dir("tongji"), [ps.subjects[i] for i in val], Path(a.link_val))
    bank = gabor_bank(C.N_ORIENT, SIGMA, KSIZE, OCTAVES)
    unit = a.activation == "unit"
    if unit:
        bank = centred_bank(bank)
    maps = soft_maps(ps.images, bank, BETA, a.activation)
    tr = np.isin(ps.labels, train)
    va = np.isin(ps.labels, val)
    mu, pca = fit_pca(maps[tr])
    ftr = all_windows(maps[tr], mu, pca)
    imp = cell_importance(ftr, ps.labels[tr], ps.sessions[tr])
    fva = all_windows(maps[va], mu, pca)
    metrics = {}
    for name, w in (("uniform", None), ("importance", imp)):
        sc, same = cross_session(fva, ps.labels[va], ps.sessions[va], w)
        g, i = sc[same], sc[~same]
        metrics[name] = {"eer": eer(g, i), "tar_far_1e-3": tar_at_far(g, i, 1e-3),
                         "tar_far_1e-4": tar_at_far(g, i, 1e-4), "d_prime": d_prime(g, i),
                         "n_genuine": int(g.size), "n_impostor": int(i.size)}
    models = Path(a.models) if a.models else MODELS_DIR
    models.mkdir(parents=True, exist_ok=True)
    name = C.UNIT_CELLS_FILE if unit else C.CELLS_FILE
    out = models / name
    extra = {"activation": np.str_("unit"), "eps": np.float32(C.UNIT_EPS)} if unit else {}
    np.savez(out, gabor=bank, beta=np.float32(BETA), mean=mu, pca=pca, importance=imp, **extra,
             sigma=np.float32(SIGMA), octaves=np.float32(OCTAVES), stride=np.int32(C.STRIDE),
             offset=np.int32(C.OFFSET), grid=np.int32(C.GRID), cell=np.int32(C.CELL),
             max_shift=np.int32(C.MAX_SHIFT))
    command = "python -m tools.fit_cells_pca " + " ".join(shlex.quote(x) for x in
                                                           (argv if argv is not None
                                                            else sys.argv[1:]))
    notes = ("classical cell feature (FINDINGS): 6 Gabor (sigma 5.5, 45x45, 1.5 oct), "
             "softmax(-8 r) over orientations, stride 4 -> 32x32x6; 7x7 cells of 4x4x6 over "
             "the central 28x28; shared PCA 96->16 per cell; L2 per cell. Arrays: gabor "
             "(6,45,45), mean (96,), pca (96,16), importance (49,)")
    if unit:
        notes = ("split-mode cell feature: the classical cell feature with the 6 Gabor kernels "
                 "centred over the orientations (each minus their mean) and r / sqrt(|r|^2 + "
                 f"{C.UNIT_EPS:g}^2) per map pixel instead of the softmax, which needs only the "
                 "norm of a pixel's responses: split mode computes the squares and the product "
                 "on shares and opens only each pixel's squared norm to its owner "
                 "(device/split/protocol.py unit_layer). Arrays as cells_pca.npz plus "
                 "activation ('unit') and eps")
    entry = update_entry(
        name, metrics={"tongji_val_cross_session_1view": metrics},
        command=command.strip(),
        data=(f"../shared/data/real/tongji: PCA and importance fitted on the {len(train)} "
              f"training palms of split_subjects({n}, 0.2, 0); metrics on the {len(val)} "
              f"held-out palms, session 1 vs session 2, query shifted ±8 px"),
        notes=notes, manifest_path=models / "manifest.json")
    print(json.dumps({"file": str(out), "sha256": entry["sha256"], "metrics": metrics},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
