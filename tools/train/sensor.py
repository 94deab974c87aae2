"""Train, evaluate, quantise and export the transmission-sensor branch of seed 001 for both
sensor kinds (``python -m tools.train sensor --profile quick|full``), and fine-tune the liveness
model on reviewed presentations (claim 9: ``python -m tools.train liveness --retrain-from DIR``).

Data (all synthetic sets are written by the synthetic engine, deterministic per seed, under
``WORK/../sensor_data``; different seeds for training, validation and the held-out test):

* liveness sets: ``python -m tools.synth liveness --sensor S --bona-fide N --per-species M
  --seed {1001 train, 2002 validation, 3003 held-out test}``;
* SR pairs: ``python -m tools.synth sr-pairs --sensor S --n N --seed {1101 train, 3103 test}``;
* real NIR (``../shared/data/real/polyu_nir``, 250 palms): subject-disjoint thirds --
  validation = ``split_subjects(250, 0.2, 0)``'s 50 palms, held-out test = 50 of the other 200
  (``split_subjects(200, 0.25, 1)``), training = the remaining 150.  Real captures are bona fide
  for NIR liveness (centre-cropped and area-resized to the 128x128 capture, as the runtime does)
  and make real SR pairs: the same square frame centre area-resized to 256x256 is the HR image,
  the engine's sensor degradation (area /2, sensor PSF, read noise) of it the LR capture.

Per sensor: SR (train, export, PSNR/SSIM vs bicubic on held-out pairs) -> liveness on the SR
output (train, threshold on validation, rates on the held-out set) -> the same classifier
without SR (ablation) -> int8 QDQ of both models (calibrated on training frames) with their own
validation threshold -> sizes, latencies, int8 operators -> occlusion maps -> manifest entries.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from device.liveness_eval import (choose_threshold, pad_rates, read_grey, scan_liveness_dir,
                                  sr_quality, summarise_sr)
from device.sensor_branch import SENSORS, is_live, to_capture
from tools.paths import MODELS_DIR, PROJECT_ROOT, shared_data_dir
from tools.train import sensor_quant as Q
from tools.train.sensor_config import (CONFIG, LATER_ROUNDS, LIVENESS_SEEDS,  # noqa: F401
                                       REAL_PAIR_SEED, SPECIES, SR_ARCH, SR_SEEDS, log)
from tools.train.liveness_model import (LivenessNet, export_liveness_onnx, fused,
                                        load_from_onnx, onnx_mirror, predict, train_liveness,
                                        widened)
from tools.train.sr_model import SRNet, export_sr_onnx, train_sr

_log = log


# --------------------------------------------------------------------------------------------
# data


def data_root(work: Path) -> Path:
    return Path(work).parent / "sensor_data"


def liveness_set_dir(root: Path, sensor: str, split: str, spec) -> Path:
    seed, nb, na = spec
    return root / f"liveness_{sensor}_{split}_s{seed}_b{nb}_a{na}"


def finetune_set_specs(cfg: dict, sensor: str) -> list[tuple]:
    """The training sets the fine-tune rounds add to the pool (``extra`` and ``mine`` of
    ``finetune`` then the later rounds), in order, each once."""
    specs = []
    for key in ("finetune",) + LATER_ROUNDS:
        ft = cfg.get(key, {}).get(sensor)
        if ft:
            specs += [tuple(sp) for sp in ft.get("extra", ())] + [tuple(ft["mine"])]
    return list(dict.fromkeys(specs))


def liveness_set(root: Path, sensor: str, split: str, spec) -> Path:
    """One synthetic liveness set ``spec = (seed, bona fide, per species)`` of a split,
    written by the engine if not there yet."""
    from tools.synth.sensor_sets import write_liveness

    seed, nb, na = spec
    if seed not in LIVENESS_SEEDS[split]:
        raise ValueError(f"seed {seed} is not a {split} seed {LIVENESS_SEEDS[split]}")
    d = liveness_set_dir(root, sensor, split, spec)
    if not (d / "manifest.json").exists():
        t = time.time()
        write_liveness(d, sensor, nb, na, seed)
        _log(f"  wrote {d} ({time.time() - t:.0f} s)")
    return d


def pair_set(root: Path, sensor: str, spec) -> Path:
    """A matched-pair training set ``spec = (species, seed, n)`` (see
    :func:`tools.synth.sensor_sets.write_matched_pairs`), written by the engine if not there."""
    from tools.synth.sensor_sets import write_matched_pairs

    species, seed, n = spec
    if seed not in LIVENESS_SEEDS["train"]:
        raise ValueError(f"seed {seed} is not a train seed {LIVENESS_SEEDS['train']}")
    d = root / f"pairs_{sensor}_{species}_s{seed}_n{n}"
    if not (d / "manifest.json").exists():
        t = time.time()
        write_matched_pairs(d, sensor, species, n, seed)
        _log(f"  wrote {d} ({time.time() - t:.0f} s)")
    return d


def pairs_command(sensor: str, spec) -> str:
    return (f"python -m tools.synth pairs --sensor {sensor} --species {spec[0]} --n {spec[2]} "
            f"--seed {spec[1]}")


def synth_command(sensor: str, spec) -> str:
    return (f"python -m tools.synth liveness --sensor {sensor} --bona-fide {spec[1]} "
            f"--per-species {spec[2]} --seed {spec[0]}")


def load_split(root: Path, sensor: str, split: str, specs):
    """(captures, labels, classes) of every set of a split, concatenated."""
    parts = [load_liveness_dir(liveness_set(root, sensor, split, sp)) for sp in specs]
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def load_liveness_dir(d: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(captures uint8 (N,128,128), labels 1 live / 0 attack, class names) of a liveness
    folder (any image size: frames are mapped to the capture like the runtime does)."""
    bona, attacks = scan_liveness_dir(d)
    files = [(f, "bona_fide") for f in bona] + [(f, sp) for sp, fs in attacks.items()
                                                for f in fs]
    imgs = np.stack([_capture_u8(read_grey(f)) for f, _ in files])
    cls = np.array([c for _, c in files])
    return imgs, (cls == "bona_fide").astype(np.int64), cls


def _capture_u8(frame: np.ndarray) -> np.ndarray:
    return np.round(to_capture(frame) * 255).astype(np.uint8)


def sr_pair_set(root: Path, sensor: str, split: str, n: int) -> Path:
    from tools.synth.sensor_sets import write_sr_pairs

    seed = SR_SEEDS[split]
    d = root / f"sr_{sensor}_{split}_s{seed}_n{n}"
    if not (d / "manifest.json").exists():
        t = time.time()
        write_sr_pairs(d, sensor, n, seed)
        _log(f"  wrote {d} ({time.time() - t:.0f} s)")
    return d


def load_pairs(d: Path) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(p.name for p in (d / "lr").glob("*.png"))
    lr = np.stack([read_grey(d / "lr" / n) for n in names])
    hr = np.stack([read_grey(d / "hr" / n) for n in names])
    return lr, hr


def real_nir_dir() -> Path | None:
    d = shared_data_dir() / "real" / "polyu_nir"
    return d if d.is_dir() else None


def real_nir_split() -> dict[str, list[str]]:
    """Subject-disjoint training / validation / held-out test palms of the real NIR set."""
    from tools.train.realdata import split_subjects

    d = real_nir_dir()
    if d is None:
        return {"train": [], "val": [], "test": []}
    names = sorted(p.name for p in d.iterdir() if p.is_dir())
    rest, val = split_subjects(len(names), 0.2, 0)
    rtr, rte = split_subjects(len(rest), 0.25, 1)
    return {"train": [names[i] for i in rest[rtr]], "val": [names[i] for i in val],
            "test": [names[i] for i in rest[rte]]}


def real_nir_files(subjects: list[str]) -> list[Path]:
    d = real_nir_dir()
    return [f for s in subjects for f in sorted((d / s).glob("*.jpg"))] if d else []


def real_pairs(files: list[Path], seed: int, random_crop: bool) -> tuple[np.ndarray, np.ndarray]:
    """Real SR pairs at the gate's scale: HR = the square frame centre (the part the runtime
    maps to the 128x128 capture) area-resized to 256x256; LR = the synthetic engine's sensor
    degradation of it (area /2, sensor PSF, read noise).  ``random_crop``: a random square of
    240-288 px at a random position instead of the centre (training augmentation)."""
    from tools.synth.sensor import degrade

    lrs, hrs = [], []
    for i, f in enumerate(files):
        im = read_grey(f)
        rng = np.random.default_rng([seed, i])
        h, w = im.shape
        side = min(h, w)
        if random_crop:
            side = int(rng.integers(240, side + 1))
            r, c = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        else:
            r, c = (h - side) // 2, (w - side) // 2
        hr = cv2.resize(im[r:r + side, c:c + side].astype(np.float32) / 255.0, (256, 256),
                        interpolation=cv2.INTER_AREA)
        lr = degrade(hr, rng)
        hrs.append(np.round(hr * 255).astype(np.uint8))
        lrs.append(np.round(lr * 255).astype(np.uint8))
    return np.stack(lrs), np.stack(hrs)


def write_real_heldout(root: Path, subjects: list[str]) -> tuple[Path, Path]:
    """Folders for the CLI on the held-out real palms (git-ignored work area): a liveness
    layout of symbolic links to the real captures, and the real SR pairs as PNG (rewritten
    when the subject list changes)."""
    import shutil

    files = real_nir_files(subjects)
    stamp = "gate-scale pairs v2\n" + "\n".join(subjects) + "\n"
    suffix = "" if len(subjects) == len(real_nir_split()["test"]) else f"_{len(subjects)}"
    live, pairs = root / f"real_nir_heldout{suffix}", root / f"real_nir_sr_heldout{suffix}"
    for d in (live, pairs):
        if (d / "done").exists() and (d / "done").read_text() != stamp:
            shutil.rmtree(d)
    if not (live / "done").exists():
        (live / "bona_fide").mkdir(parents=True, exist_ok=True)
        for f in files:
            os.symlink(f.resolve(), live / "bona_fide" / f"{f.parent.name}_{f.name}")
        (live / "done").write_text(stamp)
    if not (pairs / "done").exists():
        lr, hr = real_pairs(files, SR_SEEDS["test"], random_crop=False)
        for k, f in enumerate(files):
            for sub, a in (("lr", lr[k]), ("hr", hr[k])):
                (pairs / sub).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(pairs / sub / f"{f.parent.name}_{f.stem}.png"), a)
        (pairs / "done").write_text(stamp)
    return live, pairs


# --------------------------------------------------------------------------------------------
# running the exported models (onnxruntime, the same graphs the gate runs)


def run_sr(sess, caps_u8: np.ndarray, as_u8: bool = True, batch: int = 16,
           dtype=np.float32) -> np.ndarray:
    """SR outputs of captures: uint8 (rounded) with ``as_u8``, else floats in [0, 1] of
    ``dtype``, written into one preallocated array (a float16 pool of 30,000 X-ray frames is
    3.8 GB; collecting float32 batches and converting afterwards needed three times that)."""
    out = None
    for i in range(0, len(caps_u8), batch):
        x = caps_u8[i:i + batch, None].astype(np.float32) / 255.0
        y = sess.run(None, {"capture": x})[0][:, 0]
        y = np.round(y * 255).astype(np.uint8) if as_u8 else y
        if out is None:
            out = np.empty((len(caps_u8),) + y.shape[1:], np.uint8 if as_u8 else dtype)
        out[i:i + len(y)] = y
    if out is None:
        raise ValueError("run_sr: no captures")
    return out


def run_liveness(sess, images: np.ndarray, batch: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch, None]
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        out.append(sess.run(None, {"image": x})[0][:, 1])
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def branch_scores(sr_sess, lv_sess, caps_u8: np.ndarray, batch: int = 16) -> np.ndarray:
    """p(live) of captures through SR -> liveness in float, exactly as the runtime does."""
    out = []
    for i in range(0, len(caps_u8), batch):
        sr = run_sr(sr_sess, caps_u8[i:i + batch], as_u8=False, batch=batch)
        out.append(run_liveness(lv_sess, sr, batch))
    return np.concatenate(out) if out else np.zeros(0)


def by_species(p: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    bona = p[cls == "bona_fide"]
    return bona, {sp: p[cls == sp] for sp in dict.fromkeys(cls) if sp != "bona_fide"}


def _logit(p, eps: float = 1e-7):
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def species_margins(attacks: dict[str, np.ndarray], thr: float) -> dict:
    """How close each species comes to being accepted: logit(p) - logit(threshold) of its
    median and highest-scoring presentations (larger = harder)."""
    t = float(_logit(thr))
    return {sp: {"median": round(float(np.median(_logit(s)) - t), 2),
                 "p99": round(float(np.percentile(_logit(s), 99) - t), 2),
                 "max": round(float(np.max(_logit(s)) - t), 2)} for sp, s in attacks.items()
            if len(s)}


def rates(p, cls, thr, real_p=None) -> dict:
    bona, att = by_species(p, cls)
    r = pad_rates(bona, att, thr)
    r["n_bona_fide"], r["n_attack"] = int(bona.size), {k: int(v.size) for k, v in att.items()}
    if real_p is not None and len(real_p):
        r["real_nir_bpcer"] = float(np.mean(~is_live(real_p, thr)))
        r["real_nir_n"] = int(len(real_p))
    return r


def choose(p_val, cls_val, real_val=None) -> float:
    bona, att = by_species(p_val, cls_val)
    if real_val is not None and len(real_val):
        bona = np.concatenate([bona, real_val])
    return choose_threshold(bona, att)


# --------------------------------------------------------------------------------------------
# occlusion maps


def occlusion_map(lv_sess, img: np.ndarray, patch: int = 32, stride: int = 16) -> np.ndarray:
    """Evidence map for the decision: how much the decision's logit drops when a patch is
    replaced by a heavily blurred copy of the image (positive = the region supports it)."""
    base = float(_logit(run_liveness(lv_sess, img[None])[0]))
    sign = 1.0 if base > 0 else -1.0
    blur = cv2.GaussianBlur(img, (0, 0), 8)
    h, w = img.shape
    pos = [(r, c) for r in range(0, h - patch + 1, stride) for c in range(0, w - patch + 1, stride)]
    batch = np.repeat(img[None], len(pos), 0)
    for k, (r, c) in enumerate(pos):
        batch[k, r:r + patch, c:c + patch] = blur[r:r + patch, c:c + patch]
    lo = _logit(run_liveness(lv_sess, batch))
    heat = np.zeros((h, w), np.float64)
    cnt = np.zeros((h, w), np.float64)
    for k, (r, c) in enumerate(pos):
        heat[r:r + patch, c:c + patch] += sign * (base - lo[k])
        cnt[r:r + patch, c:c + patch] += 1
    return heat / np.maximum(cnt, 1)


def occlusion_png(lv_sess, examples: list[tuple[str, np.ndarray, float]], path: Path,
                  tile: int = 112) -> None:
    """Top row: SR images; bottom row: occlusion evidence for the model's decision."""
    cols = []
    for title, img, p in examples:
        heat = np.maximum(occlusion_map(lv_sess, img), 0)
        heat = heat / (heat.max() + 1e-9)
        g = cv2.resize((img * 255).astype(np.uint8), (tile, tile), interpolation=cv2.INTER_AREA)
        g3 = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        hm = cv2.applyColorMap(cv2.resize((heat * 255).astype(np.uint8), (tile, tile)),
                               cv2.COLORMAP_JET)
        over = cv2.addWeighted(g3, 0.5, hm, 0.5, 0)
        lab = np.full((30, tile, 3), 255, np.uint8)
        cv2.putText(lab, title[:17], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1)
        cv2.putText(lab, f"p(live) {p:.3f}", (2, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                    (0, 0, 0), 1)
        cols.append(np.vstack([g3, over, lab]))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.hstack(cols), [cv2.IMWRITE_PNG_COMPRESSION, 9])


# --------------------------------------------------------------------------------------------
# the pipeline of one sensor


def _weights(cls: np.ndarray, real_mask: np.ndarray | None = None) -> np.ndarray:
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


def _finetune_weights(cls: np.ndarray, real_mask: np.ndarray, mine_mask: np.ndarray,
                      mine_scores: np.ndarray, photo: str, photo_share: float, hard_q: float,
                      hard_extra: float) -> tuple[np.ndarray, np.ndarray]:
    """Sampling weights of the hard-example fine-tune, and which images are the mined hard
    ones.  Class shares: half bona fide (a quarter synthetic, a quarter real when there are
    real captures), half attacks with ``photo_share`` of it on the ``photo`` species and the
    rest split evenly over the other species; within a class, equal weights.  Hard mining on
    the fresh set (``mine_mask``, scored by the model to be fine-tuned: ``mine_scores`` =
    p(live) of those images in order): the ``hard_q`` fraction of every class that the model
    gets most wrong (lowest p(live) of bona fide, highest of each species) is drawn
    ``1 + hard_extra`` times as often."""
    w = np.zeros(len(cls))
    species = [s for s in dict.fromkeys(cls) if s != "bona_fide"]
    bona = cls == "bona_fide"
    if real_mask.any():
        groups = {"syn": bona & ~real_mask, "real": real_mask}
        share = {"syn": 0.25, "real": 0.25}
    else:
        groups, share = {"syn": bona}, {"syn": 0.5}
    for sp in species:
        groups[sp] = cls == sp
        others = (1 - photo_share) / max(len(species) - 1, 1)
        share[sp] = 0.5 * (photo_share if sp == photo else others)
    for g, m in groups.items():
        w[m] = share[g] / m.sum()
    hard = np.zeros(len(cls), bool)
    mi = np.where(mine_mask)[0]
    for c in dict.fromkeys(cls[mi]):
        idx = mi[cls[mi] == c]
        sc = mine_scores[cls[mi] == c]
        k = max(1, int(hard_q * len(idx)))
        hard[idx[np.argsort(sc if c == "bona_fide" else -sc, kind="stable")[:k]]] = True
    w[hard] *= 1 + hard_extra
    return w / w.sum(), hard


def finetune_liveness(model: LivenessNet, images: np.ndarray, cls: np.ndarray,
                      real_mask: np.ndarray, mine_mask: np.ndarray, mine_scores: np.ndarray,
                      sensor: str, ft: dict, log=_log):
    """Hard-example fine-tune (from ``model``) on the SR images of the training pool
    (original training sets, the fresh mining set, real captures); returns (model, history,
    weights report)."""
    photo = "printed_photo" if sensor == "nir" else "photo"
    w, hard = _finetune_weights(cls, real_mask, mine_mask, mine_scores, photo,
                                ft["photo_share"], ft["hard_q"], ft["hard_extra"])
    y = (cls == "bona_fide").astype(np.int64)
    info = {"pool": {c: int(np.sum(cls == c)) for c in dict.fromkeys(cls)},
            "real": int(real_mask.sum()), "mined_set": int(mine_mask.sum()),
            "hard": {c: int(np.sum(hard & (cls == c))) for c in dict.fromkeys(cls)},
            "weight_share": {c: round(float(w[cls == c].sum()), 3) for c in dict.fromkeys(cls)}}
    log(f"[{sensor}] fine-tune pool {json.dumps(info)}")
    model, hist = train_liveness(images, y, steps=ft["steps"], seed=ft["seed"], weights=w,
                                 model=model, lr_rate=ft["lr"], log=log,
                                 log_every=max(ft["steps"] // 10, 1))
    return model, hist, info


def _resumed(work: Path, name: str, resume: bool) -> dict | None:
    """The training checkpoint ``work/name`` when resuming and it exists (else None)."""
    path = work / name
    if not (resume and path.exists()):
        return None
    _log(f"resuming from {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


def _sr_block(sensor, cfg, root, work, models, threads, seed, resume=False):
    """Train (or, resuming, reload), export and evaluate the SR model of a sensor; returns
    (report, session, held-out pairs, path)."""
    t0 = time.time()
    lr, hr = load_pairs(sr_pair_set(root, sensor, "train", cfg["sr_pairs"]["train"]))
    weights, data = None, [f"synthetic {sensor} SR pairs: "
                           f"python -m tools.synth sr-pairs --sensor {sensor} --n "
                           f"{cfg['sr_pairs']['train']} --seed {SR_SEEDS['train']}"]
    split = real_nir_split()
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
    _log(f"[{sensor}] SR: {len(lr)} training pairs")
    ckpt = _resumed(work, f"sr_{sensor}.pt", resume)
    if ckpt is not None and ckpt.get("arch") == SR_ARCH:
        model, hist = SRNet(**SR_ARCH), ckpt["history"]
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
    else:
        model, hist = train_sr(lr, hr, max_iters=cfg["sr_iters"], seed=seed,
                               patch=cfg["sr_patch"], weights=weights, **SR_ARCH, log=_log,
                               log_every=max(cfg["sr_iters"] // 10, 1))
        torch.save({"state_dict": model.state_dict(), "history": hist, "arch": SR_ARCH},
                   work / f"sr_{sensor}.pt")
    path = models / f"sr_{sensor}.onnx"
    export_sr_onnx(model, path)
    sess = Q.session(path, threads)
    # check claim 2 on a forward pass: C(F2) > C(F1)
    with torch.no_grad():
        f1, f2, y = model.stages(torch.zeros(1, 1, 16, 16))
    report = {"train_seconds": round(time.time() - t0, 1), "history": hist,
              "resumed_from_checkpoint": ckpt is not None,
              "channels": {"F1": int(f1.shape[1]), "F2": int(f2.shape[1])},
              "data": data}
    tl, th = load_pairs(sr_pair_set(root, sensor, "test", cfg["sr_pairs"]["test"]))
    report["heldout_synthetic"] = _sr_eval(sess, tl, th)
    report["heldout_synthetic"]["data"] = (f"python -m tools.synth sr-pairs --sensor {sensor} "
                                           f"--n {cfg['sr_pairs']['test']} --seed "
                                           f"{SR_SEEDS['test']}")
    if sensor == "nir" and split["test"]:
        files = real_nir_files(split["test"][:cfg["real_subjects"]["test"]])
        rl, rh = real_pairs(files, SR_SEEDS["test"], random_crop=False)
        report["heldout_real_nir"] = _sr_eval(sess, rl, rh)
        n_palms = len(set(f.parent.name for f in files))
        report["heldout_real_nir"]["data"] = (f"{len(files)} captures of {n_palms} held-out real "
                                              f"palms, centre 288x288 square resized to 256x256 "
                                              f"as HR, engine degradation as LR, seed "
                                              f"{SR_SEEDS['test']}")
    held = {k: v for k, v in report.items() if k.startswith("heldout")}
    _log(f"[{sensor}] SR held-out: {json.dumps(held)}")
    return report, sess, (tl, th), path


def _liveness_block(work: Path, name: str, resume: bool, images, labels, steps, seed, weights,
                    crop, config=None):
    """Train (or, resuming, reload from ``work/name``) a liveness model and save its
    checkpoint; returns (model, history, training seconds).  ``images`` may be a callable
    returning them (only called when training)."""
    ckpt = _resumed(work, name, resume)
    if ckpt is not None:
        model = LivenessNet(ckpt.get("config"))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval(), ckpt["history"], (ckpt.get("seconds")
                                               or ckpt["history"][-1].get("s", 0.0))
    t = time.time()
    images = images() if callable(images) else images
    model, hist = train_liveness(images, labels, steps=steps, seed=seed, weights=weights,
                                 config=config, log=_log, log_every=max(steps // 15, 1),
                                 crop=crop)
    seconds = round(time.time() - t, 1)
    torch.save({"state_dict": model.state_dict(), "history": hist, "config": model.config,
                "seconds": seconds, "crop": crop}, work / name)
    return model, hist, seconds


def _finetune_block(sensor, ft, model, root, work, models, sr_sess, threads, train_caps,
                    train_cls, real_train_caps, resume=False, name: str = "ft"):
    """Hard-example fine-tune of the trained liveness model (config ``ft``: ``mine`` = the
    fresh training set (seed, bona fide, per species), ``steps``, ``lr``, ``seed``,
    ``photo_share``, ``hard_q``, ``hard_extra``).  The pool is the training sets, the fresh
    set and the real training captures, as float SR outputs (stored as float16, not rounded
    to uint8: the runtime feeds the liveness model the unrounded SR image, and the model
    reacts to ~1 grey level of structured noise); the fresh set is scored by the model
    before fine-tuning to find its hard presentations.  Optional: ``extra`` = more training
    sets (seed, bona fide, per species) added to the pool before the fresh set; ``mine_all``
    scores the whole pool, not only the fresh set; ``pairs`` = matched-pair sets (species,
    seed, n) added like ``extra``; ``pool_only`` leaves the first training sets out of the pool
    (the round's own sets and the real captures only); ``fused`` trains the model with its
    BatchNorm folded into the convolutions (the function the exported file computes, so a
    round can also start from a shipped file: :func:`continue_rounds`); ``widen`` = a wider
    ``plan`` (channels per conv layer), grown from the model without changing its function
    (:func:`tools.train.liveness_model.widened`).  Resuming reloads
    ``work/liveness_<sensor>_<name>.pt``.  Returns (model, report)."""
    if ft.get("pool_only"):
        train_caps, train_cls = train_caps[:0], train_cls[:0]
    extra = [load_liveness_dir(liveness_set(root, sensor, "train", sp))
             for sp in ft.get("extra", ())]
    extra += [load_liveness_dir(pair_set(root, sensor, sp)) for sp in ft.get("pairs", ())]
    if extra:
        train_caps = np.concatenate([train_caps] + [e[0] for e in extra])
        train_cls = np.concatenate([train_cls] + [e[2] for e in extra])
    m_caps, _, m_cls = load_liveness_dir(liveness_set(root, sensor, "train", ft["mine"]))
    pool_caps = np.concatenate([train_caps, m_caps, real_train_caps])
    pool_cls = np.concatenate([train_cls, m_cls, np.full(len(real_train_caps), "bona_fide")])
    mine_mask = np.zeros(len(pool_caps), bool)
    if ft.get("mine_all"):
        mine_mask[:] = True
    else:
        mine_mask[len(train_caps):len(train_caps) + len(m_caps)] = True
    real_mask = np.zeros(len(pool_caps), bool)
    real_mask[len(train_caps) + len(m_caps):] = True
    ckpt_name = f"liveness_{sensor}_{name}.pt"
    ckpt = _resumed(work, ckpt_name, resume)
    report = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in ft.items()},
              "mined_set": synth_command(sensor, ft["mine"]),
              "extra_sets": [synth_command(sensor, sp) for sp in ft.get("extra", ())]
              + [pairs_command(sensor, sp) for sp in ft.get("pairs", ())]}
    if ckpt is not None:
        model = LivenessNet(ckpt.get("config"), bn=not ft.get("fused"), hp_init=False)
        model.load_state_dict(ckpt["state_dict"])
        report.update(ckpt["report"])
        return model.eval(), report
    t = time.time()
    base_path = work / f"liveness_{sensor}_before_{name}.onnx"
    export_liveness_onnx(model, base_path)
    pool = run_sr(sr_sess, pool_caps, as_u8=False, dtype=np.float16)
    mine_scores = run_liveness(Q.session(base_path, threads), pool[mine_mask])
    _log(f"[{sensor}] fine-tune: SR of {len(pool)} pool captures and scores of the mined set "
         f"{time.time() - t:.0f} s")
    if ft.get("fused"):
        model = fused(model)
    if ft.get("widen"):
        model = widened(model, ft["widen"], seed=ft["seed"])
    model, hist, info = finetune_liveness(model, pool, pool_cls, real_mask, mine_mask,
                                          mine_scores, sensor, ft)
    report.update({"pool": info, "train_log": hist,
                   "seconds": round(time.time() - t, 1)})
    torch.save({"state_dict": model.state_dict(), "config": model.config, "report": report},
               work / ckpt_name)
    return model.eval(), report


def _sr_eval(sess, lr, hr, reference=None) -> dict:
    """PSNR/SSIM of ``sess`` against HR and bicubic; with ``reference`` (the fp32 session of an
    int8 ``sess``) also the SNR of ``sess``'s output against the reference output."""
    rows, snr = [], []
    for i in range(len(lr)):
        x = lr[i].astype(np.float32) / 255.0
        y = hr[i].astype(np.float32) / 255.0
        sr = sess.run(None, {"capture": x[None, None]})[0][0, 0]
        rows.append(sr_quality(x, y, sr))
        if reference is not None:
            ref = reference.run(None, {"capture": x[None, None]})[0][0, 0]
            snr.append(10 * math.log10(np.sum(ref.astype(np.float64) ** 2) /
                                       max(np.sum((ref - sr).astype(np.float64) ** 2), 1e-12)))
    out = summarise_sr(rows)
    if snr:
        out["snr_vs_fp32_db"] = round(float(np.mean(snr)), 2)
    return out


def real_captures(cfg: dict, sensor: str) -> tuple[dict, dict]:
    """The real NIR files of each split (none for X-ray), cut to the profile's
    ``real_subjects``, and their captures (uint8, (N, 128, 128)) per split."""
    split = real_nir_split() if sensor == "nir" else {"train": [], "val": [], "test": []}
    real = {k: real_nir_files(v[:cfg["real_subjects"][k]]) for k, v in split.items()}
    real_caps = {s: (np.stack([_capture_u8(read_grey(f)) for f in fs]) if fs else
                     np.zeros((0, 128, 128), np.uint8)) for s, fs in real.items()}
    return real, real_caps


def split_scores(sr_sess, lv_sess, caps: dict, real_caps: dict) -> tuple[dict, dict]:
    """p(live) of the validation and held-out captures, synthetic and real, through SR ->
    liveness."""
    return ({s: branch_scores(sr_sess, lv_sess, caps[s]) for s in ("val", "test")},
            {s: branch_scores(sr_sess, lv_sess, real_caps[s]) for s in ("val", "test")})


def _fp32_rates(scores, cls: dict) -> dict:
    """Validation threshold, validation and held-out rates, and the held-out species
    margins of an fp32 pipeline."""
    p_syn, p_real = scores
    thr = choose(p_syn["val"], cls["val"], p_real["val"])
    fp32 = {"threshold": thr,
            "validation": rates(p_syn["val"], cls["val"], thr, p_real["val"]),
            "heldout": rates(p_syn["test"], cls["test"], thr, p_real["test"])}
    fp32["heldout"]["species_margin_logit"] = species_margins(
        by_species(p_syn["test"], cls["test"])[1], thr)
    return fp32


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


def _int8_rates(scores, cls: dict, fp32: dict) -> dict:
    """int8 threshold (validation), rates, and the largest held-out change against fp32."""
    p8_syn, p8_real = scores
    thr8 = choose(p8_syn["val"], cls["val"], p8_real["val"])
    int8 = {"threshold": thr8,
            "validation": rates(p8_syn["val"], cls["val"], thr8, p8_real["val"]),
            "heldout": rates(p8_syn["test"], cls["test"], thr8, p8_real["test"]),
            "heldout_at_fp32_threshold": rates(p8_syn["test"], cls["test"],
                                               fp32["threshold"], p8_real["test"])}
    int8["max_rate_difference_pp"] = _max_rate_diff(fp32["heldout"], int8["heldout"])
    return int8


def model_perf(paths: list[Path]) -> dict:
    """Bytes and 1-thread median latency of each file (int8 files: which operators run in
    int8)."""
    feeds = {"capture": {"capture": np.random.default_rng(0).random((1, 1, 128, 128),
                                                                    np.float32)},
             "image": {"image": np.random.default_rng(0).random((1, 1, 256, 256),
                                                                np.float32)}}
    perf = {}
    for path in paths:
        feed = feeds["capture" if path.name.startswith("sr_") else "image"]
        perf[path.name] = {"bytes": path.stat().st_size,
                           "latency_ms_1thread": Q.latency_ms(path, feed, threads=1)}
        if path.name.endswith("_int8.onnx"):
            perf[path.name]["operators"] = Q.int8_report(path)
    return perf


def occlusion_sheet(sensor: str, sr_sess, lv_sess, caps: np.ndarray, cls: np.ndarray,
                    p: np.ndarray, path: Path) -> None:
    """Occlusion maps of the first bona fide and the top-scoring presentation of every
    species of a held-out set.  Synthetic examples only: the sheet goes into docs/, and no
    real research capture (or an image made from one) may go into the project's git."""
    ex = []
    for c in ["bona_fide"] + list(SPECIES[sensor]):
        idx = np.where(cls == c)[0]
        if len(idx):
            i = idx[np.argmax(p[idx])] if c != "bona_fide" else idx[0]
            ex.append((c if c == "bona_fide" else c + " (top)",
                       run_sr(sr_sess, caps[i:i + 1], as_u8=False)[0], float(p[i])))
    occlusion_png(lv_sess, ex, path)


_ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def round_text(k: int, rk: dict, sensor: str) -> str:
    """The manifest's words for fine-tune round ``k`` (report ``rk`` of _finetune_block)."""
    c = rk["config"]
    more = rk.get("extra_sets", []) + [rk["mined_set"]]
    start = "from the model before it"
    if c.get("fused"):
        start += " with BatchNorm folded"
    if c.get("widen"):
        start += f", widened function-preserving to {[w for w, _ in c['widen']]} channels"
    pool = "the pool grown by" if not c.get("pool_only") else "a pool of"
    photo = "printed_photo" if sensor == "nir" else "photo"
    return (f"; a {_ORDINALS.get(k, f'#{k}')} round ({c['steps']} steps, learning rate "
            f"{c['lr']:g}) {start}, on {pool} {' and '.join(dict.fromkeys(more))}, every "
            f"image of it scored by that model and its hardest {100 * c['hard_q']:g} % per "
            f"class drawn {1 + c['hard_extra']:g}x as often, the {photo} species "
            f"{100 * c['photo_share']:g} % of the attack half")


def _liveness_entries(sensor: str, config: dict, metrics: dict, data: str, thr: float,
                      int8: dict, perf: dict, n_calib: int, common: dict) -> None:
    """Manifest entries of liveness_<sensor>.onnx and its int8 file."""
    from tools.manifest import update_entry

    update_entry(f"liveness_{sensor}.onnx", metrics=metrics, data=data,
                 notes=f"Seed 001 liveness model, {sensor}: SR image (N,1,256,256) in [0,1] -> "
                       f"probs (N,2) softmax over (non-live, live). Live iff probs[:,1] > "
                       f"threshold (equality is not live). Conv layers (channels, max-pool after) "
                       f"{tuple(tuple(x) for x in config['plan'])} (first conv "
                       f"{'4x4 stride 2' if config['stem'] == 's2' else '3x3 stride 1'} "
                       f"without BN), global average + max pooling, linear.",
                 extra={"threshold": thr, "input": f"output of sr_{sensor}.onnx",
                        "sr_model": f"sr_{sensor}.onnx"}, **common)
    update_entry(f"liveness_{sensor}_int8.onnx", metrics={
        "heldout": int8["heldout"], "validation": int8["validation"],
        "heldout_at_fp32_threshold": int8["heldout_at_fp32_threshold"],
        "max_rate_difference_vs_fp32_pp": int8["max_rate_difference_pp"],
        **perf[f"liveness_{sensor}_int8.onnx"]},
        data=f"static int8 QDQ of liveness_{sensor}.onnx calibrated on the SR outputs of "
             f"{n_calib} training captures; threshold chosen on validation with "
             f"sr_{sensor}_int8.onnx in front",
        notes="int8 version of the fp32 liveness model (Softmax left in float)",
        extra={"threshold": int8["threshold"], "input": f"output of sr_{sensor}_int8.onnx",
               "sr_model": f"sr_{sensor}_int8.onnx",
               "quantized_from": f"liveness_{sensor}.onnx"}, **common)


def run_sensor(sensor: str, cfg: dict, root: Path, work: Path, models: Path, docs: Path,
               steps: int, seed: int, threads: int, command: str, manifest: Path,
               profile: str, resume: bool = False) -> dict:
    t_all = time.time()
    real, real_caps = real_captures(cfg, sensor)
    sizes = cfg["liveness"][sensor]

    # ---- data
    caps, labels, cls = {}, {}, {}
    for s in ("train", "val", "test"):
        caps[s], labels[s], cls[s] = load_split(root, sensor, s, sizes[s])
    _log(f"[{sensor}] liveness data: " + ", ".join(
        f"{s} {len(caps[s])} synthetic + {len(real_caps[s])} real" for s in caps))

    # ---- SR
    sr_report, sr_sess, sr_test_pairs, sr_path = _sr_block(sensor, cfg, root, work, models,
                                                           threads, seed, resume)

    # ---- liveness on SR output
    train_caps = np.concatenate([caps["train"], real_caps["train"]])
    train_cls = np.concatenate([cls["train"], np.full(len(real_caps["train"]), "bona_fide")])
    real_mask = np.zeros(len(train_caps), bool)
    real_mask[len(caps["train"]):] = True
    train_y = (train_cls == "bona_fide").astype(np.int64)
    w = _weights(train_cls, real_mask)
    def train_sr_imgs():
        t = time.time()
        out = run_sr(sr_sess, train_caps)
        _log(f"[{sensor}] SR of {len(train_caps)} training captures: {time.time() - t:.0f} s")
        return out

    crop = cfg["liveness_crop"][sensor]
    lv_config = cfg["liveness_config"][sensor]
    lv, lv_hist, lv_seconds = _liveness_block(work, f"liveness_{sensor}.pt", resume,
                                              train_sr_imgs, train_y, steps, seed, w, crop,
                                              lv_config)
    ft = cfg.get("finetune", {}).get(sensor)
    ft_report = base_heldout = thr_b = None
    if ft:
        # the model before the fine-tune on the same validation data, for the comparison
        base_path = work / f"liveness_{sensor}_before_ft.onnx"
        export_liveness_onnx(lv, base_path)
        base_sess = Q.session(base_path, threads)
        pb = branch_scores(sr_sess, base_sess, caps["val"])
        pbr = branch_scores(sr_sess, base_sess, real_caps["val"])
        thr_b = choose(pb, cls["val"], pbr)
        val_before = rates(pb, cls["val"], thr_b, pbr)
        _log(f"[{sensor}] before fine-tune: validation {json.dumps(val_before)}")
        # held-out rates of the model before the fine-tune: the SR side of the "without SR"
        # ablation below, whose classifier has the same recipe (no fine-tune)
        base_heldout = rates(branch_scores(sr_sess, base_sess, caps["test"]), cls["test"], thr_b,
                             branch_scores(sr_sess, base_sess, real_caps["test"]))
        lv, ft_report = _finetune_block(sensor, ft, lv, root, work, models, sr_sess, threads,
                                        caps["train"], cls["train"], real_caps["train"],
                                        resume)
        ft_report["validation_before"] = val_before
        for k, key in enumerate(LATER_ROUNDS, start=2):
            ftk = cfg.get(key, {}).get(sensor)
            if ftk:
                lv, ftk_report = _finetune_block(sensor, ftk, lv, root, work, models, sr_sess,
                                                 threads, caps["train"], cls["train"],
                                                 real_caps["train"], resume, name=f"ft{k}")
                ft_report[f"round{k}"] = ftk_report
    lv_path = models / f"liveness_{sensor}.onnx"
    export_liveness_onnx(lv, lv_path)
    lv_sess = Q.session(lv_path, threads)

    p_syn, p_real = split_scores(sr_sess, lv_sess, caps, real_caps)
    fp32 = _fp32_rates((p_syn, p_real), cls)
    thr = fp32["threshold"]
    _log(f"[{sensor}] fp32 threshold {thr:.4g} held-out {json.dumps(fp32['heldout'])}")

    # ---- ablation: the same classifier on the captures themselves (no SR)
    lv_raw, raw_hist, raw_seconds = _liveness_block(
        work, f"liveness_{sensor}_nosr.pt", resume, train_caps, train_y, steps, seed, w,
        crop if crop and crop < train_caps.shape[1] else None, lv_config)
    q = {s: predict(lv_raw, caps[s], mirror=True) for s in ("val", "test")}
    qr = {s: predict(lv_raw, real_caps[s], mirror=True) for s in ("val", "test")}
    thr_raw = choose(q["val"], cls["val"], qr["val"])
    ablation = {"without_sr": {"threshold": thr_raw,
                               "heldout": rates(q["test"], cls["test"], thr_raw, qr["test"]),
                               "validation": rates(q["val"], cls["val"], thr_raw, qr["val"]),
                               "final_train_log": raw_hist[-1],
                               "train_seconds": round(raw_seconds, 1)}}
    _, att_raw = by_species(q["test"], cls["test"])
    ablation["without_sr"]["heldout"]["species_margin_logit"] = species_margins(att_raw, thr_raw)
    _log(f"[{sensor}] without SR: held-out {json.dumps(ablation['without_sr']['heldout'])}")
    if base_heldout is not None:
        ablation["with_sr_same_recipe"] = {"threshold": thr_b, "heldout": base_heldout,
                                           "validation": ft_report["validation_before"]}
        _log(f"[{sensor}] with SR, same recipe (before the fine-tune): held-out "
             f"{json.dumps(base_heldout)}")

    # ---- int8
    calib_caps = calibration_captures(train_caps, w, cfg["calibration_frames"], seed)
    sr8_path = models / f"sr_{sensor}_int8.onnx"
    Q.quantize_int8(sr_path, sr8_path, calib_caps, "capture",
                    exclude_name_parts=Q.SR_FLOAT_NODES)
    lv8_path = models / f"liveness_{sensor}_int8.onnx"
    quantize_liveness(lv_path, lv8_path, sr_sess, calib_caps)
    sr8_sess, lv8_sess = Q.session(sr8_path, threads), Q.session(lv8_path, threads)
    int8 = _int8_rates(split_scores(sr8_sess, lv8_sess, caps, real_caps), cls, fp32)
    sr_report["heldout_synthetic_int8"] = _sr_eval(sr8_sess, *sr_test_pairs, reference=sr_sess)
    if sensor == "nir" and real["test"]:
        rl, rh = real_pairs(real["test"], SR_SEEDS["test"], random_crop=False)
        sr_report["heldout_real_nir_int8"] = _sr_eval(sr8_sess, rl, rh, reference=sr_sess)
    _log(f"[{sensor}] int8 threshold {int8['threshold']:.4g} held-out "
         f"{json.dumps(int8['heldout'])}")

    # ---- sizes, latencies, int8 operators
    perf = model_perf([sr_path, sr8_path, lv_path, lv8_path])
    _log(f"[{sensor}] perf {json.dumps(perf)}")

    # ---- occlusion maps on a few held-out examples
    occ_path = None
    if cfg["occlusion"]:
        occ_path = docs / f"liveness_occlusion_{sensor}.png"
        occlusion_sheet(sensor, sr_sess, lv_sess, caps["test"], cls["test"], p_syn["test"],
                        occ_path)

    # ---- manifest entries
    def palms(files):
        return len(set(f.parent.name for f in files))

    data_lv = [f"{s}: " + " and ".join(synth_command(sensor, sp) for sp in sizes[s])
               for s in ("train", "val", "test")]
    if real["train"]:
        data_lv.append(
            f"real NIR bona fide (PolyU, centre-cropped to 128x128): training "
            f"{len(real['train'])} captures of {palms(real['train'])} palms; "
            f"validation {len(real['val'])} captures of {palms(real['val'])} "
            f"palms (split_subjects(250, 0.2, 0)); held-out {len(real['test'])} captures of "
            f"{palms(real['test'])} other palms (split_subjects(200, 0.25, 1))")
    data_lv = "; ".join(data_lv) + (f"; training images are the outputs of sr_{sensor}.onnx; "
                                    f"threshold chosen on validation only")
    common = {"command": command, "manifest_path": manifest}
    from tools.manifest import update_entry
    update_entry(f"sr_{sensor}.onnx", metrics={
        "heldout_synthetic": sr_report["heldout_synthetic"],
        **({"heldout_real_nir": sr_report["heldout_real_nir"]}
           if "heldout_real_nir" in sr_report else {}),
        "train_log": sr_report["history"][-3:], "profile": profile, "iters": cfg["sr_iters"],
        **perf[f"sr_{sensor}.onnx"]}, data="; ".join(sr_report["data"]),
        notes=f"Seed 001 SR (claim 2), {sensor}: capture (N,1,H,W) in [0,1] -> x2 image, clipped "
              f"to [0,1]. feature_extraction conv5x5 1->{SR_ARCH['c1']} ReLU; feature_mapping "
              f"{SR_ARCH['c1']}->{SR_ARCH['c2']} (+{SR_ARCH['mapping_layers'] - 1} x "
              f"{SR_ARCH['c2']}->{SR_ARCH['c2']}) conv3x3 ReLU; reconstruction conv3x3 -> 4 + "
              f"capture, DepthToSpace(2). PSNR/SSIM with 4 HR px shaved.",
        extra={"scale": 2, "stages": sr_report["channels"]}, **common)
    update_entry(f"sr_{sensor}_int8.onnx", metrics={
        "heldout_synthetic": sr_report["heldout_synthetic_int8"],
        **({"heldout_real_nir": sr_report["heldout_real_nir_int8"]}
           if "heldout_real_nir_int8" in sr_report else {}),
        **perf[f"sr_{sensor}_int8.onnx"]},
        data=f"static int8 QDQ of sr_{sensor}.onnx (per-channel weights, MinMax) calibrated on "
             f"{len(calib_caps)} training captures (bona fide and every species)",
        notes="int8 version of the fp32 SR model; see 'operators' for what runs in int8",
        extra={"scale": 2, "quantized_from": f"sr_{sensor}.onnx"}, **common)
    lv_metrics = {"heldout": fp32["heldout"], "validation": fp32["validation"],
                  "ablation_without_sr": ablation["without_sr"]["heldout"],
                  "ablation_with_sr_same_recipe": (ablation.get("with_sr_same_recipe") or {}
                                                   ).get("heldout"),
                  "train_log": lv_hist, "steps": steps, "profile": profile,
                  "train_crop": crop, **perf[f"liveness_{sensor}.onnx"]}
    if ft_report:
        lv_metrics["finetune"] = ft_report
        data_lv += (f"; then fine-tuned ({ft_report['config']['steps']} steps) on the training "
                    f"sets + a fresh hard-example set ({ft_report['mined_set']}) + the real "
                    f"training captures, as unrounded SR outputs, hardest presentations of the "
                    f"fresh set drawn {1 + ft_report['config']['hard_extra']:g}x as often")
        for k in range(2, 2 + len(LATER_ROUNDS)):
            if f"round{k}" in ft_report:
                data_lv += round_text(k, ft_report[f"round{k}"], sensor)
        data_lv += ("; exported with the mirror average (logits of the image and its "
                    "left-right mirror averaged before the softmax)")
    _liveness_entries(sensor, lv.config, lv_metrics, data_lv, fp32["threshold"], int8, perf,
                      len(calib_caps), common)

    return {"sr": sr_report, "liveness_fp32": fp32, "liveness_int8": int8,
            "ablation": ablation, "perf": perf,
            "occlusion_png": str(occ_path) if occ_path else None,
            "liveness_train_log": lv_hist, "liveness_train_seconds": round(lv_seconds, 1),
            "finetune": ft_report,
            "heldout_dirs": {"synthetic": [str(liveness_set(root, sensor, "test", sp))
                                           for sp in sizes["test"]]},
            "seconds": round(time.time() - t_all, 1)}


def continue_rounds(sensor: str, rounds: list[str], work: Path, models: Path, command: str,
                    profile: str, threads: int = 1, seed: int = 0,
                    resume: bool = False) -> dict:
    """Run fine-tune rounds of ``CONFIG[profile]`` (keys such as ``finetune4``) on the liveness
    file in ``models`` -- the model the earlier rounds made, whose training checkpoints need
    not be here -- with ``sr_<sensor>.onnx`` unchanged; then export fp32 and int8 again,
    choose both thresholds on validation, measure the held-out sets, and update the two
    liveness entries of the manifest (the earlier rounds' data and the without-SR ablation are
    kept).  ``python -m tools.train sensor --continue-rounds KEY ...``."""
    from tools.manifest import sha256_file

    cfg = CONFIG[profile]
    missing = [k for k in rounds if not cfg.get(k, {}).get(sensor)]
    if missing:
        raise ValueError(f"profile {profile!r} has no round {missing} for {sensor}")
    models, work = Path(models), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    root = data_root(work)
    manifest = models / "manifest.json"
    lv_path = models / f"liveness_{sensor}.onnx"
    entry = json.loads(manifest.read_text())["models"][lv_path.name]
    src_sha = sha256_file(lv_path)
    if src_sha != entry["sha256"]:
        raise ValueError(f"{lv_path} does not match its manifest entry")
    sr_path = models / f"sr_{sensor}.onnx"
    sr_sess = Q.session(sr_path, threads)
    _, real_caps = real_captures(cfg, sensor)
    caps, cls = {}, {}
    for s in ("train", "val", "test"):
        caps[s], _, cls[s] = load_split(root, sensor, s, cfg["liveness"][sensor][s])
    model, mirror = load_from_onnx(lv_path), onnx_mirror(lv_path)
    reports = {}
    for key in rounds:
        ft = cfg[key][sensor]
        # the file's function has its BatchNorm folded already
        model, reports[key] = _finetune_block(sensor, dict(ft, fused=True), model, root, work,
                                              models, sr_sess, threads, caps["train"],
                                              cls["train"], real_caps["train"], resume,
                                              name=key)
    export_liveness_onnx(model, lv_path, mirror=mirror)
    lv_sess = Q.session(lv_path, threads)
    p_syn, p_real = split_scores(sr_sess, lv_sess, caps, real_caps)
    fp32 = _fp32_rates((p_syn, p_real), cls)
    thr = fp32["threshold"]
    _log(f"[{sensor}] fp32 threshold {thr:.4g} held-out {json.dumps(fp32['heldout'])}")
    train_caps = np.concatenate([caps["train"], real_caps["train"]])
    real_mask = np.arange(len(train_caps)) >= len(caps["train"])
    train_cls = np.concatenate([cls["train"], np.full(len(real_caps["train"]), "bona_fide")])
    calib = calibration_captures(train_caps, _weights(train_cls, real_mask),
                                 cfg["calibration_frames"], seed)
    lv8_path = models / f"liveness_{sensor}_int8.onnx"
    quantize_liveness(lv_path, lv8_path, sr_sess, calib)
    sr8_sess = Q.session(models / f"sr_{sensor}_int8.onnx", threads)
    int8 = _int8_rates(split_scores(sr8_sess, Q.session(lv8_path, threads), caps, real_caps),
                       cls, fp32)
    _log(f"[{sensor}] int8 threshold {int8['threshold']:.4g} held-out "
         f"{json.dumps(int8['heldout'])}")
    perf = model_perf([lv_path, lv8_path])
    if cfg["occlusion"]:
        docs = PROJECT_ROOT / "docs" if models.resolve() == MODELS_DIR.resolve() \
            else work / "docs"
        docs.mkdir(parents=True, exist_ok=True)
        occlusion_sheet(sensor, sr_sess, lv_sess, caps["test"], cls["test"], p_syn["test"],
                        docs / f"liveness_occlusion_{sensor}.png")
    old = entry["metrics"]
    finetune = dict(old.get("finetune") or {})
    data = entry["data"].split("; exported with the mirror average")[0]
    for key in rounds:
        # the next number after the rounds the file's entry already reports
        k = 1 + max((int(r[5:]) for r in finetune if r.startswith("round")), default=1)
        finetune[f"round{k}"] = reports[key]
        data += round_text(k, reports[key], sensor)
    data += (f"; rounds from {', '.join(rounds)} continued from the file with sha256 "
             f"{src_sha[:12]} (made by: {entry['command']}) by this command; the validation "
             f"and held-out sets are those of the profile now: " + "; ".join(
                 f"{s}: " + " and ".join(synth_command(sensor, sp)
                                         for sp in cfg["liveness"][sensor][s])
                 for s in ("val", "test")))
    if mirror:
        data += ("; exported with the mirror average (logits of the image and its "
                 "left-right mirror averaged before the softmax)")
    metrics = {**old, "heldout": fp32["heldout"], "validation": fp32["validation"],
               "finetune": finetune, **perf[lv_path.name]}
    _liveness_entries(sensor, model.config, metrics, data, thr, int8, perf, len(calib),
                      {"command": command, "manifest_path": manifest})
    report = {"rounds": reports, "liveness_fp32": fp32, "liveness_int8": int8, "perf": perf,
              "continued_from_sha256": src_sha}
    (work / f"continue_{sensor}.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def _max_rate_diff(a: dict, b: dict) -> float:
    diffs = [abs(a["apcer"][k] - b["apcer"][k]) for k in a["apcer"]]
    for k in ("bpcer", "bpcer20", "bpcer100", "real_nir_bpcer"):
        if a.get(k) is not None and b.get(k) is not None:
            diffs.append(abs(a[k] - b[k]))
    return round(100 * max(diffs), 3)


def run(steps: int, seed: int, work: Path, models: Path, command: str, profile: str,
        sensors=SENSORS, threads: int = 0, resume: bool = False) -> dict:
    """``python -m tools.train sensor``: both sensors, SR + liveness, fp32 + int8."""
    cfg = CONFIG[profile]
    work = Path(work)
    root = data_root(work)
    models = Path(models)
    models.mkdir(parents=True, exist_ok=True)
    shipped = models.resolve() == MODELS_DIR.resolve()
    manifest = models / "manifest.json"
    docs = PROJECT_ROOT / "docs" if shipped else work / "docs"
    report = {"profile": profile, "command": command}
    split = real_nir_split()
    if split["test"] and "nir" in sensors:
        live, pairs = write_real_heldout(root, split["test"][:cfg["real_subjects"]["test"]])
        report["real_nir_heldout_dirs"] = {"liveness": str(live), "sr_pairs": str(pairs)}
    name = "sensor_report.json" if len(sensors) > 1 else f"sensor_report_{sensors[0]}.json"
    for sensor in sensors:
        report[sensor] = run_sensor(sensor, cfg, root, work, models, docs, steps, seed, threads,
                                    command, manifest, profile, resume)
        (work / name).write_text(json.dumps(report, indent=2, default=float))
    _log(f"report: {work / name}")
    return report


# --------------------------------------------------------------------------------------------
# claim 9: fine-tune the liveness model on reviewed presentations


def retrain(reviewed: Path, sensor: str | None, steps: int, seed: int, work: Path,
            models_src: Path, models_dst: Path, command: str, profile: str,
            threads: int = 0) -> dict:
    """Fine-tune ``liveness_<sensor>.onnx`` of ``models_src`` on the reviewed presentations in
    ``reviewed`` (liveness layout, as written by ``palmgate review``) mixed with replayed
    training data; the SR model is used frozen and copied unchanged.  The threshold is chosen
    again on the validation set; before/after rates on the reviewed samples, the validation
    set and the held-out test set are returned and written to WORK/retrain_<sensor>.json."""
    import shutil

    from tools.manifest import update_entry

    reviewed = Path(reviewed)
    meta = reviewed / "review.json"
    if sensor is None:
        if not meta.exists():
            raise ValueError("--sensor is needed (no review.json in the reviewed folder)")
        sensor = json.loads(meta.read_text())["sensor"]
    cfg = CONFIG[profile]
    root = data_root(work)
    src_manifest = json.loads((Path(models_src) / "manifest.json").read_text())["models"]
    old_thr = float(src_manifest[f"liveness_{sensor}.onnx"]["threshold"])
    sr_path = Path(models_src) / f"sr_{sensor}.onnx"
    lv_src = Path(models_src) / f"liveness_{sensor}.onnx"
    sr_sess, lv_old = Q.session(sr_path, threads), Q.session(lv_src, threads)

    rev_caps, rev_y, rev_cls = load_liveness_dir(reviewed)
    _, real_caps = real_captures(cfg, sensor)
    sizes = cfg["liveness"][sensor]
    caps, cls = {}, {}
    for s in ("train", "val", "test"):
        caps[s], _, cls[s] = load_split(root, sensor, s, sizes[s])

    # replay: a class-balanced draw of all the data the shipped model was trained on (the
    # training sets and the fine-tune rounds' fresh sets, when they are there, and the real
    # captures); replaying the first training sets only pulled the fine-tuned model back
    # (held-out BPCER 1.0 -> 2.5 % after 300 steps)
    ft_sets = [sp for sp in finetune_set_specs(cfg, sensor)
               if liveness_set_dir(root, sensor, "train", sp).exists()]
    _log(f"[{sensor}] replay from the training sets and fine-tune sets {ft_sets}")
    ft_loaded = [load_liveness_dir(liveness_set(root, sensor, "train", sp)) for sp in ft_sets]
    tr_caps = np.concatenate([caps["train"]] + [f[0] for f in ft_loaded] + [real_caps["train"]])
    tr_cls = np.concatenate([cls["train"]] + [f[2] for f in ft_loaded]
                            + [np.full(len(real_caps["train"]), "bona_fide")])
    rm = np.zeros(len(tr_caps), bool)
    rm[len(tr_caps) - len(real_caps["train"]):] = True
    rng = np.random.default_rng(seed)
    n_rep = min(cfg["retrain_replay"], len(tr_caps))
    rep = rng.choice(len(tr_caps), n_rep, replace=False, p=_weights(tr_cls, rm))
    rep_caps, rep_cls = tr_caps[rep], tr_cls[rep]

    def evaluate(lv_sess, thr):
        out = {"reviewed": {"n": int(len(rev_caps)), "correct": int(np.sum(
            is_live(branch_scores(sr_sess, lv_sess, rev_caps), thr) == (rev_y == 1)))}}
        for s in ("val", "test"):
            p = branch_scores(sr_sess, lv_sess, caps[s])
            pr = branch_scores(sr_sess, lv_sess, real_caps[s]) if len(real_caps[s]) else None
            out["validation" if s == "val" else "heldout"] = rates(p, cls[s], thr, pr)
        return out

    before = evaluate(lv_old, old_thr)
    _log(f"[{sensor}] before: reviewed {before['reviewed']}")
    model = load_from_onnx(lv_src)
    all_caps = np.concatenate([rev_caps, rep_caps])
    all_cls = np.concatenate([rev_cls, rep_cls])
    all_y = (all_cls == "bona_fide").astype(np.int64)
    share = cfg.get("retrain_reviewed_share", 0.25)     # sampling weight of the reviewed frames
    w = np.concatenate([np.full(len(rev_caps), share / max(len(rev_caps), 1)),
                        np.full(len(rep_caps), (1 - share) / len(rep_caps))])
    # unrounded SR outputs, as the runtime feeds them (see _finetune_block)
    imgs = run_sr(sr_sess, all_caps, as_u8=False, dtype=np.float16)
    model, hist = train_liveness(imgs, all_y, steps=steps, seed=seed, weights=w, model=model,
                                 lr_rate=1e-4, log=_log, log_every=max(steps // 5, 1))
    models_dst = Path(models_dst)
    models_dst.mkdir(parents=True, exist_ok=True)
    manifest = models_dst / "manifest.json"
    if models_dst.resolve() != Path(models_src).resolve():
        shutil.copy(sr_path, models_dst / sr_path.name)
        shutil.copy(Path(models_src) / f"sr_{sensor}_int8.onnx", models_dst)
        for n in (f"sr_{sensor}.onnx", f"sr_{sensor}_int8.onnx"):
            e = src_manifest[n]
            update_entry(n, metrics=e["metrics"], command=e["command"], data=e["data"],
                         notes=e.get("notes", ""), manifest_path=manifest,
                         extra={k: v for k, v in e.items() if k in ("scale", "stages",
                                                                    "quantized_from")})
    lv_path = models_dst / f"liveness_{sensor}.onnx"
    export_liveness_onnx(model, lv_path, mirror=onnx_mirror(lv_src))
    lv_new = Q.session(lv_path, threads)
    p_val = branch_scores(sr_sess, lv_new, caps["val"])
    pr_val = branch_scores(sr_sess, lv_new, real_caps["val"]) if len(real_caps["val"]) else None
    thr = choose(p_val, cls["val"], pr_val)
    after = evaluate(lv_new, thr)
    _log(f"[{sensor}] after: reviewed {after['reviewed']}")
    # int8 of the fine-tuned model, calibrated like the shipped one
    pick = rng.choice(len(tr_caps), cfg["calibration_frames"], replace=False,
                      p=_weights(tr_cls, rm))
    calib = [tr_caps[i][None, None].astype(np.float32) / 255.0 for i in pick]
    lv8 = models_dst / f"liveness_{sensor}_int8.onnx"
    quantize_liveness(lv_path, lv8, sr_sess, calib)
    sr8 = Q.session(Path(models_src) / f"sr_{sensor}_int8.onnx", threads)
    lv8_sess = Q.session(lv8, threads)
    thr8 = choose(branch_scores(sr8, lv8_sess, caps["val"]), cls["val"],
                  branch_scores(sr8, lv8_sess, real_caps["val"]) if len(real_caps["val"]) else None)
    report = {"sensor": sensor, "reviewed_dir": str(reviewed), "reviewed_classes":
              {c: int(np.sum(rev_cls == c)) for c in dict.fromkeys(rev_cls)},
              "replayed_training_images": int(n_rep), "steps": steps,
              "threshold_before": old_thr, "threshold_after": thr, "threshold_int8_after": thr8,
              "before": before, "after": after, "train_log": hist,
              "sr_unchanged": Q_sha(sr_path) == src_manifest[f"sr_{sensor}.onnx"]["sha256"]}
    src_sha = src_manifest[f"liveness_{sensor}.onnx"]["sha256"][:12]
    data = (f"fine-tuned from {lv_src} (sha256 {src_sha}) "
            f"on {len(rev_caps)} reviewed presentations of {reviewed} (SR outputs of the "
            f"unchanged sr_{sensor}.onnx) + {n_rep} replayed training images; threshold "
            f"chosen on validation")
    update_entry(lv_path.name, metrics={"heldout": after["heldout"],
                                        "validation": after["validation"],
                                        "reviewed": after["reviewed"],
                                        "before_retrain": before, "steps": steps},
                 command=command, data=data, manifest_path=manifest,
                 notes=f"claim-9 fine-tune of liveness_{sensor}.onnx",
                 extra={"threshold": thr, "input": f"output of sr_{sensor}.onnx",
                        "sr_model": f"sr_{sensor}.onnx"})
    update_entry(lv8.name, metrics={"steps": steps}, command=command,
                 data=f"static int8 QDQ of {lv_path.name} ({len(calib)} calibration frames)",
                 manifest_path=manifest, notes="int8 of the claim-9 fine-tuned model",
                 extra={"threshold": thr8, "input": f"output of sr_{sensor}_int8.onnx",
                        "sr_model": f"sr_{sensor}_int8.onnx",
                        "quantized_from": lv_path.name})
    Path(work).mkdir(parents=True, exist_ok=True)
    (Path(work) / f"retrain_{sensor}.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def Q_sha(path) -> str:
    from tools.manifest import sha256_file
    return sha256_file(path)
