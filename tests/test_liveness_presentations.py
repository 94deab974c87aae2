"""`palmgate evaluate-liveness` on presentations (views + sensor frame): the gate's pipeline up
to the binding runs, so mixed presentations are denied `sensor_mismatch`; a sensor frame
without views is scored by the sensor stage alone and reported as not bound (issue 21 item 4)."""
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import ROOT, SHIPPED, shipped_sensor_models_listed

pytestmark = pytest.mark.skipif(
    not (shipped_sensor_models_listed("xray") and (SHIPPED / "binding_xray.json").exists()),
    reason="no shipped X-ray sensor models or binding numbers")


@pytest.fixture(scope="module")
def pres_set(tmp_path_factory):
    from device.synth.presentation_sets import write_presentations
    d = tmp_path_factory.mktemp("pres")
    write_presentations(d, "xray", 3, 3, seed=4243)
    # a bare sensor frame among the bona fide (no views: not bound), and a no_hand species
    shutil.copy(d / "bona_fide" / "00000" / "sensor.png", d / "bona_fide" / "frame.png")
    (d / "attack" / "no_hand").mkdir()
    g = np.random.default_rng(1)
    for i in range(2):
        cv2.imwrite(str(d / "attack" / "no_hand" / f"{i}.png"),
                    (g.random((128, 128)) * 255).astype(np.uint8))
    return d


def test_the_layout_and_the_readers(pres_set):
    from device.eval.liveness import scan_liveness_dir
    from device.eval.liveness_presentations import is_presentation, read_rig
    bona, attacks = scan_liveness_dir(pres_set)
    assert [f.name for f in bona] == ["sensor.png"] * 3 + ["frame.png"]   # views skipped
    assert [is_presentation(f) for f in bona] == [True] * 3 + [False]
    assert set(attacks) == {"mixed_replica_views", "mixed_replica_sensor", "no_hand"}
    assert read_rig(pres_set) == {"synthetic_seed": 4243, "views": 3, "sensor": "xray"}
    meta = json.loads((pres_set / "attack" / "mixed_replica_views" / "00000" /
                       "burst.json").read_text())
    assert meta["class"] == "mixed_replica_views" and meta["variant"]


def test_presentations_go_through_the_binding(pres_set, tmp_path):
    from device.eval.liveness import DENIED, evaluate_liveness
    rep = evaluate_liveness(pres_set, "xray", tmp_path)
    b = rep["binding"]
    assert b["bona_fide"] == {"presentations": 3, "bound": 3, "not_bound": 1}
    assert b["attack"]["no_hand"] == {"presentations": 0, "bound": 0, "not_bound": 2}
    assert b["threshold"] > 0 and b["registration"] == "nominal"
    assert b["min_palm_lines"] is None          # X-ray: no palm-line check
    for sp in ("mixed_replica_views", "mixed_replica_sensor"):
        assert b["attack"][sp]["presentations"] == 3
        assert rep["deny_reasons"]["attack"][sp].get("sensor_mismatch", 0) >= 1, rep
    assert rep["deny_reasons"]["attack"]["no_hand"] == {"no_hand_in_sensor": 2}
    assert set(rep["deny_reasons"]["bona_fide"]) <= {"passed", "not_live", "sensor_mismatch"}
    s = np.load(tmp_path / "scores.npz")
    assert list(s["bona_fide_kind"]) == ["bound"] * 3 + ["frame"]
    assert np.isfinite(s["bona_fide_binding"][:3]).all() and np.isnan(s["bona_fide_binding"][3])
    mismatch = s["attack_reason"] == "sensor_mismatch"
    assert mismatch.any() and np.all(s["attack"][mismatch] == DENIED)
    assert np.all(s["attack_binding"][mismatch] > b["threshold"])
    # a sample is accepted only when every stage accepts
    assert rep["apcer"]["mixed_replica_views"] == pytest.approx(
        np.mean(s["attack_reason"][s["attack_species"] == "mixed_replica_views"] == ""))


def test_the_command_takes_presentations(pres_set, tmp_path):
    r = subprocess.run([sys.executable, "-m", "device.cli", "evaluate-liveness", str(pres_set),
                        "--sensor", "xray", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["binding"]["attack"]["mixed_replica_sensor"]["bound"] == 3


def test_synth_writes_presentations(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.synth", "liveness", "--sensor", "nir",
                        "--out", str(tmp_path), "--bona-fide", "1", "--per-species", "1",
                        "--seed", "3", "--presentations", "--views", "2"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "bona_fide" / "00000").iterdir()) == [
        "burst.json", "sensor.png", "view_0.png", "view_1.png"]
    assert (tmp_path / "attack" / "mixed_replica_sensor" / "00000" / "sensor.png").exists()
