"""Leave-one-species-out (tools/train/sensor_loso.py): the left-out species is neither trained
nor chosen on, and the command runs end to end on tiny sets."""
import json

import numpy as np
import pytest

from tools.train.sensor_loso import NONE, loso_split, loso_threshold


def test_left_out_species_is_not_used_for_the_threshold():
    cls = np.array(["bona_fide"] * 4 + ["a"] * 2 + ["b"] * 2)
    assert loso_split(cls, "b").tolist() == [True] * 6 + [False] * 2
    assert loso_split(cls, NONE).all()
    p = np.array([0.9, 0.8, 0.85, 0.95, 0.1, 0.2, 0.99, 0.98])   # "b" looks live
    t = loso_threshold(p, cls, np.zeros(0), "b")
    assert 0.2 < t < 0.8                     # chosen without b: b would be accepted
    assert loso_threshold(p, cls, np.zeros(0), NONE) != t     # b counts when seen


def test_loso_runs_on_tiny_sets(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from tools.paths import MODELS_DIR
    from tools.train import sensor_loso as L
    from tools.train.sensor_config import CONFIG

    tiny = dict(CONFIG["quick"], real_subjects={"train": 0, "val": 0, "test": 0},
                loso={"xray": {"train": [1001, 6, 3], "val": [2002, 4, 2],
                               "test": [3003, 4, 2], "steps": 2, "lr": 1e-3, "crop": 64}})
    monkeypatch.setitem(CONFIG, "tiny", tiny)
    rep = L.run_loso("xray", "tiny", tmp_path / "work", MODELS_DIR, species=["photo"])
    assert set(rep["runs"]) == {NONE, "photo"}
    assert rep["runs"]["photo"]["heldout"]["n_attack"]["photo"] == 2
    assert 0 <= rep["summary"]["species"]["photo"]["apcer_left_out"] <= 1
    saved = json.loads((tmp_path / "work" / "loso_xray.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(rep["summary"], default=float))


def test_loso_continuation_starts_from_the_liveness_file(tmp_path, monkeypatch):
    """``from_shipped``: every run trains on from the models folder's liveness file (whole
    frames), with the rounds' BPCER-capped threshold rule."""
    pytest.importorskip("torch")
    from tools.paths import MODELS_DIR
    from tools.train import sensor_loso as L
    from tools.train.sensor_config import CONFIG

    starts = []
    real_load = L.load_from_onnx
    monkeypatch.setattr(L, "load_from_onnx", lambda p: starts.append(p) or real_load(p))
    tiny = dict(CONFIG["quick"], real_subjects={"train": 0, "val": 0, "test": 0},
                loso={"xray": {"train": [1001, 6, 3], "val": [2002, 4, 2],
                               "test": [3003, 4, 2], "steps": 1, "lr": 1e-4,
                               "from_shipped": True, "max_bpcer": 0.0}})
    monkeypatch.setitem(CONFIG, "tiny2", tiny)
    rep = L.run_loso("xray", "tiny2", tmp_path / "work", MODELS_DIR, species=["photo"])
    assert starts == [MODELS_DIR / "liveness_xray.onnx"] * 2
    assert rep["runs"]["photo"]["validation_bpcer"] == 0.0
