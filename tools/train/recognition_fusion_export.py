"""The trained seed-000 fusion to ONNX: fp32 and static int8 QDQ (onnxruntime), parity with
torch for any view count, what runs in int8, and its accuracy against fp32 on the same
degraded validation captures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# the weighted sum of the views' cells and the per-cell normalisation stay in float: they
# carry the output cells themselves; int8 computes the trust (attention, FF, read-outs), whose
# error only moves the weights
INT8_OPS = ("MatMul", "Gemm")
# ... except the layers that read the cells themselves: quantising their input would make the
# weighted sum read 8-bit cells too (the quantiser shares one Q/DQ pair per tensor)
FLOAT_NODES = ("emb_f", "emb_s", "quality.0")


def export_fp32(fusion, path: Path) -> None:
    from tools.train.recognition_export import export_fusion
    export_fusion(fusion.eval(), path)


def calibration_frames(data, palms, n: int = 48, seed: int = 3) -> list[np.ndarray]:
    """Fusion inputs (V, 25, 49, 16) of training captures (3 views, 0-2 degraded)."""
    from tools.train.recognition_fusion_data import view_versions
    from tools.train.recognition_fusion_train import sample_captures
    rng = np.random.default_rng(seed)
    order = data.order(palms)
    palms = np.array(sorted({s for s, _ in order}))
    a, _ = sample_captures(order, palms, rng, min(n, len(palms)), 3)
    ver = view_versions(rng, len(a), 3, (0, 1, 2), data.reps)
    c = data.batch(a, ver).numpy()
    return [c[k] for k in range(len(c))]


def export_int8(src: Path, dst: Path, frames) -> dict:
    from tools.train.sensor_quant import int8_report, quantize_int8
    import onnx
    ops = {n.op_type for n in onnx.load(str(src)).graph.node}
    quantize_int8(src, dst, frames, "cells", exclude_ops=tuple(sorted(ops - set(INT8_OPS))),
                  exclude_name_parts=FLOAT_NODES)
    return int8_report(dst)


def parity(fusion, path: Path, views=(1, 2, 3, 5), seed: int = 0) -> float:
    """Max |onnx - torch| of the fused cells over random unit inputs of several view counts."""
    from tools.train.sensor_quant import session
    s = session(path)
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for v in views:
        c = torch.nn.functional.normalize(torch.randn(v, 25, 49, 16, generator=g), dim=-1)
        with torch.no_grad():
            want, w = fusion.eval()(c[None])
        got = s.run(None, {"cells": c.numpy()})
        worst = max(worst, float(np.abs(got[0] - want[0].numpy()).max()),
                    float(np.abs(got[1] - w.numpy()).max()))
    return worst


class OnnxFusion:
    """An onnxruntime fusion file with the torch Fusion's call form (for the eval table)."""

    def __init__(self, path: Path):
        from tools.train.sensor_quant import session
        self.s = session(path)
        self._imp = None

    def __call__(self, cells: torch.Tensor):
        out = [self.s.run(None, {"cells": c.numpy()}) for c in cells]
        self._imp = out[0][1]
        return torch.from_numpy(np.stack([o[0] for o in out])), torch.from_numpy(self._imp)

    def importance(self) -> torch.Tensor:
        if self._imp is None:
            self(torch.nn.functional.normalize(torch.ones(1, 1, 25, 49, 16), dim=-1))
        return torch.from_numpy(self._imp)
