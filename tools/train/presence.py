"""``python -m tools.train presence --sensor xray|nir --profile quick|full``: the presence check
of the sensor stage (device/models/presence.py, issue 21).

1. Frames (tools/train/presence_data.py): hand frames of the sensor -- synthetic bona fide and
   every attack species (attacks are hands: they must pass presence and be judged by liveness),
   plus the real NIR training palms for NIR -- against no-hand frames of the training kinds
   (device/synth/no_hand.py), training and validation splits disjoint in seeds and pictures.
2. The classical limits (device/models/presence_stats.py): the range of each frame statistic
   over the training hand frames, widened by a quarter of its spread.
3. The classifier: a 5-layer CNN (21 k weights) on the 128x128 capture; class-balanced
   batches; random flips/shifts and mild photometric changes of the hand frames; no-hand frames
   from the pool, drawn new every step, and the hardest of recent batches.
4. Export fp32 and static int8 (QDQ, Softmax in float); the threshold of each, on validation
   frames: the highest p(hand) threshold that rejects at most 0.1 % of the validation hand
   frames (synthetic bona fide + attacks, real NIR validation palms), moved down to the middle
   (in logit space) of the gap to the best-scoring validation no-hand frame when there is one.
5. Manifest entries (sha256, shapes, threshold, ``presence_limits``, validation metrics, the
   command and data), re-signed when a key is given.

The held-out test is ``python -m tools.train.presence_heldout`` (frames no choice was made on).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from device.synth.no_hand import TRAIN_KINDS, no_hand_frames
from device.models.presence_stats import limits_from, stats_of
from tools.train.presence_data import (NEG_SEEDS, OTHER, POS_SEED, real_nir, sources,
                                       synthetic_hands)

PROFILES = {
    "quick": {"bona_fide": 500, "per_species": 150, "real": 80, "neg": 3000, "steps": 1500,
              "val_bona_fide": 300, "val_per_species": 100, "val_neg": 5000, "batch": 64},
    "full": {"bona_fide": 1000, "per_species": 250, "real": 150, "neg": 6000, "steps": 3000,
             "val_bona_fide": 600, "val_per_species": 200, "val_neg": 8000, "batch": 64},
}
WIDTHS = (8, 16, 24, 32)
VAL_REJECT = 0.001
"""At most this share of the validation hand frames may be refused by the threshold."""


def hand_frames(sensor: str, split: str, cfg: dict, prefix: str = "") -> np.ndarray:
    syn, _ = synthetic_hands(sensor, split, cfg[prefix + "bona_fide"],
                             cfg[prefix + "per_species"])
    if sensor == "nir":
        syn = np.concatenate([syn, real_nir(split, cfg["real"] if split == "train" else None)])
    return syn


def split_frames(sensor: str, split: str, cfg: dict) -> tuple[np.ndarray, np.ndarray, list]:
    """(hand frames, no-hand frames, their kinds) of the training or validation split."""
    pre = "" if split == "train" else "val_"
    hands = hand_frames(sensor, split, cfg, pre)
    neg, kinds = no_hand_frames(cfg[pre + "neg"], NEG_SEEDS[split], TRAIN_KINDS,
                                sources(split, hands[::2], _other(sensor, split)))
    return hands, neg, kinds


def _other(sensor: str, split: str) -> np.ndarray:
    """Bona fide captures of the other sensor (the no-hand kind ``other_sensor``)."""
    return synthetic_hands(OTHER[sensor], split, 300, 0)[0]


# --------------------------------------------------------------------------------------------
# model


def build_model(widths=WIDTHS):
    import torch
    from torch import nn

    def cbr(i, o, s):
        return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o),
                             nn.ReLU(inplace=True))

    a, b, c, d = widths

    class PresenceNet(nn.Module):
        """capture (N, 1, 128, 128) in [0, 1] -> probs (N, 2): [no hand, hand]."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(cbr(1, a, 2), cbr(a, b, 2), cbr(b, c, 2), cbr(c, d, 2),
                                          cbr(d, d, 1))
            self.head = nn.Linear(2 * d, 2)

        def logits(self, x):
            f = self.features((x - 0.5) * 4.0)
            return self.head(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1))

        def forward(self, x):
            return torch.softmax(self.logits(x), 1)

    return PresenceNet()


def augment_hand(x: np.ndarray, rng) -> np.ndarray:
    """A hand frame as another presentation could give it: flipped, shifted, mildly re-exposed."""
    import cv2
    if rng.uniform() < 0.5:
        x = x[:, ::-1]
    if rng.uniform() < 0.5:
        m = np.float32([[1, 0, rng.uniform(-10, 10)], [0, 1, rng.uniform(-10, 10)]])
        x = cv2.warpAffine(np.ascontiguousarray(x), m, (128, 128), borderMode=cv2.BORDER_REPLICATE)
    x = np.clip(x, 0, 1) ** rng.uniform(0.85, 1.2) * rng.uniform(0.9, 1.1)
    if rng.uniform() < 0.3:
        x = x + rng.normal(0, rng.uniform(0.002, 0.012), x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def augment_neg(x: np.ndarray, rng) -> np.ndarray:
    if rng.uniform() < 0.5:
        x = x[:, ::-1]
    if rng.uniform() < 0.5:
        x = x[::-1]
    return np.ascontiguousarray(x)


def train(pos, neg, steps: int, batch: int, seed: int = 0, log=print, fresh=None):
    """Class-balanced batches: half hand frames (augmented), half no-hand frames: up to a
    quarter the hardest no-hand frames of recent batches (the highest p(hand), kept in a buffer
    of 256), of the rest half drawn new for this step by ``fresh(step, n)`` when given, half
    from the pool ``neg``."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng([seed, 13])
    t0 = time.time()
    h = batch // 2
    n_neg = batch - h
    y = torch.cat([torch.ones(h, dtype=torch.long), torch.zeros(n_neg, dtype=torch.long)])
    hard: list = []                                    # (p(hand), frame) of recent negatives
    for step in range(steps):
        xb = [augment_hand(pos[i], rng) for i in rng.integers(0, len(pos), h)]
        n_hard = min(len(hard), n_neg // 4)
        n_new = (n_neg - n_hard) // 2 if fresh is not None else 0
        negs = [augment_neg(neg[i], rng) for i in rng.integers(0, len(neg),
                                                                n_neg - n_hard - n_new)]
        if n_new:
            negs += list(fresh(step, n_new))
        negs += [augment_neg(hard[i][1], rng) for i in rng.choice(len(hard), n_hard,
                                                                  replace=False)] \
            if n_hard else []
        model.train()
        logits = model.logits(torch.from_numpy(np.stack(xb + negs))[:, None])
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        p = torch.softmax(logits.detach()[h:], 1)[:, 1].numpy()
        hard += [(float(pi), f) for pi, f in zip(p, negs) if pi > 0.02]
        hard = sorted(hard, key=lambda t: -t[0])[:256]
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step} loss {loss.item():.4f} hard {len(hard)} "
                f"{time.time() - t0:.0f}s")
    return model.eval()


def export(model, path: Path) -> None:
    import torch
    torch.onnx.export(model, (torch.zeros(1, 1, 128, 128),), str(path), input_names=["capture"],
                      output_names=["probs"],
                      dynamic_axes={"capture": {0: "batch"}, "probs": {0: "batch"}},
                      opset_version=17, dynamo=False)


def onnx_p_hand(path: Path, frames: np.ndarray, threads: int = 1) -> np.ndarray:
    from tools.train.sensor_quant import session
    s = session(path, threads)
    return np.concatenate([s.run(None, {"capture": frames[i:i + 256, None]})[0][:, 1]
                           for i in range(0, len(frames), 256)]).astype(np.float64)


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def choose_threshold(pos_scores, neg_scores, reject: float = VAL_REJECT) -> float:
    """The highest threshold t (present iff p > t) that rejects at most ``reject`` of the hand
    frames; when every no-hand frame scores below that, the middle of the gap (logit space)."""
    ps = np.sort(np.asarray(pos_scores, np.float64))
    k = int(np.floor(reject * ps.size + 1e-9))          # hand frames that may score <= t
    lp = _logit(ps)
    hi = lp[k] - 1e-3 if k < ps.size else lp[-1]        # just below the (k+1)-th lowest
    neg_max = float(_logit(np.max(neg_scores))) if len(neg_scores) else -np.inf
    t = hi if neg_max >= hi else (max(neg_max, hi - 12.0) + hi) / 2
    return float(np.clip(1 / (1 + np.exp(-t)), 1e-6, 1 - 1e-6))


def rates(pos_scores, neg_scores, pos_ok, neg_ok, t: float) -> dict:
    """Validation rates at ``t`` with the classical test (``*_ok``: frames it passes)."""
    pa = (np.asarray(pos_scores) > t) & pos_ok
    na = (np.asarray(neg_scores) > t) & neg_ok
    return {"hand_frames": int(pa.size), "hand_rejected": int((~pa).sum()),
            "no_hand_frames": int(na.size), "no_hand_accepted": int(na.sum()),
            "threshold": t}


# --------------------------------------------------------------------------------------------
# the command


def run(sensor: str, profile: str, work: Path, models_dir: Path, command: str, seed: int = 0,
        threads: int = 1, steps: int | None = None, log=print) -> dict:
    import torch
    from device.models.presence_stats import check_limits, failures
    from tools.train.sensor_quant import int8_report, latency_ms, quantize_int8

    torch.set_num_threads(max(1, threads))
    cfg = dict(PROFILES[profile], **({"steps": steps} if steps else {}))
    work, models_dir = Path(work), Path(models_dir)
    work.mkdir(parents=True, exist_ok=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pos, neg, kinds = split_frames(sensor, "train", cfg)
    vpos, vneg, vkinds = split_frames(sensor, "val", cfg)
    log(f"{sensor}: {len(pos)} hand / {len(neg)} no-hand training frames, {len(vpos)} / "
        f"{len(vneg)} validation ({time.time() - t0:.0f}s)")
    limits = limits_from(stats_of(pos))
    lim = check_limits(limits)
    v_ok = np.array([not failures(s, lim) for s in stats_of(vpos)])
    vn_ok = np.array([not failures(s, lim) for s in stats_of(vneg)])
    log(f"classical: validation hand frames refused {int((~v_ok).sum())}/{v_ok.size}, "
        f"no-hand passed {int(vn_ok.sum())}/{vn_ok.size}")
    tr_src = sources("train", pos[::2], _other(sensor, "train"))

    def fresh(step, n):                 # n new no-hand frames of random training kinds
        kinds = list(np.random.default_rng([seed, 19, step]).choice(TRAIN_KINDS, n))
        return no_hand_frames(n, NEG_SEEDS["train"], kinds, tr_src, tag=1 + step)[0]

    model = train(pos, neg, cfg["steps"], cfg["batch"], seed, log, fresh)
    torch.save(model.state_dict(), work / f"presence_{sensor}.pt")
    fp32 = models_dir / f"presence_{sensor}.onnx"
    int8 = models_dir / f"presence_{sensor}_int8.onnx"
    export(model, fp32)
    rs = np.random.default_rng([seed, 17])
    calib = [np.concatenate([pos[rs.integers(0, len(pos), 8)], neg[rs.integers(0, len(neg), 8)]]
                            )[:, None] for _ in range(8)]
    quantize_int8(fp32, int8, calib, "capture")
    res = {"classical": {"validation_hand_refused": int((~v_ok).sum()),
                         "validation_no_hand_passed": int(vn_ok.sum())}}
    thresholds = {}
    for p in (fp32, int8):
        ps, ns = onnx_p_hand(p, vpos), onnx_p_hand(p, vneg)
        t = choose_threshold(ps[v_ok], ns)
        thresholds[p.name] = t
        r = rates(ps, ns, v_ok, vn_ok, t)
        acc = [k for k, s, ok in zip(vkinds, ns, vn_ok) if s > t and ok]
        r["no_hand_accepted_kinds"] = {k: acc.count(k) for k in sorted(set(acc))}
        r["latency_ms_1thread"] = latency_ms(p, {"capture": vpos[:1, None]}, threads=1)
        r["bytes"] = p.stat().st_size
        res[p.name] = {"validation": r}
        log(f"{p.name}: {json.dumps(r)}")
    res[int8.name]["operators"] = int8_report(int8)
    (work / f"presence_{sensor}_report.json").write_text(json.dumps(res, indent=1))
    _manifest(models_dir, sensor, fp32, int8, res, thresholds, limits, cfg, command)
    return res


def _manifest(models_dir, sensor, fp32, int8, res, thresholds, limits, cfg, command) -> None:
    from tools.manifest import update_entry
    real = f" + the real PolyU NIR training palms (first {cfg['real']} of 150 subjects)" \
        if sensor == "nir" else ""
    data = (f"hand frames: synthetic {sensor} bona fide ({cfg['bona_fide']}) and every attack "
            f"species ({cfg['per_species']} each) of liveness seed {POS_SEED['train']}{real}; "
            f"no-hand frames: {cfg['neg']} of device.synth.no_hand's training kinds "
            f"({', '.join(TRAIN_KINDS)}), seed {NEG_SEEDS['train']}, pictures: OpenCV left* "
            f"chessboard photos, Tongji palms 0-199, NTUST ntust-hp; validation (threshold): "
            f"seed {POS_SEED['val']} hand frames{' + real NIR validation palms' if real else ''}"
            f" and {cfg['val_neg']} no-hand frames of seed {NEG_SEEDS['val']}, Tongji 200-249")
    notes = ("capture (N, 1, 128, 128) in [0, 1] -> probs (N, 2) [no hand, hand]; a hand is "
             "present when p(hand) > threshold AND every frame statistic is inside "
             "presence_limits (device/models/presence_stats.py); else no_hand_in_sensor")
    mp = models_dir / "manifest.json"
    for p, extra in ((fp32, {}), (int8, {"quantized_from": fp32.name})):
        update_entry(p.name, metrics=res[p.name], command=command, data=data, notes=notes,
                     extra=dict(extra, threshold=thresholds[p.name], presence_limits=limits,
                                steps=cfg["steps"], sensor=sensor,
                                classical=res["classical"]),
                     manifest_path=mp)
