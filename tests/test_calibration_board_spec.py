"""palmgate-calibrate refuses a board spec that does not match the images, naming the board they
show (an 8x6 spec on OpenCV's 9x6 samples used to pass), and stamps every report with the
unit's serial, the date and PASS/FAIL."""
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.board_check import board_mismatch, chessboard_extends, likely_board
from calibration.boards import parse_board
from calibration.capture import View
from calibration.cli import main
from calibration.synthetic import Camera, board_poses, render_view

DATA = Path(os.environ.get("PALMGATE_DATA")
            or Path(__file__).resolve().parents[1].parent / "shared" / "data") / "opencv-calib"
needs_samples = pytest.mark.skipif(not (DATA / "left01.jpg").exists(),
                                   reason=f"OpenCV sample images not found at {DATA}")


def _imgs(n=13):
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            for p in sorted(DATA.glob("left*.jpg"))[:n]]


@needs_samples
def test_8x6_spec_on_the_9x6_samples_is_refused_naming_the_board(capsys):
    rc = main(["intrinsics", "--images", str(DATA / "left*.jpg"), "--board",
               "chessboard:8x6:1.0", "--quiet", "--json"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "does not match the images" in err and "likely board chessboard:9x6:1" in err


@needs_samples
def test_the_right_spec_sees_no_further_corners():
    b = parse_board("chessboard:9x6:1.0")
    views = []
    for im in _imgs():
        d = b.detect(im)
        if d is not None:
            assert chessboard_extends(im, d.image_points, 9, 6) == []
            views.append(View("", "", im, d))
    assert board_mismatch(b, views) is None
    b8 = parse_board("chessboard:8x6:1.0")
    hits = [chessboard_extends(im, d.image_points, 8, 6)
            for im in _imgs() if (d := b8.detect(im)) is not None]
    assert sum(h == ["columns"] for h in hits) >= 0.8 * len(hits)


@needs_samples
def test_a_spec_larger_than_the_board_names_the_board():
    assert likely_board(parse_board("chessboard:9x7:1.0"), _imgs(2)) == "chessboard:9x6:1"
    assert likely_board(parse_board("chessboard:10x6:1.0"), _imgs(2)) == "chessboard:9x6:1"


def test_a_wrong_charuco_spec_names_the_board():
    cam = Camera(np.array([[600.0, 0, 320.0], [0, 600.0, 240.0], [0, 0, 1]]), (640, 480))
    true = parse_board("charuco:9x7:30:22:DICT_5X5_100")
    img, S = true.generate_image(8.0, margin_units=10)
    rng = np.random.default_rng(5)
    views = [render_view(img, S, cam, R, t, blur=0.6, noise=1.5, rng=rng)
             for R, t in board_poses(2, (135, 105), 420, rng)]
    for wrong in ("charuco:7x5:30:22:DICT_5X5_100", "charuco:9x7:30:22:DICT_4X4_50"):
        b = parse_board(wrong)
        assert all(b.detect(v) is None for v in views)
        assert likely_board(b, views) == "charuco:9x7:30:22:DICT_5X5_100"


@needs_samples
def test_reports_are_stamped_with_serial_date_and_verdict(tmp_path, capsys):
    rep = tmp_path / "rep"
    base = ["intrinsics", "--images", str(DATA / "left*.jpg"), "--board", "chessboard:9x6:1.0",
            "--quiet", "--report", str(rep)]
    assert main(base) == 2
    assert "--report needs --serial" in capsys.readouterr().err
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert main(base + ["--serial", "PG-0777"]) == 0
    r = json.loads((rep / "intrinsics_cam0.json").read_text())
    assert r["stamp"]["unit_serial"] == "PG-0777" and r["stamp"]["verdict"] == "PASS"
    assert r["stamp"]["utc"].startswith(today)
    png = cv2.imread(str(rep / "intrinsics_cam0.png"))
    assert png is not None and tuple(png[5, 5]) == (0, 150, 0)          # the green PASS band
    assert main(base + ["--serial", "PG-0777", "--limit", "max_rms=0.01"]) == 1
    r = json.loads((rep / "intrinsics_cam0.json").read_text())
    assert r["stamp"]["verdict"] == "FAIL" and r["pass"] is False
    assert tuple(cv2.imread(str(rep / "intrinsics_cam0.png"))[5, 5]) == (0, 0, 255)
