"""Training (or, resuming, reloading) the two models of one sensor -- the SR model and the
liveness classifier on its output -- and their static int8 versions."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from tools.train import sensor_quant as Q
from tools.train.liveness_model import LivenessNet, train_liveness
from tools.train.sensor_config import REAL_PAIR_SEED, SR_ARCH, SR_SEEDS, log
from tools.train.sensor_data import (load_pairs, real_nir_files, real_nir_split, real_pairs,
                                     sr_pair_set)
from tools.train.sensor_scoring import sr_eval
from tools.train.sr_model import SRNet, export_sr_onnx, train_sr


def class_weights(cls: np.ndarray, real_mask: np.ndarray | None = None) -> np.ndarray:
    """Sampling weights: half bona fide (split evenly between synthetic and real when there
    are real captures), half attacks, split evenly over species."""
    w = np.zeros(len(cls))
    bona = cls == "bona_fide"
    if real_mask is not None and real_mask.any():
        syn = bona & ~real_mask
        w[syn] = 0.25 / syn.sum()
        w[real_mask] = 0.25 / real_mask.sum()
    else:
        w[bona] = 0.5 / bona.sum()
    species = [s for s in dict.fromkeys(cls) if s != "bona_fide"]
    for s in species:
        m = cls == s
        w[m] = 0.5 / len(species) / m.sum()
    return w / w.sum()


def resumed_checkpoint(work: Path, name: str, resume: bool) -> dict | None:
    """The training checkpoint ``work/name`` when resuming and it exists (else None)."""
    path = work / name
    if not (resume and path.exists()):
        return None
    log(f"resuming from {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


def sr_training_pairs(sensor: str, cfg: dict, root: Path, split: dict):
    """The SR training pairs of a sensor: the profile's synthetic pairs and, for NIR, real
    pairs of the training palms (random square crops), sampled 65 % real; returns (LR, HR,
    sampling weights or None, the words for the manifest's data)."""
    lr, hr = load_pairs(sr_pair_set(root, sensor, "train", cfg["sr_pairs"]["train"]))
    weights, data = None, [f"synthetic {sensor} SR pairs: "
                           f"python -m tools.synth sr-pairs --sensor {sensor} --n "
                           f"{cfg['sr_pairs']['train']} --seed {SR_SEEDS['train']}"]
    if sensor == "nir" and split["train"]:
        files = real_nir_files(split["train"][:cfg["real_subjects"]["train"]])
        rl, rh = real_pairs(files, REAL_PAIR_SEED, random_crop=True)
        weights = np.concatenate([np.full(len(lr), 0.35 / len(lr)),
                                  np.full(len(rl), 0.65 / len(rl))])
        lr, hr = np.concatenate([lr, rl]), np.concatenate([hr, rh])
        data.append(f"real NIR SR pairs of {len(files)} captures of "
                    f"{len(set(f.parent.name for f in files))} training palms (PolyU, random "
                    f"240-288 px square crop resized to 256x256 as HR, engine degradation "
                    f"as LR, seed "
                    f"{REAL_PAIR_SEED}), sampled 65 % real / 35 % synthetic")
    return lr, hr, weights, data


def _sr_model(sensor, cfg, work, lr, hr, weights, seed, resume):
    """Train the SR model and save its checkpoint (or, resuming, reload the checkpoint when
    it has this layout); returns (model, history, whether it was reloaded)."""
    ckpt = resumed_checkpoint(work, f"sr_{sensor}.pt", resume)
    if ckpt is not None and ckpt.get("arch") == SR_ARCH:
        model, hist = SRNet(**SR_ARCH), ckpt["history"]
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
    else:
        model, hist = train_sr(lr, hr, max_iters=cfg["sr_iters"], seed=seed,
                               patch=cfg["sr_patch"], weights=weights, **SR_ARCH, log=log,
                               log_every=max(cfg["sr_iters"] // 10, 1))
        torch.save({"state_dict": model.state_dict(), "history": hist, "arch": SR_ARCH},
                   work / f"sr_{sensor}.pt")
    return model, hist, ckpt is not None


def _sr_heldout(sess, sensor: str, cfg: dict, root: Path, split: dict, report: dict):
    """Held-out SR quality into ``report``: the synthetic test pairs and, for NIR, real pairs
    of the held-out palms (centre crops); returns the synthetic test pairs (LR, HR)."""
    tl, th = load_pairs(sr_pair_set(root, sensor, "test", cfg["sr_pairs"]["test"]))
    report["heldout_synthetic"] = sr_eval(sess, tl, th)
    report["heldout_synthetic"]["data"] = (f"python -m tools.synth sr-pairs --sensor {sensor} "
                                           f"--n {cfg['sr_pairs']['test']} --seed "
                                           f"{SR_SEEDS['test']}")
    if sensor == "nir" and split["test"]:
        files = real_nir_files(split["test"][:cfg["real_subjects"]["test"]])
        rl, rh = real_pairs(files, SR_SEEDS["test"], random_crop=False)
        report["heldout_real_nir"] = sr_eval(sess, rl, rh)
        n_palms = len(set(f.parent.name for f in files))
        report["heldout_real_nir"]["data"] = (f"{len(files)} captures of {n_palms} held-out real "
                                              f"palms, centre 288x288 square resized to 256x256 "
                                              f"as HR, engine degradation as LR, seed "
                                              f"{SR_SEEDS['test']}")
    return tl, th


def sr_block(sensor, cfg, root, work, models, threads, seed, resume=False):
    """Train (or, resuming, reload), export and evaluate the SR model of a sensor; returns
    (report, session, held-out pairs, path)."""
    t0 = time.time()
    split = real_nir_split()
    lr, hr, weights, data = sr_training_pairs(sensor, cfg, root, split)
    log(f"[{sensor}] SR: {len(lr)} training pairs")
    model, hist, reloaded = _sr_model(sensor, cfg, work, lr, hr, weights, seed, resume)
    path = models / f"sr_{sensor}.onnx"
    export_sr_onnx(model, path)
    sess = Q.session(path, threads)
    # channels of the feature extraction (F1) and feature mapping (F2) stages, read off a
    # forward pass: the mapping is the wider one (claim 2)
    with torch.no_grad():
        f1, f2, y = model.stages(torch.zeros(1, 1, 16, 16))
    report = {"train_seconds": round(time.time() - t0, 1), "history": hist,
              "resumed_from_checkpoint": reloaded,
              "channels": {"F1": int(f1.shape[1]), "F2": int(f2.shape[1])},
              "data": data}
    test_pairs = _sr_heldout(sess, sensor, cfg, root, split, report)
    held = {k: v for k, v in report.items() if k.startswith("heldout")}
    log(f"[{sensor}] SR held-out: {json.dumps(held)}")
    return report, sess, test_pairs, path


def liveness_block(work: Path, name: str, resume: bool, images, labels, steps, seed, weights,
                   crop, config=None):
    """Train (or, resuming, reload from ``work/name``) a liveness model and save its
    checkpoint; returns (model, history, training seconds).  ``images`` may be a callable
    returning them (only called when training)."""
    ckpt = resumed_checkpoint(work, name, resume)
    if ckpt is not None:
        model = LivenessNet(ckpt.get("config"))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval(), ckpt["history"], (ckpt.get("seconds")
                                               or ckpt["history"][-1].get("s", 0.0))
    t = time.time()
    images = images() if callable(images) else images
    model, hist = train_liveness(images, labels, steps=steps, seed=seed, weights=weights,
                                 config=config, log=log, log_every=max(steps // 15, 1),
                                 crop=crop)
    seconds = round(time.time() - t, 1)
    torch.save({"state_dict": model.state_dict(), "history": hist, "config": model.config,
                "seconds": seconds, "crop": crop}, work / name)
    return model, hist, seconds


def calibration_captures(caps: np.ndarray, weights: np.ndarray, n: int,
                         seed: int) -> list[np.ndarray]:
    """int8 calibration inputs: ``n`` captures drawn without replacement by ``weights``."""
    pick = np.random.default_rng(seed).choice(len(caps), n, replace=False, p=weights)
    return [caps[i][None, None].astype(np.float32) / 255.0 for i in pick]


def quantize_liveness(lv_path: Path, lv8_path: Path, sr_sess, calib_caps) -> None:
    """Static int8 QDQ of a liveness file, calibrated on the SR outputs of ``calib_caps``
    (first conv and the mirror's input ops left in float)."""
    calib_sr = [sr_sess.run(None, {"capture": c})[0] for c in calib_caps]
    Q.quantize_int8(lv_path, lv8_path, calib_sr, "image",
                    exclude_name_parts=Q.first_conv(lv_path),
                    only_prefix=Q.LIVENESS_NET_PREFIX)


def quantize_sr(sr_path: Path, sr8_path: Path, calib_caps) -> None:
    """Static int8 QDQ of an SR file, calibrated on ``calib_caps`` (the nodes of
    sensor_quant.SR_FLOAT_NODES left in float)."""
    Q.quantize_int8(sr_path, sr8_path, calib_caps, "capture", exclude_name_parts=Q.SR_FLOAT_NODES)
