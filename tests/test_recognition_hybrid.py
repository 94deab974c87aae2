"""The hybrid palm feature (classical + learned cells in one shift search) with the shipped
models: layout, weights, view fusion, its matcher and its place in the gate's configuration."""
import numpy as np
import pytest

from device.recognition.cells import CellExtractor, shift_max_scores
from device.recognition.hybrid import LEARNED_WEIGHT, HybridExtractor, hybrid_importance
from device.recognition.learned import LearnedExtractor


def test_importance_gives_each_half_its_share():
    c = np.array([1.0, 3.0])
    le = np.array([2.0, 2.0, 4.0])
    w = hybrid_importance(c, le, 0.3)
    assert w.shape == (5,) and w.sum() == pytest.approx(1.0, abs=1e-6)
    assert w[:2].sum() == pytest.approx(0.7) and w[2:].sum() == pytest.approx(0.3)
    assert w[1] / w[0] == pytest.approx(3.0) and w[4] / w[2] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        hybrid_importance(c, le, 1.5)


@pytest.fixture(scope="module")
def rois():
    """Four textured 128x128 'palms': two identities, two slightly shifted images each."""
    import cv2
    rng = np.random.default_rng(3)
    out = []
    for _ in range(2):
        base = cv2.GaussianBlur(rng.random((160, 160)).astype(np.float32), (0, 0), 3)
        base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
        for dy in (0, 3):
            out.append(base[16 + dy:144 + dy, 16:144].astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def ex():
    return HybridExtractor()


def test_halves_are_the_two_features(ex, rois):
    t, q = ex.both(rois)
    assert t.shape == (4, 98, 16) and q.shape == (4, 25, 98, 16)
    assert np.allclose(np.linalg.norm(q, axis=-1), 1, atol=1e-4)
    assert np.array_equal(q[:, ex.zero_shift], t)
    np.testing.assert_allclose(q[:, :, :49], CellExtractor().queries(rois), atol=1e-5)
    np.testing.assert_allclose(q[:, :, 49:], LearnedExtractor().queries(rois), atol=1e-5)
    assert ex.importance.sum() == pytest.approx(1, abs=1e-5)
    assert ex.importance[49:].sum() == pytest.approx(LEARNED_WEIGHT, abs=1e-5)
    np.testing.assert_allclose(ex.query(rois[0]), q[0], atol=1e-5)


def test_score_is_the_weighted_shift_search_of_both(ex, rois):
    t, q = ex.both(rois)
    s = shift_max_scores(q, t, ex.importance)
    assert np.allclose(np.diag(s), 1, atol=1e-4)
    # with no weight on the learned half the score is the classical feature's
    only = hybrid_importance(ex.classical.importance, ex.learned.importance, 0.0)
    c = CellExtractor()
    ct, cq = c.both(rois)
    np.testing.assert_allclose(shift_max_scores(q, t, only),
                               shift_max_scores(cq, ct, c.importance), atol=1e-5)
    # the same identity (shifted image) scores above the other one
    assert s[1, 0] > s[2, 0] and s[3, 2] > s[1, 2]


def test_views_fuse_per_half_and_empty_set_is_an_error(ex, rois):
    from device.recognition.cells import weighted_fusion
    plain = HybridExtractor(align=False)          # the views as they come (no alignment)
    f = plain.query_set(rois[:2])
    cells = ex.cells(rois[:2])
    learned, w = ex.learned.fuse_weights(cells[:, :, 49:])
    # the classical half takes the view weights the fusion gave the learned cells
    assert w.shape == (2, 25, 49) and np.allclose(w.sum(0), 1, atol=1e-5)
    assert float(w.std()) > 1e-3                          # the shipped fusion is not the mean
    np.testing.assert_allclose(f[:, :49], weighted_fusion(cells[:, :, :49], w), atol=1e-5)
    np.testing.assert_allclose(f[:, 49:], learned, atol=1e-5)
    np.testing.assert_allclose(f[:, 49:], ex.learned.fuse(cells[:, :, 49:]), atol=1e-5)
    # the earlier form (ablation): the classical half by the per-cell mean of the views
    m = HybridExtractor(classical_fusion="mean", align=False).fuse(cells)
    c = cells[:, :, :49].mean(0)
    np.testing.assert_allclose(m[:, :49], c / np.linalg.norm(c, axis=-1, keepdims=True),
                               atol=1e-5)
    with pytest.raises(ValueError, match="classical_fusion"):
        HybridExtractor(classical_fusion="max")
    # one view passes through both halves unchanged
    np.testing.assert_allclose(ex.fuse(cells[:1]), cells[0], atol=1e-5)
    np.testing.assert_allclose(plain.fuse(cells[:1]), cells[0], atol=1e-5)
    with pytest.raises(ValueError, match="at least one view"):
        ex.query_set([])
    with pytest.raises(ValueError, match="at least one view"):
        ex.fuse(cells[:, :, :49])


def test_views_are_aligned_before_the_fusion(ex):
    """A view placed 8 px (2 map px) off the others is moved onto them: both halves are the
    fusion's weighted sums of the aligned views, its windows that fall outside left out."""
    import cv2
    from device.recognition.cells import weighted_fusion
    from device.recognition.view_alignment import align_views, masked_weights
    rng = np.random.default_rng(8)
    base = cv2.GaussianBlur(rng.random((192, 192)).astype(np.float32), (0, 0), 2.5)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    views = [base[32:160, 32:160], base[33:161, 32:160], base[40:168, 32:160]]
    cells = ex.cells(views)
    aligned, inside = align_views(cells, ex.importance)
    assert inside[:2].all() and inside[2].sum() == 15        # the third moved by 2 map px
    _, w = ex.learned.fuse_weights(aligned[:, :, 49:])
    w = masked_weights(w, inside)
    f = ex.fuse(cells)
    np.testing.assert_allclose(f[:, :49], weighted_fusion(aligned[:, :, :49], w), atol=1e-5)
    np.testing.assert_allclose(f[:, 49:], weighted_fusion(aligned[:, :, 49:], w), atol=1e-5)
    z = ex.zero_shift
    agree = lambda x: float((x[z] * cells[0, z]).sum(-1) @ ex.importance)
    assert agree(f) > agree(HybridExtractor(align=False).fuse(cells))
    # the fusion file's own output is the weighted sum of its views' cells by its weights
    fused, w0 = ex.learned.fuse_weights(cells[:, :, 49:])
    np.testing.assert_allclose(fused, weighted_fusion(cells[:, :, 49:], w0), atol=1e-4)


def test_hybrid_matchers_and_int8(rois):
    from device.recognition import matchers
    for name in ("hybrid", "hybrid-protected"):
        m = matchers.get_matcher(name, precision="int8")
        assert m.extractor.learned.precision == "int8"
        codes = m.encode(rois)
        assert codes.templates.shape == (4, 98, 16)
        s = m.scores(codes, codes)
        assert s.shape == (4, 4)
    sets = matchers.get_matcher("hybrid").encode_sets(rois, [[0, 1], [2, 3]])
    assert sets.queries.shape == (2, 25, 98, 16)
    assert matchers.PROTECTED["hybrid"] == "hybrid-protected"
    for name in matchers.LEARNED:                 # every learned matcher builds its feature
        assert matchers.get_matcher(name, precision="int8").extractor.precision == "int8"
    assert matchers.DEFAULT_MATCHER == "hybrid"


def test_gate_feature_option_and_thresholds(tmp_path):
    from device.config import ConfigError, load_config
    from device.gate.pipeline import gate_feature
    from device.models.model import DEFAULT_MODELS_DIR
    from device.protect.defaults import FEATURE_THRESHOLDS, feature_threshold
    cfg = load_config(None, match={"feature": "hybrid"}, gate={"precision": "int8"})
    f = gate_feature(cfg, DEFAULT_MODELS_DIR)
    assert isinstance(f, HybridExtractor) and f.n_cells == 98 and f.precision == "int8"
    default = gate_feature(load_config(None), DEFAULT_MODELS_DIR)     # the gate's default
    assert isinstance(default, HybridExtractor) and default.precision == "int8"
    cells = gate_feature(load_config(None, match={"feature": "cells"}), DEFAULT_MODELS_DIR)
    assert isinstance(cells, CellExtractor)
    assert set(FEATURE_THRESHOLDS) == {"cells", "hybrid"}
    assert feature_threshold("hybrid", "1e-4") > feature_threshold("hybrid", "1e-3")
    with pytest.raises(ValueError):
        feature_threshold("nope", "1e-4")
    with pytest.raises(ConfigError):
        load_config(None, match={"feature": "learned"})
