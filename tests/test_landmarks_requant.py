"""tools.landmarks_requant.view_images: the views it checks the re-quantised files on."""
import cv2
import numpy as np

from tools.landmarks_requant import view_images


def _presentation(folder, value):
    folder.mkdir(parents=True)
    for k in range(2):
        cv2.imwrite(str(folder / f"view_{k}.png"), np.full((4, 4, 3), value, np.uint8))


def test_view_images_takes_presentations_of_every_class_folder(tmp_path):
    # a set's layout: bona_fide/NNNNN/ and attack/<species>/NNNNN/
    _presentation(tmp_path / "bona_fide" / "00000", 10)
    _presentation(tmp_path / "bona_fide" / "00001", 20)
    _presentation(tmp_path / "attack" / "photo" / "00000", 30)
    _presentation(tmp_path / "attack" / "silicone_cast" / "00000", 40)
    ims = view_images([tmp_path], 4)
    assert len(ims) == 8
    assert sorted({int(im[0, 0, 0]) for im in ims}) == [10, 20, 30, 40]


def test_main_refuses_before_any_work_when_there_is_nothing_to_calibrate_or_check(tmp_path):
    import pytest

    from tools.landmarks_requant import main
    with pytest.raises(SystemExit) as e:          # no NTUST and no synthetic views
        main(["--out", str(tmp_path / "o"), "--no-ntust"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:          # --check on a folder without views
        main(["--out", str(tmp_path / "o"), "--check", str(tmp_path / "empty")])
    assert e.value.code == 2
