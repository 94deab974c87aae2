"""Train, validate and export the palm identity extractor (``python -m tools.train idnet``)."""
from __future__ import annotations

from pathlib import Path

import torch

from tools.manifest import update_entry
from tools.train.idnet import export_idnet_onnx, train_idnet
from tools.train.realdata import split_subjects, tongji

ONNX_NAME = "palm_idnet.onnx"
VAL_FRACTION, SPLIT_SEED = 0.2, 0


def run(steps: int, seed: int, work: Path, models: Path, command: str, profile: str) -> dict:
    data = tongji()
    tr, va = split_subjects(len(data.subjects), VAL_FRACTION, SPLIT_SEED)
    model, report = train_idnet(data.subset(tr), data.subset(va), steps=steps, seed=seed,
                                batch_classes=32, per_class=2)
    torch.save({"state_dict": model.state_dict(), "report": report}, work / "idnet.pt")
    models.mkdir(parents=True, exist_ok=True)
    export_idnet_onnx(model, models / ONNX_NAME)
    if models.resolve() == (Path(__file__).resolve().parents[2] / "models"):
        update_entry(
            ONNX_NAME, metrics={"validation_cross_session": report, "profile": profile,
                                "steps": steps},
            command=command,
            data=(f"../shared/data/real/tongji: {len(tr)} training palms; {len(va)} "
                  f"subject-disjoint validation palms (split seed {SPLIT_SEED}, fraction "
                  f"{VAL_FRACTION}), session 1 vs session 2"),
            notes="Palm identity feature extractor (seed 004 target feature extraction model): "
                  "128x128 grey ROI in [0,1] -> 128-d unit embedding. Tool model, not run on "
                  "the gate.")
    return report
