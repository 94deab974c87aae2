"""Export the learned cells and the seed-000 fusion to ONNX (opset 17), quantise the cell net
to static int8 QDQ (per-channel weights, calibrated on training crops), measure both through
the runtime extractor on the validation palms, write models/ + manifest entries."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

OPSET = 17


def export_cells(net, path) -> None:
    net = net.eval()
    x = torch.zeros(2, 7, 64, 64)
    torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["cells"],
                      dynamic_axes={"x": {0: "n"}, "cells": {0: "n"}}, opset_version=OPSET,
                      dynamo=False)


def export_fusion(fusion, path) -> None:
    from tools.train.recognition_fusion import FusionExport
    m = FusionExport(fusion).eval()
    c = torch.nn.functional.normalize(torch.randn(3, 25, 49, 16), dim=-1)
    torch.onnx.export(m, (c,), str(path), input_names=["cells"],
                      output_names=["fused", "importance"],
                      dynamic_axes={"cells": {0: "views"}}, opset_version=OPSET, dynamo=False)
    # the importance does not depend on the input: the exporter names that output after a
    # constant; give it its name back through an Identity node
    import onnx
    g = onnx.load(str(path))
    out = g.graph.output[1]
    if out.name != "importance":
        g.graph.node.append(onnx.helper.make_node("Identity", [out.name], ["importance"]))
        out.name = "importance"
        onnx.save(g, str(path))


def runtime_metrics(models_dir, precision, images, labels, sessions, fusion=True,
                    hybrid=False) -> dict:
    """Validation EER / TAR through the runtime extractor (onnxruntime): 1 view, and 3 views
    fused by the seed-000 model (fusion) or scored as the mean of 3x3 image scores.
    ``hybrid``: the gate's hybrid feature (these learned cells beside the classical ones)."""
    from device.recognition.hybrid import HybridExtractor
    from device.recognition.learned import LearnedExtractor
    from tools.train.recognition_fusion import capture_metrics, capture_sets, score_level
    ex = (HybridExtractor if hybrid else LearnedExtractor)(models_dir, precision, fusion=fusion,
                                                             verify=False)
    cells = ex.cells(images)
    out = {}
    for v in (1, 3):
        sets, lab, ses = capture_sets(labels, sessions, v)
        if fusion:
            fused = np.stack([ex.fuse(cells[s]) for s in sets])
            out[f"{v}view"] = capture_metrics(fused, lab, ses, ex.importance)
        else:
            out[f"{v}view"] = score_level(cells, sets, lab, ses)
    return out


def stage_export(work, profile: str = "quick", log=print, models_dir=None) -> dict:
    from device.models.model import sha256_file
    from tools.paths import MODELS_DIR
    from tools.train.realdata import split_subjects, tongji
    from tools.train.recognition_data import load_data
    from tools.train.recognition_cells import CellNet, decode
    from tools.train.recognition_fusion import Fusion
    from tools.train.sensor_quant import int8_report, latency_ms, quantize_int8

    work = Path(work)
    models_dir = Path(models_dir or MODELS_DIR)
    stage = work / "models"
    stage.mkdir(parents=True, exist_ok=True)
    net = CellNet()
    net.load_state_dict(torch.load(work / "cells.pt"))
    fusion = Fusion(mode="three")
    fusion.load_state_dict(torch.load(work / "fusion_ship.pt"))
    export_cells(net, stage / "recognition_cells.onnx")
    export_fusion(fusion, stage / "recognition_fusion.onnx")
    x, lab, ses, tr, va = load_data(work)
    rng = np.random.default_rng(0)
    calib = x[tr][rng.choice(tr.sum(), 128, replace=False)]
    frames = [decode(calib[k:k + 8]).numpy() for k in range(0, len(calib), 8)]
    quantize_int8(stage / "recognition_cells.onnx", stage / "recognition_cells_int8.onnx",
                  frames, "x", exclude_ops=())
    log("export: fp32 + int8 written")
    # the runtime reads the Gabor bank from models/cells_pca.npz
    shutil.copy(models_dir / "cells_pca.npz", stage / "cells_pca.npz")
    (stage / "manifest.json").write_text(json.dumps({"format": 1, "models": {}}))
    ps = tongji()
    _, va_ids = split_subjects(len(ps.subjects), 0.2, 0)
    vm = np.isin(ps.labels, va_ids)
    imgs, vl, vs = ps.images[vm], ps.labels[vm], ps.sessions[vm]
    metrics = {}
    for prec in ("fp32", "int8"):
        t = time.time()
        metrics[prec] = runtime_metrics(stage, prec, imgs, vl, vs, fusion=True)
        metrics[prec + "_cells_only_score_mean"] = runtime_metrics(stage, prec, imgs, vl, vs,
                                                                   fusion=False)
        metrics[prec + "_hybrid"] = runtime_metrics(stage, prec, imgs, vl, vs, hybrid=True)
        log(f"export: {prec} {metrics[prec]} ({time.time() - t:.0f}s)")
    one = {"x": decode(x[va][:1]).numpy()}
    lat = {p: {f"threads{t}": latency_ms(stage / f, one, threads=t) for t in (1, 2)}
           for p, f in (("fp32", "recognition_cells.onnx"),
                        ("int8", "recognition_cells_int8.onnx"))}
    c3 = np.random.default_rng(0).standard_normal((3, 25, 49, 16)).astype(np.float32)
    c3 /= np.linalg.norm(c3, axis=-1, keepdims=True)
    lat["fusion_3views"] = latency_ms(stage / "recognition_fusion.onnx", {"cells": c3},
                                      threads=1)
    rep = int8_report(stage / "recognition_cells_int8.onnx")
    sizes = {f: (stage / f).stat().st_size for f in ("recognition_cells.onnx",
                                                     "recognition_cells_int8.onnx",
                                                     "recognition_fusion.onnx")}
    fm = json.loads((work / "fusion_metrics.json").read_text()) \
        if (work / "fusion_metrics.json").exists() else {}
    summary = {"validation": metrics, "latency_ms": lat, "int8_ops": rep, "bytes": sizes,
               "fusion_ablation_torch": fm}
    (work / "export_metrics.json").write_text(json.dumps(summary, indent=1))
    log(f"export: {json.dumps({'lat': lat, 'bytes': sizes, 'int8': rep})}")
    return summary


def install(work, summary: dict, profile: str, log=print, models_dir=None,
            command: str | None = None) -> None:
    """Copy the staged files into models/ and write their manifest entries."""
    from tools.manifest import update_entry
    from tools.paths import MODELS_DIR
    work = Path(work)
    models_dir = Path(models_dir or MODELS_DIR)
    cmd = command or f"python -m tools.train recognition --profile {profile}"
    models_dir.mkdir(parents=True, exist_ok=True)
    data = ("../shared/data/real/tongji ROIs: trained on the 240 training palms of "
            "split_subjects(300, 0.2, 0) (tools/train/realdata.py); metrics on the 60 "
            "validation palms (every choice was made on them; no test set), session 1 vs "
            "session 2, all image/capture pairs")
    v = summary["validation"]
    for name, prec, notes in (
            ("recognition_cells.onnx", "fp32",
             "learned dense palm cells: input (N,7,64,64) = standardised ROI + 6 soft Gabor "
             "orientation maps (device.recognition.learned.net_input, bank of cells_pca.npz); "
             "output (N,25,49,16) unit cells of the 25 windows shifted by +-8 px"),
            ("recognition_cells_int8.onnx", "int8",
             "static int8 QDQ of recognition_cells.onnx (per-channel int8 weights, uint8 "
             "activations, MinMax on 128 training crops); int8_ops lists what runs in int8"),
            ("recognition_fusion.onnx", "fp32",
             "seed-000 fusion: cells (V>=1,25,49,16) of the views of one palm -> fused "
             "(25,49,16) unit cells + importance (49,); keys from the palm-centre (3x3) region "
             "embeddings, queries from the rest, values from all; S_K, S_Q, C fused into the "
             "attention weights. Runs in fp32 for both precisions")):
        shutil.copy(work / "models" / name, models_dir / name)
        metrics = {"tongji_val": v[prec], "tongji_val_cells_only_score_mean":
                   v[prec + "_cells_only_score_mean"], "bytes": summary["bytes"][name]}
        if prec + "_hybrid" in v:         # the gate's hybrid feature with these cells
            metrics["tongji_val_hybrid"] = v[prec + "_hybrid"]
        if name.startswith("recognition_cells"):
            metrics["latency_ms_1_roi"] = summary["latency_ms"][prec]
        else:
            metrics["latency_ms_3_views"] = summary["latency_ms"]["fusion_3views"]
            metrics["ablation"] = summary.get("fusion_ablation_torch", {})
        if prec == "int8":
            metrics["int8_ops"] = summary["int8_ops"]
        if name == "recognition_fusion.onnx" and summary.get("fusion_ablation_torch", {}).get(
                "shipped"):
            notes += ". Shipped weights: " + summary["fusion_ablation_torch"]["shipped"]
        update_entry(name, metrics=metrics, command=cmd, data=data, notes=notes,
                     manifest_path=models_dir / "manifest.json")
        log(f"installed models/{name}")
