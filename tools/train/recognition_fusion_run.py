"""``python -m tools.train fusion --profile quick|full``: train the seed-000 multi-view fusion on
degraded captures over the shipped learned cells, measure it, export fp32 + int8, install.

Stages (each reuses the previous one's files under the work folder):
  data     synthetic identities (``python -m tools.synth palms``, seed 004's generator) and the
           cells of every Tongji and synthetic ROI, clean and degraded (recognition_fusion_data)
  train    pre-train on the synthetic identities, fine-tune on the real training palms (the
           shipped recipe); the same fine-tuning from scratch (real only); the content-only
           embodiment with the same recipe (ablation)
  eval     the table on the validation palms (recognition_fusion_eval); choose what ships
  export   fp32 + static int8 ONNX, parity, int8 accuracy on the same captures, install into
           the models folder with manifest entries
  test     once, at the end: the same table on the test palms (``--test``; never used above)

Palms: the Tongji split of tools/train/realdata.py, ``split_subjects(300, 0.2, 0)``: the 240
training palms train the fusion (and trained the cell network); its 60 validation palms are
split again by ``split_subjects(60, 1/3, 1)`` into 40 fusion-validation palms (every choice
here) and 20 fusion-test palms (measured once, at the end; the cell network's own choices did
see them, so they are held out from the fusion only).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from tools.train.recognition_data import log as default_log

PROFILES = {  # hybrid_*: the fine-tuning on the gate's hybrid feature (stage hybrid); the
    # learned importance stays frozen there, so one view scores exactly as before
    "quick": {"synth_subjects": 150, "reps": 1, "pre_steps": 80, "ft_steps": 150,
              "palms": 32, "ablations": False, "hybrid_steps": 250,
              "hybrid_importance": False},
    "full": {"synth_subjects": 600, "reps": 2, "pre_steps": 150, "ft_steps": 250,
             "palms": 32, "ablations": True, "hybrid_steps": 750, "hybrid_importance": False},
}
VARIANTS = {  # name: (mode, pre-trained on synthetic identities)
    "three": ("three", True), "three_real_only": ("three", False),
    "content": ("content", True)}
# the hybrid variant: "three" fine-tuned further with the loss on the gate's hybrid feature
# (the classical cells fused with the fusion's view weights beside the fused learned cells)
HYBRID = "three_hybrid"


def palm_split():
    """(training, fusion-validation, fusion-test) Tongji palm ids."""
    from tools.train.realdata import split_subjects
    tr, va = split_subjects(300, 0.2, 0)
    fv, ft = split_subjects(len(va), 1 / 3, 1)
    return tr, va[fv], va[ft]


def stage_data(prof: dict, work: Path, log=default_log):
    import subprocess
    import sys

    from tools.train.realdata import load_layout
    from tools.train.recognition_fusion_data import precompute
    precompute(work, None, "tongji", reps=prof["reps"], log=log)
    synth = work / "synth"
    if not (synth / "identities.json").exists():
        subprocess.run([sys.executable, "-m", "tools.synth", "palms", "--out", str(synth),
                        "--subjects", str(prof["synth_subjects"]), "--sessions", "2",
                        "--samples", "3", "--seed", "7", "--threads", "1"], check=True)
    if not (work / "synth_cells.npy").exists():
        ps = load_layout(synth, max_subjects=prof["synth_subjects"])
        precompute(work, ps, "synth", reps=1, seed=5, log=log)
    precompute(work, None, "tongji", reps=prof["reps"], log=log, feature="classical")


def cellset(work: Path, name: str):
    from tools.train.recognition_fusion_data import load_cells
    from tools.train.recognition_fusion_train import CellSet
    return CellSet(*load_cells(work, name))


def stage_train(prof: dict, work: Path, variants=None, seed: int = 0, log=default_log):
    """Train the variants (default: "three", plus the ablations of the full profile);
    checkpoints work/fusion_<variant>.pt and work/fusion_pre_<mode>.pt."""
    import torch

    from tools.train.recognition_fusion_train import train_fusion
    variants = variants or (list(VARIANTS) if prof["ablations"] else ["three"])
    real = cellset(work, "tongji")
    tr, _, _ = palm_split()
    for name in variants:
        mode, pre = VARIANTS[name]
        init = None
        if pre:
            pp = work / f"fusion_pre_{mode}.pt"
            if not pp.exists():
                syn = cellset(work, "synth")
                t = time.time()
                net = train_fusion(syn, np.unique(syn.labels), mode=mode,
                                   steps=prof["pre_steps"], batch_palms=prof["palms"],
                                   seed=seed, log=log)
                torch.save(net.state_dict(), pp)
                log(f"pre-trained {mode} on synthetic identities ({time.time() - t:.0f}s)")
            init = torch.load(pp)
        t = time.time()
        net = train_fusion(real, tr, mode=mode, steps=prof["ft_steps"],
                           batch_palms=prof["palms"], seed=seed + 1, init=init, log=log)
        torch.save(net.state_dict(), work / f"fusion_{name}.pt")
        log(f"trained {name} on {len(tr)} real palms ({time.time() - t:.0f}s)")


def stage_hybrid(prof: dict, work: Path, seed: int = 0, log=default_log) -> None:
    """Fine-tune the trained three-similarity fusion (work/fusion_three.pt) with the loss on
    the gate's hybrid feature (``train_fusion(classical=...)``): work/fusion_three_hybrid.pt."""
    import torch

    from tools.train.recognition_fusion_data import load_cells
    from tools.train.recognition_fusion_train import CellSet, train_fusion
    real = cellset(work, "tongji")
    classical = CellSet(*load_cells(work, "tongji", "classical"))
    tr, _, _ = palm_split()
    t = time.time()
    net = train_fusion(real, tr, mode="three", steps=prof["hybrid_steps"],
                       batch_palms=prof["palms"], seed=seed + 2, lr=1e-3,
                       init=torch.load(work / "fusion_three.pt"), classical=classical,
                       train_importance=prof["hybrid_importance"], log=log)
    torch.save(net.state_dict(), work / f"fusion_{HYBRID}.pt")
    log(f"trained {HYBRID} on {len(tr)} real palms ({time.time() - t:.0f}s)")


def load_variant(work: Path, name: str):
    import torch

    from tools.train.recognition_fusion import Fusion
    net = Fusion(mode=VARIANTS[name][0] if name in VARIANTS else "three")
    net.load_state_dict(torch.load(work / f"fusion_{name}.pt"))
    return net.eval()


def score(row: dict) -> tuple:
    return (row["eer"] + row["frr_1e-4"], row["eer"])


def stage_eval(work: Path, log=default_log) -> dict:
    """The validation table; the shipped variant: the three-similarity fusion (pre-trained or
    real-only, whichever is better on 3 views with 2 degraded), shipped only when it beats the
    mean of the views there and is no worse on clean captures; else the initialisation."""
    real = cellset(work, "tongji")
    _, val, _ = palm_split()
    nets = {n: load_variant(work, n) for n in VARIANTS if (work / f"fusion_{n}.pt").exists()}
    res = {"table": __import__("tools.train.recognition_fusion_eval",
                               fromlist=["table"]).table(nets, real, val, log=log)}
    t = res["table"]
    cands = [n for n in ("three", "three_real_only") if n in nets]
    best = min(cands, key=lambda n: score(t["3views_2degraded"][n]))
    wins = (score(t["3views_2degraded"][best]) < score(t["3views_2degraded"]["mean_of_views"])
            and t["3views_clean"][best]["eer"] <= t["3views_clean"]["mean_of_views"]["eer"])
    res["shipped"] = best if wins else "initialisation (= mean of the views)"
    res["palms"] = {"validation": [int(x) for x in val]}
    (work / "fusion_eval.json").write_text(json.dumps(res, indent=1))
    log(f"fusion: shipped {res['shipped']}")
    return res


def shipped_net(work: Path):
    """The net to export: the eval stage's choice, or its hybrid fine-tuning (stage hybrid)
    where that exists (chosen on the gate's feature: docs/results.md, "Several views")."""
    from tools.train.recognition_fusion import Fusion
    ev = json.loads((work / "fusion_eval.json").read_text())
    name = ev["shipped"]
    if name == "three" and (work / f"fusion_{HYBRID}.pt").exists():
        name = HYBRID
    return (load_variant(work, name) if name in VARIANTS or name == HYBRID
            else Fusion().eval()), name


def stage_export(work: Path, log=default_log) -> dict:
    """Staged work/models/recognition_fusion{,_int8}.onnx and their measurements."""
    from tools.train.recognition_fusion_eval import table
    from tools.train.recognition_fusion_export import (OnnxFusion, calibration_frames,
                                                       export_fp32, export_int8, parity)
    from tools.train.sensor_quant import latency_ms
    net, name = shipped_net(work)
    stage = work / "models"
    stage.mkdir(parents=True, exist_ok=True)
    fp32, int8 = stage / "recognition_fusion.onnx", stage / "recognition_fusion_int8.onnx"
    export_fp32(net, fp32)
    real = cellset(work, "tongji")
    tr, val, _ = palm_split()
    ops = export_int8(fp32, int8, calibration_frames(real, tr))
    rep = {"shipped": name, "int8_ops": ops,
           "parity_max_abs": {"fp32": parity(net, fp32), "int8": parity(net, int8)}}
    conds = {k: v for k, v in __import__("tools.train.recognition_fusion_eval", fromlist=[
        "CONDITIONS"]).CONDITIONS.items() if k in ("3views_2degraded", "3views_clean",
                                                   "1view_clean")}
    rep["onnx_validation"] = table({"onnx_fp32": OnnxFusion(fp32), "onnx_int8": OnnxFusion(int8)},
                                   real, val, conds, baselines=False, log=log)
    c3 = real.batch(np.array([[0, 1, 2]]), np.zeros((1, 3), int))[0].numpy()
    rep["latency_ms_3_views"] = {p: latency_ms(f, {"cells": c3}, threads=1)
                                 for p, f in (("fp32", fp32), ("int8", int8))}
    rep["bytes"] = {p: f.stat().st_size for p, f in (("fp32", fp32), ("int8", int8))}
    (work / "fusion_export.json").write_text(json.dumps(rep, indent=1))
    log(f"export: {json.dumps({k: rep[k] for k in ('parity_max_abs', 'latency_ms_3_views')})}")
    return rep


def stage_test(work: Path, log=default_log) -> dict:
    """Once, at the end: the same table on the 20 fusion-test palms (shipped net, ONNX int8,
    baselines)."""
    from tools.train.recognition_fusion_eval import table
    from tools.train.recognition_fusion_export import OnnxFusion
    net, name = shipped_net(work)
    real = cellset(work, "tongji")
    _, _, test = palm_split()
    nets = {name: net,
            "onnx_int8": OnnxFusion(work / "models" / "recognition_fusion_int8.onnx")}
    res = {"table": table(nets, real, test, log=log), "palms": [int(x) for x in test]}
    (work / "fusion_test.json").write_text(json.dumps(res, indent=1))
    return res


DATA = ("../shared/data/real/tongji ROIs, cells of the shipped recognition_cells.onnx; clean and "
        "degraded (device/eval/degrade.py: blur, occlusion, glare, exposure, misalignment, "
        "before the cell network); captures = 3 consecutive samples of one palm and session. "
        "Trained on the 240 training palms of split_subjects(300, 0.2, 0) (pre-trained on "
        "synthetic identities of `python -m tools.synth palms`); every choice on 40 "
        "fusion-validation palms (split_subjects(60, 1/3, 1) of the 60 validation palms); "
        "test = the other 20, measured once; cross-session, every capture pair, symmetrised")


def install(work: Path, models: Path, command: str, log=default_log) -> None:
    import shutil

    from tools.manifest import update_entry
    ev = json.loads((work / "fusion_eval.json").read_text())
    ex = json.loads((work / "fusion_export.json").read_text())
    test = (json.loads((work / "fusion_test.json").read_text())
            if (work / "fusion_test.json").exists() else None)
    models.mkdir(parents=True, exist_ok=True)
    common = ("seed-000 fusion: cells (V>=1,25,49,16) of the views of one palm -> fused "
              "(25,49,16) unit cells + importance (49,); keys from the palm-centre (3x3) region "
              "embeddings, queries from the rest, values from all; S_K, S_Q, C fused into the "
              "attention weights; each fused cell a softmax-weighted sum of the views' cells "
              "(attention weight, per-cell trust, cell quality, cross-view agreement), output "
              "view_weights (V,25,49) with which the gate fuses the classical cells of the same "
              "windows; one view passes through unchanged. Shipped weights: " + ex["shipped"])
    for prec, fname in (("fp32", "recognition_fusion.onnx"),
                        ("int8", "recognition_fusion_int8.onnx")):
        shutil.copy(work / "models" / fname, models / fname)
        m = {"tongji_fusion_val": {c: r for c, r in ev["table"].items()},
             "onnx_val": {c: r[f"onnx_{prec}"] for c, r in ex["onnx_validation"].items()},
             "latency_ms_3_views": ex["latency_ms_3_views"][prec],
             "parity_max_abs_vs_torch": ex["parity_max_abs"][prec]}
        if test:
            m["tongji_fusion_test"] = test["table"]
        notes = common
        if prec == "int8":
            m["int8_ops"] = ex["int8_ops"]
            notes += ("; static int8 QDQ (onnxruntime, per-channel int8 weights, uint8 "
                      "activations, MinMax on 48 training captures): the MatMuls of the "
                      "trust path run in int8 (int8_ops), those reading the cells, the weighted "
                      "sum of the cells and the normalisation in float; one view passes through")
        update_entry(fname, metrics=m, command=command, data=DATA, notes=notes,
                     manifest_path=models / "manifest.json")
        log(f"installed {models / fname}")


def run(profile: str, work: Path, models: Path | None, command: str, seed: int = 0,
        stages=("data", "train", "hybrid", "eval", "export"), test: bool = False,
        log=default_log) -> dict:
    prof = PROFILES[profile]
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    out = {}
    if "data" in stages:
        stage_data(prof, work, log)
    if "train" in stages:
        stage_train(prof, work, seed=seed, log=log)
    if "hybrid" in stages:
        stage_hybrid(prof, work, seed=seed, log=log)
    if "eval" in stages:
        out["eval"] = stage_eval(work, log)
    if "export" in stages:
        out["export"] = stage_export(work, log)
    if test:
        out["test"] = stage_test(work, log)
    if models is not None and "export" in stages:
        install(work, Path(models), command, log)
    return out
