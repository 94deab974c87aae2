import cv2
import numpy as np
import pytest

from device.sources.base import (EndOfFrames, FolderSource, FrameError, FrameSource, OpenCVSource,
                           expand_images, frames, open_source)


def _write(tmp_path, names):
    for i, n in enumerate(names):
        cv2.imwrite(str(tmp_path / n), np.full((8, 10, 3), 20 * i, np.uint8))


def test_folder_source_replays_in_order(tmp_path):
    _write(tmp_path, ["b02.png", "a01.png", "c03.jpg"])
    (tmp_path / "notes.txt").write_text("not an image")
    src = FolderSource(tmp_path)
    assert isinstance(src, FrameSource) and len(src) == 3
    src.start()
    got = []
    while True:
        try:
            img, meta = src.capture()
        except EndOfFrames:
            break
        got.append(meta["name"])
        assert img.shape == (8, 10, 3) and meta["index"] == len(got) - 1
    src.stop()
    assert got == ["a01.png", "b02.png", "c03.jpg"]


def test_folder_glob_gray_loop_and_helper(tmp_path):
    _write(tmp_path, ["x1.png", "x2.png", "y1.png"])
    src = FolderSource(str(tmp_path / "x*.png"), grayscale=True, loop=True)
    out = [m["name"] for _, m in frames(src, limit=5)]
    assert out == ["x1.png", "x2.png", "x1.png", "x2.png", "x1.png"]
    img, _ = next(frames(FolderSource(str(tmp_path / "y*.png"), grayscale=True)))
    assert img.ndim == 2
    assert [p.name for p in expand_images(tmp_path / "y1.png")] == ["y1.png"]


def test_folder_errors(tmp_path):
    with pytest.raises(FrameError, match="no images match"):
        FolderSource(str(tmp_path / "*.png")).start()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    src = FolderSource(tmp_path)
    with pytest.raises(FrameError, match="before start"):
        src.capture()
    src.start()
    with pytest.raises(FrameError, match="cannot read image .*bad.png"):
        src.capture()


def test_opencv_source_reads_a_video_file(tmp_path):
    path = str(tmp_path / "clip.avi")
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    if not vw.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG/AVI")
    for i in range(4):
        vw.write(np.full((48, 64, 3), 40 * i, np.uint8))
    vw.release()
    src = OpenCVSource(path, grayscale=True)
    got = list(frames(src))
    assert len(got) == 4 and got[0][0].shape == (48, 64)
    assert [m["index"] for _, m in got] == [0, 1, 2, 3]
    assert abs(float(got[3][0].mean()) - 120) < 5


def test_opencv_source_missing_camera():
    with pytest.raises(FrameError, match="cannot open"):
        OpenCVSource("/nonexistent/clip.avi").start()


def test_open_source_specs(tmp_path):
    assert isinstance(open_source(f"folder:{tmp_path}"), FolderSource)
    assert isinstance(open_source(str(tmp_path)), FolderSource)
    s = open_source("opencv:3")
    assert isinstance(s, OpenCVSource) and s.device == 3
    assert isinstance(open_source("2"), OpenCVSource)
