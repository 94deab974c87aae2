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
4. each file's threshold on the validation set ``SET`` (a ``tools.synth liveness
   --presentations --attack-species`` set, X-ray seed 9317 for the shipped files): the SR of
   its precision in front, the value beyond which at most 1 in 1,000 of its bona fide frames
   lie; the validation counts of every class at it go into the manifest entry.

quick: 300 + 300 frames, 2 epochs, the first 200 presentations of each validation class (a few
minutes on one laptop core); full: 4,000 + 4,000, 16 epochs, the whole set (~15 min on one
core, as shipped).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

PROFILES = {"quick": {"n": 300, "epochs": 2, "per_class": 200},
            "full": {"n": 4000, "epochs": 16, "per_class": None}}
TRAIN_SEED = 46013
CALIBRATION = 64
ALLOWED_PER_1000 = 1


def _frames(n: int, seed: int, log) -> tuple[np.ndarray, np.ndarray]:
    from tools.train.phantom_data import LABEL, plan, render_frame, to_u8
    items = plan(n)
    frames = np.stack([to_u8(render_frame(c, seed, i)) for c, i in items])
    log(f"phantom: rendered {len(items)} training frames of seed {seed}")
    return frames, np.array([LABEL[c] for c, _ in items], np.float32)


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
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(frames), 64):
        sr = sr_images(frames[i:i + 64], precision, model=srm)
        out.append(sess.run(None, {"image": sr[:, None]})[0].reshape(-1))
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def threshold_and_counts(scores: np.ndarray, classes: list[str]) -> tuple[float, dict]:
    """The threshold beyond which at most 1 in 1,000 of the bona fide scores lie, and every
    class's count beyond it."""
    from device.eval.xray_material import deny_threshold
    cls = np.asarray(classes)
    bona = scores[cls == "bona_fide"]
    if not bona.size:
        raise ValueError("the validation set has no bona fide presentations")
    t = deny_threshold(bona, "high", (bona.size * ALLOWED_PER_1000) // 1000)
    return t, {c: {"n": int(np.sum(cls == c)), "beyond": int(np.sum(scores[cls == c] > t))}
               for c in dict.fromkeys(classes)}


def run(profile: str, work: Path, models_dir: Path, command: str, validation: str,
        seed: int = 0, threads: int = 1, log=print) -> dict:
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
    val = _validation(Path(validation), cfg["per_class"])
    t0 = time.time()
    frames, y = _frames(cfg["n"], TRAIN_SEED, log)
    sr = super_resolve(frames, "int8", threads)
    net = train(sr, y, cfg["epochs"], 224, 3e-3, seed, log=log)
    fp32, int8 = models_dir / "phantom_xray.onnx", models_dir / "phantom_xray_int8.onnx"
    export(net, str(fp32), sr.shape[-1])
    pick = np.random.default_rng(seed).choice(len(sr), min(CALIBRATION, len(sr)), replace=False)
    quantize_int8(fp32, int8, [np.asarray(sr[i], np.float32)[None, None] for i in pick],
                  "image", exclude_ops=("Sigmoid",), exclude_name_parts=first_conv(fp32))
    log(f"phantom: trained and exported in {time.time() - t0:.0f} s")
    vframes = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for _, p in val]
    classes = [c for c, _ in val]
    data = (f"training: {cfg['n']} skeleton phantoms + {cfg['n']} live hands of X-ray seed "
            f"{TRAIN_SEED} (tools/train/phantom_data.py), their int8 SR images; threshold: "
            f"at most {ALLOWED_PER_1000} in 1,000 bona fide beyond it on the validation set "
            f"{validation} (SR of the file's precision in front)")
    rep = {}
    for path, prec in ((fp32, "fp32"), (int8, "int8")):
        t, counts = threshold_and_counts(_scores(path, prec, vframes), classes)
        rep[path.name] = {"threshold": t, "validation": counts}
        extra = {"threshold": t, "sensor": "xray", "input": f"output of sr_xray"
                 f"{'_int8' if prec == 'int8' else ''}.onnx", "epochs": cfg["epochs"],
                 "train_seed": TRAIN_SEED}
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
