"""Hermetic ground truth: ChArUco boards rendered through known cameras (several poses, lens
distortion, blur, noise) must give back those cameras; a rendered IR/visible pair must give back
the known homography; the runtime's rectification must make the pair's rows agree."""
import json

import cv2
import numpy as np
import pytest

from calibration.boards import parse_board
from calibration.cli import main
from calibration.extrinsics import calibrate_pair, plane_homography, rotation_angle_deg
from calibration.intrinsics import calibrate_intrinsics
from calibration.registration import estimate_homography, homography_grid_error
from calibration.synthetic import Camera, board_homography, board_poses, render_view, rot
from device.vision.calibration import load_calibration, rectify_pair
from device.store.keys import load_device_key

BOARD = "charuco:9x7:30:22:DICT_5X5_100"          # 270 x 210 mm, 48 inner corners
CAM_A = Camera(np.array([[600.0, 0, 322.0], [0, 603.0, 236.0], [0, 0, 1]]), (640, 480),
               np.array([-0.12, 0.05, 0.001, -0.0005, 0.0]))
CAM_B = Camera(np.array([[640.0, 0, 318.0], [0, 640.0, 244.0], [0, 0, 1]]), (640, 480),
               np.array([-0.08, 0.02, 0.0, 0.0, 0.0]), R=rot(0.5, -10.0, 1.0),
               T=np.array([-80.0, 3.0, 5.0]))
CAM_IR = Camera(np.array([[330.0, 0, 158.0], [0, 330.0, 131.0], [0, 0, 1]]), (320, 256),
                None, R=rot(2.0, -4.0, 1.5), T=np.array([35.0, -12.0, 4.0]))
N_VIEWS = 14


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Renders once; writes the images as PNG files for the CLI tests too."""
    root = tmp_path_factory.mktemp("hermetic")
    board = parse_board(BOARD)
    img, S = board.generate_image(8.0, margin_units=10)
    rng = np.random.default_rng(7)
    views = {"A": [], "B": []}
    for i, (R, t) in enumerate(board_poses(N_VIEWS, (135, 105), 420, rng)):
        views["A"].append(render_view(img, S, CAM_A, R, t, blur=0.7, noise=2.0, rng=rng))
        Rb, tb = CAM_B.pose_of(R, t)
        views["B"].append(render_view(img, S, CAM_B, Rb, tb, blur=0.7, noise=2.0, rng=rng))
    # working plane: the board flat in front of camera A at 380 mm, seen by A and by the IR sensor
    Rw, tw = rot(4.0, -3.0, 2.0), np.array([-135.0, -105.0, 380.0])
    plane = {"A": [], "IR": []}
    for _ in range(3):
        plane["A"].append(render_view(img, S, CAM_A, Rw, tw, blur=0.7, noise=2.0, rng=rng))
        Ri, ti = CAM_IR.pose_of(Rw, tw)
        plane["IR"].append(render_view(img, S, CAM_IR, Ri, ti, blur=0.9, noise=3.0, rng=rng,
                                       contrast=0.6, background=60))
    # sensor pixels -> reference pixels, in A's undistorted image (board plane in between)
    Ri, ti = CAM_IR.pose_of(Rw, tw)
    H_true = board_homography(CAM_A.K, Rw, tw, S) @ np.linalg.inv(
        board_homography(CAM_IR.K, Ri, ti, S))
    H_true /= H_true[2, 2]
    for name, imgs in [("A", views["A"]), ("B", views["B"]), ("planeA", plane["A"]),
                       ("planeIR", plane["IR"])]:
        d = root / name
        d.mkdir()
        for i, im in enumerate(imgs):
            cv2.imwrite(str(d / f"{name}{i:02d}.png"), im)
    dets = {k: [board.detect(im) for im in v] for k, v in views.items()}
    return {"root": root, "board": board, "views": views, "plane": plane, "dets": dets,
            "H_true": H_true}


def _intrinsics(world, cam):
    dets = [d for d in world["dets"][cam] if d is not None]
    assert len(dets) >= 12
    return calibrate_intrinsics(dets)


@pytest.mark.parametrize("cam,truth", [("A", CAM_A), ("B", CAM_B)])
def test_intrinsics_recover_known_camera(world, cam, truth):
    res = _intrinsics(world, cam)
    K = res.camera_matrix
    assert abs(K[0, 0] - truth.K[0, 0]) < 3 and abs(K[1, 1] - truth.K[1, 1]) < 3
    assert np.hypot(K[0, 2] - truth.K[0, 2], K[1, 2] - truth.K[1, 2]) < 5
    assert abs(res.dist[0] - truth.dist[0]) < 0.03          # k1
    assert res.rms < 0.3 and not res.dropped


def test_extrinsics_recover_second_camera(world):
    ra, rb = _intrinsics(world, "A"), _intrinsics(world, "B")
    da = {str(i): d for i, d in enumerate(world["dets"]["A"]) if d is not None}
    db = {str(i): d for i, d in enumerate(world["dets"]["B"]) if d is not None}
    st = calibrate_pair(da, db, (ra.camera_matrix, ra.dist), (rb.camera_matrix, rb.dist),
                        (640, 480))
    rot_err = rotation_angle_deg(st.R @ CAM_B.R.T)
    base_err = abs(st.baseline - np.linalg.norm(CAM_B.T)) / np.linalg.norm(CAM_B.T)
    assert rot_err < 1.0, rot_err
    assert base_err < 0.02, base_err
    cos = float(st.T.ravel() @ CAM_B.T / (st.baseline * np.linalg.norm(CAM_B.T)))
    assert cos > np.cos(np.radians(1.0))                     # direction of the baseline too
    assert st.rms < 0.5


def test_registration_recovers_known_homography(world):
    board = world["board"]
    sd = {str(i): board.detect(im) for i, im in enumerate(world["plane"]["IR"])}
    rd = {str(i): board.detect(im) for i, im in enumerate(world["plane"]["A"])}
    assert all(d is not None for d in sd.values())
    res = estimate_homography(sd, rd, None, (CAM_A.K, CAM_A.dist))
    err = homography_grid_error(res.H, world["H_true"], CAM_IR.size)
    assert err["mean_px"] < 0.5 and err["max_px"] < 1.5, err
    assert res.rms < 0.5 and res.max_view_disagreement_px < 1.0


def test_outlier_view_is_dropped(world):
    dets = [d for d in world["dets"]["A"] if d is not None]
    bad = dets[3].subset(dets[3].ids)
    bad.image_points = bad.image_points + np.random.default_rng(1).normal(
        0, 2.0, bad.image_points.shape).astype(np.float32)
    dets = dets[:3] + [bad] + dets[4:]
    res = calibrate_intrinsics(dets, [f"v{i}" for i in range(len(dets))])
    assert [d["view"] for d in res.dropped] == ["v3"]
    assert res.initial_per_view_rms["v3"] > 1.0 and res.rms < 0.3
    assert abs(res.camera_matrix[0, 0] - 600) < 3


def test_runtime_rectification_aligns_rows(world):
    ra, rb = _intrinsics(world, "A"), _intrinsics(world, "B")
    da = {str(i): d for i, d in enumerate(world["dets"]["A"]) if d is not None}
    db = {str(i): d for i, d in enumerate(world["dets"]["B"]) if d is not None}
    st = calibrate_pair(da, db, (ra.camera_matrix, ra.dist), (rb.camera_matrix, rb.dist),
                        (640, 480))
    board = world["board"]
    dy = []
    for k in ("0", "5", "9"):
        i = int(k)
        a, b = rectify_pair(world["views"]["A"][i], world["views"]["B"][i], ra.camera_matrix,
                            ra.dist, rb.camera_matrix, rb.dist, st.R, st.T)
        d1, d2 = board.detect(a), board.detect(b)
        if d1 is None or d2 is None:
            continue
        ids = np.intersect1d(d1.ids, d2.ids)
        y1 = d1.image_points[np.isin(d1.ids, ids), 1]
        y2 = d2.image_points[np.isin(d2.ids, ids), 1]
        dy.append(np.abs(y1 - y2))
    assert dy, "board not found after rectification"
    assert float(np.median(np.concatenate(dy))) < 0.5


def test_cli_end_to_end_charuco_unit_file(world, tmp_path):
    """intrinsics (two cameras) -> extrinsics -> registration through the CLI into one signed
    file, then the runtime loads it and maps the IR frame onto the reference view."""
    r = world["root"]
    key = tmp_path / "device.key"
    cal = tmp_path / "unit.json"
    common = ["--calfile", str(cal), "--serial", "PG-0001", "--key", str(key), "--quiet",
              "--report", str(tmp_path / "report")]
    assert main(["intrinsics", "--images", str(r / "A" / "*.png"), "--board", BOARD,
                 "--camera", "cam0", "--create-key", *common]) == 0
    assert main(["intrinsics", "--images", str(r / "B"), "--board", BOARD,
                 "--camera", "cam1", *common]) == 0
    assert main(["extrinsics", "--images", f"cam0={r / 'A'}", "--images", f"cam1={r / 'B'}",
                 "--board", BOARD, "--limit", "baseline=80.2122", *common]) == 0
    assert main(["registration", "--sensor-images", str(r / "planeIR"), "--ref-images",
                 str(r / "planeA"), "--board", BOARD, "--sensor", "ir", "--reference", "cam0",
                 *common]) == 0
    doc = json.loads(cal.read_text())
    assert set(doc["results"]) == {"intrinsics", "extrinsics", "registration"}
    assert set(doc["results"]["intrinsics"]) == {"cam0", "cam1"}
    assert doc["limits"]["extrinsics"]["baseline"] == pytest.approx(80.2122)
    assert (tmp_path / "report" / "intrinsics_cam0.png").stat().st_size > 10_000
    assert (tmp_path / "report" / "registration.png").exists()
    c = load_calibration(cal, load_device_key(key), unit_serial="PG-0001",
                         required=("intrinsics", "extrinsics", "registration"))
    K = c.camera("cam0").K
    assert abs(K[0, 0] - 600) < 3 and abs(K[0, 2] - 322) < 5
    H = np.asarray(c.results["registration"]["H"])
    assert homography_grid_error(H, world["H_true"], CAM_IR.size)["mean_px"] < 0.5
    ir = world["plane"]["IR"][0]
    on_ref = c.register(ir)
    assert on_ref.shape == (480, 640)
    ref = c.undistort("cam0", world["plane"]["A"][0])
    m = on_ref > 0
    corr = np.corrcoef(on_ref[m].astype(float), ref[m].astype(float))[0, 1]
    assert corr > 0.8, corr                                   # the IR frame lands on the board
    # the runtime's rectification from the file: corners land on the same rows
    a, b = c.rectify("cam0", "cam1", world["views"]["A"][5], world["views"]["B"][5])
    d1, d2 = world["board"].detect(a), world["board"].detect(b)
    ids = np.intersect1d(d1.ids, d2.ids)
    dy = d1.image_points[np.isin(d1.ids, ids), 1] - d2.image_points[np.isin(d2.ids, ids), 1]
    assert len(ids) > 20 and float(np.median(np.abs(dy))) < 0.5
    # stereo mode: camera B as the "sensor", board moving through depth, plane at 420 mm
    assert main(["registration", "--mode", "stereo", "--working-distance", "420",
                 "--sensor-images", str(r / "B"), "--ref-images", str(r / "A"), "--board", BOARD,
                 "--sensor", "cam1", "--reference", "cam0", *common]) == 0
    c = load_calibration(cal, load_device_key(key))
    H_ab = plane_homography(CAM_A.K, CAM_B.K, CAM_B.R, CAM_B.T, (0, 0, 1), 420.0)
    H = np.asarray(c.results["registration"]["H"])
    assert homography_grid_error(H, np.linalg.inv(H_ab), CAM_B.size)["mean_px"] < 2.0


def test_plane_homography_matches_rendering():
    Rw, tw = rot(4.0, -3.0, 2.0), np.array([-135.0, -105.0, 380.0])
    n = Rw[:, 2]                                              # board normal in A coordinates
    H_a_ir = plane_homography(CAM_A.K, CAM_IR.K, CAM_IR.R, CAM_IR.T, n, float(n @ tw))
    S = np.eye(3)
    Ri, ti = CAM_IR.pose_of(Rw, tw)
    H_true = board_homography(CAM_IR.K, Ri, ti, S) @ np.linalg.inv(
        board_homography(CAM_A.K, Rw, tw, S))
    assert homography_grid_error(H_a_ir, H_true / H_true[2, 2], CAM_A.size)["max_px"] < 1e-6
