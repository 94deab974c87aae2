"""Views of one presentation aligned on the cell grid before the fusion
(device/recognition/view_alignment.py), on the classical cells of textured regions."""
import cv2
import numpy as np
import pytest

from device.recognition.cells import CellExtractor, shift_offsets
from device.recognition.view_alignment import (align_views, masked_weights, placement_anchor,
                                               relative_shifts, shifted_windows)

OFFS = shift_offsets()
ZERO = int(np.flatnonzero((OFFS == 0).all(1))[0])


@pytest.fixture(scope="module")
def ext():
    return CellExtractor()


def _palm(seed=5):
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((192, 192)).astype(np.float32), (0, 0), 2.5)
    return cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _view(base, dy, dx):
    """The 128 px region of ``base`` placed (dy, dx) image px off the centre."""
    return base[32 + dy:160 + dy, 32 + dx:160 + dx]


def test_relative_shift_finds_a_view_placed_two_windows_off(ext):
    base = _palm()
    cells = ext.queries([_view(base, 0, 0), _view(base, 8, 0)])     # 8 px = 2 map px
    scores, shift = relative_shifts(cells, ext.importance)
    assert scores.shape == (2, 2) and np.allclose(scores, scores.T) and scores[0, 0] == 0
    assert shift[0, 0] == shift[1, 1] == ZERO
    # view 1's content sits 2 map px higher: its window (-2, 0) matches view 0's centre
    assert tuple(OFFS[shift[0, 1]]) == (-2, 0)
    assert tuple(OFFS[shift[1, 0]]) == (2, 0)
    assert scores[0, 1] > 0.9


def test_views_move_onto_the_anchor_the_others_agree_with(ext):
    base = _palm()
    views = [_view(base, 0, 0), _view(base, -8, 4), _view(base, 1, 0)]
    cells = ext.queries(views)
    scores, shift = relative_shifts(cells, ext.importance)
    assert placement_anchor(scores, shift) in (0, 2)        # not the view placed off
    aligned, inside = align_views(cells, ext.importance)
    a = placement_anchor(scores, shift)
    np.testing.assert_array_equal(aligned[a], cells[a])
    assert inside[a].all() and inside[2 - a].all()          # the two that agree stay
    np.testing.assert_array_equal(aligned[2 - a], cells[2 - a])
    off = OFFS[shift[a, 1]]
    assert tuple(off) == (2, -1)
    # window s of the moved view is its window s + offset; the rest are left out
    for s, o in enumerate(OFFS):
        target = o + off
        if (np.abs(target) <= 2).all():
            assert inside[1, s]
            k = int(np.flatnonzero((OFFS == target).all(1))[0])
            np.testing.assert_array_equal(aligned[1, s], cells[1, k])
        else:
            assert not inside[1, s]
    assert inside[1].sum() == 3 * 4
    # after the move the views agree at the centred window
    assert float((aligned[1, ZERO] * aligned[a, ZERO]).sum(-1).mean()) > 0.9


def test_one_view_and_agreeing_views_come_back_unchanged(ext):
    base = _palm(6)
    cells = ext.queries([_view(base, 0, 0), _view(base, 0, 1)])
    out, inside = align_views(cells[:1], ext.importance)
    np.testing.assert_array_equal(out, cells[:1])
    assert inside.all()
    out, inside = align_views(cells, ext.importance)
    np.testing.assert_array_equal(out, cells)
    assert inside.all()
    with pytest.raises(ValueError):
        align_views(cells[0], ext.importance)


def test_shifted_windows_and_masked_weights():
    idx, inside = shifted_windows((0, 0))
    assert inside.all() and np.array_equal(idx, np.arange(25))
    idx, inside = shifted_windows((1, 0))
    assert inside.sum() == 20 and tuple(OFFS[idx[ZERO]]) == (1, 0)
    w = np.full((2, 25, 3), 0.5, np.float32)
    m = masked_weights(w, np.stack([np.ones(25, bool), inside]))
    assert np.allclose(m.sum(0), 1)
    assert np.all(m[1][~inside] == 0) and np.allclose(m[0][~inside], 1)
    assert np.allclose(m[:, inside], 0.5)
