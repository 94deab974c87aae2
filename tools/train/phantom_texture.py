"""Fit the classical phantom baseline (:mod:`device.eval.phantom_texture`): L2 logistic
regression over the multi-scale texture statistics of the training frames
(``tools.train.phantom_data``), one thread. A measurement; nothing is shipped.

    python -m tools.train.phantom_texture --train /tmp/phnet/train_46013.npz \
        --monitor /tmp/phnet/mon_46019.npz --out /tmp/phnet/texture
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from device.eval.phantom_texture import feature_names, standardise, texture_features


def features(frames: np.ndarray) -> np.ndarray:
    return np.stack([texture_features(f) for f in frames])


def fit_logistic(z: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 200
                 ) -> tuple[np.ndarray, float]:
    """(w, b) of an L2-penalised logistic regression on standardised features ``z``."""
    X = torch.from_numpy(np.asarray(z, np.float64))
    t = torch.from_numpy(np.asarray(y, np.float64))
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, t) \
            + l2 * (w * w).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return w.detach().numpy(), float(b.detach())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--monitor")
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    d = np.load(a.train)
    t0 = time.time()
    F = features(d["frames"])
    np.save(out / "train_features.npy", F)
    mean = np.nanmean(F, 0)
    scale = np.nanstd(F, 0)
    scale[~(scale > 0)] = 1.0
    w, b = fit_logistic(standardise(F, mean, scale), d["label"], a.l2)
    weights = {"names": feature_names(), "mean": mean.tolist(), "scale": scale.tolist(),
               "w": w.tolist(), "b": b, "l2": a.l2, "train": a.train,
               "fit_s": round(time.time() - t0, 1)}
    info = {}
    if a.monitor:
        from device.eval.phantom_texture import logistic_score
        m = np.load(a.monitor)
        p = logistic_score(features(m["frames"]), weights)
        info = {c: {"n": int(np.sum(m["cls"] == c)),
                    "q": np.round(np.quantile(p[m["cls"] == c], [0, .01, .5, .99, 1]),
                                  4).tolist()} for c in dict.fromkeys(m["cls"].tolist())}
    weights["monitor"] = info
    (out / "weights.json").write_text(json.dumps(weights, indent=1))
    print(json.dumps({"fit_s": weights["fit_s"], "monitor": info}, indent=1))


if __name__ == "__main__":
    main()
