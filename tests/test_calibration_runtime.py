"""The gate's calibration stage at start: a good file is applied; a missing, stale, other-unit,
tampered, incomplete or failed file is refused, each with its own message, unless
``[calibration] allow_uncalibrated`` (a warning and a status flag); the synthetic source is
exempt. Files are made with the factory tool's own writer (calibration.calfile)."""
import logging
import time

import cv2
import numpy as np
import pytest

from calibration import calfile
from device.config import ConfigError, load_config
from device.gate.calibration_stage import CalibrationStage
from device.ops import health
from device.ops.unit_serial import UnitSerialError, board_serial, unit_serial
from device.sources.replay import Burst
from device.store.keys import load_device_key
from device.vision import view_geometry as vg
from device.vision.calibration import CalibrationError, rectify_maps, scale_camera_matrix

SERIAL = "PG-0042"
K = [[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]
DIST = [-0.25, 0.08, 0.0, 0.0, 0.0]
H_REG = [[1.9, 0.02, 20.0], [-0.01, 1.9, 15.0], [0.0, 0.0, 1.0]]


def _doc(steps=("intrinsics", "extrinsics", "flatfield", "registration"), fail=None):
    doc = calfile.new_document(SERIAL)
    if "intrinsics" in steps:
        for k in range(3):
            calfile.set_step(doc, "intrinsics", {"camera_matrix": K, "dist": DIST,
                                                 "image_size": [640, 480], "rms": 0.2,
                                                 "pass": fail != f"cam{k}"},
                             {"max_rms": 0.5}, sub=f"cam{k}")
    if "extrinsics" in steps:
        cams = {f"cam{k}": {"R": cv2.Rodrigues(np.array([0.0, -0.1 * k, 0.0]))[0].tolist(),
                            "T": [-60.0 * k, 0.0, 5.0 * k]} for k in (1, 2)}
        calfile.set_step(doc, "extrinsics", {"reference": "cam0", "cameras": cams,
                                             "pass": True}, {})
    if "flatfield" in steps:
        calfile.set_step(doc, "flatfield", {"gain_grid": [[1.5, 1.0], [1.0, 0.5]],
                                            "image_size": [320, 256], "dark_level": 10.0,
                                            "pass": fail != "flatfield"}, {})
    if "registration" in steps:
        calfile.set_step(doc, "registration", {
            "sensor": "ir", "reference": "cam0", "H": H_REG, "sensor_size": [320, 256],
            "ref_size": [640, 480], "sensor_undistorted": False, "ref_undistorted": True,
            "plane": {"normal": [0.0, 0.0, 1.0], "distance": 400.0}, "pass": True}, {})
    return doc


@pytest.fixture
def unit(tmp_path):
    """(key path, write(doc) -> file path, config(**sections))."""
    key_path = tmp_path / "state" / "device.key"
    key = load_device_key(key_path, create=True)

    def write(doc, name="calibration.json"):
        calfile.write_document(tmp_path / name, doc, key)
        return tmp_path / name

    def config(**sections):
        base = {"gate": {"serial": SERIAL},
                "paths": {"device_key": str(key_path), "calibration": str(tmp_path / "calibration.json"),
                          "store": str(tmp_path / "state" / "t.db")},
                "source": {"kind": "replay", "replay_dir": str(tmp_path)}}
        for s, kv in sections.items():
            base.setdefault(s, {}).update(kv)
        return load_config(None, **base)
    return key_path, write, config


def test_good_file_is_applied(unit):
    _, write, config = unit
    write(_doc())
    st = CalibrationStage(config())
    assert st.state == "calibrated" and st.calibrated and st.cameras == ["cam0", "cam1", "cam2"]
    s = st.status()
    assert s["unit_serial"] == SERIAL and s["sensor_views"] == [0, 1, 2] and "problems" not in s
    grid = ((np.indices((480, 640)).sum(0) // 40) % 2 * 100 + 60).astype(np.uint8)
    views = [grid.copy() for _ in range(3)]
    sensor = np.full((256, 320), 110, np.uint8)
    b = Burst(views, sensor, {"burst": "x"})
    out = st.apply(b, [0, 2])
    assert out is not b and out.meta == b.meta and out.views[1] is views[1]
    assert out.views[0].shape == (480, 640) and not np.array_equal(out.views[0], grid)
    np.testing.assert_array_equal(out.views[0][235:245, 315:325], grid[235:245, 315:325])
    assert out.sensor[0, 0] == 150 and out.sensor[-1, -1] == 50                # flat field


def _refusal(config, **kw) -> CalibrationError:
    with pytest.raises(CalibrationError) as e:
        CalibrationStage(config(), **kw)
    return e.value


def test_each_bad_file_is_refused_with_its_own_message(unit, tmp_path):
    key_path, write, config = unit
    got = {}
    # missing
    got["missing"] = _refusal(config)
    # tampered: one number changed after signing
    path = write(_doc())
    path.write_text(path.read_text().replace("600.0", "601.0", 1))
    got["tampered"] = _refusal(config)
    # other unit: a genuine file of this key, for another serial
    doc = _doc()
    doc["unit_serial"] = "PG-0099"
    write(doc)
    got["other_unit"] = _refusal(config)
    # stale: signed 400 days before "now" (limit 365)
    write(_doc())
    got["stale"] = _refusal(config, now=time.time() + 400 * 86400)
    # made for another calibration format
    doc = _doc()
    doc["format"] = "palmgate-calibration/0"
    write(doc)
    got["format"] = _refusal(config)
    reasons = {k: e.reason for k, e in got.items()}
    assert reasons == {"missing": "missing", "tampered": "signature", "other_unit": "other_unit",
                       "stale": "stale", "format": "stale"}
    assert "no calibration file at" in str(got["missing"])
    assert "tampered" in str(got["tampered"])
    assert "belongs to unit 'PG-0099', not this unit 'PG-0042'" in str(got["other_unit"])
    assert "signed 400.0 days ago, the limit is 365.0 days" in str(got["stale"])
    assert "made for calibration format 'palmgate-calibration/0'" in str(got["format"])
    assert len({str(e).split(": ", 1)[-1] for e in got.values()}) == len(got)


def test_wrong_key_and_serial_sources(unit, tmp_path):
    key_path, write, config = unit
    write(_doc())
    # a file signed with another unit's device key, naming that unit
    other = load_device_key(tmp_path / "other.key", create=True)
    doc = _doc()
    doc["unit_serial"] = "PG-0007"
    calfile.write_document(tmp_path / "calibration.json", doc, other)
    e = _refusal(config)
    assert e.reason == "signature" and "another device key" in str(e) and "'PG-0007'" in str(e)
    # the serial from the device tree when [gate] serial is empty
    write(_doc())
    dt = tmp_path / "serial-number"
    dt.write_bytes(SERIAL.encode() + b"\0")
    st = CalibrationStage(config(gate={"serial": ""}), serial_paths=(str(dt),))
    assert st.serial == SERIAL and st.calibrated
    e = _refusal(lambda: config(gate={"serial": ""}), serial_paths=(str(tmp_path / "none"),))
    assert e.reason == "serial_unknown" and "[gate] serial" in str(e)
    # no device key: never made here
    e = _refusal(lambda: config(paths={"device_key": str(tmp_path / "nokey")}))
    assert e.reason == "key" and "device key not found" in str(e)


def test_incomplete_and_failed_files(unit):
    _, write, config = unit
    write(_doc(steps=("intrinsics", "registration")))
    e = _refusal(config)                                   # liveness on: flat field needed
    assert e.reason == "incomplete" and "lacks flatfield" in str(e)
    st = CalibrationStage(config(liveness={"enabled": False}))
    assert st.calibrated
    e = _refusal(lambda: config(liveness={"enabled": False}, calibration={"rectify": True}))
    assert e.reason == "incomplete" and "extrinsics" in str(e)
    e = _refusal(lambda: config(liveness={"enabled": False}, gate={"views": 4}))
    assert e.reason == "incomplete" and "intrinsics.cam3" in str(e)
    write(_doc(fail="cam1"))
    e = _refusal(config)
    assert e.reason == "failed_step" and "intrinsics.cam1 FAILED" in str(e)
    write(_doc(fail="flatfield"))
    assert _refusal(config).reason == "failed_step"


def test_allow_uncalibrated_logs_and_flags(unit, caplog):
    _, write, config = unit
    cfg = config(calibration={"allow_uncalibrated": True})
    with caplog.at_level(logging.WARNING):
        st = CalibrationStage(cfg)
    assert st.state == "uncalibrated" and not st.calibrated
    assert "UNCALIBRATED" in caplog.text and "no calibration file" in caplog.text
    b = Burst([np.zeros((480, 640), np.uint8)], None)
    assert st.apply(b) is b
    s = st.status()
    assert s["reason"] == "missing" and s["problems"]
    rep = health.build_status(calibration=s, version="t")
    assert rep["ok"] is False and rep["calibration"]["state"] == "uncalibrated"
    assert any("uncalibrated" in p for p in rep["problems"])


def test_source_policy(unit, tmp_path):
    _, write, config = unit
    # the demo: a synthetic source needs no file and no key, even with a path set
    st = CalibrationStage(config(source={"kind": "synthetic"},
                                 paths={"device_key": str(tmp_path / "nokey")}))
    assert st.state == "exempt" and not st.calibrated and st.status()["calibrated"] is False
    # replayed bursts without a configured file pass as recorded
    assert CalibrationStage(config(paths={"calibration": ""})).state == "off"
    # live cameras need one
    cams = {"kind": "cameras", "cameras": ["opencv:0", "opencv:1", "opencv:2"]}
    e = _refusal(lambda: config(source=cams, paths={"calibration": ""}))
    assert e.reason == "missing" and "[paths] calibration" in str(e)


def test_gate_does_not_start_on_a_bad_file(unit, tmp_path):
    """Pipeline and Gate refuse at construction (before models or the store are used)."""
    from device.gate.gate import Gate
    from device.gate.pipeline import Pipeline
    _, write, config = unit
    cfg = config(liveness={"enabled": False})
    with pytest.raises(CalibrationError, match="no calibration file"):
        Pipeline(cfg)
    with pytest.raises(CalibrationError, match="no calibration file"):
        Gate(cfg)
    write(_doc())
    p = Pipeline(cfg)
    try:
        assert p.calibration.calibrated
    finally:
        p.close()


def test_palmgate_cli_names_the_refusal(unit, tmp_path, capsys):
    from conftest import write_toml
    from device.cli import main
    _, write, config = unit
    toml = write_toml(tmp_path / "gate.toml", config(liveness={"enabled": False}))
    assert main(["identify", "--config", str(toml), "--burst", str(tmp_path)]) == 2
    assert "no calibration file at" in capsys.readouterr().err


def test_config_keys():
    cfg = load_config(None)
    assert cfg.paths.calibration is None and cfg.calibration.allow_uncalibrated is False
    assert cfg.calibration.max_age_days == 365.0 and cfg.gate.serial is None
    with pytest.raises(ConfigError, match="calibration.cameras: 2 given"):
        load_config(None, calibration={"cameras": ["a", "b"]})
    with pytest.raises(ConfigError, match="names must differ"):
        load_config(None, calibration={"cameras": ["a", "a", "b"]})


def test_unit_serial(tmp_path):
    p = tmp_path / "serial-number"
    p.write_bytes(b"10000000abcdef01\x00")
    assert board_serial((str(tmp_path / "none"), str(p))) == "10000000abcdef01"
    assert unit_serial("PG-1", (str(p),)) == "PG-1"
    assert unit_serial("", (str(p),)) == "10000000abcdef01"
    with pytest.raises(UnitSerialError):
        unit_serial(None, (str(tmp_path / "none"),))


# -- pure geometry -------------------------------------------------------------------------------
def test_scale_matrix_agrees_with_scaled_camera_matrix():
    S = vg.scale_matrix((640, 480), (320, 240))
    np.testing.assert_allclose(S @ np.array(K), scale_camera_matrix(K, (640, 480), (320, 240)))
    with pytest.raises(ValueError):
        vg.scale_matrix((640, 480), (640, 360))


def test_distort_undistort_round_trip():
    pts = np.array([[30.0, 20.0], [320.0, 240.0], [610.0, 450.0], [100.0, 400.0]])
    back = vg.distort_points(vg.undistort_points(pts, K, DIST), K, DIST)
    np.testing.assert_allclose(back, pts, atol=0.05)


def test_common_plane_is_stereo_rectification():
    """Views 0 and 1 rotated into the common frame are exactly OpenCV's stereo rectification."""
    R01 = cv2.Rodrigues(np.array([0.01, -0.12, 0.02]))[0]
    T01 = np.array([-60.0, 2.0, 4.0])
    K1 = [[620.0, 0, 330.0], [0, 620.0, 236.0], [0, 0, 1]]
    R0, Kc = vg.common_plane(K, DIST, K1, DIST, R01, T01, (640, 480))
    (a1, a2), (b1, b2), _ = rectify_maps(K, DIST, K1, DIST, R01, T01, (640, 480))
    m0 = vg.correction_maps(K, DIST, (640, 480), R0, Kc)
    m1 = vg.correction_maps(K1, DIST, (640, 480), R0 @ R01.T, Kc)
    np.testing.assert_array_equal(m0[0], a1)
    assert np.abs(m1[0].astype(int) - b1.astype(int)).max() <= 1


def test_line_straightness():
    x = np.linspace(0, 100, 9)
    assert vg.line_straightness(np.stack([x, 2 * x + 1], 1)) < 1e-9
    bent = np.stack([x, 0.002 * (x - 50) ** 2], 1)
    assert vg.line_straightness(bent) > 1.0


@pytest.mark.parametrize("rectify", [False, True])
def test_stage_cost(unit, rectify):
    """What the stage costs per burst (printed for docs/results.md; the bound is a sanity one)."""
    _, write, config = unit
    write(_doc())
    t0 = time.perf_counter()
    st = CalibrationStage(config(calibration={"rectify": rectify}))
    start_ms = (time.perf_counter() - t0) * 1e3
    rng = np.random.default_rng(0)
    b = Burst([rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(3)],
              rng.integers(0, 255, (256, 320), dtype=np.uint8))
    ts = []
    for _ in range(30):
        t0 = time.perf_counter()
        st.apply(b)
        ts.append((time.perf_counter() - t0) * 1e3)
    print(f"measured: calibration stage, rectify {rectify}: start {start_ms:.0f} ms, per burst "
          f"(3 colour views 640x480 + sensor 320x256) median {np.median(ts):.1f} ms")
    assert np.median(ts) < 1000
