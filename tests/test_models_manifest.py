"""Every shipped ONNX file is listed in models/manifest.json with its sha256, and the runtime
wrapper refuses missing, unlisted and altered files with a clear message."""
import json
import shutil

import pytest

from device.models.model import DEFAULT_MODELS_DIR, Model, ModelError
from tools.manifest import sha256_file

MANIFEST = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())


def test_every_onnx_file_is_listed_and_matches():
    files = sorted(p.name for p in DEFAULT_MODELS_DIR.glob("*.onnx"))
    assert files, "no shipped models"
    for name in files:
        entry = MANIFEST["models"][name]
        assert entry["sha256"] == sha256_file(DEFAULT_MODELS_DIR / name)
        # trained here, or converted from a third-party model (the hand landmarks)
        assert entry["command"].startswith(("python -m tools.train",
                                            "python -m tools.convert_landmarks"))
        assert entry["data"] and entry["metrics"]
        assert (DEFAULT_MODELS_DIR / name).stat().st_size < 20 * 2 ** 20


def test_listed_files_exist():
    for name in MANIFEST["models"]:
        assert (DEFAULT_MODELS_DIR / name).exists(), name


def test_model_wrapper_rejects_bad_files(tmp_path):
    name = "palm_idnet.onnx"
    for f in ("manifest.json", "manifest.sig"):          # the signed release manifest
        shutil.copy(DEFAULT_MODELS_DIR / f, tmp_path / f)
    with pytest.raises(ModelError, match="not found"):
        Model(name, tmp_path)
    data = bytearray((DEFAULT_MODELS_DIR / name).read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        Model(name, tmp_path)
    (tmp_path / "other.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="not listed"):
        Model("other.onnx", tmp_path)
