"""A fine-tune round's pool (tools/train/sensor_rounds.round_pool): ``classes`` keeps only the
named classes of its sets, with the mined and real masks cut alike."""
import numpy as np


def test_round_pool_keeps_only_the_named_classes(tmp_path):
    from tools.train.sensor_rounds import round_pool
    real = np.zeros((3, 128, 128), np.uint8)
    empty = np.zeros((0, 128, 128), np.uint8)
    ft = {"pool_only": True, "mine": (1013, 2, 1), "mine_all": True}
    caps, cls, mine, is_real = round_pool("nir", ft, tmp_path, empty, np.array([], str), real)
    assert "vein_film_over_live" in set(cls) and is_real.sum() == 3 and mine.all()
    keep = ("bona_fide", "printed_photo")
    caps2, cls2, mine2, real2 = round_pool("nir", dict(ft, classes=keep), tmp_path, empty,
                                           np.array([], str), real)
    assert set(cls2) == set(keep)
    assert len(caps2) == len(cls2) == len(mine2) == len(real2) == 2 + 1 + 3
    assert real2.sum() == 3 and (cls2[real2] == "bona_fide").all()
