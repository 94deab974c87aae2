"""The classical cell feature (device.recognition.cells): shapes, unit cells, the shift
geometry, the shipped file's integrity check, and a small real-palm sanity check."""
import json
import shutil

import numpy as np
import pytest

from device.recognition.cells import (CELLS_FILE, DEFAULT_MODELS_DIR, CellExtractor,
                                      FeatureError, FeatureExtractor, shift_max_scores,
                                      shift_offsets)


@pytest.fixture(scope="module")
def ex():
    return CellExtractor()


def _palm(seed=0):
    """A crude palm-like texture: dark curved lines on a smooth background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:128, 0:128].astype(np.float32)
    img = 150 + 20 * np.sin(x / 17.0 + rng.uniform(0, 6))
    for _ in range(12):
        a, b, c = rng.uniform(-0.02, 0.02), rng.uniform(-1.5, 1.5), rng.uniform(0, 128)
        d = np.abs(y - (a * (x - 64) ** 2 + b * (x - 64) + c))
        img -= 60 * np.exp(-d ** 2 / rng.uniform(1, 6))
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_shapes_unit_cells_and_protocol(ex):
    roi = _palm()
    t, q = ex.template(roi), ex.query(roi)
    assert isinstance(ex, FeatureExtractor)
    assert t.shape == (49, 16) and q.shape == (25, 49, 16)
    assert np.allclose(np.linalg.norm(t, axis=-1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(q, axis=-1), 1, atol=1e-5)
    assert np.array_equal(ex.shifts[ex.zero_shift], [0, 0])
    assert np.allclose(q[ex.zero_shift], t)
    imp = ex.importance
    assert imp.shape == (49,) and np.all(imp > 0) and imp.sum() == pytest.approx(1, abs=1e-6)
    # the central cells matter more than the corners (fitted d' per cell)
    assert imp[24] > imp[0]
    tb, qb = ex.both([roi, _palm(1)])
    assert np.allclose(tb[0], t) and np.allclose(qb[0], q)


def test_shifted_palm_is_found_at_the_matching_shift(ex):
    roi = _palm(3)
    moved = np.roll(roi, (4, -8), axis=(0, 1))      # content moves down 1, left 2 map px
    q = ex.query(moved)
    t = ex.template(roi)
    per_shift = np.einsum("sgd,gd->sg", q, t) @ ex.importance
    best = int(np.argmax(per_shift))
    assert tuple(ex.shifts[best]) == (1, -2)
    assert per_shift[best] > per_shift[ex.zero_shift] + 0.2
    other = ex.template(_palm(4))
    s = shift_max_scores(q[None], np.stack([t, other]), ex.importance)[0]
    assert s[0] > s[1] + 0.2


def test_wrong_roi_shape_is_refused(ex):
    with pytest.raises(FeatureError, match="128x128"):
        ex.template(np.zeros((100, 128), np.uint8))


def test_altered_or_unlisted_file_is_refused(tmp_path, trust_test_key):
    from conftest import sign_models
    for f in ("manifest.json", "manifest.sig"):          # the signed release manifest
        shutil.copy(DEFAULT_MODELS_DIR / f, tmp_path / f)
    with pytest.raises(FeatureError, match="not found"):
        CellExtractor(tmp_path)
    data = bytearray((DEFAULT_MODELS_DIR / CELLS_FILE).read_bytes())
    data[-20] ^= 0x55
    (tmp_path / CELLS_FILE).write_bytes(bytes(data))
    with pytest.raises(FeatureError, match="sha256"):
        CellExtractor(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    del m["models"][CELLS_FILE]
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FeatureError, match="changed after it was signed"):
        CellExtractor(tmp_path)
    sign_models(tmp_path, trust_test_key)               # a signed manifest without the file
    with pytest.raises(FeatureError, match="not listed"):
        CellExtractor(tmp_path)


def test_manifest_records_the_fitting_command_and_metrics():
    entry = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())["models"][CELLS_FILE]
    assert entry["command"].startswith("python -m tools.fit_cells_pca")
    m = entry["metrics"]["tongji_val_cross_session_1view"]["uniform"]
    assert m["eer"] < 0.01 and m["n_genuine"] == 6000


def test_shift_offsets_cover_plus_minus_8px():
    s = shift_offsets()
    assert s.shape == (25, 2) and s.min() == -2 and s.max() == 2


def test_real_palms_genuine_above_impostor(ex):
    from tools.paths import real_dir
    try:
        root = real_dir("tongji")
    except FileNotFoundError:
        pytest.skip("real Tongji palms not available")
    import cv2
    from tools.train.realdata import split_subjects
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    val = [names[i] for i in split_subjects(len(names), 0.2, 0)[1][:6]]
    rd = lambda s, f: cv2.imread(str(root / s / f), cv2.IMREAD_GRAYSCALE)
    T = np.stack([ex.template(rd(s, "1_01.png")) for s in val])
    Q = np.stack([ex.query(rd(s, "2_01.png")) for s in val])
    sc = shift_max_scores(Q, T, ex.importance)
    assert np.all(np.argmax(sc, 1) == np.arange(len(val)))
