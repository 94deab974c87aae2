"""models/manifest.json: one entry per shipped model file (sha256, shapes, metrics, recipe)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from device.models.model import sha256_file  # noqa: F401  (re-exported for tools)
from tools.paths import MODELS_DIR


def onnx_io(path) -> dict:
    """Input and output names, element types and shapes (symbolic dims as strings)."""
    import onnx

    m = onnx.load(str(path))
    def desc(v):
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        return {"name": v.name, "shape": dims,
                "dtype": onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()}
    inits = {i.name for i in m.graph.initializer}
    return {"inputs": [desc(v) for v in m.graph.input if v.name not in inits],
            "outputs": [desc(v) for v in m.graph.output]}


def update_entry(file_name: str, *, metrics: dict, command: str, data: str, notes: str = "",
                 extra: dict | None = None, manifest_path: Path | None = None) -> dict:
    """Write or replace the manifest entry of ``models/<file_name>`` (atomic rewrite)."""
    manifest_path = manifest_path or MODELS_DIR / "manifest.json"
    path = manifest_path.parent / file_name
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {
        "format": 1, "models": {}}
    io = onnx_io(path) if path.suffix == ".onnx" else {}
    entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size, **io,
             "metrics": metrics, "command": command, "data": data,
             "python": sys.version.split()[0]}
    try:
        import torch
        entry["torch"] = torch.__version__
    except ImportError:
        pass
    if notes:
        entry["notes"] = notes
    entry.update(extra or {})
    manifest["models"][file_name] = entry
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(manifest_path)
    return entry
