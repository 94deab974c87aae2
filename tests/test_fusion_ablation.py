"""tools.fusion_ablation: the scored models copy is signed by a throwaway key this process
trusts, its fusion entries re-hashed and marked as an ablation; the shipped folder untouched."""
import json
import shutil

import onnx
import pytest

from device.models.model import load_manifest, verified_file
from tools.fusion_ablation import main, sign_copy
from tools.paths import MODELS_DIR


def test_sign_copy_verifies_and_marks_the_ablation(tmp_path):
    before = (MODELS_DIR / "manifest.json").read_bytes()
    d = tmp_path / "models"
    shutil.copytree(MODELS_DIR, d)
    f = d / "recognition_fusion_int8.onnx"
    m = onnx.load(f)
    m.doc_string = "ablation"                      # a different file: the old sha256 fails
    onnx.save(m, f)
    with pytest.raises(Exception):
        verified_file("recognition_fusion_int8.onnx", d)
    kid = sign_copy(d)
    man = load_manifest(d)                         # verifies with the key trusted in-process
    assert json.loads((d / "manifest.sig").read_text())["signatures"][0]["key_id"] == kid
    for name in ("recognition_fusion.onnx", "recognition_fusion_int8.onnx"):
        assert man["models"][name]["notes"].startswith("ABLATION (not shipped)")
        assert man["models"][name]["metrics"] == {}
    assert verified_file("recognition_fusion_int8.onnx", d)[0] == f
    assert (MODELS_DIR / "manifest.json").read_bytes() == before


def test_variant_names():
    with pytest.raises(SystemExit):
        main(["train", "mean", "--work", "w", "--out", "o"])
