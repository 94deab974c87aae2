"""Fine-tune the shipped liveness model on reviewed presentations (claim 9):
``python -m tools.train liveness --retrain-from DIR`` (``palmgate review`` writes DIR).  The SR
model is used frozen and copied unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from device.models.sensor_branch import is_live
from tools.train import sensor_quant as Q
from tools.train.liveness_model import (export_liveness_onnx, load_from_onnx, onnx_mirror,
                                        train_liveness)
from tools.train.sensor_config import CONFIG, log
from tools.train.sensor_data import (data_root, liveness_set, liveness_set_dir,
                                     load_liveness_dir, load_sets, real_captures)
from tools.train.sensor_rounds import finetune_set_specs
from tools.train.sensor_scoring import branch_scores, choose, rates, run_sr
from tools.train.sensor_train import class_weights, quantize_liveness


def _reviewed_sensor(reviewed: Path, sensor: str | None) -> str:
    """The sensor given, else the one the reviewed folder's review.json names."""
    meta = reviewed / "review.json"
    if sensor is None:
        if not meta.exists():
            raise ValueError("--sensor is needed (no review.json in the reviewed folder)")
        sensor = json.loads(meta.read_text())["sensor"]
    return sensor


def _replay_pool(sensor: str, cfg: dict, root: Path, caps: dict, cls: dict, real_caps: dict):
    """All the data the shipped model was trained on: the training sets, the fine-tune
    rounds' fresh sets (those that are there) and the real training captures; returns
    (captures, class names, class-balanced sampling weights).  (Replaying the first training
    sets only pulled the fine-tuned model back: held-out BPCER 1.0 -> 2.5 % after 300
    steps.)"""
    ft_sets = [sp for sp in finetune_set_specs(cfg, sensor)
               if liveness_set_dir(root, sensor, "train", sp).exists()]
    log(f"[{sensor}] replay from the training sets and fine-tune sets {ft_sets}")
    ft_loaded = [load_liveness_dir(liveness_set(root, sensor, "train", sp)) for sp in ft_sets]
    tr_caps = np.concatenate([caps["train"]] + [f[0] for f in ft_loaded] + [real_caps["train"]])
    tr_cls = np.concatenate([cls["train"]] + [f[2] for f in ft_loaded]
                            + [np.full(len(real_caps["train"]), "bona_fide")])
    rm = np.zeros(len(tr_caps), bool)
    rm[len(tr_caps) - len(real_caps["train"]):] = True
    return tr_caps, tr_cls, class_weights(tr_cls, rm)


def _evaluate(sr_sess, lv_sess, thr, rev, caps, cls, real_caps) -> dict:
    """How many reviewed presentations ``lv_sess`` gets right at ``thr``, and its validation
    and held-out rates."""
    rev_caps, rev_y, _ = rev
    out = {"reviewed": {"n": int(len(rev_caps)), "correct": int(np.sum(
        is_live(branch_scores(sr_sess, lv_sess, rev_caps), thr) == (rev_y == 1)))}}
    for s in ("val", "test"):
        p = branch_scores(sr_sess, lv_sess, caps[s])
        pr = branch_scores(sr_sess, lv_sess, real_caps[s]) if len(real_caps[s]) else None
        out["validation" if s == "val" else "heldout"] = rates(p, cls[s], thr, pr)
    return out


def _fine_tune(sr_sess, lv_src: Path, rev, rep_caps, rep_cls, share: float, steps: int,
               seed: int):
    """The shipped model trained on from its file on the reviewed presentations (sampling
    weight ``share``) and the replayed images; returns (model, history)."""
    rev_caps, _, rev_cls = rev
    model = load_from_onnx(lv_src)
    all_caps = np.concatenate([rev_caps, rep_caps])
    all_cls = np.concatenate([rev_cls, rep_cls])
    all_y = (all_cls == "bona_fide").astype(np.int64)
    w = np.concatenate([np.full(len(rev_caps), share / max(len(rev_caps), 1)),
                        np.full(len(rep_caps), (1 - share) / len(rep_caps))])
    # unrounded SR outputs, as the runtime feeds them (see sensor_rounds.finetune_block)
    imgs = run_sr(sr_sess, all_caps, as_u8=False, dtype=np.float16)
    return train_liveness(imgs, all_y, steps=steps, seed=seed, weights=w, model=model,
                          lr_rate=1e-4, log=log, log_every=max(steps // 5, 1))


def _copy_sr(src: Path, dst: Path, sensor: str, src_manifest: dict, manifest: Path) -> None:
    """The SR files and their manifest entries, unchanged, into another models folder."""
    import shutil

    from tools.manifest import update_entry

    shutil.copy(src / f"sr_{sensor}.onnx", dst / f"sr_{sensor}.onnx")
    shutil.copy(src / f"sr_{sensor}_int8.onnx", dst)
    for n in (f"sr_{sensor}.onnx", f"sr_{sensor}_int8.onnx"):
        e = src_manifest[n]
        update_entry(n, metrics=e["metrics"], command=e["command"], data=e["data"],
                     notes=e.get("notes", ""), manifest_path=manifest,
                     extra={k: v for k, v in e.items() if k in ("scale", "stages",
                                                                "quantized_from")})


def _entries(sensor, lv_path, lv8, lv_src, src_sha, reviewed, n_rev, n_rep, n_calib, thr,
             thr8, before, after, steps, command, manifest) -> None:
    """Manifest entries of the fine-tuned liveness file and its int8 file."""
    from tools.manifest import update_entry

    data = (f"fine-tuned from {lv_src} (sha256 {src_sha}) "
            f"on {n_rev} reviewed presentations of {reviewed} (SR outputs of the "
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
                 data=f"static int8 QDQ of {lv_path.name} ({n_calib} calibration frames)",
                 manifest_path=manifest, notes="int8 of the claim-9 fine-tuned model",
                 extra={"threshold": thr8, "input": f"output of sr_{sensor}_int8.onnx",
                        "sr_model": f"sr_{sensor}_int8.onnx",
                        "quantized_from": lv_path.name})


def retrain(reviewed: Path, sensor: str | None, steps: int, seed: int, work: Path,
            models_src: Path, models_dst: Path, command: str, profile: str,
            threads: int = 0) -> dict:
    """Fine-tune ``liveness_<sensor>.onnx`` of ``models_src`` on the reviewed presentations in
    ``reviewed`` (liveness layout, as written by ``palmgate review``) mixed with replayed
    training data; the SR model is used frozen and copied unchanged.  The threshold is chosen
    again on the validation set; before/after rates on the reviewed samples, the validation
    set and the held-out test set are returned and written to WORK/retrain_<sensor>.json."""
    reviewed, src = Path(reviewed), Path(models_src)
    sensor = _reviewed_sensor(reviewed, sensor)
    cfg = CONFIG[profile]
    root = data_root(work)
    src_manifest = json.loads((src / "manifest.json").read_text())["models"]
    old_thr = float(src_manifest[f"liveness_{sensor}.onnx"]["threshold"])
    sr_path, lv_src = src / f"sr_{sensor}.onnx", src / f"liveness_{sensor}.onnx"
    sr_sess, lv_old = Q.session(sr_path, threads), Q.session(lv_src, threads)
    rev = load_liveness_dir(reviewed)          # (captures, labels, class names)
    _, real_caps = real_captures(cfg, sensor)
    caps, _, cls = load_sets(root, sensor, cfg["liveness"][sensor])
    # replay: a class-balanced draw of all the data the shipped model was trained on
    tr_caps, tr_cls, tr_w = _replay_pool(sensor, cfg, root, caps, cls, real_caps)
    rng = np.random.default_rng(seed)
    n_rep = min(cfg["retrain_replay"], len(tr_caps))
    rep = rng.choice(len(tr_caps), n_rep, replace=False, p=tr_w)

    before = _evaluate(sr_sess, lv_old, old_thr, rev, caps, cls, real_caps)
    log(f"[{sensor}] before: reviewed {before['reviewed']}")
    share = cfg.get("retrain_reviewed_share", 0.25)     # sampling weight of the reviewed frames
    model, hist = _fine_tune(sr_sess, lv_src, rev, tr_caps[rep], tr_cls[rep], share, steps,
                             seed)
    models_dst = Path(models_dst)
    models_dst.mkdir(parents=True, exist_ok=True)
    manifest = models_dst / "manifest.json"
    if models_dst.resolve() != src.resolve():
        _copy_sr(src, models_dst, sensor, src_manifest, manifest)
    lv_path = models_dst / f"liveness_{sensor}.onnx"
    export_liveness_onnx(model, lv_path, mirror=onnx_mirror(lv_src))
    lv_new = Q.session(lv_path, threads)
    p_val = branch_scores(sr_sess, lv_new, caps["val"])
    pr_val = branch_scores(sr_sess, lv_new, real_caps["val"]) if len(real_caps["val"]) else None
    thr = choose(p_val, cls["val"], pr_val)
    after = _evaluate(sr_sess, lv_new, thr, rev, caps, cls, real_caps)
    log(f"[{sensor}] after: reviewed {after['reviewed']}")
    # int8 of the fine-tuned model, calibrated like the shipped one
    pick = rng.choice(len(tr_caps), cfg["calibration_frames"], replace=False, p=tr_w)
    calib = [tr_caps[i][None, None].astype(np.float32) / 255.0 for i in pick]
    lv8 = models_dst / f"liveness_{sensor}_int8.onnx"
    quantize_liveness(lv_path, lv8, sr_sess, calib)
    sr8 = Q.session(src / f"sr_{sensor}_int8.onnx", threads)
    lv8_sess = Q.session(lv8, threads)
    thr8 = choose(branch_scores(sr8, lv8_sess, caps["val"]), cls["val"],
                  branch_scores(sr8, lv8_sess, real_caps["val"]) if len(real_caps["val"]) else None)
    report = {"sensor": sensor, "reviewed_dir": str(reviewed), "reviewed_classes":
              {c: int(np.sum(rev[2] == c)) for c in dict.fromkeys(rev[2])},
              "replayed_training_images": int(n_rep), "steps": steps,
              "threshold_before": old_thr, "threshold_after": thr, "threshold_int8_after": thr8,
              "before": before, "after": after, "train_log": hist,
              "sr_unchanged": Q_sha(sr_path) == src_manifest[f"sr_{sensor}.onnx"]["sha256"]}
    _entries(sensor, lv_path, lv8, lv_src, src_manifest[f"liveness_{sensor}.onnx"]["sha256"][:12],
             reviewed, len(rev[0]), n_rep, len(calib), thr, thr8, before, after, steps, command,
             manifest)
    Path(work).mkdir(parents=True, exist_ok=True)
    (Path(work) / f"retrain_{sensor}.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def Q_sha(path) -> str:
    """sha256 of a file (as the manifest records it)."""
    from tools.manifest import sha256_file
    return sha256_file(path)
