"""One wrapper around an onnxruntime session: verifies the file against models/manifest.json,
names inputs and outputs, sets threads. The only place the runtime touches onnxruntime."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np


def shipped_models_dir() -> Path:
    """Where the shipped models are: ``$PALMGATE_MODELS`` if set; else ``models/`` of the
    checkout this package runs from; else the copy an installed wheel carries
    (``device/model_files``, written by setup.py's build step)."""
    env = os.environ.get("PALMGATE_MODELS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "models"
    if (checkout / "manifest.json").is_file():
        return checkout
    return Path(__file__).resolve().parents[1] / "model_files"


DEFAULT_MODELS_DIR = shipped_models_dir()


class ModelError(RuntimeError):
    """A model file is missing, unlisted, or does not match its manifest entry."""


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(models_dir: Path = DEFAULT_MODELS_DIR) -> dict:
    path = Path(models_dir) / "manifest.json"
    if not path.exists():
        raise ModelError(f"model manifest not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelError(f"model manifest {path} is not valid JSON: {e}") from e


def verified_file(name: str, models_dir: Path | str = DEFAULT_MODELS_DIR) -> tuple[Path, dict]:
    """Path and manifest entry of a shipped file, after checking it exists, is listed and
    matches its sha256; a :class:`ModelError` that names the problem otherwise."""
    path = Path(models_dir) / name
    if not path.exists():
        raise ModelError(f"model file not found: {path} (retrain it with tools/, see README)")
    entry = load_manifest(Path(models_dir)).get("models", {}).get(name)
    if entry is None:
        raise ModelError(f"{name} is not listed in {Path(models_dir) / 'manifest.json'}")
    if sha256_file(path) != entry["sha256"]:
        raise ModelError(f"{path} does not match the sha256 in the manifest: the file was "
                         f"changed or damaged")
    return path, entry


class Model:
    """An ONNX model listed in the manifest. ``Model('palm_generator.onnx')(candidate=..)``."""

    def __init__(self, name: str, models_dir: Path | str = DEFAULT_MODELS_DIR, threads: int = 0,
                 verify: bool = True, arena: bool = True):
        import onnxruntime as ort

        if verify:
            self.path, self.entry = verified_file(name, models_dir)
        else:
            self.path = Path(models_dir) / name
            self.entry = load_manifest(Path(models_dir)).get("models", {}).get(name, {})
        opts = ort.SessionOptions()
        # ``arena=False``: no memory arena. The arena keeps its high-water mark resident for
        # good; for the hand segmentation network run from two region threads at once that was
        # ~40 MB of the gate's peak (measured), while the sensor models ran twice as slowly
        # without it (7 -> 15 ms a presentation in `palmgate bench`), so it stays on for them.
        opts.enable_cpu_mem_arena = bool(arena)
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), opts,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise ValueError(f"{self.path.name} needs inputs {sorted(missing)}")
        out = self.session.run(None, {k: np.ascontiguousarray(feeds[k], np.float32)
                                      for k in self.inputs})
        return dict(zip(self.outputs, out))
