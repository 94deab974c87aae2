"""Export the learned cells to ONNX (opset 17), quantise the cell net to static int8 QDQ
(per-channel weights, calibrated on training crops), measure it through the runtime extractor
on the validation palms (with the installed seed-000 fusion), write models/ + manifest entries.
``export_fusion``: the fusion's ONNX form (``python -m tools.train fusion`` exports with it)."""
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
                      output_names=["fused", "importance", "view_weights"],
                      dynamic_axes={"cells": {0: "views"}, "view_weights": {0: "views"}},
                      opset_version=OPSET, dynamo=False)
    # the importance does not depend on the input: the exporter names that output after a
    # constant; give it its name back through an Identity node
    import onnx
    g = onnx.load(str(path))
    out = g.graph.output[1]
    if out.name != "importance":
        g.graph.node.append(onnx.helper.make_node("Identity", [out.name], ["importance"]))
        out.name = "importance"
        onnx.save(g, str(path))


def score_level(cells: np.ndarray, sets: np.ndarray, lab, ses) -> dict:
    """Reference: per-view cells, capture score = mean of the V x V image scores (what
    ``palmgate evaluate --views V --pair-rule mean`` does)."""
    from device.eval.metrics import eer, tar_at_far
    from device.recognition.cells import shift_max_scores
    zero = cells.shape[1] // 2
    s = shift_max_scores(cells, cells[:, zero]).T
    s = (s + s.T) / 2
    i = np.flatnonzero(ses == 1)
    j = np.flatnonzero(ses == 2)
    v = sets.shape[1]
    sc = np.zeros((len(i), len(j)))
    for a in range(v):
        for b in range(v):
            sc += s[np.ix_(sets[i, a], sets[j, b])]
    sc /= v * v
    gen = lab[i][:, None] == lab[j][None, :]
    return {"eer": float(eer(sc[gen], sc[~gen])),
            "tar_1e-4": float(tar_at_far(sc[gen], sc[~gen], 1e-4))}


def runtime_metrics(models_dir, precision, images, labels, sessions, fusion=True,
                    hybrid=False) -> dict:
    """Validation EER / TAR through the runtime extractor (onnxruntime): 1 view, and 3 views
    fused by the seed-000 model (fusion) or scored as the mean of 3x3 image scores.
    ``hybrid``: the gate's hybrid feature (these learned cells beside the classical ones)."""
    from device.recognition.hybrid import HybridExtractor
    from device.recognition.learned import LearnedExtractor
    from tools.train.recognition_cells import cross_session_eer
    from tools.train.recognition_fusion_data import captures
    ex = (HybridExtractor if hybrid else LearnedExtractor)(models_dir, precision, fusion=fusion,
                                                             verify=False)
    cells = ex.cells(images)
    out = {}
    for v in (1, 3):
        sets, lab, ses = captures(labels, sessions, v)
        if fusion:
            fused = np.stack([ex.fuse(cells[s]) for s in sets])
            out[f"{v}view"] = cross_session_eer(fused, lab, ses, ex.importance)
        else:
            out[f"{v}view"] = score_level(cells, sets, lab, ses)
    return out


def stage_export(work, profile: str = "quick", log=print, models_dir=None) -> dict:
    from device.models.model import sha256_file
    from tools.paths import MODELS_DIR
    from tools.train.realdata import split_subjects, tongji
    from tools.train.recognition_data import load_data
    from tools.train.recognition_cells import CellNet, decode
    from tools.train.sensor_quant import int8_report, latency_ms, quantize_int8

    work = Path(work)
    models_dir = Path(models_dir or MODELS_DIR)
    stage = work / "models"
    stage.mkdir(parents=True, exist_ok=True)
    net = CellNet()
    net.load_state_dict(torch.load(work / "cells.pt"))
    export_cells(net, stage / "recognition_cells.onnx")
    x, lab, ses, tr, va = load_data(work)
    rng = np.random.default_rng(0)
    calib = x[tr][rng.choice(tr.sum(), 128, replace=False)]
    frames = [decode(calib[k:k + 8]).numpy() for k in range(0, len(calib), 8)]
    quantize_int8(stage / "recognition_cells.onnx", stage / "recognition_cells_int8.onnx",
                  frames, "x", exclude_ops=())
    log("export: fp32 + int8 written")
    # the runtime reads the Gabor bank from models/cells_pca.npz; the cells are measured with
    # the installed fusion (retrain it on new cells with `python -m tools.train fusion`)
    for f in ("cells_pca.npz", "recognition_fusion.onnx", "recognition_fusion_int8.onnx"):
        shutil.copy(models_dir / f, stage / f)
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
    rep = int8_report(stage / "recognition_cells_int8.onnx")
    sizes = {f: (stage / f).stat().st_size for f in ("recognition_cells.onnx",
                                                     "recognition_cells_int8.onnx")}
    summary = {"validation": metrics, "latency_ms": lat, "int8_ops": rep, "bytes": sizes}
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
             "activations, MinMax on 128 training crops); int8_ops lists what runs in int8")):
        shutil.copy(work / "models" / name, models_dir / name)
        metrics = {"tongji_val": v[prec], "tongji_val_cells_only_score_mean":
                   v[prec + "_cells_only_score_mean"], "bytes": summary["bytes"][name]}
        if prec + "_hybrid" in v:         # the gate's hybrid feature with these cells
            metrics["tongji_val_hybrid"] = v[prec + "_hybrid"]
        metrics["latency_ms_1_roi"] = summary["latency_ms"][prec]
        if prec == "int8":
            metrics["int8_ops"] = summary["int8_ops"]
        update_entry(name, metrics=metrics, command=cmd, data=data, notes=notes,
                     manifest_path=models_dir / "manifest.json")
        log(f"installed models/{name}")
