"""palmgate-calibrate as an operator and an outside evaluation use it: exit codes, messages,
the flat-field and relay steps, the signed file, verify."""
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from calibration.boards import parse_board
from calibration.cli import main
from calibration.synthetic import Camera, board_poses, render_view
from device.vision.calibration import load_calibration
from device.store.keys import load_device_key


def run(capsys, *args):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture(scope="module")
def chess_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("chess")
    b = parse_board("chessboard:9x6:25")
    img, S = b.generate_image(4.0)
    cam = Camera(np.array([[700.0, 0, 330], [0, 700, 236], [0, 0, 1]]), (640, 480),
                 np.array([-0.1, 0.02, 0, 0, 0]))
    rng = np.random.default_rng(3)
    for i, (R, t) in enumerate(board_poses(9, (125, 87.5), 430, rng, max_tilt=30)):
        cv2.imwrite(str(d / f"view{i:02d}.png"), render_view(img, S, cam, R, t, 0.6, 1.5, rng))
    return d


def test_console_script_help():
    exe = shutil.which("palmgate-calibrate")
    cmd = [exe] if exe else [sys.executable, "-m", "calibration.cli"]
    out = subprocess.run(cmd + ["intrinsics", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--board" in out.stdout and "--subpix" in out.stdout


def test_synthetic_chessboard_passes_and_json_is_clean(capsys, chess_dir):
    rc, out, err = run(capsys, "intrinsics", "--images", chess_dir / "*.png",
                       "--board", "chessboard:9x6:25", "--json")
    r = json.loads(out)                                     # stdout is pure JSON
    assert rc == 0 and r["pass"] and r["views_used"] == 9
    assert abs(r["camera_matrix"][0][0] - 700) < 5 and r["rms"] < 0.3
    assert "intrinsics: PASS" in err                         # human summary goes to stderr


def test_live_source_path_through_opencv_video(capsys, chess_dir, tmp_path):
    """A live camera goes through the same FrameSource path; a video file stands in for it."""
    clip = str(tmp_path / "cam.avi")
    vw = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 5, (640, 480))
    if not vw.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG/AVI")
    for p in sorted(chess_dir.glob("*.png")):
        im = cv2.imread(str(p))
        for _ in range(2):                                    # a still board: 2nd is not new
            vw.write(im)
    vw.release()
    rc, out, _ = run(capsys, "intrinsics", "--source", f"opencv:{clip}", "--views", 7,
                     "--board", "chessboard:9x6:25", "--json", "--quiet")
    r = json.loads(out)
    assert r["views_used"] == 7 and r["images"] == 7         # duplicates were not accepted
    assert abs(r["camera_matrix"][0][0] - 700) < 15


def test_failing_limit_exits_1(capsys, chess_dir):
    rc, out, _ = run(capsys, "intrinsics", "--images", chess_dir, "--board",
                     "chessboard:9x6:25", "--json", "--quiet", "--limit", "max_rms=0.001")
    r = json.loads(out)
    assert rc == 1 and not r["pass"]
    assert [c["name"] for c in r["checks"] if not c["pass"]] == ["rms"]


@pytest.mark.parametrize("args,msg", [
    (["--board", "chessboard:9x6"], "bad board spec"),
    (["--board", "chessboard:9x6:25", "--limit", "max_rsm=1"], "bad --limit"),
    (["--board", "chessboard:9x6:25", "--calfile", "x.json"], "needs --serial"),
])
def test_bad_input_exits_2(capsys, chess_dir, args, msg):
    rc, out, err = run(capsys, "intrinsics", "--images", chess_dir, *args)
    assert rc == 2 and msg in err and out == ""


def test_no_images_unreadable_and_no_board(capsys, tmp_path):
    rc, _, err = run(capsys, "intrinsics", "--images", tmp_path / "*.png", "--board",
                     "chessboard:9x6:1")
    assert rc == 2 and "no images match" in err
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    rc, _, err = run(capsys, "intrinsics", "--images", tmp_path / "*.png", "--board",
                     "chessboard:9x6:1")
    assert rc == 2 and "cannot read image" in err and "bad.png" in err
    (tmp_path / "bad.png").unlink()
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"blank{i}.png"), np.full((120, 160), 128, np.uint8))
    rc, _, err = run(capsys, "intrinsics", "--images", tmp_path / "*.png", "--board",
                     "chessboard:9x6:1", "--quiet")
    assert rc == 2 and "no chessboard board" in err and "inner corners" in err


def test_wrong_board_size_found_nowhere(capsys, chess_dir):
    rc, _, err = run(capsys, "intrinsics", "--images", chess_dir, "--board",
                     "chessboard:10x7:25", "--quiet")
    assert rc == 2 and "found in any of the 9 image(s)" in err


def test_unsafe_key_file_exits_2(capsys, chess_dir, tmp_path):
    key = tmp_path / "k"
    load_device_key(key, create=True)
    os.chmod(key, 0o644)
    rc, _, err = run(capsys, "intrinsics", "--images", chess_dir, "--board", "chessboard:9x6:25",
                     "--calfile", tmp_path / "u.json", "--serial", "S1", "--key", key, "--quiet")
    assert rc == 2 and "group/others" in err


def _vignette(w, h, level, fs, rng, dark=64.0):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2
    v = 1.0 - 0.22 * r2 + 0.05 * (x / w)                    # fall-off plus a tilt
    return np.clip(dark + level * fs * v + rng.normal(0, 6, (h, w)), 0, fs).astype(np.uint16)


def test_flatfield_step_and_runtime_gain(capsys, tmp_path):
    rng = np.random.default_rng(0)
    fs = 4095.0
    (tmp_path / "flat").mkdir()
    (tmp_path / "dark").mkdir()
    for i in range(6):
        cv2.imwrite(str(tmp_path / "flat" / f"f{i}.png"), _vignette(320, 256, 0.55, fs, rng))
        cv2.imwrite(str(tmp_path / "dark" / f"d{i}.png"),
                    np.clip(64 + rng.normal(0, 6, (256, 320)), 0, fs).astype(np.uint16))
    key, cal = tmp_path / "device.key", tmp_path / "unit.json"
    rc, out, _ = run(capsys, "flatfield", "--images", tmp_path / "flat", "--dark",
                     tmp_path / "dark", "--bit-depth", 12, "--json", "--quiet",
                     "--calfile", cal, "--serial", "PG-7", "--key", key, "--create-key",
                     "--report", tmp_path / "rep")
    r = json.loads(out)
    assert rc == 0 and r["pass"], r["checks"]
    assert abs(r["dark_level"] - 64) < 2 and 0.4 < r["mean_level"] < 0.6
    assert r["residual_nonuniformity"] < 0.01 and (tmp_path / "rep" / "flatfield.png").exists()
    c = load_calibration(cal, load_device_key(key), unit_serial="PG-7", required=("flatfield",))
    fresh = _vignette(320, 256, 0.55, fs, rng)
    flat = cv2.GaussianBlur(c.flatten(fresh).astype(np.float32), (0, 0), 3)[8:-8, 8:-8]
    raw = cv2.GaussianBlur(fresh.astype(np.float32), (0, 0), 3)[8:-8, 8:-8]
    assert raw.std() / raw.mean() > 0.05                    # vignetted before...
    assert flat.std() / flat.mean() < 0.01                  # ...flat after the runtime's gain
    # a saturated exposure fails its limit (exit 1), the file is still written for the record
    for i in range(3):
        cv2.imwrite(str(tmp_path / "flat" / f"f{i}.png"), _vignette(320, 256, 1.2, fs, rng))
    rc, out, _ = run(capsys, "flatfield", "--images", tmp_path / "flat", "--bit-depth", 12,
                     "--json", "--quiet")
    r = json.loads(out)
    failed = {c["name"] for c in r["checks"] if not c["pass"]}
    assert rc == 1 and "saturated_fraction" in failed


def test_relay_step_and_verify(capsys, tmp_path):
    key, cal = tmp_path / "device.key", tmp_path / "unit.json"
    unit = ["--calfile", cal, "--serial", "PG-9", "--key", key]
    # pyserial's loop:// echoes each request: a perfect Modbus coil answer
    rc, out, _ = run(capsys, "relay", "--protocol", "modbus", "--port", "loop://",
                     "--pulse-ms", 100, "--json", "--quiet", *unit, "--create-key")
    r = json.loads(out)
    assert rc == 0 and r["acknowledged"] and r["cycles_ok"] == 2 and r["error"] is None
    rc, out, err = run(capsys, "relay", "--protocol", "lcus", "--port", "loop://",
                       "--pulse-ms", 100, "--cycles", 1, "--json")
    r = json.loads(out)
    assert rc == 0 and not r["acknowledged"] and "never acknowledge" in err
    rc, out, _ = run(capsys, "verify", "--require", "relay", "--json", "--quiet", *unit)
    assert rc == 0 and json.loads(out)["steps"] == ["relay"]
    doc = json.loads(cal.read_text())
    doc["results"]["relay"]["pass"] = True
    doc["results"]["relay"]["cycles_ok"] = 99
    cal.write_text(json.dumps(doc))
    rc, _, err = run(capsys, "verify", "--quiet", *unit)
    assert rc == 2 and "tampered" in err


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")
def test_relay_step_fails_when_the_line_is_silent(capsys, pty_pair):
    a, _ = pty_pair
    rc, out, _ = run(capsys, "relay", "--protocol", "modbus", "--port", a,
                     "--timeout", 0.1, "--json", "--quiet")
    r = json.loads(out)
    assert rc == 1 and not r["pass"] and "no answer" in r["error"]
