"""The hard-example fine-tune rounds of the liveness model (the profile keys ``finetune``,
``finetune2`` ...; their settings and why: tools/train/profiles/sensor_full.toml).  A round
scores a pool of training images with the model it starts from, draws the images the model gets
most wrong more often, and trains on from there."""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from tools.train import sensor_quant as Q
from tools.train.liveness_model import (LivenessNet, export_liveness_onnx, fused,
                                        train_liveness, widened)
from tools.train.sensor_config import LATER_ROUNDS, log
from tools.train.sensor_data import (liveness_set, load_liveness_dir, pair_set, pairs_command,
                                     synth_command)
from tools.train.sensor_scoring import branch_scores, choose, rates, run_liveness, run_sr
from tools.train.sensor_train import resumed_checkpoint


def finetune_set_specs(cfg: dict, sensor: str) -> list[tuple]:
    """The training sets the fine-tune rounds add to the pool (``extra`` and ``mine`` of
    ``finetune`` then the later rounds), in order, each once."""
    specs = []
    for key in ("finetune",) + LATER_ROUNDS:
        ft = cfg.get(key, {}).get(sensor)
        if ft:
            specs += [tuple(sp) for sp in ft.get("extra", ())] + [tuple(ft["mine"])]
    return list(dict.fromkeys(specs))


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
                      sensor: str, ft: dict, log=log, copies: int = 0):
    """Hard-example fine-tune (from ``model``) on the SR images of the training pool
    (original training sets, the fresh mining set, real captures); returns (model, history,
    weights report).  ``copies``: ``images`` holds the pool then that many resampled copies of
    it (copy-major, :func:`tools.train.resample_aug.resampled_copies`); ``cls`` and the masks
    are the pool's, and each copy is drawn as often as its original (a hard image's copies
    too)."""
    photo = "printed_photo" if sensor == "nir" else "photo"
    w, hard = _finetune_weights(cls, real_mask, mine_mask, mine_scores, photo,
                                ft["photo_share"], ft["hard_q"], ft["hard_extra"])
    y = np.tile((cls == "bona_fide").astype(np.int64), copies + 1)
    info = {"pool": {c: int(np.sum(cls == c)) for c in dict.fromkeys(cls)},
            "real": int(real_mask.sum()), "mined_set": int(mine_mask.sum()),
            "hard": {c: int(np.sum(hard & (cls == c))) for c in dict.fromkeys(cls)},
            "weight_share": {c: round(float(w[cls == c].sum()), 3) for c in dict.fromkeys(cls)},
            "resampled_copies": copies}
    w = np.tile(w, copies + 1) / (copies + 1)
    log(f"[{sensor}] fine-tune pool {json.dumps(info)}")
    model, hist = train_liveness(images, y, steps=ft["steps"], seed=ft["seed"], weights=w,
                                 model=model, lr_rate=ft["lr"], log=log,
                                 log_every=max(ft["steps"] // 10, 1))
    return model, hist, info


def finetune_block(sensor, ft, model, root, work, models, sr_sess, threads, train_caps,
                   train_cls, real_train_caps, resume=False, name: str = "ft", cache=None):
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
    round can also start from a shipped file: :func:`tools.train.sensor.continue_rounds`);
    ``widen`` = a wider ``plan`` (channels per conv layer), grown from the model without
    changing its function (:func:`tools.train.liveness_model.widened`).  Resuming reloads
    ``work/liveness_<sensor>_<name>.pt``.  ``cache``: an SRCache of the SR file (the pool's SR
    outputs are computed once and kept).  Returns (model, report)."""
    pool_caps, pool_cls, mine_mask, real_mask = round_pool(sensor, ft, root, train_caps,
                                                           train_cls, real_train_caps)
    ckpt_name = f"liveness_{sensor}_{name}.pt"
    ckpt = resumed_checkpoint(work, ckpt_name, resume)
    report = _round_report(sensor, ft)
    if ckpt is not None:
        model = LivenessNet(ckpt.get("config"), bn=not ft.get("fused"), hp_init=False)
        model.load_state_dict(ckpt["state_dict"])
        report.update(ckpt["report"])
        return model.eval(), report
    t = time.time()
    n_copies, all_caps, all_mine = resampled_pool(ft, pool_caps, mine_mask)
    pool, mine_scores = _scored_pool(sensor, model, work / f"liveness_{sensor}_before_{name}.onnx",
                                     sr_sess, threads, all_caps, all_mine, cache)
    log(f"[{sensor}] fine-tune: SR of {len(pool)} pool captures and scores of the mined set "
        f"{time.time() - t:.0f} s")
    if ft.get("fused"):
        model = fused(model)
    if ft.get("widen"):
        model = widened(model, ft["widen"], seed=ft["seed"])
    model, hist, info = finetune_liveness(model, pool, pool_cls, real_mask, mine_mask,
                                          mine_scores, sensor, ft, copies=n_copies)
    report.update({"pool": info, "train_log": hist,
                   "seconds": round(time.time() - t, 1)})
    torch.save({"state_dict": model.state_dict(), "config": model.config, "report": report},
               work / ckpt_name)
    return model.eval(), report


def resampled_pool(ft: dict, pool_caps: np.ndarray, mine_mask: np.ndarray):
    """A round's ``resample`` table (``copies`` and ``seed``, the rest settings of
    :func:`tools.train.resample_aug.resample_capture`): the pool's captures followed by that
    many resampled copies of every one, every class alike; only the originals are scored for
    mining.  Returns (copies, captures, mined mask); without the table (0, the pool, the
    mask)."""
    rs = dict(ft.get("resample") or {})
    copies = int(rs.pop("copies", 0))
    if not copies:
        return 0, pool_caps, mine_mask
    from tools.train.resample_aug import resampled_copies

    t = time.time()
    extra = resampled_copies(pool_caps, copies, int(rs.pop("seed", 0)), **rs)
    log(f"  {copies} resampled copies of {len(pool_caps)} pool captures ({time.time() - t:.0f} s)")
    return (copies, np.concatenate([pool_caps, extra]),
            np.concatenate([mine_mask, np.zeros(len(extra), bool)]))


def round_pool(sensor: str, ft: dict, root, train_caps, train_cls, real_train_caps):
    """The captures of a round's pool, in order: the first training sets (none with
    ``pool_only``), the ``extra`` and ``pairs`` sets, the fresh set ``mine``, the real training
    captures (bona fide); ``classes`` keeps only those classes; returns (captures, class names,
    which ones are scored to find the hard ones, which ones are real)."""
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
    if ft.get("classes"):               # only these classes of the sets (e.g. the first species)
        keep = np.isin(pool_cls, list(ft["classes"]))
        return pool_caps[keep], pool_cls[keep], mine_mask[keep], real_mask[keep]
    return pool_caps, pool_cls, mine_mask, real_mask


def _round_report(sensor: str, ft: dict) -> dict:
    """The start of a round's report: its settings and the commands of its sets."""
    return {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in ft.items()},
            "mined_set": synth_command(sensor, ft["mine"]),
            "extra_sets": [synth_command(sensor, sp) for sp in ft.get("extra", ())]
            + [pairs_command(sensor, sp) for sp in ft.get("pairs", ())]}


def _scored_pool(sensor, model, base_path, sr_sess, threads, pool_caps, mine_mask,
                 cache=None):
    """The pool as unrounded SR outputs (float16; from ``cache`` when given) and p(live) of
    its mined images by ``model`` (exported to ``base_path`` and run like the gate runs
    it)."""
    export_liveness_onnx(model, base_path)
    pool = cache.outputs(pool_caps) if cache is not None else \
        run_sr(sr_sess, pool_caps, as_u8=False, dtype=np.float16)
    return pool, run_liveness(Q.session(base_path, threads), pool[mine_mask])


def _before_rounds(sensor, lv, work, sr_sess, threads, caps, cls, real_caps) -> dict:
    """The trained model before the fine-tune rounds: its validation threshold and rates,
    and its held-out rates (the SR side of the without-SR ablation, whose classifier has the
    same recipe: no fine-tune)."""
    base_path = work / f"liveness_{sensor}_before_ft.onnx"
    export_liveness_onnx(lv, base_path)
    base_sess = Q.session(base_path, threads)
    pb = branch_scores(sr_sess, base_sess, caps["val"])
    pbr = branch_scores(sr_sess, base_sess, real_caps["val"])
    thr_b = choose(pb, cls["val"], pbr)
    val_before = rates(pb, cls["val"], thr_b, pbr)
    log(f"[{sensor}] before fine-tune: validation {json.dumps(val_before)}")
    base_heldout = rates(branch_scores(sr_sess, base_sess, caps["test"]), cls["test"], thr_b,
                         branch_scores(sr_sess, base_sess, real_caps["test"]))
    return {"threshold": thr_b, "heldout": base_heldout, "validation": val_before}


def run_rounds(sensor, cfg, lv, root, work, models, sr_sess, threads, caps, cls, real_caps,
               resume=False):
    """The profile's fine-tune rounds of a freshly trained liveness model: the first round
    (``finetune``), then each of LATER_ROUNDS the profile has for the sensor, each from the
    model of the one before.  Returns (model, report of the rounds or None, the model before
    the rounds (:func:`_before_rounds`) or None) -- (``lv``, None, None) when the profile has
    no ``finetune`` for the sensor."""
    ft = cfg.get("finetune", {}).get(sensor)
    if not ft:
        return lv, None, None
    before = _before_rounds(sensor, lv, work, sr_sess, threads, caps, cls, real_caps)
    lv, ft_report = finetune_block(sensor, ft, lv, root, work, models, sr_sess, threads,
                                   caps["train"], cls["train"], real_caps["train"], resume)
    ft_report["validation_before"] = before["validation"]
    for k, key in enumerate(LATER_ROUNDS, start=2):
        ftk = cfg.get(key, {}).get(sensor)
        if ftk:
            lv, ftk_report = finetune_block(sensor, ftk, lv, root, work, models, sr_sess,
                                            threads, caps["train"], cls["train"],
                                            real_caps["train"], resume, name=f"ft{k}")
            ft_report[f"round{k}"] = ftk_report
    return lv, ft_report, before
