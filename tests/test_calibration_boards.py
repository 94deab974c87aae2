import cv2
import numpy as np
import pytest

from calibration.boards import BoardSpecError, Charuco, Chessboard, parse_board
from calibration.synthetic import Camera, render_view, rot


def test_parse_specs():
    b = parse_board("chessboard:9x6:1.0")
    assert isinstance(b, Chessboard) and (b.cols, b.rows, b.square) == (9, 6, 1.0)
    assert b.spec() == "chessboard:9x6:1" and b.object_points()[10].tolist() == [1.0, 1.0, 0.0]
    c = parse_board("charuco:7x5:40:30:5X5_100")
    assert isinstance(c, Charuco) and c.dict_name == "DICT_5X5_100" and c.n_corners == 24
    assert parse_board("charuco:6x6:40:30:DICT_4X4_50:legacy").legacy


@pytest.mark.parametrize("spec,msg", [
    ("chess:9x6:1", "unknown kind"),
    ("chessboard:9-6:1", "COLSxROWS"),
    ("chessboard:9x6", "expected chessboard"),
    ("chessboard:9x6:abc", "not a number"),
    ("chessboard:9x6:-1", "positive"),
    ("chessboard:6x6:1", "ambiguous"),
    ("charuco:7x5:40:50:DICT_5X5_100", "smaller than the square"),
    ("charuco:7x5:40:30:DICT_9X9_1", "unknown aruco dictionary"),
    ("charuco:20x20:40:30:DICT_4X4_50", "holds 50 markers"),
    ("charuco:7x5:40:30", "expected chessboard"),
])
def test_bad_specs_say_why(spec, msg):
    with pytest.raises(BoardSpecError, match=msg):
        parse_board(spec)


def test_chessboard_render_and_detect_with_subpix():
    b = parse_board("chessboard:9x6:25")
    img, S = b.generate_image(4.0)
    cam = Camera(np.array([[700.0, 0, 320], [0, 700, 240], [0, 0, 1]]), (640, 480))
    R, t = rot(10, -15, 5), np.array([-100.0, -62.5, 600.0])
    view = render_view(img, S, cam, R, t, blur=0.6, noise=1.5)
    d = b.detect(view, subpix=5)
    assert d is not None and d.image_points.shape == (54, 2) and d.subpix == 5
    truth, _ = cv2.projectPoints(b.object_points(), cv2.Rodrigues(R)[0], t, cam.K, None)
    truth = truth.reshape(-1, 2)
    err = np.linalg.norm(d.image_points - truth, axis=1)
    err_flip = np.linalg.norm(d.image_points[::-1] - truth, axis=1)
    assert min(np.median(err), np.median(err_flip)) < 0.15      # sub-pixel corners
    assert b.detect(np.full((480, 640), 128, np.uint8)) is None


def test_charuco_partial_view_keeps_ids_and_16bit_input():
    b = parse_board("charuco:7x5:40:30:DICT_5X5_100")
    img, S = b.generate_image(5.0, margin_units=5)
    cam = Camera(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), (640, 480))
    view = render_view(img, S, cam, rot(0, 20, 0), np.array([-40.0, -100.0, 420.0]), blur=0.5)
    d = b.detect(view.astype(np.uint16) * 257)                  # a 16-bit sensor frame
    assert d is not None and 6 <= len(d) < b.n_corners          # board runs off the image
    np.testing.assert_allclose(d.object_points, b.object_points()[d.ids])
