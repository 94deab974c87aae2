"""``python -m tools.train phantom --profile quick|full --validation SET``: the X-ray phantom
check (device/models/phantom.py), retrained and exported -- ``phantom_xray.onnx`` (fp32) and
``phantom_xray_int8.onnx`` (static int8 QDQ) with their signed thresholds.

Steps (the recipe of docs/results.md "A learned X-ray phantom detector", chosen on the
monitoring seed 46019 before any validation set was read):

1. training frames (:mod:`tools.train.phantom_data`): ``n`` skeleton phantoms and ``n`` live
   hands (3/5 placed as at the gate, 2/5 in the scene's own placement) of seed 46013, the
   X-ray sensor frame only;
2. their SR images through the shipped int8 SR model (what the int8 gate's liveness reads);
3. :func:`tools.train.phantom_net.train` (Adam, one-cycle lr 3e-3, random 224 crops and flips,
   ``epochs``), exported to ONNX; int8: static QDQ calibrated on 64 training SR images, the
   first conv and the sigmoid in float;
4. each file's threshold on the validation live frames: the bona fide of every ``--validation
   SET`` (a ``tools.synth liveness --presentations --attack-species`` X-ray set) and the frames
   of every ``--live-frames NPZ`` (uint8 ``frames``, all live: ``phantom_data`` renders), the
   SR of its precision in front; the value beyond which at most 1 in ``allowed_in`` (1,000 by
   default) of them lie; every set's counts of every class at it go into the manifest entry.

``hard`` (0 by default: the recipe as first shipped, seed 9317 alone, 1 in 1,000): add that
many hard negatives -- live hands with >= 3 of the risk traits
(:func:`tools.train.phantom_data.risk_hands` of seed :data:`HARD_SEED`), each with a phantom
cast on the same hand (:func:`~tools.train.phantom_data.hard_plan`) -- after seed 46013's
frames (docs/results.md "The phantom check retrained with the live tail's hands").

quick: 300 + 300 frames (and ``hard`` x 300 / 4,000 hard pairs), 2 epochs, the first 200
presentations of each validation class and live-frame file (a few minutes on one laptop core);
full: 4,000 + 4,000 (+ ``hard`` pairs), 16 epochs, the whole sets (~15-20 min on one core).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from device.models.ort_session import session_options

PROFILES = {"quick": {"n": 300, "epochs": 2, "per_class": 200},
            "full": {"n": 4000, "epochs": 16, "per_class": None}}
TRAIN_SEED = 46013
HARD_SEED = 61403
CALIBRATION = 64
ALLOWED_IN = 1000
LIVE = "bona_fide"


def hard_count(hard: int, n: int) -> int:
    """Hard pairs of a profile of ``n`` + ``n`` frames: ``hard`` at the full 4,000, scaled."""
    return (hard * n) // PROFILES["full"]["n"]


def _frames(n: int, seed: int, log, hard: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from tools.train.phantom_data import LABEL, hard_plan, plan, render_frame, to_u8
    items = [(c, seed, i) for c, i in plan(n)]
    if hard:
        items += [(c, HARD_SEED, i) for c, i in hard_plan(HARD_SEED, hard)]
    frames = np.stack([to_u8(render_frame(c, s, i)) for c, s, i in items])
    log(f"phantom: rendered {len(items) - 2 * hard} training frames of seed {seed}"
        + (f" and {2 * hard} hard ones of seed {HARD_SEED}" if hard else ""))
    return frames, np.array([LABEL[c] for c, _, _ in items], np.float32)


def _live_frames(npz: Path, per_class: int | None) -> list[tuple[str, np.ndarray]]:
    """A file of rendered live frames (``phantom_data``'s npz: uint8 ``frames``) as bona fide
    validation frames."""
    frames = np.load(npz)["frames"]
    return [(LIVE, f) for f in frames[:per_class]]


def _validation(set_dir: Path, per_class: int | None) -> list[tuple[str, Path]]:
    man = json.loads((Path(set_dir) / "manifest.json").read_text())
    if man.get("sensor", "xray") != "xray":
        raise ValueError(f"{set_dir}: an X-ray set is needed")
    seen: dict = {}
    out = []
    for f in man["files"]:
        k = seen.get(f["class"], 0)
        if per_class is None or k < per_class:
            out.append((f["class"], Path(set_dir) / f["folder"] / "sensor.png"))
            seen[f["class"]] = k + 1
    return out


def _scores(model: Path, precision: str, frames: list, models_dir=None) -> np.ndarray:
    """p(phantom) of ``model`` on the SR (of ``precision``, from ``models_dir``'s signed SR
    file: the shipped one by default) of ``frames``."""
    import onnxruntime as ort

    from device.models.model import DEFAULT_MODELS_DIR, Model
    from device.models.sensor_branch import model_names
    from tools.train.phantom_net import sr_images
    srm = Model(model_names("xray", precision)[0], models_dir or DEFAULT_MODELS_DIR, 1)
    so = session_options(1)
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(frames), 64):
        sr = sr_images(frames[i:i + 64], precision, model=srm)
        out.append(sess.run(None, {"image": sr[:, None]})[0].reshape(-1))
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def threshold_and_counts(scores: np.ndarray, classes: list[str],
                         allowed_in: int = ALLOWED_IN) -> tuple[float, dict]:
    """The threshold beyond which at most 1 in ``allowed_in`` of the bona fide scores lie, and
    every class's count beyond it."""
    t = live_threshold(np.asarray(scores)[np.asarray(classes) == LIVE], allowed_in)
    return t, counts_beyond(scores, classes, t)


def live_threshold(live: np.ndarray, allowed_in: int = ALLOWED_IN) -> float:
    """The value beyond which at most 1 in ``allowed_in`` of the ``live`` scores lie (the
    ``live.size // allowed_in + 1``-th largest)."""
    from device.eval.xray_material import deny_threshold
    live = np.asarray(live, np.float64)
    if not live.size:
        raise ValueError("the validation sets have no bona fide presentations")
    return deny_threshold(live, "high", live.size // allowed_in)


def counts_beyond(scores: np.ndarray, classes: list[str], t: float) -> dict:
    """Every class's count (n, beyond ``t``)."""
    cls, scores = np.asarray(classes), np.asarray(scores)
    return {c: {"n": int(np.sum(cls == c)), "beyond": int(np.sum(scores[cls == c] > t))}
            for c in dict.fromkeys(classes)}


def run(profile: str, work: Path, models_dir: Path, command: str, validation,
        seed: int = 0, threads: int = 1, log=print, hard: int = 0, live_frames=(),
        allowed_in: int = ALLOWED_IN) -> dict:
    import cv2
    import torch

    from tools.manifest import update_entry
    from tools.train.phantom_net import export, super_resolve, train
    from tools.train.sensor_quant import first_conv, quantize_int8
    torch.set_num_threads(max(1, threads))
    cfg = PROFILES[profile]
    work, models_dir = Path(work), Path(models_dir)
    work.mkdir(parents=True, exist_ok=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    sets = [validation] if isinstance(validation, (str, Path)) else list(validation)
    val = {str(v): _validation(Path(v), cfg["per_class"]) for v in sets}
    val.update({str(v): _live_frames(Path(v), cfg["per_class"]) for v in live_frames})
    t0 = time.time()
    n_hard = hard_count(hard, cfg["n"])
    frames, y = _frames(cfg["n"], TRAIN_SEED, log, n_hard)
    sr = super_resolve(frames, "int8", threads)
    net = train(sr, y, cfg["epochs"], 224, 3e-3, seed, log=log)
    fp32, int8 = models_dir / "phantom_xray.onnx", models_dir / "phantom_xray_int8.onnx"
    export(net, str(fp32), sr.shape[-1])
    pick = np.random.default_rng(seed).choice(len(sr), min(CALIBRATION, len(sr)), replace=False)
    quantize_int8(fp32, int8, [np.asarray(sr[i], np.float32)[None, None] for i in pick],
                  "image", exclude_ops=("Sigmoid",), exclude_name_parts=first_conv(fp32))
    log(f"phantom: trained and exported in {time.time() - t0:.0f} s")
    data = (f"training: {cfg['n']} skeleton phantoms + {cfg['n']} live hands of X-ray seed "
            f"{TRAIN_SEED} (tools/train/phantom_data.py)"
            + (f" + {n_hard} live hands with >= 3 risk traits of seed {HARD_SEED} and a "
               f"phantom cast on each (hard negatives)" if n_hard else "")
            + f", their int8 SR images; threshold: at most 1 in {allowed_in:,} bona fide / "
            f"live frames beyond it over {', '.join(val)} (SR of the file's precision in front)")
    frames = {k: [f if isinstance(f, np.ndarray) else cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
                  for _, f in v] for k, v in val.items()}        # read once, scored twice
    classes = {k: [c for c, _ in v] for k, v in val.items()}
    rep = {}
    for path, prec in ((fp32, "fp32"), (int8, "int8")):
        scores = {k: _scores(path, prec, frames[k]) for k in val}
        t = live_threshold(np.concatenate([scores[k][np.array(classes[k]) == LIVE]
                                           for k in val]), allowed_in)
        per_set = {k: counts_beyond(scores[k], classes[k], t) for k in val}
        counts = per_set[str(sets[0])] if len(per_set) == 1 else per_set
        rep[path.name] = {"threshold": t, "validation": counts}
        extra = {"threshold": t, "sensor": "xray", "input": f"output of sr_xray"
                 f"{'_int8' if prec == 'int8' else ''}.onnx", "epochs": cfg["epochs"],
                 "train_seed": TRAIN_SEED}
        if n_hard:
            extra["hard_seed"], extra["hard_negatives"] = HARD_SEED, n_hard
        if prec == "int8":
            extra["quantized_from"] = fp32.name
        update_entry(path.name, metrics={"validation": counts, "threshold": t},
                     command=command, data=data, extra=extra, manifest_path=models_dir /
                     "manifest.json",
                     notes="image (N, 1, 256, 256) SR output in [0, 1] -> p_phantom (N, 1); "
                           "a radiographic hand phantom when p_phantom > threshold "
                           "(device/models/phantom.py): not_live")
        log(f"phantom: {path.name} threshold {t:.4f}, validation {counts}")
    return rep
