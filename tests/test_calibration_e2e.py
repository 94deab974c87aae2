"""The calibration path end to end: palmgate-calibrate makes the unit's signed file from OpenCV's
chessboard samples and from hermetic ChArUco renders (known cameras, an IR sensor, a vignetted
flat field); the gate starts with a config pointing at the file and its views come out
undistorted (straight chessboard rows, corners where an ideal pinhole puts them), rectified
when asked, the sensor frame flat-fielded and mapped into every view."""
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.boards import parse_board
from calibration.cli import main
from calibration.synthetic import Camera, board_poses, render_view, rot
from device.config import load_config
from device.sources.replay import Burst, ReplaySource, write_burst
from device.vision.view_geometry import line_straightness

DATA = Path(os.environ.get("PALMGATE_DATA")
            or Path(__file__).resolve().parents[1].parent / "shared" / "data") / "opencv-calib"
CHESS = "chessboard:9x6:1.0"


def _config(root: Path, serial: str, views: int, **sections):
    base = {"gate": {"serial": serial, "views": views, "min_views": min(2, views),
                     "cooldown_s": 0.0, "segmenter": "classical"},
            "paths": {"device_key": str(root / "state" / "device.key"),
                      "calibration": str(root / "calibration.json"),
                      "store": str(root / "state" / "templates.db")},
            "source": {"kind": "replay", "replay_dir": str(root / "replay")},
            "timeouts": {k: 120_000 for k in ("capture", "quality", "calibration", "regions",
                                              "sensor", "binding", "feature", "match")}}
    for s, kv in sections.items():
        base.setdefault(s, {}).update(kv)
    return load_config(None, **base)


def _unit_args(root: Path, serial: str) -> list[str]:
    return ["--calfile", str(root / "calibration.json"), "--serial", serial,
            "--key", str(root / "state" / "device.key"), "--quiet"]


# -- OpenCV's samples -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ocv_unit(tmp_path_factory):
    if not (DATA / "left01.jpg").exists():
        pytest.skip(f"OpenCV sample images not found at {DATA}")
    root = tmp_path_factory.mktemp("ocv-unit")
    u = _unit_args(root, "PG-OCV")
    assert main(["intrinsics", "--images", str(DATA / "left*.jpg"), "--board", CHESS,
                 "--camera", "cam0", "--create-key", *u]) == 0
    assert main(["intrinsics", "--images", str(DATA / "right*.jpg"), "--board", CHESS,
                 "--camera", "cam1", *u]) == 0
    assert main(["extrinsics", "--images", f"cam0={DATA / 'left*.jpg'}", "--images",
                 f"cam1={DATA / 'right*.jpg'}", "--board", CHESS, *u]) == 0
    left, right = (cv2.imread(str(DATA / f"{s}14.jpg"), cv2.IMREAD_GRAYSCALE)
                   for s in ("left", "right"))
    write_burst(root / "replay" / "0", Burst([left, right], None, {"burst": "ocv-14"}))
    return root


def _rows(img) -> np.ndarray:
    det = parse_board(CHESS).detect(img)
    assert det is not None
    return det.image_points.reshape(6, 9, 2)


def _bend(grid) -> float:
    """Worst RMS distance from a straight line over the board's rows and columns (px)."""
    return max([line_straightness(r) for r in grid] +
               [line_straightness(c) for c in grid.transpose(1, 0, 2)])


def test_gate_starts_with_the_opencv_unit_file_and_straightens_the_board(ocv_unit):
    from device.gate.gate import Gate
    cfg = _config(ocv_unit, "PG-OCV", 2, liveness={"enabled": False})
    src = ReplaySource(cfg.source.replay_dir, views=2)
    src.start()
    burst = src.capture_burst()
    with Gate(cfg) as gate:
        st = gate.pipeline.calibration.status()
        assert st["state"] == "calibrated" and st["unit_serial"] == "PG-OCV"
        assert st["steps"] == ["extrinsics", "intrinsics"]
        d = gate.present(burst)                         # nobody enrolled: a deny, timed
        assert d.decision == "deny" and "calibration" in d.stages_ms
        fixed = gate.pipeline.calibrate(burst)
    for k in (0, 1):
        raw, und = _bend(_rows(burst.views[k])), _bend(_rows(fixed.views[k]))
        # k1 = -0.28: the raw rows bow by 1.5 px; undistorted they are straight to ~0.15 px
        print(f"measured: OpenCV pair 14 view {k}: worst row/column bend raw {raw:.2f} px, "
              f"undistorted {und:.3f} px")
        assert raw > 1.0 and und < 0.25 and und < raw / 5, (k, raw, und)


def test_rectified_opencv_pair_shares_rows(ocv_unit):
    from device.gate.pipeline import Pipeline
    cfg = _config(ocv_unit, "PG-OCV", 2, liveness={"enabled": False},
                  calibration={"rectify": True})
    src = ReplaySource(cfg.source.replay_dir, views=2)
    src.start()
    burst = src.capture_burst()
    p = Pipeline(cfg)
    try:
        fixed = p.calibrate(burst)
    finally:
        p.close()
    yl, yr = (np.sort(_rows(v)[..., 1].ravel()) for v in fixed.views)
    raw_l, raw_r = (np.sort(_rows(v)[..., 1].ravel()) for v in burst.views)
    print(f"measured: OpenCV pair 14 row offset raw {np.median(np.abs(raw_l - raw_r)):.2f} px, "
          f"rectified {np.median(np.abs(yl - yr)):.3f} px (median)")
    assert np.median(np.abs(raw_l - raw_r)) > 2.0             # not aligned as captured
    assert np.median(np.abs(yl - yr)) < 0.5                   # rows aligned when rectified


# -- hermetic ChArUco renders: two cameras and an IR sensor -------------------------------------
BOARD = "charuco:9x7:30:22:DICT_5X5_100"
CAM_A = Camera(np.array([[600.0, 0, 322.0], [0, 603.0, 236.0], [0, 0, 1]]), (640, 480),
               np.array([-0.12, 0.05, 0.001, -0.0005, 0.0]))
CAM_B = Camera(np.array([[640.0, 0, 318.0], [0, 640.0, 244.0], [0, 0, 1]]), (640, 480),
               np.array([-0.08, 0.02, 0.0, 0.0, 0.0]), R=rot(0.5, -10.0, 1.0),
               T=np.array([-80.0, 3.0, 5.0]))
CAM_IR = Camera(np.array([[330.0, 0, 158.0], [0, 330.0, 131.0], [0, 0, 1]]), (320, 256),
                None, R=rot(2.0, -4.0, 1.5), T=np.array([35.0, -12.0, 4.0]))
PLANE = (rot(4.0, -3.0, 2.0), np.array([-135.0, -105.0, 380.0]))    # the working plane in A
DARK = 8.0


def _vignette(size, peak=150.0):
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = ((x - w / 2) / w) ** 2 + ((y - h / 2) / h) ** 2
    return DARK + peak * (1.0 - 1.2 * r2)


@pytest.fixture(scope="module")
def charuco_unit(tmp_path_factory):
    root = tmp_path_factory.mktemp("charuco-unit")
    board = parse_board(BOARD)
    img, S = board.generate_image(8.0, margin_units=10)
    rng = np.random.default_rng(11)
    folders = {n: root / n for n in ("A", "B", "planeA", "planeB", "planeIR", "flat")}
    for d in folders.values():
        d.mkdir()
    for i, (R, t) in enumerate(board_poses(10, (135, 105), 420, rng)):
        cv2.imwrite(str(folders["A"] / f"a{i:02d}.png"),
                    render_view(img, S, CAM_A, R, t, blur=0.7, noise=2.0, rng=rng))
        cv2.imwrite(str(folders["B"] / f"b{i:02d}.png"),
                    render_view(img, S, CAM_B, *CAM_B.pose_of(R, t), blur=0.7, noise=2.0, rng=rng))
    Rw, tw = PLANE
    for i in range(3):
        for cam, name, kw in ((CAM_A, "planeA", {}), (CAM_B, "planeB", {}),
                              (CAM_IR, "planeIR", {"contrast": 0.6, "background": 60})):
            cv2.imwrite(str(folders[name] / f"{name}{i}.png"),
                        render_view(img, S, cam, *cam.pose_of(Rw, tw), blur=0.8, noise=2.0,
                                    rng=rng, **kw))
    for i in range(4):
        flat = _vignette(CAM_IR.size) + rng.normal(0, 1.5, CAM_IR.size[::-1])
        cv2.imwrite(str(folders["flat"] / f"f{i}.png"), np.clip(flat, 0, 255).astype(np.uint8))
    u = _unit_args(root, "PG-HERM")
    assert main(["intrinsics", "--images", str(folders["A"]), "--board", BOARD, "--camera",
                 "cam0", "--create-key", *u]) == 0
    assert main(["intrinsics", "--images", str(folders["B"]), "--board", BOARD, "--camera",
                 "cam1", *u]) == 0
    assert main(["extrinsics", "--images", f"cam0={folders['A']}", "--images",
                 f"cam1={folders['B']}", "--board", BOARD, *u]) == 0
    assert main(["registration", "--sensor-images", str(folders["planeIR"]), "--ref-images",
                 str(folders["planeA"]), "--board", BOARD, "--reference", "cam0", *u]) == 0
    assert main(["flatfield", "--images", str(folders["flat"]), "--dark-level", str(DARK),
                 *u]) == 0
    assert main(["verify", "--require", "intrinsics,extrinsics,registration,flatfield",
                 "--report", str(root / "report"), *u]) == 0
    return root


def _plane_burst(root: Path, i: int = 0) -> Burst:
    rd = lambda n: cv2.imread(str(root / n / f"{n}{i}.png"), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    return Burst([rd("planeA"), rd("planeB")], rd("planeIR"), {"burst": f"plane{i}"})


def _corners(img) -> dict[int, np.ndarray]:
    det = parse_board(BOARD).detect(img)
    assert det is not None
    return {int(k): p for k, p in zip(det.ids, det.image_points)}


def _pipeline(root, **sections):
    from device.gate.pipeline import Pipeline
    return Pipeline(_config(root, "PG-HERM", 2, **sections))


def test_charuco_unit_file_and_stamped_certificate(charuco_unit):
    doc = json.loads((charuco_unit / "calibration.json").read_text())
    assert doc["unit_serial"] == "PG-HERM"
    reg = doc["results"]["registration"]
    n_true = PLANE[0][:, 2]
    assert np.degrees(np.arccos(abs(np.dot(reg["plane"]["normal"], n_true)))) < 1.0
    assert abs(reg["plane"]["distance"] - n_true @ PLANE[1]) < 4.0          # mm at 380
    cert = json.loads((charuco_unit / "report" / "verify.json").read_text())
    assert cert["stamp"]["unit_serial"] == "PG-HERM" and cert["stamp"]["verdict"] == "PASS"
    assert cert["stamp"]["utc"][:10] == datetime.now(timezone.utc).strftime("%Y-%m-%d")


def test_charuco_views_undistorted_to_the_ideal_pinhole(charuco_unit):
    p = _pipeline(charuco_unit)
    try:
        assert p.calibration.calibrated
        burst = _plane_burst(charuco_unit)
        fixed = p.calibrate(burst)
    finally:
        p.close()
    board = parse_board(BOARD)
    obj = board.object_points()
    for k, cam in enumerate((CAM_A, CAM_B)):
        R, t = cam.pose_of(*PLANE)
        ideal, _ = cv2.projectPoints(obj.astype(np.float64), cv2.Rodrigues(R)[0], t, cam.K, None)
        ideal = ideal.reshape(-1, 2)
        err = {}
        for name, img in (("raw", burst.views[k]), ("corrected", fixed.views[k])):
            c = _corners(img)
            ids = sorted(c)
            err[name] = float(np.sqrt(np.mean(np.sum((np.array([c[i] for i in ids])
                                                      - ideal[ids]) ** 2, 1))))
        print(f"measured: ChArUco view {k}: corners vs the ideal pinhole, RMS raw "
              f"{err['raw']:.2f} px, corrected {err['corrected']:.3f} px")
        assert err["raw"] > 0.8 and err["corrected"] < 0.35, (k, err)
    # the flat field: a vignetted flat comes out even
    flat = cv2.imread(str(charuco_unit / "flat" / "f0.png"), cv2.IMREAD_GRAYSCALE)
    out = p.calibration.apply(Burst([], flat)).sensor
    inner = out[16:-16, 16:-16].astype(float)
    raw = flat[16:-16, 16:-16].astype(float)
    print(f"measured: flat field std/mean raw {raw.std() / raw.mean():.3f}, corrected "
          f"{inner.std() / inner.mean():.4f}")
    assert raw.std() / raw.mean() > 0.08 and inner.std() / inner.mean() < 0.02


def test_sensor_frame_maps_into_every_view(charuco_unit):
    """The registration the liveness branch uses: IR board corners land on the corrected
    views' corners, in the reference view and (through the working plane) in the other."""
    p = _pipeline(charuco_unit)
    try:
        corr = p.calibration.correction
        burst = _plane_burst(charuco_unit, 1)
        fixed = p.calibrate(burst)
    finally:
        p.close()
    ir = _corners(burst.sensor)
    for k in (0, 1):
        seen = _corners(fixed.views[k])
        ids = sorted(set(ir) & set(seen))
        assert len(ids) > 20
        src = np.array([ir[i] for i in ids])
        dst = np.array([seen[i] for i in ids])
        d = np.linalg.norm(corr.sensor_to_view(src, k, (640, 480)) - dst, axis=1)
        print(f"measured: IR corners mapped into view {k}: median {np.median(d):.3f} px, max "
              f"{d.max():.3f} px over {len(ids)} corners")
        assert np.median(d) < 1.0 and d.max() < 3.0, (k, np.median(d), d.max())
        back = corr.view_to_sensor(dst, k, (640, 480))
        assert np.median(np.linalg.norm(back - src, axis=1)) < 0.6
        warped = corr.sensor_in_view(burst.sensor, k, (640, 480))
        m = warped > 0
        assert np.corrcoef(warped[m].astype(float), fixed.views[k][m].astype(float))[0, 1] > 0.7
    # a half-size read-out of the sensor maps to the same places
    half = corr.sensor_to_view(src / 2.0 - 0.25, 1, (640, 480), sensor_size=(160, 128))
    assert np.median(np.linalg.norm(half - corr.sensor_to_view(src, 1, (640, 480)), axis=1)) < 1e-6


def test_charuco_rectified_views_share_rows(charuco_unit):
    p = _pipeline(charuco_unit, calibration={"rectify": True})
    try:
        fixed = p.calibrate(_plane_burst(charuco_unit, 2))
        corr = p.calibration.correction
    finally:
        p.close()
    a, b = _corners(fixed.views[0]), _corners(fixed.views[1])
    ids = sorted(set(a) & set(b))
    dy = np.array([a[i][1] - b[i][1] for i in ids])
    print(f"measured: ChArUco rectified pair: median |dy| {np.median(np.abs(dy)):.3f} px")
    assert len(ids) > 20 and np.median(np.abs(dy)) < 0.5
    # and the sensor mapping follows the rectification
    ir = _corners(_plane_burst(charuco_unit, 2).sensor)
    ids = sorted(set(ir) & set(b))
    d = np.linalg.norm(corr.sensor_to_view(np.array([ir[i] for i in ids]), 1, (640, 480))
                       - np.array([b[i] for i in ids]), axis=1)
    assert np.median(d) < 1.0
