"""One wrapper around an onnxruntime session: verifies the file against models/manifest.json,
whose Ed25519 signature (models/manifest.sig, device/models/signing.py) must come from a trusted
key (device/models/trust.py), names inputs and outputs, sets threads. The only place the runtime
touches onnxruntime."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from device.models.ort_session import session_options
from device.models.signing import SignatureError, verify as verify_signature
from device.models.trust import key_map, trusted_keys as default_keys


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


SIGNATURE_FILE = "manifest.sig"


class ModelError(RuntimeError):
    """A model file is missing, unlisted, or does not match its manifest entry, or the manifest
    is not signed by a trusted key."""


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(models_dir: Path | str = DEFAULT_MODELS_DIR) -> dict:
    """The manifest as written, NOT verified: for tools and reports only. The runtime reads
    models and thresholds through :func:`load_manifest`."""
    path = Path(models_dir) / "manifest.json"
    if not path.exists():
        raise ModelError(f"model manifest not found: {path}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"model manifest {path} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models", {}), dict):
        raise ModelError(f"model manifest {path}: not an object with a 'models' object")
    return manifest


def entry_threshold(entry: dict, name: str) -> float:
    """The ``threshold`` of a file's (signature-checked) manifest entry, a probability in
    (0, 1): the presence check's p(hand) and the X-ray phantom check's p(phantom) are decided
    against it (a :class:`ModelError` when it is missing or out of range)."""
    t = entry.get("threshold")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < float(t) < 1.0:
        raise ModelError(f"{name} has no threshold in (0, 1) in the manifest")
    return float(t)


SECOND_LOOK_MAX_BAND = 3.0
"""The widest second-look band (logit) a signed entry may carry (device.gate.second_look)."""


def entry_band(entry: dict, name: str) -> float:
    """The ``second_look_band`` (logit from the ``threshold``) of a file's signature-checked
    manifest entry: how far on the deny side frame 0's score may lie for the gate to take a
    second look (device.gate.second_look); 0.0 when absent, a :class:`ModelError` when not a
    number in [0, SECOND_LOOK_MAX_BAND]."""
    b = entry.get("second_look_band")
    if b is None:
        return 0.0
    if isinstance(b, bool) or not isinstance(b, (int, float)) \
            or not 0.0 <= float(b) <= SECOND_LOOK_MAX_BAND:
        raise ModelError(f"second_look_band {b!r} of {name} is not a number in "
                         f"[0, {SECOND_LOOK_MAX_BAND}]")
    return float(b)


def read_signature(models_dir: Path | str = DEFAULT_MODELS_DIR):
    """The parsed manifest.sig of ``models_dir``; a :class:`ModelError` when missing or bad."""
    d = Path(models_dir)
    path = d / SIGNATURE_FILE
    if not path.exists():
        raise ModelError(
            f"model manifest {d / 'manifest.json'} is not signed ({path} missing): no model "
            f"and no threshold is used from an unsigned manifest; the release step signs it "
            f"(python -m tools.sign_manifest --key KEY {d}; docs/model-signing.md)")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"manifest signature {path} is not valid JSON: {e}") from e


def load_signed_manifest(models_dir: Path | str = DEFAULT_MODELS_DIR, trusted_keys=None
                         ) -> tuple[dict, str]:
    """(manifest, id of the trusted key whose signature verified): see :func:`load_manifest`."""
    manifest = read_manifest(models_dir)
    document = read_signature(models_dir)
    keys = default_keys() if trusted_keys is None else key_map(trusted_keys)
    try:
        kid = verify_signature(manifest, document, keys)
    except SignatureError as e:
        raise ModelError(f"model manifest {Path(models_dir) / 'manifest.json'} refused: {e}. "
                         f"No model or threshold is used from it (docs/model-signing.md)"
                         ) from None
    return manifest, kid


def load_manifest(models_dir: Path | str = DEFAULT_MODELS_DIR, trusted_keys=None) -> dict:
    """The manifest of ``models_dir`` after checking its signature (manifest.sig) with
    ``trusted_keys`` (default :func:`device.models.trust.trusted_keys`: the package's release
    keys); a :class:`ModelError` naming the problem when it is unsigned, signed by an unknown
    key, or changed since it was signed."""
    return load_signed_manifest(models_dir, trusted_keys)[0]


def _entry(name: str, models_dir: Path | str, trusted_keys) -> tuple[Path, dict]:
    path = Path(models_dir) / name
    if not path.exists():
        raise ModelError(f"model file not found: {path} (retrain it with tools/, see README)")
    entry = load_manifest(models_dir, trusted_keys).get("models", {}).get(name)
    if entry is None:
        raise ModelError(f"{name} is not listed in {Path(models_dir) / 'manifest.json'}")
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise ModelError(f"{name}: its manifest entry has no sha256")
    return path, entry


def verified_file(name: str, models_dir: Path | str = DEFAULT_MODELS_DIR,
                  trusted_keys=None) -> tuple[Path, dict]:
    """Path and manifest entry of a shipped file, after checking the manifest's signature and
    that the file exists, is listed and matches its sha256; a :class:`ModelError` that names
    the problem otherwise. (Prefer :func:`verified_bytes`, which hands over the very bytes it
    checked.)"""
    path, entry = _entry(name, models_dir, trusted_keys)
    if sha256_file(path) != entry["sha256"]:
        raise ModelError(f"{path} does not match the sha256 in the manifest: the file was "
                         f"changed or damaged")
    return path, entry


def verified_bytes(name: str, models_dir: Path | str = DEFAULT_MODELS_DIR,
                   trusted_keys=None) -> tuple[bytes, dict]:
    """The content and manifest entry of a listed file, checked as :func:`verified_file` does
    but on the bytes returned, so the file cannot be swapped between the check and the use."""
    path, entry = _entry(name, models_dir, trusted_keys)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ModelError(f"{path} does not match the sha256 in the manifest: the file was "
                         f"changed or damaged")
    return data, entry


class Model:
    """An ONNX model listed in the manifest. ``Model('palm_generator.onnx')(candidate=..)``."""

    def __init__(self, name: str, models_dir: Path | str = DEFAULT_MODELS_DIR, threads: int = 0,
                 verify: bool = True, arena: bool = True, trusted_keys=None):
        import onnxruntime as ort

        self.path = Path(models_dir) / name
        if verify:              # the session is built from the very bytes that were checked
            source, self.entry = verified_bytes(name, models_dir, trusted_keys)
        else:                   # tools and tests on files of their own: nothing checked
            source = str(self.path)
            self.entry = read_manifest(Path(models_dir)).get("models", {}).get(name, {})
        # ``arena=False``: no memory arena. The arena keeps its high-water mark resident for
        # good; for the hand segmentation network run from two region threads at once that was
        # ~40 MB of the gate's peak (measured), while the sensor models ran twice as slowly
        # without it (7 -> 15 ms a presentation in `palmgate bench`), so it stays on for them.
        # exact int8 products on every CPU (device/models/ort_session.py)
        opts = session_options(threads, arena)
        self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise ValueError(f"{self.path.name} needs inputs {sorted(missing)}")
        out = self.session.run(None, {k: np.ascontiguousarray(feeds[k], np.float32)
                                      for k in self.inputs})
        return dict(zip(self.outputs, out))
