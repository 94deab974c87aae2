"""The signed per-unit calibration file and the runtime that loads it."""
import json
import os
import time

import cv2
import numpy as np
import pytest

from calibration import calfile
from device.vision.calibration import (Calibration, CalibrationError, apply_gain,
                                        canonical_json, gain_map, load_calibration,
                                        register_to_reference, undistort_image)
from device.store.keys import load_device_key

K = [[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]


@pytest.fixture
def unit(tmp_path):
    key = load_device_key(tmp_path / "device.key", create=True)
    doc = calfile.new_document("PG-0042")
    calfile.set_step(doc, "intrinsics", {"camera_matrix": K, "dist": [-0.1, 0.01, 0, 0, 0],
                                         "image_size": [640, 480], "rms": 0.2, "pass": True},
                     {"max_rms": 0.5}, sub="cam0")
    calfile.set_step(doc, "flatfield", {"gain_grid": [[1.5, 1.0], [1.0, 0.5]],
                                        "image_size": [64, 48], "dark_level": 10.0,
                                        "pass": True}, {"min_frames": 2})
    path = tmp_path / "unit.json"
    calfile.write_document(path, doc, key)
    return path, key


def test_valid_file_round_trips(unit):
    path, key = unit
    c = load_calibration(path, key, unit_serial="PG-0042", max_age_s=3600,
                         required=("intrinsics", "flatfield"))
    assert c.calibrated and c.unit_serial == "PG-0042" and c.cameras() == ["cam0"]
    np.testing.assert_allclose(c.camera("cam0").K, K)
    doc = json.loads(path.read_text())
    assert doc["signature"]["alg"] == "HMAC-SHA256-HKDF" and doc["tool"]["name"] == "palmgate-calibrate"
    assert doc["limits"]["intrinsics"]["cam0"] == {"max_rms": 0.5}
    # re-opening for the next step keeps everything and re-signs
    doc2 = calfile.open_document(path, key, "PG-0042")
    calfile.set_step(doc2, "relay", {"pass": True}, {"min_cycles": 1})
    calfile.write_document(path, doc2, key)
    c2 = load_calibration(path, key, unit_serial="PG-0042")
    assert set(c2.results) == {"intrinsics", "flatfield", "relay"}


@pytest.mark.parametrize("edit", [
    lambda d: d["results"]["intrinsics"]["cam0"]["camera_matrix"][0].__setitem__(0, 601.0),
    lambda d: d.__setitem__("unit_serial", "PG-0043"),
    lambda d: d["limits"]["intrinsics"]["cam0"].__setitem__("max_rms", 5.0),
    lambda d: d["results"].pop("flatfield"),
])
def test_tampered_file_is_rejected_clearly(unit, edit):
    path, key = unit
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(CalibrationError, match="tampered"):
        load_calibration(path, key)
    with pytest.raises(CalibrationError, match="tampered"):      # and the tool won't build on it
        calfile.open_document(path, key, "PG-0042")


def test_byte_level_tamper_and_garbage(unit):
    path, key = unit
    text = path.read_text()
    path.write_text(text.replace("600.0", "600.5", 1))
    with pytest.raises(CalibrationError, match="tampered"):
        load_calibration(path, key)
    path.write_text(text[: len(text) // 2])
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_calibration(path, key)


def test_refusals_missing_foreign_stale_wrong_key(unit, tmp_path):
    path, key = unit
    with pytest.raises(CalibrationError, match="no calibration file"):
        load_calibration(tmp_path / "none.json", key)
    with pytest.raises(CalibrationError, match="belongs to unit 'PG-0042'"):
        load_calibration(path, key, unit_serial="PG-9999")
    with pytest.raises(CalibrationError, match="stale"):
        load_calibration(path, key, max_age_s=86400, now=time.time() + 2 * 86400)
    with pytest.raises(CalibrationError, match="another device key"):
        load_calibration(path, os.urandom(32))
    with pytest.raises(CalibrationError, match="lacks the step"):
        load_calibration(path, key, required=("registration",))


def test_uncalibrated_only_when_explicitly_allowed(tmp_path, caplog):
    key = os.urandom(32)
    c = load_calibration(tmp_path / "none.json", key, allow_uncalibrated=True)
    assert isinstance(c, Calibration) and not c.calibrated and "no calibration file" in c.reason
    img = np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)
    assert c.flatten(img) is img and c.undistort("cam0", img) is img and c.register(img) is img
    assert "UNCALIBRATED" in caplog.text


def test_canonical_json_is_stable_and_strict():
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'.encode()
    with pytest.raises(CalibrationError):
        canonical_json({"x": float("nan")})
    with pytest.raises(CalibrationError):
        canonical_json({"x": np.float32(1.0)})


def test_runtime_gain_and_flatten(unit):
    path, key = unit
    c = load_calibration(path, key)
    img = np.full((48, 64), 110, np.uint16)
    out = c.flatten(img)
    assert out.dtype == np.uint16 and out.shape == img.shape
    g = gain_map([[1.5, 1.0], [1.0, 0.5]], (64, 48))
    np.testing.assert_array_equal(out, np.clip(np.rint((110 - 10) * g), 0, 65535))
    assert out[0, 0] == 150 and out[-1, -1] == 50
    with pytest.raises(CalibrationError, match="does not fit"):
        apply_gain(img, np.ones((4, 4), np.float32))
    with pytest.raises(CalibrationError, match="no sensor registration"):
        c.register(img)


def test_undistort_straightens_a_distorted_grid():
    Km = np.array(K)
    dist = np.array([-0.25, 0.08, 0, 0, 0])
    # ideal grid points -> distorted positions, drawn; undistortion must put them back
    xs, ys = np.meshgrid(np.linspace(80, 560, 7), np.linspace(60, 420, 5))
    ideal = np.stack([xs.ravel(), ys.ravel()], 1)
    norm = cv2.undistortPoints(ideal.reshape(-1, 1, 2), Km, None).reshape(-1, 3 - 1)
    obj = np.hstack([norm, np.ones((len(norm), 1))])
    distorted, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), Km, dist)
    img = np.zeros((480, 640), np.uint8)
    for p in distorted.reshape(-1, 2):
        cv2.circle(img, (int(round(p[0] * 16)), int(round(p[1] * 16))), 5 * 16, 255, -1,
                   cv2.LINE_AA, shift=4)
    und = undistort_image(img, Km, dist)
    n, _, _, cents = cv2.connectedComponentsWithStats((und > 127).astype(np.uint8))
    cents = cents[1:]
    err = [np.min(np.linalg.norm(cents - q, axis=1)) for q in ideal]
    assert n - 1 == len(ideal) and max(err) < 0.5


def test_register_to_reference_is_a_warp():
    H = np.array([[2.0, 0, 10], [0, 2.0, 5], [0, 0, 1]])
    img = np.zeros((20, 30), np.uint8)
    img[4:6, 7:9] = 255
    out = register_to_reference(img, H, (80, 60))
    ys, xs = np.nonzero(out > 127)
    assert out.shape == (60, 80)
    assert abs(xs.mean() - (2 * 7.5 + 10)) < 1 and abs(ys.mean() - (2 * 4.5 + 5)) < 1
