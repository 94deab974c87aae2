"""models/manifest.json: one entry per shipped model file (sha256, shapes, metrics, recipe).

Every change re-signs the manifest when a signing key is given (``sign_key``, ``--sign-key`` of
``python -m tools.train``, or ``$PALMGATE_SIGN_KEY`` on the release machine); without one the
stale models/manifest.sig is removed and the runtime refuses the folder until the release step
signs it (``python -m tools.sign_manifest --key KEY models/``, docs/model-signing.md).
"""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

from device.models.model import sha256_file  # noqa: F401  (re-exported for tools)
from device.models.trust import trust_in_this_process
from tools.paths import MODELS_DIR
from tools.sign_manifest import KEY_ENV, load_private_key, remove_signature, write_signature

_told: set[str] = set()         # folders already told they are unsigned (one note each)


@functools.lru_cache(maxsize=None)
def _signing_key(path: str):
    return load_private_key(path)


def sign_after_update(models_dir: str | os.PathLike, sign_key: str | os.PathLike | None = None
                      ) -> bool:
    """Re-sign ``models_dir``/manifest.json with ``sign_key`` (default ``$PALMGATE_SIGN_KEY``)
    and trust that key in this process (the run may load what it just wrote); without a key,
    remove the stale signature and say so once. Whether it signed."""
    d = Path(models_dir)
    key = sign_key or os.environ.get(KEY_ENV)
    if key:
        k = _signing_key(str(Path(key).expanduser()))
        write_signature(d, [k], check_files=False)
        trust_in_this_process(k.public_key())
        return True
    removed = remove_signature(d)
    if str(d) not in _told:
        _told.add(str(d))
        print(f"note: {d / 'manifest.json'} changed and is not signed"
              + (" (its stale manifest.sig was removed)" if removed else "")
              + f": the gate refuses these models until the release step signs them: "
                f"python -m tools.sign_manifest --key KEY {d} (docs/model-signing.md)",
              file=sys.stderr)
    return False


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
                 extra: dict | None = None, manifest_path: Path | None = None,
                 sign_key: str | os.PathLike | None = None) -> dict:
    """Write or replace the manifest entry of ``models/<file_name>`` (atomic rewrite), then
    re-sign the manifest or drop its stale signature (:func:`sign_after_update`)."""
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
    sign_after_update(manifest_path.parent, sign_key)
    return entry
